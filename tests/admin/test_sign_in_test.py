"""The settings page's Test sign-in over real HTTP with a real IdP and database: the owner's
own session is left as it was, the result (who the IdP asserted, whether they could sign in,
the reason code when not) shows on the page to the owner who started it only, and the tested
person gets no session and no member row."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from sqlalchemy import func, select

from webwork_sso_middleware.store.models import Member, MemberSession

from ..saml.conftest import Site
from ..saml.idp import TestIdP, autopost_form
from ..store_helpers import transaction
from .conftest import OWNER, open_with_link, settings_url, sign_in


def session_rows(site: Site) -> int:
    with transaction(site.middleware.database) as unit:
        return int(unit.session.scalar(select(func.count()).select_from(MemberSession)) or 0)


def member_emails(site: Site) -> set[str]:
    with transaction(site.middleware.database) as unit:
        return set(unit.session.scalars(select(Member.user_name)))


def ticketed_link(site: Site, page: str) -> str:
    found = re.search(r'id="test-sign-in" href="([^"]+)"', page)
    assert found, page
    return urljoin(site.url, html.unescape(found.group(1)))


def run_test(
    browser: requests.Session, site: Site, idp: TestIdP, page: str, as_user: str
) -> requests.Response:
    """Follow Test sign-in, sign in at the IdP as ``as_user``; the ACS's answer (unfollowed)."""
    login = ticketed_link(site, page)
    assert urlsplit(login).path == "/saml/acme/login" and "test" in parse_qs(urlsplit(login).query)
    idp.next_user = as_user
    to_idp = browser.get(login, allow_redirects=False)
    assert to_idp.status_code == 302, to_idp.text
    action, fields = autopost_form(browser.get(to_idp.headers["Location"]).text)
    return browser.post(action, data=fields, allow_redirects=False)


def result_of(page: str) -> str:
    found = re.search(r'id="test-result">(.*?)</div>', page, re.S)
    assert found, page
    return found.group(1)


def test_the_owner_keeps_their_session_and_sees_who_the_idp_asserted(
    site: Site, idp: TestIdP, acme: str
):
    owner = requests.Session()
    assert sign_in(owner, site, idp, OWNER).status_code == 303
    cookie = owner.cookies.get("webwork_sso_session")
    page = owner.get(settings_url(site))
    assert page.status_code == 200 and "signed in through SSO as owner@acme.test" in page.text
    sessions_before = session_rows(site)

    back = run_test(owner, site, idp, page.text, "alice@acme.test")

    assert back.status_code == 303
    assert urlsplit(urljoin(site.url, back.headers["Location"])).path == "/saml/acme/settings"
    assert "tested=" in back.headers["Location"]
    # No session cookie, no session row, no member created at a "first sign-in".
    assert "webwork_sso_session" not in back.headers.get("Set-Cookie", "")
    assert owner.cookies.get("webwork_sso_session") == cookie
    assert session_rows(site) == sessions_before
    assert "alice@acme.test" not in member_emails(site)
    shown = owner.get(urljoin(site.url, back.headers["Location"]))
    assert shown.status_code == 200, shown.text
    assert "signed in through SSO as owner@acme.test" in shown.text  # still the owner
    result = result_of(shown.text)
    assert 'class="notice ok"' in shown.text.split('id="test-result"')[0].rsplit("<div", 1)[1]
    assert "the identity provider asserted alice@acme.test" in result
    assert "could sign in" in result
    # The host app still sees the owner.
    assert "user=owner@acme.test" in owner.get(f"{site.url}/").text


