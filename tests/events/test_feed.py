"""Lifecycle events through real HTTP: SCIM requests, SAML sign-in and sign-out at a served
site; each kind heard in-process after the commit and read again from the durable feed."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

import pytest
import requests
from sqlalchemy import select, update

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.errors import ConfigurationError, InvalidCursor, UnknownWorkspace
from webwork_sso_middleware.events import Event
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import LifecycleEvent, Member

from ..constants import SCIM_JSON
from ..saml.conftest import Site
from ..saml.idp import TestIdP
from ..saml.test_app import sp_initiated, whoami
from ..saml.test_single_logout import sign_out, slo, trust_sp
from ..scim.conftest import okta_user
from ..store_helpers import transaction


class Scim:
    """SCIM over real HTTP to the served site, as an IdP sends it."""

    def __init__(self, site: Site, token: str) -> None:
        self.base = site.url + "/scim/v2"
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON})

    def send(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.http.request(method, self.base + path, json=body)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def create_user(self, email: str, **extra: Any) -> str:
        return str(self.send("POST", "/Users", okta_user(email, **extra), 201)["id"])

    def set_active(self, member_id: str, active: bool) -> None:
        self.send("PATCH", f"/Users/{member_id}", patch(("replace", "active", active)))


def patch(*operations: tuple[str, str, Any]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": op, "path": path, "value": value} for op, path, value in operations],
    }


class Heard:
    """A subscriber that keeps what it hears."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]


@pytest.fixture
def heard(site: Site) -> Heard:
    return site.middleware.events.subscribe(Heard())  # type: ignore[return-value]


@pytest.fixture
def acme(site: Site, idp: TestIdP) -> str:
    """Workspace acme (acme.test verified, the TestIdP its IdP); its SCIM token."""
    return site.add_workspace("acme", idp)


@pytest.fixture
def scim(site: Site, acme: str) -> Scim:
    return Scim(site, acme)


def feed(middleware: SSOMiddleware, **kwargs: Any) -> list[Event]:
    return middleware.events.since(limit=1000, **kwargs)


def sign_in(site: Site, slug: str = "acme") -> requests.Session:
    """SP-initiated, through the TestIdP, as alice@acme.test (its default user)."""
    browser = requests.Session()
    answer = sp_initiated(browser, site, slug)
    assert answer.status_code == 303, answer.text
    return browser


# -- every kind ----------------------------------------------------------------------------------


def test_every_scim_kind_is_heard_after_commit_and_kept_in_order(
    site: Site, scim: Scim, heard: Heard
):
    ada = scim.create_user("ada@acme.test")
    bob = scim.create_user("bob@acme.test", given="Bob")
    scim.send("PATCH", f"/Users/{ada}", patch(("replace", "displayName", "Countess")))
    scim.set_active(ada, False)
    scim.set_active(ada, True)
    group = scim.send(
        "POST",
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering",
            "members": [{"value": ada}],
        },
        201,
    )["id"]
    scim.send("PATCH", f"/Groups/{group}", patch(("replace", "displayName", "Research")))
    scim.send("PATCH", f"/Groups/{group}", patch(("add", "members", [{"value": bob}])))
    scim.send("PATCH", f"/Groups/{group}", patch(("remove", f'members[value eq "{ada}"]', None)))
    scim.send("DELETE", f"/Groups/{group}", status=204)
    scim.send("DELETE", f"/Users/{bob}", status=204)

    expected = [
        ("member.created", ada, None, None),
        ("member.created", bob, None, None),
        ("member.updated", ada, None, None),
        ("member.deactivated", ada, None, None),
        ("member.reactivated", ada, None, None),
        ("group.created", None, group, "Engineering"),
        ("group.member_added", ada, group, "Engineering"),
        ("group.renamed", None, group, "Research"),
        ("group.member_added", bob, group, "Research"),
        ("group.member_removed", ada, group, "Research"),
        ("group.deleted", None, group, "Research"),
        ("member.deleted", bob, None, None),
    ]
    said = [(e.kind, e.member_id, e.group_id, e.group_name) for e in heard.events]
    assert said == expected
    kept = feed(site.middleware)
    assert [e.id for e in kept] == [e.id for e in heard.events]  # the same events, same order
    assert [int(e.cursor or 0) for e in kept] == sorted({int(e.cursor or 0) for e in kept})
    assert {e.workspace for e in kept} == {"acme"} and {e.source for e in kept} == {"scim"}
    # The identity is REMOTE_USER: acme verified acme.test, so the email.
    assert kept[0].identity == "ada@acme.test" and kept[1].identity == "bob@acme.test"
    assert kept[2].changes["displayName"] == {"from": "Ada Lovelace", "to": "Countess"}
    assert kept[3].changes["active"] == {"from": True, "to": False}
    assert kept[7].changes == {"displayName": {"from": "Engineering", "to": "Research"}}
    assert kept[11].changes == {"userName": "bob@acme.test", "groups": []}
    assert all("password" not in str(e.changes) for e in kept)  # Okta sends one: never kept


