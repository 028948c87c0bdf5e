"""A page of SCIM Users or Groups: the parsed filter compiled (scim_filters.py), the sort
column chosen, and the store's own page queries run with them.

SCIM parses the request (scim/parameters.py) and hands over a filter tree and the sortBy
text; which columns answer them is the store's knowledge, so it is decided here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, asc, desc
from sqlalchemy.orm import Session

from ..scim.errors import invalid_path
from ..scim.filters import Node
from ..scim.schemas import GROUP_RESOURCE, USER_RESOURCE, ResourceType
from . import groups as group_store
from . import members as member_store
from .members import MemberRecord
from .models import Group, Member
from ..scim.filter_query import compile_filter

# Columns a list may be sorted by; multi-valued emails sort by the primary email.
SORT_COLUMNS: dict[tuple[str, str], Any] = {
    ("User", "id"): Member.id,
    ("User", "externalId"): Member.external_id,
    ("User", "userName"): Member.user_name_key,
    ("User", "name.formatted"): Member.formatted_name,
    ("User", "name.familyName"): Member.family_name,
    ("User", "name.givenName"): Member.given_name,
    ("User", "displayName"): Member.display_name,
    ("User", "nickName"): Member.nick_name,
    ("User", "title"): Member.title,
    ("User", "userType"): Member.user_type,
    ("User", "active"): Member.active,
    ("User", "emails"): Member.email_key,
    ("User", "emails.value"): Member.email_key,
    ("User", "meta.created"): Member.created_at,
    ("User", "meta.lastModified"): Member.modified_at,
    ("User", "employeeNumber"): Member.employee_number,
    ("User", "department"): Member.department,
    ("Group", "id"): Group.id,
    ("Group", "externalId"): Group.external_id,
    ("Group", "displayName"): Group.display_name_key,
    ("Group", "meta.created"): Group.created_at,
    ("Group", "meta.lastModified"): Group.modified_at,
}


def member_page(connection: Connection, workspace_id: int, *, filter: Node | None,
                sort_by: str | None, descending: bool, offset: int,
                limit: int) -> tuple[int, list[MemberRecord]]:
    """(total matching, one page of members) for a SCIM list or search of Users."""
    return member_store.page(
        connection,
        workspace_id,
        where=_where(filter, USER_RESOURCE),
        order_by=_order_by(USER_RESOURCE, sort_by, descending),
        offset=offset,
        limit=limit,
    )


def group_page(session: Session, workspace_id: int, *, filter: Node | None,
               sort_by: str | None, descending: bool, offset: int,
               limit: int) -> tuple[int, list[Group]]:
    """(total matching, one page of groups) for a SCIM list or search of Groups."""
    return group_store.page(
        session,
        workspace_id,
        where=_where(filter, GROUP_RESOURCE),
        order_by=_order_by(GROUP_RESOURCE, sort_by, descending),
        offset=offset,
        limit=limit,
    )


def _where(node: Node | None, resource: ResourceType) -> ColumnElement[bool] | None:
    return None if node is None else compile_filter(node, resource)


def _order_by(resource: ResourceType, sort_by: str | None, descending: bool) -> list[Any]:
    model = Group if resource is GROUP_RESOURCE else Member
    if sort_by is None:
        return [model.created_at]
    path = resource.resolve(sort_by)
    column = SORT_COLUMNS.get((resource.name, path.canonical)) if path else None
    if column is None:
        raise invalid_path(f"cannot sort {resource.endpoint} by {sort_by!r}")
    return [(desc if descending else asc)(column)]