def test_a_refused_test_shows_the_reason_code(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    page = open_with_link(browser, site)
    back = run_test(browser, site, idp, page.text, "mallory@elsewhere.test")
    assert back.status_code == 303 and "tested=" in back.headers["Location"]
    assert (
        "Set-Cookie" not in back.headers or "webwork_sso_session" not in back.headers["Set-Cookie"]
    )
    result = result_of(browser.get(urljoin(site.url, back.headers["Location"])).text)
    assert "mallory@elsewhere.test" in result and "could not sign in" in result
    assert "domain_not_verified" in result
    assert session_rows(site) == 0 and member_emails(site) == set()


def test_a_refused_response_of_a_test_comes_back_with_its_reason(
    site: Site, idp: TestIdP, acme: str
):
    """A response the ACS refuses (here: the IdP's key is not the configured one) still
    answers the test: the owner sees the reason rather than an error page."""
    browser = requests.Session()
    page = open_with_link(browser, site)
    to_idp = browser.get(ticketed_link(site, page.text), allow_redirects=False)
    browser.get(to_idp.headers["Location"])  # the IdP reads the AuthnRequest
    request_id = idp.requests[-1].id
    wrong = idp.response(
        sp_entity_id=site.entity_id("acme"),
        acs_url=site.acs("acme"),
        email=OWNER,
        audience="https://elsewhere.test/sp",
        in_response_to=request_id,
    )
    back = site.post_response(browser, "acme", wrong)
    assert back.status_code == 303, back.text
    result = result_of(browser.get(urljoin(site.url, back.headers["Location"])).text)
    assert "audience_mismatch" in result and OWNER in result
    assert session_rows(site) == 0


def test_a_deactivated_member_is_reported_without_touching_them(
    site: Site, idp: TestIdP, acme: str
):
    assert sign_in(requests.Session(), site, idp, "bob@acme.test").status_code == 303
    _deactivate(site, "bob@acme.test")
    browser = requests.Session()
    page = open_with_link(browser, site)
    before = session_rows(site)
    back = run_test(browser, site, idp, page.text, "bob@acme.test")
    result = result_of(browser.get(urljoin(site.url, back.headers["Location"])).text)
    assert "member_deactivated" in result and "bob@acme.test" in result
    assert session_rows(site) == before


def _deactivate(site: Site, user_name: str) -> None:
    with transaction(site.middleware.database) as unit:
        member = unit.session.scalars(select(Member).where(Member.user_name == user_name)).one()
        member.active = False


def test_nobody_else_sees_a_result_or_can_start_one(
    site: Site, idp: TestIdP, second_idp: TestIdP, acme: str
):
    owner = requests.Session()
    page = open_with_link(owner, site)
    back = run_test(owner, site, idp, page.text, "alice@acme.test")
    result_url = urljoin(site.url, back.headers["Location"])
    # Another browser with the nonce: a stranger gets the 403; another owner-access browser
    # (its own settings link) is not the one that started it, and sees no result.
    assert requests.get(result_url).status_code == 403
    other_owner = requests.Session()
    open_with_link(other_owner, site)
    other_view = other_owner.get(result_url).text
    assert "alice@acme.test" not in result_of(other_view) and "no result" in result_of(other_view)
    # A forged or foreign ticket starts nothing.
    forged = requests.get(f"{site.url}/saml/acme/login", params={"test": "forged"})
    assert forged.status_code == 403 and "test_expired" in forged.text
    # A hostile workspace's owner, with a genuine ticket of their own workspace, cannot run a
    # test at acme (and so skip acme's session or learn acme's answers).
    site.add_workspace("globex", second_idp)
    hostile = requests.Session()
    globex_page = open_with_link(hostile, site, "globex")
    ticket = parse_qs(urlsplit(ticketed_link(site, globex_page.text)).query)["test"][0]
    used_at_acme = hostile.get(f"{site.url}/saml/acme/login", params={"test": ticket})
    assert used_at_acme.status_code == 403 and "test_expired" in used_at_acme.text
    # A stranger's page carries no ticket at all: the 403 page has no Test sign-in.
    assert "test=" not in requests.get(settings_url(site)).text


def test_a_plain_sign_in_still_starts_a_session(site: Site, idp: TestIdP, acme: str):
    """Only a response to a test request is a test: the same browser's ordinary sign-in after
    a test signs in as usual."""
    owner = requests.Session()
    page = open_with_link(owner, site)
    run_test(owner, site, idp, page.text, "alice@acme.test")
    assert sign_in(owner, site, idp, "alice@acme.test").status_code == 303
    assert session_rows(site) == 1 and "alice@acme.test" in member_emails(site)
