"""The sign-in flow (saml/login_flow.py) over real HTTP: starting an SP-initiated sign-in by
whichever binding the IdP takes requests on, and what cannot start says why, never a 500.

The ACS's own checks are test_acs.py's; the browser-binding cookies test_login_state.py's.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import lxml.html
import pytest
import requests
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from sqlalchemy import update

from webwork_sso_middleware.errors import MetadataError
from webwork_sso_middleware.page_headers import hash_source
from webwork_sso_middleware.store.models import IdentityProvider

from ..admin.test_browser import chromium, wait_for
from ..store_helpers import transaction
from .conftest import Site
from .idp import TestIdP, autopost_form
from .test_app import whoami
from .test_pages import PAGE_HEADERS, policy

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"


def offering(idp: TestIdP, *bindings: str) -> str:
    """The IdP's metadata with only the SingleSignOnServices of ``bindings`` (as SimpleSAMLphp
    or samlify publish an IdP that takes HTTP-POST requests only); another binding named in
    ``bindings`` (SOAP) is added at the IdP's SSO URL."""
    root = etree.fromstring(idp.metadata_xml().encode())
    (role,) = root.iter(f"{{{MD}}}IDPSSODescriptor")
    services = list(role.iter(f"{{{MD}}}SingleSignOnService"))
    for service in services:
        if service.get("Binding") not in bindings:
            role.remove(service)
    offered = {service.get("Binding") for service in services}
    for binding in bindings:
        if binding not in offered:
            etree.SubElement(
                role, f"{{{MD}}}SingleSignOnService", Binding=binding, Location=idp.sso_url
            )
    return etree.tostring(root, encoding="unicode")


def start(browser: requests.Session, site: Site, slug: str = "acme", next_path: str = "/"):
    return browser.get(
        f"{site.url}/saml/{slug}/login", params={"next": next_path}, allow_redirects=False
    )


@pytest.fixture
def post_only(site: Site, idp: TestIdP, acme: str) -> str:
    """Workspace acme, its IdP offering SingleSignOnService by HTTP-POST only."""
    site.workspaces.set_idp(acme_slug := "acme", metadata_xml=offering(idp, BINDING_HTTP_POST))
    return acme_slug


# -- an IdP that takes AuthnRequests by HTTP-POST only ----------------------------------------


def test_a_post_only_idp_gets_the_request_by_a_form_and_signs_the_person_in(
    site: Site, idp: TestIdP, post_only: str
):
    browser = requests.Session()
    started = start(browser, site, next_path="/timesheets")
    assert started.status_code == 200, started.text  # was a 500: SignOnError
    assert "text/html" in started.headers["Content-Type"]
    assert started.headers["Set-Cookie"].startswith("webwork_sso_login=")  # binds the answer
    action, fields = autopost_form(started.text)
    assert action == idp.sso_url
    assert set(fields) == {"SAMLRequest", "RelayState"}

    at_idp = browser.post(action, data=fields)  # what the form does, script or not
    assert at_idp.status_code == 200, at_idp.text
    (seen,) = idp.requests
    assert seen.binding == BINDING_HTTP_POST and seen.relay_state == fields["RelayState"]
    assert seen.acs_url == site.acs("acme") and seen.issuer == site.entity_id("acme")

    acs_action, answer = autopost_form(at_idp.text)
    assert answer["RelayState"] == fields["RelayState"]
    signed_in = browser.post(acs_action, data=answer, allow_redirects=False)
    assert signed_in.status_code == 303, signed_in.text
    assert urlsplit(signed_in.headers["Location"]).path == "/timesheets"
    assert whoami(browser, site) == "user=alice@acme.test;groups=;path=/"


def test_the_posted_request_is_a_plain_authn_request_bound_to_this_browser(
    site: Site, idp: TestIdP, post_only: str
):
    """HTTP-POST carries the request base64-encoded, not deflated (SAML bindings 3.5.4); its
    ID is the one this browser's cookie remembers, so another browser cannot use the answer."""
    browser = requests.Session()
    _, fields = autopost_form(start(browser, site).text)
    request = etree.fromstring(base64.b64decode(fields["SAMLRequest"], validate=True))
    assert request.tag == "{urn:oasis:names:tc:SAML:2.0:protocol}AuthnRequest"
    assert request.get("Destination") == idp.sso_url
    assert request.get("AssertionConsumerServiceURL") == site.acs("acme")
    assert request.get("ProtocolBinding") == BINDING_HTTP_POST

    at_idp = browser.post(idp.sso_url, data=fields)
    acs_action, answer = autopost_form(at_idp.text)
    stranger = requests.Session()
    refused = stranger.post(acs_action, data=answer, allow_redirects=False)
    assert refused.status_code == 400 and "request_not_bound" in refused.text
    assert whoami(stranger, site).startswith("user=;")
    # The browser that started it still signs in with the same answer.
    assert browser.post(acs_action, data=answer, allow_redirects=False).status_code == 303


