"""The settings page's "Require SSO" section (admin/enforcement_section.py) and its POST
actions (admin/actions.py) over real HTTP: the switch, break-glass for the owner only, the
audit log, forged posts, and a hostile owner of another workspace who must reach none of it."""

from __future__ import annotations

import requests

from ..saml.conftest import Site
from ..saml.idp import TestIdP
from .conftest import ACCESS_DENIED, csrf_token, open_with_link, post_action, settings_url


def test_the_section_says_what_it_does_and_how_break_glass_works(site: Site, acme: str) -> None:
    page = open_with_link(requests.Session(), site)
    assert page.status_code == 200
    assert 'id="enforcement"' in page.text and "Require SSO: Off" in page.text
    assert "refuses password sign-in" in page.text and "acme.test" in page.text
    assert "Break-glass" in page.text and "webwork-sso workspace break-glass acme" in page.text


def test_the_owner_switches_require_sso_on_and_off(site: Site, acme: str) -> None:
    browser = requests.Session()
    page = open_with_link(browser, site)
    on = post_action(browser, site, page, "require_sso", state="on")
    assert on.status_code == 200 and "SSO is required" in on.text
    assert "Require SSO: On" in on.text
    assert site.middleware.sso_required("dave@acme.test")
    off = post_action(browser, site, on, "require_sso", state="off")
    assert off.status_code == 200 and "Require SSO: Off" in off.text
    assert not site.middleware.sso_required("dave@acme.test")
    assert [event.actor for event in site.audit("require_sso_changed")] == [
        "settings:link",
        "settings:link",
    ]
    bad = post_action(browser, site, off, "require_sso", state="maybe")
    assert bad.status_code == 400 and "nothing was changed" in bad.text.lower()


def test_the_switch_is_refused_on_the_free_plan(site: Site, acme: str) -> None:
    site.workspaces.set_plan("acme", "free")
    browser = requests.Session()
    page = open_with_link(browser, site)
    refused = post_action(browser, site, page, "require_sso", state="on")
    assert refused.status_code == 403 and "Plus or Premium" in refused.text
    assert not site.workspaces.get("acme").require_sso
    assert site.audit("require_sso_changed") == []


def test_break_glass_from_the_page_is_for_the_owner_only_and_closes(site: Site, acme: str) -> None:
    site.workspaces.set_require_sso("acme", True, actor="test")
    browser = requests.Session()
    page = open_with_link(browser, site)
    opened = post_action(browser, site, page, "break_glass_open")
    assert opened.status_code == 200 and "Break-glass is open" in opened.text
    assert "owner@acme.test" in opened.text
    assert not site.middleware.sso_required("owner@acme.test")
    assert site.middleware.sso_required("dave@acme.test")
    (event,) = site.audit("break_glass_opened")
    assert event.actor == "settings:link" and event.changes["owner_email"] == "owner@acme.test"

    closed = post_action(browser, site, opened, "break_glass_close")
    assert closed.status_code == 200 and "Break-glass is closed" in closed.text
    assert site.middleware.sso_required("owner@acme.test")
    assert len(site.audit("break_glass_closed")) == 1


def test_forged_posts_change_nothing(site: Site, acme: str) -> None:
    browser = requests.Session()
    open_with_link(browser, site)
    for data in (
        {"action": "require_sso", "state": "on"},
        {"action": "require_sso", "state": "on", "csrf_token": "forged"},
        {"action": "break_glass_open", "csrf_token": "forged"},
    ):
        response = browser.post(settings_url(site), data=data)
        assert response.status_code == 403 and "nothing was changed" in response.text
    info = site.workspaces.get("acme")
    assert not info.require_sso and info.break_glass_until is None


def test_a_hostile_owner_can_neither_switch_nor_break_glass_another_workspace(
    site: Site, acme: str, second_idp: TestIdP
) -> None:
    site.add_workspace("evil", second_idp)
    mallory = requests.Session()
    token = csrf_token(open_with_link(mallory, site, "evil").text)
    for data in (
        {"action": "require_sso", "state": "on"},
        {"action": "break_glass_open"},
        {"action": "break_glass_close"},
    ):
        # Its own valid CSRF token, posted to acme's page: no access at all there.
        forged = mallory.post(settings_url(site, "acme"), data={"csrf_token": token, **data})
        assert forged.status_code == 403 and ACCESS_DENIED in forged.text, data
        # A form field naming the other workspace is ignored: the URL's workspace is acted on.
        own = mallory.post(
            settings_url(site, "evil"), data={"csrf_token": token, "slug": "acme", **data}
        )
        assert own.status_code == 200, own.text
    acme_info = site.workspaces.get("acme")
    assert not acme_info.require_sso and acme_info.break_glass_until is None
    assert site.workspaces.get("evil").require_sso
    assert not site.middleware.sso_required("dave@acme.test")
    evil_id = site.workspaces.get("evil").id
    for action in ("require_sso_changed", "break_glass_opened", "break_glass_closed"):
        assert {event.workspace_id for event in site.audit(action)} == {evil_id}
