"""SAML sign-in state: pending AuthnRequests, the assertion replay cache, members at login.

All of it lives in the database, so a login started on one worker completes on any other
and a replayed assertion is refused by every worker.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import (
    Member,
    PendingAuthnRequest,
    SeenAssertion,
    Workspace,
    WorkspaceDomain,
    utcnow,
)

REQUEST_LIFETIME = dt.timedelta(minutes=10)


def new_relay_state() -> str:
    return secrets.token_urlsafe(24)


def remember_request(session: Session, *, workspace_id: int, request_id: str,
                     relay_state: str, next_path: str) -> None:
    now = utcnow()
    # Opportunistic clean-up keeps both tables small without a scheduler.
    session.execute(delete(PendingAuthnRequest).where(PendingAuthnRequest.expires_at < now))
    session.execute(delete(SeenAssertion).where(SeenAssertion.expires_at < now))
    session.add(PendingAuthnRequest(
        id=request_id, workspace_id=workspace_id, relay_state=relay_state,
        next_path=next_path, created_at=now, expires_at=now + REQUEST_LIFETIME,
    ))


def outstanding(session: Session, workspace_id: int, request_id: str | None) -> dict[str, str]:
    """{request id: next path} when ``request_id`` is a live, unused request of the workspace."""
    if not request_id:
        return {}
    row = session.execute(
        select(PendingAuthnRequest.id, PendingAuthnRequest.next_path).where(
            PendingAuthnRequest.id == request_id,
            PendingAuthnRequest.workspace_id == workspace_id,
            PendingAuthnRequest.consumed_at.is_(None),
            PendingAuthnRequest.expires_at > utcnow(),
        )
    ).first()
    return {row.id: row.next_path} if row else {}


def consume_request(session: Session, workspace_id: int, request_id: str) -> bool:
    """Mark the request used; False when another response got there first."""
    result = session.execute(
        update(PendingAuthnRequest)
        .where(PendingAuthnRequest.id == request_id,
               PendingAuthnRequest.workspace_id == workspace_id,
               PendingAuthnRequest.consumed_at.is_(None))
        .values(consumed_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def next_for_relay_state(session: Session, workspace_id: int, relay_state: str) -> str | None:
    return session.scalar(select(PendingAuthnRequest.next_path).where(
        PendingAuthnRequest.workspace_id == workspace_id,
        PendingAuthnRequest.relay_state == relay_state,
    ))


def remember_assertion(session: Session, *, workspace_id: int, assertion_id: str,
                       expires_at: dt.datetime) -> bool:
    """Record an assertion ID; False when it was seen before (a replay)."""
    try:
        with session.begin_nested():
            session.add(SeenAssertion(workspace_id=workspace_id, assertion_id=assertion_id,
                                      expires_at=expires_at))
    except IntegrityError:
        return False
    return True


def member_for_login(session: Session, workspace_id: int, email: str) -> Member | None:
    """The member (SCIM-visible, active or not) whose userName or email is ``email``."""
    key = email.lower()
    return session.scalar(
        select(Member)
        .where(Member.workspace_id == workspace_id, Member.deleted_at.is_(None),
               or_(Member.user_name_key == key, Member.email_key == key))
        .order_by((Member.user_name_key == key).desc())
        .limit(1)
        .with_for_update()
    )


def workspaces_for_email(session: Session, email: str) -> list[Workspace]:
    """Workspaces with SSO on where ``email`` is a member, else those owning its domain."""
    key = email.strip().lower()
    usable = and_(Workspace.sso_enabled.is_(True), Workspace.plan.in_(("plus", "premium")))
    members = select(Member.workspace_id).where(
        Member.deleted_at.is_(None), or_(Member.user_name_key == key, Member.email_key == key))
    found = list(session.scalars(
        select(Workspace).where(usable, Workspace.id.in_(members)).order_by(Workspace.name)))
    if found:
        return found
    domain = key.rpartition("@")[2]
    by_domain = select(WorkspaceDomain.workspace_id).where(WorkspaceDomain.domain == domain)
    return list(session.scalars(
        select(Workspace).where(usable, Workspace.id.in_(by_domain)).order_by(Workspace.name)))


