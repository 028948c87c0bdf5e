"""Owner-settings sessions: the rows behind the ``webwork_sso_settings`` cookie (admin/links.py).

A row is keyed by the SHA-256 of the random id the cookie carries. The cookie's signature and
expiry are checked first, from the cookie alone; the row decides whether the session is still
live, so ending it here ends every copy of the cookie on every worker at once.

Also here: whether a settings link was redeemed already (read-only; replay_cache.py redeems it in
the shared replay cache), so the page a link opens can say so before anyone presses its button.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import cast

from sqlalchemy import Table, delete, insert, select, update

from .db import UnitOfWork
from .models import SeenAssertion, SettingsSession
from .replay_cache import SETTINGS_LINK_PREFIX

PURGE_BATCH = 1000

_SESSIONS = cast(Table, SettingsSession.__table__)
_S = _SESSIONS.c


def start(
    unit: UnitOfWork, *, id_hash: str, workspace_id: int, now: dt.datetime, expires_at: dt.datetime
) -> None:
    """Record a new session; expired rows go in the same breath (starts are rare, the purge
    bounded), so the table needs no scheduler."""
    purge_expired(unit, now=now)
    unit.connection.execute(
        insert(_SESSIONS).values(
            id_hash=id_hash, workspace_id=workspace_id, created_at=now, expires_at=expires_at
        )
    )


def is_live(unit: UnitOfWork, *, id_hash: str, workspace_id: int, now: dt.datetime) -> bool:
    """The session exists for this workspace, has not ended and has not expired."""
    found = unit.connection.execute(
        select(_S.id_hash).where(
            _S.id_hash == id_hash,
            _S.workspace_id == workspace_id,
            _S.ended_at.is_(None),
            _S.expires_at > now,
        )
    ).first()
    return found is not None


def end(unit: UnitOfWork, id_hashes: Collection[str], *, now: dt.datetime) -> int:
    """End these sessions for good; how many were live."""
    if not id_hashes:
        return 0
    result = unit.connection.execute(
        update(_SESSIONS)
        .where(_S.id_hash.in_(list(id_hashes)), _S.ended_at.is_(None))
        .values(ended_at=now)
    )
    return int(result.rowcount or 0)


def purge_expired(unit: UnitOfWork, *, now: dt.datetime) -> int:
    """Delete up to a batch of expired rows (ended or not); how many went."""
    expired = select(_S.id_hash).where(_S.expires_at < now).limit(PURGE_BATCH)
    result = unit.connection.execute(
        delete(_SESSIONS).where(_S.id_hash.in_(expired.scalar_subquery()))
    )
    return int(result.rowcount or 0)


def link_redeemed(unit: UnitOfWork, *, workspace_id: int, nonce: str) -> bool:
    """Whether the settings link with this nonce was redeemed already (on any worker)."""
    seen = SeenAssertion.__table__.c
    found = unit.connection.execute(
        select(seen.assertion_id).where(
            seen.workspace_id == workspace_id,
            seen.assertion_id == SETTINGS_LINK_PREFIX + nonce,
        )
    ).first()
    return found is not None
