"""The audit log: provisioning changes (created, updated, deactivated, ...) and sign-ins."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, delete, insert, select
from sqlalchemy.orm import Session

from ..logs import package_logger
from .driver import DriverStatement
from .models import AuditEvent, utcnow

if TYPE_CHECKING:
    from .db import Database

log = package_logger(__name__)


def record(
    db: Session | Connection,
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
    connection = db.connection() if isinstance(db, Session) else db
    _INSERT.rows(connection, {
        "workspace_id": workspace_id,
        "occurred_at": utcnow(),
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "changes": changes or {},
    })


# Typed as the Table it is: mypy sees a declarative __table__ as a FromClause.
_AUDIT_EVENTS = cast(Table, AuditEvent.__table__)
_INSERT = DriverStatement(insert(_AUDIT_EVENTS), keys=(
    "workspace_id", "occurred_at", "actor", "action", "target_type", "target_id", "changes"))



def latest(
    session: Session,
    workspace_id: int,
    actions: Collection[str],
    *,
    limit: int = 20,
    since: dt.datetime | None = None,
) -> list[AuditEvent]:
    """The newest events of the given kinds (the settings page's diagnostics), newest first."""
    query = select(AuditEvent).where(
        AuditEvent.workspace_id == workspace_id, AuditEvent.action.in_(list(actions))
    )
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    query = query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(limit)
    return list(session.scalars(query))


def purge(connection: Connection, *, before: dt.datetime, limit: int = 1000) -> int:
    """Delete up to ``limit`` of the oldest events that happened before ``before``; how many."""
    # By id, which grows with time: the walk stops after ``limit`` old rows, not at the end.
    oldest = (select(_AUDIT_EVENTS.c.id).where(_AUDIT_EVENTS.c.occurred_at < before)
              .order_by(_AUDIT_EVENTS.c.id).limit(limit))
    result = connection.execute(delete(_AUDIT_EVENTS).where(
        _AUDIT_EVENTS.c.id.in_(oldest.scalar_subquery())))
    return result.rowcount


class Retention:
    """Keeps the audit log to ``days`` days, with no scheduler: at most every ``interval``
    seconds per process, the request that calls :meth:`maybe_purge` deletes expired events,
    ``batch`` rows per transaction (short write locks), ``max_batches`` at the most."""

    def __init__(self, database: Database, *, days: int, interval: float = 600.0,
                 batch: int = 1000, max_batches: int = 10,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.database = database
        self.retention = dt.timedelta(days=days)
        self.interval = interval
        self.batch = batch
        self.max_batches = max_batches
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def maybe_purge(self) -> int:
        """Purge when due; how many events went (0 when not due, or on any error)."""
        with self._lock:
            now = self._clock()
            if now < self._next:
                return 0
            self._next = now + self.interval
        cutoff = utcnow() - self.retention
        deleted = 0
        try:
            for _ in range(self.max_batches):
                count = self.database.run_unit(
                    lambda unit: purge(unit.connection, before=cutoff, limit=self.batch))
                deleted += count
                if count < self.batch:
                    break
        except Exception:  # the request that happened to run the purge must not fail for it
            log.warning("could not purge old audit events", exc_info=True)
        return deleted
