"""The audit log: provisioning changes (created, updated, deactivated, ...) and sign-ins."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable, Collection
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Row, Table, and_, delete, insert, or_, select, text, update

from ..logs import package_logger
from . import events as event_store
from .driver import DriverStatement
from .models import AuditEvent, utcnow

if TYPE_CHECKING:
    from .db import Database, UnitOfWork

log = package_logger(__name__)


def record(
    unit: UnitOfWork,
    *,
    workspace_id: int,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None,
    changes: dict[str, Any] | None = None,
) -> None:
    """Insert the event at once (Core: an audit row needs no unit of work) in the caller's
    transaction, so it commits or rolls back with the change it describes."""
    _INSERT.rows(
        unit.connection,
        {
            "workspace_id": workspace_id,
            "occurred_at": utcnow(),
            "actor": actor,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "changes": changes or {},
        },
    )


# Typed as the Table it is: mypy sees a declarative __table__ as a FromClause.
_AUDIT_EVENTS = cast(Table, AuditEvent.__table__)
_INSERT = DriverStatement(
    insert(_AUDIT_EVENTS),
    keys=("workspace_id", "occurred_at", "actor", "action", "target_type", "target_id", "changes"),
)

# The target_type of a row that counts repeated events (count below).
COUNTED = "counted"
COUNT_WINDOW = dt.timedelta(hours=1)


def count(
    unit: UnitOfWork,
    *,
    workspace_id: int,
    actor: str,
    action: str,
    key: str,
    changes: dict[str, Any],
    window: dt.timedelta = COUNT_WINDOW,
    now: dt.datetime | None = None,
) -> int:
    """Count one more event of ``key`` (say, a reason code) in the row that counts it for this
    workspace and action in the current window; the first one of a window inserts that row.
    Returns the count so far.

    For events anyone can cause at will (a flood of junk posted to a sign-in endpoint): a
    flood of any size writes at most one row per workspace, action, key and window. The row
    keeps ``changes`` as the latest event gave them, plus ``count`` and ``first_at``; its
    ``occurred_at`` is the latest event's, so it sorts among single events by its latest.
    Windows are fixed (aligned to the epoch) so that every worker agrees on them: the state
    is only in the database. Concurrent callers are serialised per counted row: by SQLite's
    write lock (write units begin IMMEDIATE), by a transaction-scoped advisory lock on
    PostgreSQL, so two workers never both insert the first row.
    """
    connection = unit.connection
    now = now or utcnow()
    span = window.total_seconds()
    opened = dt.datetime.fromtimestamp(now.timestamp() // span * span, dt.UTC)
    target_id = key[:36]
    if connection.dialect.name == "postgresql":
        name = f"audit-count|{workspace_id}|{action}|{target_id}".encode()
        lock = int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)
        connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})
    events = _AUDIT_EVENTS.c
    found = connection.execute(
        select(events.id, events.changes)
        .where(
            events.workspace_id == workspace_id,
            events.action == action,
            events.occurred_at >= opened,
            events.target_type == COUNTED,
            events.target_id == target_id,
        )
        .order_by(events.id.desc())
        .limit(1)
    ).first()
    if found is None:
        _INSERT.rows(
            connection,
            {
                "workspace_id": workspace_id,
                "occurred_at": now,
                "actor": actor,
                "action": action,
                "target_type": COUNTED,
                "target_id": target_id,
                "changes": {**changes, "count": 1, "first_at": now.isoformat()},
            },
        )
        return 1
    previous: dict[str, Any] = found.changes or {}
    total = int(previous.get("count") or 0) + 1
    connection.execute(
        update(_AUDIT_EVENTS)
        .where(events.id == found.id)
        .values(
            occurred_at=now,
            actor=actor,
            changes={**changes, "count": total, "first_at": previous.get("first_at")},
        )
    )
    return total


def latest(
    unit: UnitOfWork,
    workspace_id: int,
    actions: Collection[str],
    *,
    limit: int = 20,
    since: dt.datetime | None = None,
    counted: bool | None = None,
) -> list[AuditEvent]:
    """The newest events of the given kinds (the settings page's diagnostics), newest first.

    ``counted``: True for the rows :func:`count` keeps only, False for single events only,
    None for both."""
    query = select(AuditEvent).where(
        AuditEvent.workspace_id == workspace_id, AuditEvent.action.in_(list(actions))
    )
    if counted is not None:
        query = query.where(
            (AuditEvent.target_type == COUNTED) if counted else (AuditEvent.target_type != COUNTED)
        )
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    query = query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(limit)
    return list(unit.session.scalars(query))


def find(
    unit: UnitOfWork,
    workspace_id: int,
    action: str,
    target_id: str,
    *,
    since: dt.datetime,
) -> AuditEvent | None:
    """The newest event of ``action`` about ``target_id`` since ``since`` (a test sign-in's
    result, found by its nonce), or None."""
    query = (
        select(AuditEvent)
        .where(
            AuditEvent.workspace_id == workspace_id,
            AuditEvent.action == action,
            AuditEvent.target_id == target_id,
            AuditEvent.occurred_at >= since,
        )
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(1)
    )
    return unit.session.scalars(query).first()


def export_page(
    unit: UnitOfWork,
    workspace_id: int,
    *,
    since: dt.datetime,
    after: tuple[dt.datetime, int] | None = None,
    limit: int = 500,
) -> list[Row[Any]]:
    """The workspace's events from ``since`` on, oldest first, ``limit`` at a time: the next
    page starts after the (occurred_at, id) of the last row of the one before (keyset
    pagination: each page is one index range, however far into the log it is).

    A counted row (:func:`count`) moves forward in time as it counts: if it counts again while
    an export runs, it can be exported a second time, with its later count."""
    events = _AUDIT_EVENTS.c
    query = select(
        events.id,
        events.occurred_at,
        events.actor,
        events.action,
        events.target_type,
        events.target_id,
        events.changes,
    ).where(events.workspace_id == workspace_id, events.occurred_at >= since)
    if after is not None:
        at, last_id = after
        # Spelled out rather than as a row value, so the index on (workspace_id, occurred_at)
        # bounds the scan on every backend.
        query = query.where(
            events.occurred_at >= at,
            or_(events.occurred_at > at, and_(events.occurred_at == at, events.id > last_id)),
        )
    query = query.order_by(events.occurred_at, events.id).limit(limit)
    return list(unit.connection.execute(query))


def purge(unit: UnitOfWork, *, before: dt.datetime, limit: int = 1000) -> int:
    """Delete up to ``limit`` of the oldest events that happened before ``before``; how many."""
    # By id, which grows with time: the walk stops after ``limit`` old rows, not at the end.
    oldest = (
        select(_AUDIT_EVENTS.c.id)
        .where(_AUDIT_EVENTS.c.occurred_at < before)
        .order_by(_AUDIT_EVENTS.c.id)
        .limit(limit)
    )
    result = unit.connection.execute(
        delete(_AUDIT_EVENTS).where(_AUDIT_EVENTS.c.id.in_(oldest.scalar_subquery()))
    )
    return result.rowcount


class Retention:
    """Keeps the audit log, and the host's lifecycle events (store/events.py), to ``days``
    days, with no scheduler: at most every ``interval`` seconds per process, the request that
    calls :meth:`maybe_purge` deletes expired rows of each, ``batch`` rows per transaction
    (short write locks), ``max_batches`` at the most of each."""

    def __init__(
        self,
        database: Database,
        *,
        days: int,
        interval: float = 600.0,
        batch: int = 1000,
        max_batches: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.retention = dt.timedelta(days=days)
        self.interval = interval
        self.batch = batch
        self.max_batches = max_batches
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def maybe_purge(self) -> int:
        """Purge when due; how many rows went (0 when not due, or on any error)."""
        with self._lock:
            now = self._clock()
            if now < self._next:
                return 0
            self._next = now + self.interval
        cutoff = utcnow() - self.retention
        deleted = 0
        purges: tuple[tuple[Callable[..., int], str], ...] = (
            (purge, "audit events"),
            (event_store.purge, "lifecycle events"),
        )
        for purging, what in purges:
            try:
                for _ in range(self.max_batches):
                    count = self.database.run(partial(purging, before=cutoff, limit=self.batch))
                    deleted += count
                    if count < self.batch:
                        break
            except Exception:  # the request that happened to run the purge must not fail for it
                log.warning("could not purge old %s", what, exc_info=True)
        return deleted
