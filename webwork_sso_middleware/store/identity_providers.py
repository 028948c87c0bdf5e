"""A workspace's SAML IdP as stored: the last good copy of its metadata and its refresh state.

The store only keeps what it is given. Parsing, fetching and deciding when to refresh are
idp_metadata's (parsing.py, refresh.py): it hands over a :class:`MetadataCopy` already checked,
with the values the row keeps (entity ID, XML, validUntil) and the summary the audit log compares.

A refresh is claimed first: :func:`claim_refresh` moves ``refresh_after`` forward in a short
write transaction, so of many workers that find the metadata due at once, only one fetches. Its
result is kept by :func:`store_refreshed` or noted by :func:`record_refresh_failure`, each only
while the claim is still current.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select, update

from . import audit
from .db import UnitOfWork
from .models import IdentityProvider

# How long a claimed refresh is left to its worker before another may try: well above a
# fetch's worst case (two timeouts), so a worker that died only delays the refresh.
REFRESH_CLAIM = dt.timedelta(minutes=5)
# After a failure, wait this long before fetching again: a dead IdP is not fetched per login.
RETRY_AFTER_FAILURE = dt.timedelta(minutes=15)
REFRESH_ACTOR = "system:metadata-refresh"
MAX_METADATA_URL = 2048  # the identity_providers.metadata_url column


@dataclasses.dataclass(frozen=True)
class MetadataCopy:
    """A checked copy of an IdP's metadata, as the caller parsed it: what the row keeps."""

    entity_id: str
    xml: str = dataclasses.field(repr=False)  # the IdP's EntityDescriptor
    valid_until: dt.datetime | None
    # What an owner compares between two versions (entity ID, SSO URLs, certificates): the
    # audit record's "after"; the caller gives the stored copy's as "before".
    summary: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class RefreshClaim:
    """What a worker saw when it claimed a refresh: its result applies only if still current."""

    workspace_id: int
    metadata_url: str
    fetched_at: dt.datetime


# -- functions on a session ------------------------------------------------------------------


def find(
    unit: UnitOfWork, workspace_id: int, *, for_update: bool = False
) -> IdentityProvider | None:
    return unit.session.get(IdentityProvider, workspace_id, with_for_update=for_update or None)


def configure(
    unit: UnitOfWork,
    workspace_id: int,
    copy: MetadataCopy,
    *,
    before: Mapping[str, Any] | None,
    metadata_url: str | None,
    fetched_at: dt.datetime,
    refresh_after: dt.datetime | None,
    allow_idp_initiated: bool | None,
    actor: str,
) -> IdentityProvider:
    """Store checked metadata as the workspace's IdP, replacing any earlier one.

    ``before`` is the summary of the copy it replaces (None: none, or one no longer readable);
    ``refresh_after`` is None for pasted metadata, which has nowhere to be refreshed from.
    """
    session = unit.session
    row = find(unit, workspace_id, for_update=True)
    if row is None:
        row = IdentityProvider(workspace_id=workspace_id, allow_idp_initiated=True)
        session.add(row)
    row.entity_id = copy.entity_id
    row.metadata_url = metadata_url
    row.metadata_xml = copy.xml
    row.fetched_at = fetched_at
    row.valid_until = copy.valid_until
    row.refresh_after = refresh_after
    row.last_refresh_error = row.last_refresh_error_at = None
    if allow_idp_initiated is not None:
        row.allow_idp_initiated = allow_idp_initiated
    session.flush()
    audit.record(
        unit, workspace_id=workspace_id, actor=actor, action="idp_configured",
        target_type="idp", target_id=None,
        changes={"metadata_url": metadata_url, "before": before, "after": dict(copy.summary),
                 "allow_idp_initiated": row.allow_idp_initiated},
    )  # fmt: skip
    return row


def set_allow_idp_initiated(
    unit: UnitOfWork, workspace_id: int, allow: bool, *, actor: str
) -> IdentityProvider | None:
    row = find(unit, workspace_id, for_update=True)
    if row is not None and row.allow_idp_initiated != allow:
        row.allow_idp_initiated = allow
        audit.record(
            unit,
            workspace_id=workspace_id,
            actor=actor,
            action="idp_configured",
            target_type="idp",
            target_id=None,
            changes={"allow_idp_initiated": allow},
        )
    return row


