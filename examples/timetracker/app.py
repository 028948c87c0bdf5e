"""A small time tracker: the host app that ``webwork-sso serve`` wraps with SSOMiddleware.

It knows nothing of SAML or SCIM. Whoever ``environ["REMOTE_USER"]`` names is signed in; the
middleware in front of it sets that key for a valid session and removes it otherwise, and
puts the member's profile in ``environ["webwork_sso.member"]`` (used here for a display name
only). Signing in and out are links to the middleware's pages: ``/saml/login`` and
``/saml/logout``. Entries live in the app's own SQLite file, through the standard library's
sqlite3 module.

    from webwork_sso_middleware import SSOMiddleware
    from examples.timetracker.app import create_app

    application = SSOMiddleware(create_app("timetracker.db"), secret_key="...", base_url="...")
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import html
import itertools
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from werkzeug.exceptions import BadRequest, Forbidden, HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MAX_DESCRIPTION_LENGTH = 500
MAX_MINUTES = 24 * 60
EARLIEST_DATE = dt.date(2000, 1, 1)
SIGN_IN_PATH = "/saml/login"
SIGN_OUT_PATH = "/saml/logout"
MEMBER_KEY = "webwork_sso.member"

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    user_name TEXT NOT NULL,
    description TEXT NOT NULL,
    minutes INTEGER NOT NULL CHECK (minutes > 0),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_entries_user_name ON entries (user_name, id);
"""


@dataclasses.dataclass(frozen=True)
class Entry:
    description: str
    minutes: int
    day: dt.date

    @property
    def week(self) -> dt.date:
        """The Monday of the entry's ISO week."""
        return self.day - dt.timedelta(days=self.day.weekday())


class EntryStore:
    """Time entries per person in one SQLite file; a connection per call, so threads share none."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with self._connect() as connection:
            connection.executescript(SCHEMA)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(entries)")}
            if "work_date" not in columns:
                # Files from before entries had a date: those rows fall back to when they were
                # recorded (see for_user), so nothing needs rewriting.
                connection.execute("ALTER TABLE entries ADD COLUMN work_date TEXT")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30)
        try:
            with connection:  # commits on success, rolls back on error
                yield connection
        finally:
            connection.close()

    def add(self, user_name: str, description: str, minutes: int, day: dt.date) -> None:
        created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO entries (user_name, description, minutes, created_at, work_date)"
                " VALUES (?, ?, ?, ?, ?)",
                (user_name, description, minutes, created_at, day.isoformat()),
            )

    def for_user(self, user_name: str) -> list[Entry]:
        """The person's entries, the latest day first (and the latest recorded first within it)."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT description, minutes, COALESCE(work_date, substr(created_at, 1, 10)) AS day"
                " FROM entries WHERE user_name = ? ORDER BY day DESC, id DESC",
                (user_name,),
            )
            return [Entry(str(d), int(m), dt.date.fromisoformat(str(day))) for d, m, day in rows]


class TimeTracker:
    """The WSGI app: ``GET /`` shows the signed-in person's entries, ``POST /entries`` adds one."""

    def __init__(self, store: EntryStore) -> None:
        self.store = store

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except HTTPException as error:
            status = error.code or 500
            response = page(
                error.name,
                f'<p>{escape(error.description or "")}</p><p><a href="/">Back</a></p>',
                status,
            )
            if isinstance(error, MethodNotAllowed) and error.valid_methods:
                response.allow.update(error.valid_methods)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.path == "/":
            _require_method(request, "GET", "HEAD")
            return self.index(request)
        if request.path == "/entries":
            _require_method(request, "POST")
            return self.add_entry(request)
        raise NotFound()

    def index(self, request: Request) -> Response:
        user = request.remote_user
        if not user:
            return page(
                "Time tracker",
                "<p>Track the time you spend, signed in with your company account.</p>"
                f'<p><a href="{SIGN_IN_PATH}">Sign in with SSO</a></p>',
            )
        today = dt.date.today()
        entries = self.store.for_user(user)
        body = (
            _who(user, request.environ.get(MEMBER_KEY))
            + _this_week(entries, today)
            + _entry_form(today)
            + _entry_tables(entries, today)
        )
        return page("Time tracker", body)

    def add_entry(self, request: Request) -> Response:
        user = request.remote_user
        if not user:
            raise Forbidden("Sign in to record time.")
        _refuse_cross_site(request)
        description = request.form.get("description", "").strip()
        if not description or len(description) > MAX_DESCRIPTION_LENGTH:
            raise BadRequest(f"Describe the work in 1 to {MAX_DESCRIPTION_LENGTH} characters.")
        minutes = _parse_minutes(request.form.get("minutes", ""))
        day = _parse_day(request.form.get("date", ""), dt.date.today())
        self.store.add(user, description, minutes, day)
        # 303 so that reloading the page does not post the entry twice.
        return Response(status=303, headers={"Location": "/"})


