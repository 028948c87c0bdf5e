"""A small time tracker: the host app that ``webwork-sso serve`` wraps with SSOMiddleware.

It knows nothing of SAML or SCIM. Whoever ``environ["REMOTE_USER"]`` names is signed in; the
middleware in front of it sets that key for a valid session and removes it otherwise, and
puts the member in ``environ["webwork_sso.member"]``: its name, its workspace, its roles
(``member.roles``) and whether it owns its workspace (``member.is_owner``). Signing in and out
are links to the middleware's pages: ``/saml/login`` and ``/saml/logout``.

Admins (the ``admin`` role, and the workspace owner) also see their workspace's Team (seats in
use and the roster) and Activity (its lifecycle events): the tracker keeps both in its own
tables, from the middleware's event feed (directory.py), once ``follow(middleware)`` is called.
Everything lives in the app's own SQLite file, through the standard library's sqlite3 module.

    from webwork_sso_middleware import SSOMiddleware
    from examples.timetracker import create_app

    tracker = create_app("timetracker.db")
    application = SSOMiddleware(tracker, secret_key="...", base_url="...", roles=[...])
    tracker.follow(application)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from werkzeug.exceptions import Forbidden, HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

from . import pages
from .directory import Directory, Follower
from .entries import EntryStore, parse_day, parse_description, parse_minutes
from .pages import Viewer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MEMBER_KEY = "webwork_sso.member"
ADMIN_ROLE = "admin"


class TimeTracker:
    """The WSGI app: ``GET /`` shows the signed-in person's entries, ``POST /entries`` adds
    one; ``GET /team`` and ``GET /activity`` are for the workspace's admins."""

    def __init__(self, store: EntryStore, directory: Directory) -> None:
        self.store = store
        self.directory = directory
        self.follower: Follower | None = None

    def follow(self, middleware: Any) -> None:
        """Keep Team and Activity up to date from ``middleware.events``: subscribe in-process,
        and catch up now with what happened while the tracker was not running."""
        if self.follower is not None:  # following another middleware: that one no longer
            self.follower.events.unsubscribe(self.follower.on_event)
        follower = Follower(self.directory, middleware.events)
        middleware.events.subscribe(follower.on_event)
        self.follower = follower
        follower.catch_up()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        viewer = viewer_of(request)
        try:
            response = self.dispatch(request, viewer)
        except HTTPException as error:
            status = error.code or 500
            response = pages.error_page(viewer, status, error.name, error.description or "")
            if isinstance(error, MethodNotAllowed) and error.valid_methods:
                response.allow.update(error.valid_methods)
        return response(environ, start_response)

    def dispatch(self, request: Request, viewer: Viewer) -> Response:
        if request.path == "/":
            _require_method(request, "GET", "HEAD")
            return self.index(request, viewer)
        if request.path == "/entries":
            _require_method(request, "POST")
            return self.add_entry(request, viewer)
        if request.path == "/team":
            _require_method(request, "GET", "HEAD")
            return self.team(request, viewer)
        if request.path == "/activity":
            _require_method(request, "GET", "HEAD")
            return self.activity(request, viewer)
        raise NotFound("There is no page at this address.")

    def index(self, request: Request, viewer: Viewer) -> Response:
        if not viewer.user:
            return pages.welcome(viewer, signed_out="signed_out" in request.args)
        today = dt.date.today()
        return pages.entries_page(viewer, self.store.for_user(viewer.user), today)

    def add_entry(self, request: Request, viewer: Viewer) -> Response:
        if not viewer.user:
            raise Forbidden("Sign in to record time.")
        _refuse_cross_site(request)
        description = parse_description(request.form.get("description", ""))
        minutes = parse_minutes(request.form.get("minutes", ""))
        day = parse_day(request.form.get("date", ""), dt.date.today())
        self.store.add(viewer.user, description, minutes, day)
        # 303 so that reloading the page does not post the entry twice.
        return Response(status=303, headers={"Location": "/"})

    def team(self, request: Request, viewer: Viewer) -> Response:
        workspace = self._admin_workspace(request, viewer)
        if isinstance(workspace, Response):
            return workspace
        return pages.team_page(
            viewer, self.directory.seat_count(workspace), self.directory.roster(workspace)
        )

    def activity(self, request: Request, viewer: Viewer) -> Response:
        workspace = self._admin_workspace(request, viewer)
        if isinstance(workspace, Response):
            return workspace
        return pages.activity_page(viewer, self.directory.activity(workspace))

    def _admin_workspace(self, request: Request, viewer: Viewer) -> str | Response:
        """The viewer's own workspace, once they are known to be one of its admins; a visitor
        goes to sign in first."""
        if not viewer.user:
            return Response(status=303, headers={"Location": pages.sign_in_path(request.path)})
        if not (viewer.is_admin and viewer.workspace):
            raise Forbidden(
                f"This page is for your workspace's admins (the {ADMIN_ROLE!r} role)."
                " Ask your workspace owner if you need it."
            )
        if self.follower is not None:
            # What another worker or the CLI did reaches this worker here (in-process changes
            # have been applied already: the subscription catches up at once).
            self.follower.catch_up()
        return viewer.workspace


def viewer_of(request: Request) -> Viewer:
    """Who is signed in, from what the middleware put in the environ (and nothing else)."""
    user = request.remote_user or None
    member = request.environ.get(MEMBER_KEY) if user else None
    # is_owner: the member owns its workspace, by verified identity (the middleware decides).
    is_owner = bool(getattr(member, "is_owner", False))
    roles = getattr(member, "roles", None) or ()
    return Viewer(
        user=user,
        name=pages.display_name(member),
        workspace=getattr(member, "workspace", None),
        is_admin=is_owner or ADMIN_ROLE in roles,
        is_owner=is_owner,
    )


def create_app(database_path: str | Path) -> TimeTracker:
    """The time tracker, keeping its entries, seats and activity in the SQLite file at
    ``database_path``; call ``follow(middleware)`` on it once the middleware wraps it."""
    return TimeTracker(EntryStore(database_path), Directory(database_path))


def _require_method(request: Request, *allowed: str) -> None:
    if request.method not in allowed:
        raise MethodNotAllowed(
            valid_methods=list(allowed), description="This page does not take that request."
        )


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
