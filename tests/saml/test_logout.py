"""/saml/logout: a GET asks with a CSRF-protected form, a POST ends the session for good."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from webtest import TestApp

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.saml.logout import LogoutPage
from webwork_sso_middleware.sessions import SessionManager
from webwork_sso_middleware.signing import Signing
from webwork_sso_middleware.store import Database

from ..sessions.test_manager import add_member, cookie_pair, create_workspace, sign_in
from .conftest import Site
from .idp import TestIdP, autopost_form
from .test_app import whoami
from .test_single_logout import (
    EMAIL,
    copy_of,
    idp_logout_response,
    sign_out,
    signed_in,
    slo,
    trust_sp,
)

KEY = "logout-test-key-padded-to-thirty-two-bytes-at-least"
LOGOUT = "/saml/logout"


@pytest.fixture
def slo_site(serve: Any, database_url: str, idp: TestIdP) -> Iterator[Site]:
    """A served site whose workspace ``acme`` trusts the TestIdP, which trusts it back (by
    its SP metadata: keys and SLO endpoints)."""
    served = Site(serve, database_url)
    served.add_workspace("acme", idp)
    trust_sp(served, idp)
    yield served
    served.middleware.close()


@pytest.fixture
def workspace_id(database: Database) -> int:
    return create_workspace(database)


@pytest.fixture
def sessions(database: Database) -> SessionManager:
    return SessionManager(
        database, signing=Signing([KEY]), secure=True, recheck_interval=dt.timedelta(seconds=60)
    )


@pytest.fixture
def page(sessions: SessionManager) -> TestApp:
    return TestApp(LogoutPage(sessions))


@pytest.fixture
def ada(database: Database, workspace_id: int) -> str:
    return add_member(database, workspace_id, "ada@acme.test")


@pytest.fixture
def cookie(sessions: SessionManager, ada: str, workspace_id: int) -> str:
    return cookie_pair(sign_in(sessions, ada, workspace_id))


def token_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def post(page: TestApp, cookie: str | None, status: int, **fields: str) -> Any:
    headers = {"Cookie": cookie} if cookie else {}
    return page.post(LOGOUT, fields, headers=headers, status=status)


# -- the confirmation page ---------------------------------------------------------------------


def test_get_shows_an_accessible_form_with_a_csrf_token(page, cookie):
    answer = page.get(LOGOUT, headers={"Cookie": cookie}, status=200)
    html = answer.text

    assert answer.content_type == "text/html"
    assert answer.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert (
        '<html lang="en">' in html
        and "You are signed in as <strong>ada@acme.test</strong>." in html
    )
    assert '<form method="post" action="/saml/logout" aria-labelledby="logout-question">' in html
    assert 'id="logout-question"' in html and '<button type="submit">Sign out</button>' in html
    assert len(token_in(html)) > 20
    # Self-contained: no scripts, no stylesheets or images from elsewhere.
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)
    assert "Set-Cookie" not in answer.headers  # looking does not sign anyone out


def test_get_escapes_what_it_shows(page, database, workspace_id, sessions):
    member = add_member(database, workspace_id, '<b>"x"</b>@acme.test')
    cookie = cookie_pair(sign_in(sessions, member, workspace_id))

    html = page.get(LOGOUT, {"next": '/a"><script>x</script>'}, headers={"Cookie": cookie}).text

    assert "<b>" not in html
    assert "&lt;b&gt;&quot;x&quot;&lt;/b&gt;@acme.test" in html
    assert "<script>" not in html


def test_get_without_a_session_says_so(page):
    html = page.get(LOGOUT, status=200).text

    assert "not signed in" in html and "<form" not in html


def test_the_form_honours_the_script_name(page, cookie):
    html = page.get(
        LOGOUT, headers={"Cookie": cookie}, extra_environ={"SCRIPT_NAME": "/tracker"}
    ).text

    assert 'action="/tracker/saml/logout"' in html


# -- signing out ------------------------------------------------------------------------------


def test_post_with_the_token_ends_the_session_for_good(page, sessions, database, cookie):
    token = token_in(page.get(LOGOUT, headers={"Cookie": cookie}).text)
    assert sessions.identify({"HTTP_COOKIE": cookie}) is not None  # cached for 60 s from here

    answer = post(page, cookie, 303, csrf_token=token)

    assert answer.headers["Location"] == "/"
    clearing = answer.headers["Set-Cookie"]
    assert clearing.startswith("webwork_sso_session=;") and "Max-Age=0" in clearing
    assert "HttpOnly" in clearing and "Secure" in clearing
    # Replaying the old cookie: refused here at once, and by any other worker.
    assert sessions.identify({"HTTP_COOKIE": cookie}) is None
    other_worker = SessionManager(database, signing=Signing([KEY]), secure=True)
    assert other_worker.identify({"HTTP_COOKIE": cookie}) is None
    # Replaying the sign-out itself is harmless: nothing is left to end.
    assert post(page, cookie, 303, csrf_token=token).headers["Location"] == "/"
    assert "signed in as" not in page.get(LOGOUT, headers={"Cookie": cookie}).text


def test_post_without_the_token_is_refused_and_the_session_untouched(page, sessions, cookie):
    answer = post(page, cookie, 403)

    assert answer.content_type == "text/html" and "still signed in" in answer.text
    assert "Set-Cookie" not in answer.headers
    assert sessions.identify({"HTTP_COOKIE": cookie})[0].user_name == "ada@acme.test"
    # The refusal offers a genuine form, so a person who meant it can confirm.
    post(page, cookie, 303, csrf_token=token_in(answer.text))
    assert sessions.identify({"HTTP_COOKIE": cookie}) is None


@pytest.mark.parametrize("token", ["", "forged", "x" * 600])
def test_post_with_a_bad_token_is_refused(page, sessions, cookie, token):
    post(page, cookie, 403, csrf_token=token)

    assert sessions.identify({"HTTP_COOKIE": cookie}) is not None


def test_a_token_from_another_session_does_not_work(page, sessions, cookie, ada, workspace_id):
    other = cookie_pair(sign_in(sessions, ada, workspace_id))
    others_token = token_in(page.get(LOGOUT, headers={"Cookie": other}).text)

    post(page, cookie, 403, csrf_token=others_token)

    assert sessions.identify({"HTTP_COOKIE": cookie}) is not None


def test_a_token_signed_by_another_key_does_not_work(page, sessions, cookie):
    foreign = LogoutPage(
        SessionManager(sessions.database, signing=Signing(["another-key"]), secure=True)
    )
    token = foreign.token_for(sessions.read_cookie({"HTTP_COOKIE": cookie}))

    post(page, cookie, 403, csrf_token=token)


def test_an_anonymous_post_just_goes_home(page):
    answer = post(page, None, 303)

    assert answer.headers["Location"] == "/"
    assert "Max-Age=0" in answer.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "next_value",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "/ok\r\nSet-Cookie: x=y",
        "evil.example",
        "",
        "http:/evil.example",
    ],
)
def test_next_goes_nowhere_but_this_site(page, sessions, ada, workspace_id, next_value):
    cookie = cookie_pair(sign_in(sessions, ada, workspace_id))
    token = token_in(page.get(LOGOUT, headers={"Cookie": cookie}).text)

    answer = post(page, cookie, 303, csrf_token=token, next=next_value)

    assert answer.headers["Location"] == "/"


def test_a_relative_next_is_kept(page, cookie):
    form = page.get(LOGOUT, {"next": "/reports?week=3"}, headers={"Cookie": cookie}).text
    assert 'name="next" value="/reports?week=3"' in form

    answer = post(page, cookie, 303, csrf_token=token_in(form), next="/reports?week=3")

    assert answer.headers["Location"] == "/reports?week=3"


def test_other_methods_are_refused(page):
    assert page.put(LOGOUT, status=405).headers["Allow"] == "GET, HEAD, POST"


# -- through the middleware, over real HTTP ---------------------------------------------------


def host_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(environ.get("REMOTE_USER") or "anonymous").encode()]


@pytest.fixture
def site(database_url: str, serve: Any) -> Iterator[tuple[SSOMiddleware, str]]:
    app = SSOMiddleware(
        host_app,
        database_url=database_url,
        secret_key=KEY,
        base_url="https://tracker.example.com",
        session_recheck_seconds=60,
    )
    yield app, serve(app).url
    app.close()


def test_logout_through_the_middleware_over_http(site, database, workspace_id, ada):
    app, url = site
    cookie = cookie_pair(sign_in(app.sessions, ada, workspace_id))
    browser = requests.Session()
    browser.headers["Cookie"] = cookie
    assert browser.get(url + "/timesheet", timeout=5).text == "ada@acme.test"

    form = browser.get(url + LOGOUT, timeout=5)
    assert form.status_code == 200 and "Sign out" in form.text
    done = browser.post(
        url + LOGOUT,
        data={"csrf_token": token_in(form.text), "next": "/bye"},
        allow_redirects=False,
        timeout=5,
    )

    assert done.status_code == 303 and done.headers["Location"] == "/bye"
    assert "Max-Age=0" in done.headers["Set-Cookie"]
    # The old cookie, replayed by hand: the host app sees nobody.
    assert browser.get(url + "/timesheet", timeout=5).text == "anonymous"
    assert (
        requests.get(url + "/timesheet", headers={"Cookie": cookie}, timeout=5).text == "anonymous"
    )


# -- single logout through /saml/logout (real HTTP, the TestIdP) -----------------------------------
# A LogoutPage without single logout (above) never looks at SAML fields; the site's does.


def test_a_logout_page_without_single_logout_ignores_saml_fields(page, sessions, cookie):
    answer = page.get(LOGOUT, {"SAMLRequest": "x"}, headers={"Cookie": cookie}, status=200)
    assert "Sign out of this site in this browser?" in answer.text


def test_an_idps_redirect_logout_request_sent_here_is_forwarded(slo_site, idp):
    site = slo_site
    browser = signed_in(site)
    generic = f"{site.url}{LOGOUT}"
    url = idp.logout_redirect(destination=generic, name_id=EMAIL)

    forwarded = browser.get(url, allow_redirects=False)

    assert forwarded.status_code == 302, forwarded.text
    query = urlsplit(url).query
    assert forwarded.headers["Location"] == f"/saml/acme/slo?{query}"  # untouched: still signed
    answer = browser.get(site.url + forwarded.headers["Location"], allow_redirects=False)
    assert answer.status_code == 302 and answer.headers["Location"].startswith(idp.slo_url)
    assert idp.read_logout_response(answer.headers["Location"]).signature_verified
    assert whoami(browser, site).startswith("user=;")


def test_an_idps_post_logout_request_sent_here_is_forwarded(slo_site, idp):
    site = slo_site
    browser = signed_in(site)
    fields = idp.logout_form(
        destination=f"{site.url}{LOGOUT}", name_id=EMAIL, relay_state="from-idp"
    )

    forwarded = browser.post(f"{site.url}{LOGOUT}", data=fields, allow_redirects=False)

    assert forwarded.status_code == 200, forwarded.text
    action, sent = autopost_form(forwarded.text)
    assert action == "/saml/acme/slo" and sent == fields
    assert "form-action 'self'" in forwarded.headers["Content-Security-Policy"]
    answer = browser.post(site.url + action, data=sent, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    assert whoami(browser, site).startswith("user=;")


def test_an_idps_logout_request_without_a_session_gets_a_clear_page(slo_site, idp):
    site = slo_site
    url = idp.logout_redirect(destination=f"{site.url}{LOGOUT}", name_id=EMAIL)
    fields = idp.logout_form(destination=f"{site.url}{LOGOUT}", name_id=EMAIL)

    for answer in (
        requests.get(url, allow_redirects=False),
        requests.post(f"{site.url}{LOGOUT}", data=fields, allow_redirects=False),
    ):
        assert answer.status_code == 200, answer.text
        assert '<span class="reason">slo_no_session</span>' in answer.text


def test_an_idps_logout_response_sent_here_finds_the_pending_logout(slo_site, idp):
    site = slo_site
    browser = signed_in(site)
    to_idp = sign_out(site, browser)
    request_id = idp.read_logout_response(to_idp.headers["Location"]).id
    answer_url = idp_logout_response(idp, site, request_id).replace(
        slo(site), f"{site.url}{LOGOUT}"
    )

    forwarded = browser.get(answer_url, allow_redirects=False)

    assert forwarded.status_code == 302
    assert forwarded.headers["Location"].startswith("/saml/acme/slo?SAMLResponse=")
    done = browser.get(site.url + forwarded.headers["Location"])
    assert done.status_code == 200 and "Signed out" in done.text


def test_sign_out_ends_the_local_session_before_the_idp_is_asked(slo_site, idp):
    site = slo_site
    idp.slo_silent = True
    browser = signed_in(site)
    old = copy_of(browser)

    to_idp = sign_out(site, browser)

    assert to_idp.status_code == 302 and "Max-Age=0" in to_idp.headers["Set-Cookie"]
    assert whoami(old, site).startswith("user=;")  # the IdP was never even reached
