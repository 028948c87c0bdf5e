"""Sign-in bound to the browser (saml/login_state.py): login CSRF, tabs, the login URL writing
nothing, and unsolicited responses that must not swap who is signed in.

Browsers keep ``SameSite=Lax`` cookies (the session) off a cross-site POST such as the IdP's
auto-posted form; ``cross_site_post`` sends what a browser would, so the tests see what the ACS
sees in a real browser, over real HTTP with the real test IdP.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
import string
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.cookies import extract_cookies_to_jar
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.saml.acs import VerifiedAssertion
from webwork_sso_middleware.saml.login_state import (
    MAX_COOKIE_VALUE,
    LoginRequest,
    LoginRequests,
    PendingSignIn,
    PendingSignIns,
)
from webwork_sso_middleware.saml.rejection import Rejection
from webwork_sso_middleware.sessions.sign_in_tests import SignInTest
from webwork_sso_middleware.signing import Purpose, Signing
from webwork_sso_middleware.store.models import (
    AuditEvent,
    MemberSession,
    SeenAssertion,
)
from webwork_sso_middleware.urls import WorkspaceUrls

from ..store_helpers import transaction
from .conftest import Site, host_app
from .idp import TestIdP, autopost_form
from .test_app import whoami

ALICE = "alice@acme.test"
MALLORY = "mallory@evil.test"


def cross_site_post(
    browser: requests.Session, url: str, fields: dict[str, str]
) -> requests.Response:
    """POST as a browser does from another site's page: only cookies without SameSite=Lax or
    Strict go along (SameSite=None, and on http those with no SameSite, which Chromium still
    sends on a top-level POST within two minutes); cookies the response sets are kept."""
    sent = requests.Session()
    for cookie in browser.cookies:
        if (cookie.get_nonstandard_attr("SameSite") or "").lower() not in ("lax", "strict"):
            sent.cookies.set_cookie(copy.copy(cookie))
    response = sent.post(
        url,
        data=fields,
        allow_redirects=False,
        headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://idp.example"},
    )
    extract_cookies_to_jar(browser.cookies, response.request, response.raw)
    return response


def start(
    browser: requests.Session, site: Site, slug: str, next_path: str = "/"
) -> requests.Response:
    response = browser.get(
        f"{site.url}/saml/{slug}/login", params={"next": next_path}, allow_redirects=False
    )
    assert response.status_code == 302, response.text
    return response


def idp_answer(browser: requests.Session, location: str) -> tuple[str, dict[str, str]]:
    """The IdP's auto-post form (action, fields) for the request at ``location``."""
    at_idp = browser.get(location)
    assert at_idp.status_code == 200, at_idp.text
    return autopost_form(at_idp.text)


def sign_in(
    site: Site, idp: TestIdP, slug: str, email: str, browser: requests.Session | None = None
) -> requests.Session:
    """A whole SP-initiated sign-in in a browser, the IdP's POST made cross-site."""
    browser = browser or requests.Session()
    idp.next_user = email
    action, fields = idp_answer(browser, start(browser, site, slug).headers["Location"])
    response = cross_site_post(browser, action, fields)
    assert response.status_code == 303, response.text
    assert whoami(browser, site).startswith(f"user={email};")
    return browser


def unsolicited(
    site: Site, idp: TestIdP, slug: str, email: str, attributes: Any = None
) -> dict[str, str]:
    return {
        "SAMLResponse": idp.response(
            sp_entity_id=site.entity_id(slug),
            acs_url=site.acs(slug),
            email=email,
            attributes=attributes,
        )
    }


def count(site: Site, model: Any) -> int:
    with transaction(site.middleware.database) as unit:
        return int(unit.session.scalar(select(func.count()).select_from(model)) or 0)


# -- login CSRF: a request answered only in the browser that started it --------------------------