def test_a_first_sign_in_creates_then_signs_in_and_sign_out_is_heard(
    site: Site, acme: str, heard: Heard
):
    browser = sign_in(site)
    seen_as = whoami(browser, site).split(";")[0].removeprefix("user=")
    sign_in(site)  # a returning member: signed in, no creation
    sign_out(site, browser)

    assert heard.kinds() == [
        "member.created",
        "member.signed_in",
        "member.signed_in",
        "member.signed_out",
    ]
    kept = feed(site.middleware)
    assert [e.id for e in kept] == [e.id for e in heard.events]
    assert {e.source for e in kept} == {"saml"}
    assert {e.identity for e in kept} == {seen_as} == {"alice@acme.test"}
    member_id = site.members()[0].id
    assert {e.member_id for e in kept} == {member_id}
    assert kept[0].changes["userName"] == "alice@acme.test"


def test_the_idp_changing_names_at_sign_in_is_an_update(
    site: Site, idp: TestIdP, acme: str, heard: Heard
):
    sign_in(site)
    browser = requests.Session()
    renamed = {"email": ["alice@acme.test"], "firstName": ["Alicia"], "lastName": ["Test"]}
    response = site.post_response(
        browser,
        "acme",
        idp.response(
            sp_entity_id=site.entity_id("acme"),
            acs_url=site.acs("acme"),
            email="alice@acme.test",
            attributes=renamed,
        ),
    )
    assert response.status_code in (302, 303), response.text
    assert heard.kinds()[2:] == ["member.updated", "member.signed_in"]
    assert heard.events[2].changes["given_name"] == {"from": "Alice", "to": "Alicia"}


def test_an_idp_logout_and_sign_out_everywhere_are_sign_outs(
    site: Site, idp: TestIdP, acme: str, heard: Heard
):
    trust_sp(site, idp)
    browser = sign_in(site)
    member_id = site.members()[0].id
    # The IdP's LogoutRequest (signed, by redirect) ends the session: a SAML sign-out.
    answer = browser.get(
        idp.logout_redirect(destination=slo(site), name_id="alice@acme.test"),
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    assert whoami(browser, site).startswith("user=;")
    assert [(e.kind, e.source) for e in heard.events[-1:]] == [("member.signed_out", "saml")]
    again = browser.get(
        idp.logout_redirect(destination=slo(site), name_id="alice@acme.test"),
        allow_redirects=False,
    )
    assert again.status_code == 302  # nothing left to end: no second sign-out event
    assert heard.kinds().count("member.signed_out") == 1

    site.middleware.sessions.sign_out_everywhere(member_id, actor="cli", source="cli")
    assert heard.events[-1].kind == "member.signed_out"
    assert heard.events[-1].source == "cli"
    assert heard.events[-1].changes == {"everywhere": True}
    assert heard.events[-1].identity == "alice@acme.test"


def test_a_member_outside_the_verified_domains_is_named_as_remote_user_names_them(
    site: Site, scim: Scim, heard: Heard
):
    kim = scim.create_user("kim@contractor.test")  # a contractor: acme did not verify the domain
    assert [e.identity for e in heard.events] == [f"acme:{kim}"]
    assert [e.identity for e in feed(site.middleware)] == [f"acme:{kim}"]


# -- delivery: after the commit, never failing the change ---------------------------------------


def test_a_handler_that_raises_is_logged_and_the_request_succeeds(
    site: Site, scim: Scim, heard: Heard, caplog: pytest.LogCaptureFixture
):
    def broken(event: Event) -> None:
        raise RuntimeError("host bug")

    site.middleware.events.subscribe(broken)
    after = Heard()
    site.middleware.events.subscribe(after)
    with caplog.at_level(logging.ERROR, logger="webwork_sso_middleware"):
        ada = scim.create_user("ada@acme.test")  # 201 all the same
        browser = sign_in(site)
    assert whoami(browser, site).startswith("user=alice@acme.test;")  # the sign-in held
    assert [e.member_id for e in after.events][:1] == [ada]  # the next handler still heard
    failures = [r for r in caplog.records if "handler" in r.getMessage()]
    assert len(failures) == 3  # created (SCIM), created and signed_in (SAML)
    assert all(r.exc_info and "host bug" in str(r.exc_info[1]) for r in failures)


def test_a_handler_sees_the_committed_change_from_another_connection(
    site: Site, scim: Scim, database_url: str
):
    other = Database(database_url, auto_migrate=False)
    seen: list[tuple[str, bool]] = []

    def check(event: Event) -> None:
        # Another connection, another engine: only committed rows are there to read.
        row = other.run(
            lambda unit: unit.connection.execute(
                select(Member.active).where(Member.id == event.member_id)
            ).first(),
            write=False,
        )
        seen.append((event.kind, row is not None and bool(row.active)))

    site.middleware.events.subscribe(check, kinds=["member.created", "member.deactivated"])
    try:
        ada = scim.create_user("ada@acme.test")
        scim.set_active(ada, False)
    finally:
        other.dispose()
    assert seen == [("member.created", True), ("member.deactivated", False)]


def test_a_refused_scim_request_delivers_nothing(site: Site, scim: Scim, heard: Heard):
    scim.create_user("ada@acme.test")
    scim.send("POST", "/Users", okta_user("ada@acme.test"), 409)  # the unique index refuses
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "G",
        "members": [{"value": "no-such-member"}],
    }
    scim.send("POST", "/Groups", group, 400)
    assert heard.kinds() == ["member.created"]
    assert [e.kind for e in feed(site.middleware)] == ["member.created"]


