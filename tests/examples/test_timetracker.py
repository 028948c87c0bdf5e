"""The example time tracker: alone, behind a trusted identity, and behind SSOMiddleware."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import webtest

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.devserver import load_timetracker_factory

from ..constants import SECRET

ALICE = "alice@acme.example"
BOB = "bob@acme.example"


@pytest.fixture(scope="module")
def create_app() -> Callable[[str], Any]:
    return load_timetracker_factory()


@pytest.fixture
def tracker_path(tmp_path: Path) -> str:
    return str(tmp_path / "timetracker.db")


@pytest.fixture
def tracker(create_app: Callable[[str], Any], tracker_path: str) -> Any:
    return create_app(tracker_path)


@pytest.fixture
def protected(tracker: Any, database_url: str) -> Iterator[SSOMiddleware]:
    middleware = SSOMiddleware(
        tracker, database_url=database_url, secret_key=SECRET, base_url="http://127.0.0.1"
    )
    yield middleware
    middleware.close()


def signed_in(app: Any, user: str) -> webtest.TestApp:
    """The app alone, with REMOTE_USER set as a trusted front (the middleware) would."""
    return webtest.TestApp(app, extra_environ={"REMOTE_USER": user})


# -- behind the middleware, over real HTTP -----------------------------------------------------


def test_an_anonymous_visitor_sees_a_sign_in_link(protected: SSOMiddleware, serve: Any) -> None:
    server = serve(protected)

    response = requests.get(f"{server.url}/", timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert '<a href="/saml/login">Sign in with SSO</a>' in response.text


@pytest.mark.parametrize("header", ["Remote-User", "X-Remote-User", "X-Forwarded-User"])
def test_an_identity_header_does_not_sign_anyone_in(
    protected: SSOMiddleware, serve: Any, header: str
) -> None:
    server = serve(protected)

    response = requests.get(f"{server.url}/", headers={header: ALICE}, timeout=10)
    posted = requests.post(
        f"{server.url}/entries",
        data={"description": "forged", "minutes": "5"},
        headers={header: ALICE},
        allow_redirects=False,
        timeout=10,
    )

    assert "Sign in with SSO" in response.text and ALICE not in response.text
    assert posted.status_code == 403


def test_the_middleware_removes_a_preset_remote_user(
    tracker: Any, protected: SSOMiddleware
) -> None:
    seen: list[Any] = []

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append((environ.get("REMOTE_USER"), environ.get("webwork_sso.member")))
        return tracker(environ, start_response)

    protected.app = recording
    forged = webtest.TestApp(
        protected, extra_environ={"REMOTE_USER": ALICE, "webwork_sso.member": object()}
    )

    page = forged.get("/")
    refused = forged.post("/entries", {"description": "forged", "minutes": "5"}, status=403)

    assert seen == [(None, None), (None, None)]
    assert "Sign in with SSO" in page.text
    assert refused.status_int == 403
    assert "forged" not in signed_in(tracker, ALICE).get("/").text


# -- the app alone, behind a trusted REMOTE_USER -----------------------------------------------


def test_a_signed_in_person_adds_and_sees_their_entries(tracker: Any) -> None:
    alice = signed_in(tracker, ALICE)

    assert "No time recorded yet" in alice.get("/").text
    added = alice.post("/entries", {"description": "Quarterly report", "minutes": "90"})
    alice.post("/entries", {"description": "Code review", "minutes": "25"})

    assert added.status_int == 303
    assert added.headers["Location"].endswith("/")
    page = alice.get("/")
    assert ALICE in page.text
    assert "Quarterly report" in page.text and "Code review" in page.text
    assert "1:30" in page.text and "0:25" in page.text
    assert "1:55" in page.text  # the total
    assert page.text.index("Code review") < page.text.index("Quarterly report")  # newest first
    assert 'action="/saml/logout"' in page.text


def test_each_person_sees_only_their_own_entries(tracker: Any) -> None:
    signed_in(tracker, ALICE).post("/entries", {"description": "Alice's work", "minutes": "10"})

    page = signed_in(tracker, BOB).get("/")

    assert "Alice" not in page.text
    assert "No time recorded yet" in page.text


def test_entries_are_kept_in_the_apps_own_sqlite_file(
    create_app: Callable[[str], Any], tracker_path: str
) -> None:
    signed_in(create_app(tracker_path), ALICE).post(
        "/entries", {"description": "Persisted", "minutes": "5"}
    )

    assert "Persisted" in signed_in(create_app(tracker_path), ALICE).get("/").text


def test_everything_shown_is_escaped(tracker: Any) -> None:
    mallory = '<script>alert("x")</script>@acme.example'
    app = signed_in(tracker, mallory)
    app.post("/entries", {"description": "<img src=x onerror=alert(1)> & co", "minutes": "5"})

    page = app.get("/").text

    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; co" in page


def test_an_anonymous_post_is_refused(tracker: Any) -> None:
    response = webtest.TestApp(tracker).post(
        "/entries", {"description": "x", "minutes": "5"}, status=403
    )

    assert "Sign in" in response.text


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"description": "", "minutes": "5"}, "Describe"),
        ({"description": "   ", "minutes": "5"}, "Describe"),
        ({"description": "x" * 501, "minutes": "5"}, "Describe"),
        ({"description": "Work", "minutes": "ten"}, "whole number"),
        ({"description": "Work", "minutes": "0"}, "between"),
        ({"description": "Work", "minutes": "1441"}, "between"),
        ({"description": "Work"}, "whole number"),
    ],
)
def test_an_invalid_entry_is_refused_and_not_stored(
    tracker: Any, form: dict[str, str], reason: str
) -> None:
    alice = signed_in(tracker, ALICE)

    response = alice.post("/entries", form, status=400)

    assert reason in response.text
    assert "No time recorded yet" in alice.get("/").text


def test_a_post_from_another_site_is_refused(tracker: Any) -> None:
    alice = signed_in(tracker, ALICE)

    alice.post(
        "/entries",
        {"description": "Cross-site", "minutes": "5"},
        headers={"Origin": "https://evil.example"},
        status=403,
    )
    alice.post(
        "/entries",
        {"description": "Opaque origin", "minutes": "5"},
        headers={"Origin": "null"},
        status=403,
    )
    for origin in ("http://localhost", "http://LOCALHOST:80"):
        alice.post(
            "/entries",
            {"description": f"Same site {origin}", "minutes": "5"},
            headers={"Origin": origin},
            status=303,
        )

    page = alice.get("/").text
    assert "Cross-site" not in page and "Opaque" not in page
    assert page.count("Same site") == 2


def test_unknown_paths_and_methods(tracker: Any) -> None:
    app = webtest.TestApp(tracker)

    app.get("/nope", status=404)
    assert "GET" in app.post("/", status=405).headers["Allow"]
    assert "POST" in app.get("/entries", status=405).headers["Allow"]


# -- dates, weeks, and who is signed in --------------------------------------------------------


def test_entries_are_grouped_by_week_with_a_total_each(tracker: Any) -> None:
    import datetime as dt

    alice = signed_in(tracker, ALICE)
    today = dt.date.today()
    last_week = today - dt.timedelta(days=7)
    alice.post(
        "/entries", {"description": "Morning work", "minutes": "30", "date": today.isoformat()}
    )
    alice.post("/entries", {"description": "Also today", "minutes": "45"})  # no date: today
    alice.post(
        "/entries", {"description": "Last week", "minutes": "120", "date": last_week.isoformat()}
    )

    page = alice.get("/").text

    assert "This week: <strong>1:15</strong>" in page
    monday = last_week - dt.timedelta(days=last_week.weekday())
    assert f"Week of {monday:%Y-%m-%d}" in page
    assert page.count("Week total") == 2
    assert page.index("Also today") < page.index("Morning work") < page.index("Last week")
    assert ">2:00<" in page  # last week's total


@pytest.mark.parametrize(
    ("date", "reason"),
    [
        ("31/05/2024", "must look like"),
        ("2024-02-30", "must look like"),
        ("2999-01-01", "between"),
        ("1999-12-31", "between"),
    ],
)
def test_an_impossible_date_is_refused(tracker: Any, date: str, reason: str) -> None:
    alice = signed_in(tracker, ALICE)

    response = alice.post(
        "/entries", {"description": "Work", "minutes": "5", "date": date}, status=400
    )

    assert reason in response.text
    assert "No time recorded yet" in alice.get("/").text


def test_the_page_names_the_member_and_offers_sign_out(tracker: Any) -> None:
    class Member:
        display_name = "Alice <Liddell>"

    page = webtest.TestApp(
        tracker, extra_environ={"REMOTE_USER": ALICE, "webwork_sso.member": Member()}
    ).get("/")

    assert "Signed in as <strong>Alice &lt;Liddell&gt;</strong> (alice@acme.example)" in page.text
    sign_out = page.forms[0]
    assert (sign_out.method.upper(), sign_out.action) == ("GET", "/saml/logout")


def test_a_file_from_before_dates_still_works(
    tracker_path: str, create_app: Callable[[str], Any]
) -> None:
    import sqlite3

    with sqlite3.connect(tracker_path) as connection:
        connection.executescript(
            "CREATE TABLE entries (id INTEGER PRIMARY KEY, user_name TEXT NOT NULL,"
            " description TEXT NOT NULL, minutes INTEGER NOT NULL CHECK (minutes > 0),"
            " created_at TEXT NOT NULL);"
            "INSERT INTO entries (user_name, description, minutes, created_at)"
            " VALUES ('alice@acme.example', 'Old entry', 10, '2024-05-31T09:00:00+00:00');"
        )
    connection.close()

    page = signed_in(create_app(tracker_path), ALICE).get("/").text

    assert "Old entry" in page and "Fri 2024-05-31" in page and "Week of 2024-05-27" in page


# -- roles and the owner, as a trusted front presents them --------------------------------------


class FrontMember:
    """What the middleware puts in ``webwork_sso.member``, as far as the tracker reads it."""

    def __init__(self, workspace: str, *, roles: list[str], is_owner: bool = False) -> None:
        self.workspace = workspace
        self.roles = roles
        self.is_owner = is_owner
        self.display_name = None


def as_member(tracker: Any, member: FrontMember) -> webtest.TestApp:
    return webtest.TestApp(
        tracker, extra_environ={"REMOTE_USER": ALICE, "webwork_sso.member": member}
    )


@pytest.mark.parametrize(
    ("roles", "is_owner", "allowed"),
    [
        (["admin"], False, True),
        (["member", "admin"], False, True),
        ([], True, True),  # the owner counts as an admin
        (["member"], False, False),
        (["viewer"], False, False),
        (["Admin"], False, False),  # role names are exact
        ([], False, False),
    ],
)
def test_team_and_activity_are_for_admins_and_the_owner(
    tracker: Any, roles: list[str], is_owner: bool, allowed: bool
) -> None:
    app = as_member(tracker, FrontMember("acme", roles=roles, is_owner=is_owner))

    for path in ("/team", "/activity"):
        response = app.get(path, status=200 if allowed else 403)
        assert ("admins" in response.text) is not allowed
    home = app.get("/").text
    assert ('href="/team"' in home) is allowed and ('href="/activity"' in home) is allowed


def test_a_signed_in_person_without_a_member_object_is_no_admin(tracker: Any) -> None:
    # REMOTE_USER from some other trusted front that says nothing of roles.
    signed_in(tracker, ALICE).get("/team", status=403)


def test_the_settings_link_is_the_owners_own_workspaces(tracker: Any) -> None:
    owner = as_member(tracker, FrontMember("acme-eu", roles=[], is_owner=True))
    admin = as_member(tracker, FrontMember("acme-eu", roles=["admin"]))

    assert '<a class="settings" href="/saml/acme-eu/settings">' in owner.get("/").text
    assert "SSO settings" not in admin.get("/").text and 'href="/saml/' not in admin.get("/").text
    assert "SSO settings" not in webtest.TestApp(tracker).get("/").text


def test_the_signed_out_notice_is_for_visitors_only(tracker: Any) -> None:
    visitor = webtest.TestApp(tracker).get("/?signed_out=1").text
    still_signed_in = signed_in(tracker, ALICE).get("/?signed_out=1").text

    assert "You are signed out." in visitor
    assert "You are signed out." not in still_signed_in