def test_attackers_own_response_posted_into_a_victims_browser_is_refused(
    site: Site, idp: TestIdP, second_idp: TestIdP, acme: str
):
    site.add_workspace("evil", second_idp)
    victim = sign_in(site, idp, "acme", ALICE)
    # The attacker starts a sign-in at their own workspace, in their own browser, and takes the
    # IdP's signed answer instead of letting it post.
    attacker = requests.Session()
    second_idp.next_user = MALLORY
    action, fields = idp_answer(attacker, start(attacker, site, "evil").headers["Location"])
    response = cross_site_post(victim, action, fields)  # a page elsewhere auto-posts it
    assert response.status_code == 400 and "request_not_bound" in response.text
    assert "webwork_sso_session" not in response.headers.get("Set-Cookie", "")
    assert whoami(victim, site).startswith(f"user={ALICE};")
    assert [m.user_name for m in site.members()] == [ALICE]
    assert [e.changes["reason"] for e in site.audit("login_failed")] == ["request_not_bound"]
    # In the browser that started it, the very same answer signs in: the binding decided.
    assert cross_site_post(attacker, action, fields).status_code == 303
    assert whoami(attacker, site).startswith(f"user={MALLORY};")


def test_a_response_to_a_request_started_in_another_browser_is_refused(
    site: Site, idp: TestIdP, acme: str
):
    first, second = requests.Session(), requests.Session()
    action, fields = idp_answer(first, start(first, site, "acme").headers["Location"])
    start(second, site, "acme")  # the other browser has a binding cookie too, for its own request
    refused = cross_site_post(second, action, fields)
    assert refused.status_code == 400 and "request_not_bound" in refused.text
    assert whoami(second, site) == "user=;groups=;path=/"
    assert cross_site_post(first, action, fields).status_code == 303
    assert whoami(first, site).startswith(f"user={ALICE};")


def test_two_tabs_both_complete_and_each_request_is_cleared_when_used(
    site: Site, idp: TestIdP, acme: str
):
    browser = requests.Session()
    tab_a = idp_answer(browser, start(browser, site, "acme", "/a").headers["Location"])
    tab_b = idp_answer(browser, start(browser, site, "acme", "/b").headers["Location"])
    first = cross_site_post(browser, *tab_b)
    assert first.status_code == 303 and first.headers["Location"].endswith("/b")
    second = cross_site_post(browser, *tab_a)
    assert second.status_code == 303 and second.headers["Location"].endswith("/a")
    assert whoami(browser, site).startswith(f"user={ALICE};")
    # Both used: the binding cookie is gone, and neither answer passes again.
    assert not [c for c in browser.cookies if c.name == "webwork_sso_login"]
    assert "request_not_bound" in cross_site_post(browser, *tab_a).text


def test_binding_cookie_is_httponly_scoped_and_cross_site_on_https_only(
    serve: Callable[[Any], Any], database_url: str, site: Site, idp: TestIdP, acme: str
):
    plain = start(requests.Session(), site, "acme").headers["Set-Cookie"]
    assert plain.startswith("webwork_sso_login=")
    assert "HttpOnly" in plain and "Path=/saml/acme/" in plain
    assert "Secure" not in plain and "SameSite" not in plain  # None needs Secure; Lax would block
    dispatch: list[Any] = []
    live = serve(lambda environ, start_response: dispatch[0](environ, start_response))
    middleware = SSOMiddleware(
        host_app,
        database_url=database_url,
        secret_key="s3cret-padded-to-thirty-two-bytes-at-least",
        base_url="https://tracker.example.test",
    )
    dispatch.append(middleware)
    try:
        middleware.workspaces.create("tls", name="TLS", plan="plus", owner_email="o@tls.test")
        middleware.workspaces.enable("tls", sso=True)
        middleware.workspaces.set_idp("tls", metadata_xml=idp.metadata_xml())
        response = requests.get(f"{live.url}/saml/tls/login", allow_redirects=False)
        assert response.status_code == 302, response.text
        cookie = response.headers["Set-Cookie"]
        assert "Secure" in cookie and "SameSite=None" in cookie and "HttpOnly" in cookie
    finally:
        middleware.close()


