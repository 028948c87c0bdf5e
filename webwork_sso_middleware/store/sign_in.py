"""SAML sign-in at the ACS: the lookup of the workspace and the member a response claims, the
member at login (found, created at a first sign-in), and the login record.

A returning member's sign-in at the ACS is five statements on both backends:
:func:`sign_in_lookup` (the workspace, the member the response claims, who verified its
domain; nothing locked by the claim), replay_cache.use_response (the assertion, and the
request it answers), on PostgreSQL :func:`verified_member` (the member's row lock, taken only
once the response is verified), then :func:`record_login_event` (the login stamp and its
audit row: one data-modifying CTE on PostgreSQL, two statements on SQLite) and the session row
(store/sessions.py). The workspace alone (before a response):
store/sign_in_target.py; the replay cache: store/replay_cache.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, cast

from sqlalchemy import Table, bindparam, or_, select, true, update
from sqlalchemy import insert as insert_row

from . import events
from .db import UnitOfWork, note_sessions_ended
from .driver import DriverStatement
from .models import (
    AuditEvent,
    LifecycleEvent,
    Member,
    MemberValue,
    Workspace,
    WorkspaceDomain,
    new_id,
)
from .sign_in_target import TARGET_COLUMNS, TARGET_SELECT, SignInTarget

# -- the ACS's hot path, in Core: a sign-in must cost a few statements, not ORM flushes --------

_MEMBERS = cast(Table, Member.__table__)
_VALUES = cast(Table, MemberValue.__table__)
_M = _MEMBERS.c
# What a sign-in reads of the member, in LoginMember's order.
_LOGIN_COLUMNS = (
    _M.id,
    _M.active,
    _M.session_generation,
    _M.given_name,
    _M.family_name,
    _M.display_name,
    _M.source,
    _M.user_name_key,
    _M.sign_in_groups,
)
_LOGIN_MEMBER_QUERY = DriverStatement(
    select(*_LOGIN_COLUMNS)
    .where(
        _M.workspace_id == bindparam("workspace_id"),
        _M.deleted_at.is_(None),
        or_(_M.user_name_key == bindparam("key"), _M.email_key == bindparam("key")),
    )
    .order_by((_M.user_name_key == bindparam("key")).desc())
    .limit(1)
    .with_for_update()
)
_STAMP_LOGIN = update(_MEMBERS).where(_M.id == bindparam("member_id"))
_STAMP_LOGIN_ONLY = DriverStatement(_STAMP_LOGIN, keys=("last_login_at",))


@dataclasses.dataclass(frozen=True, slots=True)
class LoginMember:
    id: str
    active: bool
    session_generation: int
    given_name: str | None
    family_name: str | None
    display_name: str | None
    source: str  # "scim": provisioned; "sso": created at a first sign-in
    user_name_key: str
    # The groups the last sign-in asserted (roles.py); None: none asserted yet.
    sign_in_groups: tuple[str, ...] | None = None


def stored_groups(stored: Any) -> tuple[str, ...] | None:
    """members.sign_in_groups as read on the driver's cursor (SQLite: the JSON text,
    PostgreSQL: the decoded list)."""
    if isinstance(stored, str | bytes):
        try:
            stored = json.loads(stored)
        except ValueError:
            return None
    if not isinstance(stored, list):
        return None
    return tuple(v for v in stored if isinstance(v, str))


def login_member(unit: UnitOfWork, workspace_id: int, key: str) -> LoginMember | None:
    """The member (SCIM-visible, active or not) whose userName or email has the key ``key``
    (names.py), locked."""
    row = _LOGIN_MEMBER_QUERY.first(unit.connection, {"workspace_id": workspace_id, "key": key})
    if row is None:
        return None
    member_id, active, generation, given_name, family_name, display_name, source, name_key = row[:8]
    return LoginMember(
        member_id,
        bool(active),
        generation,
        given_name,
        family_name,
        display_name,
        source,
        name_key,
        stored_groups(row[8]),
    )


def verified_member(
    unit: UnitOfWork, workspace_id: int, key: str, read: LoginMember | None
) -> LoginMember | None:
    """The member :func:`sign_in_lookup` read for ``key`` before the response was verified,
    now locked as :func:`login_member` locks it, so a deactivation waits for this sign-in or
    this sign-in sees it. SQLite's write transaction (BEGIN IMMEDIATE) already keeps every
    other writer out, so the read stands; PostgreSQL locks the row and reads it again (one
    statement, only when the member exists: a member created meanwhile meets the unique
    index when this sign-in creates it)."""
    if read is None or unit.connection.dialect.name == "sqlite":
        return read
    return login_member(unit, workspace_id, key)


def record_login(
    unit: UnitOfWork,
    member_id: str,
    *,
    now: dt.datetime,
    profile: dict[str, str],
    groups: list[str] | None = None,
) -> None:
    """Stamp the login; a changed profile (names from the IdP) is a change SCIM sees too.
    ``groups``: the asserted groups when they changed (no part of the SCIM resource, so no
    new version for them alone)."""
    if not profile and groups is None:
        _STAMP_LOGIN_ONLY.rows(unit.connection, {"member_id": member_id, "last_login_at": now})
        return
    values: dict[str, Any] = {"last_login_at": now}
    if profile:
        values.update(modified_at=now, version=_M.version + 1, **profile)
    if groups is not None:
        values["sign_in_groups"] = groups
    unit.connection.execute(_STAMP_LOGIN.values(**values), {"member_id": member_id})


def create_member_at_login(
    unit: UnitOfWork,
    workspace_id: int,
    email: str,
    key: str,
    *,
    now: dt.datetime,
    profile: dict[str, str],
    groups: list[str] | None = None,
) -> str:
    """A member created by their first SSO login: active, source "sso", email as userName
    (``key`` is its normalised key, names.py)."""
    member_id = new_id()
    unit.connection.execute(
        insert_row(_MEMBERS).values(
            id=member_id,
            workspace_id=workspace_id,
            user_name=email,
            user_name_key=key,
            email_key=key,
            active=True,
            source="sso",
            session_generation=0,
            last_login_at=now,
            created_at=now,
            modified_at=now,
            version=1,
            sign_in_groups=groups or None,
            **profile,
        )
    )
    unit.connection.execute(
        insert_row(_VALUES).values(
            member_id=member_id,
            attribute="emails",
            position=0,
            value=email,
            # As SCIM writes values (scim/resources.py): the emails filter compares lower case.
            value_key=email.lower()[:1024],
            type="work",
            primary=True,
        )
    )
    return member_id


# -- the ACS's reads in one statement, its login record in one (PostgreSQL) -------------------

_D = cast(Table, WorkspaceDomain.__table__).c
_AUDIT_EVENTS = cast(Table, AuditEvent.__table__)
_LIFECYCLE_EVENTS = cast(Table, LifecycleEvent.__table__)


@dataclasses.dataclass(frozen=True, slots=True)
class LoginLookup:
    """The member an address names and who verified its domain, read with the workspace
    (:func:`sign_in_lookup`) for the address a response *claims*: members/lifecycle.py uses it
    only when the verified address has the same ``key``, and asks again otherwise."""

    key: str
    verifier: int | None  # the workspace that verified the key's domain
    member: LoginMember | None  # read, not locked: see verified_member()


# The member by key, in the workspace the slug names (a CTE: SQLite has no LATERAL join, and a
# row lock may not reach into the nullable side of an outer join on PostgreSQL).
_MEMBER_BY_KEY = (
    select(*_LOGIN_COLUMNS)
    .where(
        _M.workspace_id
        == select(Workspace.id).where(Workspace.slug == bindparam("slug")).scalar_subquery(),
        _M.deleted_at.is_(None),
        or_(_M.user_name_key == bindparam("key"), _M.email_key == bindparam("key")),
    )
    .order_by((_M.user_name_key == bindparam("key")).desc())
    .limit(1)
    # No row lock: the key comes from a response whose signature is not checked yet, and a
    # lock here would let anyone hold a chosen member's row (delaying its deactivation) or
    # time the wait to learn who is a member. verified_member() locks it after the check.
    .cte("login_member")
)
# As domains.verifier_of() asks it.
_VERIFIER = (
    select(_D.workspace_id)
    .where(_D.domain == bindparam("domain"), _D.verified_at.is_not(None))
    .scalar_subquery()
)
_LOOKUP_QUERY = DriverStatement(
    select(*TARGET_SELECT.selected_columns, _VERIFIER.label("verifier"), *_MEMBER_BY_KEY.c)
    .select_from(TARGET_SELECT.get_final_froms()[0])
    .outerjoin(_MEMBER_BY_KEY, true())
    .where(Workspace.slug == bindparam("slug"))
    # As _LOCKED_TARGET_QUERY: the workspace row held until the sign-in commits.
    .with_for_update(read=True, of=Workspace)
)


def sign_in_lookup(
    unit: UnitOfWork, slug: str, *, claimed: tuple[str, str] | None
) -> tuple[SignInTarget | None, LoginLookup | None]:
    """What the ACS reads, in one statement: the workspace at ``slug`` as
    ``sign_in_target(lock=True)`` gives it, and (when ``claimed`` gives a name key and its
    domain, and the workspace exists) the :class:`LoginLookup` of that key.

    The key comes from an unverified response: nothing is decided on it here and nothing is
    locked by it (the workspace row is share-locked, as before); once the signature holds,
    :func:`verified_member` takes the member's lock."""
    key, domain = claimed if claimed is not None else (None, None)
    row = _LOOKUP_QUERY.first(
        unit.connection, {"slug": slug.strip().lower(), "key": key, "domain": domain}
    )
    if row is None:
        return None, None
    target = SignInTarget.from_row(row)
    if key is None:
        return target, None
    verifier, member_id, active, generation, given, family, display, source, name_key, groups = row[
        TARGET_COLUMNS:
    ]
    member = (
        LoginMember(
            member_id,
            bool(active),
            generation,
            given,
            family,
            display,
            source,
            name_key,
            stored_groups(groups),
        )
        if member_id is not None
        else None
    )
    return target, LoginLookup(key, int(verifier) if verifier is not None else None, member)


