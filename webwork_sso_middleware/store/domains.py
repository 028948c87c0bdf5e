"""Domain claims and verifications (the rules live in domains.py and members/)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Iterable
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)

from ..domains import TxtRecord, verification_record
from .db import UnitOfWork, note_sessions_ended
from .driver import DriverStatement
from .models import Member, MemberSession, WorkspaceDomain, utcnow

# Typed as the Table it is: mypy sees a declarative __table__ as a FromClause.
_DOMAINS = cast(Table, WorkspaceDomain.__table__)
_D = _DOMAINS.c
_M = cast(Table, Member.__table__).c
_SESSIONS = cast(Table, MemberSession.__table__)


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
    return DomainClaim(
        row.domain,
        row.verified_at,
        row.verified_by,
        verification_record(row.domain, row.verification_token),
    )


def claims(unit: UnitOfWork, workspace_id: int) -> list[DomainClaim]:
    rows = unit.connection.execute(
        select(_D.domain, _D.verified_at, _D.verified_by, _D.verification_token)
        .where(_D.workspace_id == workspace_id)
        .order_by(_D.domain)
    ).all()
    return [
        DomainClaim(
            row.domain,
            row.verified_at,
            row.verified_by,
            verification_record(row.domain, row.verification_token),
        )
        for row in rows
    ]


def claim(unit: UnitOfWork, workspace_id: int, domain: str) -> None:
    """Claim ``domain`` (unverified) unless this workspace already has."""
    exists = unit.connection.execute(
        select(_D.domain).where(_D.workspace_id == workspace_id, _D.domain == domain)
    ).first()
    if exists is None:
        unit.connection.execute(
            insert(_DOMAINS).values(
                workspace_id=workspace_id,
                domain=domain,
                created_at=utcnow(),
                verification_token=secrets.token_urlsafe(24),
            )
        )


def replace_claims(unit: UnitOfWork, workspace_id: int, domains: Iterable[str]) -> None:
    """Claim exactly ``domains``: claims kept keep their verification, others are dropped."""
    connection = unit.connection
    wanted = set(domains)
    held = connection.execute(select(_D.domain).where(_D.workspace_id == workspace_id)).scalars()
    for dropped in set(held) - wanted:
        release(unit, workspace_id, dropped)
    for domain in sorted(wanted):
        claim(unit, workspace_id, domain)


def release(unit: UnitOfWork, workspace_id: int, domain: str) -> bool:
    """Drop the claim. Its members' sessions end: their REMOTE_USER was the email this
    verification vouched for, and those created at sign-in could no longer sign in."""
    result = unit.connection.execute(
        delete(_DOMAINS).where(_D.workspace_id == workspace_id, _D.domain == domain)
    )
    if result.rowcount:
        end_sessions_in_domain(unit, domain, _M.workspace_id == workspace_id)
    return bool(result.rowcount)


def key_domain(key: ColumnElement[str]) -> ColumnElement[str]:
    """The domain of a userName key as names.domain_of reads it, in SQL (SQLite and PostgreSQL
    alike): equal to a verified domain exactly when domain_of's answer is. The part after the
    last "@" (rtrim strips the trailing characters that are not "@"), then without its
    trailing spaces and then dots: a key may keep a space before the root's dot
    ("dan@newco.test ." keys to "dan@newco.test "), which domain_of strips and a LIKE
    '%@newco.test' does not see. Space is the only whitespace a key can hold there (NFKC maps
    the others to it, or names.clean refuses them)."""
    after_last_at = func.substr(key, func.length(func.rtrim(key, func.replace(key, "@", ""))) + 1)
    # Without an "@" that is the whole key, and with nothing before the last "@" domain_of
    # names no domain either: NULL, so neither "newco.test" nor "@newco.test" is in newco.test
    # (sign-in reads both as no address: a session refused for it would send it round again).
    return case((key.like("_%@%"), func.rtrim(func.rtrim(after_last_at, " "), ".")))


def end_sessions_in_domain(unit: UnitOfWork, domain: str, which: ColumnElement[bool]) -> None:
    """End the live sessions of the members ``which`` selects whose userName is at ``domain``
    (as sign-in and SCIM read it: key_domain)."""
    # The LIKE first: cheap, and true of every key key_domain puts at ``domain``.
    members = select(_M.id).where(
        which,
        _M.user_name_key.like(f"%@{domain}%"),
        key_domain(_M.user_name_key) == domain,
    )
    ended = (
        unit.connection.execute(
            update(_SESSIONS)
            .where(_SESSIONS.c.member_id.in_(members), _SESSIONS.c.ended_at.is_(None))
            .values(ended_at=utcnow())
            .returning(_SESSIONS.c.member_id)
        )
        .scalars()
        .all()
    )
    note_sessions_ended(unit.connection, ended)


def verifier_of(unit: UnitOfWork, domain: str) -> int | None:
    """The workspace that verified ``domain``, if any."""
    row = _VERIFIER.first(unit.connection, {"domain": domain})
    return int(row[0]) if row is not None else None


def mark_verified(unit: UnitOfWork, workspace_id: int, domain: str, *, by: str) -> None:
    """Record the verification. When another workspace verified the domain meanwhile, the
    partial unique index refuses it (IntegrityError, which the caller turns into DomainError)."""
    unit.connection.execute(
        update(_DOMAINS)
        .where(_D.workspace_id == workspace_id, _D.domain == domain, _D.verified_at.is_(None))
        .values(verified_at=utcnow(), verified_by=by)
    )
    # Other workspaces' members named in the domain (provisioned before it was verified) can no
    # longer sign in (members/lifecycle.py); their live sessions end now, not at expiry.
    end_sessions_in_domain(unit, domain, _M.workspace_id != workspace_id)


# Sign-in asks this on every assertion: built once, run on the driver's cursor.
_VERIFIER = DriverStatement(
    select(_D.workspace_id).where(_D.domain == bindparam("domain"), _D.verified_at.is_not(None))
)
