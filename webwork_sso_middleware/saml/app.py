"""The SAML endpoints as a plain WSGI app, mounted at ``/saml``; the routes are
relative, since middleware.py moves the prefix to SCRIPT_NAME, and URLs come from urls.py.

/<slug>/metadata   SP metadata (also the SP entity ID)
/<slug>/acs        Assertion Consumer Service, HTTP-POST        (login_flow.py)
/<slug>/login      SP-initiated sign-in: AuthnRequest by HTTP-Redirect      (login_flow.py)
/<slug>/continue   finishes an IdP-initiated sign-in on a same-site GET     (login_flow.py)
/<slug>/slo        single logout, HTTP-Redirect and HTTP-POST           (single_logout.py)
/login             "Sign in with SSO": email -> workspace -> its IdP
/logout            ends the session (logout.py)

``/saml/<slug>/settings`` is the settings page's (admin/views.py), which the middleware mounts
beside this app.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from ..errors import InvalidName, StoreUnavailable
from ..logs import package_logger
from ..members import lifecycle
from ..metrics import NO_METRICS, Metrics
from ..store import sign_in_target as target_store
from ..store.db import Database, UnitOfWork
from ..store.workspaces import SLUG_PATTERN
from ..urls import PublicUrls, workspace_path
from .login_flow import LOGIN_HINT, LoginFlow
from .logout import LogoutPage
from .pages import SIGN_IN_FORM_ACTION, email_form, error_page, page, workspace_form
from .redirects import safe_next
from .single_logout import SingleLogout

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from ..config import Settings
    from ..sessions import SessionManager

log = package_logger(__name__)

URL_MAP = Map(
    [
        Rule("/login", endpoint="sign_in_page", methods=["GET", "POST"]),
        Rule("/logout", endpoint="logout", methods=["GET", "POST"]),
        Rule("/<slug>/metadata", endpoint="metadata", methods=["GET"]),
        Rule("/<slug>/acs", endpoint="acs", methods=["POST"]),
        Rule("/<slug>/login", endpoint="start_login", methods=["GET"]),
        Rule("/<slug>/continue", endpoint="continue_sign_in", methods=["GET"]),
        Rule("/<slug>/slo", endpoint="single_logout", methods=["GET", "POST"]),
    ],
    strict_slashes=False,
    merge_slashes=False,
)


class SamlApplication:
    def __init__(
        self,
        database: Database,
        *,
        settings: Settings,
        sessions: SessionManager,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.database = database
        self.settings = settings
        self.sessions = sessions
        self.metrics = metrics
        self.flow = LoginFlow(database, settings=settings, sessions=sessions, metrics=metrics)
        self.slo = SingleLogout(self.flow)
        self.logout = LogoutPage(sessions, base_url=settings.base_url, single_logout=self.slo)
        # The sign-in flow's endpoints (login_flow.py); the others are methods here.
        self.flow_endpoints = {
            "start_login": self.flow.start_login,
            "acs": self.flow.acs,
            "continue_sign_in": self.flow.continue_sign_in,
            "single_logout": self.slo.endpoint,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        request = Request(environ)
        request.max_content_length = self.settings.max_body_bytes
        endpoint = None
        try:
            endpoint, args = URL_MAP.bind_to_environ(environ).match()
            if endpoint == "logout":
                return self.logout(environ, start_response)
            handler = self.flow_endpoints.get(endpoint) or getattr(self, endpoint)
            response = handler(request, **args)
        except RequestEntityTooLarge:
            response = error_page(
                "Request too large",
                "The sign-in response was larger than this site accepts.",
                site=self.flow.site(request),
                reason="too_large",
                status=413,
            )
        except HTTPException as exc:
            response = error_page(
                exc.name,
                exc.description or exc.name,
                site=self.flow.site(request),
                status=exc.code or 400,
            )
        except (StoreUnavailable, OperationalError):
            log.warning("SAML request failed: database unavailable", exc_info=True)
            self._count_error(endpoint, "store_unavailable")
            response = error_page(
                "Please try again",
                "Sign-in is briefly unavailable. Please try again in a moment.",
                site=self.flow.site(request),
                reason="store_unavailable",
                status=503,
            )
        except Exception:
            log.exception("unexpected error in SAML %s %s", request.method, request.path)
            self._count_error(endpoint, "internal_error")
            response = error_page(
                "Something went wrong",
                "Sign-in failed on our side.",
                site=self.flow.site(request),
                reason="internal_error",
                status=500,
            )
        if endpoint == "acs":
            self.metrics.acs_seconds(time.perf_counter() - started)
        return response(environ, start_response)

    def _count_error(self, endpoint: str | None, reason: str) -> None:
        """A sign-in that failed on our side (the flow counts every other outcome itself)."""
        if endpoint in ("acs", "continue_sign_in"):
            self.metrics.sign_in("error", reason)

    # -- endpoints ----------------------------------------------------------------------------

    def metadata(self, request: Request, slug: str) -> Response:
        """SP metadata, for any workspace that exists, whatever its plan, switches or IdP.

        Public by design: an IdP admin pastes this URL before anything else is set up, and the
        document holds only URLs made from the slug (the same for every state of the
        workspace). That an unknown slug gets 404 here tells a stranger a workspace exists,
        nothing more: slugs are not secret (every sign-in URL carries one), and serving made-up
        metadata for any slug would let a mistyped slug be configured in an IdP that can never
        sign anyone in."""

        self.flow.keys.ensure(slug)

        def work(unit: UnitOfWork) -> str | None:
            target = target_store.sign_in_target(unit, slug)
            return self.flow.provider(request, target, unit).metadata_xml() if target else None

        xml = self.database.run(work, write=False)
        if xml is None:
            return error_page(
                "Not found", "There is no such workspace.", site=self.flow.site(request), status=404
            )
        return Response(xml, content_type="application/samlmetadata+xml; charset=utf-8")

    def sign_in_page(self, request: Request) -> Response:
        """ "Sign in with SSO": an email goes to the workspace that verified its domain.

        The answer depends on the address's domain only, never on who is a member where: an
        address no verified domain covers gets the same page whether or not anyone knows it,
        and there the person can name their workspace instead.
        """
        site = self.flow.site(request)
        next_path = safe_next(request.values.get("next"))
        if request.method == "GET":
            return page(
                "Sign in with SSO", email_form(site, next_path), form_action=SIGN_IN_FORM_ACTION
            )
        email = (request.form.get("email") or "").strip()[:320]
        workspace = (request.form.get("workspace") or "").strip().lower()
        if workspace:
            if not SLUG_PATTERN.match(workspace):
                return page(
                    "Sign in with SSO",
                    "<p>That is not a workspace ID: it has only "
                    "lower-case letters, digits and dashes.</p>"
                    + workspace_form(site, next_path, email),
                    form_action=SIGN_IN_FORM_ACTION,
                )
            # No existence check here: /saml/<slug>/login answers every slug alike.
            return _start_login(site, workspace, next_path, email)
        slug = None
        try:
            _, _, domain = lifecycle.address_key(email, "email")
        except InvalidName:
            domain = None
        if domain is not None:
            slug = self.database.run(
                lambda unit: target_store.sso_workspace_for_domain(unit, domain), write=False
            )
        if slug is not None:
            return _start_login(site, slug, next_path, email)
        message = (
            "<p>Single sign-on is not set up for that address's domain. If your "
            "organisation uses SSO, enter your workspace's ID (ask your administrator "
            "for it).</p>"
        )
        return page(
            "Sign in with SSO",
            message + workspace_form(site, next_path, email),
            form_action=SIGN_IN_FORM_ACTION,
        )


def _start_login(site: PublicUrls, slug: str, next_path: str, email: str = "") -> Response:
    """On to the workspace's SP-initiated sign-in, ``next`` kept (relative to the mount), and
    the typed address as the IdP's login hint (login_flow.py), so it need not be typed again."""
    login = site.link(workspace_path(slug, "login"))
    query = {"next": next_path} | ({LOGIN_HINT: email} if email else {})
    return redirect(f"{login}?" + urlencode(query), code=303)