def is_due(unit: UnitOfWork, workspace_id: int, now: dt.datetime) -> bool:
    row = unit.session.execute(
        select(IdentityProvider.metadata_url, IdentityProvider.refresh_after).where(
            IdentityProvider.workspace_id == workspace_id
        )
    ).first()
    if row is None or row.metadata_url is None:
        return False
    return row.refresh_after is None or row.refresh_after <= now


def claim_refresh(unit: UnitOfWork, workspace_id: int, now: dt.datetime) -> RefreshClaim | None:
    """Claim a due refresh for this worker, or None when it is not due or another has it.

    One conditional UPDATE: writers queue on the row (PostgreSQL) or the database (SQLite), and
    each re-checks ``refresh_after``, so exactly one of them sees it due and moves it on.
    """
    row = unit.session.execute(
        update(IdentityProvider)
        .where(
            IdentityProvider.workspace_id == workspace_id,
            IdentityProvider.metadata_url.is_not(None),
            or_(IdentityProvider.refresh_after.is_(None), IdentityProvider.refresh_after <= now),
        )
        .values(refresh_after=now + REFRESH_CLAIM)
        .returning(IdentityProvider.metadata_url, IdentityProvider.fetched_at),
        execution_options={"synchronize_session": False},
    ).first()
    if row is None:
        return None
    return RefreshClaim(workspace_id, row.metadata_url, row.fetched_at)


def still_current(unit: UnitOfWork, claim: RefreshClaim) -> IdentityProvider | None:
    """The row, locked, when nobody changed the IdP since the claim; else None."""
    # The owner may have set another IdP (or the same one again) while we fetched: theirs wins.
    row = find(unit, claim.workspace_id, for_update=True)
    if row is None or row.metadata_url != claim.metadata_url or row.fetched_at != claim.fetched_at:
        return None
    return row


def store_refreshed(
    unit: UnitOfWork,
    claim: RefreshClaim,
    copy: MetadataCopy,
    now: dt.datetime,
    *,
    refresh_after: dt.datetime,
    before: Mapping[str, Any] | None,
) -> bool:
    """Keep freshly fetched metadata as the last good copy; False if the claim went stale.

    ``before`` is the summary of the stored copy (read under :func:`still_current`'s lock).
    """
    row = still_current(unit, claim)
    if row is None:
        return False
    after = dict(copy.summary)
    previous_error = row.last_refresh_error
    row.entity_id = copy.entity_id
    row.metadata_xml = copy.xml
    row.fetched_at = now
    row.valid_until = copy.valid_until
    row.refresh_after = refresh_after
    row.last_refresh_error = row.last_refresh_error_at = None
    # Worth a line in the log: a certificate rollover or a recovery, not every daily fetch.
    if before != after or previous_error:
        audit.record(
            unit, workspace_id=claim.workspace_id, actor=REFRESH_ACTOR,
            action="metadata_refreshed", target_type="idp", target_id=None,
            changes={"metadata_url": claim.metadata_url, "before": before, "after": after,
                     "recovered_from": previous_error},
        )  # fmt: skip
    return True


def record_refresh_failure(
    unit: UnitOfWork, claim: RefreshClaim, reason: str, now: dt.datetime
) -> bool:
    """Note a failed refresh; the last good copy stays in use. False if the claim went stale."""
    row = still_current(unit, claim)
    if row is None:
        return False
    expired = row.valid_until is not None and row.valid_until <= now
    if expired:
        assert row.valid_until is not None
        reason += (
            f"; the stored metadata expired at {_iso(row.valid_until)} and stays in use"
            " until a refresh succeeds"
        )
    row.last_refresh_error = reason
    row.last_refresh_error_at = now
    row.refresh_after = now + RETRY_AFTER_FAILURE
    audit.record(
        unit, workspace_id=claim.workspace_id, actor=REFRESH_ACTOR,
        action="metadata_refresh_failed", target_type="idp", target_id=None,
        changes={"metadata_url": claim.metadata_url, "error": reason,
                 "last_good_fetched_at": _iso(row.fetched_at),
                 "valid_until": _iso_or_none(row.valid_until),
                 "expired": expired, "retry_after": _iso(row.refresh_after)},
    )  # fmt: skip
    return True


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _iso_or_none(value: dt.datetime | None) -> str | None:
    return _iso(value) if value is not None else None