def test_kinds_filter_and_unsubscribe(site: Site, scim: Scim):
    only = Heard()
    site.middleware.events.subscribe(only, kinds="member.deactivated")
    ada = scim.create_user("ada@acme.test")
    scim.set_active(ada, False)
    site.middleware.events.unsubscribe(only)
    scim.set_active(ada, True)
    scim.set_active(ada, False)
    assert only.kinds() == ["member.deactivated"]
    with pytest.raises(ConfigurationError):
        site.middleware.events.subscribe(only, kinds=["member.exploded"])


# -- the durable feed ----------------------------------------------------------------------------


def test_a_host_that_restarts_continues_from_its_cursor(site: Site, scim: Scim, database_url: str):
    scim.create_user("ada@acme.test")
    scim.create_user("bob@acme.test")
    first = site.middleware.events.since(limit=1)
    assert [e.identity for e in first] == ["ada@acme.test"]
    cursor = first[-1].cursor
    # The host was down meanwhile: these are kept, not lost.
    scim.create_user("cyd@acme.test")

    restarted = SSOMiddleware(
        lambda environ, start_response: [],
        database_url=database_url,
        secret_key="another-process-padded-to-thirty-two-bytes",
    )
    try:
        rest = restarted.events.since(cursor)
        assert [e.identity for e in rest] == ["bob@acme.test", "cyd@acme.test"]
        assert restarted.events.since(rest[-1].cursor) == []
        assert restarted.events.since(rest[-1].cursor, workspace="acme") == []
    finally:
        restarted.close()


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", " 1", "9" * 40, "١"])
def test_a_cursor_that_since_did_not_give_is_refused(site: Site, acme: str, cursor: str):
    with pytest.raises(InvalidCursor) as refused:
        site.middleware.events.since(cursor)
    assert isinstance(refused.value, ValueError)


def test_a_cursor_from_another_database_is_refused_not_waited_on(site: Site, scim: Scim):
    scim.create_user("ada@acme.test")
    [ada] = site.middleware.events.since()
    assert site.middleware.events.since(ada.cursor) == []  # the newest: nothing yet, no error
    with pytest.raises(InvalidCursor, match="past the newest event"):
        site.middleware.events.since(str(int(ada.cursor or 0) + 1))


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
def test_a_limit_out_of_range_is_refused(site: Site, acme: str, limit: int):
    with pytest.raises(ConfigurationError):
        site.middleware.events.since(limit=limit)


def test_a_patch_adding_many_members_writes_one_event_each(site: Site, scim: Scim):
    ids = [scim.create_user(f"user{n}@acme.test") for n in range(60)]
    group = scim.send(
        "POST",
        "/Groups",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "All"},
        201,
    )["id"]
    scim.send("PATCH", f"/Groups/{group}", patch(("add", "members", [{"value": i} for i in ids])))
    added = [e for e in feed(site.middleware) if e.kind == "group.member_added"]
    assert [e.member_id for e in added] == ids
    assert {e.identity for e in added} == {f"user{n}@acme.test" for n in range(60)}


