"""The session rows (``member_sessions``): every statement the sessions package runs.

Functions of a connection (or an ORM session) in the caller's transaction; the sessions
package decides what a row means (sessions/manager.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import object_session

from . import events
from .db import SESSIONS_ENDED, StoreSession, UnitOfWork, note_sessions_ended
from .domains import key_domain
from .driver import DriverStatement
from .models import (
    Group,
    IdentityProvider,
    MemberSession,
    Membership,
    MemberValue,
    Workspace,
    WorkspaceDomain,
)
from .models import Member as MemberRow

# -- the one query behind a session check --------------------------------------------------------

_SESSIONS = cast(Table, MemberSession.__table__)
_MEMBERS = cast(Table, MemberRow.__table__)
_S = _SESSIONS.c
_M = _MEMBERS.c
_W = Workspace.__table__.c
_V = MemberValue.__table__.c
_PRIMARY_EMAIL = (  # the address SCIM calls primary, else the work one, else the first
    select(_V.value)
    .where(_V.member_id == _M.id, _V.attribute == "emails", _V.value.is_not(None))
    .order_by(_V.primary.desc(), case((func.lower(_V.type) == "work", 0), else_=1), _V.position)
    .limit(1)
    .correlate(_MEMBERS)
    .scalar_subquery()
)
_D = WorkspaceDomain.__table__.c
# Whether the member's userName is an address in a domain its own workspace verified: then, and
# only then, REMOTE_USER is that address (identity.py). Domains hold [a-z0-9.-] only, so LIKE
# sees no wildcard in them.
_DOMAIN_VERIFIED = (
    select(_D.domain)
    .where(
        _D.workspace_id == _M.workspace_id,
        _D.verified_at.is_not(None),
        _M.user_name_key.like(literal("%@") + _D.domain),
    )
    .correlate(_MEMBERS)
    .exists()
)
# Whether another workspace verified the domain of the member's userName: a verification ends
# such sessions as it commits (store/domains.py), but a sign-in in flight may commit its session
# just after; the session check refuses it, so it lives no longer than session_recheck_seconds.
# The same members as the verification ends and sign-in refuses (domains.key_domain); an
# equality with the verified domain, so one probe of the verified-domain index rather than a
# walk of every verified domain.
_DOMAIN_VERIFIED_ELSEWHERE = (
    select(_D.domain)
    .where(
        _D.domain == key_domain(_M.user_name_key),
        _D.verified_at.is_not(None),
        _D.workspace_id != _M.workspace_id,
    )
    .correlate(_MEMBERS)
    .exists()
)
_IDP_SET = (
    select(IdentityProvider.workspace_id)
    .where(IdentityProvider.workspace_id == _W.id)
    .correlate(Workspace.__table__)
    .exists()
)
# One row per group of the member (one row when there are none), in one round trip.
# Built once, run on the driver's cursor (store/driver.py): sign-in is a hot path.
# The SAML sign-in's subject, as single logout names it (saml/single_logout.py); None for a
# session that no SAML sign-in started.
SAML_SUBJECT_KEYS = (
    "saml_name_id",
    "saml_name_id_format",
    "saml_name_qualifier",
    "saml_sp_name_qualifier",
    "saml_session_index",
)
# The columns' widths (String(n)), read from the model so they cannot drift apart.
_SUBJECT_WIDTHS = {
    key: cast(String, _SESSIONS.c[key].type).length or 0 for key in SAML_SUBJECT_KEYS
}
_INSERT_SESSION = DriverStatement(
    insert(_SESSIONS).values({key: bindparam(key) for key in SAML_SUBJECT_KEYS}),
    keys=("id_hash", "member_id", "workspace_id", "generation", "created_at", "expires_at"),
)
# (SCIM name, column) of the member's profile attributes that have columns: core title and the
# Enterprise User extension's (scim/resources.py writes them).
_PROFILE = (
    ("title", _M.title),
    ("employeeNumber", _M.employee_number),
    ("costCenter", _M.cost_center),
    ("organization", _M.organization),
    ("division", _M.division),
    ("department", _M.department),
)
_PROFILE_COLUMNS = (
    *(column.label(f"profile_{name}") for name, column in _PROFILE),
    _M.manager_id,
    _M.manager_display_name,
)


def _first_row_only(column: Any, name: str) -> Any:
    """``column`` on the first row the query numbers (row_number() is not the ORDER BY's
    order on every backend: read it with :func:`first_value`), NULL on the others."""
    return case((func.row_number().over() == 1, column)).label(name)


_SESSION_QUERY = (
    select(
        _S.generation,
        _S.expires_at,
        _S.ended_at,
        _S.member_id,
        _S.workspace_id,
        _M.workspace_id.label("member_workspace_id"),
        _M.user_name,
        _M.user_name_key,
        _M.email_key,
        _DOMAIN_VERIFIED.label("domain_verified"),
        # On one row only: a correlated subquery is evaluated for each row (one per group),
        # and this one computes the key's domain (rtrim by a set as long as the key).
        _first_row_only(_DOMAIN_VERIFIED_ELSEWHERE, "domain_verified_elsewhere"),
        _M.given_name,
        _M.family_name,
        _M.display_name,
        _M.active,
        _M.deleted_at,
        _M.session_generation,
        # Groups and roles (roles.py): what the last sign-in asserted and the owner's mapping,
        # on the row already read, so a role change reaches every worker within the recheck
        # and the session check stays one query. Their JSON (up to MAX_ASSERTED_GROUPS and
        # MAX_ROLE_MAPPINGS names) on one row only, not once per SCIM group: sent and decoded
        # once per check (group_values).
        _first_row_only(_M.sign_in_groups, "sign_in_groups"),
        _first_row_only(_W.role_map, "role_map"),
        _W.slug,
        _W.sso_enabled,
        _W.plan,
        # For Member.sso_required (store/enforcement.py, same rule): on the row already read,
        # so the session check stays one query.
        _W.require_sso,
        _W.break_glass_until,
        _W.owner_email,
        _IDP_SET.label("idp_set"),
        _PRIMARY_EMAIL.label("email"),
        # Member.attributes (profile below). The JSON on one row only, not once per group.
        *_PROFILE_COLUMNS,
        _first_row_only(_M.extensions, "extensions"),
        Group.display_name.label("group_name"),
    )
    .select_from(MemberSession)
    .join(MemberRow, MemberRow.id == MemberSession.member_id)
    .join(Workspace, Workspace.id == MemberSession.workspace_id)
    .outerjoin(Membership, Membership.member_id == MemberRow.id)
    # The session's workspace too: a membership is only ever written within one workspace
    # (scim/), and should one ever cross, its group still names nothing here.
    .outerjoin(
        Group,
        and_(Group.id == Membership.group_id, Group.workspace_id == MemberSession.workspace_id),
    )
    .where(_S.id_hash == bindparam("id_hash"))
    .order_by(Group.display_name_key)
)


def session_rows(unit: UnitOfWork, id_hash: str) -> Sequence[Any]:
    """The session and its member, one row per group of the member (none: no such session)."""
    return unit.connection.execute(_SESSION_QUERY, {"id_hash": id_hash}).all()


def first_value(rows: Sequence[Any], name: str) -> Any:
    """The value of a column the query sends on one row only (_first_row_only)."""
    return next((value for r in rows if (value := getattr(r, name)) is not None), None)


def profile(rows: Sequence[Any]) -> dict[str, Any]:
    """The member's profile attributes from its session rows, by SCIM name (identity.py
    Member.attributes): assigned ones only; each extension's other attributes under its URN."""
    row = rows[0]
    found: dict[str, Any] = {
        name: value
        for name, _ in _PROFILE
        if (value := getattr(row, f"profile_{name}")) is not None
    }
    if row.manager_id is not None:
        found["manager"] = {"value": row.manager_id, "displayName": row.manager_display_name}
    found.update(first_value(rows, "extensions") or {})
    return found


