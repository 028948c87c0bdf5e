"""Sessions on a real database: signed cookies, lifetimes, key rotation, and revocation that
reaches every worker within the recheck interval while a signed-in request costs no query."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import hashlib
import os
import random
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from itsdangerous import URLSafeSerializer
from sqlalchemy import create_engine, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from werkzeug.http import dump_cookie, parse_date

from webwork_sso_middleware import Member, SSOMiddleware
from webwork_sso_middleware.errors import ConfigurationError, NotFound
from webwork_sso_middleware.sessions import SamlSubject, SessionManager
from webwork_sso_middleware.signing import Purpose, Signing
from webwork_sso_middleware.store import Database, StoreSession
from webwork_sso_middleware.store import sessions as session_store
from webwork_sso_middleware.store.models import (
    AuditEvent,
    Group,
    MemberSession,
    Membership,
    MemberValue,
    Workspace,
    new_id,
)
from webwork_sso_middleware.store.models import Member as MemberRow
from webwork_sso_middleware.store.workspaces import Workspaces

from ..constants import PATCH_OP, SCIM_HEADERS
from ..scim.conftest import host_app, okta_user
from ..store_helpers import transaction

KEY = "session-test-key-padded-to-thirty-two-bytes-at-least"


# -- helpers (also used by tests/test_middleware.py and tests/saml/test_logout.py) ---------------


class Clock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float | None = None) -> None:
        # Whole seconds: cookies carry int(now), so boundaries can then be hit exactly.
        self.now = float(int(time.time())) if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def create_workspace(database: Database, slug: str = "acme") -> int:
    workspaces = Workspaces(database)
    info, _ = workspaces.create(slug, name=slug.title(), plan="plus", owner_email=f"it@{slug}.test")
    workspaces.enable(slug, scim=True, sso=True)
    workspaces.verify_domain(slug, f"{slug}.test", by_operator=True)  # REMOTE_USER = email
    return info.id


def add_member(
    database: Database,
    workspace_id: int,
    user_name: str,
    *,
    groups: tuple[str, ...] = (),
    **fields: Any,
) -> str:
    """A member as the ACS creates one at first login (ORM rows, one transaction)."""
    with transaction(database, write=True) as unit:
        member = MemberRow(
            workspace_id=workspace_id,
            user_name=user_name,
            user_name_key=user_name.lower(),
            email_key=user_name.lower(),
            source="sso",
            **fields,
        )
        unit.session.add(member)
        unit.session.flush()
        unit.session.add(
            MemberValue(
                member_id=member.id,
                attribute="emails",
                position=0,
                value=user_name,
                value_key=user_name.lower(),
                type="work",
                primary=True,
            )
        )
        for name in groups:
            group = unit.session.scalar(
                select(Group).where(
                    Group.workspace_id == workspace_id, Group.display_name_key == name.lower()
                )
            )
            if group is None:
                group = Group(
                    workspace_id=workspace_id, display_name=name, display_name_key=name.lower()
                )
                unit.session.add(group)
                unit.session.flush()
            unit.session.add(Membership(group_id=group.id, member_id=member.id))
        return member.id


def sign_in(manager: SessionManager, member_id: str, workspace_id: int) -> str:
    """Start a session the way the ACS does: inside a transaction of the caller's."""
    with transaction(manager.database, write=True) as unit:
        return manager.start(member_id, workspace_id, unit)


def cookie_pair(set_cookie: str) -> str:
    """The ``name=value`` a browser sends back for a ``Set-Cookie`` header value."""
    return set_cookie.split(";", 1)[0]


def environ_with(set_cookie: str) -> dict[str, Any]:
    return {"HTTP_COOKIE": cookie_pair(set_cookie)}


@contextlib.contextmanager
def counting_statements(database: Database) -> Iterator[list[str]]:
    """Every SQL statement the engine sends, observed through SQLAlchemy's own event."""
    statements: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(database.engine, "before_cursor_execute", listener)


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held (fails after ``timeout``)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout}s")
        time.sleep(0.01)
    return time.monotonic() - start


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def workspace_id(database: Database) -> int:
    return create_workspace(database)


@pytest.fixture
def make_manager(database: Database) -> Callable[..., SessionManager]:
    def make(**options: Any) -> SessionManager:
        options.setdefault("secure", True)
        return SessionManager(
            database, signing=Signing(options.pop("secret_keys", [KEY])), **options
        )

    return make


@pytest.fixture
def manager(make_manager: Callable[..., SessionManager]) -> SessionManager:
    return make_manager()


@pytest.fixture
def ada(database: Database, workspace_id: int) -> str:
    return add_member(
        database,
        workspace_id,
        "ada@acme.test",
        given_name="Ada",
        family_name="Lovelace",
        display_name="Ada Lovelace",
        groups=("Engineering", "admins"),
    )


@pytest.fixture
def scim_server(database_url: str, workspace_id: int, serve: Any) -> Iterator[requests.Session]:
    """The SCIM app over real HTTP (a middleware of its own on the same database)."""
    app = SSOMiddleware(
        host_app, database_url=database_url, secret_key=KEY, base_url="https://tracker.example.com"
    )
    _, token = app.workspaces.create(
        "scimco", name="ScimCo", plan="plus", owner_email="it@scimco.test"
    )
    app.workspaces.enable("scimco", scim=True, sso=True)
    app.workspaces.verify_domain("scimco", "scimco.test", by_operator=True)
    http = requests.Session()
    http.headers.update({"Authorization": f"Bearer {token}", **SCIM_HEADERS})
    http.base = serve(app).url + "/scim/v2"  # type: ignore[attr-defined]
    http.workspace_id = app.workspaces.get("scimco").id  # type: ignore[attr-defined]
    yield http
    http.close()
    app.close()


def provision(http: requests.Session, email: str) -> str:
    created = http.post(f"{http.base}/Users", json=okta_user(email))  # type: ignore[attr-defined]
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def set_active(http: requests.Session, member_id: str, active: bool) -> None:
    body: dict[str, Any] = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "value": {"active": active}}],
    }
    answer = http.patch(f"{http.base}/Users/{member_id}", json=body)  # type: ignore[attr-defined]
    assert answer.status_code == 200, answer.text


# -- the round trip ---------------------------------------------------------------------------


def test_start_then_identify_gives_the_member(manager, database, workspace_id, ada):
    header = sign_in(manager, ada, workspace_id)

    member, refreshed = manager.identify(environ_with(header))

    assert isinstance(member, Member)
    assert member == Member(
        id=ada,
        workspace="acme",
        user_name="ada@acme.test",
        email="ada@acme.test",
        given_name="Ada",
        family_name="Lovelace",
        display_name="Ada Lovelace",
        active=True,
        identity="ada@acme.test",
        groups=["admins", "Engineering"],
    )
    assert type(member.groups) is list
    assert refreshed is None
    # The database holds only the SHA-256 of the id the cookie carries.
    cookie = manager.read_cookie(environ_with(header))
    assert (cookie.member_id, cookie.workspace_id, cookie.generation) == (ada, workspace_id, 0)
    with transaction(database) as unit:
        row = unit.session.scalars(select(MemberSession)).one()
    assert row.id_hash == hashlib.sha256(cookie.session_id.encode()).hexdigest()
    assert cookie.session_id not in header.split("=", 1)[0]
    assert row.generation == 0 and row.ended_at is None
    lifetime = (row.expires_at - row.created_at).total_seconds()
    assert lifetime == pytest.approx(12 * 3600, abs=1)


