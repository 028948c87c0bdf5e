"""SSO enforcement: whether a host app must refuse an address's password sign-in.

Tenant-safe by construction: only the workspace that VERIFIED an address's domain (a domain is
verified by at most one workspace: the partial unique index on workspace_domains) can require
SSO for it. Claiming a domain, or holding a SCIM member at an address, counts for nothing, so no
workspace can lock people of another organisation out of password sign-in.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, select

from ..names import domain_of, key
from .db import UnitOfWork
from .models import SSO_PLANS, IdentityProvider, Workspace, WorkspaceDomain, utcnow

# The longest break-glass window an owner may open, and the default.
BREAK_GLASS_DEFAULT = dt.timedelta(minutes=60)
BREAK_GLASS_MAX = dt.timedelta(minutes=240)

_W = cast(Table, Workspace.__table__).c
_D = cast(Table, WorkspaceDomain.__table__).c
_I = cast(Table, IdentityProvider.__table__).c

# One indexed look-up: the verified-domain unique index finds at most one row, and the
# workspace and IdP rows by primary key. SSO must be usable (plan, switch, an IdP), or
# requiring it would lock everyone out with no way in.
_ENFORCING_WORKSPACE = (
    select(_W.owner_email, _W.break_glass_until)
    .select_from(WorkspaceDomain.__table__.join(Workspace.__table__, _W.id == _D.workspace_id))
    .where(
        _D.domain == bindparam("domain"),
        _D.verified_at.is_not(None),
        _W.require_sso.is_(True),
        _W.sso_enabled.is_(True),
        _W.plan.in_(sorted(SSO_PLANS)),
        exists().where(_I.workspace_id == _W.id),
    )
    .limit(1)
)


def sso_required(unit: UnitOfWork, email: str, now: dt.datetime | None = None) -> bool:
    """True when ``email``'s domain is verified by a workspace that requires SSO, has SSO
    usable, and has no break-glass window open for this very address (its owner's)."""
    if not isinstance(email, str) or not email:
        return False
    address = key(email)
    domain = domain_of(address)
    if domain is None:
        return False
    row = unit.connection.execute(_ENFORCING_WORKSPACE, {"domain": domain}).first()
    if row is None:
        return False
    return not break_glass_open(row, address, now)


def break_glass_open(row: Any, address: str, now: dt.datetime | None = None) -> bool:
    """The owner's break-glass window is open and ``address`` (a key) is the owner's."""
    until = row.break_glass_until
    if until is None:
        return False
    return until > (now or utcnow()) and key(row.owner_email) == address
