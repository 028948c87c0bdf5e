"""The tracker's pages behind the middleware, over real HTTP with real sign-ins through the dev
IdP: Team and Activity for the workspace's admins only (the ``admin`` role, or its owner), the
owner's link to the settings page, the tracker's own error pages, and the "signed out" notice."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import requests

from webwork_sso_middleware.devserver import DEMO_ADMIN_GROUP, DEMO_OWNER

from ..devidp.browser import forms, sign_in, submit
from .conftest import TrackerSite

ALICE = "alice.smith@example.com"  # in the demo's Admins group: an admin
BOB = "bob.jones@example.com"  # signs in once, a plain member
CAROL = "carol@example.com"  # provisioned, then deactivated; never signs in
TIMEOUT = 10


def signed_in(site: TrackerSite, email: str) -> requests.Session:
    browser = requests.Session()
    landed = sign_in(browser, site.url, email, email)
    assert landed.status_code == 200 and "Signed in as" in landed.text, landed.text
    return browser


def with_an_admin(site: TrackerSite) -> requests.Session:
    alice = site.demo.create_user(ALICE)
    site.demo.create_group(DEMO_ADMIN_GROUP, [alice])
    return signed_in(site, ALICE)


def get(browser: requests.Session, site: TrackerSite, path: str) -> requests.Response:
    return browser.get(f"{site.url}{path}", allow_redirects=False, timeout=TIMEOUT)


def rows(page: str) -> list[str]:
    """The text of each table body row, tags dropped."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.sub(r"<[^>]+>", " ", row) for row in body.split("</tr>") if row.strip()]


def test_an_admin_sees_the_seats_and_roster_of_their_own_workspace(
    tracker_site: TrackerSite,
) -> None:
    site = tracker_site
    admin = with_an_admin(site)
    carol = site.demo.create_user(CAROL)
    site.demo.set_active(carol, False)
    signed_in(site, BOB)  # a first sign-in takes a seat too
    for user_name in ("mallory@evil.test", "eve@evil.test"):
        site.evil.create_user(user_name)

    team = get(admin, site, "/team")

    assert team.status_code == 200
    assert '<strong id="seat-count">2</strong>' in team.text  # alice and bob
    roster = rows(team.text)
    assert [row.split()[:2] for row in roster] == [
        [ALICE, "Active"],
        [BOB, "Active"],
        [CAROL, "Deactivated"],
    ]
    assert "evil" not in team.text
    assert 'href="/team" aria-current="page"' in team.text and 'href="/activity"' in team.text


def test_an_admin_sees_their_workspaces_activity_newest_first(tracker_site: TrackerSite) -> None:
    site = tracker_site
    admin = with_an_admin(site)
    carol = site.demo.create_user(CAROL)
    site.demo.set_active(carol, False)
    site.demo.create_group("<img src=x onerror=alert(1)>", [carol])
    mallory = site.evil.create_user("mallory@evil.test")
    site.evil.create_group("Evil admins", [mallory])

    page = get(admin, site, "/activity")

    assert page.status_code == 200
    shown = [" ".join(row.split()[3:]) for row in rows(page.text)]  # after the date and time
    assert shown[:4] == [
        "Added to group carol@example.com SCIM group: &lt;img src=x onerror=alert(1)&gt;",
        "Group created &lt;img src=x onerror=alert(1)&gt; SCIM"
        " displayName: &lt;img src=x onerror=alert(1)&gt;",
        "Member deactivated carol@example.com SCIM active: yes → no",
        f"Member created {CAROL} SCIM active: yes userName: {CAROL}",
    ]
    assert any(line.startswith(f"Signed in {ALICE} SSO sign-in") for line in shown)
    assert "<img" not in page.text
    assert "evil" not in page.text.lower()


def test_a_member_without_the_admin_role_gets_the_trackers_403(tracker_site: TrackerSite) -> None:
    site = tracker_site
    site.demo.create_user(CAROL)
    bob = signed_in(site, BOB)

    for path in ("/team", "/activity"):
        refused = get(bob, site, path)

        assert refused.status_code == 403
        assert '<header class="top">' in refused.text  # the tracker's own page and nav
        assert "for your workspace&#x27;s admins" in refused.text
        assert 'href="/">Back to your time</a>' in refused.text
        assert CAROL not in refused.text and "seat-count" not in refused.text
    home = get(bob, site, "/").text
    assert 'href="/team"' not in home and 'href="/activity"' not in home


def test_a_visitor_is_sent_to_sign_in_first(tracker_site: TrackerSite) -> None:
    site = tracker_site

    for path in ("/team", "/activity"):
        response = get(requests.Session(), site, path)

        assert response.status_code == 303
        assert response.headers["Location"] == f"/saml/login?next=%2F{path[1:]}"


def test_only_the_owner_gets_the_link_to_the_settings_page(tracker_site: TrackerSite) -> None:
    site = tracker_site
    admin = with_an_admin(site)
    owner = signed_in(site, DEMO_OWNER)
    link = '<a class="settings" href="/saml/demo/settings">SSO settings</a>'

    home = get(owner, site, "/").text
    assert link in home
    settings = get(owner, site, "/saml/demo/settings")
    assert settings.status_code == 200 and "Single sign-on settings" in settings.text
    assert get(owner, site, "/team").status_code == 200  # the owner counts as an admin

    assert link not in get(admin, site, "/").text  # an admin is not the owner
    assert "SSO settings" not in get(admin, site, "/team").text
    assert get(admin, site, "/saml/demo/settings").status_code == 403
    assert "SSO settings" not in get(requests.Session(), site, "/").text


def test_errors_are_the_trackers_own_pages(tracker_site: TrackerSite) -> None:
    site = tracker_site
    visitor = requests.Session()

    missing = get(visitor, site, "/nope")
    wrong_method = visitor.post(f"{site.url}/", timeout=TIMEOUT)
    wrong_on_team = visitor.post(f"{site.url}/team", timeout=TIMEOUT)

    assert missing.status_code == 404 and "There is no page at this address." in missing.text
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "GET, HEAD"
    assert wrong_on_team.status_code == 405
    for page in (missing, wrong_method, wrong_on_team):
        assert '<header class="top">' in page.text and 'href="/saml/login"' in page.text
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert "werkzeug" not in page.text.lower()


def test_signing_out_lands_on_a_signed_out_notice(tracker_site: TrackerSite) -> None:
    site = tracker_site
    bob = signed_in(site, BOB)
    home = get(bob, site, "/")
    assert "You are signed out" not in home.text
    (sign_out,) = (form for form in forms(home) if form.action.endswith("/saml/logout"))

    confirm = bob.get(sign_out.action, params=sign_out.fields, timeout=TIMEOUT)
    (confirmed,) = forms(confirm)
    landed = submit(bob, confirmed)

    assert landed.url == urljoin(site.url, "/?signed_out=1")
    assert '<div class="notice ok" role="status">You are signed out.</div>' in landed.text
    assert "Signed in as" not in landed.text and 'href="/saml/login"' in landed.text