def create_app(database_path: str | Path) -> WSGIApplication:
    """The time tracker, keeping its entries in the SQLite file at ``database_path``."""
    return TimeTracker(EntryStore(database_path))


def _require_method(request: Request, *allowed: str) -> None:
    if request.method not in allowed:
        raise MethodNotAllowed(valid_methods=list(allowed))


def _refuse_cross_site(request: Request) -> None:
    # Browsers send Origin on a form POST; another site's form must not add entries for a
    # signed-in person (the session cookie's SameSite setting is the first line of defence).
    origin = request.headers.get("Origin")
    if origin and (origin == "null" or _host_of(origin) != request.host.lower()):
        raise Forbidden("This form may only be sent from this site.")


def _host_of(origin: str) -> str:
    """host[:port] of an Origin, without the scheme's default port (as werkzeug's request.host)."""
    parts = urlsplit(origin)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return ""
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return host if port in (None, default_port) else f"{host}:{port}"


def _parse_minutes(raw: str) -> int:
    try:
        minutes = int(raw.strip())
    except ValueError:
        raise BadRequest("Minutes must be a whole number.") from None
    if not 1 <= minutes <= MAX_MINUTES:
        raise BadRequest(f"Minutes must be between 1 and {MAX_MINUTES}.")
    return minutes


def _parse_day(raw: str, today: dt.date) -> dt.date:
    """The day worked: YYYY-MM-DD, today when left empty, never in the future."""
    if not raw.strip():
        return today
    try:
        day = dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise BadRequest("The date must look like 2024-05-31.") from None
    # A day of slack: the browser's "today" may already be tomorrow where the person is.
    if not EARLIEST_DATE <= day <= today + dt.timedelta(days=1):
        raise BadRequest(f"The date must be between {EARLIEST_DATE} and today.")
    return day


def _format_minutes(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def _who(user: str, member: Any) -> str:
    """Who is signed in: the display name the middleware knows, if any, and the user name."""
    name = getattr(member, "display_name", None) or " ".join(
        part
        for part in (getattr(member, "given_name", None), getattr(member, "family_name", None))
        if part
    )
    shown = f"<strong>{escape(name or user)}</strong>" + (f" ({escape(user)})" if name else "")
    # A GET form: the sign-out page asks to confirm, with a token only it can issue.
    return (
        f'<form class="who" method="get" action="{SIGN_OUT_PATH}">'
        f'Signed in as {shown} <button type="submit">Sign out</button></form>'
    )


def _this_week(entries: list[Entry], today: dt.date) -> str:
    monday = today - dt.timedelta(days=today.weekday())
    total = sum(entry.minutes for entry in entries if entry.week == monday)
    return f'<p class="summary">This week: <strong>{_format_minutes(total)}</strong></p>'


def _entry_form(today: dt.date) -> str:
    return (
        '<form class="add" method="post" action="/entries">'
        '<label>What did you work on? <input name="description" required'
        f' maxlength="{MAX_DESCRIPTION_LENGTH}"></label> '
        f'<label>Minutes <input name="minutes" type="number" min="1" max="{MAX_MINUTES}"'
        " required></label> "
        f'<label>Date <input name="date" type="date" value="{today.isoformat()}"'
        f' min="{EARLIEST_DATE.isoformat()}"></label> '
        "<button>Add</button></form>"
    )


def _entry_tables(entries: list[Entry], today: dt.date) -> str:
    """One table per ISO week, latest first, each with its total."""
    if not entries:
        return "<p>No time recorded yet.</p>"
    this_monday = today - dt.timedelta(days=today.weekday())
    tables = []
    for monday, week in itertools.groupby(entries, key=lambda entry: entry.week):
        week_entries = list(week)
        rows = "".join(
            f"<tr><td>{entry.day:%a %Y-%m-%d}</td><td>{escape(entry.description)}</td>"
            f"<td>{_format_minutes(entry.minutes)}</td></tr>"
            for entry in week_entries
        )
        total = _format_minutes(sum(entry.minutes for entry in week_entries))
        label = "This week" if monday == this_monday else f"Week of {monday:%Y-%m-%d}"
        iso_year, iso_week, _ = monday.isocalendar()
        tables.append(
            f"<h2>{label} <small>({iso_year}-W{iso_week:02d})</small></h2>"
            "<table><thead><tr><th>Date</th><th>What</th><th>Time</th></tr></thead>"
            f'<tbody>{rows}</tbody><tfoot><tr><th colspan="2">Week total</th><th>{total}</th>'
            "</tr></tfoot></table>"
        )
    return "".join(tables)


def escape(text: str) -> str:
    return html.escape(text, quote=True)


STYLE = """
body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;width:100%;margin-bottom:1rem}
td,th{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #ddd}
td:last-child,th:last-child{text-align:right}form.add label{display:inline-block;margin:.25rem 0}
form.who{float:right;margin:0}h2 small{color:#666;font-weight:normal}
"""


def page(title: str, body: str, status: int = 200) -> Response:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return Response(document, status=status, content_type="text/html; charset=utf-8")
