"""The workspace a sign-in would use: may it use SSO, which IdP (by version) it trusts, its
IdP's metadata, and which workspace verified an address's domain (the SSO page's lookup).

Read on every SAML request (the AuthnRequest, the metadata check, the ACS through
store/sign_in.py's lookup), so its statements are built once and run on the driver's cursor.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select

from .db import UnitOfWork
from .driver import DriverStatement
from .models import SSO_PLANS, IdentityProvider, Workspace, WorkspaceDomain


def sso_workspace_for_domain(unit: UnitOfWork, domain: str) -> str | None:
    """The slug of the workspace that verified ``domain``, when SSO is usable there."""
    return unit.connection.execute(
        select(Workspace.slug)
        .join(WorkspaceDomain, WorkspaceDomain.workspace_id == Workspace.id)
        .join(IdentityProvider, IdentityProvider.workspace_id == Workspace.id)
        .where(
            WorkspaceDomain.domain == domain,
            WorkspaceDomain.verified_at.is_not(None),
            Workspace.sso_enabled.is_(True),
            Workspace.plan.in_(SSO_PLANS),
        )
    ).scalar_one_or_none()


_IDPS = IdentityProvider.__table__


@dataclasses.dataclass(frozen=True, slots=True)
class SignInTarget:
    """A workspace as sign-in sees it: may it use SSO, and which IdP (by version) it trusts."""

    workspace_id: int
    slug: str
    plan: str
    sso_enabled: bool
    idp_entity_id: str | None
    idp_version: str | None  # changes whenever the stored metadata or IdP settings change
    allow_idp_initiated: bool
    sp_version: int  # changes whenever the SP's keys or the owner's SAML choices change
    # When the workspace was made: a workspace deleted and made again under the same slug (on
    # SQLite perhaps with the same id) starts its versions afresh, and must never be served
    # its predecessor's SP, keys included (saml/sp.py caches by all of these).
    created_at: dt.datetime
    # The owner's attribute mapping (attribute_map.py), as (key, attribute name) pairs.
    attribute_map: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> SignInTarget:
        """From the first :data:`TARGET_COLUMNS` columns of a row of :data:`TARGET_SELECT`."""
        workspace_id, slug, plan, sso_enabled, entity_id, fetched_at, modified_at = row[:7]
        allow_unsolicited, sp_version, created_at, attribute_map = row[7:TARGET_COLUMNS]
        version = (
            f"{fetched_at.isoformat()}|{modified_at.isoformat()}" if entity_id is not None else None
        )
        return cls(
            workspace_id,
            slug,
            plan,
            bool(sso_enabled),
            entity_id,
            version,
            bool(allow_unsolicited),
            int(sp_version),
            created_at,
            _pairs(attribute_map),
        )


def _pairs(stored: Any) -> tuple[tuple[str, str], ...]:
    """A stored JSON object as sorted (key, value) pairs of strings. Read on the driver's cursor:
    SQLite gives the JSON text, PostgreSQL's driver the decoded object."""
    if isinstance(stored, str | bytes):
        try:
            stored = json.loads(stored)
        except ValueError:
            return ()
    if not isinstance(stored, dict):
        return ()
    return tuple(sorted((k, v) for k, v in stored.items() if isinstance(v, str) and v))


# Statements built once (on this path, building them costs more than running them), run on the
# driver's cursor (driver.py: SQLAlchemy's execution layer cost more than the SQL). Public:
# store/sign_in.py's ACS lookup reads the same columns, joined with the claimed member.
TARGET_SELECT = (
    select(
        Workspace.id,
        Workspace.slug,
        Workspace.plan,
        Workspace.sso_enabled,
        _IDPS.c.entity_id,
        _IDPS.c.fetched_at,
        _IDPS.c.modified_at,
        _IDPS.c.allow_idp_initiated,
        Workspace.sp_version,
        Workspace.created_at,
        Workspace.attribute_map,
    )
    .outerjoin(_IDPS, _IDPS.c.workspace_id == Workspace.id)
    .where(Workspace.slug == bindparam("slug"))
)
TARGET_COLUMNS = len(TARGET_SELECT.selected_columns)
_TARGET_QUERY = DriverStatement(TARGET_SELECT)
# A sign-in that will start a session holds the workspace row (FOR SHARE) until it commits:
# switching SSO off (which ends every session of the workspace) then waits for it, or it waits
# for the switch and sees SSO off, so no session can slip in between the two on PostgreSQL.
# SQLite runs one writer at a time and ignores the clause.
_LOCKED_TARGET_QUERY = DriverStatement(TARGET_SELECT.with_for_update(read=True, of=Workspace))


def sign_in_target(unit: UnitOfWork, slug: str, *, lock: bool = False) -> SignInTarget | None:
    """The workspace sign-in at ``slug`` would use; ``lock``: hold its row until the caller's
    transaction ends (a sign-in that may start a session; a write transaction only)."""
    query = _LOCKED_TARGET_QUERY if lock else _TARGET_QUERY
    row = query.first(unit.connection, {"slug": slug.strip().lower()})
    return SignInTarget.from_row(row) if row is not None else None


def idp_metadata_xml(unit: UnitOfWork, workspace_id: int) -> str | None:
    return unit.connection.execute(
        select(_IDPS.c.metadata_xml).where(_IDPS.c.workspace_id == workspace_id)
    ).scalar_one_or_none()
