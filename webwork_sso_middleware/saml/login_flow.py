"""The SAML sign-in flow: start an SP-initiated login, consume the IdP's response at the ACS,
and finish an IdP-initiated sign-in on a same-site GET (login_state.py).

The routes that lead here live in app.py; the posted response is decoded and parsed in
posted.py, checked in acs.py, and a refusal recorded for the owner in failures.py.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from saml2 import BINDING_HTTP_POST
from saml2.client_base import SignOnError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from ..bodies import read_form
from ..identity import Member
from ..idp_metadata.fetching import MetadataFetcher
from ..logs import package_logger
from ..members import lifecycle
from ..metrics import NO_METRICS, Metrics
from ..sessions.manager import SamlSubject
from ..sessions.sign_in_tests import SignInTests
from ..sp_keys import SpKeyRing, SpKeys
from ..store import replay_cache
from ..store import roles as role_store
from ..store import sign_in as sign_in_store
from ..store import sign_in_target as target_store
from ..store.db import Database, UnitOfWork
from ..store.models import SSO_PLANS, utcnow
from ..store.sign_in_target import SignInTarget
from ..urls import PublicUrls, WorkspaceUrls, public_urls, workspace_path
from . import tested_sign_in
from .acs import AssertionConsumer, VerifiedAssertion
from .failures import record_failure, record_groups_dropped
from .login_state import (
    LoginRequest,
    LoginRequests,
    OtherMemberSignedIn,
    PendingSignIns,
    continue_url,
    is_cross_site,
    new_relay_state,
)
from .metadata_checks import MetadataChecks
from .pages import autopost_page, error_page, signed_in_as_other_page
from .posted import claimed_email, decode, peek
from .redirects import safe_next
from .rejection import Rejection, reason_label
from .sp import IdPSettings, OutgoingMessage, ServiceProvider, ServiceProviders

if TYPE_CHECKING:
    from ..config import Settings
    from ..sessions import SessionManager

log = package_logger(__name__)

# The address typed on the sign-in page, passed to the IdP beside the AuthnRequest as the query
# parameter Microsoft Entra ID reads (the dev IdP too); an IdP that does not know it ignores it.
# It only pre-fills the IdP's form: the assertion says who signed in, never this.
LOGIN_HINT = "login_hint"
MAX_LOGIN_HINT = 320

REPLAY_CACHE_PURGE_EVERY = (
    60.0  # seconds between deletions of expired replay-cache rows, per worker
)


class LoginFlow:
    """Start login, ACS, continue: every step of a sign-in, and what they share (the SP of a
    workspace, the browser's login cookies, the metadata checks)."""

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
        self.clock_skew = dt.timedelta(seconds=settings.clock_skew_seconds)
        self.providers = ServiceProviders(clock_skew=self.clock_skew)
        self.metadata = MetadataChecks(
            database, fetch_metadata=MetadataFetcher.from_settings(settings), metrics=metrics
        )
        self.keys = SpKeys(database, secret_keys=settings.secret_key)
        self.login_requests = LoginRequests(signing=sessions.signing)
        self.pending_sign_ins = PendingSignIns(signing=sessions.signing)
        self.sign_in_tests = SignInTests(signing=sessions.signing)
        self._next_purge = 0.0

    # -- helpers ------------------------------------------------------------------------------

    def site(self, request: Request) -> PublicUrls:
        return public_urls(request.environ, self.settings.base_url)

    def urls(self, request: Request, slug: str) -> WorkspaceUrls:
        return self.site(request).workspace(slug)

    def target(self, unit: UnitOfWork, slug: str, *, lock: bool = False) -> SignInTarget:
        target = target_store.sign_in_target(unit, slug, lock=lock)
        if target is None:
            raise _unavailable("unknown_workspace", "there is no such workspace")
        return target

    def provider(self, request: Request, target: SignInTarget, unit: UnitOfWork) -> ServiceProvider:
        def load() -> tuple[IdPSettings | None, SpKeyRing]:
            keys = self.keys.ring(unit, target.workspace_id)
            if keys.current is None:
                # keys.ensure() makes it before the requests that sign or decrypt; a workspace
                # deleted and made again since this worker last looked needs it asked again.
                self.keys.forget(target.slug)
            xml = target_store.idp_metadata_xml(unit, target.workspace_id)
            if xml is None or target.idp_entity_id is None or target.idp_version is None:
                return None, keys
            idp = IdPSettings(
                entity_id=target.idp_entity_id,
                metadata_xml=xml,
                allow_idp_initiated=target.allow_idp_initiated,
                version=target.idp_version,
            )
            return idp, keys

        # The workspace's id and birth too: a workspace deleted and made again under the same
        # slug starts its versions afresh, and must never get its predecessor's SP (and keys).
        version = (
            f"{target.workspace_id}|{target.created_at.isoformat()}",
            target.idp_version,
            target.sp_version,
        )
        return self.providers.get(self.urls(request, target.slug), version, load)

    def prepare(self, slug: str) -> None:
        """Before a request's transaction: refresh the IdP's metadata when it is due, and make
        the workspace's first SP key if it has none (each in a transaction of its own)."""
        self.metadata.refresh_metadata(slug)
        self.keys.ensure(slug)

    def usable_provider(
        self,
        request: Request,
        slug: str,
        unit: UnitOfWork,
        *,
        lock: bool = False,
        target: SignInTarget | None = None,
    ) -> tuple[SignInTarget, ServiceProvider]:
        """The workspace and its SP, when SSO can be used there right now.

        Each reason it cannot keeps its own code for the owner; a stranger sees one answer
        for all of them (_unavailable), so a refusal tells nothing of a workspace's plan, its
        switches, or whether it exists. ``lock``: the caller may start a session (see
        store/sign_in_target.py). ``target``: the workspace, when the caller read it already."""
        target = target or self.target(unit, slug, lock=lock)
        if target.plan not in SSO_PLANS:
            raise _unavailable("plan", "single sign-on needs the Plus or Premium plan")
        if not target.sso_enabled:
            raise _unavailable("sso_disabled", "single sign-on is switched off for this workspace")
        provider = self.provider(request, target, unit)
        if provider.idp is None:
            raise _unavailable("idp_not_configured", "this workspace has no identity provider yet")
        return target, provider

    # -- endpoints ----------------------------------------------------------------------------

    def start_login(self, request: Request, slug: str) -> Response:
        next_path = safe_next(request.args.get("next"))
        ticket = request.args.get("test")
        try:
            self.prepare(slug)

            def work(unit: UnitOfWork) -> tuple[OutgoingMessage, str]:
                target, provider = self.usable_provider(request, slug, unit)
                # The owner's test sign-in: only with a ticket the settings page issued.
                test = None
                if ticket is not None:
                    test = self.sign_in_tests.read(ticket, target.workspace_id)
                    if test is None:
                        raise Rejection(
                            "test_expired",
                            "this test sign-in is not valid or has expired; start it again "
                            "from the settings page",
                            status=403,
                        )
                    nonlocal next_path
                    next_path = workspace_path(target.slug, "settings")
                relay_state = new_relay_state()
                try:
                    message = provider.authn_request(relay_state)
                except SignOnError as error:
                    # set-idp refuses such metadata; whatever still gets here is the IdP's
                    # configuration, which the person can do nothing about: a page, not a 500.
                    raise Rejection(
                        "no_sign_on_binding",
                        f"the IdP's metadata offers no usable SingleSignOnService ({error})",
                        status=502,
                    ) from None
                # The pending request goes into this browser's cookie, beside the others it
                # started: it binds the answer to this browser, and nothing is written here.
                started = [
                    *self.login_requests.read(request, target.workspace_id),
                    self.login_requests.new(message.request_id, relay_state, next_path, test),
                ]
                return message, self.login_requests.cookie(
                    provider.urls, target.workspace_id, started
                )

            message, cookie = self.database.run(work, write=False)
        except Rejection as rejection:
            # Nobody is signed in yet: the reason stays in the log (not the audit log, which
            # an anonymous GET must not be able to write to).
            log.info(
                "SSO sign-in at %s not started: %s",
                slug,
                rejection,
                extra={"event": "sign_in.not_started", "workspace": slug, "reason": rejection.code},
            )
            return error_page(
                "Single sign-on unavailable",
                rejection.public_text,
                site=self.site(request),
                reason=rejection.public_code,
                status=rejection.status,
            )
        hint = _login_hint(request.args.get(LOGIN_HINT))
        if message.binding == BINDING_HTTP_POST:
            # An IdP that takes requests by POST only (SimpleSAMLphp, samlify can publish
            # that): the browser carries the request there in a form it submits.
            fields = dict(message.fields) | ({LOGIN_HINT: hint} if hint else {})
            response = autopost_page(message.url, fields)
        else:
            # Beside the signed query (SAMLRequest, RelayState, SigAlg, Signature): never signed.
            extra = ("&" + urlencode({LOGIN_HINT: hint})) if hint else ""
            response = redirect(message.url + extra, code=302)
        response.headers.add("Set-Cookie", cookie)
        return response

    def acs(self, request: Request, slug: str) -> Response:
        seen = None
        answering: list[LoginRequest] = []  # the request the response answers, once known
        outcome: list[str] = []  # what sign_in did, counted once its transaction committed
        accepted: list[str] = []  # who signed in, once the sign-in committed
        try:
            try:
                form = read_form(request, self.settings.max_body_bytes)
            except RequestEntityTooLarge:
                raise Rejection(
                    "too_large", "the sign-in response is larger than this site accepts", status=413
                ) from None
            relay_state = form.get("RelayState")
            document = decode(form.get("SAMLResponse"))
            seen = peek(document)
            self.prepare(slug)
            # Whose session the browser shows, asked outside the transaction: an unsolicited
            # response must not replace another member's.
            current = self.current_member(request) if seen.in_response_to is None else None
            response = self.database.run(
                lambda unit: self.sign_in(
                    request, unit, slug, seen, relay_state, current, answering, outcome, accepted
                )
            )
            self.count(outcome)
            _log_accepted(slug, accepted)
            return response
        except OtherMemberSignedIn as refused:
            self.metrics.sign_in("rejected", refused.code)
            record_failure(self.database, slug, refused, refused.email)
            return signed_in_as_other_page(refused.current.user_name, site=self.site(request))
        except Rejection as rejection:
            self.metrics.sign_in("rejected", reason_label(rejection.public_code))
            # The address as this workspace's sign-in reads it (its attribute mapping may
            # name the email attribute): known only once record_failure has the workspace.
            record_failure(
                self.database,
                slug,
                rejection,
                lambda mapping: claimed_email(seen, mapping.get("email")),
                verified=seen is not None and seen.signature_verified,
            )
            test = answering[0].test if answering else None
            if test is not None:  # the owner's test: its result goes back to the settings page
                tested_sign_in.record_refusal(
                    self.database,
                    slug,
                    test,
                    rejection,
                    lambda mapping: claimed_email(seen, mapping.get("email")),
                )
                return tested_sign_in.back_to_settings(self.site(request), slug, test)
            return error_page(
                "Sign-in failed",
                rejection.public_text,
                site=self.site(request),
                reason=rejection.public_code,
                status=rejection.status,
            )

    def sign_in(
        self,
        request: Request,
        unit: UnitOfWork,
        slug: str,
        seen: Any,
        relay_state: str | None,
        current: Member | None,
        answering: list[LoginRequest] | None = None,
        outcome: list[str] | None = None,
        accepted: list[str] | None = None,
    ) -> Response:
        # One statement reads the workspace (locked) and the member the response claims.
        claimed = lifecycle.lookup_key(claimed_email(seen))
        found, known = sign_in_store.sign_in_lookup(unit, slug, claimed=claimed)
        mapped_email = dict(found.attribute_map).get("email") if found is not None else None
        if mapped_email is not None:
            # The owner reads the email from an attribute: that address is the one the
            # sign-in goes by (subject.read_subject), so the member is looked up by it.
            remapped = lifecycle.lookup_key(claimed_email(seen, mapped_email))
            if remapped != claimed:
                found, known = sign_in_store.sign_in_lookup(unit, slug, claimed=remapped)
        target, provider = self.usable_provider(request, slug, unit, lock=True, target=found)
        workspace_id = target.workspace_id
        started = self.login_requests.read(request, workspace_id)
        answered = None
        if seen.in_response_to is not None:
            answered = next((r for r in started if r.id == seen.in_response_to), None)
            if answered is None:
                raise Rejection(
                    "request_not_bound",
                    "the response answers a sign-in request "
                    "that was not started in this browser, or has expired; start "
                    "again from the sign-in page",
                )
            if answering is not None:
                answering.append(answered)
        consumer = AssertionConsumer(
            provider,
            clock_skew=self.clock_skew,
            attribute_map=dict(target.attribute_map),
            mapped_groups=lambda: role_store.mapped_group_keys(unit, workspace_id),
        )
        outstanding = {answered.id: answered.next_path} if answered is not None else {}
        now = utcnow()
        verified = consumer.consume(seen, outstanding, now=now)
        # The assertion and the request it answers are used up in one statement.
        used = replay_cache.use_response(
            unit,
            workspace_id=workspace_id,
            assertion_id=verified.assertion_id,
            expires_at=verified.expires_at,
            request_id=answered.id if answered else None,
            request_expires_at=dt.datetime.fromtimestamp(answered.expires_at, dt.UTC)
            + self.clock_skew
            if answered
            else None,
        )
        if used == "replayed":
            raise Rejection("replayed", "this sign-in response was already used", repeatable=True)
        if used is not None:
            raise Rejection("unknown_in_response_to", "the sign-in request was already used")
        self.purge_when_due(unit, now)
        if answered is not None and answered.test is not None:
            # The owner's test: judged as a sign-in would be, and no session (tested_sign_in.py).
            tested_sign_in.check(unit, workspace_id, verified, answered.test, known)
            _note(outcome, "test")
            response = tested_sign_in.back_to_settings(
                self.site(request), target.slug, answered.test
            )
            response.headers.add(
                "Set-Cookie",
                self.login_requests.cookie(
                    provider.urls, workspace_id, [r for r in started if r.id != answered.id]
                ),
            )
            return response
        if answered is not None:
            # This browser asked for this sign-in: it may replace whatever session it holds.
            response = self.finish(
                unit,
                target,
                verified,
                answered.next_path,
                current=None,
                site=self.site(request),
                known=known,
                outcome=outcome,
                accepted=accepted,
            )
            response.headers.add(
                "Set-Cookie",
                self.login_requests.cookie(
                    provider.urls, workspace_id, [r for r in started if r.id != answered.id]
                ),
            )
            return response
        next_path = self.relay_target(started, relay_state)
        if current is None and self.session_cookie_withheld(request):
            # The browser may hold a session it did not send (SameSite=Lax, cross-site POST):
            # finish on a same-site GET that shows it (login_state.py).
            pending = self.pending_sign_ins.new(workspace_id, verified, next_path)
            response = redirect(continue_url(provider.urls), code=303)
            # Too many groups for a cookie: the mapped ones are kept first, never refused.
            cookie = self.pending_sign_ins.cookie(
                provider.urls,
                pending,
                mapped=lambda: role_store.mapped_group_keys(unit, workspace_id),
            )
            response.headers.add("Set-Cookie", cookie)
            _note(outcome, "pending")
            return response
        return self.finish(
            unit,
            target,
            verified,
            next_path,
            current=current,
            site=self.site(request),
            known=known,
            outcome=outcome,
            accepted=accepted,
        )

    def continue_sign_in(self, request: Request, slug: str) -> Response:
        """Finish an unsolicited sign-in the ACS verified (login_state.py), now that the
        browser's own session cookie, if it has one, comes along."""
        site = self.site(request)
        urls = site.workspace(slug.strip().lower())
        outcome: list[str] = []
        accepted: list[str] = []
        try:
            current = self.current_member(request)

            def work(unit: UnitOfWork) -> Response:
                target, provider = self.usable_provider(request, slug, unit, lock=True)
                pending = self.pending_sign_ins.read(request, target.workspace_id)
                if pending is None or not replay_cache.use_pending_sign_in(
                    unit,
                    workspace_id=target.workspace_id,
                    nonce=pending.nonce,
                    expires_at=dt.datetime.fromtimestamp(pending.expires_at, dt.UTC)
                    + self.clock_skew,
                ):
                    raise Rejection(
                        "sign_in_expired",
                        "this sign-in was already finished, or took too long; please sign in again",
                    )
                return self.finish(
                    unit,
                    target,
                    pending.assertion,
                    pending.next_path,
                    current=current,
                    site=site,
                    outcome=outcome,
                    accepted=accepted,
                )

            response = self.database.run(work)
            self.count(outcome)
            _log_accepted(slug, accepted)
        except OtherMemberSignedIn as refused:
            self.metrics.sign_in("rejected", refused.code)
            record_failure(self.database, slug, refused, refused.email)
            response = signed_in_as_other_page(refused.current.user_name, site=site)
        except Rejection as rejection:  # not recorded: an anonymous GET must write nothing
            self.metrics.sign_in("rejected", reason_label(rejection.public_code))
            response = error_page(
                "Sign-in failed",
                rejection.public_text,
                site=site,
                reason=rejection.public_code,
                status=rejection.status,
            )
        response.headers.add("Set-Cookie", self.pending_sign_ins.clearing_cookie(urls))
        return response

    def finish(
        self,
        unit: UnitOfWork,
        target: SignInTarget,
        verified: VerifiedAssertion,
        next_path: str,
        *,
        current: Member | None,
        site: PublicUrls,
        known: sign_in_store.LoginLookup | None = None,
        outcome: list[str] | None = None,
        accepted: list[str] | None = None,
    ) -> Response:
        """Sign the member in; ``current``: the member whose session the browser holds, which
        an unsolicited response may refresh but never replace by someone else. ``next_path``
        is relative to the site's mount point, like the PATH_INFO it was taken from."""
        member = self.member_at_login(unit, target.workspace_id, verified, known)
        if member is None:
            _note(outcome, "member_deactivated")
            log.info(
                "sign-in of %s to %s refused: deactivated",
                verified.email,
                target.slug,
                extra={
                    "event": "sign_in.refused",
                    "workspace": target.slug,
                    "reason": "member_deactivated",
                },
            )
            return error_page(
                "Account deactivated",
                "Your account in this workspace is "
                "deactivated. Ask your administrator to reactivate it.",
                site=site,
                reason="member_deactivated",
                status=403,
            )
        member_id, generation = member
        if current is not None and current.id != member_id:
            raise OtherMemberSignedIn(current, verified.email)  # rolls back: no member, no session
        if verified.groups_dropped:
            record_groups_dropped(unit, target.workspace_id, verified)
        subject = None
        if verified.name_id:  # kept for single logout (saml/single_logout.py)
            subject = SamlSubject(
                verified.name_id,
                verified.name_id_format,
                verified.name_qualifier,
                verified.sp_name_qualifier,
                verified.session_index,
            )
        cookie = self.sessions.start(
            member_id, target.workspace_id, unit, generation=generation, saml_subject=subject
        )
        if accepted is not None:
            accepted[:] = [verified.email]  # assigned, not appended: a retried run repeats this
        response = redirect(site.link(safe_next(next_path)), code=303)
        response.headers.add("Set-Cookie", cookie)
        _note(outcome, "success")
        return response

    def count(self, outcome: list[str]) -> None:
        """Count a sign-in whose transaction committed, by what :meth:`sign_in` noted."""
        for noted in outcome[-1:]:  # a retried transaction noted again: the last one counts
            if noted == "member_deactivated":
                self.metrics.sign_in("rejected", noted)
            else:
                self.metrics.sign_in(noted)

    def current_member(self, request: Request) -> Member | None:
        found = self.sessions.identify(request.environ)
        return found[0] if found is not None else None

    def session_cookie_withheld(self, request: Request) -> bool:
        """A browser's cross-site POST showing no session cookie: it may have left one behind."""
        return self.sessions.read_cookie(request.environ) is None and is_cross_site(request)

    def purge_when_due(self, unit: UnitOfWork, now: dt.datetime) -> None:
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + REPLAY_CACHE_PURGE_EVERY
            replay_cache.purge_replay_cache(unit, now)

    def relay_target(self, started: list[LoginRequest], relay_state: str | None) -> str:
        """Okta sends its configured default RelayState with IdP-initiated sign-in; an IdP that
        answers our request unsolicited echoes our opaque one."""
        if relay_state and not relay_state.startswith("/"):
            return next((r.next_path for r in started if r.relay_state == relay_state), "/")
        return safe_next(relay_state)

    def member_at_login(
        self,
        unit: UnitOfWork,
        workspace_id: int,
        verified: VerifiedAssertion,
        known: sign_in_store.LoginLookup | None = None,
    ) -> tuple[str, int] | None:
        """(member id, session generation) of the member signing in, created at first login
        where the identity rules allow (members/lifecycle.py); None when deactivated."""
        profile = lifecycle.Profile(
            verified.given_name, verified.family_name, verified.display_name, verified.groups
        )
        try:
            admitted = lifecycle.sign_in(unit, workspace_id, verified.email, profile, known=known)
        except lifecycle.SignInRefused as refused:
            # The person sees the code; the owner's diagnostics get the detail (record_failure).
            raise Rejection(refused.code, refused.detail, status=403) from None
        return (admitted.member_id, admitted.session_generation) if admitted else None


def _note(outcome: list[str] | None, result: str) -> None:
    if outcome is not None:
        outcome.append(result)


def _log_accepted(slug: str, accepted: list[str]) -> None:
    """After the sign-in's transaction committed: who got a session."""
    if accepted:
        log.info(
            "sign-in of %s to %s accepted",
            accepted[0],
            slug,
            extra={"event": "sign_in.accepted", "workspace": slug},
        )


def _login_hint(value: str | None) -> str | None:
    """The typed address when it is one (names.py's rules), else None."""
    if not value or len(value) > MAX_LOGIN_HINT or lifecycle.lookup_key(value) is None:
        return None
    return value.strip()


def _unavailable(code: str, detail: str) -> Rejection:
    """SSO cannot be used at this workspace: one status and page for every reason."""
    return Rejection(code, detail, status=404, public_code="sso_unavailable")
