"""The settings page's "Service provider keys" section (admin/sp_keys_section.py) and its POST
actions (admin/actions.py) over real HTTP: the keys shown, rotated, downloaded, the owner's SAML
choices, and a hostile owner of another workspace who must reach none of it."""

from __future__ import annotations

import re
from typing import Any

import requests

from webwork_sso_middleware import SSOMiddleware

from ..saml.conftest import Site
from ..saml.idp import TestIdP
from .conftest import (
    ACCESS_DENIED,
    OWNER,
    csrf_token,
    open_with_link,
    post_action,
    press_open_button,
    settings_url,
    sign_in,
)


def published(site: Site, slug: str = "acme") -> list[str]:
    """The certificates (base64 DER) the workspace's SP metadata lists, once each."""
    metadata = requests.get(f"{site.url}/saml/{slug}/metadata")
    assert metadata.status_code == 200
    found = re.findall(r"<ds:X509Certificate>([^<]+)</ds:X509Certificate>", metadata.text)
    return list(dict.fromkeys(value.strip() for value in found))


def base64_of(pem: str) -> str:
    return "".join(pem.strip().splitlines()[1:-1])


def shown_certificate(html: str, state: str) -> str | None:
    found = re.search(rf'<textarea id="sp-cert-{state}"[^>]*>([^<]*)</textarea>', html)
    return found.group(1) if found else None


def fingerprints(html: str) -> list[str]:
    section = html[html.index('id="sp-keys"') :]
    return re.findall(r"(?:[0-9A-F]{2}:){31}[0-9A-F]{2}", section)


def buttons(html: str) -> set[str]:
    labels = ("Stage a new key", "Activate the next key", "Retire the previous key")
    return {label for label in labels if f">{label}</button>" in html}


def key_certificates(site: Site, slug: str = "acme") -> dict[str, str]:
    ring = site.middleware.settings_page.sp_keys.status(slug)
    return {key.state: key.certificate_pem for key in ring.all}


def test_the_section_shows_the_current_key_and_its_certificate(
    site: Site, idp: TestIdP, acme: str
) -> None:
    browser = requests.Session()
    page = open_with_link(browser, site)
    assert page.status_code == 200
    # Showing the page makes nothing (a GET): the owner may make the key, for its certificate.
    assert "No key yet" in page.text and buttons(page.text) == set()
    assert ">Make the key</button>" in page.text
    assert browser.get(settings_url(site), params={"certificate": "current"}).status_code == 404
    made = post_action(browser, site, page, "sp_key_create")
    assert made.status_code == 200 and "key for the workspace is made" in made.text
    again = post_action(browser, site, made, "sp_key_create")  # a second press: the same key
    assert again.status_code == 200
    html = again.text
    assert ">Make the key</button>" not in html
    assert "Service provider keys" in html and '<a href="#sp-keys">' in html
    assert "SP keys and rollover" in html
    current = shown_certificate(html, "current")
    assert current is not None and shown_certificate(html, "next") is None
    pem = current.replace("&#x27;", "'")
    assert published(site) == [base64_of(pem)]
    assert len(set(fingerprints(html))) == 1
    assert buttons(html) == {"Stage a new key"}  # only the possible step
    assert "PRIVATE KEY" not in html
    # The certificate downloads as a PEM file, for an IdP that wants one.
    download = browser.get(settings_url(site), params={"certificate": "current"})
    assert download.status_code == 200 and download.text == pem
    assert download.headers["Content-Type"].startswith("application/x-pem-file")
    assert 'filename="acme-sp-current.crt"' in download.headers["Content-Disposition"]
    assert download.headers["Cache-Control"] == "no-store"
    for state in ("next", "previous", "private", "../current"):
        refused = browser.get(settings_url(site), params={"certificate": state})
        assert refused.status_code == 404, state
        assert "PRIVATE KEY" not in refused.text
    # The two choices, off by default, with what they mean.
    assert "Sign AuthnRequests: Off" in html
    assert "also signed whenever the IdP&#x27;s metadata asks for it" in html
    assert "Require encrypted assertions: Off" in html
    assert "sign-ins whose assertion is not encrypted are refused" in html


