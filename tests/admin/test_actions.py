"""The owner's actions on the settings page over real HTTP: CSRF, the SCIM token, the IdP, the
switches and plans, closing the settings session, and email domains."""

from __future__ import annotations

import logging
import re
import socket
from typing import Any
from urllib.parse import urlencode

import requests
from sqlalchemy import select

from webwork_sso_middleware.store.models import ScimToken

from ..dns_server import TxtServer
from ..saml.conftest import Site
from ..saml.idp import TestIdP
from ..store_helpers import transaction
from .conftest import (
    ACCESS_DENIED,
    confirm,
    csrf_token,
    open_with_link,
    post_action,
    scim_status,
    settings_url,
    sign_in,
)

# -- CSRF ------------------------------------------------------------------------------------------


def test_posts_without_a_valid_csrf_token_change_nothing(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    page = open_with_link(browser, site)
    for data in (
        {"action": "regenerate_token"},
        {"action": "regenerate_token", "csrf_token": "forged"},
        {"action": "switch", "feature": "scim", "state": "off"},
    ):
        response = browser.post(settings_url(site), data=data)
        assert response.status_code == 403 and "nothing was changed" in response.text
    # A token from another owner-settings session is no good here either.
    other = requests.Session()
    other_page = open_with_link(other, site)
    response = browser.post(
        settings_url(site),
        data={"action": "regenerate_token", "csrf_token": csrf_token(other_page.text)},
    )
    assert response.status_code == 403
    assert scim_status(site, acme) == 200
    assert site.workspaces.get("acme").scim_enabled is True
    asked = post_action(browser, site, page, "switch", feature="scim", state="off")
    assert confirm(browser, asked).status_code == 200
    assert site.workspaces.get("acme").scim_enabled is False


# -- the SCIM token ----------------------------------------------------------------------------------


def test_regenerate_shows_the_new_token_once_and_the_old_one_dies(
    site: Site, idp: TestIdP, acme: str
):
    browser = requests.Session()
    page = open_with_link(browser, site)
    assert acme not in page.text
    done = confirm(browser, post_action(browser, site, page, "regenerate_token"))
    assert done.status_code == 200
    assert done.headers["Cache-Control"] == "no-store"
    shown = re.findall(r"wwsso_[A-Za-z0-9_-]{30,}", done.text)
    assert len(set(shown)) == 1, shown
    new_token = shown[0]
    assert "shown only this once" in done.text
    assert "webwork_sso" not in done.headers.get("Set-Cookie", "")  # never kept in a cookie
    assert scim_status(site, acme) == 401
    assert scim_status(site, new_token) == 200
    later = browser.get(settings_url(site))
    assert later.status_code == 200
    assert new_token not in later.text and new_token[:10] in later.text  # only its hint
    with transaction(site.middleware.database) as unit:
        hashes = list(unit.session.scalars(select(ScimToken.token_hash)))
    assert new_token not in str(hashes)


# -- the IdP ---------------------------------------------------------------------------------------


def test_metadata_url_is_fetched_checked_and_described(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    page = open_with_link(browser, site)
    metadata_url = f"{idp.url}/idp/metadata"
    done = post_action(browser, site, page, "set_idp", metadata_url=metadata_url)
    assert done.status_code == 200, done.text
    stored = site.workspaces.idp("acme")
    assert stored is not None and stored.metadata_url == metadata_url
    for shown in (
        idp.entity_id,
        idp.sso_url,
        metadata_url,
        "Last refresh",
        stored.certificates[0].sha256_fingerprint,
        f"{stored.certificates[0].not_after:%Y-%m-%d}",
    ):
        assert shown in done.text, shown
    assert "Saved" in done.text


def test_pasted_metadata_xml_is_accepted(site: Site, idp: TestIdP, second_idp: TestIdP, acme: str):
    browser = requests.Session()
    page = open_with_link(browser, site)
    done = post_action(browser, site, page, "set_idp", metadata_xml=second_idp.metadata_xml())
    assert done.status_code == 200 and second_idp.entity_id in done.text
    assert site.workspaces.idp("acme").entity_id == second_idp.entity_id
    assert "pasted XML" in done.text


def test_oversized_forms_are_refused_whole_even_chunked(
    site: Site, idp: TestIdP, second_idp: TestIdP, acme: str
):
    """Past max_body_bytes (1 MiB) a form is refused and nothing changes, also when sent chunked
    (no Content-Length), where werkzeug alone would parse the first 1 MiB as the whole form."""
    browser = requests.Session()
    page = open_with_link(browser, site)
    before = site.workspaces.idp("acme")
    padding = "<!--" + "x" * 1_100_000 + "-->"  # the metadata still parses if cut after it
    body = urlencode(
        {
            "csrf_token": csrf_token(page.text),
            "action": "set_idp",
            "metadata_xml": second_idp.metadata_xml() + padding,
        }
    ).encode()
    for data in (body, (body[i : i + 65_536] for i in range(0, len(body), 65_536))):
        response = browser.post(
            settings_url(site),
            data=data,
            allow_redirects=False,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 413 and "nothing was changed" in response.text
        assert site.workspaces.idp("acme") == before


def test_bad_metadata_gets_a_clear_message_and_changes_nothing(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    page = open_with_link(browser, site)
    before = site.workspaces.idp("acme")
    cases = [
        ({"metadata_url": "http://idp.example.com/metadata"}, "https"),
        ({"metadata_url": f"{idp.url}/no-such-metadata"}, "Could not get IdP metadata"),
        ({"metadata_url": "not a url"}, "cannot be used"),
        ({"metadata_xml": "<notMetadata/>"}, "cannot be used"),
        ({"metadata_xml": "this is not XML <"}, "cannot be used"),
        ({}, "one of them"),
        (
            {"metadata_url": f"{idp.url}/idp/metadata", "metadata_xml": idp.metadata_xml()},
            "one of them",
        ),
    ]
    for fields, expected in cases:
        response = post_action(browser, site, page, "set_idp", **fields)
        assert response.status_code == 400, fields
        assert "Nothing was changed" in response.text and expected in response.text, (
            fields,
            re.findall(r'class="notice error"[^>]*>([^<]*)', response.text),
        )
        assert site.workspaces.idp("acme") == before
    # The URL typed stays in the field, to be corrected.
    response = post_action(
        browser, site, page, "set_idp", metadata_url="http://idp.example.com/metadata"
    )
    assert 'value="http://idp.example.com/metadata"' in response.text


def test_an_internal_metadata_url_gets_the_generic_error_not_a_500(
    serve: Any, database_url: str, idp: TestIdP
):
    """A site that allows no metadata host: the owner's URL at 127.0.0.1, [::1] or localhost
    is refused with the same words as a 404 or a page that is not metadata, and nothing the
    server sent shows up on the page."""
    site = Site(serve, database_url)
    try:
        site.add_workspace("acme", idp)
        secret = "internal-secret-91aa"
        hits: list[str] = []

        def internal(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            hits.append(environ["PATH_INFO"])
            status = "404 Not Found" if environ["PATH_INFO"] == "/gone" else "200 OK"
            start_response(status, [("Content-Type", "text/html")])
            return [f"<html><title>{secret}</title></html>".encode()]

        port = serve(internal).url.rpartition(":")[2]
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            closed = unused.getsockname()[1]
        browser = requests.Session()
        page = open_with_link(browser, site)
        before = site.workspaces.idp("acme")
        notices = set()
        for url in (
            f"{idp.url}/idp/metadata",
            f"http://127.0.0.1:{port}/",
            f"http://127.0.0.1:{port}/gone",
            f"http://[::1]:{port}/",
            f"http://localhost:{port}/",
            f"http://127.0.0.1:{closed}/",
            f"https://127.0.0.1:{closed}/admin",
        ):
            response = post_action(browser, site, page, "set_idp", metadata_url=url)
            assert response.status_code == 400, (url, response.text)
            assert secret not in response.text
            notice = re.findall(r'class="notice error"[^>]*>([^<]*)', response.text)
            notices.add(tuple(notice))
        assert len(notices) == 1 and "Could not get IdP metadata" in str(notices), notices
        assert hits == [] and site.workspaces.idp("acme") == before
    finally:
        site.middleware.close()


def test_the_allow_list_lets_named_hosts_through_and_keeps_the_rest_generic(
    site: Site, idp: TestIdP, serve: Any, acme: str
):
    secret = "internal-secret-4d02"

    def not_metadata(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/xml")])
        return [f"<{secret}>{secret}</{secret}>".encode()]

    browser = requests.Session()
    page = open_with_link(browser, site)
    response = post_action(browser, site, page, "set_idp", metadata_url=serve(not_metadata).url)
    assert response.status_code == 400 and secret not in response.text
    assert "Could not get IdP metadata" in response.text


def test_pasted_metadata_with_a_control_character_in_a_url_is_refused(
    site: Site, idp: TestIdP, acme: str
):
    browser = requests.Session()
    page = open_with_link(browser, site)
    before = site.workspaces.idp("acme")
    xml = idp.metadata_xml().replace(f'Location="{idp.sso_url}"', f'Location="{idp.sso_url}&#10;"')
    assert xml != idp.metadata_xml()

    response = post_action(browser, site, page, "set_idp", metadata_xml=xml)

    assert response.status_code == 400 and "printable ASCII" in response.text
    assert site.workspaces.idp("acme") == before


# -- switches and plans ----------------------------------------------------------------------------


def test_switches_turn_scim_and_sso_on_and_off(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    page = open_with_link(browser, site)
    assert "SCIM first, then SAML" in page.text
    assert 'id="scim-switch"' in page.text and "SCIM is on" in page.text
    for feature, attribute in (("scim", "scim_enabled"), ("sso", "sso_enabled")):
        off = confirm(
            browser, post_action(browser, site, page, "switch", feature=feature, state="off")
        )
        assert off.status_code == 200 and getattr(site.workspaces.get("acme"), attribute) is False
        on = post_action(browser, site, page, "switch", feature=feature, state="on")
        assert on.status_code == 200 and getattr(site.workspaces.get("acme"), attribute) is True
    bad = post_action(browser, site, page, "switch", feature="billing", state="on")
    assert bad.status_code == 400


def test_idp_initiated_sign_in_is_switched_on_the_page(site: Site, idp: TestIdP, acme: str):
    def unsolicited_sign_in() -> requests.Response:
        return site.post_response(
            requests.Session(),
            "acme",
            idp.response(
                sp_entity_id=site.entity_id("acme"),
                acs_url=site.acs("acme"),
                email="alice@acme.test",
            ),
        )

    browser = requests.Session()
    page = open_with_link(browser, site)
    assert "IdP-initiated sign-in: On" in page.text and ">Turn off<" in page.text
    assert "only sign-ins started on this site are accepted" in page.text
    assert unsolicited_sign_in().status_code == 303
    # The page's CSRF protection covers it: a forged post changes nothing.
    forged = browser.post(
        settings_url(site), data={"action": "idp_initiated", "state": "off", "csrf_token": "forged"}
    )
    assert forged.status_code == 403 and site.workspaces.idp("acme").allow_idp_initiated is True
    off = post_action(browser, site, page, "idp_initiated", state="off")
    assert off.status_code == 200, off.text
    assert "IdP-initiated sign-in: Off" in off.text and ">Turn on<" in off.text
    assert site.workspaces.idp("acme").allow_idp_initiated is False
    refused = unsolicited_sign_in()
    assert refused.status_code == 400 and "unsolicited_not_allowed" in refused.text
    assert "Set-Cookie" not in refused.headers
    # Sign-ins started on this site still work.
    assert sign_in(requests.Session(), site, idp, "bob@acme.test").status_code == 303
    assert post_action(browser, site, off, "idp_initiated", state="maybe").status_code == 400
    on = post_action(browser, site, off, "idp_initiated", state="on")
    assert on.status_code == 200 and "IdP-initiated sign-in: On" in on.text
    assert unsolicited_sign_in().status_code == 303


def test_free_plan_keeps_both_off_with_a_message(site: Site):
    site.workspaces.create("freebie", name="Freebie", plan="free", owner_email="o@free.test")
    browser = requests.Session()
    page = open_with_link(browser, site, "freebie")
    assert page.status_code == 200
    assert "need the Plus or Premium plan" in page.text
    assert len(re.findall(r'id="(?:scim|sso)-switch"[^>]* disabled', page.text)) == 2
    for feature in ("scim", "sso"):
        response = post_action(
            browser, site, page, "switch", slug="freebie", feature=feature, state="on"
        )
        assert response.status_code == 403 and "Plus or Premium" in response.text
    info = site.workspaces.get("freebie")
    assert (info.scim_enabled, info.sso_enabled) == (False, False)
    assert "Test sign-in</a>" not in page.text


def test_close_ends_the_owner_settings_session(site: Site, idp: TestIdP, acme: str):
    browser = requests.Session()
    page = open_with_link(browser, site)
    closed = post_action(browser, site, page, "close")
    assert closed.status_code == 200 and "closed" in closed.text
    assert "webwork_sso_settings=;" in closed.headers["Set-Cookie"]
    assert browser.get(settings_url(site)).status_code == 403


def test_close_ends_every_copy_of_the_cookie_on_every_worker(
    site: Site, idp: TestIdP, acme: str, serve, database_url: str
):
    browser = requests.Session()
    page = open_with_link(browser, site)
    copied = {"Cookie": f"webwork_sso_settings={browser.cookies.get('webwork_sso_settings')}"}
    other_worker = Site(serve, database_url)  # another middleware on the same database
    try:
        for url in (settings_url(site), settings_url(other_worker)):
            assert requests.get(url, headers=copied).status_code == 200
        closed = post_action(browser, site, page, "close")
        assert closed.status_code == 200 and "closed" in closed.text
        # The copy (pasted into another browser, say) is worthless at once, everywhere.
        for url in (settings_url(site), settings_url(other_worker)):
            refused = requests.get(url, headers=copied)
            assert refused.status_code == 403 and ACCESS_DENIED in refused.text
        forged_post = requests.post(
            settings_url(other_worker),
            headers=copied,
            data={"csrf_token": csrf_token(page.text), "action": "regenerate_token"},
        )
        assert forged_post.status_code == 403
        assert scim_status(site, acme) == 200
    finally:
        other_worker.middleware.close()


# -- email domains ------------------------------------------------------------------------------------


def test_domains_are_added_verified_by_dns_and_removed_on_the_page(
    serve, database_url: str, idp: TestIdP, dns_server: TxtServer
):
    site = Site(serve, database_url, dns_nameservers=[dns_server.nameserver])
    try:
        site.add_workspace("acme", idp, verify_domain=False)
        browser = requests.Session()
        page = open_with_link(browser, site)
        added = post_action(browser, site, page, "claim_domain", domain=" Acme.TEST ")
        assert added.status_code == 200 and "Added acme.test" in added.text
        (claim,) = site.workspaces.domain_claims("acme")
        assert claim.record.name in added.text and claim.record.value in added.text

        early = post_action(browser, site, added, "verify_domain", domain="acme.test")
        assert early.status_code == 400 and "not verified yet" in early.text
        assert site.workspaces.get("acme").verified_domains == ()

        dns_server.publish(claim.record.name, claim.record.value)
        verified = post_action(browser, site, early, "verify_domain", domain="acme.test")
        assert verified.status_code == 200 and "acme.test is verified" in verified.text
        assert site.workspaces.get("acme").verified_domains == ("acme.test",)

        for refused in ("gmail.com", "not a domain"):
            answer = post_action(browser, site, verified, "claim_domain", domain=refused)
            assert answer.status_code == 400 and "Nothing was changed" in answer.text
        removed = post_action(browser, site, verified, "release_domain", domain="acme.test")
        assert removed.status_code == 200 and site.workspaces.get("acme").domains == ()
    finally:
        site.middleware.close()


def test_a_hostile_owner_cannot_take_a_verified_domain_on_the_page(
    site: Site, idp: TestIdP, second_idp: TestIdP, acme: str
):
    site.add_workspace("evil", second_idp)
    browser = requests.Session()
    page = open_with_link(browser, site, "evil")
    claimed = post_action(browser, site, page, "claim_domain", slug="evil", domain="acme.test")
    assert claimed.status_code == 200  # a claim is only words...
    taken = post_action(browser, site, claimed, "verify_domain", slug="evil", domain="acme.test")
    assert taken.status_code == 400 and "another workspace" in taken.text  # ... until verified
    assert site.workspaces.get("evil").verified_domains == ("evil.test",)
    assert site.workspaces.get("acme").verified_domains == ("acme.test",)
    # Nor can it release acme's claim: the page acts on its own workspace only.
    post_action(browser, site, taken, "release_domain", slug="evil", domain="acme.test")
    assert site.workspaces.get("acme").verified_domains == ("acme.test",)


# -- the log -------------------------------------------------------------------------------------


def test_an_action_is_logged_once_it_runs_not_when_it_is_only_asked(
    site: Site, idp: TestIdP, acme: str, caplog: Any
):
    browser = requests.Session()
    page = open_with_link(browser, site)

    def events() -> list[tuple[str, str]]:
        return [
            (r.event, r.workspace)
            for r in caplog.records
            if r.name.startswith("webwork_sso_middleware.admin") and r.event
        ]

    with caplog.at_level(logging.INFO, logger="webwork_sso_middleware"):
        asked = post_action(browser, site, page, "regenerate_token")
        assert events() == []  # the confirmation page: nothing ran
        assert confirm(browser, asked).status_code == 200
        assert events() == [("settings.regenerate_token", "acme")]
        post_action(browser, site, page, "Nonsense\nFAKE")
        assert events()[-1] == ("settings.unknown_action", "acme")
        post_action(browser, site, page, "made_up_by_the_owner")  # well formed, but no action
    assert events()[-1] == ("settings.unknown_action", "acme")
