"""The SAML endpoints under /saml/ (INTERFACE.md) as a plain WSGI app.

/saml/<slug>/metadata   SP metadata (also the SP entity ID)
/saml/<slug>/acs        Assertion Consumer Service, HTTP-POST
/saml/<slug>/login      SP-initiated sign-in: AuthnRequest by HTTP-Redirect
/saml/login             "Sign in with SSO": email -> workspace -> its IdP
/saml/logout            ends the session (logout.py)
/saml/<slug>/settings   the workspace owner's settings page (admin/views.py)
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from ..admin.views import SettingsPage
from ..bodies import read_form
from ..errors import StoreUnavailable
from ..store import audit
from ..store import sign_in as sign_in_store
from ..store.db import Database, UnitOfWork
from ..store.identity_providers import refresh_if_due
from ..store.models import SSO_PLANS, utcnow
from ..store.sign_in import SignInTarget
from ..store.workspaces import find_by_slug
from ..urls import WorkspaceUrls
from .acs import AssertionConsumer, Rejection, VerifiedAssertion, claimed_email, decode, peek
from .logout import LogoutPage
from .metadata import MetadataFetcher
from .pages import error_page, page
from .redirects import safe_next
from .sp import IdPSettings, ServiceProvider, ServiceProviders

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from ..config import Settings
    from ..sessions import SessionManager

log = logging.getLogger(__name__)

# Metadata refreshes are due hours apart: a worker need not ask on every sign-in.
METADATA_CHECK_INTERVAL = 60.0

URL_MAP = Map([
    Rule("/saml/login", endpoint="sign_in_page", methods=["GET", "POST"]),
    Rule("/saml/logout", endpoint="logout", methods=["GET", "POST"]),
    Rule("/saml/<slug>/metadata", endpoint="metadata", methods=["GET"]),
    Rule("/saml/<slug>/acs", endpoint="acs", methods=["POST"]),
    Rule("/saml/<slug>/login", endpoint="start_login", methods=["GET"]),
    Rule("/saml/<slug>/settings", endpoint="settings_page", methods=["GET", "POST"]),
], strict_slashes=False, merge_slashes=False)


class SamlApplication:
    def __init__(self, database: Database, *, settings: Settings, sessions: SessionManager) -> None:
        self.database = database
        self.settings = settings
        self.sessions = sessions
        self.clock_skew = dt.timedelta(seconds=settings.clock_skew_seconds)
        self.providers = ServiceProviders(clock_skew=self.clock_skew)
        self.logout = LogoutPage(sessions, secret_keys=list(settings.secret_key))
        self.fetch_metadata = MetadataFetcher.from_settings(settings)
        self.settings_page_app = SettingsPage(database, settings=settings, sessions=sessions,
                                              fetch=self.fetch_metadata)
        self._metadata_checked: dict[str, float] = {}  # slug -> monotonic time of the last check

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = self.settings.max_body_bytes
        try:
            endpoint, args = URL_MAP.bind_to_environ(environ).match()
            if endpoint == "logout":
                return self.logout(environ, start_response)
            response = getattr(self, endpoint)(request, **args)
        except RequestEntityTooLarge:
            response = error_page("Request too large", "The sign-in response was larger than "
                                  "this site accepts.", reason="too_large", status=413)
        except HTTPException as exc:
            response = error_page(exc.name, exc.description or exc.name, status=exc.code or 400)
        except (StoreUnavailable, OperationalError):
            log.warning("SAML request failed: database unavailable", exc_info=True)
            response = error_page("Please try again", "Sign-in is briefly unavailable. "
                                  "Please try again in a moment.", reason="store_unavailable",
                                  status=503)
        except Exception:
            log.exception("unexpected error in SAML %s %s", request.method, request.path)
            response = error_page("Something went wrong", "Sign-in failed on our side.",
                                  reason="internal_error", status=500)
        return response(environ, start_response)

    # -- helpers ------------------------------------------------------------------------------

    def urls(self, request: Request, slug: str) -> WorkspaceUrls:
        base = self.settings.base_url or (request.host_url.rstrip("/") + request.script_root)
        return WorkspaceUrls(base, slug)

    def target(self, connection: Connection, slug: str) -> SignInTarget:
        target = sign_in_store.sign_in_target(connection, slug)
        if target is None:
            raise Rejection("unknown_workspace", "there is no such workspace", status=404)
        return target

    def provider(self, request: Request, target: SignInTarget,
                 connection: Connection) -> ServiceProvider:
        def load() -> IdPSettings | None:
            xml = sign_in_store.idp_metadata_xml(connection, target.workspace_id)
            if xml is None or target.idp_entity_id is None or target.idp_version is None:
                return None
            return IdPSettings(entity_id=target.idp_entity_id, metadata_xml=xml,
                               allow_idp_initiated=target.allow_idp_initiated,
                               version=target.idp_version)

        return self.providers.get(self.urls(request, target.slug), target.idp_version, load)

    def usable_provider(self, request: Request, slug: str,
                        connection: Connection) -> tuple[SignInTarget, ServiceProvider]:
        """The workspace and its SP, when SSO can be used there right now."""
        target = self.target(connection, slug)
        if target.plan not in SSO_PLANS:
            raise Rejection("plan", "single sign-on needs the Plus or Premium plan", status=403)
        if not target.sso_enabled:
            raise Rejection("sso_disabled", "single sign-on is switched off for this workspace",
                            status=403)
        provider = self.provider(request, target, connection)
        if provider.idp is None:
            raise Rejection("idp_not_configured", "this workspace has no identity provider yet",
                            status=403)
        return target, provider

    def refresh_metadata(self, slug: str) -> None:
        """Refresh the IdP metadata when due; asked of the database at most once a minute."""
        now = time.monotonic()
        if self._metadata_checked.get(slug, -METADATA_CHECK_INTERVAL) > now - METADATA_CHECK_INTERVAL:
            return
        workspace_id = self.database.run(
            lambda s: (w.id if (w := find_by_slug(s, slug)) else None), write=False)
        if workspace_id is not None:
            refresh_if_due(self.database, workspace_id, fetch=self.fetch_metadata)
        if len(self._metadata_checked) > 10_000:
            self._metadata_checked.clear()
        self._metadata_checked[slug] = now

    # -- endpoints ----------------------------------------------------------------------------

    def settings_page(self, request: Request, slug: str) -> Response:
        return self.settings_page_app.respond(request, slug)  # admin/views.py

    def metadata(self, request: Request, slug: str) -> Response:
        def work(unit: UnitOfWork) -> str | None:
            target = sign_in_store.sign_in_target(unit.connection, slug)
            return self.provider(request, target, unit.connection).metadata_xml() if target else None

        xml = self.database.run_unit(work, write=False)
        if xml is None:
            return error_page("Not found", "There is no such workspace.", status=404)
        return Response(xml, content_type="application/samlmetadata+xml; charset=utf-8")

    def start_login(self, request: Request, slug: str) -> Response:
        next_path = safe_next(request.args.get("next"))
        try:
            self.refresh_metadata(slug)

            def work(unit: UnitOfWork) -> str:
                target, provider = self.usable_provider(request, slug, unit.connection)
                relay_state = sign_in_store.new_relay_state()
                request_id, location = provider.authn_request(relay_state)
                sign_in_store.remember_request(
                    unit.connection, workspace_id=target.workspace_id, request_id=request_id,
                    relay_state=relay_state, next_path=next_path)
                return location

            location = self.database.run_unit(work)
        except Rejection as rejection:
            return error_page("Single sign-on unavailable", rejection.detail,
                              reason=rejection.code, status=rejection.status)
        return redirect(location, code=302)

    def acs(self, request: Request, slug: str) -> Response:
        seen = None
        try:
            try:
                form = read_form(request, self.settings.max_body_bytes)
            except RequestEntityTooLarge:
                raise Rejection("too_large", "the sign-in response is larger than this site "
                                "accepts", status=413) from None
            relay_state = form.get("RelayState")
            document = decode(form.get("SAMLResponse"))
            seen = peek(document)
            self.refresh_metadata(slug)
            return self.database.run_unit(
                lambda unit: self.sign_in(request, unit, slug, seen, relay_state))
        except Rejection as rejection:
            self.record_failure(slug, rejection, claimed_email(seen))
            return error_page("Sign-in failed", rejection.detail, reason=rejection.code,
                              status=rejection.status)

    def sign_in(self, request: Request, unit: UnitOfWork, slug: str, seen: Any,
                relay_state: str | None) -> Response:
        connection = unit.connection
        target, provider = self.usable_provider(request, slug, connection)
        workspace_id = target.workspace_id
        outstanding = sign_in_store.outstanding(connection, workspace_id, seen.in_response_to)
        consumer = AssertionConsumer(provider, clock_skew=self.clock_skew)
        verified = consumer.consume(seen, outstanding, now=utcnow())
        if not sign_in_store.remember_assertion(
                connection, workspace_id=workspace_id, assertion_id=verified.assertion_id,
                expires_at=verified.expires_at):
            raise Rejection("replayed", "this sign-in response was already used")
        if verified.in_response_to and not sign_in_store.consume_request(
                connection, workspace_id, verified.in_response_to):
            raise Rejection("unknown_in_response_to", "the sign-in request was already used")
        member = self.member_at_login(connection, workspace_id, verified)
        if member is None:
            return error_page("Account deactivated", "Your account in this workspace is "
                              "deactivated. Ask your administrator to reactivate it.",
                              reason="member_deactivated", status=403)
        member_id, generation = member
        cookie = self.sessions.start(member_id, workspace_id, unit, generation=generation)
        if verified.in_response_to:
            target_path = outstanding.get(verified.in_response_to, "/")
        else:
            target_path = self.relay_target(connection, workspace_id, relay_state)
        response = redirect(safe_next(target_path), code=303)
        response.headers.add("Set-Cookie", cookie)
        return response

    def relay_target(self, connection: Connection, workspace_id: int,
                     relay_state: str | None) -> str:
        """Okta sends its configured default RelayState with IdP-initiated sign-in."""
        if relay_state and not relay_state.startswith("/"):
            return sign_in_store.next_for_relay_state(connection, workspace_id, relay_state) or "/"
        return safe_next(relay_state)

    def member_at_login(self, connection: Connection, workspace_id: int,
                        verified: VerifiedAssertion) -> tuple[str, int] | None:
        """(member id, session generation) of the member signing in, created at first login;
        None when deactivated."""
        now = utcnow()
        member = sign_in_store.login_member(connection, workspace_id, verified.email)
        if member is None:
            profile = _profile(None, verified)
            member_id = sign_in_store.create_member_at_login(
                connection, workspace_id, verified.email, now=now, profile=profile)
            audit.record(connection, workspace_id=workspace_id, actor="saml", action="created",
                         target_type="member", target_id=member_id,
                         changes={"email": verified.email, "source": "sso"})
            return member_id, 0
        if not member.active:
            audit.record(connection, workspace_id=workspace_id, actor="saml",
                         action="login_refused", target_type="member", target_id=member.id,
                         changes={"reason": "member_deactivated", "email": verified.email})
            return None
        profile = _profile(member, verified)
        sign_in_store.record_login(connection, member.id, now=now, profile=profile)
        audit.record(connection, workspace_id=workspace_id, actor="saml", action="signed_in",
                     target_type="member", target_id=member.id, changes=profile)
        return member.id, member.session_generation

    def record_failure(self, slug: str, rejection: Rejection, email: str | None = None) -> None:
        log.info("SAML response for %s rejected: %s", slug, rejection)
        try:
            def work(session: Session) -> None:
                workspace = find_by_slug(session, slug)
                if workspace is not None:
                    audit.record(session, workspace_id=workspace.id, actor="saml",
                                 action="login_failed", target_type="login", target_id=None,
                                 changes={"reason": rejection.code, "detail": rejection.detail,
                                          # unverified: what the refused response claimed
                                          **({"email": email} if email else {})})

            self.database.run(work)
        except Exception:  # the rejection page matters more than its record
            log.warning("could not record a SAML rejection", exc_info=True)

    def sign_in_page(self, request: Request) -> Response:
        next_path = safe_next(request.values.get("next"))
        if request.method == "GET":
            return page("Sign in with SSO", _email_form(next_path))
        email = (request.form.get("email") or "").strip()
        if "@" in email and len(email) <= 320:
            found = self.database.run(
                lambda s: [(w.slug, w.name) for w in sign_in_store.workspaces_for_email(s, email)],
                write=False)
        else:
            found = []
        if len(found) == 1:
            return redirect(f"/saml/{found[0][0]}/login?" + urlencode({"next": next_path}), code=303)
        if len(found) > 1:
            items = "".join(
                f'<li><a class="button" href="/saml/{escape(slug)}/login?'
                f'{escape(urlencode({"next": next_path}))}">{escape(name)}</a></li>'
                for slug, name in found)
            return page("Choose your workspace", f'<ul class="choices">{items}</ul>')
        # The same answer for an unknown email, SSO switched off or no IdP: no enumeration.
        message = ("<p>We could not start single sign-on for that address. If your organisation "
                   "uses SSO, check the address or ask your administrator.</p>")
        return page("Sign in with SSO", message + _email_form(next_path))


def _email_form(next_path: str) -> str:
    return (
        '<form method="post" action="/saml/login">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<label for="email">Work email</label>'
        '<input id="email" name="email" type="email" autocomplete="email" required autofocus>'
        '<button type="submit">Continue</button></form>'
    )


def _profile(member: sign_in_store.LoginMember | None,
             verified: VerifiedAssertion) -> dict[str, str]:
    """Names from the assertion that differ from the member's: the IdP is their source."""
    current = {"given_name": member.given_name, "family_name": member.family_name,
               "display_name": member.display_name} if member else {}
    wanted = {"given_name": verified.given_name, "family_name": verified.family_name,
              "display_name": verified.display_name or " ".join(
                  p for p in (verified.given_name, verified.family_name) if p) or None}
    if member is not None and member.display_name and not verified.display_name:
        del wanted["display_name"]  # keep a display name SCIM set when the IdP sends none
    return {k: v for k, v in wanted.items() if v is not None and current.get(k) != v}
