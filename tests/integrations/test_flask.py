"""The Flask adapter with real Flask: the extension reading app.config, and the plain
``app.wsgi_app = SSOMiddleware(...)`` style, each signed into through the real test IdP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import flask
import pytest
import requests
import webtest

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.errors import ConfigurationError
from webwork_sso_middleware.integrations.flask import (
    WebworkSSO,
    current_identity,
    current_member,
    metrics_response,
)

from ..saml.idp import TestIdP
from ..store_helpers import Statements
from .conftest import FrameworkSite

ALICE = "alice.smith@acme.test"
SECRET = "s3cret-padded-to-thirty-two-bytes-at-least"

Build = Callable[[str], tuple[Any, SSOMiddleware]]  # FrameworkSite's: base URL -> app, middleware
MakeSite = Callable[[Build], FrameworkSite]


def make_app() -> flask.Flask:
    app = flask.Flask(__name__)

    @app.get("/me")
    def me() -> Any:
        member = current_member()
        if member is None:
            return {"member": None, "identity": current_identity()}
        return {
            "member": {
                "user_name": member.user_name,
                "workspace": member.workspace,
                "given_name": member.given_name,
                "groups": member.groups,
                "roles": member.roles,
            },
            "identity": current_identity(),
        }

    return app


def keyword_build(database_url: str, prepare: Callable[[flask.Flask], None] | None = None) -> Build:
    """``make_app()``, then ``prepare(app)``, then ``WebworkSSO(app, ...)`` given its options as
    keywords."""

    def build(base_url: str) -> tuple[Any, SSOMiddleware]:
        app = make_app()
        if prepare is not None:
            prepare(app)
        WebworkSSO(app, database_url=database_url, base_url=base_url, secret_key=SECRET)
        return app, app.extensions["webwork_sso"]

    return build


def config_build(
    database_url: str,
    apps: list[flask.Flask] | None = None,
    sso: WebworkSSO | None = None,
    **config: Any,
) -> Build:
    """``make_app()`` with its options in app.config (the store, the secret, the base URL and
    ``config``), then ``sso.init_app(app)`` (a new ``WebworkSSO()`` by default); each app built
    appended to ``apps``."""

    def build(base_url: str) -> tuple[Any, SSOMiddleware]:
        app = make_app()
        app.config.update(
            WEBWORK_SSO_DATABASE_URL=database_url,
            WEBWORK_SSO_SECRET_KEY=SECRET,
            WEBWORK_SSO_BASE_URL=base_url,
            **config,
        )
        if apps is not None:
            apps.append(app)
        return app, (WebworkSSO() if sso is None else sso).init_app(app)

    return build


@pytest.fixture
def make_site(serve: Callable[[Any], Any]) -> Iterator[MakeSite]:
    """``make_site(build)``: the app ``build`` makes, served over HTTP, closed after the test."""
    made: list[FrameworkSite] = []

    def make(build: Build) -> FrameworkSite:
        site = FrameworkSite(serve, build)
        made.append(site)
        return site

    yield make
    for site in made:
        site.middleware.close()


def me(browser: requests.Session, site: FrameworkSite) -> Any:
    response = browser.get(f"{site.url}/me", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["member"]


def identity(browser: requests.Session, site: FrameworkSite) -> Any:
    response = browser.get(f"{site.url}/me", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["identity"]


def test_current_identity_is_workspace_scoped_outside_a_verified_domain(
    make_site: MakeSite, database_url: str, idp: TestIdP
) -> None:
    site = make_site(keyword_build(database_url))
    token = site.add_workspace("acme", idp)
    created = requests.post(
        f"{site.url}/scim/v2/Users",
        timeout=10,
        headers={"Authorization": f"Bearer {token}"},
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "kim@contractor.test",
            "active": True,
        },
    )
    assert created.status_code == 201, created.text
    browser = requests.Session()
    assert identity(browser, site) is None

    site.sign_in(browser, idp, "acme", "kim@contractor.test")

    assert identity(browser, site) == f"acme:{created.json()['id']}"
    assert me(browser, site)["user_name"] == "kim@contractor.test"  # shown, but not the key


def test_init_app_reads_app_config_and_current_member_sees_the_signed_in_member(
    make_site: MakeSite, database_url: str, idp: TestIdP
) -> None:
    sso = WebworkSSO()  # the application-factory style: one extension, init_app per app
    apps: list[flask.Flask] = []

    site = make_site(config_build(database_url, apps, sso, WEBWORK_SSO_SESSION_RECHECK_SECONDS=0))
    middleware = site.middleware  # what init_app returned
    assert apps[0].wsgi_app is middleware and apps[0].extensions["webwork_sso"] is middleware
    token = site.add_workspace("acme", idp)
    browser = requests.Session()
    assert me(browser, site) is None

    site.sign_in(browser, idp, "acme", ALICE, next_path="/me")

    assert me(browser, site) == {
        "user_name": ALICE,
        "workspace": "acme",
        "given_name": "Alice",
        "groups": [],
        "roles": [],
    }
    assert identity(browser, site) == ALICE  # acme verified acme.test: the email is the key
    site.set_active(token, site.members()[0].id, False)
    assert me(browser, site) is None


def test_current_member_carries_the_roles_the_app_config_declares(
    make_site: MakeSite, database_url: str, idp: TestIdP
) -> None:
    site = make_site(
        config_build(
            database_url, WEBWORK_SSO_ROLES=["admin", "member"], WEBWORK_SSO_DEFAULT_ROLE="member"
        )
    )
    site.add_workspace("acme", idp)
    site.middleware.workspaces.map_role("acme", "Admins", "admin", declared=None, actor="test")
    idp.users[ALICE] = {"email": [ALICE], "groups": ["admins"]}
    bob = "bob@acme.test"
    idp.users[bob] = {"email": [bob], "groups": ["Sales"]}
    alice_browser, bob_browser = requests.Session(), requests.Session()
    site.sign_in(alice_browser, idp, "acme", ALICE, next_path="/me")
    site.sign_in(bob_browser, idp, "acme", bob, next_path="/me")
    assert me(alice_browser, site)["roles"] == ["admin"]
    assert me(bob_browser, site)["roles"] == ["member"]  # the default role


def test_plain_wsgi_app_wrapping_works_with_current_member_too(
    make_site: MakeSite, database_url: str, idp: TestIdP
) -> None:
    def build(base_url: str) -> tuple[Any, SSOMiddleware]:
        app = make_app()
        app.wsgi_app = SSOMiddleware(
            app.wsgi_app,
            database_url=database_url,  # type: ignore
            secret_key=SECRET,
            base_url=base_url,
        )
        return app, app.wsgi_app

    site = make_site(build)
    site.add_workspace("acme", idp)
    browser = requests.Session()

    site.sign_in(browser, idp, "acme", ALICE)

    assert me(browser, site)["user_name"] == ALICE


def test_keyword_overrides_win_over_app_config_and_none_falls_back_to_the_environment(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "WEBWORK_SSO_SECRET_KEY", "from-the-environment-padded-to-thirty-two-bytes-at-least"
    )
    app = make_app()
    app.config.update(
        WEBWORK_SSO_DATABASE_URL=database_url,
        WEBWORK_SSO_SECRET_KEY=None,
        WEBWORK_SSO_SCIM_MAX_RESULTS="50",
        WEBWORK_SSO_PROTECT=["/private"],
    )

    WebworkSSO(app, scim_max_results=20)
    middleware: SSOMiddleware = app.extensions["webwork_sso"]
    try:
        assert middleware.settings.scim_max_results == 20
        assert middleware.settings.secret_key == (
            "from-the-environment-padded-to-thirty-two-bytes-at-least",
        )
        assert middleware.settings.protect == ("/private",)
        client = webtest.TestApp(app)
        assert client.get("/private/x", status=401).status_int == 401
        assert client.get("/me").json == {"member": None, "identity": None}
    finally:
        middleware.close()


def test_a_second_init_app_on_the_same_app_is_refused(database_url: str) -> None:
    app = make_app()
    app.config.update(
        WEBWORK_SSO_DATABASE_URL=database_url,
        WEBWORK_SSO_SECRET_KEY="k-padded-to-thirty-two-bytes-at-least",
    )
    sso = WebworkSSO(app)
    try:
        with pytest.raises(RuntimeError, match="already"):
            sso.init_app(app)
    finally:
        app.extensions["webwork_sso"].close()


def test_unknown_options_are_named_as_written() -> None:
    app = make_app()
    app.config.update(
        WEBWORK_SSO_SECRET_KEY="k-padded-to-thirty-two-bytes-at-least",
        WEBWORK_SSO_DATABSE_URL="sqlite://",
    )
    with pytest.raises(ConfigurationError) as raised:
        WebworkSSO(app)
    assert raised.value.option == "WEBWORK_SSO_DATABSE_URL"
    assert "WEBWORK_SSO_DATABASE_URL" in str(raised.value)  # the known spellings are listed
    with pytest.raises(ConfigurationError) as raised:
        WebworkSSO(secret=["k"])
    assert raised.value.option == "secret"
    with pytest.raises(ConfigurationError) as raised:
        WebworkSSO(
            make_app(), secret_key="k-padded-to-thirty-two-bytes-at-least", session_idle_lifetime=5
        )
    assert raised.value.option == "session_idle_lifetime"


def test_current_member_is_none_outside_a_request_and_ignores_a_forged_key() -> None:
    assert current_member() is None and current_identity() is None
    app = make_app()
    with app.test_request_context(
        "/", environ_base={"webwork_sso.member": "alice", "REMOTE_USER": ALICE}
    ):
        assert current_member() is None and current_identity() is None


# -- lifecycle events as a blinker signal ----------------------------------------------------------


def test_lifecycle_events_are_sent_as_a_blinker_signal_from_the_app(
    make_site: MakeSite,
    database_url: str,
    idp: TestIdP,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from webwork_sso_middleware.integrations.flask import lifecycle_event

    apps: list[flask.Flask] = []
    site = make_site(config_build(database_url, apps))
    heard: list[tuple[str, str | None, str]] = []

    def receiver(sender: flask.Flask, *, event: Any, kind: str) -> None:
        # Sent with the app's context pushed, as inside a request.
        heard.append((kind, event.identity, flask.current_app.name))

    def broken(sender: flask.Flask, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    lifecycle_event.connect(broken, apps[0])
    lifecycle_event.connect(receiver, apps[0])
    try:
        token = site.add_workspace("acme", idp)
        with caplog.at_level("ERROR", logger="webwork_sso_middleware"):
            site.sign_in(requests.Session(), idp, "acme", ALICE)
            site.set_active(token, site.members()[0].id, False)
    finally:
        lifecycle_event.disconnect(receiver, apps[0])
        lifecycle_event.disconnect(broken, apps[0])
    assert heard == [
        ("member.created", ALICE, apps[0].name),
        ("member.signed_in", ALICE, apps[0].name),
        ("member.deactivated", ALICE, apps[0].name),
    ]
    assert len([r for r in caplog.records if "receiver bug" in str(r.exc_info)]) == 3


def test_with_no_receiver_a_commit_reads_no_events(
    make_site: MakeSite, database_url: str, idp: TestIdP
) -> None:
    from webwork_sso_middleware.integrations.flask import lifecycle_event

    apps: list[flask.Flask] = []
    site = make_site(config_build(database_url, apps))
    token = site.add_workspace("acme", idp)
    site.sign_in(requests.Session(), idp, "acme", ALICE)
    other = make_app()  # a receiver of another app's signal is no receiver of this one's
    heard: list[str] = []

    def receiver(sender: flask.Flask, *, event: Any, kind: str) -> None:
        heard.append(kind)

    lifecycle_event.connect(receiver, other)
    try:
        with Statements(site.middleware.database) as statements:
            site.set_active(token, site.members()[0].id, False)
        # Nobody listens: the commit's events are not read back nor built.
        assert statements.matching("lifecycle_events.id IN") == []
        lifecycle_event.connect(receiver, apps[0])  # connected later: asked at delivery
        site.set_active(token, site.members()[0].id, True)
    finally:
        lifecycle_event.disconnect(receiver, other)
        lifecycle_event.disconnect(receiver, apps[0])
    assert heard == ["member.reactivated"]


# -- metrics ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("on", [True, False])
def test_a_route_serves_the_metrics_of_the_apps_middleware(
    make_site: MakeSite,
    database_url: str,
    idp: TestIdP,
    on: bool,
) -> None:
    def with_a_metrics_route(app: flask.Flask) -> None:
        app.config.update(WEBWORK_SSO_METRICS=on)  # as a settings file would set it
        app.add_url_rule("/metrics", view_func=metrics_response)

    site = make_site(keyword_build(database_url, with_a_metrics_route))
    site.add_workspace("acme", idp)
    site.sign_in(requests.Session(), idp, "acme", ALICE)

    scraped = requests.get(f"{site.url}/metrics", timeout=10)

    if not on:
        assert scraped.status_code == 404 and "Metrics are off" in scraped.text
        return
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert scraped.headers["Cache-Control"] == "no-store"
    assert 'webwork_sso_sign_ins_total{reason="none",result="success"} 1.0' in scraped.text
    assert "alice" not in scraped.text and "acme" not in scraped.text
