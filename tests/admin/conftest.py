"""Settings-page fixtures: the SAML Site (the middleware over real HTTP) and a real IdP, from
tests/saml, plus helpers that drive a browser session through settings links and sign-in."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from ..saml.conftest import Site
from ..saml.idp import TestIdP, autopost_form

OWNER = "owner@acme.test"
ACCESS_DENIED = "This page is for the workspace owner"  # the 403 page's heading
# The test IdPs serve their metadata on 127.0.0.1, which a site fetches from only when its
# operator allows the host (as for an IdP on the site's own network).
TEST_IDP_HOSTS = "127.0.0.1"


@pytest.fixture
def site(serve: Callable[[Any], Any], database_url: str) -> Iterator[Site]:
    """The SAML Site, allowing metadata URLs on the test IdPs' host."""
    made = Site(serve, database_url, metadata_allowed_hosts=TEST_IDP_HOSTS)
    yield made
    made.middleware.close()


@pytest.fixture
def acme(site: Site, idp: TestIdP) -> str:
    """Workspace ``acme`` (Plus, SCIM and SSO on, IdP set from XML; owner owner@acme.test);
    its first SCIM token."""
    return site.add_workspace("acme", idp)


def settings_url(site: Site, slug: str = "acme") -> str:
    return f"{site.url}/saml/{slug}/settings"


def open_with_link(browser: requests.Session, site: Site, slug: str = "acme") -> requests.Response:
    """Follow a fresh settings link the way a browser does, pressing the button on the page it
    shows; the settings page."""
    return press_open_button(browser, site.middleware.settings_link(slug))


def press_open_button(browser: requests.Session, link: str, **options: Any) -> requests.Response:
    """GET a settings link, then submit its page's one form as a browser does: a form without
    an ``action`` posts to the page's own URL."""
    shown = browser.get(link)
    assert shown.status_code == 200, shown.text
    assert re.search(r'<form method="post">', shown.text), shown.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', shown.text))
    return browser.post(shown.url, data=fields, **options)


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def post_action(
    browser: requests.Session,
    site: Site,
    page: requests.Response | str,
    action: str,
    slug: str = "acme",
    **fields: str,
) -> requests.Response:
    html = page if isinstance(page, str) else page.text
    return browser.post(
        settings_url(site, slug),
        data={"csrf_token": csrf_token(html), "action": action, **fields},
        allow_redirects=False,
    )


def sign_in(
    browser: requests.Session,
    site: Site,
    idp: TestIdP,
    email: str,
    slug: str = "acme",
    next_path: str = "/",
) -> requests.Response:
    """SP-initiated sign-in as ``email``; the ACS's response (303 on success)."""
    idp.next_user = email
    start = browser.get(
        f"{site.url}/saml/{slug}/login", params={"next": next_path}, allow_redirects=False
    )
    assert start.status_code == 302, start.text
    action, fields = autopost_form(browser.get(start.headers["Location"]).text)
    return browser.post(action, data=fields, allow_redirects=False)


def scim_status(site: Site, token: str) -> int:
    return requests.get(
        f"{site.url}/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}
    ).status_code


def confirm(browser: requests.Session, asked: requests.Response) -> requests.Response:
    """Press the confirmation page's button (confirmations.py): post its one form as is."""
    assert asked.status_code == 200 and 'id="confirm-form"' in asked.text, asked.text
    form = asked.text.split('id="confirm-form"', 1)[1].split("</form>", 1)[0]
    action = re.search(r'<form method="post" action="([^"]+)"', asked.text)
    assert action, asked.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    return browser.post(
        requests.compat.urljoin(asked.url, html.unescape(action.group(1))),
        data={name: html.unescape(value) for name, value in fields.items()},
        allow_redirects=False,
    )