def test_the_cookie_is_httponly_lax_and_secure_only_over_https(make_manager, workspace_id, ada):
    secure = sign_in(make_manager(secure=True), ada, workspace_id)
    plain = sign_in(make_manager(secure=False), ada, workspace_id)

    attributes = [part.strip() for part in secure.split(";")]
    assert attributes[0].startswith("webwork_sso_session=")
    assert {"HttpOnly", "SameSite=Lax", "Path=/", "Secure"} <= set(attributes)
    # A browser-session cookie: the lifetimes are enforced by the server, not the browser.
    assert not any(a.lower().startswith(("max-age", "expires")) for a in attributes)
    assert "Secure" not in [part.strip() for part in plain.split(";")]


def test_the_member_cannot_be_changed_by_the_host_app(manager, workspace_id, ada):
    environ = environ_with(sign_in(manager, ada, workspace_id))
    member, _ = manager.identify(environ)

    with pytest.raises(dataclasses.FrozenInstanceError):
        member.user_name = "mallory@acme.test"
    member.groups.append("owners")

    assert manager.identify(environ)[0].groups == ["admins", "Engineering"]


def test_start_refuses_a_member_who_cannot_sign_in(manager, database, workspace_id, ada):
    other = create_workspace(database, "other")
    inactive = add_member(database, workspace_id, "off@acme.test", active=False)
    for member_id, in_workspace in ((inactive, workspace_id), (ada, other), ("nope", workspace_id)):
        with pytest.raises(NotFound):
            sign_in(manager, member_id, in_workspace)


def test_start_belongs_to_the_callers_transaction(manager, database, workspace_id, ada):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction(database, write=True) as unit:
        header = manager.start(ada, workspace_id, unit)
        raise Abort

    assert manager.identify(environ_with(header)) is None
    with transaction(database) as unit:
        assert unit.session.scalar(select(func.count()).select_from(MemberSession)) == 0


def test_a_member_created_in_the_same_transaction_can_start_a_session(
    manager, database, workspace_id
):
    with transaction(database, write=True) as unit:
        member = MemberRow(
            id=new_id(),
            workspace_id=workspace_id,
            user_name="new@acme.test",
            user_name_key="new@acme.test",
            source="sso",
        )
        unit.session.add(member)  # not flushed: start must flush it
        header = manager.start(member.id, workspace_id, unit)

    assert manager.identify(environ_with(header))[0].email == "new@acme.test"


def test_every_session_id_is_new_and_carries_256_random_bits(manager, workspace_id, ada):
    ids = {
        manager.read_cookie(environ_with(sign_in(manager, ada, workspace_id))).session_id
        for _ in range(3)
    }

    assert len(ids) == 3
    # token_urlsafe(32): 32 random bytes, 43 characters of URL-safe base64.
    assert {len(session_id) for session_id in ids} == {43}
    assert all(
        set(session_id) <= set(string.ascii_letters + string.digits + "-_") for session_id in ids
    )


# -- who the member is -----------------------------------------------------------------------


def email(
    value: str | None,
    kind: str | None,
    position: int,
    *,
    primary: bool = False,
    attribute: str = "emails",
) -> dict[str, Any]:
    """One SCIM multi-valued attribute value, as the member_values table holds it."""
    return {
        "attribute": attribute,
        "value": value,
        "type": kind,
        "position": position,
        "primary": primary,
        "value_key": value.lower() if value else None,
    }


def add_member_with_values(
    database: Database,
    workspace_id: int,
    user_name: str,
    values: list[dict[str, Any]],
    *,
    email_key: str | None,
) -> str:
    """A member with exactly these attribute values (none added for the userName)."""
    with transaction(database, write=True) as unit:
        member = MemberRow(
            workspace_id=workspace_id,
            user_name=user_name,
            user_name_key=user_name.lower(),
            email_key=email_key,
            source="scim",
        )
        unit.session.add(member)
        unit.session.flush()
        unit.session.add_all(MemberValue(member_id=member.id, **value) for value in values)
        return member.id


@pytest.mark.parametrize(
    "values, expected",
    [
        pytest.param(
            [
                email("home@acme.test", "home", 0),
                email("work@acme.test", "work", 1),
                email("primary@acme.test", "other", 2, primary=True),
            ],
            "primary@acme.test",
            id="primary-first",
        ),
        pytest.param(
            [
                email("home@acme.test", "home", 0),
                email("work@acme.test", "Work", 1),
                email("untyped@acme.test", None, 2),
            ],
            "work@acme.test",
            id="else-work",
        ),
        pytest.param(
            [email("second@acme.test", "home", 1), email("first@acme.test", "other", 0)],
            "first@acme.test",
            id="else-the-first",
        ),
        pytest.param(
            [
                email("+1 555 0100", "work", 0, primary=True, attribute="phoneNumbers"),
                email("mail@acme.test", "home", 1),
            ],
            "mail@acme.test",
            id="emails-only",
        ),
        pytest.param(
            [email(None, "work", 0, primary=True), email("real@acme.test", "home", 1)],
            "real@acme.test",
            id="values-only",
        ),
    ],
)
def test_the_members_email_is_the_primary_else_the_work_else_the_first_address(
    manager, database, workspace_id, values, expected
):
    member_id = add_member_with_values(
        database, workspace_id, "member@acme.test", values, email_key="member@acme.test"
    )

    member, _ = manager.identify(environ_with(sign_in(manager, member_id, workspace_id)))

    assert member.email == expected


def test_the_members_email_is_never_another_members(manager, database, workspace_id):
    ada = add_member_with_values(
        database,
        workspace_id,
        "ada@acme.test",
        [email("ada.home@acme.test", "home", 0)],
        email_key="ada@acme.test",
    )
    grace = add_member_with_values(
        database,
        workspace_id,
        "grace@acme.test",
        [email("grace.work@acme.test", "work", 0, primary=True)],
        email_key="grace@acme.test",
    )

    for member_id, expected in ((ada, "ada.home@acme.test"), (grace, "grace.work@acme.test")):
        member, _ = manager.identify(environ_with(sign_in(manager, member_id, workspace_id)))
        assert member.email == expected


@pytest.mark.parametrize(
    "user_name, email_key, expected",
    [
        ("ada", "ada.key@acme.test", "ada.key@acme.test"),
        ("ada@acme.test", None, "ada@acme.test"),
        ("ada", None, None),
    ],
    ids=["the-email-key", "an-address-as-user-name", "none"],
)
def test_without_an_email_value_the_email_is_the_key_else_a_user_name_that_is_an_address(
    manager, database, workspace_id, user_name, email_key, expected
):
    member_id = add_member_with_values(database, workspace_id, user_name, [], email_key=email_key)

    member, _ = manager.identify(environ_with(sign_in(manager, member_id, workspace_id)))

    assert member.email == expected