def test_old_events_are_purged_with_the_audit_log_and_the_cursor_goes_on(
    serve: Any, database_url: str, idp: TestIdP
):
    site = Site(serve, database_url, audit_retention_days=1)
    try:
        token = site.add_workspace("acme", idp)
        scim = Scim(site, token)
        scim.create_user("ada@acme.test")
        scim.create_user("bob@acme.test")
        kept = site.middleware.events.since()
        cursor = kept[-1].cursor
        with transaction(site.middleware.database, write=True) as unit:
            unit.connection.execute(
                update(LifecycleEvent).values(
                    occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
                )
            )
        assert site.middleware.audit_retention is not None
        site.middleware.audit_retention._next = 0.0  # due now: the next SCIM request purges
        scim.create_user("cyd@acme.test")
        left = site.middleware.events.since()
        # Ada's and Bob's went, the newest numbered one too: numbering goes on from the
        # high-water mark all the same, so the reader's cursor finds Cyd's, next in line.
        assert [e.identity for e in left] == ["cyd@acme.test"]
        after = site.middleware.events.since(cursor)
        assert [e.identity for e in after] == ["cyd@acme.test"]
        assert int(after[0].cursor or 0) == int(cursor or 0) + 1
    finally:
        site.middleware.close()


# -- a hostile second workspace ------------------------------------------------------------------


def test_a_hostile_workspace_sees_and_names_only_its_own(
    site: Site, scim: Scim, second_idp: TestIdP
):
    ada = scim.create_user("ada@acme.test")
    sign_in(site)  # alice@acme.test
    evil = Scim(site, site.add_workspace("evil", second_idp))
    # Its SCIM and its IdP try for acme's members: refused, and nothing is said of them.
    evil.send("POST", "/Users", okta_user("ada@acme.test"), 400)  # acme verified acme.test
    evil.send(
        "POST",
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Stolen",
            "members": [{"value": ada}],
        },
        400,
    )
    evil.send("PATCH", f"/Users/{ada}", patch(("replace", "active", False)), 404)
    browser = requests.Session()
    refused = site.post_response(
        browser,
        "evil",
        second_idp.response(
            sp_entity_id=site.entity_id("evil"), acs_url=site.acs("evil"), email="ada@acme.test"
        ),
    )
    assert refused.status_code == 403, refused.text
    mallory = evil.create_user("mallory@evil.test")

    acme_events = feed(site.middleware, workspace="acme")
    evil_events = feed(site.middleware, workspace="evil")
    assert {e.workspace for e in acme_events} == {"acme"}
    assert [(e.kind, e.member_id, e.identity) for e in evil_events] == [
        ("member.created", mallory, "mallory@evil.test")
    ]
    acme_members = {m.id for m in site.members() if m.workspace_id != _workspace_id(site, "evil")}
    assert not {e.member_id for e in evil_events} & acme_members
    with pytest.raises(UnknownWorkspace):  # not an empty list, as a quiet workspace's
        feed(site.middleware, workspace="nobody")
    every = feed(site.middleware)
    assert len(every) == len(acme_events) + len(evil_events)


def _workspace_id(site: Site, slug: str) -> int:
    return site.workspaces.get(slug).id


# -- concurrency within one process ---------------------------------------------------------------


def test_readers_polling_while_writers_write_miss_nothing(site: Site, scim: Scim):
    """Many writer threads, one reader polling with its cursor all along: every event once."""
    created: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        own = Scim(site, scim.http.headers["Authorization"].removeprefix("Bearer "))
        for k in range(8):
            member_id = own.create_user(f"w{n}k{k}@acme.test")
            with lock:
                created.append(member_id)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    read: list[Event] = []
    cursor = None
    while any(thread.is_alive() for thread in threads) or len(read) < 32:
        page = site.middleware.events.since(cursor, limit=5)
        read.extend(page)
        cursor = page[-1].cursor if page else cursor
        if not page and not any(thread.is_alive() for thread in threads):
            break
    for thread in threads:
        thread.join()
    read.extend(site.middleware.events.since(cursor, limit=1000))
    assert sorted(e.member_id for e in read) == sorted(created)  # none missed, none twice