def test_the_post_page_works_without_javascript_and_within_its_policy(
    site: Site, idp: TestIdP, post_only: str
):
    page = start(requests.Session(), site)
    document = lxml.html.fromstring(page.text)
    (form,) = document.forms
    assert form.method == "POST" and form.action == idp.sso_url
    # Without JavaScript, the person sees a button that sends the same form.
    (button,) = form.xpath(".//button")
    assert button.get("type") == "submit" and button.text_content().strip() == "Continue"
    assert not document.xpath("//noscript")  # the button is shown, not hidden behind <noscript>
    hidden = {i.get("name"): i.get("value") for i in form.xpath(".//input[@type='hidden']")}
    assert set(hidden) == {"SAMLRequest", "RelayState"} and all(hidden.values())

    # Its only script is the fixed block the policy names by hash; no handler attribute, no
    # script from elsewhere, nothing 'unsafe-inline'.
    (script,) = document.xpath("//script")
    assert script.get("src") is None and script.text == "document.forms[0].submit()"
    assert not [a for e in document.iter() for a in e.attrib if a.lower().startswith("on")]
    csp = policy(page)
    assert csp["script-src"] == [hash_source(script.text)]
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    # The form may go to the IdP (and on through its redirects, as Chromium checks them).
    scheme = urlsplit(idp.sso_url).scheme + ":"
    assert scheme in csp["form-action"]
    (style,) = re.findall(r"<style>(.*?)</style>", page.text, re.S)
    assert csp["style-src"] == [hash_source(style)]
    assert {name: page.headers.get(name) for name in PAGE_HEADERS} == PAGE_HEADERS


def test_each_start_sends_a_fresh_request_and_keeps_the_earlier_ones(
    site: Site, idp: TestIdP, post_only: str
):
    """Two tabs: both requests stay answerable, as with the redirect binding."""
    browser = requests.Session()
    first = autopost_form(start(browser, site).text)[1]
    second = autopost_form(start(browser, site).text)[1]
    assert first["SAMLRequest"] != second["SAMLRequest"]
    assert first["RelayState"] != second["RelayState"]
    answers = [autopost_form(browser.post(idp.sso_url, data=f).text) for f in (first, second)]
    for action, answer in reversed(answers):
        assert browser.post(action, data=answer, allow_redirects=False).status_code == 303


def test_a_page_value_is_escaped(site: Site, idp: TestIdP, acme: str):
    """The form's action comes from the IdP's metadata: an ampersand or a quote in it stays an
    attribute value."""
    odd = idp.sso_url + '?a=1&b="2"'
    xml = offering(idp, BINDING_HTTP_POST).replace(
        f'Location="{idp.sso_url}"',
        f'Location="{odd.replace("&", "&amp;").replace(chr(34), "&quot;")}"',
    )
    site.workspaces.set_idp("acme", metadata_xml=xml)
    page = start(requests.Session(), site)
    assert page.status_code == 200
    action, fields = autopost_form(page.text)
    assert action == odd and set(fields) == {"SAMLRequest", "RelayState"}


# -- an IdP offering both: the redirect ---------------------------------------------------------


