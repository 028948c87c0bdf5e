"""Settings links, the owner-settings session cookie and CSRF tokens; the Python API and the CLI
that make links."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import delete, select

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.admin.links import (
    COOKIE_NAME,
    CsrfTokens,
    LinkRefused,
    SettingsSession,
    SettingsSessions,
    hash_settings_session_id,
    read_settings_link,
    settings_link,
)
from webwork_sso_middleware.cli import main
from webwork_sso_middleware.errors import ConfigurationError, NotFound
from webwork_sso_middleware.signing import Purpose, Signing
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import SettingsSession as SettingsSessionRow
from webwork_sso_middleware.store.workspaces import Workspaces

from ..saml.conftest import Site
from ..store_helpers import transaction
from .conftest import press_open_button

KEYS = (
    "older-key-padded-to-thirty-two-bytes-at-least",
    "newest-key-padded-to-thirty-two-bytes-at-least",
)


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["link"][0]


def test_link_is_the_settings_url_with_a_token():
    url = settings_link("acme", base_url="https://tracker.example.com/", signing=Signing(KEYS))
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "tracker.example.com",
        "/saml/acme/settings",
    )
    link = read_settings_link(token_of(url), slug="acme", signing=Signing(KEYS))
    assert link.slug == "acme"
    assert 14 * 60 < link.expires_at - time.time() <= 15 * 60
    # Two links are two nonces: each is redeemed on its own.
    again = read_settings_link(
        token_of(settings_link("acme", base_url="", signing=Signing(KEYS))),
        slug="acme",
        signing=Signing(KEYS),
    )
    assert again.nonce != link.nonce


def test_relative_link_without_a_base_url():
    assert settings_link("acme", base_url="", signing=Signing(KEYS)).startswith(
        "/saml/acme/settings?link="
    )


@pytest.mark.parametrize("lifetime", [dt.timedelta(0), dt.timedelta(minutes=15, seconds=1)])
def test_lifetime_is_at_most_fifteen_minutes(lifetime: dt.timedelta):
    with pytest.raises(ConfigurationError):
        settings_link("acme", base_url="", signing=Signing(KEYS), lifetime=lifetime)


def test_link_expires():
    now = time.time()
    token = token_of(
        settings_link(
            "acme", base_url="", signing=Signing(KEYS), lifetime=dt.timedelta(minutes=2), now=now
        )
    )
    assert read_settings_link(token, slug="acme", signing=Signing(KEYS), now=now + 119)
    with pytest.raises(LinkRefused) as refused:
        read_settings_link(token, slug="acme", signing=Signing(KEYS), now=now + 120)
    assert refused.value.code == "expired" and "expired" in refused.value.reason


def test_tampered_link_and_foreign_keys_are_refused():
    token = token_of(settings_link("acme", base_url="", signing=Signing(KEYS)))
    payload, timestamp, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for bad in (f"{payload}.{timestamp}.{flipped}", token[:-5], "", "x" * 5000, "a.b.c"):
        with pytest.raises(LinkRefused) as refused:
            read_settings_link(bad, slug="acme", signing=Signing(KEYS))
        assert refused.value.code == "invalid"
    with pytest.raises(LinkRefused):
        read_settings_link(token, slug="acme", signing=Signing(("another-site",)))


def test_link_for_another_workspace_is_refused():
    token = token_of(settings_link("globex", base_url="", signing=Signing(KEYS)))
    with pytest.raises(LinkRefused) as refused:
        read_settings_link(token, slug="acme", signing=Signing(KEYS))
    assert refused.value.code == "other_workspace"


def test_newest_key_signs_and_every_key_verifies():
    token = token_of(settings_link("acme", base_url="", signing=Signing(("old",))))
    assert read_settings_link(token, slug="acme", signing=Signing(("old", "new")))  # rotation
    newer = token_of(settings_link("acme", base_url="", signing=Signing(("old", "new"))))
    assert read_settings_link(newer, slug="acme", signing=Signing(("new",)))
    with pytest.raises(LinkRefused):
        read_settings_link(newer, slug="acme", signing=Signing(("old",)))


def test_link_signed_in_the_future_or_claiming_a_long_life_is_refused():
    import hashlib

    from itsdangerous import URLSafeTimedSerializer

    signer = URLSafeTimedSerializer(
        list(KEYS), salt=Purpose.SETTINGS_LINK.salt, signer_kwargs={"digest_method": hashlib.sha256}
    )
    long_life = signer.dumps(
        {"w": "acme", "p": "settings", "n": "x", "e": int(time.time()) + 86400}
    )
    with pytest.raises(LinkRefused):
        read_settings_link(long_life, slug="acme", signing=Signing(KEYS))
    token = token_of(settings_link("acme", base_url="", signing=Signing(KEYS)))
    with pytest.raises(LinkRefused):  # our clock says it was signed an hour from now
        read_settings_link(token, slug="acme", signing=Signing(KEYS), now=time.time() - 3600)
    # A little skew between the CLI's host and the site's is fine.
    assert read_settings_link(token, slug="acme", signing=Signing(KEYS), now=time.time() - 30)


@pytest.fixture
def acme_id(database: Database) -> int:
    return (
        Workspaces(database)
        .create("acme", name="Acme", plan="plus", owner_email="owner@acme.test")[0]
        .id
    )


def start(
    sessions: SettingsSessions, slug: str, workspace_id: int, **options: str
) -> tuple[str, SettingsSession]:
    """Start a settings session in a transaction of its own (the page starts it in the one
    that redeems the link)."""
    return sessions.database.run(lambda unit: sessions.start(unit, slug, workspace_id, **options))


def test_tokens_of_other_purposes_are_not_links(database: Database, acme_id: int):
    sessions = SettingsSessions(database, signing=Signing(KEYS), secure=False)
    cookie, _ = start(sessions, "acme", acme_id)
    session_token = cookie.split(";")[0].split("=", 1)[1]
    with pytest.raises(LinkRefused):
        read_settings_link(session_token, slug="acme", signing=Signing(KEYS))
    link_token = token_of(settings_link("acme", base_url="", signing=Signing(KEYS)))
    assert sessions.read({"HTTP_COOKIE": f"{COOKIE_NAME}={link_token}"}, "acme") is None
    assert Purpose.SETTINGS_SESSION.salt != Purpose.SETTINGS_LINK.salt


# -- the owner-settings session --------------------------------------------------------------------


def test_settings_session_cookie_attributes_and_lifetime(database: Database, acme_id: int):
    clock = [time.time()]
    sessions = SettingsSessions(
        database, signing=Signing(KEYS), secure=True, clock=lambda: clock[0]
    )
    cookie, started = start(sessions, "acme", acme_id, script_root="/tracker")
    attributes = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in attributes and "Secure" in attributes and "SameSite=Lax" in attributes
    assert "Path=/tracker/saml/acme/settings" in attributes and "Max-Age=1800" in attributes
    environ = {"HTTP_COOKIE": cookie.split(";")[0]}
    clock[0] += 1799
    read = sessions.read(environ, "acme")
    assert read is not None and (read.workspace_id, read.session_id) == (
        acme_id,
        started.session_id,
    )
    assert sessions.read(environ, "globex") is None
    clock[0] += 1
    assert sessions.read(environ, "acme") is None
    http_only = start(
        SettingsSessions(database, signing=Signing(KEYS), secure=False), "acme", acme_id
    )[0]
    assert "Secure" not in http_only


def test_settings_session_lives_in_the_database_keyed_by_a_hash(database: Database, acme_id: int):
    sessions = SettingsSessions(database, signing=Signing(KEYS), secure=False)
    cookie, started = start(sessions, "acme", acme_id)
    with transaction(database) as unit:
        rows = unit.session.scalars(select(SettingsSessionRow)).all()
        assert [(row.id_hash, row.workspace_id, row.ended_at) for row in rows] == [
            (hash_settings_session_id(started.session_id), acme_id, None)
        ]
        assert started.session_id not in rows[0].id_hash
    # A cookie whose row is gone (or was never written) opens nothing, signature or not.
    with transaction(database, write=True) as unit:
        unit.session.execute(delete(SettingsSessionRow))
    assert sessions.read({"HTTP_COOKIE": cookie.split(";")[0]}, "acme") is None


def test_ending_a_settings_session_ends_every_copy_of_its_cookie(database: Database, acme_id: int):
    sessions = SettingsSessions(database, signing=Signing(KEYS), secure=False)
    environ = {"HTTP_COOKIE": start(sessions, "acme", acme_id)[0].split(";")[0]}
    other_environ = {"HTTP_COOKIE": start(sessions, "acme", acme_id)[0].split(";")[0]}
    another_worker = SettingsSessions(database, signing=Signing(KEYS), secure=False)
    assert another_worker.read(environ, "acme") is not None
    sessions.end({"HTTP_COOKIE": environ["HTTP_COOKIE"]}, "acme")
    assert sessions.read(environ, "acme") is None
    assert another_worker.read(environ, "acme") is None
    assert sessions.read(other_environ, "acme") is not None  # another session is its own
    sessions.end({}, "acme")  # no cookie: nothing to end, no error


def test_settings_session_refuses_tampering_and_other_keys(database: Database, acme_id: int):
    sessions = SettingsSessions(database, signing=Signing(KEYS), secure=False)
    value = start(sessions, "acme", acme_id)[0].split(";")[0].split("=", 1)[1]
    assert sessions.read({"HTTP_COOKIE": f"{COOKIE_NAME}={value[:-3]}abc"}, "acme") is None
    other = SettingsSessions(
        database, signing=Signing(("another-site-padded-to-thirty-two-bytes",)), secure=False
    )
    assert other.read({"HTTP_COOKIE": f"{COOKIE_NAME}={value}"}, "acme") is None


def test_csrf_token_matches_only_its_binding():
    tokens = CsrfTokens(signing=Signing(KEYS))
    mine = CsrfTokens.binding("link", "acme", "session-1")
    theirs = CsrfTokens.binding("link", "acme", "session-2")
    token = tokens.token(mine)
    assert tokens.matches(token, [theirs, mine])
    assert not tokens.matches(token, [theirs])
    assert not tokens.matches(token, [CsrfTokens.binding("link", "globex", "session-1")])
    assert not tokens.matches(None, [mine]) and not tokens.matches("garbage", [mine])
    assert not CsrfTokens(signing=Signing(("another-site",))).matches(token, [mine])


# -- the Python API and the CLI ----------------------------------------------------------------------


def test_middleware_settings_link(site: Site):
    site.workspaces.create("acme", name="Acme", plan="plus", owner_email="owner@acme.test")
    url = site.middleware.settings_link("ACME")
    assert url.startswith(f"{site.url}/saml/acme/settings?link=")
    assert requests.get(url).status_code == 200
    with pytest.raises(NotFound):
        site.middleware.settings_link("nope")


def test_cli_prints_a_link_the_site_accepts(
    site: Site,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    site.workspaces.create("acme", name="Acme", plan="plus", owner_email="owner@acme.test")
    monkeypatch.setenv(
        "WEBWORK_SSO_SECRET_KEY", "s3cret-padded-to-thirty-two-bytes-at-least"
    )  # the Site's key
    argv = ["--database-url", database_url, "--base-url", site.url]
    assert main([*argv, "workspace", "settings-link", "acme"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"{site.url}/saml/acme/settings?link=")
    response = press_open_button(requests.Session(), out.strip())
    assert response.status_code == 200 and "SCIM Base URL" in response.text
    assert main([*argv, "workspace", "settings-link", "acme", "--json"]) == 0
    import json

    document = json.loads(capsys.readouterr().out)
    assert document["slug"] == "acme" and "/saml/acme/settings?link=" in document["settings_link"]


def test_cli_reads_the_key_serve_keeps_and_fails_in_one_line_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.delenv("WEBWORK_SSO_SECRET_KEY", raising=False)
    monkeypatch.delenv("WEBWORK_SSO_DATABASE_URL", raising=False)
    monkeypatch.delenv("WEBWORK_SSO_BASE_URL", raising=False)
    database = f"sqlite:///{tmp_path / 'site.db'}"
    assert (
        main(
            [
                "--database-url",
                database,
                "workspace",
                "create",
                "acme",
                "--name",
                "Acme",
                "--plan",
                "plus",
                "--owner",
                "owner@acme.test",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["--database-url", database, "workspace", "settings-link", "acme"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "WEBWORK_SSO_SECRET_KEY" in captured.err
    (tmp_path / "webwork_sso.secret").write_text("kept-by-serve\n")
    assert main(["--database-url", database, "workspace", "settings-link", "acme"]) == 0
    token = token_of(capsys.readouterr().out.strip())
    assert read_settings_link(token, slug="acme", signing=Signing(("kept-by-serve",)))
    assert main(["--database-url", database, "workspace", "settings-link", "nope"]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_link_opens_a_middleware_with_the_same_key(
    tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    # The CLI signs with the newest of several keys; the site verifies with the same list.
    monkeypatch.setenv(
        "WEBWORK_SSO_SECRET_KEY",
        "old-key-padded-to-thirty-two-bytes-at-least,new-key-padded-to-thirty-two-bytes-at-least",
    )
    database = f"sqlite:///{tmp_path / 'site.db'}"
    dispatch: list = []
    live = serve(lambda environ, start_response: dispatch[0](environ, start_response))
    middleware = SSOMiddleware(lambda e, s: [], database_url=database, base_url=live.url)
    dispatch.append(middleware)
    try:
        middleware.workspaces.create("acme", name="Acme", plan="free", owner_email="o@acme.test")
        assert (
            main(
                [
                    "--database-url",
                    database,
                    "--base-url",
                    live.url,
                    "workspace",
                    "settings-link",
                    "acme",
                ]
            )
            == 0
        )
        url = capsys.readouterr().out.strip()
        assert read_settings_link(
            token_of(url),
            slug="acme",
            signing=Signing(("new-key-padded-to-thirty-two-bytes-at-least",)),
        )
        assert "SCIM Base URL" in press_open_button(requests.Session(), url).text
    finally:
        middleware.close()
    assert (
        os.environ["WEBWORK_SSO_SECRET_KEY"]
        == "old-key-padded-to-thirty-two-bytes-at-least,new-key-padded-to-thirty-two-bytes-at-least"
    )