def _login_record(profile_keys: tuple[str, ...], groups: bool = False) -> DriverStatement:
    """PostgreSQL: stamp the login (and the asserted groups when they changed) and insert
    its audit row and its member.signed_in event (store/events.py) in one statement
    (data-modifying CTEs, which SQLite does not have). Parameters are named apart from
    every column: run through SQLAlchemy (a statement listener), a parameter named like a
    column would be taken as a value to set."""
    values: dict[str, Any] = {"last_login_at": bindparam("login_now")}
    if profile_keys:
        values.update(
            modified_at=bindparam("login_now"),
            version=_M.version + 1,
            **{k: bindparam(f"login_{k}") for k in profile_keys},
        )
    if groups:
        values["sign_in_groups"] = bindparam("login_groups", type_=_M.sign_in_groups.type)
    stamped = (
        update(_MEMBERS)
        .where(_M.id == bindparam("login_member"))
        .values(**values)
        .returning(_M.id)
        .cte("stamped")
    )
    signed_in = (
        insert_row(_LIFECYCLE_EVENTS)
        .values(
            id=bindparam("login_event_id"),
            workspace_id=bindparam("login_workspace"),
            occurred_at=bindparam("login_now"),
            kind="member.signed_in",
            source="saml",
            member_id=bindparam("login_member"),
            changes=bindparam("login_event_changes", type_=_LIFECYCLE_EVENTS.c.changes.type),
        )
        .returning(_LIFECYCLE_EVENTS.c.id)
        .cte("signed_in")
    )
    return DriverStatement(
        insert_row(_AUDIT_EVENTS)
        .values(
            workspace_id=bindparam("login_workspace"),
            occurred_at=bindparam("login_now"),
            actor="saml",
            action="signed_in",
            target_type="member",
            target_id=bindparam("login_member"),
            changes=bindparam("login_changes", type_=_AUDIT_EVENTS.c.changes.type),
        )
        .add_cte(stamped)
        .add_cte(signed_in)
    )


