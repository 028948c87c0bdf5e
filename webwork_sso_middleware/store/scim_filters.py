"""SCIM filters in SQL: where each SCIM attribute is kept, and what each term of a filter
becomes in a WHERE clause over ``members`` (User) or ``groups`` (Group).

scim/filter_query.py walks a parsed filter, checks it against the schema, and calls the
functions here for the SQL; this module knows the tables and no SCIM module (the store sits
below scim). The store's page queries add workspace scoping and ``deleted_at IS NULL``.
Multi-valued attributes become correlated ``EXISTS`` subqueries, one per attribute term, and a
value filter (``emails[type eq "work" and value eq "x"]``) puts all its conditions on the same
row. Comparisons only ever hold for assigned values (the semantics of scim/comparisons.py), so
``NOT`` never meets an SQL NULL.

caseExact=false strings compare lower-cased: through the pre-lowered ``*_key`` columns where
they exist (lowered by Python), else with SQL ``lower()``, which on SQLite folds ASCII only.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, case, false, func, not_, null, or_, select, true
from sqlalchemy.orm import aliased

from ..names import fold as fold_name_fragment
from ..names import key as name_key
from .models import Group, Member, Membership, MemberValue

KEY_LENGTH = 1024  # member_values.value_key holds value.lower()[:KEY_LENGTH]

# What a filter term becomes: a boolean expression for a WHERE clause over members or groups.
Condition = ColumnElement[bool]


class Attribute(Protocol):
    """What the SQL needs of a SCIM attribute (scim/schemas.Attribute is one)."""

    @property
    def type(self) -> str: ...

    @property
    def case_exact(self) -> bool: ...


@dataclasses.dataclass(frozen=True)
class Stored:
    """A (sub-)attribute kept in one column (or computed by an SQL expression)."""

    column: Any
    lowered: bool = False  # holds value.lower(): compare it with the lowered operand as it is
    case_exact: bool | None = None  # None: as the schema says
    nullable: bool | None = None  # None: as the column says
    full: Any = None  # for a key cut at KEY_LENGTH: the column it was cut from
    fold: Callable[[str], str] = str.lower  # how the column's lowered key was made
    fold_fragment: Callable[[str], str] | None = None  # for co/sw/ew operands, when different

    @property
    def may_be_null(self) -> bool:
        if self.nullable is not None:
            return self.nullable
        return bool(getattr(getattr(self.column, "expression", self.column), "nullable", True))


@dataclasses.dataclass(frozen=True)
class Constant:
    """An attribute with the same value on every row (meta.resourceType, groups.type)."""

    value: str


Target = Stored | Constant


@dataclasses.dataclass(frozen=True)
class Rows:
    """A multi-valued attribute kept as rows; ``exists(condition)``: does one row satisfy it?"""

    exists: Callable[[ColumnElement[bool] | None], ColumnElement[bool]]
    columns: Mapping[str, Target]  # by sub-attribute name


def _member_values(attribute: str) -> Callable[[ColumnElement[bool] | None], ColumnElement[bool]]:
    def exists(condition: ColumnElement[bool] | None) -> ColumnElement[bool]:
        query = select(MemberValue.id).where(
            MemberValue.member_id == Member.id, MemberValue.attribute == attribute
        )
        return (query if condition is None else query.where(condition)).exists()

    return exists


# Aliases, so a subquery never correlates with an outer query over the same table.
_GroupOfMember = aliased(Group, name="filter_group")
_MemberOfGroup = aliased(Member, name="filter_member")


def _groups_of_member(condition: ColumnElement[bool] | None) -> ColumnElement[bool]:
    query = (
        select(Membership.group_id)
        .join(_GroupOfMember, _GroupOfMember.id == Membership.group_id)
        .where(Membership.member_id == Member.id)
    )
    return (query if condition is None else query.where(condition)).exists()


def _members_of_group(condition: ColumnElement[bool] | None) -> ColumnElement[bool]:
    # Deleted members keep their memberships but are no longer shown in ``members``.
    query = (
        select(Membership.member_id)
        .join(_MemberOfGroup, _MemberOfGroup.id == Membership.member_id)
        .where(Membership.group_id == Group.id, _MemberOfGroup.deleted_at.is_(None))
    )
    return (query if condition is None else query.where(condition)).exists()


_VALUE_COLUMNS: dict[str, Target] = {
    "value": Stored(MemberValue.value_key, lowered=True, full=MemberValue.value),
    "display": Stored(MemberValue.display),
    "type": Stored(MemberValue.type),
    "primary": Stored(MemberValue.primary),
}
_ADDRESS_COLUMNS: dict[str, Target] = {
    "formatted": Stored(MemberValue.formatted),
    "streetAddress": Stored(MemberValue.street_address),
    "locality": Stored(MemberValue.locality),
    "region": Stored(MemberValue.region),
    "postalCode": Stored(MemberValue.postal_code),
    "country": Stored(MemberValue.country),
    "type": Stored(MemberValue.type),
    "primary": Stored(MemberValue.primary),
}

# Single-valued attributes by AttributePath.canonical; multi-valued ones by attribute name.
USER_COLUMNS: dict[str, Target] = {
    "id": Stored(Member.id),
    "externalId": Stored(Member.external_id),
    "userName": Stored(
        Member.user_name_key, lowered=True, fold=name_key, fold_fragment=fold_name_fragment
    ),
    "name.formatted": Stored(Member.formatted_name),
    "name.familyName": Stored(Member.family_name),
    "name.givenName": Stored(Member.given_name),
    "name.middleName": Stored(Member.middle_name),
    "name.honorificPrefix": Stored(Member.honorific_prefix),
    "name.honorificSuffix": Stored(Member.honorific_suffix),
    "displayName": Stored(Member.display_name),
    "nickName": Stored(Member.nick_name),
    "profileUrl": Stored(Member.profile_url),
    "title": Stored(Member.title),
    "userType": Stored(Member.user_type),
    "preferredLanguage": Stored(Member.preferred_language),
    "locale": Stored(Member.locale),
    "timezone": Stored(Member.timezone),
    # As the document reads: an unassigned active is absent (it counts as active for sign-in).
    "active": Stored(case((Member.active_assigned, Member.active), else_=null()), nullable=True),
    "meta.created": Stored(Member.created_at),
    "meta.lastModified": Stored(Member.modified_at),
    "meta.resourceType": Constant("User"),
    # Enterprise User extension
    "employeeNumber": Stored(Member.employee_number),
    "costCenter": Stored(Member.cost_center),
    "organization": Stored(Member.organization),
    "division": Stored(Member.division),
    "department": Stored(Member.department),
    "manager.value": Stored(Member.manager_id),
    "manager.displayName": Stored(Member.manager_display_name),
}
USER_ROWS: dict[str, Rows] = {
    **{
        name: Rows(_member_values(name), _VALUE_COLUMNS)
        for name in (
            "emails",
            "phoneNumbers",
            "ims",
            "photos",
            "entitlements",
            "roles",
            "x509Certificates",
        )
    },
    "addresses": Rows(_member_values("addresses"), _ADDRESS_COLUMNS),
    "groups": Rows(
        _groups_of_member,
        {
            "value": Stored(Membership.group_id, case_exact=True),
            "display": Stored(_GroupOfMember.display_name_key, lowered=True),
            "type": Constant("direct"),  # groups do not nest
        },
    ),
}
GROUP_COLUMNS: dict[str, Target] = {
    "id": Stored(Group.id),
    "externalId": Stored(Group.external_id),
    "displayName": Stored(Group.display_name_key, lowered=True),
    "meta.created": Stored(Group.created_at),
    "meta.lastModified": Stored(Group.modified_at),
    "meta.resourceType": Constant("Group"),
}
GROUP_ROWS: dict[str, Rows] = {
    "members": Rows(
        _members_of_group,
        {
            "value": Stored(Membership.member_id),
            # As scim/resources renders it: the display name, else the userName.
            "display": Stored(
                func.coalesce(_MemberOfGroup.display_name, _MemberOfGroup.user_name), nullable=False
            ),
            "type": Constant("User"),
        },
    ),
}


def columns_of(resource: str) -> tuple[Mapping[str, Target], Mapping[str, Rows]]:
    """Where ``resource``'s attributes are kept: single-valued ones by AttributePath.canonical,
    multi-valued ones by attribute name."""
    if resource == "User":
        return USER_COLUMNS, USER_ROWS
    if resource == "Group":
        return GROUP_COLUMNS, GROUP_ROWS
    raise ValueError(f"no SQL mapping for the resource type {resource!r}")


def all_of(conditions: list[Condition]) -> Condition:
    return and_(*conditions)


def any_of(conditions: list[Condition]) -> Condition:
    return or_(*conditions)


def negation(condition: Condition) -> Condition:
    return not_(condition)


def constant(holds: bool) -> Condition:
    return true() if holds else false()


def present(target: Stored, attribute: Attribute) -> Condition:
    """Assigned: not NULL and, for strings, not empty (RFC 7643 2.5)."""
    conditions = [target.column.is_not(None)] if target.may_be_null else []
    if attribute.type not in ("boolean", "dateTime", "integer", "decimal"):
        conditions.append(target.column != "")
    return and_(*conditions) if conditions else true()


def condition(op: str, value: Any, target: Stored, attribute: Attribute) -> Condition:
    """``op`` on an assigned value; ``value`` read by the caller as the attribute's type: a
    bool for a boolean, the [start, end) a dateTime operand stands for, else a string."""
    column: ColumnElement[Any] = target.column
    if attribute.type == "boolean":
        wanted = value
        return column == wanted if op == "eq" else column != wanted
    if attribute.type == "dateTime":
        # The operand stands for the whole unit of its last digit (scim's datetime_window).
        start, end = value
        if op == "eq":
            return and_(column >= start, column < end)
        if op == "ne":
            return or_(column < start, column >= end)
        at_end, compare_to = _DATETIME_BOUNDS[op]
        return compare_to(column, end if at_end else start)
    assert isinstance(value, str)
    if target.lowered:
        folding = target.fold
        if op in ("co", "sw", "ew") and target.fold_fragment is not None:
            folding = target.fold_fragment  # a piece of a name: not trimmed, no domain rules
        value = folding(value)
        # A key cut short answers eq/ne/sw exactly for short operands; else look at it all.
        exact_key = (
            len(value) < KEY_LENGTH
            if op in ("eq", "ne")
            else op == "sw" and len(value) <= KEY_LENGTH
        )
        if target.full is not None and not exact_key:
            whole = func.lower(target.full)
            column = case((func.length(column) < KEY_LENGTH, column), else_=whole)
    elif not (attribute.case_exact if target.case_exact is None else target.case_exact):
        column, value = func.lower(column), value.lower()
    if op == "co":
        return column.contains(value, autoescape=True)
    if op == "sw":
        return column.startswith(value, autoescape=True)
    if op == "ew":
        return column.endswith(value, autoescape=True)
    # Build only the comparison asked for: expression building is the cost on this path.
    return _ORDERING[op](column, value)


_ORDERING: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
# gt/ge/lt/le of a dateTime operand that stands for a whole unit: (compare with its end rather
# than its start, comparison)
_DATETIME_BOUNDS: dict[str, tuple[bool, Callable[[Any, Any], Any]]] = {
    "gt": (True, operator.ge),
    "ge": (False, operator.ge),
    "lt": (False, operator.lt),
    "le": (True, operator.lt),
}
