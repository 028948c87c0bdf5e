"""``/saml/<slug>/settings``: the workspace owner's settings page as a WSGI app.

Who gets in: the owner signed in through
SSO (a live session of a member of this workspace whose email or userName is the workspace's
owner email), or whoever holds an owner-settings session, which only a settings link starts
(links.py; the check is access.py). Everyone else gets the same 403 page, whether or not the
workspace exists. Here: the route, the one-time settings link's pages, and showing the page;
every POST of someone let in goes to the owner's actions (actions.py).

Every POST carries a CSRF token bound to the credential that opened the page; a bad one changes
nothing. A regenerated SCIM token appears in that one POST's response only (no-store, never in a
cookie or a redirect), and no later response can show it: only its hash is kept."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from ..domains import TxtResolver
from ..errors import StoreUnavailable
from ..idp_metadata.fetching import fetch as fetch_metadata
from ..idp_metadata.identity_providers import IdPInfo
from ..idp_metadata.workspaces import Workspaces
from ..logs import package_logger
from ..sessions.sign_in_tests import SignInTests
from ..signing import CLOCK_TOLERANCE
from ..sp_keys import SpKeys
from ..store import identity_providers, replay_cache
from ..store import members as member_store
from ..store import settings_sessions as settings_store
from ..store import sp_keys as sp_store
from ..store.db import Database, UnitOfWork
from ..store.workspaces import SLUG_PATTERN, WorkspaceInfo, find_by_slug, live_token
from ..urls import workspace_path
from . import diagnostics, sp_keys_section, templates
from .access import Access, owner_access
from .actions import OwnerActions
from .audit_download import AUDIT_LOG, DOWNLOAD_PARAMETER, audit_log_response
from .links import (
    LINK_PARAMETER,
    CsrfTokens,
    LinkRefused,
    SettingsLink,
    SettingsSessions,
    read_settings_link,
    settings_path,
)
from .responses import Page, sentence
from .sections import Notice, SettingsView

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from ..config import Settings
    from ..sessions import SessionManager

log = package_logger(__name__)

MEMBERS_PER_PAGE = 50
ALLOWED_METHODS = ("GET", "HEAD", "POST")  # as the route under the SAML app allowed


class SettingsPage:
    """The settings page as a WSGI app, mounted by middleware.py at ``/saml``: its one route is
    ``/<slug>/settings``, relative, and its URLs come from urls.py."""

    def __init__(
        self,
        database: Database,
        *,
        settings: Settings,
        sessions: SessionManager,
        fetch: Callable[[str], str] = fetch_metadata,
        clock: Callable[[], float] = time.time,
        credentials_changed: Callable[[], None] = lambda: None,
        domains_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.sessions = sessions
        self.workspaces = Workspaces(
            database,
            fetch=fetch,
            resolver=TxtResolver(settings.dns_nameservers),
            credentials_changed=credentials_changed,  # a new SCIM token, SCIM off: forgotten
            domains_changed=domains_changed,  # a domain verified or released: forgotten
        )
        self.settings_sessions = SettingsSessions(
            database, signing=sessions.signing, secure=settings.secure_cookies, clock=clock
        )
        self.csrf = CsrfTokens(signing=sessions.signing)
        # Test sign-in tickets, bound as the CSRF tokens are (sessions/sign_in_tests.py).
        self.sign_in_tests = SignInTests(signing=sessions.signing, clock=clock)
        self.clock = clock
        # The workspace's SP keys, sealed under the site's secret keys as the SAML side's are.
        self.sp_keys = SpKeys(database, secret_keys=settings.secret_key)
        self.actions = OwnerActions(
            self.workspaces,
            sp_keys=self.sp_keys,
            csrf=self.csrf,
            settings_sessions=self.settings_sessions,
            max_body_bytes=settings.max_body_bytes,
            show=self.show,
            roles=settings.roles,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = self.settings.max_body_bytes
        parts = request.path.strip("/").split("/")
        if len(parts) != 2 or parts[1] != "settings":
            return Response("Not found", status=404)(environ, start_response)
        if request.method not in ALLOWED_METHODS:
            refused = Page(request, self.settings.base_url).message(
                "Method not allowed", ["The settings page answers GET and POST."], status=405
            )
            refused.headers["Allow"] = ", ".join(ALLOWED_METHODS)
            return refused(environ, start_response)
        try:
            response = self.respond(request, parts[0])
        except HTTPException as exc:
            response = Page(request, self.settings.base_url).message(
                exc.name, [exc.description or exc.name], status=exc.code or 400
            )
        except (StoreUnavailable, OperationalError):
            log.warning("settings page failed: database unavailable", exc_info=True)
            response = Page(request, self.settings.base_url).message(
                "Please try again",
                ["The settings page is briefly unavailable. Please try again in a moment."],
                status=503,
            )
        except Exception:
            log.exception("unexpected error on the settings page %s", request.method)
            response = Page(request, self.settings.base_url).message(
                "Something went wrong", ["The settings page failed on our side."], status=500
            )
        return response(environ, start_response)

    def respond(self, request: Request, slug: str) -> Response:
        page = Page(request, self.settings.base_url)
        if not SLUG_PATTERN.match(slug):
            return page.forbidden(slug, "There is no settings page at this address.")
        if LINK_PARAMETER in request.args:
            # Only the POST from the link's own page redeems it: a previewer, a mail scanner or
            # a prefetch that GETs (or HEADs) the link must leave it usable.
            if request.method == "POST":
                return self.redeem_link(page, slug)
            if request.method in ("GET", "HEAD"):
                return self.show_link(page, slug)
        access, refusal = owner_access(
            request,
            slug,
            self.load_workspace(slug),
            settings_sessions=self.settings_sessions,
            sessions=self.sessions,
        )
        if access is None:
            return page.forbidden(slug, refusal)
        if request.method == "POST":
            response = self.actions.act(page, slug, access)
        elif "certificate" in request.args:
            response = self.certificate(page, access, request.args["certificate"])
        elif request.args.get(DOWNLOAD_PARAMETER) == AUDIT_LOG:
            response = audit_log_response(page, self.database, access)
        else:
            response = self.show(page, access)
        if access.refreshed_cookie:
            response.headers.add("Set-Cookie", access.refreshed_cookie)
        return response

    # -- the workspace and the settings link -----------------------------------------------------

    def load_workspace(self, slug: str) -> WorkspaceInfo | None:
        def work(unit: UnitOfWork) -> WorkspaceInfo | None:
            workspace = find_by_slug(unit, slug)
            return WorkspaceInfo.of(workspace) if workspace is not None else None

        return self.database.run(work, write=False)

    def check_link(self, page: Page, slug: str) -> tuple[SettingsLink, WorkspaceInfo] | Response:
        """The request's settings link and its workspace, or the page that refuses it."""
        try:
            link = read_settings_link(
                page.request.args.get(LINK_PARAMETER, ""),
                slug=slug,
                signing=self.sessions.signing,
                now=self.clock(),
            )
        except LinkRefused as refused:
            return page.forbidden(slug, sentence(refused.reason))
        workspace = self.load_workspace(slug)
        if workspace is None:
            return page.forbidden(slug, "This settings link is not valid.")
        return link, workspace

    def used_link(self, page: Page, slug: str, workspace: WorkspaceInfo) -> Response:
        clean = redirect(page.site.link(settings_path(slug)), code=303)
        live = self.settings_sessions.read(page.request.environ, slug)
        if live is not None and live.workspace_id == workspace.id:
            return page.secured(clean)  # the same browser, back again: already in
        return page.forbidden(
            slug,
            "This settings link was already used: a link opens the page once. Ask for a new one.",
        )

    def show_link(self, page: Page, slug: str) -> Response:
        """A page whose one button redeems the link; nothing is used up by showing it."""
        checked = self.check_link(page, slug)
        if isinstance(checked, Response):
            return checked
        link, workspace = checked
        if self.database.run(
            lambda unit: settings_store.link_redeemed(
                unit, workspace_id=workspace.id, nonce=link.nonce
            ),
            write=False,
        ):
            return self.used_link(page, slug, workspace)
        return page.html(templates.open_link_page(slug, expires=link.expires, nonce=page.nonce))

    def redeem_link(self, page: Page, slug: str) -> Response:
        """Redeem a settings link once, start the owner-settings session in the same
        transaction, and send the browser to the clean URL so the token leaves the address bar."""
        checked = self.check_link(page, slug)
        if isinstance(checked, Response):
            return checked
        link, workspace = checked
        # Another site's page posting a link into this browser (say, the attacker's own link, to
        # plant a session) gets the button page instead: only a press on ours redeems it.
        if page.request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return page.html(templates.open_link_page(slug, expires=link.expires, nonce=page.nonce))
        keep_until = dt.datetime.fromtimestamp(link.expires_at + CLOCK_TOLERANCE, dt.UTC)

        def work(unit: UnitOfWork) -> str | None:
            if not replay_cache.redeem_settings_link(
                unit, workspace_id=workspace.id, nonce=link.nonce, expires_at=keep_until
            ):
                return None
            cookie, _ = self.settings_sessions.start(
                unit, slug, workspace.id, script_root=page.site.root
            )
            return cookie

        cookie = self.database.run(work)
        if cookie is None:
            return self.used_link(page, slug, workspace)
        clean = redirect(page.site.link(settings_path(slug)), code=303)
        clean.headers.add("Set-Cookie", cookie)
        return page.secured(clean)

    # -- showing ---------------------------------------------------------------------------------

    def show(
        self,
        page: Page,
        access: Access,
        *,
        notices: tuple[Notice, ...] = (),
        new_token: str | None = None,
        entered_url: str = "",
        status: int = 200,
        paging: bool = True,
    ) -> Response:
        args = page.request.args if paging else MultiDict()  # a POST's page: the first
        state = args.get("state", "all")
        state = state if state in member_store.DIRECTORY_STATES else "all"
        try:
            number = max(1, int(args.get("page", "1")))
        except ValueError:
            number = 1
        tested_nonce = args.get("tested", "")[:64] if paging else ""
        tested = bool(tested_nonce)
        slug = access.workspace.slug

        def work(unit: UnitOfWork) -> tuple[SettingsView, sp_keys_section.SpKeysView]:
            row = find_by_slug(unit, slug)
            if row is None:
                raise LookupError(slug)  # deleted since the access check
            workspace = WorkspaceInfo.of(row)
            idp_row = identity_providers.find(unit, row.id)
            total, entries = member_store.directory(
                unit,
                row.id,
                state=state,
                offset=(number - 1) * MEMBERS_PER_PAGE,
                limit=MEMBERS_PER_PAGE,
            )
            last_page = max(1, -(-total // MEMBERS_PER_PAGE))
            current = min(number, last_page)
            if current != number:  # past the end (members left since): show the last page
                total, entries = member_store.directory(
                    unit,
                    row.id,
                    state=state,
                    offset=(current - 1) * MEMBERS_PER_PAGE,
                    limit=MEMBERS_PER_PAGE,
                )
            view = SettingsView(
                workspace=workspace,
                urls=page.site.workspace(slug),
                action_url=page.site.link(settings_path(slug)),
                # ``next`` is relative to the mount point, as every ``next`` is (urls.py).
                # A link, not a form: the page's CSP (form-action 'self') would stop a form's
                # redirect on its way to the IdP. The ticket in it is this viewer's alone.
                home_url=page.home_url,
                test_url=page.site.link(workspace_path(slug, "login"))
                + "?"
                + urlencode({"test": self.sign_in_tests.ticket(row.id, access.bindings[0])[0]}),
                viewer=access.viewer,
                csrf_token=self.csrf.token(access.bindings[0]),
                can_close=access.by_link,
                idp=IdPInfo.of(idp_row) if idp_row is not None else None,
                token=live_token(unit, row.id),
                new_token=new_token,
                members_total=total,
                members=entries,
                state=state,
                page=current,
                per_page=MEMBERS_PER_PAGE,
                failures=diagnostics.recent_failures(unit, row.id),
                test_result=(
                    diagnostics.test_result(unit, row.id, tested_nonce, access.bindings)
                    if tested
                    else None
                ),
                tested=tested,
                notices=notices,
                declared_roles=self.settings.roles,
                default_role=self.settings.default_role,
                entered_metadata_url=entered_url,
            )
            return view, sp_keys_section.load(unit, row.id, self.sp_keys)

        try:
            view, sp_keys = self.database.run(work, write=False)
        except LookupError:
            return page.forbidden(slug, "There is no such workspace any more.")
        return page.html(
            templates.settings_page(view, nonce=page.nonce, sp_keys=sp_keys), status=status
        )

    def certificate(self, page: Page, access: Access, state: str) -> Response:
        """The current or next SP certificate as a PEM file, for an IdP that takes a file.
        Certificates only: the SP metadata publishes them anyway; a private key never leaves
        sp_keys/."""
        slug = access.workspace.slug
        if state not in sp_keys_section.DOWNLOADABLE:
            return page.message("Not found", ["There is no such certificate."], status=404)

        def work(unit: UnitOfWork) -> str | None:
            row = find_by_slug(unit, slug)
            stored = sp_store.keys(unit, row.id).get(state) if row is not None else None
            return stored.certificate_pem if stored is not None else None

        pem = self.database.run(work, write=False)
        if pem is None:
            return page.message(
                "Not found", [f"This workspace has no {state} SP key right now."], status=404
            )
        response = Response(pem, content_type="application/x-pem-file")
        response.headers["Content-Disposition"] = f'attachment; filename="{slug}-sp-{state}.crt"'
        return page.secured(response)
