"""The rows of each workspace's SP keys (models.SpKey) and its SAML choices.

Only persistence: keys are made and sealed one floor up (sp_keys/), which hands this module the
certificate and the sealed private key. Every change bumps ``workspaces.sp_version``, so each
worker rebuilds the workspace's SP (saml/sp.py) on its next request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import cast

from sqlalchemy import Table, delete, select, update

from .db import UnitOfWork
from .models import SpKey, Workspace, utcnow

NEXT, CURRENT, PREVIOUS = "next", "current", "previous"
# Typed as the Tables they are: mypy sees a declarative __table__ as a FromClause.
_KEYS = cast(Table, SpKey.__table__)
_WORKSPACES = cast(Table, Workspace.__table__)


@dataclasses.dataclass(frozen=True, slots=True)
class StoredSpKey:
    state: str
    certificate_pem: str
    encrypted_private_key: str
    created_at: dt.datetime
    activated_at: dt.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class SamlChoices:
    """The owner's SAML choices and the version of everything the workspace's SP is built from."""

    workspace_id: int
    sign_authn_requests: bool
    require_encrypted_assertions: bool
    sp_version: int


def keys(unit: UnitOfWork, workspace_id: int) -> dict[str, StoredSpKey]:
    """The workspace's keys by state (at most one per state)."""
    rows = unit.connection.execute(
        select(
            SpKey.state,
            SpKey.certificate_pem,
            SpKey.encrypted_private_key,
            SpKey.created_at,
            SpKey.activated_at,
        ).where(SpKey.workspace_id == workspace_id)
    )
    return {row.state: StoredSpKey(*row) for row in rows}


def choices(unit: UnitOfWork, workspace_id: int) -> SamlChoices | None:
    row = unit.connection.execute(
        select(
            Workspace.id,
            Workspace.sign_authn_requests,
            Workspace.require_encrypted_assertions,
            Workspace.sp_version,
        ).where(Workspace.id == workspace_id)
    ).first()
    return SamlChoices(row[0], bool(row[1]), bool(row[2]), int(row[3])) if row else None


def locked_workspace_id(unit: UnitOfWork, slug: str) -> int | None:
    """The workspace's id, its row held until the transaction ends: key changes of one
    workspace run one at a time on every backend (SQLite runs one writer at a time anyway)."""
    return unit.connection.execute(
        select(Workspace.id).where(Workspace.slug == slug.strip().lower()).with_for_update()
    ).scalar_one_or_none()


def insert_key(
    unit: UnitOfWork,
    workspace_id: int,
    state: str,
    *,
    certificate_pem: str,
    encrypted_private_key: str,
) -> None:
    """Add a key in ``state`` (the caller holds the workspace row and checked the state is
    free). The first key bumps the version too: a worker may have built the SP without it."""
    now = utcnow()
    unit.connection.execute(
        _KEYS.insert().values(
            workspace_id=workspace_id,
            state=state,
            certificate_pem=certificate_pem,
            encrypted_private_key=encrypted_private_key,
            created_at=now,
            activated_at=now if state == CURRENT else None,
        )
    )
    bump_version(unit, workspace_id)


def activate_next(unit: UnitOfWork, workspace_id: int) -> None:
    """next -> current, current -> previous; a previous key still held is deleted (retired)."""
    table = _KEYS
    where = table.c.workspace_id == workspace_id
    unit.connection.execute(delete(table).where(where, table.c.state == PREVIOUS))
    unit.connection.execute(
        update(table).where(where, table.c.state == CURRENT).values(state=PREVIOUS)
    )
    unit.connection.execute(
        update(table)
        .where(where, table.c.state == NEXT)
        .values(state=CURRENT, activated_at=utcnow())
    )
    bump_version(unit, workspace_id)


def delete_key(unit: UnitOfWork, workspace_id: int, state: str) -> bool:
    """Delete the key in ``state`` (its private key is gone for good); False if none."""
    table = _KEYS
    deleted = unit.connection.execute(
        delete(table).where(table.c.workspace_id == workspace_id, table.c.state == state)
    ).rowcount
    if deleted:
        bump_version(unit, workspace_id)
    return bool(deleted)


def set_choices(
    unit: UnitOfWork,
    workspace_id: int,
    *,
    sign_authn_requests: bool | None = None,
    require_encrypted_assertions: bool | None = None,
) -> None:
    values: dict[str, bool] = {}
    if sign_authn_requests is not None:
        values["sign_authn_requests"] = sign_authn_requests
    if require_encrypted_assertions is not None:
        values["require_encrypted_assertions"] = require_encrypted_assertions
    if values:
        unit.connection.execute(
            update(_WORKSPACES).where(_WORKSPACES.c.id == workspace_id).values(**values)
        )
        bump_version(unit, workspace_id)


def bump_version(unit: UnitOfWork, workspace_id: int) -> None:
    table = _WORKSPACES
    unit.connection.execute(
        update(table).where(table.c.id == workspace_id).values(sp_version=table.c.sp_version + 1)
    )


def workspace_id(unit: UnitOfWork, slug: str) -> int | None:
    return unit.connection.execute(
        select(Workspace.id).where(Workspace.slug == slug.strip().lower())
    ).scalar_one_or_none()
