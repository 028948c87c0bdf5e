"""Group queries and membership changes, done in SQL so large groups never load whole."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, insert, select, update

from ..errors import NotFound
from . import scim_totals
from .db import UnitOfWork
from .models import Group, Member, Membership, ScimTotal


def page(
    unit: UnitOfWork,
    workspace_id: int,
    *,
    where: ColumnElement[bool] | None,
    order_by: Sequence[Any],
    offset: int,
    limit: int,
) -> tuple[int, list[Group]]:
    """(total matching, one page of groups). Unfiltered, the total is the workspace's count in
    ``scim_totals`` and a page past the middle is read from the end (store/scim_totals.py)."""
    condition = Group.workspace_id == workspace_id
    terms = [*order_by, Group.id]
    if where is not None:
        condition = condition & where
        total = unit.session.scalar(select(func.count()).select_from(Group).where(condition)) or 0
        if limit == 0 or offset >= total:
            return total, []
        query = select(Group).where(condition).order_by(*terms).offset(offset).limit(limit)
        return total, list(unit.session.scalars(query))
    total = scim_totals.read_total(unit, workspace_id, ScimTotal.groups)
    walk = scim_totals.window(total, offset, limit)
    if walk is None:
        return total, []
    # As store/members.py: the total read again beside the rows; if it moved, read forwards.
    in_rows: Any = scim_totals.total_of(workspace_id, ScimTotal.groups)
    rows: list[Any]
    if walk.reverse:
        backwards = select(Group, in_rows).where(condition)
        backwards = backwards.order_by(*scim_totals.reversed_order(terms))
        rows = list(unit.session.execute(backwards.offset(walk.offset).limit(walk.limit)))[::-1]
        if rows and rows[0][1] == total:
            return total, [row[0] for row in rows]
    forwards = select(Group, in_rows).where(condition).order_by(*terms)
    rows = list(unit.session.execute(forwards.offset(offset).limit(limit)))
    return (rows[0][1] if rows else total), [row[0] for row in rows]


def get(unit: UnitOfWork, workspace_id: int, group_id: str, *, for_update: bool = False) -> Group:
    query = select(Group).where(Group.workspace_id == workspace_id, Group.id == group_id)
    if for_update:
        # Concurrent writers of one group queue here instead of racing on its version.
        query = query.with_for_update()
    group = unit.session.scalar(query)
    if group is None:
        raise NotFound("group", group_id)
    return group


class Listed(NamedTuple):
    """One of a group's members: its id and name, and the sub-attributes a client sent."""

    id: str
    name: str  # the member's displayName, else userName: ``display`` when none was sent
    sent: SubAttributes | None  # None for rows kept before sub-attributes were (see models)


class SubAttributes(NamedTuple):
    """A ``members`` value's sub-attributes besides ``value``, as sent (None: not sent)."""

    display: str | None = None
    type: str | None = None
    ref: str | None = None


def members_of(unit: UnitOfWork, group_ids: Sequence[str]) -> dict[str, list[Listed]]:
    """group id -> its members, for several groups in one query."""
    result: dict[str, list[Listed]] = {gid: [] for gid in group_ids}
    if not group_ids:
        return result
    rows = unit.session.execute(
        select(
            Membership.group_id,
            Member.id,
            func.coalesce(Member.display_name, Member.user_name),
            Membership.as_sent,
            Membership.display,
            Membership.type,
            Membership.ref,
        )
        .join(Member, Member.id == Membership.member_id)
        .where(Membership.group_id.in_(group_ids), Member.deleted_at.is_(None))
        .order_by(Membership.group_id, Membership.created_at, Member.id)
    )
    for group_id, member_id, name, as_sent, display, kind, ref in rows:
        sent = SubAttributes(display, kind, ref) if as_sent else None
        result[group_id].append(Listed(member_id, name, sent))
    return result


def member_ids(unit: UnitOfWork, group_id: str) -> list[str]:
    return list(
        unit.session.scalars(select(Membership.member_id).where(Membership.group_id == group_id))
    )


def sub_attributes(unit: UnitOfWork, group_id: str) -> dict[str, SubAttributes | None]:
    """member id -> the sub-attributes kept for it (None: a row kept before they were)."""
    rows = unit.session.execute(
        select(
            Membership.member_id,
            Membership.as_sent,
            Membership.display,
            Membership.type,
            Membership.ref,
        ).where(Membership.group_id == group_id)
    )
    return {
        mid: SubAttributes(display, kind, ref) if as_sent else None
        for mid, as_sent, display, kind, ref in rows
    }


def add_members(unit: UnitOfWork, group_id: str, members: Mapping[str, SubAttributes]) -> list[str]:
    """Add memberships that do not exist yet; returns the ids actually added."""
    wanted = list(members)
    if not wanted:
        return []
    present = set(
        unit.session.scalars(
            select(Membership.member_id).where(
                Membership.group_id == group_id, Membership.member_id.in_(wanted)
            )
        )
    )
    added = [mid for mid in wanted if mid not in present]
    if added:
        unit.session.execute(
            insert(Membership),
            [
                {
                    "group_id": group_id,
                    "member_id": m,
                    "display": members[m].display,
                    "type": members[m].type,
                    "ref": members[m].ref,
                    "as_sent": True,
                }
                for m in added
            ],
        )
    return added


def set_sub_attributes(
    unit: UnitOfWork, group_id: str, members: Mapping[str, SubAttributes]
) -> None:
    """Keep new sub-attributes for existing memberships (one executemany)."""
    if not members:
        return
    table = cast(Table, Membership.__table__)
    # Core, executemany: the ORM's bulk UPDATE takes no WHERE of its own.
    unit.connection.execute(
        update(table)
        .where(table.c.group_id == group_id, table.c.member_id == bindparam("m_id"))
        .values(
            display=bindparam("m_display"),
            type=bindparam("m_type"),
            ref=bindparam("m_ref"),
            as_sent=True,
        ),
        [
            {"m_id": mid, "m_display": sent.display, "m_type": sent.type, "m_ref": sent.ref}
            for mid, sent in members.items()
        ],
    )


def remove_members(unit: UnitOfWork, group_id: str, member_ids: Iterable[str]) -> int:
    ids = list(member_ids)
    if not ids:
        return 0
    result = unit.session.execute(
        delete(Membership).where(Membership.group_id == group_id, Membership.member_id.in_(ids))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
