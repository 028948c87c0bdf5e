"""SSOMiddleware around a host app: identity in the environ, protection, cookie refresh."""

from __future__ import annotations

import dataclasses
import http.client
import inspect
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from webtest import TestApp

from webwork_sso_middleware import Member, SSOMiddleware, config
from webwork_sso_middleware.config import Settings
from webwork_sso_middleware.errors import ConfigurationError
from webwork_sso_middleware.sessions import SessionManager
from webwork_sso_middleware.signing import Signing

from .constants import PATCH_OP
from .scim.conftest import ScimClient
from .sessions.test_manager import Clock, add_member, cookie_pair, counting_statements, sign_in
from .store.test_audit import add_events, ages

KEY = "middleware-test-key-padded-to-thirty-two-bytes-at-least"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
API = {"Accept": "application/json"}


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The host app: says what identity it was given."""
    member = environ.get("webwork_sso.member")
    seen = {
        "remote_user": environ.get("REMOTE_USER"),
        "member": dataclasses.asdict(member) if isinstance(member, Member) else repr(member),
        "is_member": isinstance(member, Member),
    }
    headers = [("Content-Type", "application/json")]
    if environ.get("PATH_INFO") == "/public-cache":
        headers.append(("Cache-Control", "public, max-age=60"))
    start_response("200 OK", headers)
    return [json.dumps(seen).encode()]


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., SSOMiddleware]]:
    apps: list[SSOMiddleware] = []

    def make(**options: Any) -> SSOMiddleware:
        options = {
            "database_url": database_url,
            "secret_key": KEY,
            "base_url": "https://tracker.example.com",
            **options,
        }
        app = SSOMiddleware(echo_app, **options)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: Callable[..., SSOMiddleware]) -> SSOMiddleware:
    # A long recheck interval: whatever ends a session below must do so without waiting.
    return make_app(session_recheck_seconds=60, protect=["/reports"])


@pytest.fixture
def scim_token(app: SSOMiddleware) -> str:
    _, token = app.workspaces.create("acme", name="Acme", plan="plus", owner_email="it@acme.test")
    app.workspaces.enable("acme", scim=True, sso=True)
    app.workspaces.verify_domain("acme", "acme.test", by_operator=True)  # REMOTE_USER = email
    return token


@pytest.fixture
def ada(app: SSOMiddleware, scim_token: str) -> str:
    return add_member(
        app.database,
        app.workspaces.get("acme").id,
        "ada@acme.test",
        given_name="Ada",
        groups=("Engineering",),
    )


@pytest.fixture
def ada_cookie(app: SSOMiddleware, ada: str) -> str:
    return cookie_pair(sign_in(app.sessions, ada, app.workspaces.get("acme").id))


def get(
    app: SSOMiddleware,
    path: str,
    cookie: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **environ: Any,
) -> Any:
    headers = dict(headers or {})
    if cookie:
        headers["Cookie"] = cookie
    return TestApp(app).get(path, headers=headers, extra_environ=environ, status=status)


# -- identity in the environ -----------------------------------------------------------------


def test_a_signed_in_request_carries_the_member(app, ada, ada_cookie):
    seen = get(app, "/timesheet", ada_cookie).json

    assert seen["remote_user"] == "ada@acme.test" and seen["is_member"]
    assert seen["member"] == {
        "id": ada,
        "workspace": "acme",
        "user_name": "ada@acme.test",
        "email": "ada@acme.test",
        "given_name": "Ada",
        "family_name": None,
        "display_name": None,
        "active": True,
        "groups": ["Engineering"],
        "identity": "ada@acme.test",
        "sso_required": False,  # acme does not require SSO
        "attributes": {},  # no profile attributes provisioned (tests/test_identity.py)
        "roles": [],  # the site declares no roles
        "is_owner": False,  # it@acme.test owns acme
    }


def test_is_owner_follows_the_verified_identity_only(app, scim_token, ada_cookie):
    acme = app.workspaces.get("acme")
    owner = add_member(app.database, acme.id, "it@acme.test")
    owner_cookie = cookie_pair(sign_in(app.sessions, owner, acme.id))
    assert get(app, "/timesheet", owner_cookie).json["member"]["is_owner"] is True
    assert get(app, "/timesheet", ada_cookie).json["member"]["is_owner"] is False

    # A hostile workspace names acme's owner as its own owner and has a member of that address:
    # it cannot verify acme.test, so its member's identity would be scoped, never the owner's;
    # and as acme verified acme.test, a session of that member is refused outright (as its
    # sign-in would be), however it came to exist.
    app.workspaces.create("evil", name="Evil", plan="plus", owner_email="it@acme.test")
    app.workspaces.enable("evil", scim=True, sso=True)
    evil = app.workspaces.get("evil")
    impostor = add_member(app.database, evil.id, "it@acme.test")
    seen = get(app, "/timesheet", cookie_pair(sign_in(app.sessions, impostor, evil.id))).json
    assert seen == {"remote_user": None, "member": "None", "is_member": False}
    # In a domain nobody verified, a member of the owner's own address gets a scoped identity,
    # which is never the owner: the address alone proves nothing.
    app.workspaces.create("lax", name="Lax", plan="plus", owner_email="boss@unclaimed.test")
    app.workspaces.enable("lax", scim=True, sso=True)
    lax = app.workspaces.get("lax")
    boss = add_member(app.database, lax.id, "boss@unclaimed.test")
    seen = get(app, "/timesheet", cookie_pair(sign_in(app.sessions, boss, lax.id))).json
    assert seen["remote_user"] == f"lax:{boss}"
    assert seen["member"]["is_owner"] is False

    # Without the verified domain, acme's own owner is not recognised either (as the settings
    # page does not): the address alone proves nothing.
    app.workspaces.release_domain("acme", "acme.test")
    app.workspaces.set_domains("acme", ["acme.test"])
    unverified = cookie_pair(sign_in(app.sessions, owner, acme.id))
    assert get(app, "/timesheet", unverified).json["member"]["is_owner"] is False


def test_remote_user_is_workspace_scoped_until_the_workspace_verifies_the_domain(
    app, ada, ada_cookie
):
    # Releasing the domain ends the sessions that relied on it (their identity was the email).
    app.workspaces.release_domain("acme", "acme.test")
    assert get(app, "/timesheet", ada_cookie).json["remote_user"] is None
    # The same member signed in with acme.test merely claimed: only a verified domain makes
    # the email the host app's identity (no other workspace can produce it then).
    app.workspaces.set_domains("acme", ["acme.test"])
    cookie = cookie_pair(sign_in(app.sessions, ada, app.workspaces.get("acme").id))
    scoped = get(app, "/timesheet", cookie).json
    assert scoped["remote_user"] == f"acme:{ada}" and "@" not in scoped["remote_user"]
    assert scoped["member"]["identity"] == scoped["remote_user"]
    assert scoped["member"]["user_name"] == "ada@acme.test"  # still shown as it is

    app.workspaces.verify_domain("acme", "acme.test", by_operator=True)
    app.database.sessions_ended([ada])  # else the cached check holds for the recheck interval
    assert get(app, "/timesheet", cookie).json["remote_user"] == "ada@acme.test"


def test_identity_a_client_sends_is_removed(app, ada_cookie):
    forged = {"REMOTE_USER": "admin@acme.test", "webwork_sso.member": "forged"}

    anonymous = get(app, "/timesheet", **forged).json
    signed_in = get(app, "/timesheet", ada_cookie, **forged).json
    bad_cookie = get(app, "/timesheet", "webwork_sso_session=forged.cookie", **forged).json

    assert anonymous == {"remote_user": None, "member": "None", "is_member": False}
    assert bad_cookie == anonymous
    assert signed_in["remote_user"] == "ada@acme.test" and signed_in["is_member"]


def test_the_next_request_after_scim_deactivation_has_no_identity(app, scim_token, ada_cookie):
    """As promised to host apps: "their next request reaches the host app without identity"."""
    scim = ScimClient(app, scim_token)
    member_id = scim.get("/Users", filter='userName eq "ada@acme.test"').json["Resources"][0]["id"]
    assert get(app, "/reports", ada_cookie, headers=BROWSER).json["remote_user"] == "ada@acme.test"

    scim.patch(
        f"/Users/{member_id}",
        {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]},
    )

    assert get(app, "/timesheet", ada_cookie).json["remote_user"] is None
    # ...and a protected path sends them to sign in.
    assert get(app, "/reports", ada_cookie, status=302, headers=BROWSER).location.startswith(
        "/saml/login?next="
    )


def test_a_signed_in_request_costs_no_query(app, ada_cookie):
    get(app, "/timesheet", ada_cookie)

    with counting_statements(app.database) as statements:
        for _ in range(20):
            assert get(app, "/timesheet", ada_cookie).json["remote_user"] == "ada@acme.test"
    assert statements == []


def test_identity_over_real_http(app, ada_cookie, serve):
    server = serve(app)

    seen = requests.get(server.url + "/timesheet", headers={"Cookie": ada_cookie}, timeout=5)
    anonymous = requests.get(server.url + "/timesheet", timeout=5)

    assert seen.json()["remote_user"] == "ada@acme.test"
    assert anonymous.json()["remote_user"] is None


# -- protection --------------------------------------------------------------------------------


def test_a_protected_path_sends_a_browser_to_sign_in_with_next(app):
    answer = get(app, "/reports/2024?week=3&x=%2F", status=302, headers=BROWSER)

    assert answer.location == "/saml/login?next=%2Freports%2F2024%3Fweek%3D3%26x%3D%252F"
    assert answer.headers["Cache-Control"] == "no-store"


def test_a_protected_path_answers_401_to_other_clients(app):
    answer = get(app, "/reports", status=401, headers=API)

    assert answer.headers["WWW-Authenticate"] == 'SSO realm="webwork"'
    assert answer.content_type == "text/plain"
    assert "Set-Cookie" not in answer.headers


def test_protection_follows_path_segments(app, ada_cookie):
    assert get(app, "/reports-archive", headers=BROWSER).json["remote_user"] is None
    assert get(app, "/", headers=BROWSER).status_int == 200
    assert (
        get(app, "/reports/x", ada_cookie, headers=BROWSER).json["remote_user"] == "ada@acme.test"
    )


@pytest.mark.parametrize(
    ("base_url", "script_name"),
    [
        (None, "/tracker"),  # the mount's path from SCRIPT_NAME
        ("https://tracker.example.com/tracker", ""),  # a proxy stripped it: base_url knows it
        ("https://tracker.example.com/tracker", "/tracker"),  # both: the path once
    ],
)
def test_the_redirect_keeps_the_mount_point(make_app, base_url, script_name):
    app = make_app(base_url=base_url, protect=["/reports"])

    answer = get(app, "/reports", status=302, headers=BROWSER, SCRIPT_NAME=script_name)

    # ``next`` is relative to the mount point (urls.py); the sign-in page's path is public.
    assert answer.location == "/tracker/saml/login?next=%2Freports"


def raw_get(server_url: str, raw_path: str, headers: dict[str, str]) -> tuple[int, str]:
    """GET with the request line's path exactly as given (requests would normalise it)."""
    host, port = server_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", raw_path, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