def test_relay_state_is_opaque_and_a_forged_binding_cookie_is_ignored(
    site: Site, idp: TestIdP, acme: str
):
    browser = requests.Session()
    location = start(browser, site, "acme", "/secret-report").headers["Location"]
    assert "secret-report" not in location
    action, fields = idp_answer(browser, location)
    for cookie in browser.cookies:  # tamper with the signed value
        if cookie.name == "webwork_sso_login":
            cookie.value = cookie.value[:-2] + ("AA" if not cookie.value.endswith("AA") else "BB")
    refused = cross_site_post(browser, action, fields)
    assert refused.status_code == 400 and "request_not_bound" in refused.text


# -- the login URL writes nothing ----------------------------------------------------------------


def test_an_anonymous_flood_of_the_login_url_writes_no_rows(site: Site, idp: TestIdP, acme: str):
    site.post_response(
        requests.Session(), "acme", unsolicited(site, idp, "acme", ALICE)["SAMLResponse"]
    )
    tables = (SeenAssertion, AuditEvent, MemberSession)
    before = {model.__tablename__: count(site, model) for model in tables}
    for number in range(60):
        response = requests.get(
            f"{site.url}/saml/acme/login", params={"next": f"/p{number}"}, allow_redirects=False
        )
        assert response.status_code == 302
        assert requests.get(f"{site.url}/saml/nope{number}/login").status_code == 404
    assert {model.__tablename__: count(site, model) for model in tables} == before


# -- unsolicited responses never swap who is signed in ----------------------------------------


def test_a_cross_site_unsolicited_response_finishes_on_a_same_site_get(
    site: Site, idp: TestIdP, acme: str
):
    browser = requests.Session()
    fields = unsolicited(site, idp, "acme", ALICE)
    fields["RelayState"] = "/timesheets"
    posted = cross_site_post(browser, site.acs("acme"), fields)
    assert posted.status_code == 303, posted.text
    assert posted.headers["Location"] == f"{site.url}/saml/acme/continue"
    assert "webwork_sso_session" not in posted.headers["Set-Cookie"]  # not yet: who is here?
    assert "webwork_sso_pending=" in posted.headers["Set-Cookie"]
    finished = browser.get(posted.headers["Location"], allow_redirects=False)
    assert finished.status_code == 303 and finished.headers["Location"].endswith("/timesheets")
    assert whoami(browser, site).startswith(f"user={ALICE};")
    # The pending sign-in is used once: a copy of its cookie starts nothing more.
    replay = requests.Session()
    replay.cookies.set(
        "webwork_sso_pending",
        finished.request.headers["Cookie"].split("webwork_sso_pending=")[1].split(";")[0],
        path="/saml/acme/",
    )
    again = replay.get(posted.headers["Location"], allow_redirects=False)
    assert again.status_code == 400 and "sign_in_expired" in again.text
    assert whoami(replay, site) == "user=;groups=;path=/"


def test_an_unsolicited_response_never_replaces_another_members_session(
    site: Site, idp: TestIdP, second_idp: TestIdP, acme: str
):
    site.add_workspace("evil", second_idp)  # IdP-initiated sign-in on: the attacker decides
    victim = sign_in(site, idp, "acme", ALICE)
    posted = cross_site_post(
        victim, site.acs("evil"), unsolicited(site, second_idp, "evil", MALLORY)
    )
    assert posted.status_code == 303
    refused = victim.get(posted.headers["Location"], allow_redirects=False)
    assert refused.status_code == 409, refused.text
    assert "signed_in_as_other" in refused.text and ALICE in refused.text
    assert 'href="/saml/logout"' in refused.text
    assert "webwork_sso_session" not in refused.headers.get("Set-Cookie", "")
    assert whoami(victim, site).startswith(f"user={ALICE};")
    assert [m.user_name for m in site.members()] == [ALICE]  # rolled back: nobody created
    (failure,) = site.audit("login_failed")
    assert failure.changes["reason"] == "signed_in_as_other"
    assert failure.changes["email"] == MALLORY
    # A client that shows its session cookie on the POST is answered there, the same way.
    direct = site.post_response(
        victim, "evil", unsolicited(site, second_idp, "evil", MALLORY)["SAMLResponse"]
    )
    assert direct.status_code == 409 and "signed_in_as_other" in direct.text
    assert whoami(victim, site).startswith(f"user={ALICE};")