def test_the_members_groups_are_their_own(manager, database, workspace_id, ada):
    grace = add_member(database, workspace_id, "grace@acme.test", groups=("Sales", "admins"))
    loner = add_member(database, workspace_id, "loner@acme.test")

    def groups(member_id: str) -> list[str]:
        return manager.identify(environ_with(sign_in(manager, member_id, workspace_id)))[0].groups

    assert groups(ada) == ["admins", "Engineering"]
    assert groups(grace) == ["admins", "Sales"]
    assert groups(loner) == []


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret_keys",
    [[], [""], [KEY, ""], ["", KEY]],
    ids=["none", "one-empty", "empty-newest", "empty-oldest"],
)
def test_a_missing_or_empty_secret_key_is_refused(make_manager, secret_keys):
    with pytest.raises(ConfigurationError) as raised:
        make_manager(secret_keys=secret_keys)

    assert raised.value.option == "secret_key"


def test_by_default_a_session_idle_for_two_hours_ends(make_manager, workspace_id, ada):
    clock = Clock()
    manager = make_manager(clock=clock)  # the default lifetimes
    environ = environ_with(sign_in(manager, ada, workspace_id))

    clock.advance(2 * 3600 - 1)
    assert manager.identify(environ) is not None
    clock.advance(1)
    assert manager.identify(environ) is None


def test_by_default_a_cached_answer_is_trusted_for_two_seconds(
    make_manager, database, workspace_id, ada
):
    manager = make_manager()  # the default recheck interval
    environ = environ_with(sign_in(manager, ada, workspace_id))
    asked = time.monotonic()
    assert manager.identify(environ) is not None
    with transaction(database, write=True) as unit:  # Core SQL: as another worker would end it
        unit.connection.execute(
            update(MemberRow.__table__).where(MemberRow.id == ada).values(active=False)
        )

    time.sleep(max(0.0, asked + 1.3 - time.monotonic()))
    assert manager.identify(environ) is not None  # the cached answer, by design
    wait_until(lambda: manager.identify(environ) is None, timeout=3.0)
    assert time.monotonic() - asked <= 2.0 + 0.5


# -- cookies that must not pass ---------------------------------------------------------------


def test_a_tampered_cookie_is_refused(manager, workspace_id, ada):
    name, value = cookie_pair(sign_in(manager, ada, workspace_id)).split("=", 1)
    payload, signature = value.rsplit(".", 1)
    flipped = payload[:-3] + ("A" if payload[-3] != "A" else "B") + payload[-2:]
    for forged in (
        f"{flipped}.{signature}",
        f"{payload}.{signature[::-1]}",
        payload,
        "garbage",
        "",
        "a" * 5000,
    ):
        assert manager.identify({"HTTP_COOKIE": f"{name}={forged}"}) is None


def test_a_cookie_signed_with_an_unknown_key_is_refused(make_manager, workspace_id, ada):
    foreign = sign_in(make_manager(secret_keys=["someone-elses-key"]), ada, workspace_id)

    assert make_manager().identify(environ_with(foreign)) is None


def test_keys_rotate_newest_last(make_manager, workspace_id, ada):
    old_cookie = sign_in(make_manager(secret_keys=["old"]), ada, workspace_id)
    rotated = make_manager(secret_keys=["old", "new"])

    assert rotated.identify(environ_with(old_cookie)) is not None
    new_cookie = sign_in(rotated, ada, workspace_id)
    assert make_manager(secret_keys=["new"]).identify(environ_with(new_cookie)) is not None
    assert make_manager(secret_keys=["old"]).identify(environ_with(new_cookie)) is None


def test_a_valid_cookie_beside_a_foreign_one_of_the_same_name_still_works(
    manager, workspace_id, ada
):
    pair = cookie_pair(sign_in(manager, ada, workspace_id))
    environ = {"HTTP_COOKIE": f"webwork_sso_session=set-by-a-parent-domain; {pair}"}

    assert manager.identify(environ)[0].id == ada


# -- lifetimes --------------------------------------------------------------------------------


def test_the_idle_lifetime_ends_a_session_nobody_uses(make_manager, workspace_id, ada):
    clock = Clock()
    manager = make_manager(clock=clock, idle_lifetime=dt.timedelta(minutes=30))
    environ = environ_with(sign_in(manager, ada, workspace_id))

    clock.advance(29 * 60)
    assert manager.identify(environ) is not None
    clock.advance(2 * 60)
    assert manager.identify(environ) is None


def test_use_slides_the_idle_lifetime_by_refreshing_the_cookie(make_manager, workspace_id, ada):
    clock = Clock()
    manager = make_manager(clock=clock, idle_lifetime=dt.timedelta(minutes=30))
    header = sign_in(manager, ada, workspace_id)

    clock.advance(30)
    assert manager.identify(environ_with(header))[1] is None  # under a minute: no new cookie
    clock.advance(31)
    _, refreshed = manager.identify(environ_with(header))
    assert refreshed is not None and refreshed != header
    assert manager.read_cookie(environ_with(refreshed)).last_seen == int(clock.now)
    clock.advance(29 * 60)  # past the first cookie's idle limit, not the refreshed one's
    assert manager.identify(environ_with(header)) is None
    assert manager.identify(environ_with(refreshed)) is not None


def test_the_absolute_lifetime_ends_even_a_busy_session(make_manager, database, workspace_id, ada):
    clock = Clock()
    manager = make_manager(
        clock=clock, absolute_lifetime=dt.timedelta(hours=1), idle_lifetime=dt.timedelta(minutes=30)
    )
    header = sign_in(manager, ada, workspace_id)
    for _ in range(5):  # used every 10 minutes for 50 minutes
        clock.advance(10 * 60)
        member, refreshed = manager.identify(environ_with(header))
        header = refreshed or header

    clock.advance(11 * 60)
    assert manager.identify(environ_with(header)) is None
    # A fresh manager (another worker, cold cache) agrees: the row's expiry says so too.
    assert make_manager(clock=clock).identify(environ_with(header)) is None


def test_a_cookie_from_the_future_is_refused_beyond_a_small_tolerance(
    make_manager, workspace_id, ada
):
    ahead = Clock()
    ahead.advance(30)
    slightly = sign_in(make_manager(clock=ahead), ada, workspace_id)
    ahead.advance(90)
    far = sign_in(make_manager(clock=ahead), ada, workspace_id)
    manager = make_manager()

    assert manager.identify(environ_with(slightly)) is not None  # another host's clock
    assert manager.identify(environ_with(far)) is None


def test_the_idle_lifetime_ends_at_exactly_its_length(make_manager, workspace_id, ada):
    clock = Clock()
    manager = make_manager(clock=clock, idle_lifetime=dt.timedelta(minutes=30))
    environ = environ_with(sign_in(manager, ada, workspace_id))

    clock.advance(30 * 60 - 1)
    assert manager.identify(environ) is not None
    clock.advance(1)
    assert manager.identify(environ) is None


