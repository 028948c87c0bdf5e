"""The SAML endpoints under /saml/ (INTERFACE.md) as a plain WSGI app.

/saml/<slug>/metadata   SP metadata (also the SP entity ID)
/saml/<slug>/acs        Assertion Consumer Service, HTTP-POST
/saml/<slug>/login      SP-initiated sign-in: AuthnRequest by HTTP-Redirect
/saml/login             "Sign in with SSO": email -> workspace -> its IdP
/saml/logout            ends the session (logout.py)
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from ..errors import StoreUnavailable
from ..store import audit
from ..store import sign_in as sign_in_store
from ..store.db import Database
from ..store.identity_providers import refresh_if_due
from ..store.models import SSO_PLANS, IdentityProvider, Member, MemberValue, Workspace, utcnow
from ..store.workspaces import find_by_slug
from ..urls import WorkspaceUrls
from .acs import AssertionConsumer, Rejection, VerifiedAssertion, decode, peek
from .logout import LogoutPage
from .pages import error_page, page
from .redirects import safe_next
from .sp import IdPSettings, ServiceProvider, ServiceProviders

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from ..config import Settings
    from ..sessions import SessionManager

log = logging.getLogger(__name__)

URL_MAP = Map([
    Rule("/saml/login", endpoint="sign_in_page", methods=["GET", "POST"]),
    Rule("/saml/logout", endpoint="logout", methods=["GET", "POST"]),
    Rule("/saml/<slug>/metadata", endpoint="metadata", methods=["GET"]),
    Rule("/saml/<slug>/acs", endpoint="acs", methods=["POST"]),
    Rule("/saml/<slug>/login", endpoint="start_login", methods=["GET"]),
], strict_slashes=False, merge_slashes=False)


class SamlApplication:
    def __init__(self, database: Database, *, settings: Settings, sessions: SessionManager) -> None:
        self.database = database
        self.settings = settings
        self.sessions = sessions
        self.clock_skew = dt.timedelta(seconds=settings.clock_skew_seconds)
        self.providers = ServiceProviders(clock_skew=self.clock_skew)
        self.logout = LogoutPage(sessions, secret_keys=list(settings.secret_key))

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

    def workspace(self, session: Session, slug: str) -> Workspace:
        workspace = find_by_slug(session, slug)
        if workspace is None:
            raise Rejection("unknown_workspace", "there is no such workspace", status=404)
        return workspace

    def provider(self, request: Request, workspace: Workspace, session: Session) -> ServiceProvider:
        row = session.get(IdentityProvider, workspace.id)
        idp = None
        if row is not None:
            idp = IdPSettings(
                entity_id=row.entity_id,
                metadata_xml=row.metadata_xml,
                allow_idp_initiated=row.allow_idp_initiated,
                version=f"{row.fetched_at.isoformat()}|{row.modified_at.isoformat()}",
            )
        return self.providers.get(self.urls(request, workspace.slug), idp)

    def usable_provider(self, request: Request, slug: str, session: Session) -> tuple[Workspace, ServiceProvider]:
        """The workspace and its SP, when SSO can be used there right now."""
        workspace = self.workspace(session, slug)
        if workspace.plan not in SSO_PLANS:
            raise Rejection("plan", "single sign-on needs the Plus or Premium plan", status=403)
        if not workspace.sso_enabled:
            raise Rejection("sso_disabled", "single sign-on is switched off for this workspace",
                            status=403)
        provider = self.provider(request, workspace, session)
        if provider.idp is None:
            raise Rejection("idp_not_configured", "this workspace has no identity provider yet",
                            status=403)
        return workspace, provider

    def refresh_metadata(self, slug: str) -> None:
        workspace_id = self.database.run(
            lambda s: (w.id if (w := find_by_slug(s, slug)) else None), write=False)
        if workspace_id is not None:
            refresh_if_due(self.database, workspace_id)

    # -- endpoints ----------------------------------------------------------------------------

    def metadata(self, request: Request, slug: str) -> Response:
        def work(session: Session) -> str | None:
            workspace = find_by_slug(session, slug)
            return self.provider(request, workspace, session).metadata_xml() if workspace else None

        xml = self.database.run(work, write=False)
        if xml is None:
            return error_page("Not found", "There is no such workspace.", status=404)
        return Response(xml, content_type="application/samlmetadata+xml; charset=utf-8")

    def start_login(self, request: Request, slug: str) -> Response:
        next_path = safe_next(request.args.get("next"))
        try:
            self.refresh_metadata(slug)

            def work(session: Session) -> str:
                workspace, provider = self.usable_provider(request, slug, session)
                relay_state = sign_in_store.new_relay_state()
                request_id, location = provider.authn_request(relay_state)
                sign_in_store.remember_request(
                    session, workspace_id=workspace.id, request_id=request_id,
                    relay_state=relay_state, next_path=next_path)
                return location

            location = self.database.run(work)
        except Rejection as rejection:
            return error_page("Single sign-on unavailable", rejection.detail,
                              reason=rejection.code, status=rejection.status)
        return redirect(location, code=302)

    def acs(self, request: Request, slug: str) -> Response:
        saml_response = request.form.get("SAMLResponse")
        relay_state = request.form.get("RelayState")
        try:
            document = decode(saml_response)
            seen = peek(document)
            self.refresh_metadata(slug)
            return self.database.run(
                lambda s: self.sign_in(request, s, slug, document, seen, relay_state))
        except Rejection as rejection:
            self.record_failure(slug, rejection)
            return error_page("Sign-in failed", rejection.detail, reason=rejection.code,
                              status=rejection.status)

    def sign_in(self, request: Request, session: Session, slug: str, document: bytes,
                seen: Any, relay_state: str | None) -> Response:
        workspace, provider = self.usable_provider(request, slug, session)
        outstanding = sign_in_store.outstanding(session, workspace.id, seen.in_response_to)
        consumer = AssertionConsumer(provider, clock_skew=self.clock_skew)
        verified = consumer.consume(document, seen, outstanding, now=utcnow())
        if not sign_in_store.remember_assertion(
                session, workspace_id=workspace.id, assertion_id=verified.assertion_id,
                expires_at=verified.expires_at):
            raise Rejection("replayed", "this sign-in response was already used")
        if verified.in_response_to and not sign_in_store.consume_request(
                session, workspace.id, verified.in_response_to):
            raise Rejection("unknown_in_response_to", "the sign-in request was already used")
        member = self.member_at_login(session, workspace, verified)
        if member is None:
            return error_page("Account deactivated", "Your account in this workspace is "
                              "deactivated. Ask your administrator to reactivate it.",
                              reason="member_deactivated", status=403)
        cookie = self.sessions.start(member.id, workspace.id, session)
        if verified.in_response_to:
            target = outstanding.get(verified.in_response_to, "/")
        else:
            target = self.relay_target(session, workspace.id, relay_state)
        response = redirect(safe_next(target), code=303)
        response.headers.add("Set-Cookie", cookie)
        return response

    def relay_target(self, session: Session, workspace_id: int, relay_state: str | None) -> str:
        """Okta sends its configured default RelayState with IdP-initiated sign-in."""
        if relay_state and not relay_state.startswith("/"):
            return sign_in_store.next_for_relay_state(session, workspace_id, relay_state) or "/"
        return safe_next(relay_state)

    def member_at_login(self, session: Session, workspace: Workspace,
                        verified: VerifiedAssertion) -> Member | None:
        """The member signing in, created at first login; None when deactivated."""
        member = sign_in_store.member_for_login(session, workspace.id, verified.email)
        now = utcnow()
        if member is None:
            member = Member(workspace_id=workspace.id, user_name=verified.email,
                            user_name_key=verified.email.lower(), email_key=verified.email.lower(),
                            source="sso", active=True)
            session.add(member)
            action = "created"
        elif not member.active:
            audit.record(session, workspace_id=workspace.id, actor="saml", action="login_refused",
                         target_type="member", target_id=member.id,
                         changes={"reason": "member_deactivated", "email": verified.email})
            return None
        else:
            action = "signed_in"
        changes = _refresh_profile(member, verified)
        member.last_login_at = now
        if changes:
            member.modified_at = now
        session.flush()
        if action == "created":
            session.add(MemberValue(member_id=member.id, attribute="emails", position=0,
                                    value=verified.email, value_key=verified.email.lower(),
                                    type="work", primary=True))
        audit.record(session, workspace_id=workspace.id, actor="saml", action=action,
                     target_type="member", target_id=member.id, changes=changes)
        return member

    def record_failure(self, slug: str, rejection: Rejection) -> None:
        log.info("SAML response for %s rejected: %s", slug, rejection)
        try:
            def work(session: Session) -> None:
                workspace = find_by_slug(session, slug)
                if workspace is not None:
                    audit.record(session, workspace_id=workspace.id, actor="saml",
                                 action="login_failed", target_type="login", target_id=None,
                                 changes={"reason": rejection.code, "detail": rejection.detail})

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


def _refresh_profile(member: Member, verified: VerifiedAssertion) -> dict[str, Any]:
    """Names from the assertion win: the IdP is the source of truth for them."""
    changes: dict[str, Any] = {}
    for column, value in (("given_name", verified.given_name),
                          ("family_name", verified.family_name),
                          ("display_name", verified.display_name)):
        if value is not None and getattr(member, column) != value:
            changes[column] = {"from": getattr(member, column), "to": value}
            setattr(member, column, value)
    if member.display_name is None and (verified.given_name or verified.family_name):
        member.display_name = " ".join(p for p in (verified.given_name, verified.family_name) if p)
    return changes

