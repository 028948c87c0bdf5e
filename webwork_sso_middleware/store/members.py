"""Member queries. Filters arrive as SQL expressions (scim_filters.py) and run in the database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    JSON,
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Integer,
    Row,
    Table,
    bindparam,
    case,
    false,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
)

from ..errors import NotFound
from ..names import key as name_key
from . import scim_totals
from .db import UnitOfWork
from .driver import DriverStatement
from .models import Group, Member, Membership, MemberValue, ScimTotal

# Typed as the Tables they are: mypy sees a declarative __table__ as a FromClause.
_MEMBERS = cast(Table, Member.__table__)
_VALUES = cast(Table, MemberValue.__table__)
# Reads go through Core, not the ORM: a SCIM lookup is on Okta's hot path, and loading
# ORM objects (identity map, eager loaders) costs more than the SQL itself.
# Values and groups of a page of members in one round trip, built once: constructing a
# statement per request costs more than running it. Group rows carry the group's id in
# ``value``, its name in ``display`` and sort by name through ``attribute``.
_V = _VALUES.c
_MEMBER_COLUMNS = tuple(column.key for column in _MEMBERS.columns)
# A value's id is the database's (an autoincrement key).
_VALUE_COLUMNS = tuple(column.key for column in _VALUES.columns if column.key != "id")


def _details_of(chosen: Callable[[Any], ColumnElement[bool]]) -> CompoundSelect[*tuple[Any, ...]]:
    """Values and groups of the members whose id column ``chosen`` accepts."""
    # Column types differ between the two selects, so none can be inferred for the union.
    union: CompoundSelect[*tuple[Any, ...]] = union_all(
        select(
            _V.member_id,
            literal(0).label("is_group"),
            _V.attribute,
            _V.position,
            _V.value,
            _V.display,
            _V.type,
            _V.primary,
            _V.formatted,
            _V.street_address,
            _V.locality,
            _V.region,
            _V.postal_code,
            _V.country,
        ).where(chosen(_V.member_id)),
        select(
            Membership.member_id,
            literal(1),
            Group.display_name_key,
            literal(0),
            Group.id,
            Group.display_name,
            null(),
            false(),
            null(),
            null(),
            null(),
            null(),
            null(),
            null(),
        )
        .join(Group, Group.id == Membership.group_id)
        .where(chosen(Membership.member_id)),
    )
    return union.order_by("member_id", "is_group", "attribute", "position")


_DETAILS_OF_MEMBERS = _details_of(lambda member_id: member_id.in_(bindparam("ids", expanding=True)))
# A lookup's one member (``userName eq``, GET by id): on the driver, with no expanding list.
_DETAILS_OF_MEMBER = DriverStatement(_details_of(lambda member_id: member_id == bindparam("id")))


@dataclasses.dataclass(slots=True)
class MemberRecord:
    """A member with its multi-valued attributes and groups, for rendering.

    ``row`` is a Core row or an ORM Member: both expose the columns as attributes.
    """

    row: Any
    values: list[Any]
    groups: list[tuple[str, str]]  # (group id, group display name), by display name

    @classmethod
    def of(cls, member: Member) -> MemberRecord:
        groups = sorted(member.memberships, key=lambda m: m.group.display_name_key)
        return cls(
            member, list(member.values), [(m.group_id, m.group.display_name) for m in groups]
        )


def visible(workspace_id: int | BindParameter[int]) -> ColumnElement[bool]:
    """Members SCIM can see: this workspace's, not deleted."""
    return (_MEMBERS.c.workspace_id == workspace_id) & _MEMBERS.c.deleted_at.is_(None)