def test_the_absolute_lifetime_ends_at_exactly_its_length_in_the_cookie_and_in_the_row(
    make_manager, workspace_id, ada
):
    clock = Clock()
    hour = make_manager(
        clock=clock, absolute_lifetime=dt.timedelta(hours=1), idle_lifetime=dt.timedelta(hours=2)
    )
    environ = environ_with(sign_in(hour, ada, workspace_id))
    # A worker configured with a longer lifetime passes the cookie: the row's expiry alone
    # must end the session, even while that worker's cached answer is still fresh.
    longer = make_manager(
        clock=clock,
        absolute_lifetime=dt.timedelta(hours=3),
        idle_lifetime=dt.timedelta(hours=2),
        recheck_interval=dt.timedelta(seconds=60),
    )

    # And the other way round: a session whose row lives 3 hours, read by the 1-hour worker,
    # ends at 1 hour through the cookie's own timestamps alone.
    longer_lived = environ_with(sign_in(longer, ada, workspace_id))

    clock.advance(3600 - 1)
    assert hour.identify(environ) is not None and longer.identify(environ) is not None
    assert hour.identify(longer_lived) is not None
    clock.advance(1)
    assert hour.identify(environ) is None
    assert longer.read_cookie(environ) is not None  # its own cookie check lets it through
    assert longer.identify(environ) is None
    assert hour.identify(longer_lived) is None
    assert longer.identify(longer_lived) is not None  # the row is still live


@pytest.mark.parametrize(
    "idle, refresh_after",
    [
        (dt.timedelta(minutes=30), 60),  # a minute, the most
        (dt.timedelta(seconds=60), 30),  # a short idle lifetime: half of it, so it never lapses
    ],
    ids=["a minute", "half a short idle lifetime"],
)
def test_the_cookie_is_refreshed_once_its_refresh_interval_has_passed(
    make_manager, workspace_id, ada, idle: dt.timedelta, refresh_after: int
):
    clock = Clock()
    manager = make_manager(clock=clock, idle_lifetime=idle)
    environ = environ_with(sign_in(manager, ada, workspace_id))

    clock.advance(refresh_after - 1)
    assert manager.identify(environ)[1] is None
    clock.advance(1)
    _, refreshed = manager.identify(environ)
    assert refreshed is not None
    assert manager.read_cookie(environ_with(refreshed)).last_seen == int(clock.now)


def test_a_cookie_refreshed_by_a_host_whose_clock_runs_ahead_passes_only_within_the_tolerance(
    make_manager, workspace_id, ada
):
    # Signed in here, then used on a worker whose clock runs ahead: that worker re-issues the
    # cookie with a last_seen in our future (issued_at stays in our past).
    clock = Clock()
    manager = make_manager(clock=clock)
    header = sign_in(manager, ada, workspace_id)
    refreshed = {}
    for seconds_ahead in (60, 61, 3600):
        ahead = make_manager(clock=Clock(clock.now + seconds_ahead))
        _, refreshed[seconds_ahead] = ahead.identify(environ_with(header))
        cookie = ahead.read_cookie(environ_with(refreshed[seconds_ahead]))
        assert (cookie.issued_at, cookie.last_seen) == (clock.now, clock.now + seconds_ahead)

    assert manager.identify(environ_with(refreshed[60])) is not None
    assert manager.identify(environ_with(refreshed[61])) is None
    assert manager.identify(environ_with(refreshed[3600])) is None


def session_serializer(salt: str) -> URLSafeSerializer:
    """What signs session cookies, but with the given salt: anyone holding the site's key
    could sign with it, as every other signed token of the site does."""
    return URLSafeSerializer([KEY], salt=salt, signer_kwargs={"digest_method": hashlib.sha256})


def with_value(value: str) -> dict[str, Any]:
    return {"HTTP_COOKIE": f"webwork_sso_session={value}"}


def test_a_cookie_signed_with_the_same_key_for_another_purpose_is_refused(
    manager, workspace_id, ada
):
    value = cookie_pair(sign_in(manager, ada, workspace_id)).split("=", 1)[1]
    payload = session_serializer("webwork_sso.session").loads(value)
    # The same payload re-signed with the session salt passes: the forgery itself is sound.
    assert manager.identify(with_value(session_serializer("webwork_sso.session").dumps(payload)))

    others = [purpose.salt for purpose in Purpose if purpose is not Purpose.SESSION]
    assert len(others) == 8  # every other thing the site signs
    for salt in (*others, "itsdangerous", ""):  # the library's default salt, and none
        forged = session_serializer(salt).dumps(payload)
        assert manager.identify(with_value(forged)) is None, salt


def test_a_cookie_naming_another_member_workspace_or_generation_than_its_row_is_refused(
    manager, database, workspace_id, ada
):
    # Only a holder of the key could sign one; the row stays the authority all the same.
    grace = add_member(database, workspace_id, "grace@acme.test")
    value = cookie_pair(sign_in(manager, ada, workspace_id)).split("=", 1)[1]
    signer = session_serializer("webwork_sso.session")
    payload = signer.loads(value)
    assert manager.identify(with_value(signer.dumps(payload)))[0].id == ada

    for index, other in ((2, grace), (3, workspace_id + 1), (4, payload[4] + 1)):
        forged = [*payload]
        forged[index] = other
        assert manager.identify(with_value(signer.dumps(forged))) is None, index


def test_a_cookie_whose_last_seen_precedes_its_issue_is_refused(manager, workspace_id, ada):
    value = cookie_pair(sign_in(manager, ada, workspace_id)).split("=", 1)[1]
    signer = session_serializer("webwork_sso.session")
    payload = signer.loads(value)
    payload[6] = payload[5] - 1  # last_seen one second before issued_at

    assert manager.identify(with_value(signer.dumps(payload))) is None


def signed_payload(manager: SessionManager, member_id: str, workspace_id: int) -> list[Any]:
    """What a real session cookie of the member carries, as its signer sees it."""
    value = cookie_pair(sign_in(manager, member_id, workspace_id)).split("=", 1)[1]
    return session_serializer("webwork_sso.session").loads(value)


def signed_value_of_length(payload: list[Any], length: int) -> str:
    """The payload, its session id padded until the signed value is ``length`` long."""
    signer = session_serializer("webwork_sso.session")
    # A padding letter adds one or two characters (compressed, then base64), so one padding
    # can step over a length: try a few, each the same on every run.
    for seed in range(20):
        noise = random.Random(seed)
        padding = "".join(noise.choice(string.ascii_letters) for _ in range(length))
        start = max(0, int((length - len(signer.dumps(payload))) * 0.8))
        for size in [*range(start, length), *range(start)]:
            value = signer.dumps([payload[0], payload[1] + padding[:size], *payload[2:]])
            if len(value) == length:
                return value
            if len(value) > length:
                break
    raise AssertionError(f"no padding gives {length} characters")


@pytest.mark.parametrize("secure", [True, False])
@pytest.mark.parametrize("name", ["webwork_sso_session", "tracker_session"])
def test_the_set_cookie_header_is_what_werkzeug_writes(
    make_manager, workspace_id, ada, secure, name
):
    """The attributes are written once, at construction: each header is still dump_cookie's."""
    manager = make_manager(secure=secure, cookie_name=name)
    set_cookie = sign_in(manager, ada, workspace_id)
    value = cookie_pair(set_cookie).split("=", 1)[1]

    assert set_cookie == dump_cookie(
        name, value, path="/", secure=secure, httponly=True, samesite="Lax"
    )