def test_the_same_member_again_is_a_refresh_and_an_sp_initiated_sign_in_may_switch(
    site: Site, idp: TestIdP, acme: str
):
    browser = sign_in(site, idp, "acme", ALICE)
    old_session = [c.value for c in browser.cookies if c.name == "webwork_sso_session"]
    posted = cross_site_post(browser, site.acs("acme"), unsolicited(site, idp, "acme", ALICE))
    refreshed = browser.get(posted.headers["Location"], allow_redirects=False)
    assert (
        refreshed.status_code == 303 and "webwork_sso_session=" in refreshed.headers["Set-Cookie"]
    )
    assert [c.value for c in browser.cookies if c.name == "webwork_sso_session"] != old_session
    assert whoami(browser, site).startswith(f"user={ALICE};")
    # The browser itself asked for this one: switching members is what the person wanted.
    sign_in(site, idp, "acme", "bob@acme.test", browser)
    assert whoami(browser, site).startswith("user=bob@acme.test;")


def test_continue_without_a_pending_sign_in_is_a_clear_error_that_writes_nothing(
    site: Site, idp: TestIdP, acme: str
):
    before = count(site, AuditEvent)
    response = requests.get(f"{site.url}/saml/acme/continue", allow_redirects=False)
    assert response.status_code == 400 and "sign_in_expired" in response.text
    assert "Traceback" not in response.text
    assert urlsplit(response.url).path == "/saml/acme/continue"
    assert count(site, AuditEvent) == before


def test_a_pending_sign_in_carries_its_groups_and_is_never_refused_for_them(
    site: Site, idp: TestIdP, acme: str
):
    """The asserted groups travel in the pending sign-in's cookie to the member. Too many
    for a cookie (Entra ID's 150 object ids) never refuse the sign-in (they did not before
    groups were read): the groups mapped to roles are kept first, then others while they
    fit, and the owner is told how many were dropped."""
    browser = requests.Session()
    fields = unsolicited(
        site, idp, "acme", ALICE, attributes={"email": [ALICE], "groups": ["u", "t"]}
    )
    posted = cross_site_post(browser, site.acs("acme"), fields)
    assert posted.status_code == 303, posted.text
    finished = browser.get(posted.headers["Location"], allow_redirects=False)
    assert finished.status_code == 303
    # ["t", "u"] in the cookie is a list of names, never taken for its time marker.
    assert whoami(browser, site) == f"user={ALICE};groups=t,u;path=/"
    assert site.audit("groups_dropped") == []

    mapped = "ZZ-Admins"  # after every object id in the groups' order: kept for its mapping
    site.workspaces.map_role("acme", "zz-admins", "admin", declared=None, actor="t")
    many = [str(uuid.uuid4()) for _ in range(149)] + [mapped]  # Entra ID's most: object ids
    browser = requests.Session()
    fields = unsolicited(site, idp, "acme", ALICE, attributes={"email": [ALICE], "groups": many})
    posted = cross_site_post(browser, site.acs("acme"), fields)
    assert posted.status_code == 303, posted.text
    finished = browser.get(posted.headers["Location"], allow_redirects=False)
    assert finished.status_code == 303, finished.text
    shown = whoami(browser, site)
    groups = shown.partition(";groups=")[2].partition(";")[0].split(",")
    assert mapped in groups and 50 < len(groups) < len(many)
    assert set(groups) <= set(many)
    (note,) = site.audit("groups_dropped")
    assert note.changes["email"] == ALICE
    assert (note.changes["kept"], note.changes["dropped"]) == (len(groups), 150 - len(groups))


def pending_assertion(groups: tuple[str, ...], **fields: Any) -> VerifiedAssertion:
    return VerifiedAssertion(
        **{
            "assertion_id": "_a1",
            "email": ALICE,
            "in_response_to": None,
            "expires_at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
            "given_name": None,
            "family_name": None,
            "display_name": None,
            "name_id": ALICE,
            "name_id_format": None,
            "session_index": None,
            "groups": groups,
            **fields,
        }
    )