def active_generation(unit: UnitOfWork, member_id: str, workspace_id: int) -> int | None:
    """The session generation of an active, undeleted member of the workspace, else None."""
    generation: int | None = unit.connection.execute(
        select(_M.session_generation).where(
            _M.id == member_id,
            _M.workspace_id == workspace_id,
            _M.active,
            _M.deleted_at.is_(None),
        )
    ).scalar_one_or_none()
    return generation


def insert_session(
    unit: UnitOfWork,
    *,
    id_hash: str,
    member_id: str,
    workspace_id: int,
    generation: int,
    created_at: dt.datetime,
    expires_at: dt.datetime,
    saml_subject: Mapping[str, str | None] | None = None,
) -> None:
    """``saml_subject``: the sign-in's NameID and SessionIndex, by SAML_SUBJECT_KEYS. A value
    wider than its column is not kept (PostgreSQL would refuse the sign-in; a cut one could
    never match): single logout then goes by what is left, the NameID at least."""
    subject = {
        key: value
        for key, value in (saml_subject or {}).items()
        if value is None or len(value) <= _SUBJECT_WIDTHS[key]
    }
    _INSERT_SESSION.rows(
        unit.connection,
        {
            "id_hash": id_hash,
            "member_id": member_id,
            "workspace_id": workspace_id,
            "generation": generation,
            "created_at": created_at,
            "expires_at": expires_at,
            **{key: subject.get(key) for key in SAML_SUBJECT_KEYS},
        },
    )