@pytest.mark.parametrize(
    "bindings",
    [(BINDING_HTTP_REDIRECT,), (BINDING_HTTP_POST, BINDING_HTTP_REDIRECT)],
    ids=["redirect only", "both, post listed first"],
)
def test_an_idp_offering_the_redirect_binding_gets_a_redirect(
    site: Site, idp: TestIdP, acme: str, bindings: tuple[str, ...]
):
    site.workspaces.set_idp("acme", metadata_xml=offering(idp, *bindings))
    browser = requests.Session()
    started = start(browser, site)
    assert started.status_code == 302 and "Set-Cookie" in started.headers
    location = urlsplit(started.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == idp.sso_url
    assert set(parse_qs(location.query)) == {"SAMLRequest", "RelayState"}
    at_idp = browser.get(started.headers["Location"])
    assert idp.requests[-1].binding == BINDING_HTTP_REDIRECT
    action, answer = autopost_form(at_idp.text)
    assert browser.post(action, data=answer, allow_redirects=False).status_code == 303


# -- an IdP nothing can be sent to --------------------------------------------------------------


def test_set_idp_refuses_an_idp_offering_neither_binding(site: Site, idp: TestIdP, acme: str):
    with pytest.raises(MetadataError) as refused:
        site.workspaces.set_idp("acme", metadata_xml=offering(idp, SOAP))
    assert "HTTP-Redirect or HTTP-POST" in str(refused.value) and "SOAP" in str(refused.value)
    # The IdP set before stays, and sign-in still starts.
    assert start(requests.Session(), site).status_code == 302


def test_a_stored_idp_offering_neither_binding_gets_a_page_not_a_500(
    site: Site, idp: TestIdP, acme: str
):
    """A record stored before set-idp checked the bindings (or edited by hand): sign-in cannot
    start, and says so with its own reason code; the IdP can still sign in unsolicited."""
    with transaction(site.middleware.database) as unit:
        unit.session.execute(update(IdentityProvider).values(metadata_xml=offering(idp, SOAP)))
    browser = requests.Session()
    started = start(browser, site)
    assert started.status_code == 502, started.text
    assert '<span class="reason">no_sign_on_binding</span>' in started.text
    assert "Single sign-on unavailable" in started.text and "Traceback" not in started.text
    assert "Set-Cookie" not in started.headers and "://" not in started.text.split("</p>")[0]
    unsolicited = site.post_response(
        browser,
        "acme",
        idp.response(
            sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="bob@acme.test"
        ),
    )
    assert unsolicited.status_code == 303


# -- in a real browser: the policy enforced, with and without JavaScript -------------------------


@pytest.mark.browser
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no javascript"])
def test_a_real_browser_carries_the_posted_request_to_the_idp(
    site: Site, idp: TestIdP, post_only: str, tmp_path: Path, javascript: bool
):
    """Headless Chromium enforces the page's CSP (script-src by hash, form-action): with
    JavaScript the page submits itself; without it, Continue does (the IdP's page too)."""
    with chromium(tmp_path / "profile") as driver:
        if not javascript:
            driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        driver.get(f"{site.url}/saml/acme/login?next=/welcome")
        if not javascript:
            assert driver.title == "Signing in" and driver.current_url.startswith(site.url)
            driver.find_element(By.XPATH, "//button[.='Continue']").click()
            wait_for(driver, ready.url_to_be(idp.sso_url))
            driver.find_element(By.XPATH, "//button[.='Continue']").click()
        wait_for(driver, ready.url_to_be(f"{site.url}/welcome"))
        assert "user=alice@acme.test" in driver.find_element(By.TAG_NAME, "body").text
        (seen,) = idp.requests
        assert seen.binding == BINDING_HTTP_POST
        violations = [
            entry["message"]
            for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"]
        ]
        assert violations == []


def test_the_typed_address_goes_to_the_idp_as_its_login_hint(site: Site, idp: TestIdP, acme: str):
    """/saml/login passes the typed address on; the workspace's login adds it beside the
    signed AuthnRequest (login_hint, as Entra ID reads it); anything that is no address is
    dropped. The hint never decides who signs in: the assertion does."""
    browser = requests.Session()
    chosen = browser.post(
        f"{site.url}/saml/login", data={"email": "alice@acme.test"}, allow_redirects=False
    )
    assert chosen.status_code == 303
    assert "login_hint=alice%40acme.test" in chosen.headers["Location"]
    to_idp = browser.get(
        requests.compat.urljoin(site.url, chosen.headers["Location"]), allow_redirects=False
    )
    assert to_idp.status_code == 302
    assert to_idp.headers["Location"].endswith("&login_hint=alice%40acme.test")
    for odd in ("not an address", "<b>@x", "a" * 400 + "@acme.test"):
        dropped = browser.get(
            f"{site.url}/saml/acme/login", params={"login_hint": odd}, allow_redirects=False
        )
        assert dropped.status_code == 302 and "login_hint" not in dropped.headers["Location"]
    # Signed in as whom the IdP asserts, whatever the hint said.
    idp.next_user = "bob@acme.test"
    hinted = browser.get(
        f"{site.url}/saml/acme/login",
        params={"login_hint": "alice@acme.test", "next": "/app"},
        allow_redirects=False,
    )
    action, fields = autopost_form(browser.get(hinted.headers["Location"]).text)
    assert browser.post(action, data=fields, allow_redirects=False).status_code == 303
    assert browser.get(f"{site.url}/app").text.startswith("user=bob@acme.test;")
