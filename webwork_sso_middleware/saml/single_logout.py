"""Single logout (SAML 2.0 SLO) at ``/saml/<slug>/slo``, HTTP-Redirect (GET) and HTTP-POST.

IdP-initiated: the IdP's LogoutRequest must be signed by a certificate of its metadata (the
query-string signature over the parameters as received, SAML bindings 3.4.4.1, or an enveloped
signature checked by crypto.py as strictly as the ACS checks a response), addressed to this
workspace's SLO URL, from the IdP's entity ID, fresh, and not seen before (the replay cache).
Then every live session of the workspace that a sign-in of that NameID started ends (only those
of the listed SessionIndex values, when any are listed): marked ended in the database, so this
worker drops it at commit and every other within its ``session_recheck_seconds``. The answer is
a LogoutResponse signed with the workspace's current SP key, sent to the IdP's
SingleLogoutService by Redirect (query signature) when offered, else by an auto-submitting POST
form. A refused request ends nothing and gets an error page with its reason code.

SP-initiated (``/saml/logout``, logout.py): the local session ends first, always; then, when the
IdP offers a SingleLogoutService and the sign-in named a NameID, a signed LogoutRequest goes to
the IdP, its ID kept in a short-lived signed cookie. The LogoutResponse comes back here: its
InResponseTo must match the cookie and its signature, when it has one, must verify. It changes
nothing (the session is over already), so an unsigned one is accepted to show the last page;
neither the IdP's refusal nor its silence can keep the local session alive.

This module holds the flow of both directions, the ``webwork_sso_logout`` cookie of pending
LogoutRequests and the pages a person sees. A message is read and checked before it is trusted
in logout_messages.py; ours are built, signed and sent in logout_bindings.py (in-process: a
query signature with ``cryptography``, an enveloped one with crypto.XmlsecBackend; pysaml2 is
not involved on either side).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import time
from html import escape
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from werkzeug.http import dump_cookie
from werkzeug.wrappers import Request, Response

from ..errors import SignatureRefused, StoreError
from ..logs import package_logger
from ..signing import Purpose
from ..store import replay_cache
from ..store import sessions as session_store
from ..store import sign_in_target as target_store
from ..store.db import UnitOfWork
from ..store.models import utcnow
from ..urls import PublicUrls, public_urls, workspace_path
from .logout_bindings import (
    BINDING_POST,
    BINDING_REDIRECT,
    RESPONDER,
    SUCCESS,
    autopost_page,
    idp_slo_endpoints,
    logout_request_xml,
    logout_response_xml,
    send,
)
from .logout_messages import (
    LOGOUT_RESPONSE,
    LogoutOrder,
    Received,
    check_destination,
    check_issuer,
    check_logout_request,
    receive,
    verify_signature,
)
from .pages import error_page, page
from .posted import SAMLP
from .redirects import safe_next
from .rejection import Rejection

if TYPE_CHECKING:
    from ..sessions import SessionCookie
    from .login_flow import LoginFlow
    from .sp import ServiceProvider

log = package_logger(__name__)

LOGOUT_COOKIE = "webwork_sso_logout"
LOGOUT_LIFETIME = dt.timedelta(minutes=10)
MAX_COOKIE_VALUE = 3800
COOKIE_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class PendingLogout:
    """A LogoutRequest this browser sent its IdP (the ``webwork_sso_logout`` cookie)."""

    workspace_id: int
    slug: str
    request_id: str
    next_path: str
    expires_at: int


class SingleLogout:
    """The ``/saml/<slug>/slo`` endpoint, and the LogoutRequest that ``/saml/logout`` sends."""

    def __init__(self, flow: LoginFlow) -> None:
        self.flow = flow
        self.database = flow.database
        self.sessions = flow.sessions
        self.clock_skew = flow.clock_skew
        self._cookies = flow.sessions.signing[Purpose.LOGOUT_REQUESTS]

    def site(self, request: Request) -> PublicUrls:
        return public_urls(request.environ, self.flow.settings.base_url)

    # -- /saml/<slug>/slo ------------------------------------------------------------------------

    def endpoint(self, request: Request, slug: str) -> Response:
        slug = slug.strip().lower()
        if request.method == "HEAD":
            # werkzeug answers HEAD by the GET rule: a HEAD (a link prefetcher, a monitor)
            # must neither act on nor use up a signed LogoutRequest.
            refused = error_page(
                "Method not allowed",
                "Use GET or POST.",
                site=self.site(request),
                status=405,
            )
            refused.headers["Allow"] = "GET, POST"
            return refused
        try:
            received = receive(request, self.flow.settings.max_body_bytes)
            if received.field == "SAMLRequest":
                return self.idp_logout(request, slug, received)
            return self.logout_answered(request, slug, received)
        except Rejection as rejection:
            log.info("single logout at %s refused: %s", slug, rejection)
            return error_page(
                "Sign-out failed",
                rejection.public_text,
                site=self.site(request),
                reason=rejection.public_code,
                status=rejection.status,
            )

    # -- IdP-initiated ---------------------------------------------------------------------------

    def idp_logout(self, request: Request, slug: str, received: Received) -> Response:
        self.flow.prepare(slug)  # the IdP's metadata (a rolled-over key) and our SP key
        cookie = self.sessions.read_cookie(request.environ)
        site = self.site(request)

        def work(unit: UnitOfWork) -> tuple[ServiceProvider, LogoutOrder, list[str]]:
            target, provider = self.flow.usable_provider(request, slug, unit)
            order = check_logout_request(provider, received, site, self.clock_skew)
            if not replay_cache.use_logout_request(
                unit,
                workspace_id=target.workspace_id,
                request_id=order.id,
                expires_at=order.remember_until,
            ):
                raise Rejection(
                    "slo_replayed", "this LogoutRequest was already acted on", repeatable=True
                )
            ended = session_store.end_saml_sessions(
                unit,
                workspace_id=target.workspace_id,
                name_id=order.name_id,
                session_indexes=order.session_indexes,
                now=utcnow(),
            )
            return provider, order, ended

        status = SUCCESS
        try:
            provider, order, ended = self.database.run(work)
        except (StoreError, SQLAlchemyError):
            # Verified, but the sessions could not be ended: the IdP hears so (Responder), and
            # may try again; nothing was recorded, so its retry is no replay.
            log.warning("single logout at %s: could not end the sessions", slug, exc_info=True)
            provider, order = self.database.run(
                lambda unit: self._verify_only(request, slug, unit, received, site), write=False
            )
            ended, status = [], RESPONDER
        log.info(
            "single logout at %s: the IdP ended %d session(s) of one subject", slug, len(ended)
        )
        response = self.answer(provider, order.id, status, received.relay_state, site)
        if cookie is not None and cookie.id_hash in ended:
            response.headers.add("Set-Cookie", self.sessions.clearing_cookie())
        return response

    def _verify_only(
        self, request: Request, slug: str, unit: UnitOfWork, received: Received, site: PublicUrls
    ) -> tuple[ServiceProvider, LogoutOrder]:
        _, provider = self.flow.usable_provider(request, slug, unit)
        return provider, check_logout_request(provider, received, site, self.clock_skew)

    def answer(
        self,
        provider: ServiceProvider,
        in_response_to: str,
        status: str,
        relay_state: str | None,
        site: PublicUrls,
    ) -> Response:
        """The LogoutResponse to the IdP; a page saying so when it offers no endpoint."""
        assert provider.idp is not None
        endpoints = idp_slo_endpoints(provider.idp.metadata_xml)
        key = provider.keys.current if provider.keys is not None else None
        endpoint = endpoints.get(BINDING_REDIRECT) or endpoints.get(BINDING_POST)
        if endpoint is None or key is None:
            return signed_out_page(site, "/", idp_told=False)
        destination = endpoint.response_location
        xml = logout_response_xml(provider.urls.sp_entity_id, destination, in_response_to, status)
        return send(endpoint, destination, "SAMLResponse", xml, key, relay_state)

    # -- SP-initiated ----------------------------------------------------------------------------

    def subject_of(self, cookie: SessionCookie) -> Any | None:
        """The session's workspace and SAML subject, read before the session ends."""
        return self.database.run(
            lambda unit: session_store.saml_subject(unit, cookie.id_hash), write=False
        )

    def logout_at_idp(self, request: Request, subject: Any, next_path: str) -> Response | None:
        """After the local session ended: the browser's way to the IdP with our signed
        LogoutRequest, or None when the IdP offers no single logout (or the sign-in named no
        NameID, or the workspace has no key or IdP now)."""
        if subject is None or not subject.saml_name_id:
            return None
        slug = subject.slug
        self.flow.keys.ensure(slug)

        def work(unit: UnitOfWork) -> ServiceProvider | None:
            target = target_store.sign_in_target(unit, slug)
            if target is None or target.workspace_id != subject.workspace_id:
                return None
            return self.flow.provider(request, target, unit)

        provider = self.database.run(work, write=False)
        if provider is None or provider.idp is None or provider.keys is None:
            return None
        key = provider.keys.current
        endpoints = idp_slo_endpoints(provider.idp.metadata_xml)
        endpoint = endpoints.get(BINDING_REDIRECT) or endpoints.get(BINDING_POST)
        if endpoint is None or key is None:
            return None
        request_id = "_" + secrets.token_hex(20)
        xml = logout_request_xml(
            request_id,
            provider.urls.sp_entity_id,
            endpoint.location,
            subject,
            not_on_or_after=utcnow() + LOGOUT_LIFETIME,
        )
        response = send(endpoint, endpoint.location, "SAMLRequest", xml, key, None)
        pending = PendingLogout(
            subject.workspace_id,
            slug,
            request_id,
            safe_next(next_path),
            int(time.time() + LOGOUT_LIFETIME.total_seconds()),
        )
        response.headers.add("Set-Cookie", self.pending_cookie(request, pending))
        return response

    def logout_answered(self, request: Request, slug: str, received: Received) -> Response:
        """The IdP's LogoutResponse to ours: the last page of an SP-initiated sign-out."""
        site = self.site(request)
        root = received.root
        if root.tag != f"{{{SAMLP}}}LogoutResponse":
            raise Rejection("slo_not_a_response", "the SAMLResponse is not a LogoutResponse")

        def work(unit: UnitOfWork) -> tuple[ServiceProvider, int]:
            # One answer for every workspace where SSO cannot be used (unknown, its plan, its
            # switch, no IdP), as for a LogoutRequest: an anonymous caller learns nothing.
            target, provider = self.flow.usable_provider(request, slug, unit)
            return provider, target.workspace_id

        provider, workspace_id = self.database.run(work, write=False)
        pending = self.read_pending(request, workspace_id)
        in_response_to = root.get("InResponseTo")
        if pending is None or not in_response_to or in_response_to != pending.request_id:
            raise Rejection(
                "slo_unknown_in_response_to",
                "the LogoutResponse answers a LogoutRequest this browser did not send, "
                "or one already answered or expired",
            )
        check_issuer(provider, root, required=False)
        check_destination(provider.urls, root, site, required=False)
        # Unsigned is accepted: this answer only chooses the words of the page below.
        verify_signature(provider, received, LOGOUT_RESPONSE, required=False)
        status = root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
        confirmed = status is not None and status.get("Value") == SUCCESS
        response = signed_out_page(site, pending.next_path, idp_told=True, confirmed=confirmed)
        response.headers.add("Set-Cookie", self.clearing_pending_cookie(request))
        return response

    # -- the pending-logout cookie ---------------------------------------------------------------

    def cookie_path(self, request: Request) -> str:
        # /saml/: the IdP may answer at /saml/<slug>/slo or, set up so, at /saml/logout.
        return self.site(request).link("/saml/")

    def pending_cookie(self, request: Request, pending: PendingLogout) -> str:
        value = str(
            self._cookies.dumps(
                [
                    COOKIE_FORMAT,
                    pending.workspace_id,
                    pending.slug,
                    pending.request_id,
                    pending.next_path,
                    pending.expires_at,
                ]
            )
        )
        return self._set_cookie(request, value, int(LOGOUT_LIFETIME.total_seconds()))

    def clearing_pending_cookie(self, request: Request) -> str:
        return self._set_cookie(request, "", 0)

    def _set_cookie(self, request: Request, value: str, max_age: int) -> str:
        secure = self.site(request).base_url.startswith("https://")
        # The IdP's answer may be a cross-site POST: like the sign-in's, SameSite=None (with
        # Secure) on https, left out on plain http (development), where browsers treat it as Lax.
        return dump_cookie(
            LOGOUT_COOKIE,
            value,
            max_age=max_age,
            path=self.cookie_path(request),
            secure=secure,
            httponly=True,
            samesite="None" if secure else None,
        )

    def read_pending(self, request: Request, workspace_id: int | None) -> PendingLogout | None:
        """This browser's live pending logout (for ``workspace_id``, when given)."""
        now = time.time()
        for raw in request.cookies.getlist(LOGOUT_COOKIE)[:4]:
            if not raw or len(raw) > MAX_COOKIE_VALUE:
                continue
            try:
                payload = self._cookies.loads(raw)
            except SignatureRefused:
                continue
            pending = _pending(payload)
            if (
                pending is not None
                and pending.expires_at > now
                and (workspace_id is None or pending.workspace_id == workspace_id)
            ):
                return pending
        return None