def test_a_cookie_is_signed_uncompressed_and_a_compressed_one_still_reads(
    manager, workspace_id, ada
):
    """Cookies are no longer zlib-compressed; those issued compressed before still verify."""
    payload = signed_payload(manager, ada, workspace_id)
    # zlib would shrink about half of them by a few bytes: none of twenty is compressed.
    values = [cookie_pair(sign_in(manager, ada, workspace_id)).split("=", 1)[1] for _ in range(20)]
    assert not any(v.startswith(".") for v in values)  # itsdangerous's mark of compression
    # One issued before, compressed (plain itsdangerous compresses a payload that shrinks).
    before = session_serializer("webwork_sso.session").dumps(
        [payload[0], payload[1] + "x" * 200, *payload[2:]]
    )
    assert before.startswith(".")
    assert manager.read_cookie(with_value(before)) is not None


def test_a_cookie_of_up_to_4096_characters_is_read_and_a_longer_one_is_not(
    manager, workspace_id, ada
):
    payload = signed_payload(manager, ada, workspace_id)

    assert manager.read_cookie(with_value(signed_value_of_length(payload, 4096))) is not None
    assert manager.read_cookie(with_value(signed_value_of_length(payload, 4097))) is None


def forged_shapes(payload: list[Any]) -> dict[str, Any]:
    """Payloads a holder of the key could sign that are not a session cookie of ours."""

    def with_field(index: int, value: Any) -> list[Any]:
        return [*payload[:index], value, *payload[index + 1 :]]

    return {
        "a dict of seven entries": {str(i): v for i, v in enumerate(payload)},
        "a number": 7,
        "a string of seven": "1234567",
        "a list of six": payload[:6],
        "a list of eight": [*payload, payload[-1]],
        "another format": with_field(0, 2),
        "a session id that is a number": with_field(1, 12345),
        "a member id that is a list": with_field(2, [payload[2]]),
        "a workspace id that is a string": with_field(3, str(payload[3])),
        "a generation that is a float": with_field(4, float(payload[4])),
        "an issued_at that is a float": with_field(5, float(payload[5])),
        "a last_seen that is a float": with_field(6, float(payload[6])),
        "a generation that is a boolean": with_field(4, False),
    }


def test_a_correctly_signed_cookie_of_another_shape_is_refused(manager, workspace_id, ada):
    payload = signed_payload(manager, ada, workspace_id)
    signer = session_serializer("webwork_sso.session")
    assert manager.identify(with_value(signer.dumps(payload)))[0].id == ada  # the forgery works

    for shape, forged in forged_shapes(payload).items():
        environ = with_value(signer.dumps(forged))
        assert manager.read_cookie(environ) is None, shape
        assert manager.identify(environ) is None, shape


def test_at_most_four_cookies_of_the_name_are_tried(manager, workspace_id, ada):
    pair = cookie_pair(sign_in(manager, ada, workspace_id))
    foreign = [f"webwork_sso_session=set-by-a-parent-domain-{i}" for i in range(4)]

    assert manager.identify({"HTTP_COOKIE": "; ".join([*foreign[:3], pair])})[0].id == ada
    assert manager.identify({"HTTP_COOKIE": "; ".join([*foreign, pair])}) is None


# -- the cache and the revocation bound ------------------------------------------------------


def test_a_signed_in_request_costs_no_query_within_the_recheck_interval(
    make_manager, database, workspace_id, ada
):
    manager = make_manager(recheck_interval=dt.timedelta(seconds=60))
    environ = environ_with(sign_in(manager, ada, workspace_id))

    with counting_statements(database) as statements:
        manager.identify(environ)
    assert len(statements) == 1  # one query: session, member, workspace, email and groups

    with counting_statements(database) as statements:
        for _ in range(200):
            assert manager.identify(environ)[0].id == ada
    assert statements == []


def test_the_session_is_asked_again_after_the_recheck_interval(
    make_manager, database, workspace_id, ada
):
    manager = make_manager(recheck_interval=dt.timedelta(seconds=0.2))
    environ = environ_with(sign_in(manager, ada, workspace_id))
    manager.identify(environ)

    time.sleep(0.25)
    with counting_statements(database) as statements:
        manager.identify(environ)
        manager.identify(environ)
    assert len(statements) == 1


def test_a_change_made_by_another_worker_is_seen_within_the_recheck_interval(
    make_manager, database, workspace_id, ada
):
    # Core SQL, as another process would see it: no ORM event reaches this process's caches.
    manager = make_manager(recheck_interval=dt.timedelta(seconds=0.3))
    environ = environ_with(sign_in(manager, ada, workspace_id))
    assert manager.identify(environ) is not None
    with transaction(database, write=True) as unit:
        unit.connection.execute(
            update(MemberRow.__table__)
            .where(MemberRow.id == ada)
            .values(session_generation=MemberRow.session_generation + 1)
        )
    changed = time.monotonic()

    assert manager.identify(environ) is not None  # the cached answer, by design
    wait_until(lambda: manager.identify(environ) is None, timeout=1.0)
    assert time.monotonic() - changed <= 0.3 + 0.15


def test_the_cache_is_bounded_and_keeps_the_recently_used(make_manager, database, workspace_id):
    manager = make_manager(cache_size=3, recheck_interval=dt.timedelta(seconds=60))
    environs = [
        environ_with(
            sign_in(manager, add_member(database, workspace_id, f"m{i}@acme.test"), workspace_id)
        )
        for i in range(5)
    ]
    for environ in environs:
        manager.identify(environ)
    assert len(manager.cache) == 3

    with counting_statements(database) as statements:
        manager.identify(environs[-1])  # still cached
    assert statements == []
    with counting_statements(database) as statements:
        manager.identify(environs[0])  # evicted long ago
    assert len(statements) == 1
    assert len(manager.cache) == 3


def test_many_threads_share_one_cache(make_manager, database, workspace_id):
    manager = make_manager(cache_size=8)
    environs = [
        environ_with(
            sign_in(manager, add_member(database, workspace_id, f"t{i}@acme.test"), workspace_id)
        )
        for i in range(12)
    ]
    failures: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(60):
                environ = environs[(offset + i) % len(environs)]
                assert manager.identify(environ) is not None
        except BaseException as exc:  # noqa: BLE001 - reported below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(manager.cache) <= 8


def test_an_unreachable_database_means_no_identity_not_an_error(
    manager, workspace_id, ada, tmp_path
):
    header = sign_in(manager, ada, workspace_id)
    broken = Database(f"sqlite:///{tmp_path}/missing/dir/x.db", auto_migrate=False)
    try:
        elsewhere = SessionManager(broken, signing=Signing([KEY]), secure=True)
        assert elsewhere.identify(environ_with(header)) is None
    finally:
        broken.dispose()


# -- ending sessions --------------------------------------------------------------------------