def test_a_whole_rotation_on_the_page(site: Site, idp: TestIdP, acme: str) -> None:
    first = published(site)  # the IdP reads the SP metadata: the first key is made
    browser = requests.Session()
    page = open_with_link(browser, site)

    staged = post_action(browser, site, page, "sp_key_stage")
    assert staged.status_code == 200, staged.text
    assert "Staged a new key" in staged.text and "then activate" in staged.text
    certificates = key_certificates(site)
    assert set(certificates) == {"current", "next"}
    assert published(site) == [*first, base64_of(certificates["next"])]
    assert shown_certificate(staged.text, "next") is not None
    assert buttons(staged.text) == {"Activate the next key"}
    assert "make sure your IdP has its certificate first" in staged.text.replace("Make", "make")
    download = browser.get(settings_url(site), params={"certificate": "next"})
    assert download.status_code == 200 and download.text == certificates["next"]

    activated = post_action(browser, site, staged, "sp_key_activate")
    assert activated.status_code == 200 and "Activated the next key" in activated.text
    after = key_certificates(site)
    assert after["current"] == certificates["next"]
    assert after["previous"] == certificates["current"]
    assert published(site) == [base64_of(certificates["next"])]
    assert buttons(activated.text) == {"Stage a new key", "Retire the previous key"}
    assert 'id="sp-key-previous"' in activated.text
    assert shown_certificate(activated.text, "previous") is None  # not offered to an IdP

    retired = post_action(browser, site, activated, "sp_key_retire")
    assert retired.status_code == 200 and "Retired the previous key" in retired.text
    assert set(key_certificates(site)) == {"current"}
    assert buttons(retired.text) == {"Stage a new key"}
    assert 'id="sp-key-previous"' not in retired.text
    for action in ("sp_key_staged", "sp_key_activated", "sp_key_retired"):
        assert [event.actor for event in site.audit(action)] == ["settings:link"], action


def test_the_activate_button_says_it_deletes_a_previous_key_still_held(
    site: Site, idp: TestIdP, acme: str
) -> None:
    published(site)  # the IdP reads the SP metadata: the first key is made
    browser = requests.Session()
    page = open_with_link(browser, site)
    page = post_action(browser, site, page, "sp_key_stage")
    page = post_action(browser, site, page, "sp_key_activate")
    page = post_action(browser, site, page, "sp_key_stage")
    assert buttons(page.text) == {"Activate the next key", "Retire the previous key"}
    assert "The previous key you still hold is deleted now" in page.text


def test_a_step_that_is_not_possible_is_refused_and_changes_nothing(
    site: Site, idp: TestIdP, acme: str
) -> None:
    published(site)  # the IdP reads the SP metadata: the first key is made
    browser = requests.Session()
    page = open_with_link(browser, site)
    before = key_certificates(site)
    for action, said in (
        ("sp_key_activate", "Stage a new key"),
        ("sp_key_retire", "no previous key"),
    ):
        refused = post_action(browser, site, page, action)  # a stale page, a second tab
        assert refused.status_code == 409, action
        assert said in refused.text and "Nothing was changed" in refused.text
        assert "--" not in re.findall(r'class="notice error"[^>]*>([^<]*)', refused.text)[0]
    staged = post_action(browser, site, page, "sp_key_stage")
    twice = post_action(browser, site, page, "sp_key_stage")
    assert twice.status_code == 409
    notice = re.findall(r'class="notice error"[^>]*>([^<]*)', twice.text)[0]
    assert "(Activate the next key)" in notice and "Nothing was changed" in notice
    assert set(key_certificates(site)) == {"current", "next"}
    assert key_certificates(site)["current"] == before["current"]
    assert staged.status_code == 200
    assert len(site.audit("sp_key_staged")) == 1


def test_the_saml_choices_are_switched_and_audited(site: Site, idp: TestIdP, acme: str) -> None:
    published(site)  # the IdP reads the SP metadata: the first key is made
    browser = requests.Session()
    page = open_with_link(browser, site)
    on = post_action(browser, site, page, "saml_choice", choice="sign_authn_requests", state="on")
    assert on.status_code == 200 and "Sign AuthnRequests: On" in on.text
    required = post_action(
        browser, site, on, "saml_choice", choice="require_encrypted_assertions", state="on"
    )
    assert required.status_code == 200
    assert "Require encrypted assertions: On" in required.text
    assert 'class="notice warn"' in required.text and "refused from now on" in required.text
    ring = site.middleware.settings_page.sp_keys.status("acme")
    assert (ring.sign_authn_requests, ring.require_encrypted_assertions) == (True, True)
    off = post_action(
        browser, site, required, "saml_choice", choice="sign_authn_requests", state="off"
    )
    assert "Sign AuthnRequests: Off" in off.text
    events = site.audit("saml_settings_changed")
    assert [(event.actor, event.changes) for event in events] == [
        ("settings:link", {"sign_authn_requests": True}),
        ("settings:link", {"require_encrypted_assertions": True}),
        ("settings:link", {"sign_authn_requests": False}),
    ]
    for fields in (
        {"choice": "sp_version", "state": "on"},
        {"choice": "sign_authn_requests", "state": "maybe"},
        {"state": "on"},
    ):
        refused = post_action(browser, site, off, "saml_choice", **fields)
        assert refused.status_code == 400 and "Nothing was changed" in refused.text
    assert len(site.audit("saml_settings_changed")) == 3


