"""Token guessing: the 401 format, the constant-time check, and failures recorded and slowed
per source (scim/throttle.py): past the limit, 429 with Retry-After for every request without
a right token, while a right token still works from that source and other sources go on."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Any

import pytest
import requests
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from webtest import TestApp

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.scim import throttle as throttle_module
from webwork_sso_middleware.scim.throttle import (
    AUTH_FAILURE_LIMIT,
    AUTH_FAILURE_WINDOW,
    AuthThrottle,
    source_of,
)
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import workspaces as workspace_store
from webwork_sso_middleware.store.workspaces import find_credential, hash_token

from ..conftest import LiveServer
from ..constants import SCIM_JSON
from ..scim.conftest import okta_user
from ..store_helpers import transaction
from .scim_support import Tenant, check_answer, new_middleware

LIMIT = AUTH_FAILURE_LIMIT
ATTACKER = "203.0.113.7"
BYSTANDER = "198.51.100.20"


@pytest.fixture
def acme(middleware: SSOMiddleware) -> Tenant:
    return Tenant(middleware, "acme")


def get(app: Any, token: str | None, source: str, status: int | str = "*") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return app.get(
        "/scim/v2/Users", headers=headers, status=status, extra_environ={"REMOTE_ADDR": source}
    )


def failures(database: Database, source: str) -> int:
    with database.engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT coalesce(sum(failures), 0) FROM scim_auth_failures WHERE source = :s"),
                {"s": source},
            ).scalar_one()
        )


def assert_throttled(response: Any) -> int:
    check_answer(response, {429: {None}})
    wait = int(response.headers["Retry-After"])
    assert 1 <= wait <= AUTH_FAILURE_WINDOW.total_seconds()
    return wait


# -- 401 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong",
        "Basic dXNlcjpwYXNz",
        "Bearer " + "x" * 600,
        "wwsso_" + "A" * 43,
    ],
)
def test_every_refused_token_is_a_scim_401(
    middleware: SSOMiddleware, acme: Tenant, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = TestApp(middleware).get(
        "/scim/v2/Users", headers=headers, status=401, extra_environ={"REMOTE_ADDR": ATTACKER}
    )
    body = check_answer(response, {401: {None}})
    assert body is not None and "token" in body["detail"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="SCIM"'
    assert acme.token not in response.text


def test_only_presented_tokens_count_as_failures(middleware: SSOMiddleware, acme: Tenant) -> None:
    app = TestApp(middleware)
    get(app, None, ATTACKER, 401)  # no token: guesses nothing
    app.get(
        "/scim/v2/Users",
        headers={"Authorization": "Bearer " + "x" * 600},
        status=401,
        extra_environ={"REMOTE_ADDR": ATTACKER},
    )  # longer than any token
    assert failures(middleware.database, ATTACKER) == 0
    get(app, "wrong", ATTACKER, 401)
    app.get(
        "/scim/v2/Users",
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
        status=401,
        extra_environ={"REMOTE_ADDR": ATTACKER},
    )  # Okta's header mode reads this as a token
    assert failures(middleware.database, ATTACKER) == 2


# -- the throttle through the app -----------------------------------------------------------


def test_past_the_limit_a_source_gets_429_unless_its_token_is_right(
    middleware: SSOMiddleware, acme: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    app = TestApp(middleware)
    with caplog.at_level(logging.WARNING, logger="webwork_sso_middleware"):
        for attempt in range(LIMIT):
            check_answer(get(app, f"guess-{attempt}", ATTACKER), {401: {None}})
    assert failures(middleware.database, ATTACKER) == LIMIT
    assert any(
        "refusing it (429)" in r.getMessage() and ATTACKER in r.getMessage() for r in caplog.records
    )
    assert_throttled(get(app, "guess-again", ATTACKER))
    assert_throttled(get(app, None, ATTACKER))
    check_answer(get(app, acme.token, ATTACKER), {200: {None}})  # the right token still works
    # Refused requests are not failures: nothing more is written for them.
    assert failures(middleware.database, ATTACKER) == LIMIT
    # Another address is unaffected, whether it holds the token or not.
    check_answer(get(app, acme.token, BYSTANDER), {200: {None}})
    check_answer(get(app, "wrong", BYSTANDER), {401: {None}})
    # Every endpoint is behind the same gate, and lets the right token through.
    for method, path in [
        ("POST", "/scim/v2/Users"),
        ("GET", "/scim/v2/Groups"),
        ("DELETE", "/scim/v2/Users/x"),
        ("POST", "/scim/v2/Groups/.search"),
        ("POST", "/scim/v2/.search"),
        ("POST", "/scim/v2/Bulk"),
    ]:
        for token in ("wrong", acme.token):
            response = app.request(
                path,
                method=method,
                body=b"{}",
                expect_errors=True,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/scim+json",
                },
                environ={"REMOTE_ADDR": ATTACKER},
            )
            if token == "wrong":
                assert_throttled(response)
            else:
                assert response.status_int not in (401, 429), (method, path, response.status)
    # Discovery needs no token, so it is not throttled.
    get_config = app.get("/scim/v2/ServiceProviderConfig", extra_environ={"REMOTE_ADDR": ATTACKER})
    assert get_config.status_int == 200


def test_over_http_a_flood_of_wrong_tokens_leaves_the_right_ones_working(
    middleware: SSOMiddleware, acme: Tenant, serve: Callable[[Any], LiveServer]
) -> None:
    """The finding: behind a proxy every client has one address, and one guesser stopped
    provisioning for every workspace for five minutes. Now the guesser gets 429 (and costs no
    write), while each workspace's right token goes on working from that very address."""
    beta = Tenant(middleware, "beta")
    users = serve(middleware).url + "/scim/v2/Users"

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    with requests.Session() as guesser:
        statuses = [
            guesser.get(users, headers=bearer(f"guess-{n}")).status_code for n in range(3 * LIMIT)
        ]
    assert statuses == [401] * LIMIT + [429] * (2 * LIMIT)
    assert failures(middleware.database, "127.0.0.1") == LIMIT  # the 429s wrote nothing
    for tenant in (acme, beta):
        assert requests.get(users, headers=bearer(tenant.token)).status_code == 200
        created = requests.post(
            users,
            json=okta_user(f"dave@{tenant.slug}.test"),
            headers={**bearer(tenant.token), "Content-Type": SCIM_JSON},
        )
        assert created.status_code == 201, created.text
    refused = requests.get(users, headers=bearer("guess-again"))
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 300
    assert refused.json()["status"] == "429"


