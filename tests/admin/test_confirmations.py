"""Destructive settings actions ask first, over real HTTP: the first POST changes nothing and
says what will break; the confirmation page's own POST (with its CSRF token) does it; a forged
or foreign confirmation changes nothing. Works without JavaScript (plain forms)."""

from __future__ import annotations

import re

import pytest
import requests

from ..saml.conftest import Site
from ..saml.idp import TestIdP
from .conftest import (
    OWNER,
    confirm,
    open_with_link,
    post_action,
    scim_status,
    settings_url,
    sign_in,
)


def test_regenerating_the_token_asks_first_and_says_provisioning_stops(
    site: Site, idp: TestIdP, acme: str
):
    browser = requests.Session()
    page = open_with_link(browser, site)
    assert "Regenerate SCIM API Token…" in page.text
    asked = post_action(browser, site, page, "regenerate_token")
    assert asked.status_code == 200 and "Regenerate the SCIM API token?" in asked.text
    assert "provisioning" in asked.text and "until you paste the new token" in asked.text
    assert not re.findall(r"wwsso_[A-Za-z0-9_-]{30,}", asked.text)  # no token yet
    assert scim_status(site, acme) == 200  # nothing changed
    assert asked.headers["Cache-Control"] == "no-store"
    # The second POST is an action like any other: without the page's CSRF token, nothing.
    forged = browser.post(
        settings_url(site),
        data={"action": "regenerate_token", "confirmed": "yes", "csrf_token": "forged"},
    )
    assert forged.status_code == 403 and scim_status(site, acme) == 200
    done = confirm(browser, asked)
    assert done.status_code == 200
    assert len(set(re.findall(r"wwsso_[A-Za-z0-9_-]{30,}", done.text))) == 1
    assert scim_status(site, acme) == 401
    # Cancel goes back to the page.
    cancel = re.search(r'href="([^"]+)" id="cancel"', asked.text)
    assert cancel and cancel.group(1).endswith("/saml/acme/settings")


def test_turning_sso_off_asks_first_and_then_ends_every_session(
    site: Site, idp: TestIdP, acme: str
):
    member = requests.Session()
    assert sign_in(member, site, idp, "alice@acme.test").status_code == 303
    owner = requests.Session()
    page = open_with_link(owner, site)
    # The state is text; the button says what it does.
    assert "SSO is on" in page.text and "Turn single sign-on off…" in page.text
    assert "SCIM is on" in page.text and "Turn SCIM provisioning off…" in page.text
    asked = post_action(owner, site, page, "switch", feature="sso", state="off")
    assert asked.status_code == 200 and "Turn single sign-on off?" in asked.text
    assert "session ends" in asked.text and "nobody can sign in" in asked.text
    assert site.workspaces.get("acme").sso_enabled is True
    assert "user=alice@acme.test" in member.get(f"{site.url}/").text
    done = confirm(owner, asked)
    assert done.status_code == 200 and "SSO is off" in done.text
    assert "Turn single sign-on on" in done.text
    assert site.workspaces.get("acme").sso_enabled is False
    assert "user=alice@acme.test" not in member.get(f"{site.url}/").text
    # The feed says so: alice signed out, by the settings page.
    feed = site.middleware.events.since(None, workspace="acme", limit=1000)
    assert [(e.kind, e.source, e.identity) for e in feed[-1:]] == [
        ("member.signed_out", "settings", "alice@acme.test")
    ]
    # Turning on does not ask.
    on = post_action(owner, site, done, "switch", feature="sso", state="on")
    assert on.status_code == 200 and site.workspaces.get("acme").sso_enabled is True


def test_turning_scim_off_asks_first(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    page = open_with_link(browser, site)
    asked = post_action(browser, site, page, "switch", feature="scim", state="off")
    assert "Turn SCIM provisioning off?" in asked.text and scim_status(site, acme) == 200
    confirm(browser, asked)
    assert site.workspaces.get("acme").scim_enabled is False


@pytest.mark.parametrize("action", ["regenerate", "sso_off"])
def test_a_hostile_workspace_cannot_confirm_for_another(
    site: Site, idp: TestIdP, second_idp: TestIdP, acme: str, action: str
):
    site.add_workspace("globex", second_idp)
    hostile = requests.Session()
    globex_page = open_with_link(hostile, site, "globex")
    fields = (
        {"action": "regenerate_token"}
        if action == "regenerate"
        else {"action": "switch", "feature": "sso", "state": "off"}
    )
    asked = post_action(hostile, site, globex_page, slug="globex", **fields)
    token = re.search(r'name="csrf_token" value="([^"]+)"', asked.text)
    assert token
    # Its own confirmation form, aimed at acme: no access there, nothing changes.
    refused = hostile.post(
        settings_url(site), data={**fields, "confirmed": "yes", "csrf_token": token.group(1)}
    )
    assert refused.status_code == 403
    assert scim_status(site, acme) == 200 and site.workspaces.get("acme").sso_enabled is True
    # Even by the acme owner's browser (signed in by SSO), a globex token is refused.
    owner = requests.Session()
    sign_in(owner, site, idp, OWNER)
    crossed = owner.post(
        settings_url(site), data={**fields, "confirmed": "yes", "csrf_token": token.group(1)}
    )
    assert crossed.status_code == 403 and site.workspaces.get("acme").sso_enabled is True