_PROFILE_KEYS = ("given_name", "family_name", "display_name")
# By the profile keys that change, and whether the asserted groups do.
_LOGIN_RECORDS: dict[tuple[tuple[str, ...], bool], DriverStatement] = {}


def record_login_event(
    unit: UnitOfWork,
    *,
    workspace_id: int,
    member_id: str,
    now: dt.datetime,
    profile: dict[str, str],
    groups: list[str] | None = None,
) -> None:
    """:func:`record_login`, its audit row ("signed_in", the changed profile, and the
    asserted groups when they changed, as its changes) and its member.signed_in event:
    one statement on PostgreSQL, three elsewhere. A change of groups is a change of
    roles: this process's cached session checks of the member are dropped at commit,
    other workers' within their recheck."""
    connection = unit.connection
    changes: dict[str, Any] = dict(profile)
    if groups is not None:
        changes["groups"] = groups
        note_sessions_ended(connection, [member_id])
    if connection.dialect.name != "postgresql":
        from . import audit  # audit imports nothing of this module; kept local all the same

        record_login(unit, member_id, now=now, profile=profile, groups=groups)
        audit.record(
            unit,
            workspace_id=workspace_id,
            actor="saml",
            action="signed_in",
            target_type="member",
            target_id=member_id,
            changes=changes,
        )
        events.record(unit, workspace_id, "member.signed_in", "saml", member_id=member_id)
        return
    event_id = new_id()
    keys = tuple(k for k in _PROFILE_KEYS if k in profile)
    statement = _LOGIN_RECORDS.get((keys, groups is not None))
    if statement is None:
        statement = _LOGIN_RECORDS[keys, groups is not None] = _login_record(
            keys, groups is not None
        )
    statement.rows(
        connection,
        {
            "login_workspace": workspace_id,
            "login_member": member_id,
            "login_now": now,
            "login_changes": changes,
            "login_event_id": event_id,
            "login_event_changes": {},
            **{f"login_{k}": v for k, v in profile.items()},
            **({"login_groups": groups} if groups is not None else {}),
        },
    )
    unit.events.append(event_id)  # told to listeners at commit (store/db.py)