def test_the_owner_signed_in_through_sso_rotates_as_the_sso_owner(
    site: Site, idp: TestIdP, acme: str
) -> None:
    browser = requests.Session()
    assert sign_in(browser, site, idp, OWNER).status_code == 303  # the sign-in made the key
    page = browser.get(settings_url(site))
    assert page.status_code == 200 and "Stage a new key" in page.text
    assert post_action(browser, site, page, "sp_key_stage").status_code == 200
    assert [event.actor for event in site.audit("sp_key_staged")] == ["settings:sso-owner"]


def test_forged_posts_change_nothing(site: Site, idp: TestIdP, acme: str) -> None:
    published(site)  # the IdP reads the SP metadata: the first key is made
    browser = requests.Session()
    open_with_link(browser, site)
    before = key_certificates(site)
    for data in (
        {"action": "sp_key_stage"},
        {"action": "sp_key_stage", "csrf_token": "forged"},
        {"action": "saml_choice", "choice": "require_encrypted_assertions", "state": "on"},
    ):
        response = browser.post(settings_url(site), data=data)
        assert response.status_code == 403 and "nothing was changed" in response.text
    assert key_certificates(site) == before
    assert (
        site.middleware.settings_page.sp_keys.status("acme").require_encrypted_assertions is False
    )


def test_a_hostile_owner_can_neither_rotate_nor_read_another_workspaces_keys(
    site: Site, idp: TestIdP, second_idp: TestIdP, acme: str
) -> None:
    site.add_workspace("evil", second_idp)
    published(site)  # acme's key exists
    before = key_certificates(site)
    choices = site.middleware.settings_page.sp_keys.status("acme")

    mallory = requests.Session()
    own_page = open_with_link(mallory, site, "evil")
    token = csrf_token(own_page.text)
    for data in (
        {"action": "sp_key_stage"},
        {"action": "sp_key_retire"},
        {"action": "saml_choice", "choice": "require_encrypted_assertions", "state": "on"},
        {"action": "saml_choice", "choice": "sign_authn_requests", "state": "on"},
    ):
        # Its own valid CSRF token, posted to acme's page: no access at all there.
        forged = mallory.post(settings_url(site, "acme"), data={"csrf_token": token, **data})
        assert forged.status_code == 403 and ACCESS_DENIED in forged.text, data
        # A form field naming the other workspace is ignored: the URL's workspace is acted on.
        own = mallory.post(
            settings_url(site, "evil"), data={"csrf_token": token, "slug": "acme", **data}
        )
        assert own.status_code in (200, 409), own.text
    for state in ("current", "next"):
        read = mallory.get(settings_url(site, "acme"), params={"certificate": state})
        assert read.status_code == 403 and ACCESS_DENIED in read.text
        assert "BEGIN CERTIFICATE" not in read.text
    page = mallory.get(settings_url(site, "acme"))
    assert page.status_code == 403 and "sp-cert-current" not in page.text
    assert key_certificates(site) == before
    assert site.middleware.settings_page.sp_keys.status("acme") == choices
    assert {event.workspace_id for event in site.audit("sp_key_staged")} == {
        site.middleware.settings_page.sp_keys.status("evil").workspace_id
    }
    # Nothing of acme's in evil's page.
    evil_page = mallory.get(settings_url(site, "evil")).text
    for pem in before.values():
        assert base64_of(pem)[:60] not in evil_page


def test_keys_the_sites_secret_no_longer_opens_are_said_not_a_500(
    site: Site, idp: TestIdP, acme: str, serve: Any, database_url: str
) -> None:
    """A site whose secret_key lost the secret that sealed its keys: the section says so, with
    the reason code, offers no step, and a forged step is refused without a 500."""
    published(site)  # sealed under the first site's secret
    before = key_certificates(site)
    dispatch: list[Any] = []
    live = serve(lambda environ, start_response: dispatch[0](environ, start_response))
    moved = SSOMiddleware(
        lambda environ, start_response: [],
        database_url=database_url,
        secret_key="a-different-secret-padded-to-thirty-two-bytes",
        base_url=live.url,
    )
    dispatch.append(moved)
    try:
        browser = requests.Session()
        page = press_open_button(browser, moved.settings_link("acme"))
        assert page.status_code == 200
        assert "cannot open its SAML keys" in page.text and "unknown_secret" in page.text
        assert buttons(page.text) == set() and "sp-cert-current" in page.text
        for action, fields in (
            ("sp_key_stage", {}),
            ("saml_choice", {"choice": "sign_authn_requests", "state": "on"}),
        ):
            refused = browser.post(
                f"{live.url}/saml/acme/settings",
                data={"csrf_token": csrf_token(page.text), "action": action, **fields},
            )
            assert refused.status_code == 409, refused.text
            assert "cannot open its SAML keys" in refused.text
        assert key_certificates(site) == before
        assert site.middleware.settings_page.sp_keys.status("acme").sign_authn_requests is False
    finally:
        moved.close()