def page(
    unit: UnitOfWork,
    workspace_id: int,
    *,
    where: ColumnElement[bool] | None,
    order_by: Sequence[Any],
    offset: int,
    limit: int,
) -> tuple[int, list[MemberRecord]]:
    """(total matching, one page of members) for a SCIM list or search.

    Unfiltered, the total is the workspace's count in ``scim_totals`` (never a COUNT), and a
    page past the middle is read from the end (store/scim_totals.py)."""
    connection = unit.connection
    condition = visible(workspace_id)
    if where is None:
        return _unfiltered_page(unit, workspace_id, condition, list(order_by), offset, limit)
    condition = condition & where
    rows: Sequence[Row[Any]] = []
    if limit:
        query = select(_MEMBERS).where(condition).order_by(*order_by, _MEMBERS.c.id)
        rows = connection.execute(query.offset(offset).limit(limit)).all()
    if limit and (0 < len(rows) < limit or (not rows and offset == 0)):
        total = offset + len(rows)  # a short page tells the total: no COUNT needed
    else:
        total = connection.execute(
            select(func.count()).select_from(_MEMBERS).where(condition)
        ).scalar_one()
    return total, records(unit, rows)


def _unfiltered_page(
    unit: UnitOfWork,
    workspace_id: int,
    condition: ColumnElement[bool],
    order_by: list[Any],
    offset: int,
    limit: int,
) -> tuple[int, list[MemberRecord]]:
    total = scim_totals.read_total(unit, workspace_id, ScimTotal.members)
    walk = scim_totals.window(total, offset, limit)
    if walk is None:
        return total, []
    # The total again, in the rows' own statement: on PostgreSQL (read committed) a create
    # committed between the two reads would shift the page; then it is read forwards again.
    in_rows = scim_totals.total_of(workspace_id, ScimTotal.members).label(scim_totals.TOTAL_LABEL)
    terms = [*order_by, _MEMBERS.c.id]
    if walk.reverse:
        query = select(_MEMBERS, in_rows).where(condition)
        query = query.order_by(*scim_totals.reversed_order(terms))
        rows = connection_rows(unit, query.offset(walk.offset).limit(walk.limit))[::-1]
        if rows and rows[0].scim_total_results == total:
            return total, records(unit, rows)
    query = select(_MEMBERS, in_rows).where(condition).order_by(*terms)
    rows = connection_rows(unit, query.offset(offset).limit(limit))
    return (rows[0].scim_total_results if rows else total), records(unit, rows)


def connection_rows(unit: UnitOfWork, query: Any) -> list[Row[Any]]:
    return list(unit.connection.execute(query).all())


def records(unit: UnitOfWork, rows: Sequence[Any]) -> list[MemberRecord]:
    """Attach values and groups to member rows, in one query for the whole page."""
    if not rows:
        return []
    by_id = {row.id: MemberRecord(row, [], []) for row in rows}
    details: Iterable[Any] = (
        _DETAILS_OF_MEMBER.named_rows(unit.connection, {"id": rows[0].id})
        if len(rows) == 1
        else unit.connection.execute(_DETAILS_OF_MEMBERS, {"ids": list(by_id)})
    )
    for detail in details:
        record = by_id[detail.member_id]
        if detail.is_group:
            record.groups.append((detail.value, detail.display))
        else:
            record.values.append(detail)
    return list(by_id.values())


# Okta asks ``userName eq`` before every create, and GETs by id: both on the driver.
# The workspace as a bound parameter: the statements below are built once, for every one.
_VISIBLE_IN_GIVEN_WORKSPACE = visible(bindparam("workspace_id", type_=Integer))
_BY_USER_NAME = DriverStatement(
    select(_MEMBERS).where(
        _VISIBLE_IN_GIVEN_WORKSPACE, _MEMBERS.c.user_name_key == bindparam("key")
    )
)
_BY_ID = DriverStatement(
    select(_MEMBERS).where(_VISIBLE_IN_GIVEN_WORKSPACE, _MEMBERS.c.id == bindparam("id"))
)


def find_by_user_name(unit: UnitOfWork, workspace_id: int, user_name: str) -> list[MemberRecord]:
    """The member (at most one: a unique index) SCIM sees under this userName, compared by its
    normalised key (any case, NFC or NFKC spelling)."""
    rows = _BY_USER_NAME.named_rows(
        unit.connection, {"workspace_id": workspace_id, "key": name_key(user_name)}
    )
    return records(unit, rows)


