"""The dev IdP: the whole sign-in flow on one machine over real HTTP (time tracker behind the
middleware, DevIdP beside it), its refusals, its key kept across restarts, and its CLI guard."""

from __future__ import annotations

import base64
import os
import queue
import stat
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from sqlalchemy import select

from webwork_sso_middleware.cli import main
from webwork_sso_middleware.devidp import DevIdP, DevIdPError
from webwork_sso_middleware.devidp.keys import KEY_FILE_NAME
from webwork_sso_middleware.devserver import (
    DEMO_SLUG,
    create_demo_workspace,
    start_dev_idp,
    wire_demo_workspace,
)
from webwork_sso_middleware.idp_metadata.workspaces import Workspaces
from webwork_sso_middleware.page_headers import hash_source
from webwork_sso_middleware.saml.entities import make_client
from webwork_sso_middleware.store.models import AuditEvent

from ..constants import DS, SAML
from ..saml.idp import autopost_form, pysaml2_sp_config
from ..store_helpers import transaction
from .browser import TIMEOUT, follow_autopost, forms, pick, sign_in, start_at_sso_page, type_user
from .conftest import Site

# -- the whole flow --------------------------------------------------------------------------


def test_a_newcomer_signs_in_through_the_dev_idp_and_logs_time(site: Site) -> None:
    browser = requests.Session()

    at_idp = start_at_sso_page(browser, site.url, "newcomer@example.com")
    assert at_idp.url.startswith(site.idp.sso_url)
    picks = {value for form in forms(at_idp) for value in form.buttons.get("user", [])}
    assert picks == {"alice.smith@example.com", "bob.jones@example.com"}

    home = follow_autopost(browser, pick(browser, at_idp, "alice.smith@example.com"))

    assert home.status_code == 200 and home.url == f"{site.url}/"
    assert "Alice Smith" in home.text and "alice.smith@example.com" in home.text
    assert 'action="/saml/logout"' in home.text
    added = browser.post(
        f"{site.url}/entries", timeout=TIMEOUT, data={"description": "Onboarding", "minutes": "45"}
    )
    assert added.status_code == 200 and added.url == f"{site.url}/"
    assert "Onboarding" in added.text and "This week: <strong>0:45</strong>" in added.text
    member = site.member("alice.smith@example.com")
    assert (member.given_name, member.family_name, member.source) == ("Alice", "Smith", "sso")


def test_a_typed_user_with_names_is_who_signs_in(site: Site) -> None:
    browser = requests.Session()
    at_idp = start_at_sso_page(browser, site.url, "zoe@example.com")

    autopost = type_user(
        browser, at_idp, user="zoe@example.com", first_name="Zoë", last_name="O'Neil <Test>"
    )
    home = follow_autopost(browser, autopost)

    assert "Zoë O&#x27;Neil &lt;Test&gt;" in home.text and "zoe@example.com" in home.text
    assert "<Test>" not in home.text


def test_the_response_is_signed_and_carries_what_the_sp_needs(site: Site) -> None:
    browser = requests.Session()
    at_idp = start_at_sso_page(browser, site.url, "alice.smith@example.com")
    action, fields = autopost_form(pick(browser, at_idp, "alice.smith@example.com").text)

    root = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    assertion = root.find(f"{{{SAML}}}Assertion")
    name_id = assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
    attributes = {
        a.get("Name"): [v.text for v in a] for a in assertion.iter(f"{{{SAML}}}Attribute")
    }

    assert action == site.acs_url and root.get("Destination") == site.acs_url
    assert root.get("InResponseTo") and fields["RelayState"]
    assert assertion.find(f"{{{DS}}}Signature") is not None
    assert name_id.get("Format") == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    assert name_id.text == "alice.smith@example.com"
    assert attributes == {
        "email": ["alice.smith@example.com"],
        "firstName": ["Alice"],
        "lastName": ["Smith"],
    }


