"""``webwork-sso workspace rotate-sp-key`` and ``set-saml`` (cli/sp_keys.py), through main(argv)
against a real database, with the site's SP metadata read back over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from ..saml.conftest import Site
from ..test_cli import Cli, assert_one_line_failure
from ..test_cli import _no_webwork_environment as _no_webwork_environment
from ..test_cli import cli as cli

SITE_SECRET = "s3cret-padded-to-thirty-two-bytes-at-least"  # tests/saml/conftest.py's Site


@pytest.fixture
def acme(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Workspace ``acme``; the CLI has the site's secret key, as an operator's shell would."""
    monkeypatch.setenv("WEBWORK_SSO_SECRET_KEY", SITE_SECRET)
    cli.create("acme")
    return cli


def key_rows(database_url: str) -> list[tuple[str, str]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [
                (row[0], row[1])
                for row in connection.execute(
                    text("SELECT state, certificate_pem FROM sp_keys ORDER BY id")
                )
            ]
    finally:
        engine.dispose()


def audit_rows(database_url: str) -> list[tuple[str, str]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [
                (row[0], row[1])
                for row in connection.execute(
                    text(
                        "SELECT actor, action FROM audit_events WHERE action LIKE 'sp_key%'"
                        " OR action = 'saml_settings_changed' ORDER BY id"
                    )
                )
            ]
    finally:
        engine.dispose()


def base64_of(pem: str) -> str:
    return "".join(pem.strip().splitlines()[1:-1])


def published(site: Site, slug: str = "acme") -> list[str]:
    """The certificates the site's SP metadata lists, once per certificate."""
    metadata = requests.get(f"{site.url}/saml/{slug}/metadata")
    assert metadata.status_code == 200, metadata.text
    found = re.findall(r"<ds:X509Certificate>([^<]+)</ds:X509Certificate>", metadata.text)
    return list(dict.fromkeys(value.strip() for value in found))


def states(document: dict[str, Any]) -> list[str]:
    return [key["state"] for key in document["keys"]]


def test_a_rotation_from_the_command_line_reaches_the_sites_metadata(
    acme: Cli, serve: Callable[[Any], Any], database_url: str
) -> None:
    site = Site(serve, database_url)
    try:
        first = published(site)  # the site made the first key on the metadata request
        assert len(first) == 1

        shown = acme.json("workspace", "rotate-sp-key", "acme")
        assert states(shown) == ["current"] and shown["step"] is None
        assert base64_of(shown["keys"][0]["certificate_pem"]) == first[0]
        assert "--stage" in shown["next_step"]

        staged = acme.json("workspace", "rotate-sp-key", "acme", "--stage")
        assert staged["step"] == "stage" and states(staged) == ["next", "current"]
        next_certificate = base64_of(staged["keys"][0]["certificate_pem"])
        assert published(site) == [first[0], next_certificate]  # published before it is used
        assert "--activate" in staged["next_step"]

        activated = acme.json("workspace", "rotate-sp-key", "acme", "--activate")
        assert states(activated) == ["current", "previous"]
        assert base64_of(activated["keys"][0]["certificate_pem"]) == next_certificate
        assert activated["keys"][0]["activated_at"] is not None
        assert published(site) == [next_certificate]
        assert "--retire" in activated["next_step"]

        retired = acme.json("workspace", "rotate-sp-key", "acme", "--retire")
        assert states(retired) == ["current"]
        assert [state for state, _ in key_rows(database_url)] == ["current"]
        assert published(site) == [next_certificate]
        assert audit_rows(database_url) == [
            ("cli", "sp_key_staged"),
            ("cli", "sp_key_activated"),
            ("cli", "sp_key_retired"),
        ]
    finally:
        site.middleware.close()


def test_the_text_output_shows_the_keys_and_says_what_to_do_next(
    acme: Cli, database_url: str
) -> None:
    code, out, err = acme("workspace", "rotate-sp-key", "acme", "--stage")
    assert (code, err) == (0, "")
    assert (
        "the SP metadata now publishes the next key; let the IdP read it (or paste the new "
        "certificate), then run --activate" in out
    )
    fingerprints = re.findall(r"SHA-256:\s+((?:[0-9A-F]{2}:){31}[0-9A-F]{2})", out)
    assert len(set(fingerprints)) == 2
    for label in ("next:", "current:", "Created:", "Activated:", "Certificate not after:"):
        assert label in out
    assert "webwork-sso workspace rotate-sp-key acme --activate" in out
    assert "PRIVATE KEY" not in out and "BEGIN CERTIFICATE" not in out

    code, out, _ = acme("workspace", "rotate-sp-key", "acme", "--activate")
    assert code == 0 and "still decrypts" in out and "previous:" in out
    assert "webwork-sso workspace rotate-sp-key acme --retire" in out
    code, out, _ = acme("workspace", "rotate-sp-key", "acme", "--retire")
    assert code == 0 and "private key is deleted" in out and "previous:" not in out


def test_showing_the_keys_makes_none(acme: Cli, database_url: str) -> None:
    code, out, err = acme("workspace", "rotate-sp-key", "acme")
    assert (code, err) == (0, "")
    assert "No SP key yet" in out and "(none yet)" in out
    assert key_rows(database_url) == []


def test_steps_out_of_order_are_one_line_and_change_nothing(acme: Cli, database_url: str) -> None:
    acme.json("workspace", "rotate-sp-key", "acme", "--stage")
    before = key_rows(database_url)
    assert_one_line_failure(
        acme("workspace", "rotate-sp-key", "acme", "--stage"), "already", "--activate"
    )
    assert_one_line_failure(
        acme("workspace", "rotate-sp-key", "acme", "--retire"), "no previous key"
    )
    assert key_rows(database_url) == before
    acme.json("workspace", "rotate-sp-key", "acme", "--activate")
    assert_one_line_failure(
        acme("workspace", "rotate-sp-key", "acme", "--activate"), "no next key", "--stage"
    )
    assert_one_line_failure(
        acme("workspace", "rotate-sp-key", "nope", "--stage"), "no workspace 'nope'"
    )
    assert_one_line_failure(
        acme("workspace", "rotate-sp-key", "acme", "--stage", "--retire"), "not allowed", code=2
    )


def test_a_secret_the_site_does_not_have_changes_nothing(
    acme: Cli, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    acme.json("workspace", "rotate-sp-key", "acme", "--stage")
    acme.json("workspace", "rotate-sp-key", "acme", "--activate")
    before = key_rows(database_url)  # current and previous: every step is possible
    monkeypatch.setenv("WEBWORK_SSO_SECRET_KEY", "not-the-sites-secret-padded-to-32-bytes")
    for step in ((), ("--stage",), ("--retire",)):
        assert_one_line_failure(
            acme("workspace", "rotate-sp-key", "acme", *step), "cannot be opened", "unknown_secret"
        )
    assert key_rows(database_url) == before
    # No secret at all: said so, before the database is touched.
    monkeypatch.delenv("WEBWORK_SSO_SECRET_KEY")
    assert_one_line_failure(
        acme("workspace", "rotate-sp-key", "acme", "--data-dir", str(tmp_path)),
        "no secret key",
        "WEBWORK_SSO_SECRET_KEY",
    )


def test_the_json_never_carries_a_private_key(acme: Cli) -> None:
    acme.json("workspace", "rotate-sp-key", "acme", "--stage")
    code, out, _ = acme("workspace", "rotate-sp-key", "acme", "--activate", "--json")
    assert code == 0 and "PRIVATE KEY" not in out and "private" not in out.lower()


def test_set_saml_keeps_the_owners_choices(acme: Cli, database_url: str) -> None:
    document = acme.json("workspace", "set-saml", "acme", "--sign-authn-requests")
    assert (document["sign_authn_requests"], document["require_encrypted_assertions"]) == (
        True,
        False,
    )
    code, out, err = acme("workspace", "set-saml", "acme", "--require-encryption")
    assert (code, err) == (0, "")
    assert "Sign AuthnRequests:   always" in out and "Encrypted assertions: required" in out
    assert "not encrypted are now refused" in out
    document = acme.json(
        "workspace", "set-saml", "acme", "--no-sign-authn-requests", "--no-require-encryption"
    )
    assert (document["sign_authn_requests"], document["require_encrypted_assertions"]) == (
        False,
        False,
    )
    assert audit_rows(database_url) == [("cli", "saml_settings_changed")] * 3
    shown = acme.json("workspace", "rotate-sp-key", "acme")
    assert shown["sign_authn_requests"] is False


def test_set_saml_refusals_are_one_line(acme: Cli, database_url: str) -> None:
    assert_one_line_failure(acme("workspace", "set-saml", "acme"), "give --sign-authn", code=2)
    assert_one_line_failure(
        acme("workspace", "set-saml", "acme", "--sign-authn-requests", "--no-sign-authn-requests"),
        "not allowed",
        code=2,
    )
    assert_one_line_failure(
        acme("workspace", "set-saml", "nope", "--require-encryption"), "no workspace 'nope'"
    )
    assert audit_rows(database_url) == []