def saml_subject(unit: UnitOfWork, id_hash: str) -> Any | None:
    """The session's workspace (id and slug), whether it is live, and the SAML subject its
    sign-in named (SAML_SUBJECT_KEYS): what an SP-initiated logout sends the IdP. None for no
    such session."""
    return unit.connection.execute(
        select(
            _S.workspace_id,
            _W.slug,
            _S.ended_at,
            *(_SESSIONS.c[key] for key in SAML_SUBJECT_KEYS),
        )
        .join(Workspace, Workspace.id == MemberSession.workspace_id)
        .where(_S.id_hash == id_hash)
    ).first()


def end_saml_sessions(
    unit: UnitOfWork,
    *,
    workspace_id: int,
    name_id: str,
    session_indexes: Sequence[str],
    now: dt.datetime,
) -> list[str]:
    """End the workspace's live sessions that a sign-in of ``name_id`` started (only those
    of ``session_indexes`` when any are given): an IdP's LogoutRequest. Returns the ended
    sessions' id hashes. This process's caches hear of it at commit; other workers within
    their recheck interval, as for any ended session."""
    statement = update(_SESSIONS).where(
        _S.workspace_id == workspace_id, _S.saml_name_id == name_id, _S.ended_at.is_(None)
    )
    if session_indexes:
        # A session whose sign-in named no SessionIndex (or one too long to keep) ends by its
        # NameID alone: an IdP's logout must never be answered Success while it lives on.
        statement = statement.where(
            or_(_S.saml_session_index.in_(list(session_indexes)), _S.saml_session_index.is_(None))
        )
    ended = unit.connection.execute(
        statement.values(ended_at=now).returning(_S.id_hash, _S.member_id)
    ).all()
    if ended:
        members = sorted({row.member_id for row in ended})
        note_sessions_ended(unit.connection, members)
        record_signed_out(unit, [(workspace_id, member_id) for member_id in members], "saml")
    return [row.id_hash for row in ended]


