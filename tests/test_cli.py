"""webwork-sso, the command line: in-process through main(argv), and as the installed script."""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import webtest
from lxml import etree
from sqlalchemy import MetaData, create_engine, select, text

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.cli import build_parser, main
from webwork_sso_middleware.errors import MetadataUnavailable
from webwork_sso_middleware.store.workspaces import hash_token

from .admin.conftest import sign_in
from .constants import SECRET
from .devidp import browser
from .dns_server import TxtServer
from .idp_metadata.metadata_samples import (
    OKTA_ENTITY_ID,
    OKTA_SSO_POST,
    certificate,
    entity_descriptor,
    fingerprint,
    okta_metadata,
    sso_services,
)
from .saml.conftest import Site
from .saml.idp import TestIdP

BASE_URL = "https://tracker.example.com"
INTERFACE_KEYS = {
    "slug", "name", "plan", "scim_base_url", "sp_entity_id", "acs_url", "sp_metadata_url",
    "login_url", "settings_url",
}  # fmt: skip
ADDITIVE_KEYS = {
    "owner_email",
    "scim_enabled",
    "sso_enabled",
    "domains",
    "verified_domains",
    "domain_claims",
    "require_sso",
    "break_glass_until",
    "attribute_map",
    "role_map",
}
REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_webwork_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WEBWORK_SSO_") and name != "WEBWORK_SSO_TEST_DATABASE_URL":
            monkeypatch.delenv(name)