DISGUISED_PROTECTED_PATHS = [
    "/Reports",
    "/REPORTS/2024",
    "//reports",
    "/./reports",
    "/x/../reports",
    "/x/%2e%2e/reports",
    "/reports;jsessionid=1",
    "/x/..;/reports",
    "/reports.",
    "/reports%20",
    "/%72eports",
    "/%2572eports",
    "/x%2f..%2freports",
    "/x\\..\\reports",
    "/%EF%BD%92eports",  # full-width r
    "/reports/../public",  # taken literally by a host app routing /reports/<path>
]


@pytest.mark.parametrize("raw_path", DISGUISED_PROTECTED_PATHS)
def test_a_disguised_protected_path_still_needs_a_session(app, serve, raw_path):
    server = serve(app)

    status, _ = raw_get(server.url, raw_path, API)
    browser_status, _ = raw_get(server.url, raw_path, BROWSER)

    assert (status, browser_status) == (401, 302)


@pytest.mark.parametrize(
    "raw_path",
    [
        "/",
        "/reportsx",
        "/reports-archive",
        "/report",
        "/public",
        "/x/reports",
        "/%2e%2e/public",
        "/reports-x/../public",
    ],
)
def test_paths_outside_the_prefix_are_not_protected(app, serve, raw_path):
    status, body = raw_get(serve(app).url, raw_path, API)
    assert status == 200 and json.loads(body)["remote_user"] is None