def read_back(pending_sign_ins: PendingSignIns, cookie: str) -> PendingSignIn | None:
    value = cookie.partition("=")[2].partition(";")[0]
    environ = EnvironBuilder(path="/saml/acme/continue", headers={"Cookie": cookie}).get_environ()
    assert len(value) <= MAX_COOKIE_VALUE
    return pending_sign_ins.read(Request(environ), 7)


def test_a_pending_cookie_keeps_the_mapped_groups_first_and_asks_the_mapping_only_when_needed():
    pending_sign_ins = PendingSignIns(signing=Signing(["k" * 32]))
    urls = WorkspaceUrls("http://sp.test", "acme")

    def never() -> set[str]:
        raise AssertionError("asked")

    small = pending_sign_ins.new(7, pending_assertion(("a", "b")), "/next")
    assert read_back(pending_sign_ins, pending_sign_ins.cookie(urls, small, mapped=never)) == small

    many = tuple(sorted(str(uuid.uuid4()) for _ in range(300))) + ("zz-admins",)
    big = pending_sign_ins.new(7, pending_assertion(many, groups_dropped=4), "/next")
    found = read_back(
        pending_sign_ins, pending_sign_ins.cookie(urls, big, mapped=lambda: {"zz-admins"})
    )
    assert found is not None and found.next_path == "/next" and found.nonce == big.nonce
    kept = found.assertion.groups
    assert "zz-admins" in kept and 50 < len(kept) < len(many)
    assert list(kept) == sorted(kept) and set(kept) <= set(many)
    assert found.assertion.groups_dropped == 4 + len(many) - len(kept)


def test_a_pending_sign_in_that_cannot_fit_even_without_groups_is_refused():
    """Only what no cut of the groups can fix: a long next path, NameID, qualifiers and names."""
    pending_sign_ins = PendingSignIns(signing=Signing(["k" * 32]))

    def noise(length: int) -> str:  # random: zlib cannot shrink it
        return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))

    assertion = pending_assertion(
        ("a",),
        name_id=noise(512),
        session_index=noise(512),
        name_qualifier=noise(512),
        sp_name_qualifier=noise(512),
        given_name=noise(255),
        family_name=noise(255),
        display_name=noise(255),
    )
    pending = pending_sign_ins.new(7, assertion, "/" + noise(2040))
    try:
        pending_sign_ins.cookie(WorkspaceUrls("http://sp.test", "acme"), pending)
    except Rejection as refused:
        assert refused.code == "pending_too_large" and "groups" not in refused.detail
    else:
        raise AssertionError("not refused")


def test_a_test_sign_in_request_keeps_its_test_and_old_cookies_still_read() -> None:
    """The owner's test travels with its AuthnRequest (two more fields); a cookie written
    before tests existed (four fields) reads as an ordinary request."""
    signing = Signing(["k" * 32])
    requests_ = LoginRequests(signing=signing, clock=lambda: 1000.0)
    urls = WorkspaceUrls("http://sp.test", "acme")
    tested = requests_.new("id-1", "rs-1", "/saml/acme/settings", SignInTest("nonce", "mark"))
    plain = requests_.new("id-2", "rs-2", "/")
    cookie = requests_.cookie(urls, 7, [tested, plain])
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    request = Request(
        EnvironBuilder(headers={"Cookie": f"webwork_sso_login={value}"}).get_environ()
    )
    assert requests_.read(request, 7) == [tested, plain]
    old = signing[Purpose.LOGIN_REQUESTS].dumps([1, 7, [["id-3", "rs-3", "/", 2000]]])
    request = Request(EnvironBuilder(headers={"Cookie": f"webwork_sso_login={old}"}).get_environ())
    assert requests_.read(request, 7) == [LoginRequest("id-3", "rs-3", "/", 2000)]
    forged = signing[Purpose.LOGIN_REQUESTS].dumps([1, 7, [["id-4", "rs-4", "/", 2000, 5, None]]])
    request = Request(
        EnvironBuilder(headers={"Cookie": f"webwork_sso_login={forged}"}).get_environ()
    )
    assert requests_.read(request, 7) == []
