"""SAML sign-in end to end: a real pysaml2 IdP, the middleware over real HTTP, a real database."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import event

from webwork_sso_middleware import SSOMiddleware

from ..scim.conftest import okta_user
from .conftest import Site, host_app
from .idp import TestIdP, autopost_form


def whoami(browser: requests.Session, site: Site, path: str = "/") -> str:
    return browser.get(site.url + path).text


def sp_initiated(
    browser: requests.Session, site: Site, slug: str, next_path: str = "/"
) -> requests.Response:
    """Browser: our login URL -> IdP (302) -> auto-post form -> our ACS."""
    start = browser.get(
        f"{site.url}/saml/{slug}/login", params={"next": next_path}, allow_redirects=False
    )
    assert start.status_code == 302, start.text
    at_idp = browser.get(start.headers["Location"])
    assert at_idp.status_code == 200, at_idp.text
    action, fields = autopost_form(at_idp.text)
    return browser.post(action, data=fields, allow_redirects=False)


# -- IdP-initiated ------------------------------------------------------------------------------


def test_idp_initiated_sign_in_creates_member_and_session(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    assert whoami(browser, site) == "user=;groups=;path=/"
    response = site.post_response(
        browser,
        "acme",
        idp.response(
            sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="alice@acme.test"
        ),
    )
    assert response.status_code == 303, response.text
    assert response.headers["Location"].endswith("/")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # http base URL
    assert whoami(browser, site) == "user=alice@acme.test;groups=;path=/"
    (member,) = site.members()
    assert member.source == "sso" and member.active and member.last_login_at is not None
    assert (member.given_name, member.family_name) == ("Alice", "Test")  # from the attributes


def test_first_sso_member_is_visible_to_scim(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    site.post_response(
        browser,
        "acme",
        idp.response(
            sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="bob@acme.test"
        ),
    )
    scim = requests.get(
        f"{site.url}/scim/v2/Users",
        headers={"Authorization": f"Bearer {acme}"},
        params={"filter": 'userName eq "bob@acme.test"'},
    ).json()
    assert scim["totalResults"] == 1
    assert scim["Resources"][0]["emails"][0]["value"] == "bob@acme.test"
    # An IdP that starts provisioning later links to the member instead of duplicating it.
    duplicate = requests.post(
        f"{site.url}/scim/v2/Users",
        json=okta_user("bob@acme.test"),
        headers={"Authorization": f"Bearer {acme}"},
    )
    assert duplicate.status_code == 409


def test_known_member_names_are_refreshed_from_the_assertion(site: Site, idp: TestIdP, acme: str):
    created = requests.post(
        f"{site.url}/scim/v2/Users",
        json=okta_user("carol@acme.test", given="Old", family="Name"),
        headers={"Authorization": f"Bearer {acme}"},
    )
    assert created.status_code == 201
    idp.users["carol@acme.test"] = {
        "email": ["carol@acme.test"],
        "firstName": ["Carol"],
        "lastName": ["Shaw"],
    }
    response = site.post_response(
        requests.Session(),
        "acme",
        idp.response(
            sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="carol@acme.test"
        ),
    )
    assert response.status_code == 303
    (member,) = site.members()
    assert (member.given_name, member.family_name) == ("Carol", "Shaw")
    assert member.source == "scim"


def test_relay_state_redirects_only_to_local_paths(site: Site, idp: TestIdP, acme: str):
    for relay_state, expected in [
        ("/timesheets?week=3", "/timesheets?week=3"),
        ("https://evil.test/", "/"),
        ("//evil.test/x", "/"),
        ("/\\evil.test", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
    ]:
        response = site.post_response(
            requests.Session(),
            "acme",
            idp.response(
                sp_entity_id=site.entity_id("acme"),
                acs_url=site.acs("acme"),
                email="dave@acme.test",
            ),
            relay_state=relay_state,
        )
        assert response.status_code == 303
        assert (
            urlsplit(response.headers["Location"]).path
            + (
                "?" + urlsplit(response.headers["Location"]).query
                if urlsplit(response.headers["Location"]).query
                else ""
            )
            == expected
        ), relay_state
        assert urlsplit(response.headers["Location"]).netloc in ("", urlsplit(site.url).netloc)


# -- SP-initiated --------------------------------------------------------------------------------


def test_sp_initiated_sign_in_returns_to_next(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    idp.next_user = "erin@acme.test"
    response = sp_initiated(browser, site, "acme", next_path="/reports?month=11")
    assert response.status_code == 303, response.text
    assert response.headers["Location"].endswith("/reports?month=11")
    assert whoami(browser, site) == "user=erin@acme.test;groups=;path=/"
    # RelayState sent to the IdP is an opaque reference, never the raw next.
    assert "reports" not in idp.requests[-1].relay_state


def test_authn_request_is_consumed_once(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    start = browser.get(f"{site.url}/saml/acme/login", allow_redirects=False)
    before_use = browser.cookies.copy()  # the binding cookie still naming the request
    action, fields = autopost_form(browser.get(start.headers["Location"]).text)
    assert browser.post(action, data=fields, allow_redirects=False).status_code == 303
    request_id = idp.requests[-1].id
    # A second, freshly signed response to the same request is refused: the browser's cookie
    # no longer names it, and a copy of the cookie from before finds it used (on the server).
    for cookies, reason in (
        (browser.cookies, "request_not_bound"),
        (before_use, "unknown_in_response_to"),
    ):
        again = requests.Session()
        again.cookies.update(cookies)
        refused = site.post_response(
            again,
            "acme",
            idp.response(
                sp_entity_id=site.entity_id("acme"),
                acs_url=site.acs("acme"),
                email="alice@acme.test",
                in_response_to=request_id,
            ),
        )
        assert refused.status_code == 400 and reason in refused.text, reason


def test_a_returning_members_sign_in_takes_few_statements(site: Site, idp: TestIdP, acme: str):
    """The ACS reads the workspace with the member (one statement), uses up the assertion and
    the request it answers (one), records the login (one on PostgreSQL, with its audit row
    and its member.signed_in event; three elsewhere) and the session (one); PostgreSQL locks
    the member once the response is verified (one): store/sign_in.py."""
    expected = 5 if site.middleware.database.url.get_backend_name() == "postgresql" else 6
    first = site.post_response(
        requests.Session(),
        "acme",
        idp.response(
            sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="alice@acme.test"
        ),
    )
    assert first.status_code == 303  # alice exists now; once-a-minute purges are done
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = site.middleware.database.engine
    browser = requests.Session()
    idp.next_user = "alice@acme.test"
    start = browser.get(f"{site.url}/saml/acme/login", allow_redirects=False)
    action, fields = autopost_form(browser.get(start.headers["Location"]).text)
    unsolicited = idp.response(
        sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="alice@acme.test"
    )
    event.listen(engine, "before_cursor_execute", count)
    try:
        solicited = browser.post(action, data=fields, allow_redirects=False)
        assert solicited.status_code == 303, solicited.text
        assert len(statements) == expected, statements
        statements.clear()
        again = site.post_response(requests.Session(), "acme", unsolicited)
        assert again.status_code == 303, again.text
        assert len(statements) == expected, statements
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(site.audit("signed_in")) == 2  # the returning sign-ins, each audited


def test_sign_in_page_routes_by_membership_and_domain(site: Site, idp: TestIdP, acme: str):
    site.workspaces.set_domains("acme", ["acme.test"])
    browser = requests.Session()
    form = browser.get(f"{site.url}/saml/login")
    assert 'name="email"' in form.text and "<label" in form.text
    known = browser.post(
        f"{site.url}/saml/login",
        data={"email": "newcomer@acme.test", "next": "/x"},
        allow_redirects=False,
    )
    assert known.status_code == 303
    assert known.headers["Location"].startswith("/saml/acme/login?")
    assert parse_qs(urlsplit(known.headers["Location"]).query)["next"] == ["/x"]
    unknown = browser.post(
        f"{site.url}/saml/login", data={"email": "x@nowhere.test"}, allow_redirects=False
    )
    site.workspaces.disable("acme", sso=True)
    switched_off = browser.post(
        f"{site.url}/saml/login", data={"email": "newcomer@acme.test"}, allow_redirects=False
    )
    assert unknown.status_code == switched_off.status_code == 200
    assert _strip_form(unknown.text) == _strip_form(switched_off.text)


def _strip_form(html: str) -> str:
    return re.sub(r'value="[^"]*"', "", html)


def test_sign_in_page_answers_by_verified_domain_only(
    site: Site, idp: TestIdP, second_idp: TestIdP, acme: str
):
    # frank is a member of two workspaces (their SCIM provisioned him: a contractor), lena is a
    # member nowhere, and claim.test is claimed by acme but not verified. None of that may show:
    # every address outside a verified domain gets the very same page.
    globex = site.add_workspace("globex", second_idp)
    for _slug, token in (("acme", acme), ("globex", globex)):
        created = requests.post(
            f"{site.url}/scim/v2/Users",
            json=okta_user("frank@contractor.test"),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201
    site.workspaces.claim_domain("acme", "claim.test")
    answers = [
        requests.post(
            f"{site.url}/saml/login", data={"email": email, "next": "/x"}, allow_redirects=False
        )
        for email in (
            "frank@contractor.test",
            "lena@nowhere.test",
            "x@claim.test",
            "not an address",
            "owner@acme.test\u200b",
        )
    ]
    assert {answer.status_code for answer in answers} == {200}
    assert len({_strip_form(answer.text) for answer in answers}) == 1
    assert "/saml/acme/" not in answers[0].text and "/saml/globex/" not in answers[0].text
    assert 'name="workspace"' in answers[0].text  # ... where one can name a workspace instead
    assert 'value="frank@contractor.test"' in answers[0].text  # the typed address is kept


def test_sign_in_page_lets_a_person_name_their_workspace(site: Site, acme: str):
    named = requests.post(
        f"{site.url}/saml/login",
        allow_redirects=False,
        data={"email": "frank@contractor.test", "workspace": " Acme ", "next": "/reports"},
    )
    assert named.status_code == 303
    # The typed address goes on as the IdP's login hint (login_flow.py).
    assert (
        named.headers["Location"]
        == "/saml/acme/login?next=%2Freports&login_hint=frank%40contractor.test"
    )
    # Whether or not a workspace exists is for /saml/<slug>/login to answer alike.
    unknown = requests.post(
        f"{site.url}/saml/login", allow_redirects=False, data={"workspace": "no-such-workspace"}
    )
    assert unknown.headers["Location"] == "/saml/no-such-workspace/login?next=%2F"
    for junk in ("../acme", "acme/login", "a b", "//evil.example", "ACME.", "-acme"):
        refused = requests.post(
            f"{site.url}/saml/login",
            allow_redirects=False,
            data={"workspace": junk, "email": "frank@contractor.test"},
        )
        assert refused.status_code == 200 and "not a workspace ID" in refused.text, junk
        assert 'value="frank@contractor.test"' in refused.text


# -- deactivation, logout, isolation ---------------------------------------------------------------


def test_deactivated_member_gets_403_and_no_session(site: Site, idp: TestIdP, acme: str):
    user = requests.post(
        f"{site.url}/scim/v2/Users",
        json=okta_user("gina@acme.test"),
        headers={"Authorization": f"Bearer {acme}"},
    ).json()
    requests.patch(
        f"{site.url}/scim/v2/Users/{user['id']}",
        headers={"Authorization": f"Bearer {acme}"},
        json={"Operations": [{"op": "replace", "value": {"active": False}}]},
    )
    browser = requests.Session()
    response = site.post_response(
        browser,
        "acme",
        idp.response(
            sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="gina@acme.test"
        ),
    )
    assert response.status_code == 403 and "deactivated" in response.text
    assert "Set-Cookie" not in response.headers
    assert whoami(browser, site) == "user=;groups=;path=/"
    assert [e.changes["reason"] for e in site.audit("login_refused")] == ["member_deactivated"]


def test_scim_deactivation_ends_live_session_and_reactivation_allows_new_login(
    serve: Callable[[Any], Any], database_url: str, idp: TestIdP
):
    site = Site(serve, database_url, session_recheck_seconds=0.2)
    try:
        token = site.add_workspace("acme", idp)
        browser = requests.Session()
        site.post_response(
            browser,
            "acme",
            idp.response(
                sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="hal@acme.test"
            ),
        )
        assert whoami(browser, site).startswith("user=hal@acme.test")
        member_id = site.members()[0].id
        scim = {"Authorization": f"Bearer {token}"}
        off = {"Operations": [{"op": "replace", "value": {"active": False}}]}
        requests.patch(f"{site.url}/scim/v2/Users/{member_id}", json=off, headers=scim)
        time.sleep(0.5)
        assert whoami(browser, site) == "user=;groups=;path=/"
        on = {"Operations": [{"op": "replace", "value": {"active": True}}]}
        requests.patch(f"{site.url}/scim/v2/Users/{member_id}", json=on, headers=scim)
        time.sleep(0.5)
        assert whoami(browser, site) == "user=;groups=;path=/"  # old sessions stay ended
        site.post_response(
            browser,
            "acme",
            idp.response(
                sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="hal@acme.test"
            ),
        )
        assert whoami(browser, site).startswith("user=hal@acme.test")
    finally:
        site.middleware.close()


def test_logout_ends_the_session_and_the_old_cookie_stays_dead(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    site.post_response(
        browser,
        "acme",
        idp.response(
            sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="ivy@acme.test"
        ),
    )
    old_cookies = browser.cookies.copy()
    form = browser.get(f"{site.url}/saml/logout").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token, form
    done = browser.post(
        f"{site.url}/saml/logout", data={"csrf_token": token.group(1)}, allow_redirects=False
    )
    # On to the IdP's single logout (single_logout.py), the local session already over.
    assert done.status_code == 302 and done.headers["Location"].startswith(idp.slo_url + "?")
    assert whoami(browser, site) == "user=;groups=;path=/"
    replay = requests.Session()
    replay.cookies.update(old_cookies)
    assert whoami(replay, site) == "user=;groups=;path=/"


def test_two_workspaces_with_two_idps_cannot_sign_into_each_other(
    site: Site, idp: TestIdP, second_idp: TestIdP, acme: str
):
    site.add_workspace("globex", second_idp)
    # Globex's IdP signs a response for Globex; posted to Acme's ACS it must fail.
    foreign = second_idp.response(
        sp_entity_id=site.entity_id("globex"), acs_url=site.acs("globex"), email="mallory@acme.test"
    )
    response = site.post_response(requests.Session(), "acme", foreign)
    assert response.status_code == 400
    # Even addressed to Acme, Globex's IdP is not Acme's IdP.
    addressed = second_idp.response(
        sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="mallory@acme.test"
    )
    response = site.post_response(requests.Session(), "acme", addressed)
    assert response.status_code == 400 and "issuer_mismatch" in response.text
    assert site.members() == []


def test_sp_metadata_is_served_at_the_entity_id(site: Site, idp: TestIdP, acme: str):
    response = requests.get(site.entity_id("acme"))
    assert response.status_code == 200
    assert f'entityID="{site.entity_id("acme")}"' in response.text
    assert site.acs("acme") in response.text
    assert "emailAddress" in response.text
    assert requests.get(f"{site.url}/saml/nope/metadata").status_code == 404


def test_sp_metadata_is_available_before_any_idp_is_set(site: Site):
    site.workspaces.create("fresh", name="Fresh", plan="plus", owner_email="o@fresh.test")
    response = requests.get(site.entity_id("fresh"))
    assert response.status_code == 200 and site.acs("fresh") in response.text


def test_every_reason_sso_cannot_start_gets_one_answer(site: Site, idp: TestIdP, acme: str):
    """Unknown workspace, free plan, SSO off, no IdP: a stranger cannot tell them apart, at the
    login URL or at the ACS; the owner's diagnostics keep the real reason."""
    site.workspaces.create("free", name="Free", plan="free", owner_email="o@free.test")
    site.workspaces.create("off", name="Off", plan="plus", owner_email="o@off.test")
    site.workspaces.set_idp("off", metadata_xml=idp.metadata_xml())
    site.workspaces.create("bare", name="Bare", plan="plus", owner_email="o@bare.test")
    site.workspaces.enable("bare", sso=True)
    slugs = ("nope", "free", "off", "bare")
    logins = [
        requests.get(f"{site.url}/saml/{slug}/login", allow_redirects=False) for slug in slugs
    ]
    assert {(r.status_code, r.text) for r in logins} == {(logins[0].status_code, logins[0].text)}
    assert logins[0].status_code == 404 and "sso_unavailable" in logins[0].text

    answers = []
    for slug in slugs:
        signed = idp.response(
            sp_entity_id=site.entity_id(slug), acs_url=site.acs(slug), email=f"alice@{slug}.test"
        )
        answers.append(site.post_response(requests.Session(), slug, signed))
    assert {(r.status_code, r.text) for r in answers} == {(answers[0].status_code, answers[0].text)}
    assert "sso_unavailable" in answers[0].text and "Set-Cookie" not in answers[0].headers
    reasons = sorted(e.changes["reason"] for e in site.audit("login_failed"))
    assert reasons == ["idp_not_configured", "plan", "sso_disabled"]  # no row for "nope"