class Cli:
    """Runs ``main(argv)`` against one database and base URL, capturing what it prints."""

    def __init__(self, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.database_url = database_url
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--database-url", self.database_url, "--base-url", BASE_URL, *argv])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *argv: str) -> dict[str, Any]:
        code, out, err = self(*argv, "--json")
        assert (code, err) == (0, "")
        document: dict[str, Any] = json.loads(out)
        return document

    def create(self, slug: str = "acme", plan: str = "plus") -> dict[str, Any]:
        return self.json(
            "workspace", "create", slug, "--name", "Acme Inc.", "--plan", plan,
            "--owner", "it@acme.example",
        )  # fmt: skip


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(database_url, capsys)


def assert_one_line_failure(result: tuple[int, str, str], *fragments: str, code: int = 1) -> None:
    exit_code, out, err = result
    assert exit_code == code
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("webwork-sso"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def token_rows(database_url: str, slug: str) -> list[tuple[str, Any]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT t.token_hash, t.revoked_at FROM scim_tokens t"
                    " JOIN workspaces w ON w.id = t.workspace_id WHERE w.slug = :slug ORDER BY t.id"
                ),
                {"slug": slug},
            )
            return [(row[0], row[1]) for row in rows]
    finally:
        engine.dispose()


def every_stored_value(database_url: str) -> Iterator[str]:
    engine = create_engine(database_url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(select(table)):
                    yield from (str(value) for value in row)
    finally:
        engine.dispose()


def host_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"host"]


def scim_status(database_url: str, token: str) -> int:
    middleware = SSOMiddleware(
        host_app, database_url=database_url, secret_key=SECRET, base_url=BASE_URL
    )
    try:
        response = webtest.TestApp(middleware).get(
            "/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}, expect_errors=True
        )
        status: int = response.status_int
        return status
    finally:
        middleware.close()


# -- workspace create / show / rotate-token ----------------------------------------------------


def test_create_json_has_the_interface_keys_and_a_working_token(cli: Cli) -> None:
    document = cli.create()

    assert INTERFACE_KEYS | {"scim_token"} <= set(document)
    assert set(document) <= INTERFACE_KEYS | ADDITIVE_KEYS | {"scim_token"}
    assert document["slug"] == "acme"
    assert document["name"] == "Acme Inc."
    assert document["plan"] == "plus"
    assert document["scim_base_url"] == f"{BASE_URL}/scim/v2"
    assert document["sp_entity_id"] == f"{BASE_URL}/saml/acme/metadata"
    assert document["sp_metadata_url"] == document["sp_entity_id"]
    assert document["acs_url"] == f"{BASE_URL}/saml/acme/acs"
    assert document["login_url"] == f"{BASE_URL}/saml/acme/login"
    assert document["settings_url"] == f"{BASE_URL}/saml/acme/settings"
    token = document["scim_token"]
    assert token_rows(cli.database_url, "acme") == [(hash_token(token), None)]


def test_the_token_is_never_stored_in_plain_text(cli: Cli) -> None:
    token = cli.create()["scim_token"]

    assert not any(token in value for value in every_stored_value(cli.database_url))


def test_the_printed_token_authenticates_scim_once_scim_is_on(cli: Cli) -> None:
    token = cli.create()["scim_token"]
    assert cli("workspace", "enable", "acme", "--scim")[0] == 0

    assert scim_status(cli.database_url, token) == 200


def test_create_without_json_prints_the_token_once_with_a_note(cli: Cli) -> None:
    code, out, err = cli(
        "workspace",
        "create",
        "acme",
        "--name",
        "Acme",
        "--plan",
        "plus",
        "--owner",
        "it@acme.example",
    )

    assert (code, err) == (0, "")
    assert "Shown only now" in out
    token_lines = [line for line in out.splitlines() if "wwsso_" in line]
    assert len(token_lines) == 1
    assert f"{BASE_URL}/scim/v2" in out


def test_show_prints_the_workspace_without_a_token(cli: Cli) -> None:
    cli.create()

    document = cli.json("workspace", "show", "acme")

    assert INTERFACE_KEYS <= set(document)
    assert "scim_token" not in document
    assert (document["slug"], document["plan"], document["owner_email"]) == (
        "acme", "plus", "it@acme.example",
    )  # fmt: skip
    code, out, _ = cli("workspace", "show", "acme")
    assert code == 0 and "wwsso_" not in out and f"{BASE_URL}/saml/acme/acs" in out


def test_rotate_token_revokes_the_old_token(cli: Cli) -> None:
    old_token = cli.create()["scim_token"]

    document = cli.json("workspace", "rotate-token", "acme")

    new_token = document["scim_token"]
    assert new_token != old_token
    assert INTERFACE_KEYS <= set(document)
    (old_hash, old_revoked), (new_hash, new_revoked) = token_rows(cli.database_url, "acme")
    assert (old_hash, new_hash) == (hash_token(old_token), hash_token(new_token))
    assert old_revoked is not None and new_revoked is None
    cli("workspace", "enable", "acme", "--scim")
    assert scim_status(cli.database_url, old_token) == 401
    assert scim_status(cli.database_url, new_token) == 200


# -- plans and switches ------------------------------------------------------------------------


def test_enable_is_refused_on_the_free_plan(cli: Cli) -> None:
    cli.create(plan="free")

    result = cli("workspace", "enable", "acme", "--scim")

    assert_one_line_failure(result, "'acme'", "free plan", "Plus or Premium")
    document = cli.json("workspace", "show", "acme")
    assert (document["scim_enabled"], document["sso_enabled"]) == (False, False)


def test_enable_and_disable_switch_what_is_named_or_both(cli: Cli) -> None:
    cli.create()

    assert cli.json("workspace", "enable", "acme", "--scim")["scim_enabled"] is True
    assert cli.json("workspace", "show", "acme")["sso_enabled"] is False
    both = cli.json("workspace", "enable", "acme")
    assert (both["scim_enabled"], both["sso_enabled"]) == (True, True)
    after = cli.json("workspace", "disable", "acme", "--sso")
    assert (after["scim_enabled"], after["sso_enabled"]) == (True, False)
    after = cli.json("workspace", "disable", "acme")
    assert (after["scim_enabled"], after["sso_enabled"]) == (False, False)


def test_moving_to_the_free_plan_switches_scim_and_sso_off(cli: Cli) -> None:
    cli.create(plan="premium")
    cli("workspace", "enable", "acme", "--scim", "--sso")

    code, out, err = cli("workspace", "set-plan", "acme", "free")

    assert (code, err) == (0, "")
    assert "free plan" in out
    document = cli.json("workspace", "show", "acme")
    assert (document["plan"], document["scim_enabled"], document["sso_enabled"]) == (
        "free", False, False,
    )  # fmt: skip


def test_switching_sso_off_from_the_cli_ends_sessions_for_good(
    cli: Cli, site: Site, idp: TestIdP
) -> None:
    # The site runs beside the CLI, as another process would: it learns of the change from the
    # database, within its session recheck interval (2 s).
    site.add_workspace("acme", idp)
    browser = requests.Session()
    assert sign_in(browser, site, idp, "alice@acme.test").status_code == 303

    def remote_user() -> str:
        return browser.get(f"{site.url}/app").text.split(";", 1)[0]

    assert remote_user() == "user=alice@acme.test"
    for off, on in (
        (("disable", "acme", "--sso"), ("enable", "acme", "--sso")),
        (("set-plan", "acme", "free"), ("set-plan", "acme", "plus")),
    ):
        assert cli("workspace", *off)[0] == 0
        assert cli("workspace", *on)[0] == 0
        cli("workspace", "enable", "acme", "--scim", "--sso")
        time.sleep(2.1)
        assert remote_user() == "user="
        assert sign_in(browser, site, idp, "alice@acme.test").status_code == 303
        assert remote_user() == "user=alice@acme.test"


def test_set_plan_rejects_an_unknown_plan_as_a_usage_error(cli: Cli) -> None:
    cli.create()

    assert_one_line_failure(cli("workspace", "set-plan", "acme", "gold"), "gold", code=2)


def test_set_domains_normalises_and_validates(cli: Cli) -> None:
    cli.create()

    document = cli.json("workspace", "set-domains", "acme", "Acme.example", "@acme.example.org")
    assert document["domains"] == ["acme.example", "acme.example.org"]

    result = cli("workspace", "set-domains", "acme", "acme.example", "not a domain")
    assert_one_line_failure(result, "not a domain: is not a domain name")
    result = cli("workspace", "set-domains", "acme", "acme.example", "gmail.com")
    assert_one_line_failure(result, "gmail.com", "public or disposable")
    assert cli.json("workspace", "show", "acme")["domains"] == ["acme.example", "acme.example.org"]


def test_verify_domain_shows_the_record_then_checks_the_dns(
    cli: Cli, dns_server: TxtServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBWORK_SSO_DNS_NAMESERVERS", dns_server.nameserver)
    cli.create()
    cli("workspace", "set-domains", "acme", "acme.example")
    code, out, _ = cli("workspace", "show", "acme")
    assert code == 0 and "acme.example (unverified)" in out
    (claim,) = cli.json("workspace", "show", "acme")["domain_claims"]
    assert claim["verified"] is False and claim["txt_record_name"] == "_webwork-sso.acme.example"
    assert claim["txt_record_value"] in out and "verify-domain acme acme.example" in out

    # Not published yet: one line that names the record to publish, and a non-zero exit.
    result = cli("workspace", "verify-domain", "acme", "acme.example")
    assert_one_line_failure(result, claim["txt_record_name"], claim["txt_record_value"])
    assert dns_server.queries == ["_webwork-sso.acme.example"]

    dns_server.publish(claim["txt_record_name"], claim["txt_record_value"])
    document = cli.json("workspace", "verify-domain", "acme", "acme.example")
    assert document["verified_domains"] == ["acme.example"]
    assert document["domain_claims"][0]["verified_by"] == "dns"


def test_verify_domain_by_operator_asks_no_dns_and_is_held_by_one_workspace(
    cli: Cli, dns_server: TxtServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBWORK_SSO_DNS_NAMESERVERS", dns_server.nameserver)
    cli.create()
    cli.create("globex")
    code, out, _ = cli("workspace", "verify-domain", "acme", "acme.example", "--by-operator")
    assert code == 0 and "operator" in out and dns_server.queries == []
    assert_one_line_failure(
        cli("workspace", "verify-domain", "globex", "acme.example", "--by-operator"),
        "acme.example",
        "another workspace",
    )
    assert_one_line_failure(
        cli("workspace", "verify-domain", "acme", "gmail.com", "--by-operator"),
        "public or disposable",
    )
    assert cli.json("workspace", "show", "globex")["verified_domains"] == []


# -- set-idp -----------------------------------------------------------------------------------


def metadata_server(serve: Any, body: bytes, status: str = "200 OK") -> str:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [("Content-Type", "application/samlmetadata+xml")])
        return [body]

    return f"{serve(app).url}/app/exk1fxyz2AbCdEfGh0h8/sso/saml/metadata"


def test_set_idp_from_a_file_prints_what_to_check(cli: Cli, tmp_path: Path) -> None:
    old, new = certificate("old"), certificate("new")
    path = tmp_path / "okta.xml"
    path.write_text(okta_metadata(old, new), encoding="utf-8")
    cli.create()

    code, out, err = cli("workspace", "set-idp", "acme", "--metadata-file", str(path))

    assert (code, err) == (0, "")
    assert OKTA_ENTITY_ID in out and OKTA_SSO_POST in out
    assert fingerprint(old) in out and fingerprint(new) in out
    assert f"expires {old.not_valid_after_utc:%Y-%m-%d}" in out
    document = cli.json("workspace", "show", "acme")
    assert INTERFACE_KEYS <= set(document)
    idp = document["idp"]
    assert idp["entity_id"] == OKTA_ENTITY_ID and idp["metadata_url"] is None
    assert [c["sha256_fingerprint"] for c in idp["certificates"]] == [
        fingerprint(old), fingerprint(new),
    ]  # fmt: skip
    code, out, _ = cli("workspace", "show", "acme")
    assert code == 0 and fingerprint(new) in out


def test_set_idp_from_a_metadata_url_served_over_http(
    cli: Cli, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = metadata_server(serve, okta_metadata().encode())
    cli.create()
    # The test IdP is on 127.0.0.1: allowed as the site allows it, from the environment.
    monkeypatch.setenv("WEBWORK_SSO_METADATA_ALLOWED_HOSTS", "idp.example, 127.0.0.1")

    document = cli.json("workspace", "set-idp", "acme", "--metadata-url", url)

    assert document["slug"] == "acme" and INTERFACE_KEYS <= set(document)
    idp = document["idp"]
    assert idp["metadata_url"] == url and idp["entity_id"] == OKTA_ENTITY_ID
    assert idp["refresh_after"] is not None and idp["last_refresh_error"] is None


def test_set_idp_allows_a_host_by_its_flag(cli: Cli, serve: Any) -> None:
    url = metadata_server(serve, okta_metadata().encode())
    cli.create()

    refused = cli("workspace", "set-idp", "acme", "--metadata-url", url)
    assert_one_line_failure(refused, MetadataUnavailable.REASON)
    assert cli.json("workspace", "show", "acme")["idp"] is None

    document = cli.json(
        "workspace",
        "set-idp",
        "acme",
        "--metadata-url",
        url,
        "--metadata-allowed-host",
        "127.0.0.1",
    )
    assert document["idp"]["metadata_url"] == url


def test_set_idp_gives_one_answer_for_every_internal_url_and_echoes_nothing(
    cli: Cli, serve: Any
) -> None:
    """The CLI is how an operator sets an IdP an owner asked for: no port scan through it."""
    cli.create()
    secret = "internal-secret-0b7d"
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    allowed = ("--metadata-allowed-host", "127.0.0.1")
    attempts = {
        "loopback": (metadata_server(serve, okta_metadata().encode()), ()),
        "ipv6 loopback": (f"http://[::1]:{closed_port}/metadata", ()),
        "localhost": (f"http://localhost:{closed_port}/metadata", allowed),
        "connection refused": (f"http://127.0.0.1:{closed_port}/metadata", allowed),
        "404": (metadata_server(serve, secret.encode(), "404 Not Found"), allowed),
        "not XML": (metadata_server(serve, secret.encode()), allowed),
        "another root": (metadata_server(serve, f"<{secret}/>".encode()), allowed),
    }
    errors = set()
    for url, options in attempts.values():
        code, out, err = cli("workspace", "set-idp", "acme", "--metadata-url", url, *options)
        assert_one_line_failure((code, out, err), MetadataUnavailable.REASON)
        assert secret not in err
        errors.add(err.replace(url, "URL"))
    assert len(errors) == 1, errors
    assert cli.json("workspace", "show", "acme")["idp"] is None


def test_a_bad_allowed_host_is_a_usage_error(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBWORK_SSO_METADATA_ALLOWED_HOSTS", "http://idp.internal:8080/")
    assert_one_line_failure(cli("workspace", "show", "acme"), "metadata_allowed_hosts", code=2)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WEBWORK_SSO_AUTO_MIGRATE", "maybe"),
        ("WEBWORK_SSO_DNS_NAMESERVERS", "127.0.0.1:dns"),
        ("WEBWORK_SSO_METADATA_FETCH_TIMEOUT", "600"),
    ],
)
def test_the_sites_variables_are_read_as_the_middleware_reads_them(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # The middleware would refuse to start with these; the CLI no longer skips over them.
    monkeypatch.setenv(variable, value)
    option = variable.removeprefix("WEBWORK_SSO_").lower()
    assert_one_line_failure(cli("workspace", "show", "acme"), option, code=2)


def test_set_idp_refuses_control_characters_in_an_endpoint_url(cli: Cli, tmp_path: Path) -> None:
    cli.create()
    path = tmp_path / "okta.xml"
    path.write_text(
        entity_descriptor(services=sso_services(post=OKTA_SSO_POST + "&#13;&#10;x", redirect=None))
    )

    result = cli("workspace", "set-idp", "acme", "--metadata-file", str(path))

    assert_one_line_failure(result, "SingleSignOnService Location", "printable ASCII")
    assert cli.json("workspace", "show", "acme")["idp"] is None


def test_show_says_when_no_idp_is_set(cli: Cli) -> None:
    cli.create()

    assert cli.json("workspace", "show", "acme")["idp"] is None
    code, out, _ = cli("workspace", "show", "acme")
    assert code == 0 and "workspace set-idp acme" in out


def test_set_idp_failures_are_one_line_and_change_nothing(
    cli: Cli, tmp_path: Path, serve: Any
) -> None:
    cli.create()
    good = tmp_path / "okta.xml"
    good.write_text(okta_metadata(), encoding="utf-8")
    cli.json("workspace", "set-idp", "acme", "--metadata-file", str(good))
    before = cli.json("workspace", "show", "acme")["idp"]
    not_metadata = tmp_path / "page.html"
    not_metadata.write_text("<html><body>Sign in</body></html>")
    no_certificate = tmp_path / "no-cert.xml"
    no_certificate.write_text(entity_descriptor(keys=""))
    gone = metadata_server(serve, b"gone", "404 Not Found")

    def set_idp(*option: str) -> tuple[int, str, str]:
        return cli("workspace", "set-idp", "acme", *option)

    assert_one_line_failure(set_idp("--metadata-file", str(not_metadata)), "page.html", "<html>")
    assert_one_line_failure(set_idp("--metadata-file", str(no_certificate)), "signing certificate")
    assert_one_line_failure(set_idp("--metadata-file", str(tmp_path / "missing.xml")),
                            "cannot read", "missing.xml")  # fmt: skip
    assert_one_line_failure(
        set_idp("--metadata-url", gone, "--metadata-allowed-host", "127.0.0.1"),
        MetadataUnavailable.REASON,
    )
    assert_one_line_failure(set_idp("--metadata-url", "http://example.com/metadata"), "plain http")
    assert cli.json("workspace", "show", "acme")["idp"] == before


def test_set_idp_needs_exactly_one_source_and_a_known_workspace(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "okta.xml"
    path.write_text(okta_metadata())

    assert_one_line_failure(cli("workspace", "set-idp", "acme"), "--metadata-url", code=2)
    assert_one_line_failure(
        cli("workspace", "set-idp", "acme", "--idp-initiated", "maybe"), "invalid choice", code=2
    )
    both = ("--metadata-file", str(path), "--metadata-url", "https://idp.example/metadata")
    assert_one_line_failure(cli("workspace", "set-idp", "acme", *both), "not allowed", code=2)
    missing = cli("workspace", "set-idp", "nope", "--metadata-file", str(path))
    assert_one_line_failure(missing, "no workspace 'nope'")


def test_idp_initiated_sign_in_is_switched_from_the_cli(
    cli: Cli, tmp_path: Path, serve: Any
) -> None:
    idp = TestIdP.start(serve, tmp_path / "idp")
    cli.create()
    cli("workspace", "enable", "acme", "--sso")
    cli("workspace", "verify-domain", "acme", "acme.test", "--by-operator")
    assert_one_line_failure(
        cli("workspace", "set-idp", "acme", "--idp-initiated", "off"), "no IdP yet"
    )
    metadata = tmp_path / "idp.xml"
    metadata.write_text(idp.metadata_xml(), encoding="utf-8")
    document = cli.json("workspace", "set-idp", "acme", "--metadata-file", str(metadata))
    assert document["idp_initiated"] is True  # the default: Okta's tiles need it
    middleware = SSOMiddleware(
        host_app, database_url=cli.database_url, secret_key=SECRET, base_url=BASE_URL
    )
    live = serve(middleware)

    def unsolicited_sign_in() -> requests.Response:
        saml_response = idp.response(
            sp_entity_id=f"{BASE_URL}/saml/acme/metadata", acs_url=f"{BASE_URL}/saml/acme/acs",
            email="alice@acme.test",
        )  # fmt: skip
        return requests.post(
            f"{live.url}/saml/acme/acs", data={"SAMLResponse": saml_response},
            allow_redirects=False,
        )  # fmt: skip

    try:
        assert unsolicited_sign_in().status_code == 303
        code, out, err = cli("workspace", "set-idp", "acme", "--idp-initiated", "off")
        assert (code, err) == (0, "")
        assert "IdP-initiated sign-in is off for 'acme'." in out
        refused = unsolicited_sign_in()
        assert refused.status_code == 400 and "unsolicited_not_allowed" in refused.text
        assert "Set-Cookie" not in refused.headers
        shown = cli.json("workspace", "show", "acme")
        assert shown["idp_initiated"] is False
        assert shown["idp"]["entity_id"] == idp.entity_id  # the metadata stayed as it was
        _, text_out, _ = cli("workspace", "show", "acme")
        assert "IdP-initiated sign-in: off" in " ".join(text_out.split())
        on = cli.json("workspace", "set-idp", "acme", "--idp-initiated", "on")
        assert on["idp_initiated"] is True
        assert unsolicited_sign_in().status_code == 303
    finally:
        middleware.close()


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("workspace", "show", "nope"),
        ("workspace", "rotate-token", "nope"),
        ("workspace", "enable", "nope", "--scim"),
        ("workspace", "disable", "nope"),
        ("workspace", "set-plan", "nope", "plus"),
        ("workspace", "set-domains", "nope", "nope.example"),
    ],
)
def test_an_unknown_workspace_is_one_error_line(cli: Cli, argv: tuple[str, ...]) -> None:
    assert_one_line_failure(cli(*argv), "no workspace 'nope'")


def test_a_duplicate_slug_is_refused(cli: Cli) -> None:
    cli.create()

    result = cli(
        "workspace", "create", "acme", "--name", "Other", "--plan", "free", "--owner", "a@b.example"
    )

    assert_one_line_failure(result, "'acme'", "already exists")
    assert len(token_rows(cli.database_url, "acme")) == 1


@pytest.mark.parametrize(
    ("slug", "owner", "fragment"),
    [("Not A Slug", "it@acme.example", "slug"), ("login", "it@acme.example", "slug"),
     ("acme", "not-an-email", "owner_email")],
)  # fmt: skip
def test_invalid_create_arguments_are_one_error_line(
    cli: Cli, slug: str, owner: str, fragment: str
) -> None:
    result = cli("workspace", "create", slug, "--name", "Acme", "--plan", "plus", "--owner", owner)

    assert_one_line_failure(result, fragment)


def test_a_command_line_that_does_not_parse_exits_2_with_one_line(cli: Cli) -> None:
    assert_one_line_failure(cli("workspace", "create", "acme"), "--name", code=2)
    assert_one_line_failure(cli("workspace", "frobnicate", "acme"), "frobnicate", code=2)
    assert_one_line_failure(cli("serve", "--port", "70000"), "70000", code=2)


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _one_line(text: str | None) -> bool:
    return bool(text and text.strip()) and text != argparse.SUPPRESS and "\n" not in str(text)


def test_every_command_and_option_has_a_one_line_help() -> None:
    missing = []
    walked = {path for path, _ in _parsers(build_parser())}
    for path, parser in _parsers(build_parser()):
        command = " ".join(("webwork-sso", *path))
        if not _one_line(parser.description):
            missing.append(f"{command}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing.extend(
                    f"{command} {choice.dest}: no help"
                    for choice in action._choices_actions
                    if not _one_line(choice.help)
                )
            elif not _one_line(action.help):
                missing.append(f"{command} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []
    # The walk reached every level: a new command cannot hide from it.
    assert {("serve",), ("dev-idp",), ("db", "upgrade"), ("events", "list")} <= walked
    assert {("workspace", "create"), ("workspace", "set-saml"), ("workspace", "map-role")} <= walked


COMMANDS = [
    (), ("serve",), ("dev-idp",), ("db", "upgrade"), ("events", "list"), ("workspace",),
    ("workspace", "show", "acme"), ("workspace", "set-idp", "acme"),
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_an_unknown_option_is_named_with_the_commands_own_help(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--bogus"]) == 2

    captured = capsys.readouterr()
    prog = " ".join(("webwork-sso", *(word for word in command if word != "acme")))
    assert captured.out == ""
    assert captured.err == (f"{prog}: unrecognized arguments: --bogus (see '{prog} --help')\n")


def test_a_missing_command_is_named_by_the_command_that_needs_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 2
    assert capsys.readouterr().err == (
        "webwork-sso: the following arguments are required: COMMAND (see 'webwork-sso --help')\n"
    )
    assert main(["workspace"]) == 2
    assert capsys.readouterr().err == (
        "webwork-sso workspace: the following arguments are required: ACTION"
        " (see 'webwork-sso workspace --help')\n"
    )
    # A stray word after a complete command is named too, by that command.
    assert main(["db", "upgrade", "now"]) == 2
    assert "webwork-sso db upgrade: unrecognized arguments: now" in capsys.readouterr().err


def test_the_console_script_names_an_unknown_option() -> None:
    for command, prog in ((), "webwork-sso"), (("serve",), "webwork-sso serve"):
        result = run_script(*command, "--bogus")
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == f"{prog}: unrecognized arguments: --bogus (see '{prog} --help')\n"
    assert "--host HOST" in (shown := run_script("serve", "--help").stdout)
    assert "address to listen on" in shown and "DEVELOPMENT ONLY" in shown


def test_a_base_url_that_is_not_an_origin_is_a_usage_error(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--database-url", database_url, "--base-url", "ftp://x", "workspace", "show", "a"])

    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ftp://x" in err


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////nonexistent-directory/for/webwork.db",
        "postgresql+psycopg://postgres@127.0.0.1:1/x",
    ],
)
def test_an_unreachable_database_is_one_error_line(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--database-url", url, "workspace", "show", "acme"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert url in err


@pytest.mark.parametrize("command", [("workspace", "show", "acme"), ("db", "upgrade"), ("serve",)])
def test_a_database_url_that_does_not_parse_is_a_usage_error(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", "not a url", *command]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_serve_on_an_unreachable_database_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/x"

    code = main(["--database-url", url, "serve", "--port", "0", "--data-dir", str(tmp_path)])

    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and url in err


# -- global options from the environment -------------------------------------------------------


def test_options_come_from_the_environment_and_flags_win(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBWORK_SSO_DATABASE_URL", database_url)
    monkeypatch.setenv("WEBWORK_SSO_BASE_URL", "https://from-env.example/")
    argv = [
        "workspace",
        "create",
        "acme",
        "--name",
        "A",
        "--plan",
        "plus",
        "--owner",
        "a@b.example",
    ]

    assert main([*argv, "--json"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["acs_url"] == "https://from-env.example/saml/acme/acs"
    )

    assert (
        main(["--base-url", "http://flag.example:8080", "workspace", "show", "acme", "--json"]) == 0
    )
    assert (
        json.loads(capsys.readouterr().out)["scim_base_url"] == "http://flag.example:8080/scim/v2"
    )


def test_the_default_base_url_is_the_local_development_server(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--database-url", database_url, "workspace", "create", "acme", "--name", "A"]
    assert main([*argv, "--plan", "plus", "--owner", "a@b.example", "--json"]) == 0

    assert json.loads(capsys.readouterr().out)["scim_base_url"] == "http://127.0.0.1:8000/scim/v2"


# -- db upgrade --------------------------------------------------------------------------------


def test_db_upgrade_creates_the_tables_in_an_empty_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    url = f"sqlite:///{path}"

    assert main(["--database-url", url, "db", "upgrade"]) == 0
    first = capsys.readouterr().out
    assert main(["--database-url", url, "db", "upgrade"]) == 0
    second = capsys.readouterr().out

    engine = create_engine(url)
    with engine.connect() as connection:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        tables = {row[0] for row in connection.execute(text("SELECT name FROM sqlite_master"))}
    engine.dispose()
    assert {"workspaces", "scim_tokens", "members", "groups", "memberships"} <= tables
    assert revision in first and "Upgraded" in first
    assert revision in second and "up to date" in second


def test_db_upgrade_on_the_test_database_is_idempotent(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", database_url, "db", "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out


# -- the installed console script --------------------------------------------------------------


def console_script() -> list[str]:
    installed = Path(sys.executable).with_name("webwork-sso")
    if installed.exists():
        return [str(installed)]
    return [sys.executable, "-m", "webwork_sso_middleware.cli"]


def clean_environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WEBWORK_SSO_")}
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def run_script(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*console_script(), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPOSITORY,
        env=clean_environment(),
    )


def run_script_into_a_closed_pipe(*argv: str) -> subprocess.CompletedProcess[str]:
    """``run_script``, its output into a pipe nobody reads: the first write fails with EPIPE,
    as under ``| head -1`` once head is gone."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [*console_script(), *argv],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=REPOSITORY,
            env=clean_environment(),
        )
    finally:
        os.close(writer)


def test_the_console_script_creates_and_refuses(database_url: str) -> None:
    created = run_script(
        "--database-url", database_url, "workspace", "create", "acme", "--name", "Acme",
        "--plan", "free", "--owner", "it@acme.example", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)["scim_token"]
    assert token_rows(database_url, "acme") == [(hash_token(token), None)]

    refused = run_script("--database-url", database_url, "workspace", "enable", "acme")
    assert refused.returncode == 1
    assert refused.stdout == ""
    (line,) = refused.stderr.splitlines()
    assert line.startswith("webwork-sso: workspace 'acme' is on the free plan")
    assert "Plus or Premium plan" in line


def test_the_readme_quotes_the_free_plan_message_word_for_word(database_url: str) -> None:
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^\$ webwork-sso workspace enable acme\n(webwork-sso: .*)$", readme, re.M)
    assert match is not None, "the README's example of a failing command is gone"
    created = run_script(
        "--database-url", database_url, "workspace", "create", "acme", "--name", "Acme",
        "--plan", "free", "--owner", "it@acme.example",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr

    refused = run_script("--database-url", database_url, "workspace", "enable", "acme")

    assert refused.returncode == 1
    assert refused.stderr == match.group(1) + "\n"


class ServeProcess:
    """``webwork-sso serve --port 0`` in a child process, its output read as it comes."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [*console_script(), "--database-url", database_url, "serve", "--port", "0",
             "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPOSITORY,
            env=clean_environment(),
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def banner(self, timeout: float = 30) -> str:
        """Everything printed up to "Press Ctrl+C to stop."."""
        printed: list[str] = []
        deadline = time.monotonic() + timeout
        while not printed or "Press Ctrl+C" not in printed[-1]:
            try:
                printed.append(self.lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"serve printed no banner in {timeout}s: {''.join(printed)!r}")
        return "".join(printed)

    def until(self, done: str, timeout: float = 30) -> str:
        """Everything printed from now until a line containing ``done``."""
        printed: list[str] = []
        deadline = time.monotonic() + timeout
        while not printed or done not in printed[-1]:
            try:
                printed.append(self.lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"serve printed no {done!r} in {timeout}s: {''.join(printed)!r}")
        return "".join(printed)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _value_after(label: str, banner: str) -> str:
    line = next(line for line in banner.splitlines() if line.strip().startswith(label))
    return line.split(label, 1)[1].strip()


def test_serve_creates_a_demo_workspace_whose_token_works(
    database_url: str, tmp_path: Path
) -> None:
    server = ServeProcess(database_url, tmp_path)
    try:
        banner = server.banner()
        scim_base_url = _value_after("SCIM base URL:", banner)
        token = _value_after("SCIM token:", banner)
        site = _value_after("Time tracker:", banner)

        users = requests.get(
            f"{scim_base_url}/Users", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert users.status_code == 200, users.text
        assert users.json()["totalResults"] == 0
        home = requests.get(site, timeout=10)
        assert home.status_code == 200 and 'href="/saml/login"' in home.text

        # The dev IdP runs beside it, and the demo workspace signs in through it.
        idp_metadata_url = _value_after("Dev IdP:", banner)
        idp_metadata = requests.get(idp_metadata_url, timeout=10)
        assert idp_metadata.status_code == 200
        assert etree.fromstring(idp_metadata.content).get("entityID") == idp_metadata_url
        signed_in = browser.sign_in(
            requests.Session(), site.rstrip("/"), "owner@example.com", "owner@example.com"
        )
        assert signed_in.url == site and "owner@example.com" in signed_in.text
        assert 'action="/saml/logout"' in signed_in.text
    finally:
        server.stop()

    secret_file = tmp_path / "webwork_sso.secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text()
    assert (tmp_path / "timetracker.db").exists()

    again = ServeProcess(database_url, tmp_path)
    try:
        banner = again.banner()
        site = _value_after("Time tracker:", banner)
        # The kept key signs for the new port: the re-wired workspace accepts it.
        signed_in = browser.sign_in(
            requests.Session(), site.rstrip("/"), "alice.smith@example.com", "bob.jones@example.com"
        )
        assert signed_in.url == site and "bob.jones@example.com" in signed_in.text
    finally:
        again.stop()
    assert "wwsso_" not in banner
    assert "workspace rotate-token demo" in banner
    assert secret_file.read_text() == secret
    assert "Dev IdP:" in banner  # the existing demo workspace is wired again, on the new port
    assert (tmp_path / "dev_idp.pem").exists()


def test_serve_says_sso_is_on_and_logs_requests_redacted_escaped_and_uncoloured(
    database_url: str, tmp_path: Path
) -> None:
    """The log goes to a pipe here, as to a file: no colour codes, no SAML message or token,
    and a request's control characters escaped."""
    server = ServeProcess(database_url, tmp_path)
    try:
        banner = server.banner()
        assert _value_after("SSO:", banner).startswith(
            "on for the 'demo' workspace, signing in through the dev IdP (http://127.0.0.1:"
        )
        assert "(Plus plan, SCIM and SSO on," in banner
        site = _value_after("Time tracker:", banner).rstrip("/")
        link = next(line.strip() for line in banner.splitlines() if "?link=" in line)
        port = int(site.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(
                b"GET /x\x1b[31mred\x07?SAMLRequest=SECRET-REQUEST&RelayState=SECRET-STATE"
                b"&page=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert raw.recv(12) == b"HTTP/1.1 404"
        assert requests.get(link, timeout=10).status_code == 200
        signed_in = browser.sign_in(
            requests.Session(), site, "owner@example.com", "owner@example.com"
        )
        assert signed_in.status_code == 200 and "owner@example.com" in signed_in.text
        log = server.until("POST /saml/demo/acs")
    finally:
        server.stop()

    assert "\x1b" not in log and "\x07" not in log
    assert "SECRET-" not in log and link.split("link=")[1] not in log
    assert '"GET /x\\x1b[31mred\\x07?SAMLRequest=…&RelayState=…&page=2 HTTP/1.1" 404' in log
    assert '"GET /saml/demo/settings?link=… HTTP/1.1" 200' in log
    # The sign-in's real AuthnRequest, as the dev IdP beside serve logged it.
    # (login_hint: the address typed on /saml/login, which the dev IdP pre-selects.)
    assert re.search(
        r'"GET /idp/sso\?SAMLRequest=…&RelayState=…(&login_hint=owner@example\.com)? HTTP/1.1" 200',
        log,
    ), log
    assert set(re.findall(r"(?:SAMLRequest|RelayState|SAMLResponse)=([^&\s\"]*)", log)) == {"…"}


def test_serve_explains_a_busy_port(database_url: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_script(
            "--database-url",
            database_url,
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"webwork-sso: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_serve_finds_the_example_in_this_checkout() -> None:
    from webwork_sso_middleware.devserver import find_timetracker_source

    assert find_timetracker_source() == REPOSITORY / "examples" / "timetracker" / "app.py"


def test_output_into_a_closed_pipe_ends_quietly(database_url: str) -> None:
    """`webwork-sso ... | head -1`: once the reader is gone, no traceback, SIGPIPE's status."""
    created = run_script(
        "--database-url", database_url, "workspace", "create", "acme", "--name", "Acme",
        "--plan", "plus", "--owner", "it@acme.example",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    shown = run_script_into_a_closed_pipe(
        "--database-url", database_url, "workspace", "show", "acme"
    )
    assert shown.returncode == 141
    assert shown.stderr == ""