def test_deactivation_through_scim_ends_the_session_within_the_recheck_interval(
    scim_server, make_manager
):
    member_id = provision(scim_server, "grace@scimco.test")
    manager = make_manager(recheck_interval=dt.timedelta(seconds=0.2))
    environ = environ_with(sign_in(manager, member_id, scim_server.workspace_id))
    assert manager.identify(environ)[0].user_name == "grace@scimco.test"

    set_active(scim_server, member_id, False)

    assert wait_until(lambda: manager.identify(environ) is None, timeout=1.0) <= 0.2 + 0.15


def test_reactivation_does_not_revive_old_sessions(scim_server, make_manager):
    member_id = provision(scim_server, "hedy@scimco.test")
    manager = make_manager(recheck_interval=dt.timedelta(0))
    old = environ_with(sign_in(manager, member_id, scim_server.workspace_id))

    set_active(scim_server, member_id, False)
    assert manager.identify(old) is None
    set_active(scim_server, member_id, True)

    assert manager.identify(old) is None  # the generation moved on for good
    fresh = environ_with(sign_in(manager, member_id, scim_server.workspace_id))
    assert manager.identify(fresh)[0].id == member_id


def test_deletion_through_scim_ends_the_session(scim_server, make_manager):
    member_id = provision(scim_server, "joan@scimco.test")
    manager = make_manager(recheck_interval=dt.timedelta(0))
    environ = environ_with(sign_in(manager, member_id, scim_server.workspace_id))

    gone = scim_server.delete(f"{scim_server.base}/Users/{member_id}")

    assert gone.status_code == 204
    assert manager.identify(environ) is None


@pytest.mark.parametrize("secure", [True, False], ids=["https", "http"])
def test_the_clearing_cookie_expires_at_once_for_the_whole_site(
    make_manager, workspace_id, ada, secure
):
    manager = make_manager(secure=secure)
    clearing = manager.end(environ_with(sign_in(manager, ada, workspace_id)))

    pair, *attributes = [part.strip() for part in clearing.split(";")]
    assert pair == "webwork_sso_session="
    assert {"HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=0"} <= set(attributes)
    assert ("Secure" in attributes) is secure
    # Long past, for a client that ignores Max-Age even when its clock runs well behind.
    expires = parse_date(next(a for a in attributes if a.startswith("Expires="))[8:])
    assert expires < dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
    assert manager.clearing_cookie() == clearing


def test_a_request_without_the_cookie_has_no_session_and_ending_it_writes_nothing(
    manager, database, workspace_id, ada
):
    sign_in(manager, ada, workspace_id)

    for environ in ({}, {"HTTP_COOKIE": ""}, {"HTTP_COOKIE": "another_cookie=1"}):
        assert manager.read_cookie(environ) is None and manager.identify(environ) is None
        with counting_statements(database) as statements:
            clearing = manager.end(environ)
        assert statements == [] and clearing == manager.clearing_cookie()


def test_end_is_final_even_when_the_cookie_is_replayed(make_manager, workspace_id, ada):
    this_worker = make_manager(recheck_interval=dt.timedelta(seconds=60))
    other_worker = make_manager(recheck_interval=dt.timedelta(seconds=0.3))
    environ = environ_with(sign_in(this_worker, ada, workspace_id))
    assert this_worker.identify(environ) and other_worker.identify(environ)

    clearing = this_worker.end(environ)

    assert "Max-Age=0" in clearing and cookie_pair(clearing) == "webwork_sso_session="
    assert this_worker.identify(environ) is None  # at once, despite a 60 s interval
    assert make_manager().identify(environ) is None  # a worker that never saw it
    assert wait_until(lambda: other_worker.identify(environ) is None, timeout=1.0) <= 0.3 + 0.15
    this_worker.end(environ)  # ending twice is harmless


def test_sign_out_everywhere_ends_every_session_of_the_member_only(
    make_manager, database, workspace_id, ada
):
    manager = make_manager(recheck_interval=dt.timedelta(seconds=60))
    grace = add_member(database, workspace_id, "grace@acme.test")
    laptop, phone = (environ_with(sign_in(manager, ada, workspace_id)) for _ in range(2))
    other = environ_with(sign_in(manager, grace, workspace_id))
    for environ in (laptop, phone, other):
        assert manager.identify(environ) is not None

    manager.sign_out_everywhere(ada, actor="owner@acme.test")

    assert manager.identify(laptop) is None and manager.identify(phone) is None
    assert manager.identify(other)[0].id == grace
    assert manager.identify(environ_with(sign_in(manager, ada, workspace_id)))[0].id == ada
    with transaction(database) as unit:
        event_ = unit.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "signed_out")
        ).one()
        assert (event_.actor, event_.target_id) == ("owner@acme.test", ada)
        generation = unit.session.get(MemberRow, ada).session_generation
    assert generation == 1
    with pytest.raises(NotFound):
        manager.sign_out_everywhere("no-such-member")


def test_sign_out_everywhere_ends_no_other_members_sessions_in_the_database(
    make_manager, database, workspace_id, ada
):
    manager = make_manager(recheck_interval=dt.timedelta(seconds=60))
    grace = add_member(database, workspace_id, "grace@acme.test")
    mine = environ_with(sign_in(manager, ada, workspace_id))
    hers = environ_with(sign_in(manager, grace, workspace_id))

    manager.sign_out_everywhere(ada)  # the default actor: the site's operator

    # Asked by a worker whose cache is empty, so the database answers, not a cached check.
    cold = make_manager(recheck_interval=dt.timedelta(0))
    assert cold.identify(mine) is None
    assert cold.identify(hers)[0].id == grace
    with transaction(database) as unit:
        rows = unit.session.execute(select(MemberRow.id, MemberRow.session_generation)).all()
        ended = dict(
            unit.session.execute(select(MemberSession.member_id, MemberSession.ended_at)).all()
        )
    assert dict(rows) == {ada: 1, grace: 0}
    assert ended[ada] is not None and ended[grace] is None
    with transaction(database) as unit:
        audited = unit.session.execute(
            select(AuditEvent.actor, AuditEvent.target_type).where(
                AuditEvent.action == "signed_out"
            )
        ).one()
    assert tuple(audited) == ("admin", "member")


@dataclasses.dataclass(frozen=True)
class Scene:
    """What a change that ends a session is made to."""

    member_id: str
    workspace_id: int
    other_workspace_id: int
    now: dt.datetime


SESSIONS = MemberSession.__table__
MEMBERS = MemberRow.__table__
WORKSPACES = Workspace.__table__