def test_the_block_is_logged_once(
    middleware: SSOMiddleware, acme: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    app = TestApp(middleware)
    with caplog.at_level(logging.INFO, logger="webwork_sso_middleware"):
        for attempt in range(LIMIT + 3):
            get(app, f"guess-{attempt}", ATTACKER)
    invalid = [r for r in caplog.records if "invalid token from" in r.getMessage()]
    blocked = [r for r in caplog.records if "refusing it (429)" in r.getMessage()]
    assert len(invalid) == LIMIT and all(ATTACKER in r.getMessage() for r in invalid)
    assert len(blocked) == 1 and blocked[0].levelno == logging.WARNING
    assert acme.token not in caplog.text


def test_a_success_does_not_reset_the_count(middleware: SSOMiddleware, acme: Tenant) -> None:
    """Else one valid token (every tenant has its own) would make guessing unlimited."""
    app = TestApp(middleware)
    for attempt in range(LIMIT - 1):
        get(app, f"guess-{attempt}", ATTACKER, 401)
        get(app, acme.token, ATTACKER, 200)
    get(app, "last-guess", ATTACKER, 401)
    assert_throttled(get(app, "one-more-guess", ATTACKER))
    get(app, acme.token, ATTACKER, 200)


def test_ipv6_clients_count_per_64(middleware: SSOMiddleware, acme: Tenant) -> None:
    app = TestApp(middleware)
    for attempt in range(LIMIT):
        get(app, f"guess-{attempt}", f"2001:db8:1:2::{attempt + 1:x}", 401)
    assert_throttled(get(app, "guess", "2001:db8:1:2:ffff::1"))
    get(app, "guess", "2001:db8:1:3::1", 401)  # the next /64 is someone else
    assert failures(middleware.database, "2001:db8:1:2::/64") == LIMIT


def test_workers_share_the_count(middleware: SSOMiddleware, acme: Tenant) -> None:
    """Two middlewares on one database, as two processes: failures on both add up, and a
    worker that has not seen the block yet learns it at its own first failure."""
    other = new_middleware(middleware.settings.database_url)
    try:
        first, second = TestApp(middleware), TestApp(other)
        for attempt in range(LIMIT // 2):
            get(first, f"a-{attempt}", ATTACKER, 401)
        for attempt in range(LIMIT - LIMIT // 2):
            get(second, f"b-{attempt}", ATTACKER, 401)
        assert_throttled(get(second, "c", ATTACKER))  # second saw the limit reached
        get(second, acme.token, ATTACKER, 200)
        # first has not seen a failure since: it counts this one, consulting the table
        assert_throttled(get(first, "one-more-guess", ATTACKER))
        assert_throttled(get(first, "and-another", ATTACKER))  # now blocked here too
        get(first, acme.token, ATTACKER, 200)
        assert failures(middleware.database, ATTACKER) == LIMIT + 1
    finally:
        other.close()


def test_a_store_failure_while_counting_still_answers_401(
    middleware: SSOMiddleware, acme: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(throttle_module.auth_failures, "record", broken)
    check_answer(get(TestApp(middleware), "wrong", ATTACKER), {401: {None}})


def test_the_success_path_reads_nothing_more(middleware: SSOMiddleware, acme: Tenant) -> None:
    """No query about failures on a request whose token is right, and for a request refused
    by the gate only the token's look-up: nothing written, nothing about failures."""
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    app = TestApp(middleware)
    get(app, acme.token, ATTACKER, 200)  # warm: migrations, caches
    event.listen(middleware.database.engine, "before_cursor_execute", seen)
    try:
        get(app, acme.token, ATTACKER, 200)
        assert statements and not any("scim_auth_failures" in s for s in statements)
        for attempt in range(LIMIT):
            get(app, f"guess-{attempt}", ATTACKER, 401)
        assert any("scim_auth_failures" in s for s in statements)
        statements.clear()
        assert_throttled(get(app, "guess-again", ATTACKER))
        assert len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT")
        assert "scim_tokens" in statements[0]
        # A blocked source elsewhere costs the others nothing but a dict lookup.
        get(app, acme.token, BYSTANDER, 200)
        assert not any("scim_auth_failures" in s for s in statements)
    finally:
        event.remove(middleware.database.engine, "before_cursor_execute", seen)


# -- the throttle's clock -----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 29, 10, 0, 30, tzinfo=dt.UTC)
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(database: Database, clock: Clock) -> AuthThrottle:
    return AuthThrottle(
        database,
        limit=5,
        window=dt.timedelta(minutes=5),
        clock=lambda: clock.now,
        monotonic=lambda: clock.mono,
    )


def test_the_block_lasts_until_enough_failures_leave_the_window(
    throttle: AuthThrottle, clock: Clock
) -> None:
    for _ in range(3):
        assert throttle.failed(ATTACKER) == (_ + 1, None)  # 10:00
    clock.advance(120)
    assert throttle.failed(ATTACKER) == (4, None)  # 10:02
    total, wait = throttle.failed(ATTACKER)  # 10:02:30, the fifth: blocked
    # Until 10:05:00, when the three of minute 10:00 leave the window and two remain.
    assert (total, wait) == (5, 150)
    assert throttle.retry_after(ATTACKER) == 150
    assert throttle.retry_after(BYSTANDER) is None
    clock.advance(149)
    assert throttle.retry_after(ATTACKER) == 1
    clock.advance(1)
    assert throttle.retry_after(ATTACKER) is None and ATTACKER not in throttle.blocked
    # Two failures left in the window: three more are allowed before the next block.
    assert throttle.failed(ATTACKER) == (3, None)


def test_old_minutes_are_forgotten_and_purged(
    throttle: AuthThrottle, clock: Clock, database: Database
) -> None:
    for _ in range(4):
        throttle.failed(ATTACKER)
    throttle.failed(BYSTANDER)
    clock.advance(300)  # the window later: none of those count
    assert throttle.failed(ATTACKER) == (1, None)
    clock.advance(61)  # past the purge interval: the next failure purges the old minutes
    throttle.failed("192.0.2.1")
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT source, failures FROM scim_auth_failures ORDER BY source")
        ).all()
    assert [tuple(r) for r in rows] == [("192.0.2.1", 1), (ATTACKER, 1)]


def test_a_burst_in_one_minute_blocks_for_the_whole_window(
    throttle: AuthThrottle, clock: Clock
) -> None:
    for _ in range(4):
        throttle.failed(ATTACKER)
    total, wait = throttle.failed(ATTACKER)
    assert total == 5 and wait == 270  # the minute began at 10:00:00, it is 10:00:30


def test_the_remembered_sources_are_bounded(
    throttle: AuthThrottle, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttle_module, "MAX_BLOCKED", 3)
    for source in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"):
        for _ in range(5):
            throttle.failed(source)
    assert list(throttle.blocked) == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]


def test_limit_and_window_are_checked(database: Database) -> None:
    with pytest.raises(ValueError):
        AuthThrottle(database, limit=0)
    with pytest.raises(ValueError):
        AuthThrottle(database, window=dt.timedelta(0))


@pytest.mark.parametrize(
    ("remote_addr", "source"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:DB8:0:0:ffff:ffff:ffff:ffff", "2001:db8::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:192.0.2.9", "192.0.2.9"),
        (None, "unknown"),
        ("", "unknown"),
        ("unix:/run/app.sock" + "x" * 100, ("unix:/run/app.sock" + "x" * 100)[:64]),
    ],
)
def test_sources_are_addresses_and_ipv6_networks(remote_addr: str | None, source: str) -> None:
    assert source_of(remote_addr) == source
    assert len(source_of(remote_addr)) <= 64


# -- constant-time comparison -----------------------------------------------------------------


def test_the_lookup_hashes_first_and_compares_digests_in_constant_time(
    middleware: SSOMiddleware, acme: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing cannot be measured reliably in a test; the code path can: the token is hashed
    before it reaches SQL, and the deciding comparison is hmac.compare_digest of two
    SHA-256 hex digests of equal length."""
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    statements: list[Any] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        statements.append(parameters)

    monkeypatch.setattr(workspace_store.hmac, "compare_digest", spy)
    engine = middleware.database.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with transaction(middleware.database) as unit:
            found = find_credential(unit, acme.token)
            missing = find_credential(unit, acme.token[:-1] + "x")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert found is not None and found.workspace_id == acme.workspace_id and missing is None
    digest = hashlib.sha256(acme.token.encode()).hexdigest()
    assert hash_token(acme.token) == digest
    assert compared == [(digest, digest)]  # only a found row is compared, digest to digest
    assert all(len(a) == len(b) == 64 for a, b in compared)
    # The token itself never reaches the database: only its digest does.
    assert acme.token not in repr(statements) and digest in repr(statements)