def test_the_host_app_gets_the_requests_own_path(make_app, serve, ada, ada_cookie):
    def path_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['PATH_INFO']}|{environ.get('REMOTE_USER')}".encode()]

    app = make_app(protect=["/Reports/"])
    app.app = path_app
    server = serve(app)

    for raw_path in ("/REPORTS/./x", "/a/../reports", "/reports;v=1"):
        status, body = raw_get(server.url, raw_path, {"Cookie": ada_cookie, **API})
        assert status == 200 and body == f"{raw_path}|ada@acme.test"
        assert raw_get(server.url, raw_path, API)[0] == 401


def test_configured_prefixes_are_normalised_as_requests_are():
    def protect(value: Any) -> Any:
        return Settings.from_options(
            {"secret_key": "k-padded-to-thirty-two-bytes-at-least", "protect": value}, environ={}
        ).protect

    assert protect(["/Reports/", "//a/./b/", "/x/../admin", "/reports"]) == (
        "/reports",
        "/a/b",
        "/admin",
    )
    assert protect("/%41dmin") == ("/admin",)


def test_protect_true_guards_everything_but_saml_and_scim(make_app, scim_token):
    app = make_app(protect=True)

    assert get(app, "/", status=302, headers=BROWSER).location == "/saml/login?next=%2F"
    get(app, "/anything", status=401, headers=API)
    # The sign-in page itself, and SCIM with its own bearer-token rules, are never challenged.
    assert get(app, "/saml/login", headers=BROWSER).content_type == "text/html"
    scim = get(app, "/scim/v2/Users", status=401, headers=API)
    assert "WWW-Authenticate" not in scim.headers or "SSO" not in scim.headers["WWW-Authenticate"]
    assert scim.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    authorised = TestApp(app).get(
        "/scim/v2/Users", headers={"Authorization": f"Bearer {scim_token}"}
    )
    assert authorised.status_int == 200


