"""A small time tracker: the host app that ``webwork-sso serve`` wraps with SSOMiddleware.

It knows nothing of SAML or SCIM. Whoever ``environ["REMOTE_USER"]`` names is signed in; the
middleware in front of it sets that key for a valid session and removes it otherwise. Entries
live in the app's own SQLite file, through the standard library's sqlite3 module.

    from webwork_sso_middleware import SSOMiddleware
    from examples.timetracker.app import create_app

    application = SSOMiddleware(create_app("timetracker.db"), secret_key="...", base_url="...")
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from werkzeug.exceptions import BadRequest, Forbidden, HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MAX_DESCRIPTION_LENGTH = 500
MAX_MINUTES = 24 * 60
SIGN_IN_PATH = "/saml/login"
SIGN_OUT_PATH = "/saml/logout"

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


class EntryStore:
    """Time entries per person in one SQLite file; a connection per call, so threads share none."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with self._connect() as connection:
            connection.executescript(SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30)
        try:
            with connection:  # commits on success, rolls back on error
                yield connection
        finally:
            connection.close()

    def add(self, user_name: str, description: str, minutes: int) -> None:
        created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO entries (user_name, description, minutes, created_at)"
                " VALUES (?, ?, ?, ?)",
                (user_name, description, minutes, created_at),
            )

    def for_user(self, user_name: str) -> list[tuple[str, int, str]]:
        """(description, minutes, created_at) of the person's entries, newest first."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT description, minutes, created_at FROM entries"
                " WHERE user_name = ? ORDER BY id DESC",
                (user_name,),
            )
            return [(str(d), int(m), str(c)) for d, m, c in rows]


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
            response = page(error.name, f"<p>{escape(error.description or '')}</p>", status)
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
        entries = self.store.for_user(user)
        return page(f"Time tracker: {user}", _entry_form() + _entry_table(entries) + _sign_out())

    def add_entry(self, request: Request) -> Response:
        user = request.remote_user
        if not user:
            raise Forbidden("Sign in to record time.")
        _refuse_cross_site(request)
        description = request.form.get("description", "").strip()
        if not description or len(description) > MAX_DESCRIPTION_LENGTH:
            raise BadRequest(f"Describe the work in 1 to {MAX_DESCRIPTION_LENGTH} characters.")
        minutes = _parse_minutes(request.form.get("minutes", ""))
        self.store.add(user, description, minutes)
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


def _format_minutes(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def _entry_form() -> str:
    return (
        '<form method="post" action="/entries">'
        '<label>What did you work on? <input name="description" required'
        f' maxlength="{MAX_DESCRIPTION_LENGTH}"></label> '
        f'<label>Minutes <input name="minutes" type="number" min="1" max="{MAX_MINUTES}"'
        " required></label> "
        "<button>Add</button></form>"
    )


def _entry_table(entries: list[tuple[str, int, str]]) -> str:
    if not entries:
        return "<p>No time recorded yet.</p>"
    rows = "".join(
        f"<tr><td>{escape(created_at)}</td><td>{escape(description)}</td>"
        f"<td>{_format_minutes(minutes)}</td></tr>"
        for description, minutes, created_at in entries
    )
    total = _format_minutes(sum(minutes for _, minutes, _ in entries))
    return (
        "<table><thead><tr><th>When (UTC)</th><th>What</th><th>Time</th></tr></thead>"
        f'<tbody>{rows}</tbody><tfoot><tr><th colspan="2">Total</th><th>{total}</th></tr>'
        "</tfoot></table>"
    )


def _sign_out() -> str:
    return f'<form method="post" action="{SIGN_OUT_PATH}"><button>Sign out</button></form>'


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def page(title: str, body: str, status: int = 200) -> Response:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return Response(document, status=status, content_type="text/html; charset=utf-8")
