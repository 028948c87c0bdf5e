"""The settings page over real HTTP: who gets in, the settings link, the members table and the
diagnostics, against a real IdP and a real database. The owner's actions (CSRF, the token, the
IdP, the switches, closing, domains) are test_actions.py."""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from webwork_sso_middleware.admin.links import settings_link
from webwork_sso_middleware.signing import Signing
from webwork_sso_middleware.store.models import Member, Workspace, utcnow

from ..saml.conftest import Site
from ..saml.idp import TestIdP
from ..scim.conftest import okta_user
from ..store_helpers import transaction
from .conftest import (
    ACCESS_DENIED,
    OWNER,
    confirm,
    open_with_link,
    post_action,
    press_open_button,
    scim_status,
    settings_url,
    sign_in,
)

# -- who may open the page ---------------------------------------------------------------------------


def test_anonymous_visitors_get_403_whether_or_not_the_workspace_exists(site: Site, acme: str):
    known = requests.get(settings_url(site))
    unknown = requests.get(settings_url(site, "nope"))
    assert known.status_code == unknown.status_code == 403
    assert ACCESS_DENIED in known.text and ACCESS_DENIED in unknown.text
    assert "SCIM" not in known.text and "Acme" not in known.text  # nothing of it shows
    assert requests.post(settings_url(site), data={"action": "regenerate_token"}).status_code == 403
    assert scim_status(site, acme) == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_get_405_with_the_allowed_ones(site: Site, acme: str, method: str):
    refused = requests.request(method, settings_url(site))
    assert refused.status_code == 405
    assert refused.headers["Allow"] == "GET, HEAD, POST"
    assert "Acme" not in refused.text  # nothing of the workspace, as for a 403


def test_settings_link_opens_the_page_once_and_leaves_the_address_bar(site: Site, acme: str):
    link = site.middleware.settings_link("acme")
    browser = requests.Session()
    shown = browser.get(link, allow_redirects=False)
    # The link shows a button that posts it back; the page itself never carries the token.
    assert shown.status_code == 200 and "Open the settings page" in shown.text
    assert '<form method="post">' in shown.text and "action=" not in shown.text.split("<form")[1]
    assert link.rsplit("link=", 1)[1] not in shown.text
    assert "Set-Cookie" not in shown.headers
    assert shown.headers["Cache-Control"] == "no-store"
    assert shown.headers["Referrer-Policy"] == "no-referrer"
    opened = browser.post(link, data={"action": "open_link"}, allow_redirects=False)
    assert opened.status_code == 303
    assert urlsplit(opened.headers["Location"]).path == "/saml/acme/settings"
    assert "link=" not in opened.headers["Location"]
    cookie = opened.headers["Set-Cookie"]
    assert cookie.startswith("webwork_sso_settings=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/saml/acme/settings", "Max-Age=1800"):
        assert attribute in cookie
    assert "Secure" not in cookie  # http base URL
    page = browser.get(settings_url(site))
    assert page.status_code == 200, page.text
    assert "opened with a settings link" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    # The link works once: another browser holding it is refused, whether it looks or presses...
    for replay in (requests.get(link), requests.post(link, data={"action": "open_link"})):
        assert replay.status_code == 403 and "already used" in replay.text
        assert "Set-Cookie" not in replay.headers
    # ...while the browser that used it, still in its settings session, is simply let in.
    assert browser.get(link).status_code == 200
    assert browser.post(link, data={"action": "open_link"}).status_code == 200


def test_previewers_that_fetch_the_link_leave_it_usable(site: Site, acme: str):
    link = site.middleware.settings_link("acme")
    # A chat app's unfurler, a mail scanner, a prefetch: GETs and HEADs, as often as they like.
    for _ in range(3):
        fetched = requests.get(link, allow_redirects=False)
        assert fetched.status_code == 200 and "Set-Cookie" not in fetched.headers
    assert requests.head(link).status_code == 200
    browser = requests.Session()
    page = press_open_button(browser, link)
    assert page.status_code == 200 and "opened with a settings link" in page.text
    assert urlsplit(page.url).query == ""  # the token left the address bar


