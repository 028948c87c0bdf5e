"""The database down (PostgreSQL) or locked (SQLite), and back, under a running middleware.

PostgreSQL run: the middleware reaches the server through a TCP proxy the test cuts (every
connection dropped, new ones refused) and restores. SQLite run: another connection holds
``BEGIN EXCLUSIVE``; the middleware's writers wait ``database_busy_timeout`` (1 s here), its
readers go on (WAL). Either way: SCIM answers 503 with a SCIM error and Retry-After, the ACS a
"try again" page and no session, anonymous traffic reaches the host app, signed-in traffic
reaches it too (without identity when the session cannot be checked), nothing is half-written,
and everything works again once the database is back, without a restart.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, event, func, select, text
from webtest import TestApp

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import AuditEvent, Base, Member, MemberSession

from ..constants import SCIM_JSON, SECRET
from ..saml.conftest import Site
from ..saml.idp import TestIdP
from ..scim.conftest import host_app, okta_user
from ..store_helpers import transaction
from ..workers.cluster import (
    BASE_URL,
    Cluster,
    page_user,
    scim_user,
    setup_workspace,
    wait_for_line,
)
from .conftest import Outage

BUSY_TIMEOUT = 1.0


def row_counts(database_url: str) -> dict[str, int]:
    """Rows per table, read past the fault (the test's own connection never breaks)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def whoami(browser: requests.Session, site: Site) -> requests.Response:
    return browser.get(site.url + "/timesheets")


def assert_scim_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith(SCIM_JSON)
    assert int(response.headers["Retry-After"]) > 0
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == "503"
    assert "unavailable" in body["detail"]


def assert_try_again_page(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Please try again" in response.text and "store_unavailable" in response.text
    assert "Set-Cookie" not in response.headers


def logout_token(browser: requests.Session, site: Site) -> str:
    found = re.search(
        r'name="csrf_token" value="([^"]+)"', browser.get(site.url + "/saml/logout").text
    )
    assert found
    return found.group(1)


def test_an_outage_fails_cleanly_and_heals_without_a_restart(
    outage: Outage, database_url: str, serve: Callable[[Any], Any], idp: TestIdP
):
    # session_recheck_seconds=0: every signed-in request asks the database, even in the outage.
    site = Site(serve, outage.url, session_recheck_seconds=0, database_busy_timeout=BUSY_TIMEOUT)
    try:
        token = site.add_workspace("acme", idp)
        scim = requests.Session()
        scim.headers["Authorization"] = f"Bearer {token}"
        users = site.url + "/scim/v2/Users"
        bob = scim.post(users, json=okta_user("bob@acme.test"))
        assert bob.status_code == 201
        bob_url = users + "/" + bob.json()["id"]
        alice = requests.Session()
        assert (
            site.post_response(
                alice,
                "acme",
                idp.response(
                    sp_entity_id=site.entity_id("acme"),
                    acs_url=site.acs("acme"),
                    email="alice@acme.test",
                ),
            ).status_code
            == 303
        )
        assert page_user(whoami(alice, site)) == "alice@acme.test"
        alice_logout = logout_token(alice, site)
        # A response the IdP made before the outage: the browser posts it during, then again.
        carol_response = idp.response(
            sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="carol@acme.test"
        )
        before = row_counts(database_url)

        if outage.backend == "postgresql":
            # The outage begins in the middle of a SCIM write: after the member's INSERT,
            # at the audit record's, inside the same transaction. (Once: a listener may not
            # remove itself while SQLAlchemy iterates the listeners, so it stays, spent.)
            cut_once: list[bool] = []

            @event.listens_for(site.middleware.database.engine, "before_cursor_execute")
            def cut_midway(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                if statement.startswith("INSERT INTO audit_events") and not cut_once:
                    cut_once.append(True)
                    outage.cut()
        else:
            outage.cut()
        try:
            started = time.monotonic()
            assert_scim_unavailable(scim.post(users, json=okta_user("dora@acme.test")))
            # SQLite: one busy wait, not one per retry of the transaction.
            assert time.monotonic() - started < BUSY_TIMEOUT + 2
            assert_scim_unavailable(
                scim.patch(
                    bob_url, json={"Operations": [{"op": "replace", "value": {"title": "Chief"}}]}
                )
            )
            listed = scim.get(users)
            if outage.reads_survive:
                assert listed.status_code == 200 and listed.json()["totalResults"] == 2
            else:
                assert_scim_unavailable(listed)

            carol = requests.Session()
            assert_try_again_page(site.post_response(carol, "acme", carol_response))
            start = carol.get(site.url + "/saml/acme/login", allow_redirects=False)
            if outage.reads_survive:  # starting a sign-in only reads: it writes nothing now
                assert start.status_code == 302, start.text
            else:
                assert_try_again_page(start)

            # The settings page, mounted beside the SAML app, answers with a page of its own.
            settings = requests.get(site.url + "/saml/acme/settings")
            if outage.reads_survive:  # readable: the usual refusal of a stranger
                assert settings.status_code == 403, settings.text
            else:
                assert settings.status_code == 503 and "try again" in settings.text
                assert "no-store" in settings.headers["Cache-Control"]

            anonymous = requests.get(site.url + "/timesheets")
            assert anonymous.status_code == 200 and page_user(anonymous) == ""
            signed_in = whoami(alice, site)
            assert signed_in.status_code == 200
            # A session that cannot be checked is not trusted for this request; a readable
            # database (SQLite under a write lock) still vouches for it.
            assert page_user(signed_in) == ("alice@acme.test" if outage.reads_survive else "")
            assert "Set-Cookie" not in signed_in.headers  # the cookie is kept for later
            refused = alice.post(
                site.url + "/saml/logout", data={"csrf_token": alice_logout}, allow_redirects=False
            )
            assert refused.status_code == 503 and "still signed in" in refused.text

            assert row_counts(database_url) == before  # nothing half-written
        finally:
            outage.restore()

        # Back, without a restart: the same requests succeed, the same response signs in
        # (the failed attempt did not use up its assertion ID), the old session lives on.
        dora = scim.post(users, json=okta_user("dora@acme.test"))
        assert dora.status_code == 201, dora.text
        patched = scim.patch(
            bob_url, json={"Operations": [{"op": "replace", "value": {"title": "Chief"}}]}
        )
        assert patched.status_code == 200 and patched.json()["title"] == "Chief"
        assert scim.get(users).json()["totalResults"] == 3
        carol = requests.Session()
        signed = site.post_response(carol, "acme", carol_response)
        assert signed.status_code == 303, signed.text
        assert page_user(whoami(carol, site)) == "carol@acme.test"
        assert page_user(whoami(alice, site)) == "alice@acme.test"
        assert (
            alice.post(
                site.url + "/saml/logout", data={"csrf_token": alice_logout}, allow_redirects=False
            ).status_code
            == 302  # signed out here, and on to the IdP's single logout
        )
        assert page_user(whoami(alice, site)) == ""

        after = row_counts(database_url)
        assert after["members"] == before["members"] + 2  # dora, carol: one row each
        created = [
            e.changes.get("userName") or e.changes.get("email") for e in site.audit("created")
        ]
        assert sorted(created) == [
            "alice@acme.test",
            "bob@acme.test",
            "carol@acme.test",
            "dora@acme.test",
        ]
    finally:
        site.middleware.close()


def test_a_worker_killed_mid_write_leaves_nothing_behind(
    database_url: str, idp: TestIdP, tmp_path: Path
):
    """A worker process dies (SIGKILL) inside a SCIM write and inside a sign-in, after some of
    the transaction's statements: the database keeps none of them, holds no lock for it (the
    SQLite write lock, PostgreSQL's row and index locks) and another worker redoes the work."""
    token = setup_workspace(database_url, "acme", idp)
    logs = tmp_path / "logs"
    # Frozen inside the SCIM POST of frozen@acme.test, at the audit INSERT after the member's;
    # and inside the sign-in of signin@acme.test, at the session INSERT (after the replay
    # cache, the pending request and the new member).
    scim_victim = Cluster.start(
        database_url,
        1,
        logs / "scim",
        extra_args=["--freeze-on", "INSERT INTO audit_events", "--freeze-on", "frozen@acme.test"],
    )
    acs_victim = Cluster.start(
        database_url, 1, logs / "acs", extra_args=["--freeze-on", "INSERT INTO member_sessions"]
    )
    survivor = Cluster.start(database_url, 1, logs / "ok")
    database = Database(database_url, auto_migrate=False)
    scim = requests.Session()
    scim.headers.update({"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON})
    try:
        before = row_counts(database_url)
        last_audit_id = database.run(
            lambda unit: unit.session.scalar(select(func.max(AuditEvent.id))), write=False
        )

        def in_background(call: Callable[[], Any]) -> threading.Thread:
            def run() -> None:
                with contextlib.suppress(requests.RequestException):  # the server died under it
                    call()

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            return thread

        body = json.dumps(scim_user("frozen@acme.test"))
        waiting = in_background(
            lambda: scim.post(scim_victim.url(0, "/scim/v2/Users"), data=body, timeout=60)
        )
        wait_for_line(scim_victim.workers[0].process, "FROZEN", 30)
        scim_victim.kill(0)
        waiting.join(10)

        # The same userName at once on another worker: no leftover row, no lock in the way.
        started = time.monotonic()
        retried = scim.post(survivor.url(0, "/scim/v2/Users"), data=body, timeout=60)
        assert retried.status_code == 201, retried.text
        assert time.monotonic() - started < 5

        # Sign-in: the browser's POST dies with the worker; the same response, posted again
        # to another worker, signs in: the dead transaction kept neither the assertion ID
        # nor a member nor a session.
        fields = {
            "SAMLResponse": idp.response(
                sp_entity_id=f"{BASE_URL}/saml/acme/metadata",
                acs_url=f"{BASE_URL}/saml/acme/acs",
                email="signin@acme.test",
            )
        }
        waiting = in_background(
            lambda: requests.post(
                acs_victim.url(0, "/saml/acme/acs"), data=fields, allow_redirects=False, timeout=60
            )
        )
        wait_for_line(acs_victim.workers[0].process, "FROZEN", 30)
        acs_victim.kill(0)
        waiting.join(10)
        browser = requests.Session()
        signed = browser.post(
            survivor.url(0, "/saml/acme/acs"), data=fields, allow_redirects=False, timeout=60
        )
        assert signed.status_code == 303, signed.text
        assert page_user(browser.get(survivor.url(0, "/"))) == "signin@acme.test"

        after = row_counts(database_url)
        grown = {name: after[name] - before[name] for name in after if after[name] != before[name]}
        # Bookkeeping, not a request's rows: on PostgreSQL a connection's first count opens a
        # slot row of the SCIM totals (0, 1 or 2 here); their sum is checked below.
        grown.pop("scim_totals", None)
        # Exactly what the two completed requests wrote, once each, and the workspace's first
        # SP key, which the first SAML request makes in a transaction of its own beforehand.
        assert grown == {
            "members": 2,
            "member_values": 2,
            "audit_events": 2,
            # The host's events: created (SCIM); created and signed_in (the first sign-in).
            "lifecycle_events": 3,
            "saml_seen_assertions": 1,
            "member_sessions": 1,
            "sp_keys": 1,
        }, grown
        with transaction(database) as unit:
            assert unit.session.scalar(select(func.count()).select_from(MemberSession)) == 1
            names = sorted(unit.session.scalars(select(Member.user_name)))
            audited = sorted(
                (e.actor.split(":")[0], e.action)
                for e in unit.session.scalars(
                    select(AuditEvent).where(AuditEvent.id > last_audit_id)
                )
            )
        assert names == ["frozen@acme.test", "signin@acme.test"]
        assert audited == [("saml", "created"), ("scim", "created")]
        with transaction(database) as unit:  # the dead writes counted nothing either
            counted = unit.session.execute(text("SELECT SUM(members) FROM scim_totals")).scalar()
        assert counted == len(names)
        if database.is_sqlite:
            # The dead process's write lock went with it: a write needs no busy wait.
            started = time.monotonic()
            database.run(
                lambda unit: unit.session.execute(text("DELETE FROM saml_seen_assertions WHERE 0"))
            )
            assert time.monotonic() - started < 1
        else:
            engine = create_engine(database_url)
            with engine.connect() as conn:
                deadline = time.monotonic() + 5
                while conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state LIKE 'idle in transaction%'"
                    )
                ).scalar_one():
                    assert time.monotonic() < deadline, "a dead worker's transaction lingers"
                    time.sleep(0.1)
            engine.dispose()
    finally:
        scim.close()
        database.dispose()
        for cluster in (scim_victim, acs_victim, survivor):
            cluster.stop()


def test_a_bulk_request_stops_at_the_first_operation_the_store_refuses(
    outage: Outage, database_url: str
):
    """/Bulk in an outage: not one busy timeout per operation. Where reads survive (SQLite),
    the token is checked, the first write waits out the timeout, answers 503, and the rest
    are not run; where nothing reaches the database, the whole request is 503."""
    middleware = SSOMiddleware(
        host_app,
        database_url=outage.url,
        secret_key=SECRET,
        base_url=BASE_URL,
        database_busy_timeout=BUSY_TIMEOUT,
    )
    try:
        _, token = middleware.workspaces.create(
            "acme", name="Acme", plan="plus", owner_email="owner@acme.test"
        )
        middleware.workspaces.enable("acme", scim=True)
        operations = [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": str(i),
                "data": okta_user(f"u{i}@acme.test"),
            }
            for i in range(5)
        ]
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": operations,
        }
        outage.cut()
        try:
            started = time.monotonic()
            response = TestApp(middleware).post(
                "/scim/v2/Bulk",
                json.dumps(body),
                headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON},
                expect_errors=True,
            )
            elapsed = time.monotonic() - started
        finally:
            outage.restore()
        if outage.reads_survive:
            assert response.status_int == 200, response.text
            (only,) = response.json["Operations"]
            assert only["status"] == "503" and only["response"]["status"] == "503"
        else:
            assert response.status_int == 503 and response.json["status"] == "503"
        assert elapsed < 3 * BUSY_TIMEOUT + 5
        assert row_counts(database_url)["members"] == 0
    finally:
        middleware.close()