def test_idp_initiated_sign_in_from_the_start_page(site: Site) -> None:
    browser = requests.Session()
    listing = browser.get(site.idp.start_url, timeout=TIMEOUT)
    assert listing.status_code == 200 and site.sp_entity_id in listing.text

    chosen = browser.get(
        f"{site.idp.start_url}?{urlencode({'sp': site.sp_entity_id})}", timeout=TIMEOUT
    )
    autopost = pick(browser, chosen, "bob.jones@example.com")
    _, fields = autopost_form(autopost.text)
    home = follow_autopost(browser, autopost)

    assert "InResponseTo" not in base64.b64decode(fields["SAMLResponse"]).decode()
    assert home.url == f"{site.url}/" and "bob.jones@example.com" in home.text


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_both_bindings_show_the_sign_in_page_and_answer(site: Site, binding: str) -> None:
    sp_id, acs = "http://sp.test/saml/acme/metadata", "http://sp.test/saml/acme/acs"
    site.idp.register_sp(sp_id, acs)
    sp = make_client(pysaml2_sp_config(sp_id, acs, [site.idp.metadata_xml()]))
    request_id, info = sp.prepare_for_authenticate(
        entityid=site.idp.entity_id, relay_state="/x?y=1", binding=binding
    )
    browser = requests.Session()
    if binding == BINDING_HTTP_REDIRECT:
        at_idp = browser.get(dict(info["headers"])["Location"], timeout=TIMEOUT)
    else:
        action, fields = autopost_form(info["data"])
        at_idp = browser.post(action, data=fields, timeout=TIMEOUT)
    assert at_idp.status_code == 200 and "Development IdP — not for production" in at_idp.text

    action, fields = autopost_form(type_user(browser, at_idp, user="carol@sp.test").text)

    assert action == acs and fields["RelayState"] == "/x?y=1"
    result = sp.parse_authn_request_response(
        fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={request_id: "/"}
    )
    assert result.name_id.text == "carol@sp.test" and result.in_response_to == request_id
    assert result.ava["firstName"] == ["Carol"] and "lastName" not in result.ava


def test_sp_registration_from_its_metadata_url(site: Site, tmp_path: Path) -> None:
    idp = DevIdP("http://127.0.0.1:1", key_dir=tmp_path / "other")

    assert idp.register_sp_from_metadata_url(site.sp_entity_id) == [site.sp_entity_id]
    assert idp.known_sps() == {site.sp_entity_id: site.acs_url}
    with pytest.raises(DevIdPError, match="cannot fetch SP metadata"):
        idp.register_sp_from_metadata_url("http://127.0.0.1:1/saml/x/metadata")
    assert idp.register_sp_from_metadata_url("http://127.0.0.1:1/m", retry_later=True) == []
    with pytest.raises(DevIdPError, match="only http and https"):
        idp.register_sp_from_metadata_url("file:///etc/passwd")


# -- refusals --------------------------------------------------------------------------------


def test_an_unknown_sp_gets_a_clear_400(site: Site) -> None:
    stranger = "http://stranger.test/saml/x/metadata"
    sp = make_client(
        pysaml2_sp_config(stranger, "http://stranger.test/acs", [site.idp.metadata_xml()])
    )
    _, info = sp.prepare_for_authenticate(
        entityid=site.idp.entity_id, binding=BINDING_HTTP_REDIRECT
    )

    refused = requests.get(dict(info["headers"])["Location"], timeout=TIMEOUT)
    start = requests.get(f"{site.idp.start_url}?{urlencode({'sp': stranger})}", timeout=TIMEOUT)

    assert refused.status_code == 400
    assert "not registered" in refused.text and stranger in refused.text
    assert "SAMLResponse" not in refused.text
    assert start.status_code == 400 and "not registered" in start.text


def test_a_registered_sp_asking_for_an_acs_it_did_not_register_gets_a_clear_400(site: Site) -> None:
    elsewhere = "http://elsewhere.test/acs"
    sp = make_client(pysaml2_sp_config(site.sp_entity_id, elsewhere, [site.idp.metadata_xml()]))
    _, info = sp.prepare_for_authenticate(
        entityid=site.idp.entity_id, binding=BINDING_HTTP_REDIRECT
    )

    refused = requests.get(dict(info["headers"])["Location"], timeout=TIMEOUT)

    assert refused.status_code == 400
    assert "asks for ACS" in refused.text and elsewhere in refused.text
    assert "SAMLResponse" not in refused.text


