"""Member queries. Filters arrive as SQL expressions (scim/filters.py) and run in the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from ..errors import NotFound
from .models import Member, Membership


def visible(workspace_id: int) -> ColumnElement[bool]:
    """Members SCIM can see: this workspace's, not deleted."""
    return (Member.workspace_id == workspace_id) & Member.deleted_at.is_(None)


def page(
    session: Session,
    workspace_id: int,
    *,
    where: ColumnElement[bool] | None,
    order_by: Sequence[Any],
    offset: int,
    limit: int,
) -> tuple[int, list[Member]]:
    """(total matching, one page of members) for a SCIM list or search."""
    condition = visible(workspace_id)
    if where is not None:
        condition = condition & where
    total = session.scalar(select(func.count()).select_from(Member).where(condition)) or 0
    if limit == 0 or offset >= total:
        return total, []
    query = select(Member).where(condition).order_by(*order_by, Member.id).offset(offset).limit(limit)
    return total, list(session.scalars(query))


def get(session: Session, workspace_id: int, member_id: str, *, for_update: bool = False) -> Member:
    query = select(Member).where(visible(workspace_id), Member.id == member_id)
    if for_update:
        # Concurrent writers of one member queue here instead of racing on its version.
        query = query.with_for_update()
    member = session.scalar(query)
    if member is None:
        raise NotFound("member", member_id)
    return member


def existing_ids(session: Session, workspace_id: int, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are members SCIM can see in this workspace."""
    if not ids:
        return set()
    query = select(Member.id).where(visible(workspace_id), Member.id.in_(ids))
    return set(session.scalars(query))


def memberships(session: Session, member_id: str) -> list[Membership]:
    return list(session.scalars(select(Membership).where(Membership.member_id == member_id)))