# Each one alone ends the session, as Core SQL committed by another worker (no local eviction).
ENDINGS: dict[str, Callable[[Scene], Any]] = {
    "ended": lambda s: (
        update(SESSIONS).where(SESSIONS.c.member_id == s.member_id).values(ended_at=s.now)
    ),
    "expired": lambda s: (
        update(SESSIONS).where(SESSIONS.c.member_id == s.member_id).values(expires_at=s.now)
    ),
    "inactive": lambda s: update(MEMBERS).where(MEMBERS.c.id == s.member_id).values(active=False),
    "deleted": lambda s: (
        update(MEMBERS).where(MEMBERS.c.id == s.member_id).values(deleted_at=s.now)
    ),
    "generation-bumped": lambda s: (
        update(MEMBERS)
        .where(MEMBERS.c.id == s.member_id)
        .values(session_generation=MEMBERS.c.session_generation + 1)
    ),
    "member-of-another-workspace": lambda s: (
        update(MEMBERS).where(MEMBERS.c.id == s.member_id).values(workspace_id=s.other_workspace_id)
    ),
    "sso-off": lambda s: (
        update(WORKSPACES).where(WORKSPACES.c.id == s.workspace_id).values(sso_enabled=False)
    ),
    "plan-without-sso": lambda s: (
        update(WORKSPACES).where(WORKSPACES.c.id == s.workspace_id).values(plan="free")
    ),
}


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
def test_each_condition_alone_ends_the_session(make_manager, database, workspace_id, ada, ending):
    clock = Clock()
    manager = make_manager(clock=clock, recheck_interval=dt.timedelta(0))  # always asks
    environ = environ_with(sign_in(manager, ada, workspace_id))
    scene = Scene(
        ada,
        workspace_id,
        create_workspace(database, "globex"),
        dt.datetime.fromtimestamp(clock.now, dt.UTC),
    )
    assert manager.identify(environ) is not None

    with transaction(database, write=True) as unit:
        unit.connection.execute(ending(scene))

    assert manager.identify(environ) is None
    assert make_manager(clock=clock).identify(environ) is None  # a cold cache agrees


def test_a_session_whose_row_expires_a_second_from_now_still_lives(
    make_manager, database, workspace_id, ada
):
    clock = Clock()
    manager = make_manager(clock=clock, recheck_interval=dt.timedelta(0))
    environ = environ_with(sign_in(manager, ada, workspace_id))

    with transaction(database, write=True) as unit:
        unit.connection.execute(
            update(SESSIONS).values(expires_at=dt.datetime.fromtimestamp(clock.now + 1, dt.UTC))
        )

    assert manager.identify(environ) is not None
    clock.advance(1)
    assert manager.identify(environ) is None


def test_switching_sso_off_ends_the_workspaces_sessions(make_manager, database, workspace_id, ada):
    manager = make_manager(recheck_interval=dt.timedelta(0))
    environ = environ_with(sign_in(manager, ada, workspace_id))

    Workspaces(database).disable("acme", sso=True)

    assert manager.identify(environ) is None


@pytest.mark.parametrize(
    "switch_off, switch_on",
    [
        (lambda w: w.disable("acme", sso=True), lambda w: w.enable("acme", sso=True)),
        (
            lambda w: w.set_plan("acme", "free"),
            lambda w: (w.set_plan("acme", "premium"), w.enable("acme", sso=True)),
        ),
    ],
    ids=["sso-switch", "free-plan"],
)
def test_sessions_ended_by_sso_off_stay_ended_when_it_comes_back(
    manager, database, workspace_id, ada, switch_off, switch_on
):
    globex_id = create_workspace(database, "globex")
    bea = add_member(database, globex_id, "bea@globex.test")
    environ = environ_with(sign_in(manager, ada, workspace_id))
    other = environ_with(sign_in(manager, bea, globex_id))
    assert manager.identify(environ) is not None and manager.identify(other) is not None

    switch_off(Workspaces(database))
    # Evicted from this process's cache at commit: no wait for the recheck interval.
    assert manager.identify(environ) is None
    switch_on(Workspaces(database))
    assert manager.identify(environ) is None
    assert make_manager_fresh(manager).identify(environ) is None  # a cold cache agrees
    with transaction(database) as unit:
        ended = dict(
            unit.session.execute(select(MemberSession.member_id, MemberSession.ended_at)).all()
        )
    assert ended[ada] is not None and ended[bea] is None
    found = manager.identify(other)  # another workspace's session is untouched
    assert found is not None and found[0].user_name == "bea@globex.test"


def make_manager_fresh(manager: SessionManager) -> SessionManager:
    """Another manager on the same database (another worker): its cache starts empty."""
    return SessionManager(manager.database, signing=Signing([KEY]), secure=True)


def test_expired_rows_are_purged(make_manager, database, workspace_id, ada):
    clock = Clock()
    manager = make_manager(clock=clock)
    for _ in range(3):
        sign_in(manager, ada, workspace_id)
    clock.advance(13 * 3600)

    assert manager.purge_expired() == 3
    sign_in(make_manager(clock=clock), ada, workspace_id)  # start purges too, now and then
    with transaction(database) as unit:
        assert unit.session.scalar(select(func.count()).select_from(MemberSession)) == 1


def count_session_rows(database: Database) -> int:
    with transaction(database) as unit:
        return unit.session.scalar(select(func.count()).select_from(MemberSession))


def test_a_row_is_purged_only_once_its_expiry_has_passed(make_manager, database, workspace_id, ada):
    clock = Clock()
    manager = make_manager(clock=clock, absolute_lifetime=dt.timedelta(hours=1))
    sign_in(manager, ada, workspace_id)

    clock.advance(3600)  # expires_at == now: dead, but not yet past
    assert manager.purge_expired() == 0
    assert count_session_rows(database) == 1
    clock.advance(1)
    assert manager.purge_expired() == 1
    assert count_session_rows(database) == 0
    assert manager.purge_expired() == 0


def test_start_purges_expired_rows_at_most_once_per_ten_minutes_per_manager(
    make_manager, database, workspace_id, ada
):
    clock = Clock()
    worker = make_manager(clock=clock)
    for _ in range(2):
        sign_in(worker, ada, workspace_id)  # the first purges (nothing yet)
    clock.advance(13 * 3600)

    sign_in(worker, ada, workspace_id)  # within ten minutes (monotonic) of its last purge
    assert count_session_rows(database) == 3
    sign_in(make_manager(clock=clock), ada, workspace_id)  # another worker's first start
    assert count_session_rows(database) == 2  # the two expired rows went


# -- another process --------------------------------------------------------------------------