def end_missed_session(unit: UnitOfWork, id_hash: str, now: dt.datetime) -> None:
    """Mark ended a live session whose member another workspace's verification names (its
    check found it so): one a sign-in committed just as the verification did, which the
    verification's own UPDATE (store/domains.py) would have ended. Ended as that ends them,
    without an event; so that releasing the domain later does not bring it back."""
    ended = (
        unit.connection.execute(
            update(_SESSIONS)
            .where(_S.id_hash == id_hash, _S.ended_at.is_(None))
            .values(ended_at=now)
            .returning(_S.member_id)
        )
        .scalars()
        .all()
    )
    note_sessions_ended(unit.connection, ended)


def end_sessions(unit: UnitOfWork, id_hashes: Sequence[str], now: dt.datetime) -> None:
    """Mark these sessions ended (those not ended already): a sign-out at /saml/logout."""
    ended = unit.connection.execute(
        update(_SESSIONS)
        .where(_S.id_hash.in_(id_hashes), _S.ended_at.is_(None))
        .values(ended_at=now)
        .returning(_S.workspace_id, _S.member_id)
    ).all()
    record_signed_out(unit, sorted({(row.workspace_id, row.member_id) for row in ended}), "saml")


def record_signed_out(unit: UnitOfWork, members: Sequence[tuple[int, str]], source: str) -> None:
    """A member.signed_out event per member whose live session ended (none for a sign-out
    that ended nothing: a session already over)."""
    for workspace_id, member_id in members:
        events.record(unit, workspace_id, "member.signed_out", source, member_id=member_id)


def end_member_sessions(
    unit: UnitOfWork, member_id: str, now: dt.datetime, *, source: str = "settings"
) -> int | None:
    """End every session of the member (a new generation); its workspace id, None for no
    such member. This process's caches hear of it at commit (db.note_sessions_ended). A
    member.signed_out event from ``source`` (events.SOURCES) says so."""
    connection = unit.connection
    workspace_id: int | None = connection.execute(
        update(_MEMBERS)
        .where(_M.id == member_id)
        # Not modified_at: which devices are signed in is no part of the SCIM resource.
        .values(session_generation=_M.session_generation + 1)
        .returning(_M.workspace_id)
    ).scalar_one_or_none()
    if workspace_id is None:
        return None
    # The generation alone ends them; ended_at keeps the table honest for the admin page.
    connection.execute(
        update(_SESSIONS)
        .where(_S.member_id == member_id, _S.ended_at.is_(None))
        .values(ended_at=now)
    )
    note_sessions_ended(connection, [member_id])
    events.record(
        unit,
        workspace_id,
        "member.signed_out",
        source,
        member_id=member_id,
        changes={"everywhere": True},
    )
    return workspace_id


def purge_expired(unit: UnitOfWork, now: dt.datetime, batch: int) -> int:
    """Delete up to ``batch`` rows that expired before ``now``; how many went."""
    expired = select(_S.id_hash).where(_S.expires_at < now).limit(batch)
    result = unit.connection.execute(
        delete(_SESSIONS).where(_S.id_hash.in_(expired.scalar_subquery()))
    )
    return int(result.rowcount or 0)


# -- sessions ended through the ORM (SCIM deactivating a member) ---------------------------------
# Named on the connection like those ended in SQL, so the Database tells its listeners at commit.
# The listeners attach to the store's own classes only, never to a host app's.


def _note_change(target: MemberRow, value: Any, oldvalue: Any, _initiator: Any) -> None:
    session = object_session(target)
    if value != oldvalue and target.id is not None and session is not None:
        session.info.setdefault(SESSIONS_ENDED, set()).add(target.id)


event.listen(MemberRow.session_generation, "set", _note_change)
event.listen(MemberRow.active, "set", _note_change)


@event.listens_for(StoreSession, "after_flush")
def _hand_to_connection(session: StoreSession, _context: Any) -> None:
    # The store's sessions join a Core transaction and never commit themselves: the
    # connection's commit is the moment that counts.
    if ids := session.info.pop(SESSIONS_ENDED, None):
        session.connection().info.setdefault(SESSIONS_ENDED, set()).update(ids)
