"""Domain claims and verifications (the rules live in domains.py and members/)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Iterable
from typing import cast

from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update

from ..domains import TxtRecord, verification_record
from .driver import DriverStatement
from .models import WorkspaceDomain, utcnow

# Typed as the Table it is: mypy sees a declarative __table__ as a FromClause.
_DOMAINS = cast(Table, WorkspaceDomain.__table__)
_D = _DOMAINS.c


@dataclasses.dataclass(frozen=True, slots=True)
class DomainClaim:
    """A workspace's claim on an email domain, and whether (and how) it is verified."""

    domain: str
    verified_at: dt.datetime | None
    verified_by: str | None  # "dns" or "operator"
    record: TxtRecord  # what to publish to verify it by DNS

    @property
    def verified(self) -> bool:
        return self.verified_at is not None


def claim_of(row: WorkspaceDomain) -> DomainClaim:
    return DomainClaim(row.domain, row.verified_at, row.verified_by,
                       verification_record(row.domain, row.verification_token))


def claims(connection: Connection, workspace_id: int) -> list[DomainClaim]:
    rows = connection.execute(
        select(_D.domain, _D.verified_at, _D.verified_by, _D.verification_token)
        .where(_D.workspace_id == workspace_id).order_by(_D.domain)
    ).all()
    return [DomainClaim(row.domain, row.verified_at, row.verified_by,
                        verification_record(row.domain, row.verification_token)) for row in rows]


def claim(connection: Connection, workspace_id: int, domain: str) -> None:
    """Claim ``domain`` (unverified) unless this workspace already has."""
    exists = connection.execute(select(_D.domain).where(
        _D.workspace_id == workspace_id, _D.domain == domain)).first()
    if exists is None:
        connection.execute(insert(_DOMAINS).values(
            workspace_id=workspace_id, domain=domain, created_at=utcnow(),
            verification_token=secrets.token_urlsafe(24)))


def replace_claims(connection: Connection, workspace_id: int, domains: Iterable[str]) -> None:
    """Claim exactly ``domains``: claims kept keep their verification, others are dropped."""
    wanted = set(domains)
    connection.execute(delete(_DOMAINS).where(_D.workspace_id == workspace_id,
                                              _D.domain.not_in(wanted)))
    for domain in sorted(wanted):
        claim(connection, workspace_id, domain)


def release(connection: Connection, workspace_id: int, domain: str) -> bool:
    result = connection.execute(delete(_DOMAINS).where(_D.workspace_id == workspace_id,
                                                       _D.domain == domain))
    return bool(result.rowcount)


def verifier_of(connection: Connection, domain: str) -> int | None:
    """The workspace that verified ``domain``, if any."""
    row = _VERIFIER.first(connection, {"domain": domain})
    return int(row[0]) if row is not None else None


def mark_verified(connection: Connection, workspace_id: int, domain: str, *, by: str) -> None:
    """Record the verification. When another workspace verified the domain meanwhile, the
    partial unique index refuses it (IntegrityError, which the caller turns into DomainError)."""
    connection.execute(
        update(_DOMAINS).where(_D.workspace_id == workspace_id, _D.domain == domain,
                               _D.verified_at.is_(None))
        .values(verified_at=utcnow(), verified_by=by))


# Sign-in asks this on every assertion: built once, run on the driver's cursor.
_VERIFIER = DriverStatement(
    select(_D.workspace_id).where(_D.domain == bindparam("domain"), _D.verified_at.is_not(None)))
