"""The SAML pages' security headers over real HTTP: /saml/login, /saml/logout and the sign-in
error pages (ACS, SP-initiated login) send the settings page's header set (page_headers.py)."""

from __future__ import annotations

import re

import requests

from webwork_sso_middleware.page_headers import hash_source

from .conftest import Site

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def policy(response: requests.Response) -> dict[str, list[str]]:
    """The response's CSP as directive -> sources."""
    directives = {}
    for part in response.headers["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def assert_secured(response: requests.Response, *, form_action: list[str]) -> None:
    assert "text/html" in response.headers["Content-Type"]
    assert {name: response.headers.get(name) for name in PAGE_HEADERS} == PAGE_HEADERS
    csp = policy(response)
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"] and csp["script-src"] == ["'none'"]
    assert csp["form-action"] == form_action
    # The page's one inline style is allowed by its hash; nothing inline may run unnamed.
    (style,) = re.findall(r"<style>(.*?)</style>", response.text, re.S)
    assert csp["style-src"] == [hash_source(style)]
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]


def test_sign_out_and_error_pages_post_only_to_this_site(site: Site, acme: str) -> None:
    logout = requests.get(f"{site.url}/saml/logout", timeout=5)
    acs_error = requests.post(site.acs(acme), data={"SAMLResponse": "bm90IHNhbWw="}, timeout=5)
    login_error = requests.get(f"{site.url}/saml/nowhere/login", timeout=5)
    not_found = requests.get(f"{site.url}/saml/acme/nothing-here", timeout=5)

    assert logout.status_code == 200 and acs_error.status_code == 400
    assert login_error.status_code == 404 and not_found.status_code == 404
    for response in (logout, acs_error, login_error, not_found):
        assert_secured(response, form_action=["'self'"])


def test_the_sign_in_page_has_the_same_headers(site: Site, acme: str) -> None:
    """Its form posts to /saml/login, but that submission then redirects to the workspace's IdP,
    and Chromium holds every redirect of a form submission to form-action (the browser tests
    sign in through this page), so it alone also allows http(s) targets."""
    shown = requests.get(f"{site.url}/saml/login", timeout=5)
    unknown = requests.post(f"{site.url}/saml/login", data={"email": "x@nowhere.test"}, timeout=5)

    for response in (shown, unknown):
        assert response.status_code == 200
        assert_secured(response, form_action=["'self'", "https:", "http:"])


def test_the_settings_page_sends_the_same_set(site: Site, acme: str) -> None:
    browser = requests.Session()
    settings = browser.get(site.middleware.settings_link("acme"), timeout=5)
    sign_in = requests.get(f"{site.url}/saml/logout", timeout=5)

    assert settings.status_code == 200 and "settings" in settings.url
    for name in PAGE_HEADERS:
        assert settings.headers[name] == sign_in.headers[name]
    csp = policy(settings)
    assert csp["form-action"] == ["'self'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["script-src"] == csp["style-src"] and csp["script-src"][0].startswith("'nonce-")