def test_a_cross_site_post_of_a_link_only_shows_its_button(site: Site, acme: str):
    # Another site's page posting (its own) link into a visitor's browser plants no session.
    link = site.middleware.settings_link("acme")
    for fetch_site in ("cross-site", "same-site"):
        posted = requests.post(
            link,
            data={"action": "open_link"},
            allow_redirects=False,
            headers={"Sec-Fetch-Site": fetch_site},
        )
        assert posted.status_code == 200 and "Open the settings page" in posted.text
        assert "Set-Cookie" not in posted.headers
    # A press on the page's own button (same-origin) opens it: the link was not used up.
    browser = requests.Session()
    opened = browser.post(
        link,
        data={"action": "open_link"},
        allow_redirects=False,
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert opened.status_code == 303 and "webwork_sso_settings=" in opened.headers["Set-Cookie"]


def test_expired_tampered_and_foreign_links_are_refused(site: Site, acme: str, idp: TestIdP):
    keys = site.middleware.settings.secret_key
    expired = settings_link(
        "acme",
        base_url=site.url,
        signing=Signing(keys),
        lifetime=dt.timedelta(minutes=5),
        now=time.time() - 301,
    )
    response = requests.get(expired)
    assert response.status_code == 403 and "expired" in response.text
    short = settings_link(
        "acme", base_url=site.url, signing=Signing(keys), lifetime=dt.timedelta(seconds=1)
    )
    time.sleep(1.1)
    assert requests.get(short).status_code == 403

    good = site.middleware.settings_link("acme")
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    response = requests.get(tampered, allow_redirects=False)
    assert response.status_code == 403 and "not valid" in response.text
    assert "Set-Cookie" not in response.headers
    other_site = settings_link("acme", base_url=site.url, signing=Signing(("another-key",)))
    assert requests.get(other_site).status_code == 403

    site.workspaces.create("globex", name="Globex", plan="plus", owner_email="o@globex.test")
    globex_link = site.middleware.settings_link("globex")
    moved = globex_link.replace("/saml/globex/", "/saml/acme/")
    response = requests.get(moved)
    assert response.status_code == 403 and "another workspace" in response.text
    # Globex's settings session does not open Acme's page, even sent there by hand.
    browser = requests.Session()
    assert press_open_button(browser, globex_link).status_code == 200
    value = browser.cookies.get("webwork_sso_settings")
    forged = requests.get(settings_url(site), headers={"Cookie": f"webwork_sso_settings={value}"})
    assert forged.status_code == 403
    assert good  # the good link was never used: still fine
    assert press_open_button(requests.Session(), good).status_code == 200


def test_members_who_are_not_the_owner_get_403(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    assert sign_in(browser, site, idp, "alice@acme.test").status_code == 303
    response = browser.get(settings_url(site))
    assert response.status_code == 403
    assert "alice@acme.test" in response.text and "not the owner" in response.text


def test_the_owner_signed_in_through_sso_gets_in(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    assert sign_in(browser, site, idp, OWNER.upper()).status_code == 303  # case-insensitive
    response = browser.get(settings_url(site))
    assert response.status_code == 200, response.text
    assert "signed in through SSO" in response.text
    # The owner of Acme is nobody in Globex.
    site.workspaces.create("globex", name="Globex", plan="plus", owner_email=OWNER)
    assert browser.get(settings_url(site, "globex")).status_code == 403


def test_a_scim_attribute_naming_the_owner_opens_nothing(site: Site, idp: TestIdP, acme: str):
    # A member whose SCIM-written emails[primary] is the owner's address is not the owner: only
    # the verified sign-in identity is (issue 9).
    scim = {"Authorization": f"Bearer {acme}"}
    body = okta_user("mallory@acme.test")
    body["emails"] = [{"value": OWNER, "type": "work", "primary": True}]
    assert requests.post(f"{site.url}/scim/v2/Users", json=body, headers=scim).status_code == 201
    browser = requests.Session()
    assert sign_in(browser, site, idp, "mallory@acme.test").status_code == 303
    assert browser.get(settings_url(site)).status_code == 403


def test_the_owner_needs_a_verified_domain_to_open_the_page_through_sso(site: Site, idp: TestIdP):
    # Owner's domain only claimed: the SCIM-provisioned owner signs in (a contractor-style
    # member), but an unverified address is no verified identity: the link is the way in.
    token = site.add_workspace("acme", idp, verify_domain=False)
    site.workspaces.set_domains("acme", ["acme.test"])
    requests.post(
        f"{site.url}/scim/v2/Users",
        json=okta_user(OWNER),
        headers={"Authorization": f"Bearer {token}"},
    )
    browser = requests.Session()
    assert sign_in(browser, site, idp, OWNER).status_code == 303
    assert browser.get(settings_url(site)).status_code == 403
    site.workspaces.verify_domain("acme", "acme.test", by_operator=True)
    site.middleware.database.sessions_ended([m.id for m in site.members()])
    assert browser.get(settings_url(site)).status_code == 200


def test_owner_who_switches_sso_off_is_told_how_to_come_back(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    sign_in(browser, site, idp, OWNER)
    page = browser.get(settings_url(site))
    done = confirm(browser, post_action(browser, site, page, "switch", feature="sso", state="off"))
    assert done.status_code == 200 and "settings-link acme" in done.text
    assert site.workspaces.get("acme").sso_enabled is False
    # SSO off ended the session, at once in this process: it no longer opens the page, and
    # stays ended when SSO comes back on.
    assert browser.get(settings_url(site)).status_code == 403
    site.workspaces.enable("acme", sso=True)
    assert browser.get(settings_url(site)).status_code == 403


def test_the_sso_switch_ends_members_sessions_for_good(site: Site, idp: TestIdP, acme: str):
    member = requests.Session()
    assert sign_in(member, site, idp, "alice@acme.test").status_code == 303
    assert member.get(f"{site.url}/app").text.startswith("user=alice@acme.test;")
    owner = requests.Session()
    page = open_with_link(owner, site)
    off = confirm(owner, post_action(owner, site, page, "switch", feature="sso", state="off"))
    assert off.status_code == 200 and "Single sign-on is off" in off.text
    assert member.get(f"{site.url}/app").text.startswith("user=;")  # at once, in this process
    on = post_action(owner, site, off, "switch", feature="sso", state="on")
    assert on.status_code == 200 and "Single sign-on is on" in on.text
    # The old cookie stays dead, here and past the recheck interval (2 s) that would let
    # another worker's cached answer expire.
    assert member.get(f"{site.url}/app").text.startswith("user=;")
    time.sleep(2.1)
    assert member.get(f"{site.url}/app").text.startswith("user=;")
    # A new sign-in works as before.
    assert sign_in(member, site, idp, "alice@acme.test").status_code == 303
    assert member.get(f"{site.url}/app").text.startswith("user=alice@acme.test;")


# -- members ---------------------------------------------------------------------------------------


def add_members(site: Site, slug: str, active: int, deactivated: int) -> None:
    workspace_id = site.workspaces.get(slug).id
    now = utcnow()
    with transaction(site.middleware.database, write=True) as unit:
        for number in range(active + deactivated):
            email = f"person{number:03d}@{slug}.test"
            unit.session.add(
                Member(
                    workspace_id=workspace_id,
                    user_name=email,
                    user_name_key=email,
                    email_key=email,
                    given_name="Person",
                    family_name=f"{number:03d}",
                    active=number < active,
                    source="scim" if number % 2 else "sso",
                    last_login_at=now - dt.timedelta(days=number) if number % 3 == 0 else None,
                )
            )
        unit.session.add(
            Member(
                workspace_id=workspace_id,
                user_name="gone@x.test",
                user_name_key="gone@x.test",
                deleted_at=now,
            )
        )


def rows(html: str) -> list[str]:
    body = html.split('id="members"', 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<td class="mono">([^<]+)</td>', body)


def test_members_table_pages_and_filters(site: Site, idp: TestIdP, acme: str):
    add_members(site, "acme", active=80, deactivated=40)
    browser = requests.Session()
    first = open_with_link(browser, site)
    assert "120 members, page 1 of 3" in first.text
    assert rows(first.text)[:2] == ["person000@acme.test", "person001@acme.test"]
    assert len(rows(first.text)) == 50 and "gone@x.test" not in first.text
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    assert "First SSO login" in first.text and "Provisioned by SCIM" in first.text
    third = browser.get(settings_url(site), params={"page": 3})
    assert len(rows(third.text)) == 20 and rows(third.text)[-1] == "person119@acme.test"
    assert 'rel="next"' not in third.text
    deactivated = browser.get(settings_url(site), params={"state": "deactivated"})
    assert "40 members (deactivated), page 1 of 1" in deactivated.text
    assert rows(deactivated.text)[0] == "person080@acme.test"
    assert "state-active" not in deactivated.text.split('id="members"', 1)[1]
    active = browser.get(settings_url(site), params={"state": "active", "page": 2})
    assert "80 members (active), page 2 of 2" in active.text and len(rows(active.text)) == 30
    beyond = browser.get(settings_url(site), params={"page": 99, "state": "bogus"})
    assert "page 3 of 3" in beyond.text


def test_members_show_how_they_arrived_and_last_login(site: Site, idp: TestIdP, acme: str):
    sign_in(requests.Session(), site, idp, "zed@acme.test")
    browser = requests.Session()
    page = open_with_link(browser, site)
    row = page.text.split("zed@acme.test", 1)[1].split("</tr>", 1)[0]
    assert "Active" in row and "First SSO login" in row and "UTC" in row


# -- diagnostics -----------------------------------------------------------------------------------


def test_diagnostics_show_failures_in_plain_words(site: Site, idp: TestIdP, acme: str):
    wrong = idp.response(
        sp_entity_id=site.entity_id("acme"),
        acs_url=site.acs("acme"),
        email="carol@acme.test",
        audience="https://elsewhere.test/sp",
    )
    assert site.post_response(requests.Session(), "acme", wrong).status_code == 400
    browser = requests.Session()
    page = open_with_link(browser, site)
    diagnostics = page.text.split('id="diagnostics"', 1)[1]
    assert "audience mismatch: the IdP sent" in diagnostics
    assert "https://elsewhere.test/sp" in diagnostics and site.entity_id("acme") in diagnostics
    assert "audience_mismatch" in diagnostics and "carol@acme.test" in diagnostics


def test_page_shows_every_value_to_copy(site: Site, idp: TestIdP, acme: str):
    page = open_with_link(requests.Session(), site).text
    for label, value in (
        ("SCIM Base URL", f"{site.url}/scim/v2"),
        ("Audience URI (SP Entity ID)", site.entity_id("acme")),
        ("Single sign-on URL", site.acs("acme")),
        ("Single Logout URL", f"{site.url}/saml/acme/slo"),
        ("SP metadata URL", site.entity_id("acme")),
    ):
        field = re.search(rf'<label for="([^"]+)">{re.escape(label)}</label>', page)
        assert field, label
        assert f'id="{field.group(1)}" value="{value}"' in page
        assert f'data-copy="{field.group(1)}"' in page
    assert (
        "<script nonce=" in page and "http" not in page.split("<script", 1)[1].split("</script>")[0]
    )


def test_workspace_rows_are_untouched_by_a_get(site: Site, idp: TestIdP, acme: str):
    with transaction(site.middleware.database) as unit:
        before = unit.session.scalar(select(Workspace.modified_at).where(Workspace.slug == "acme"))
    open_with_link(requests.Session(), site)
    with transaction(site.middleware.database) as unit:
        assert (
            unit.session.scalar(select(Workspace.modified_at).where(Workspace.slug == "acme"))
            == before
        )


def test_a_flood_of_junk_is_counted_and_pushes_no_real_failure_out(
    site: Site, idp: TestIdP, acme: str
):
    """200 anonymous posts wrote 200 audit rows and pushed real failures off the owner's
    list. Now junk (refused before the IdP's signature verified) is counted, one row per
    reason and hour, while a failure with a verified signature keeps a row of its own."""
    honest = {"sp_entity_id": site.entity_id("acme"), "acs_url": site.acs("acme")}
    real = idp.response(**honest, email="not-an-email")  # signed by the IdP: a real failure
    assert site.post_response(requests.Session(), "acme", real).status_code == 400
    unsigned = idp.response(**honest, email="mallory@acme.test", sign_assertion=False)
    junk: list[dict[str, str]] = [
        {},
        {"SAMLResponse": "%%%"},
        {"SAMLResponse": base64.b64encode(b"<not xml").decode()},
        {"SAMLResponse": unsigned},
    ]

    def post_junk(number: int) -> int:
        return requests.post(
            site.acs("acme"), data=junk[number % len(junk)], allow_redirects=False
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:  # several at once, as from many clients
        assert set(pool.map(post_junk, range(200))) == {400}

    rows = site.audit("login_failed")
    # One row per reason (two when the flood straddles the top of an hour), and the real one.
    assert 1 + len(junk) <= len(rows) <= 1 + 2 * len(junk)
    counted: dict[str, int] = {}
    for row in rows[1:]:
        counted[row.changes["reason"]] = (
            counted.get(row.changes["reason"], 0) + row.changes["count"]
        )
    assert counted == {
        "missing_response": 50,
        "bad_encoding": 50,
        "malformed_xml": 50,
        "unsigned": 50,
    }
    assert rows[0].changes["reason"] == "bad_name_id" and "count" not in rows[0].changes

    diagnostics = open_with_link(requests.Session(), site).text.split('id="diagnostics"', 1)[1]
    assert "<code>bad_name_id</code>" in diagnostics  # the real failure is still listed
    if len(rows) == 1 + len(junk):
        assert diagnostics.count("50 times since") == len(junk)
    assert diagnostics.count("<tr>") <= 1 + 1 + 2 * len(junk)  # header, real one, counted


# -- every page has a way on ------------------------------------------------------------------------


def test_the_refusal_offers_the_app_and_signing_out_as_well_as_signing_in(
    site: Site, idp: TestIdP, acme: str
):
    browser = requests.Session()
    assert sign_in(browser, site, idp, "alice@acme.test").status_code == 303
    refused = browser.get(settings_url(site))
    assert refused.status_code == 403
    links = dict(
        (html.unescape(label), html.unescape(href))
        for href, label in re.findall(
            r'<a (?:class="button" )?href="([^"]+)">([^<]+)</a>', refused.text
        )
    )
    assert links["Sign in with SSO"] == "/saml/login?next=%2Fsaml%2Facme%2Fsettings"
    assert links["Back to the app"] == "/"
    sign_out = links["Signed in as someone else? Sign out, then sign in as the owner"]
    assert sign_out.startswith("/saml/logout?next=")
    # The sign-out link leads to the logout page (which asks), and from there to the sign-in
    # page coming back to the settings.
    asked = browser.get(site.url + sign_out)
    assert asked.status_code == 200
    assert "/saml/login?next=%2Fsaml%2Facme%2Fsettings" in html.unescape(asked.text)


def test_settings_closed_and_the_page_itself_link_onwards(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    page = open_with_link(browser, site)
    assert 'href="/" id="back-to-app">Back to the app</a>' in page.text
    closed = post_action(browser, site, page, "close")
    assert closed.status_code == 200 and "Settings closed" in closed.text
    assert '<a href="/">Back to the app</a>' in closed.text
    assert (
        '<a href="/saml/login?next=%2Fsaml%2Facme%2Fsettings">Sign in with SSO</a>' in closed.text
    )