def test_nothing_is_protected_by_default(make_app):
    assert get(make_app(), "/reports", headers=BROWSER).json["remote_user"] is None


# -- the sliding idle timeout ------------------------------------------------------------------


def test_a_refreshed_cookie_is_added_to_the_host_apps_response(app, ada):
    # A cookie last seen two minutes ago, as a browser idle since then would hold.
    earlier = Clock()
    earlier.advance(-120)
    minted = SessionManager(app.database, signing=Signing([KEY]), secure=True, clock=earlier)
    cookie = cookie_pair(sign_in(minted, ada, app.workspaces.get("acme").id))

    answer = get(app, "/timesheet", cookie)

    assert answer.json["remote_user"] == "ada@acme.test"
    refreshed = answer.headers["Set-Cookie"]
    assert refreshed.startswith("webwork_sso_session=") and "HttpOnly" in refreshed
    assert "Secure" in refreshed and "SameSite=Lax" in refreshed
    assert (
        app.sessions.read_cookie({"HTTP_COOKIE": cookie_pair(refreshed)}).last_seen
        >= int(time.time()) - 1
    )
    assert "Set-Cookie" not in get(app, "/timesheet", cookie_pair(refreshed)).headers
    # Never on a response shared caches may keep: it would hand the session to others.
    assert "Set-Cookie" not in get(app, "/public-cache", cookie).headers


# -- settings ---------------------------------------------------------------------------------


def test_session_options_come_from_the_environment_too() -> None:
    settings = Settings.from_options(
        {},
        environ={
            "WEBWORK_SSO_SECRET_KEY": "k-padded-to-thirty-two-bytes-at-least",
            "WEBWORK_SSO_SESSION_ABSOLUTE_LIFETIME": "3600",
            "WEBWORK_SSO_SESSION_IDLE_LIFETIME": "600",
            "WEBWORK_SSO_SESSION_RECHECK_SECONDS": "0.5",
            "WEBWORK_SSO_SESSION_COOKIE_NAME": "tracker_session",
            "WEBWORK_SSO_PROTECT": "/reports/, /admin",
            "WEBWORK_SSO_CLOCK_SKEW_SECONDS": "60",
        },
    )

    assert (settings.session_absolute_lifetime, settings.session_idle_lifetime) == (3600, 600)
    assert settings.session_recheck_seconds == 0.5
    assert settings.session_cookie_name == "tracker_session"
    assert settings.protect == ("/reports", "/admin")
    assert settings.clock_skew_seconds == 60


