"""A page of SCIM Users or Groups: a filter's condition (scim/filter_query.py builds it from
store/scim_filters.py), the sort column, and the store's own page queries run with them.

SCIM parses and validates the request and names the sort attribute by its canonical path
(``name.givenName``); which column answers it is the store's knowledge, so it is here, and
SORTABLE tells SCIM which names it may accept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import asc, desc

from . import groups as group_store
from . import members as member_store
from .db import UnitOfWork
from .members import MemberRecord
from .models import Group, Member
from .scim_filters import Condition

# Columns a list may be sorted by, by AttributePath.canonical; multi-valued emails sort by
# the primary email.
MEMBER_SORT_COLUMNS: Mapping[str, Any] = {
    "id": Member.id,
    "externalId": Member.external_id,
    "userName": Member.user_name_key,
    "name.formatted": Member.formatted_name,
    "name.familyName": Member.family_name,
    "name.givenName": Member.given_name,
    "displayName": Member.display_name,
    "nickName": Member.nick_name,
    "title": Member.title,
    "userType": Member.user_type,
    "active": Member.active,
    "emails": Member.email_key,
    "emails.value": Member.email_key,
    "meta.created": Member.created_at,
    "meta.lastModified": Member.modified_at,
    "employeeNumber": Member.employee_number,
    "department": Member.department,
}
GROUP_SORT_COLUMNS: Mapping[str, Any] = {
    "id": Group.id,
    "externalId": Group.external_id,
    "displayName": Group.display_name_key,
    "meta.created": Group.created_at,
    "meta.lastModified": Group.modified_at,
}
# What a sortBy may name, by resource type.
SORTABLE: Mapping[str, frozenset[str]] = {
    "User": frozenset(MEMBER_SORT_COLUMNS),
    "Group": frozenset(GROUP_SORT_COLUMNS),
}


def member_page(
    unit: UnitOfWork,
    workspace_id: int,
    *,
    where: Condition | None,
    sort_by: str | None,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[int, list[MemberRecord]]:
    """(total matching, one page of members) for a SCIM list or search of Users; without a
    ``sort_by``, in the order they were created."""
    order_by = _order_by(MEMBER_SORT_COLUMNS, Member.created_at, sort_by, descending)
    return member_store.page(
        unit, workspace_id, where=where, order_by=order_by, offset=offset, limit=limit
    )


def group_page(
    unit: UnitOfWork,
    workspace_id: int,
    *,
    where: Condition | None,
    sort_by: str | None,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[int, list[Group]]:
    """(total matching, one page of groups) for a SCIM list or search of Groups."""
    order_by = _order_by(GROUP_SORT_COLUMNS, Group.created_at, sort_by, descending)
    return group_store.page(
        unit, workspace_id, where=where, order_by=order_by, offset=offset, limit=limit
    )


def _order_by(
    columns: Mapping[str, Any], created: Any, sort_by: str | None, descending: bool
) -> list[Any]:
    if sort_by is None:
        return [created]
    return [(desc if descending else asc)(columns[sort_by])]