def test_requests_without_a_saml_request_or_garbage_are_refused(site: Site) -> None:
    bare = requests.get(site.idp.sso_url, timeout=TIMEOUT)
    garbage = requests.get(
        site.idp.sso_url, params={"SAMLRequest": "bm90IHNhbWw="}, timeout=TIMEOUT
    )
    assert bare.status_code == 400 and "No sign-in request" in bare.text
    assert garbage.status_code == 400 and "could not be read" in garbage.text
    assert requests.get(f"{site.idp.base_url}/elsewhere", timeout=TIMEOUT).status_code == 404
    assert requests.delete(site.idp.sso_url, timeout=TIMEOUT).status_code == 405


def deflate_bomb(inflated_mib: int) -> str:
    """A raw-DEFLATE SAMLRequest of zeros that inflates to ``inflated_mib`` MiB, base64."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\0" * (1024 * 1024)
    data = b"".join(deflate.compress(chunk) for _ in range(inflated_mib)) + deflate.flush()
    return base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize("how", ["GET redirect", "POST redirect", "POST post"])
def test_a_deflate_bomb_is_refused_before_it_is_inflated(site: Site, how: str) -> None:
    """16 MiB of zeros deflate to 16 KiB (the review's 398 KiB became 300 MiB): pysaml2 would
    inflate it all, for the HTTP-POST binding too, before finding it is no AuthnRequest."""
    bomb = deflate_bomb(16)
    method, binding = how.split()
    if method == "GET":
        refused = requests.get(site.idp.sso_url, params={"SAMLRequest": bomb}, timeout=TIMEOUT)
    else:
        refused = requests.post(
            site.idp.sso_url, timeout=TIMEOUT, data={"SAMLRequest": bomb, "binding": binding}
        )

    assert refused.status_code == 400 and "text/html" in refused.headers["Content-Type"]
    assert "the SAMLRequest is too large" in refused.text


def test_a_request_too_large_as_sent_is_refused(site: Site) -> None:
    plain = base64.b64encode(os.urandom(96 * 1024)).decode("ascii")  # 128 KiB, incompressible

    refused = requests.post(
        site.idp.sso_url, data={"SAMLRequest": plain, "binding": "post"}, timeout=TIMEOUT
    )

    assert refused.status_code == 400 and "the SAMLRequest is too large" in refused.text


def test_a_bad_typed_email_shows_the_form_again_and_signs_nobody_in(site: Site) -> None:
    browser = requests.Session()
    at_idp = start_at_sso_page(browser, site.url, "alice.smith@example.com")

    again = type_user(browser, at_idp, user="not an email", first_name="<b>x</b>")

    assert again.status_code == 400 and "Type an email address" in again.text
    assert "SAMLResponse" not in again.text.replace('name="SAMLRequest"', "")
    assert "&lt;b&gt;x&lt;/b&gt;" in again.text and "<b>x</b>" not in again.text


def test_everything_the_idp_echoes_is_escaped(site: Site) -> None:
    hostile = '"><script>alert(1)</script>'
    browser = requests.Session()
    at_idp = start_at_sso_page(browser, site.url, "alice.smith@example.com")
    form = next(f for f in forms(at_idp) if "first_name" in f.fields)

    page = browser.post(form.action, data={**form.fields, "RelayState": hostile}, timeout=TIMEOUT)
    answer = browser.post(
        form.action,
        timeout=TIMEOUT,
        data={**form.fields, "RelayState": hostile, "user": "a@example.com"},
    )
    start = requests.get(site.idp.start_url, params={"sp": hostile}, timeout=TIMEOUT)

    for response in (page, answer, start):
        assert "<script>alert(1)</script>" not in response.text
    assert autopost_form(answer.text)[1]["RelayState"] == hostile  # intact, only escaped
    assert "&lt;script&gt;" in start.text


def test_every_page_says_it_is_for_development(site: Site) -> None:
    for url in (site.idp.base_url + "/", site.idp.start_url, site.idp.sso_url):
        assert "Development IdP — not for production" in requests.get(url, timeout=TIMEOUT).text


def test_every_page_sends_the_packages_page_headers(site: Site) -> None:
    """page_headers.py: as the SAML pages and the settings page; forms go to the IdP itself,
    and the auto-post page's form only to the ACS it answers, with its one script by hash."""
    browser = requests.Session()
    at_idp = start_at_sso_page(browser, site.url, "alice.smith@example.com")
    autopost = pick(browser, at_idp, "alice.smith@example.com")
    others = [
        requests.get(url, timeout=TIMEOUT)
        for url in (site.idp.base_url + "/", site.idp.start_url, site.idp.sso_url)
    ]

    for response in (at_idp, autopost, *others):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert f"form-action 'self' {site.idp.base_url};" in at_idp.headers["Content-Security-Policy"]
    for response in others:
        assert "form-action 'self';" in response.headers["Content-Security-Policy"]
    for response in (at_idp, *others):
        assert "script-src 'none'" in response.headers["Content-Security-Policy"]
    csp = autopost.headers["Content-Security-Policy"]
    assert f"form-action 'self' {site.url};" in csp  # the ACS's origin, not any http(s) URL
    assert f"script-src {hash_source('document.forms[0].submit()')};" in csp
    assert "onload" not in autopost.text


# -- the key ---------------------------------------------------------------------------------


def test_the_key_is_made_once_and_kept_across_restarts(tmp_path: Path) -> None:
    first = DevIdP("http://127.0.0.1:8001", key_dir=tmp_path)
    again = DevIdP("http://127.0.0.1:8001", key_dir=tmp_path)
    elsewhere = DevIdP("http://127.0.0.1:8001", key_dir=tmp_path / "elsewhere")

    key_file = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert again.keys == first.keys and again.metadata_xml() == first.metadata_xml()
    assert elsewhere.keys != first.keys
    assert first.keys.cert_base64 in first.metadata_xml()


def test_a_response_from_a_restarted_idp_still_verifies(site: Site, tmp_path: Path) -> None:
    restarted = DevIdP(site.idp.base_url, key_dir=tmp_path / "keys")  # the site's key_dir
    restarted.register_sp(site.sp_entity_id, site.acs_url)
    site.idp = restarted  # the workspace still holds the first instance's metadata

    home = sign_in(requests.Session(), site.url, "bob.jones@example.com", "bob.jones@example.com")

    assert home.url == f"{site.url}/" and "bob.jones@example.com" in home.text


def test_an_unreadable_key_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("not a key")

    idp = DevIdP("http://127.0.0.1:8001", key_dir=tmp_path)

    assert idp.keys.cert_base64 in (tmp_path / KEY_FILE_NAME).read_text().replace("\n", "")


# -- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_dev_idp_refuses_a_non_loopback_host_without_force(
    host: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("webwork_sso_middleware.devidp.server.bind", _no_binding)

    code = main(["dev-idp", "--host", host])

    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("webwork-sso: ")
    assert "loopback" in captured.err and "--force" in captured.err


def test_the_dev_idp_command_serves_an_sp_given_by_metadata_url(site: Site, tmp_path: Path) -> None:
    """``webwork-sso dev-idp`` alone: the SP it was told about signs people in through it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "webwork_sso_middleware.cli", "dev-idp", "--port", "0",
         "--key-dir", str(tmp_path / "cli-keys"), "--sp-metadata-url", site.sp_entity_id],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        printed = _read_until(process, "Press Ctrl+C")
        banner = "".join(printed)
        assert "DEVELOPMENT ONLY -- NOT FOR PRODUCTION" in banner and site.sp_entity_id in banner
        metadata_url = next(
            line.split("Metadata URL:", 1)[1].split()[0]
            for line in printed
            if "Metadata URL:" in line
        )
        site.middleware.workspaces.set_idp(DEMO_SLUG, metadata_url=metadata_url)

        home = sign_in(requests.Session(), site.url, "dan@example.com", "alice.smith@example.com")

        assert home.url == f"{site.url}/" and "alice.smith@example.com" in home.text
        assert (tmp_path / "cli-keys" / KEY_FILE_NAME).exists()
    finally:
        process.terminate()
        process.wait(10)


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float = 30) -> list[str]:
    """The lines a child prints up to the one with ``marker`` (failing after ``timeout``)."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stream = process.stdout

    def read() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    printed: list[str] = []
    deadline = time.monotonic() + timeout
    while not printed or marker not in printed[-1]:
        try:
            printed.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            pytest.fail(f"no {marker!r} in {timeout}s: {''.join(printed)!r}")
    return printed


# -- how serve wires the demo workspace ------------------------------------------------------


def test_serve_wires_the_demo_workspace_once_and_again_only_on_change(
    database: Any, tmp_path: Path
) -> None:
    workspaces = Workspaces(database)
    create_demo_workspace(workspaces)
    idp = DevIdP("http://127.0.0.1:8001", key_dir=tmp_path)

    wire_demo_workspace(workspaces, idp)
    wire_demo_workspace(workspaces, idp)  # a restart on the same port: nothing to change
    moved = DevIdP("http://127.0.0.1:9001", key_dir=tmp_path)  # same key, new port
    wire_demo_workspace(workspaces, moved)

    info = workspaces.get(DEMO_SLUG)
    assert (info.plan, info.scim_enabled, info.sso_enabled, info.domains) == (
        "plus",
        True,
        True,
        ("example.com",),
    )
    current = workspaces.idp(DEMO_SLUG)
    assert current is not None and current.entity_id == moved.entity_id
    with transaction(database) as unit:
        changes = unit.session.scalars(
            select(AuditEvent.actor).where(AuditEvent.target_type == "idp")
        )
        assert list(changes).count("serve") == 2


def test_serve_leaves_a_demo_workspace_with_another_idp_alone(
    database: Any, tmp_path: Path
) -> None:
    workspaces = Workspaces(database)
    create_demo_workspace(workspaces)
    other = DevIdP("http://127.0.0.1:7001", key_dir=tmp_path / "other")
    workspaces.set_idp(DEMO_SLUG, metadata_xml=other.metadata_xml())

    idp, server, note = start_dev_idp(workspaces, "http://127.0.0.1:8000", "127.0.0.1", 0, tmp_path)

    assert (idp, server) == (None, None) and note is not None and other.entity_id in note
    current = workspaces.idp(DEMO_SLUG)
    assert current is not None and current.entity_id == other.entity_id


def test_serve_starts_no_dev_idp_off_loopback(
    database: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("webwork_sso_middleware.devserver.bind", _no_binding)
    workspaces = Workspaces(database)
    create_demo_workspace(workspaces)

    idp, server, note = start_dev_idp(workspaces, "http://10.0.0.5:8000", "0.0.0.0", 8001, tmp_path)

    assert (idp, server) == (None, None) and note is not None and "loopback" in note
    assert workspaces.idp(DEMO_SLUG) is None


def _no_binding(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("must refuse before binding")


def test_the_address_typed_on_the_sign_in_page_is_pre_selected_at_the_idp(site: Site) -> None:
    """The SP passes the typed address as its login hint: a listed user with it is focused and
    marked; any other address fills the typed field. Either way nobody is signed in by it."""
    browser = requests.Session()
    listed = start_at_sso_page(browser, site.url, "bob.jones@example.com")
    assert "login_hint=bob.jones%40example.com" in listed.url
    assert (
        'value="bob.jones@example.com" autofocus class="hinted">Sign in as <strong>Bob Jones'
        in listed.text
    )
    assert "(the address you typed)" in listed.text
    assert 'value="alice.smith@example.com" autofocus' not in listed.text
    other = start_at_sso_page(requests.Session(), site.url, "newcomer@example.com")
    assert 'autocomplete="off" value="newcomer@example.com" autofocus' in other.text
    assert "hinted" not in other.text
    # A hint that is no address is ignored (and nothing of it is echoed).
    odd = requests.get(
        listed.url.replace("login_hint=bob.jones%40example.com", "login_hint=%3Cb%3E")
    )
    assert odd.status_code == 200 and "<b>" not in odd.text and "hinted" not in odd.text