WORKER = r"""
import json
from werkzeug.serving import make_server
from webwork_sso_middleware import SSOMiddleware

def host(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"remote_user": environ.get("REMOTE_USER")}).encode()]

server = make_server("127.0.0.1", 0, SSOMiddleware(host), threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture
def other_process(database_url: str) -> Iterator[str]:
    """A second worker process on the same database, configured from the environment."""
    env = {
        **os.environ,
        "WEBWORK_SSO_DATABASE_URL": database_url,
        "WEBWORK_SSO_SECRET_KEY": KEY,
        "WEBWORK_SSO_SESSION_RECHECK_SECONDS": "0.3",
        "WEBWORK_SSO_AUTO_MIGRATE": "false",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        port = process.stdout.readline().strip()  # type: ignore[union-attr]
        assert port, process.stderr.read()  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def test_another_process_ends_the_session_within_the_recheck_interval(
    scim_server, make_manager, other_process
):
    member_id = provision(scim_server, "ada@scimco.test")
    pair = cookie_pair(sign_in(make_manager(), member_id, scim_server.workspace_id))

    def remote_user() -> str | None:
        return requests.get(other_process, headers={"Cookie": pair}, timeout=5).json()[
            "remote_user"
        ]

    assert remote_user() == "ada@scimco.test"
    set_active(scim_server, member_id, False)

    assert wait_until(lambda: remote_user() is None, timeout=2.0) <= 0.3 + 0.3


def test_revocation_listeners_stay_on_the_stores_engine(make_manager, database):
    make_manager()
    make_manager()  # a second manager on the same database attaches nothing more
    host_engine = create_engine("sqlite://")  # the host app's own SQLAlchemy
    try:
        # Commits are heard in Database._unit itself: no engine carries a hook of ours.
        assert not event.contains(database.engine, "commit", database._on_commit)
        assert not event.contains(Engine, "commit", database._on_commit)
        assert not event.contains(host_engine, "commit", database._on_commit)
        assert not event.contains(Session, "after_flush", session_store._hand_to_connection)
        assert event.contains(StoreSession, "after_flush", session_store._hand_to_connection)
    finally:
        host_engine.dispose()


def test_each_manager_hears_its_own_database_only(
    make_manager, database, workspace_id, ada, tmp_path
):
    """No process-wide registry: a cache is registered with the database of its owner."""
    manager = make_manager()
    environ = environ_with(sign_in(manager, ada, workspace_id))
    elsewhere = Database(f"sqlite:///{tmp_path}/elsewhere.db")
    try:
        assert manager.identify(environ) is not None and len(manager.cache) == 1
        elsewhere.sessions_ended([ada])  # another site's database in the same process
        assert len(manager.cache) == 1
        database.sessions_ended([ada])
        assert len(manager.cache) == 0
    finally:
        elsewhere.dispose()


def test_a_dropped_manager_leaves_no_listener_behind(database, make_manager):
    make_manager()
    gc.collect()
    database.sessions_ended(["anyone"])  # the dead cache's listener is pruned, not called
    assert database._sessions_ended_listeners == []


def test_signing_out_everywhere_is_no_change_to_the_scim_resource(
    make_manager, database, workspace_id, ada
):
    """The member's SCIM resource (its version and lastModified) stays as it was: which devices
    are signed in is not part of it, and a provisioning client must not see a change."""
    manager = make_manager()
    with transaction(database) as unit:
        before = unit.session.execute(
            select(MemberRow.modified_at, MemberRow.version).where(MemberRow.id == ada)
        ).one()
    manager.sign_out_everywhere(ada)
    with transaction(database) as unit:
        after = unit.session.execute(
            select(MemberRow.modified_at, MemberRow.version, MemberRow.session_generation).where(
                MemberRow.id == ada
            )
        ).one()
    assert (after.modified_at, after.version) == (before.modified_at, before.version)
    assert after.session_generation == 1


def test_one_purge_deletes_at_most_a_thousand_rows(make_manager, database, workspace_id, ada):
    """Bounded work per call: a backlog goes in batches, whatever transaction carries it."""
    clock = Clock()
    manager = make_manager(clock=clock)
    past = dt.datetime.fromtimestamp(clock.now - 60, dt.UTC)
    with transaction(database) as unit:
        unit.session.execute(
            MemberSession.__table__.insert(),
            [
                {
                    "id_hash": f"{n:064x}",
                    "member_id": ada,
                    "workspace_id": workspace_id,
                    "generation": 0,
                    "created_at": past,
                    "expires_at": past,
                }
                for n in range(1001)
            ],
        )
    assert manager.purge_expired() == 1000
    assert manager.purge_expired() == 1
    assert count_session_rows(database) == 0


def test_a_cookie_written_in_format_1_keeps_working(manager, workspace_id, ada):
    """Cookies outlive releases: the format tag a browser holds today is 1, and a payload so
    tagged is read (another tag would sign every member out on upgrade)."""
    payload = signed_payload(manager, ada, workspace_id)
    assert payload[0] == 1
    literal = [1, *payload[1:]]
    assert manager.identify(with_value(session_serializer("webwork_sso.session").dumps(literal)))


def test_a_read_cookie_is_an_immutable_value(manager, workspace_id, ada):
    cookie = manager.read_cookie(environ_with(sign_in(manager, ada, workspace_id)))
    assert cookie is not None and cookie.member_id == ada
    with pytest.raises(dataclasses.FrozenInstanceError):
        cookie.member_id = "someone-else"  # type: ignore[misc]


def test_errors_name_what_was_missing(make_manager, database, workspace_id):
    with pytest.raises(ConfigurationError, match="at least one non-empty key is required"):
        make_manager(secret_keys=[])
    manager = make_manager()
    with pytest.raises(NotFound) as no_member:
        manager.sign_out_everywhere("no-such-member")
    assert no_member.value.kind == "member"
    with transaction(database) as unit, pytest.raises(NotFound) as inactive:
        manager.start("no-such-member", workspace_id, unit)
    assert inactive.value.kind == "active member"


@pytest.mark.parametrize(
    "header",
    [
        "webwork_sso_session=abc.def",
        "a=1; webwork_sso_session=abc.def; b=2",
        "webwork_sso_session=one;webwork_sso_session=two",
        "  webwork_sso_session = spaced ; other=x",
        "webwork_sso_session",
        "webwork_sso_session=",
        "webwork_sso_session_other=no; xwebwork_sso_session=no",
        'webwork_sso_session="quoted\\"value"; webwork_sso_session=plain',
        "webwork_sso_session=caf\u00c3\u00a9",
        "unrelated=1; other=2",
    ],
)
def test_the_cookie_header_is_read_as_werkzeug_reads_it(header):
    from werkzeug.http import parse_cookie

    from webwork_sso_middleware.sessions.manager import cookie_values

    assert cookie_values(header, "webwork_sso_session") == parse_cookie(header).getlist(
        "webwork_sso_session"
    )


def test_a_cookie_name_werkzeug_would_encode_is_refused(make_manager):
    # The cookie's attributes are written once, after the name as given: a name werkzeug
    # encodes (non-ASCII) would make every cookie header wrong, so it fails at start-up.
    with pytest.raises(ValueError, match="not a plain cookie name"):
        make_manager(cookie_name="café")


def test_a_saml_sign_in_keeps_its_subject_with_the_session(manager, ada, workspace_id):
    subject = SamlSubject(
        "ada@acme.test",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "https://idp.test",
        None,
        "_s1",
    )
    with transaction(manager.database, write=True) as unit:
        cookie = manager.start(ada, workspace_id, unit, saml_subject=subject)
    plain = sign_in(manager, ada, workspace_id)

    def kept(set_cookie: str) -> Any:
        id_hash = manager.read_cookie(environ_with(set_cookie)).id_hash
        return manager.database.run(
            lambda unit: session_store.saml_subject(unit, id_hash), write=False
        )

    row = kept(cookie)
    assert (row.saml_name_id, row.saml_name_id_format) == (subject.name_id, subject.name_id_format)
    assert (row.saml_name_qualifier, row.saml_sp_name_qualifier, row.saml_session_index) == (
        "https://idp.test",
        None,
        "_s1",
    )
    assert kept(plain).saml_name_id is None  # no SAML sign-in, no subject
    assert manager.identify(environ_with(cookie)) is not None
