"""The replay cache: assertion IDs seen, AuthnRequests answered, unsolicited sign-ins finished,
IdP LogoutRequests acted on and settings links used, one shared, purged table.

It lives in the database, so a replayed assertion or a used request is refused by every worker.
A pending AuthnRequest itself lives in the browser that started it (saml/login_state.py), so
starting a sign-in writes nothing. At the ACS, :func:`use_response` is one statement: the
assertion, and the request it answers (the sign-in's statement count: store/sign_in.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .db import UnitOfWork
from .driver import DriverStatement
from .models import SeenAssertion

# Typed as the Table it is: mypy sees a declarative __table__ as a FromClause.
_SEEN_ASSERTIONS = cast(Table, SeenAssertion.__table__)


def remember_assertion(
    unit: UnitOfWork, *, workspace_id: int, assertion_id: str, expires_at: dt.datetime
) -> bool:
    """Record an assertion ID; False when it was seen before (a replay), on any worker."""
    # One statement, and the primary key decides a race between two workers.
    return (
        _REMEMBER_ASSERTION[unit.connection.dialect.name].first(
            unit.connection,
            {"workspace_id": workspace_id, "assertion_id": assertion_id, "expires_at": expires_at},
        )
        is not None
    )


def _remember(dialect_insert: Any, rows: int) -> DriverStatement:
    """INSERT of ``rows`` replay-cache entries; RETURNING names the ones that were new."""
    values: list[dict[str, Any]] = [
        {
            "workspace_id": bindparam("workspace_id"),
            "assertion_id": bindparam(f"assertion_id_{n}"),
            "expires_at": bindparam(f"expires_at_{n}"),
        }
        for n in range(rows)
    ]
    return DriverStatement(
        dialect_insert(_SEEN_ASSERTIONS)
        .values(values if rows > 1 else values[0])
        .on_conflict_do_nothing()
        .returning(_SEEN_ASSERTIONS.c.assertion_id)
    )  # rowcount is not portable here


_DIALECT_INSERTS = (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
_REMEMBER_ASSERTION = {
    name: DriverStatement(
        dialect_insert(_SEEN_ASSERTIONS)
        .on_conflict_do_nothing()
        .returning(_SEEN_ASSERTIONS.c.assertion_id),  # rowcount is not portable here
        keys=("workspace_id", "assertion_id", "expires_at"),
    )
    for name, dialect_insert in _DIALECT_INSERTS
}
_REMEMBER_ANSWER = {name: _remember(dialect_insert, 2) for name, dialect_insert in _DIALECT_INSERTS}


# Settings links, answered AuthnRequests and finished unsolicited sign-ins are used up in the
# replay cache beside assertion IDs, under a prefix no assertion ID can carry (an xs:ID is an
# NCName, which has no colon): one shared, purged table.
SETTINGS_LINK_PREFIX = "settings-link:"
REQUEST_PREFIX = "authn-request:"
PENDING_SIGN_IN_PREFIX = "pending-sign-in:"
LOGOUT_REQUEST_PREFIX = "logout-request:"


def use_response(
    unit: UnitOfWork,
    *,
    workspace_id: int,
    assertion_id: str,
    expires_at: dt.datetime,
    request_id: str | None = None,
    request_expires_at: dt.datetime | None = None,
) -> str | None:
    """Record a verified assertion and, for a solicited one, mark the AuthnRequest it answers
    used, in one statement: the refusal code when either was seen before ("replayed" first,
    as :func:`remember_assertion` then :func:`use_request` would say), else None.

    A refusal leaves the caller's transaction to roll back, so an entry that was new is not
    kept either (the caller raises)."""
    connection = unit.connection
    if request_id is None:
        new = remember_assertion(
            unit, workspace_id=workspace_id, assertion_id=assertion_id, expires_at=expires_at
        )
        return None if new else "replayed"
    assert request_expires_at is not None
    request_key = REQUEST_PREFIX + request_id
    inserted = {
        row[0]
        for row in _REMEMBER_ANSWER[connection.dialect.name].rows(
            connection,
            {
                "workspace_id": workspace_id,
                "assertion_id_0": assertion_id,
                "expires_at_0": expires_at,
                "assertion_id_1": request_key,
                "expires_at_1": request_expires_at,
            },
        )
    }
    if assertion_id not in inserted:
        return "replayed"
    return None if request_key in inserted else "unknown_in_response_to"


def use_request(
    unit: UnitOfWork, *, workspace_id: int, request_id: str, expires_at: dt.datetime
) -> bool:
    """Mark an AuthnRequest answered; False when a response to it was accepted before."""
    return remember_assertion(
        unit,
        workspace_id=workspace_id,
        assertion_id=REQUEST_PREFIX + request_id,
        expires_at=expires_at,
    )


def use_pending_sign_in(
    unit: UnitOfWork, *, workspace_id: int, nonce: str, expires_at: dt.datetime
) -> bool:
    """Mark an unsolicited sign-in finished; False when it was finished before."""
    return remember_assertion(
        unit,
        workspace_id=workspace_id,
        assertion_id=PENDING_SIGN_IN_PREFIX + nonce,
        expires_at=expires_at,
    )


def use_logout_request(
    unit: UnitOfWork, *, workspace_id: int, request_id: str, expires_at: dt.datetime
) -> bool:
    """Record an IdP's LogoutRequest (saml/single_logout.py) as acted on; False when it was
    before, on any worker (a replay). Kept until it would be refused as too old anyway."""
    return remember_assertion(
        unit,
        workspace_id=workspace_id,
        assertion_id=LOGOUT_REQUEST_PREFIX + request_id,
        expires_at=expires_at,
    )


def purge_replay_cache(unit: UnitOfWork, now: dt.datetime) -> None:
    """Forget entries whose assertion, request or link has expired (nothing can use them now)."""
    unit.connection.execute(delete(SeenAssertion).where(SeenAssertion.expires_at < now))


def redeem_settings_link(
    unit: UnitOfWork, *, workspace_id: int, nonce: str, expires_at: dt.datetime
) -> bool:
    """Mark a settings link used; False when it was used before, on any worker."""
    return remember_assertion(
        unit,
        workspace_id=workspace_id,
        assertion_id=SETTINGS_LINK_PREFIX + nonce,
        expires_at=expires_at,
    )
