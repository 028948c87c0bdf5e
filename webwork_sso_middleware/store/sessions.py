"""The session rows (``member_sessions``): every statement the sessions package runs."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, bindparam, case, func, insert, literal, select

from .driver import DriverStatement
from .models import MemberSession, MemberValue, Membership, Workspace, WorkspaceDomain, Group
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
    .where(_D.workspace_id == _M.workspace_id, _D.verified_at.is_not(None),
           _M.user_name_key.like(literal("%@") + _D.domain))
    .correlate(_MEMBERS)
    .exists()
)
# One row per group of the member (one row when there are none), in one round trip.
# Built once, run on the driver's cursor (store/driver.py): sign-in is a hot path.
_INSERT_SESSION = DriverStatement(insert(_SESSIONS), keys=(
    "id_hash", "member_id", "workspace_id", "generation", "created_at", "expires_at"))
_SESSION_QUERY = (
    select(
        _S.generation, _S.expires_at, _S.ended_at, _S.member_id, _S.workspace_id,
        _M.workspace_id.label("member_workspace_id"), _M.user_name, _M.user_name_key,
        _M.email_key, _DOMAIN_VERIFIED.label("domain_verified"),
        _M.given_name, _M.family_name, _M.display_name, _M.active, _M.deleted_at,
        _M.session_generation, _W.slug, _W.sso_enabled, _W.plan,
        _PRIMARY_EMAIL.label("email"), Group.display_name.label("group_name"),
    )
    .select_from(MemberSession)
    .join(MemberRow, MemberRow.id == MemberSession.member_id)
    .join(Workspace, Workspace.id == MemberSession.workspace_id)
    .outerjoin(Membership, Membership.member_id == MemberRow.id)
    .outerjoin(Group, Group.id == Membership.group_id)
    .where(_S.id_hash == bindparam("id_hash"))
    .order_by(Group.display_name_key)
)
