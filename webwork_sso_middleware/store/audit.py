"""The audit log of provisioning events: created, updated, deactivated, reactivated, deleted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.orm import Session

from .driver import DriverStatement
from .models import AuditEvent, utcnow


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