def _pending(payload: Any) -> PendingLogout | None:
    if not (isinstance(payload, list) and len(payload) == 6 and payload[0] == COOKIE_FORMAT):
        return None
    _, workspace_id, slug, request_id, next_path, expires_at = payload
    if not (
        type(workspace_id) is int
        and isinstance(slug, str)
        and isinstance(request_id, str)
        and isinstance(next_path, str)
        and type(expires_at) is int
    ):
        return None
    return PendingLogout(workspace_id, slug, request_id, next_path, expires_at)


def signed_out_page(
    site: PublicUrls, next_path: str, *, idp_told: bool, confirmed: bool = True
) -> Response:
    if not idp_told:
        said = "You are signed out of this site."
    elif confirmed:
        said = "You are signed out of this site and of your identity provider."
    else:
        said = (
            "You are signed out of this site. Your identity provider did not confirm that it "
            "ended its own session: close the browser to be sure you are signed out there."
        )
    body = (
        f"<p>{escape(said)}</p>"
        f'<p><a href="{escape(site.link(safe_next(next_path)))}">Continue</a></p>'
    )
    return page("Signed out", body)


def forward_page(site: PublicUrls, slug: str, fields: dict[str, str]) -> Response:
    """The IdP's POST to /saml/logout, on to the workspace's SLO endpoint (logout.py)."""
    return autopost_page(site.link(workspace_path(slug, "slo")), fields)