def read(unit: UnitOfWork, workspace_id: int, member_id: str) -> MemberRecord:
    """One member for rendering (Core, like :func:`page`)."""
    rows = _BY_ID.named_rows(unit.connection, {"workspace_id": workspace_id, "id": member_id})
    row = rows[0] if rows else None
    if row is None:
        raise NotFound("member", member_id)
    return records(unit, [row])[0]


def get(unit: UnitOfWork, workspace_id: int, member_id: str, *, for_update: bool = False) -> Member:
    query = select(Member).where(visible(workspace_id), Member.id == member_id)
    if for_update:
        # Concurrent writers of one member queue here instead of racing on its version.
        query = query.with_for_update()
    member = unit.session.scalar(query)
    if member is None:
        raise NotFound("member", member_id)
    return member


def _plain_init(
    table: str, columns: tuple[str, ...], *, lists: tuple[str, ...] = ()
) -> Callable[..., None]:
    """An ``__init__(self, **columns)`` that sets every column: to its keyword, else None (and
    each of ``lists`` to a new list); TypeError for a keyword that is no column of ``table``.
    Written out, as dataclasses writes its own: a loop of setattr over a member's 39 columns
    cost 2% of a SCIM create."""
    assert all(name.isidentifier() for name in (*columns, *lists))
    lines = ["def __init__(self, **columns):"]
    lines += [f"    self.{column} = None" for column in columns]
    lines += [f"    self.{name} = []" for name in lists]
    lines += [
        "    if not known.issuperset(columns):",
        "        unknown = [key for key in columns if key not in known]",
        "        raise TypeError(f'not a column of {table}: {\", \".join(unknown)}')",
        "    for key, value in columns.items():",
        "        setattr(self, key, value)",
    ]
    namespace: dict[str, Any] = {"known": frozenset(columns), "table": table}
    exec("\n".join(lines), namespace)  # the text is made above from column names only
    return cast(Callable[..., None], namespace["__init__"])


class NewValue:
    """A multi-valued attribute's value of a :class:`NewMember`: MemberValue's columns as plain
    attributes (all None until set)."""

    __slots__ = _VALUE_COLUMNS

    __init__ = _plain_init("member_values", _VALUE_COLUMNS)

    if TYPE_CHECKING:  # the columns, to a type checker

        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...


class NewMember:
    """A member about to be created: Member's columns as plain attributes (all None until set),
    its values, and no groups.

    SCIM's create path fills one (scim/writes.py writes it as it writes a Member) and
    :func:`insert_new` stores it: an ORM object's instrumentation, and the flush that would
    store it, cost more than the INSERTs themselves."""

    __slots__ = (*_MEMBER_COLUMNS, "values", "memberships")

    values: list[NewValue]
    memberships: list[Membership]
    __init__ = _plain_init("members", _MEMBER_COLUMNS, lists=("values", "memberships"))

    if TYPE_CHECKING:  # the columns, to a type checker

        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...


def fill_defaults(member: NewMember) -> None:
    """Give the columns left unset the model's defaults (id, timestamps, version, ...), so
    ``member`` renders as it will be stored."""
    for key, default in _MEMBER_DEFAULTS:
        if getattr(member, key) is None:
            setattr(member, key, _default_of(default))


def insert_new(unit: UnitOfWork, member: NewMember) -> None:
    """Store a new member and its values as plain INSERTs.

    Columns left unset take the model's defaults first (:func:`fill_defaults`). A refused row
    raises IntegrityError, as a flush would (the unique userName index)."""
    fill_defaults(member)
    connection = unit.connection
    row = dict(zip(_MEMBER_COLUMNS, _member_columns_of(member), strict=True))
    for key in _JSON_NULL_COLUMNS:
        if row[key] is None:
            row[key] = null()  # SQL NULL, as the ORM leaves an unset column (not JSON 'null')
    _INSERT_MEMBER.rows(connection, row)
    for value in member.values:
        value.member_id = member.id
        _INSERT_VALUE.rows(
            connection, dict(zip(_VALUE_COLUMNS, _value_columns_of(value), strict=True))
        )