def test_session_defaults() -> None:
    settings = Settings.from_options(
        {"secret_key": "k-padded-to-thirty-two-bytes-at-least"}, environ={}
    )

    assert settings.session_absolute_lifetime == 43200
    assert settings.session_idle_lifetime == 7200
    assert settings.session_recheck_seconds == 2
    assert settings.session_cookie_name == "webwork_sso_session"
    assert settings.protect == ()
    assert settings.clock_skew_seconds == 180
    assert settings.secure_cookies is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("on", True),
        ("false", ()),
        ("/", ("/",)),
        ("/a,/b,", ("/a", "/b")),
    ],
)
def test_protect_from_the_environment(raw: str, expected: Any) -> None:
    settings = Settings.from_options(
        {"secret_key": "k-padded-to-thirty-two-bytes-at-least"},
        environ={"WEBWORK_SSO_PROTECT": raw},
    )
    assert settings.protect == expected


def test_protect_as_an_argument() -> None:
    def protect(value: Any) -> Any:
        return Settings.from_options(
            {"secret_key": "k-padded-to-thirty-two-bytes-at-least", "protect": value}, environ={}
        ).protect

    assert protect(True) is True and protect(False) == ()
    assert protect("/reports,2024") == ("/reports,2024",)  # an explicit string is one prefix
    assert protect(["/a/", "/b"]) == ("/a", "/b")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("session_idle_lifetime", 30),
        ("session_absolute_lifetime", 600),  # shorter than the default idle lifetime
        ("session_recheck_seconds", -1),
        ("session_recheck_seconds", 301),
        ("session_recheck_seconds", float("nan")),
        ("session_recheck_seconds", True),
        ("session_cookie_name", "my session"),
        ("session_cookie_name", "a;b"),
        ("protect", "reports"),
        ("protect", ["/ok", "no-slash"]),
        ("protect", "/with space"),
        ("clock_skew_seconds", -5),
    ],
)
def test_invalid_session_options_are_refused(option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_options(
            {"secret_key": "k-padded-to-thirty-two-bytes-at-least", option: value}, environ={}
        )
    assert caught.value.option == option


def test_cookies_are_secure_when_the_base_url_is_https(make_app, database_url):
    assert make_app().sessions.secure is True
    assert make_app(base_url="http://localhost:8000").sessions.secure is False
    assert make_app(session_cookie_name="tracker").sessions.cookie_name == "tracker"


# -- audit retention -----------------------------------------------------------------------------


def test_audit_retention_purges_from_scim_and_sign_in_traffic_only(make_app, database_url):
    keeping = make_app()
    assert keeping.audit_retention is None  # the default keeps every event
    app = make_app(audit_retention_days=30)
    _, token = app.workspaces.create("acme", name="Acme", plan="plus", owner_email="it@acme.test")
    app.workspaces.enable("acme", scim=True)
    add_events(app.database, app.workspaces.get("acme").id, 45, count=3)
    add_events(app.database, app.workspaces.get("acme").id, 5)
    before = ages(app.database)
    assert before.count(45) == 3

    get(app, "/timesheets")  # the host app's traffic never pays for it
    assert ages(app.database) == before
    TestApp(app).get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
    assert 45 not in ages(app.database) and 5 in ages(app.database)


# -- the constructor ------------------------------------------------------------------------------


def test_an_unknown_keyword_is_a_type_error_naming_it_and_the_known_ones() -> None:
    with pytest.raises(TypeError) as raised:
        SSOMiddleware(echo_app, secret_key=KEY, databse_url="sqlite://")  # type: ignore[call-arg]
    assert isinstance(raised.value, ConfigurationError) and raised.value.option == "databse_url"
    assert "known: database_url, secret_key" in str(raised.value)


def test_the_docstring_lists_every_option_with_its_default() -> None:
    # The werkzeug-style parameters section is where a reader looks for the defaults.
    doc = inspect.cleandoc(SSOMiddleware.__doc__ or "")
    sections = {}
    for chunk in doc.split(":param ")[1:]:
        name, _, text = chunk.partition(":")
        sections[name] = " ".join(text.split(":raises")[0].split())

    assert list(sections) == ["app", *config.names()]
    for name in config.names():
        value = config.default(name)
        if value is dataclasses.MISSING:
            assert sections[name].endswith("Required."), name
        else:
            shown = f'"{value}"' if isinstance(value, str) else repr(value)
            assert f"Default ``{shown}``" in sections[name], name