def test_sp_metadata_tells_nothing_but_that_the_workspace_exists(
    site: Site, idp: TestIdP, acme: str
):
    """The same document for a workspace in any state (plan, switches, IdP), the slug and
    the workspace's own SP certificates aside."""
    site.workspaces.create("free", name="Free", plan="free", owner_email="o@free.test")
    documents = {
        re.sub(
            r"<ds:X509Certificate>[^<]+</ds:X509Certificate>",
            "<ds:X509Certificate/>",
            requests.get(site.entity_id(slug)).text.replace(f"/saml/{slug}/", "/saml/X/"),
        )
        for slug in ("acme", "free")
    }
    assert len(documents) == 1
    assert idp.entity_id not in documents.pop()


def test_https_base_url_makes_secure_cookies(
    serve: Callable[[Any], Any], database_url: str, idp: TestIdP, tmp_path: Path
):
    dispatch: list[Any] = []
    live = serve(lambda environ, start_response: dispatch[0](environ, start_response))
    public = "https://tracker.example.test"
    middleware = SSOMiddleware(
        host_app,
        database_url=database_url,
        secret_key="k-padded-to-thirty-two-bytes-at-least",
        base_url=public,
    )
    dispatch.append(middleware)
    try:
        middleware.workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
        middleware.workspaces.enable("acme", sso=True)
        middleware.workspaces.verify_domain("acme", "acme.test", by_operator=True)
        middleware.workspaces.set_idp("acme", metadata_xml=idp.metadata_xml())
        saml_response = idp.response(
            sp_entity_id=f"{public}/saml/acme/metadata",
            acs_url=f"{public}/saml/acme/acs",
            email="jo@acme.test",
        )
        response = requests.post(
            f"{live.url}/saml/acme/acs", data={"SAMLResponse": saml_response}, allow_redirects=False
        )
        assert response.status_code == 303, response.text
        assert "Secure" in response.headers["Set-Cookie"]
    finally:
        middleware.close()


def test_entra_claim_uris_fill_the_names(site: Site, idp: TestIdP, acme: str):
    claims = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
    idp.users["kim@acme.test"] = {
        claims + "emailaddress": ["kim@acme.test"],
        claims + "givenname": ["Kim"],
        claims + "surname": ["Lee"],
        "http://schemas.microsoft.com/identity/claims/displayname": ["Kim Lee (Ops)"],
    }
    response = site.post_response(
        requests.Session(),
        "acme",
        idp.response(
            sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="kim@acme.test"
        ),
    )
    assert response.status_code == 303
    (member,) = site.members()
    assert (member.given_name, member.family_name, member.display_name) == (
        "Kim",
        "Lee",
        "Kim Lee (Ops)",
    )