def _default_of(default: Any) -> Any:
    # SQLAlchemy wraps a callable default to take the execution context, which these ignore.
    return default.arg(None) if default.is_callable else default.arg


# JSON columns that would store None as JSON 'null' (none_as_null=False).
_JSON_NULL_COLUMNS = tuple(
    column.key
    for column in _MEMBERS.columns
    if isinstance(column.type, JSON) and not column.type.none_as_null
)
_MEMBER_DEFAULTS = tuple(
    (column.key, column.default) for column in _MEMBERS.columns if column.default is not None
)
# Each column's value, in that order, read in C.
_member_columns_of = operator.attrgetter(*_MEMBER_COLUMNS)
_value_columns_of = operator.attrgetter(*_VALUE_COLUMNS)
_INSERT_MEMBER = DriverStatement(insert(_MEMBERS), keys=_MEMBER_COLUMNS)
_INSERT_VALUE = DriverStatement(insert(_VALUES), keys=_VALUE_COLUMNS)


def existing_ids(unit: UnitOfWork, workspace_id: int, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are members SCIM can see in this workspace."""
    if not ids:
        return set()
    query = select(Member.id).where(visible(workspace_id), Member.id.in_(ids))
    return set(unit.session.scalars(query))


# -- the settings page's members table ------------------------------------------------------------

DIRECTORY_STATES = ("all", "active", "deactivated")

# The address SCIM calls primary, else the work one, else the first (as sessions/manager.py).
_DIRECTORY_EMAIL = (
    select(_V.value)
    .where(_V.member_id == _MEMBERS.c.id, _V.attribute == "emails", _V.value.is_not(None))
    .order_by(
        case((_V.primary.is_(True), 0), else_=1),
        case((func.lower(_V.type) == "work", 0), else_=1),
        _V.position,
    )
    .limit(1)
    .correlate(_MEMBERS)
    .scalar_subquery()
)


@dataclasses.dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One row of the settings page's members table."""

    id: str
    user_name: str
    email: str | None
    name: str | None
    active: bool
    source: str  # "scim": provisioned; "sso": created at the first SSO login
    last_login_at: dt.datetime | None


def directory(
    unit: UnitOfWork,
    workspace_id: int,
    *,
    state: str = "all",
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[DirectoryEntry]]:
    """(members matching ``state``, one page of them by userName) for the settings page.

    LIMIT/OFFSET over the partial unique index on (workspace, userName): a page of thousands
    of members costs one indexed range read and one COUNT.
    """
    if state not in DIRECTORY_STATES:
        raise ValueError(f"state must be one of {', '.join(DIRECTORY_STATES)}")
    m = _MEMBERS.c
    condition = visible(workspace_id)
    if state != "all":
        condition = condition & (m.active.is_(state == "active"))
    total = unit.connection.execute(
        select(func.count()).select_from(_MEMBERS).where(condition)
    ).scalar_one()
    rows = unit.connection.execute(
        select(
            m.id,
            m.user_name,
            m.email_key,
            m.display_name,
            m.given_name,
            m.family_name,
            m.formatted_name,
            m.active,
            m.source,
            m.last_login_at,
            _DIRECTORY_EMAIL.label("email"),
        )
        .where(condition)
        .order_by(m.user_name_key, m.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return total, [
        DirectoryEntry(
            id=row.id,
            user_name=row.user_name,
            email=row.email or row.email_key or (row.user_name if "@" in row.user_name else None),
            name=row.display_name
            or row.formatted_name
            or (" ".join(p for p in (row.given_name, row.family_name) if p) or None),
            active=bool(row.active),
            source=row.source,
            last_login_at=row.last_login_at,
        )
        for row in rows
    ]
