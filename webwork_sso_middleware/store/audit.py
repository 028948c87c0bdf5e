"""The audit log of provisioning events: created, updated, deactivated, reactivated, deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AuditEvent


def record(
    session: Session,
    *,
    workspace_id: int,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None,
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        workspace_id=workspace_id,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        changes=changes or {},
    )
    session.add(event)
    return event


def recent(session: Session, workspace_id: int, *, limit: int = 100) -> list[AuditEvent]:
    query = (
        select(AuditEvent)
        .where(AuditEvent.workspace_id == workspace_id)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
