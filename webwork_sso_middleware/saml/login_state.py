"""What a browser carries through a SAML sign-in: two short-lived cookies signed with the site's
keys, each with its own salt, scoped to the workspace's ``/saml/<slug>/`` path.

``webwork_sso_login``: the AuthnRequests this browser started at ``/saml/<slug>/login`` (a few,
for several tabs), each with its opaque RelayState, the ``next`` path and an expiry. The ACS
accepts a response with InResponseTo only when it names one of them, so an attacker's own
response, posted into a victim's browser from another site, answers no request of that browser
(login CSRF). Keeping the pending request here rather than in a table also means an anonymous GET
of the login URL writes nothing; the ACS records each request's one-time use in the replay cache.
The IdP's answer is a cross-site POST: on https the cookie is ``SameSite=None; Secure`` so it
comes along; on plain http SameSite is left out (browsers refuse None without Secure, and treat
a cookie without it as Lax, still sent on a top-level POST within two minutes in Chromium).

``webwork_sso_pending``: an unsolicited (IdP-initiated) sign-in waiting for one same-site step.
The session cookie is ``SameSite=Lax``, so a browser leaves it off the IdP's cross-site POST:
the ACS cannot see whether the browser already has a session of someone else. It verifies the
response, keeps the verified identity here and sends the browser on (303) to
``/saml/<slug>/continue``, a top-level GET that does carry the session cookie.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any
from urllib.parse import urlsplit

from werkzeug.http import dump_cookie
from werkzeug.wrappers import Request

from ..errors import SignatureRefused
from ..identity import Member
from ..logs import package_logger
from ..roles import group_order, prioritised
from ..sessions.sign_in_tests import SignInTest
from ..signing import Purpose, Signing
from ..urls import WorkspaceUrls
from .acs import VerifiedAssertion
from .rejection import Rejection

log = package_logger(__name__)

REQUESTS_COOKIE = "webwork_sso_login"
REQUEST_LIFETIME = dt.timedelta(minutes=10)
MAX_REQUESTS = 4  # tabs signing in at once; the oldest is dropped beyond this
PENDING_COOKIE = "webwork_sso_pending"
PENDING_LIFETIME = dt.timedelta(minutes=2)  # one redirect: seconds are enough, minutes are kind
MAX_COOKIE_VALUE = (
    3800  # browsers keep at least 4096 bytes per cookie, name and attributes included
)
MAX_COOKIES_TRIED = 4  # a parent path or domain may hold a cookie of the same name
FORMAT = 1


def new_relay_state() -> str:
    """RelayState sent to the IdP: opaque, never the raw ``next`` path."""
    return secrets.token_urlsafe(24)


def state_path(urls: WorkspaceUrls) -> str:
    """``/saml/<slug>/`` under the site's base path: where the login URL and the ACS live."""
    return urlsplit(urls.acs_url).path.rsplit("/", 1)[0] + "/"


def continue_url(urls: WorkspaceUrls) -> str:
    return urls.continue_url


class OtherMemberSignedIn(Rejection):
    """An unsolicited response for someone other than the member whose session the browser
    holds: refused, so that a response posted from another site never swaps who is signed in."""

    def __init__(self, current: Member, email: str) -> None:
        super().__init__(
            "signed_in_as_other",
            "this browser is already signed in as another "
            "member; sign out first to sign in as someone else",
            status=409,
        )
        self.current = current
        self.email = email  # what the refused response asserted, for the owner's diagnostics


def is_cross_site(request: Request) -> bool:
    """Whether a browser sent this request from another site, so that its SameSite=Lax
    cookies (the session) stayed behind."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site == "cross-site"
    # Browsers without Fetch Metadata still send Origin with a form POST; a client that sends
    # neither is no browser, and holds no cookie it did not send.
    origin = request.headers.get("Origin")
    return origin is not None and origin.rstrip("/") != request.host_url.rstrip("/")


@dataclasses.dataclass(frozen=True)
class LoginRequest:
    """One AuthnRequest this browser started."""

    id: str
    relay_state: str
    next_path: str
    expires_at: int  # epoch seconds
    # The owner's test sign-in (sessions/sign_in_tests.py): the ACS checks, starts no session.
    test: SignInTest | None = None


@dataclasses.dataclass(frozen=True)
class PendingSignIn:
    """A verified unsolicited sign-in, to be finished by the same browser's next request."""

    workspace_id: int
    nonce: str  # its one-time use is recorded in the replay cache
    next_path: str
    expires_at: int  # epoch seconds
    assertion: VerifiedAssertion


class _SignedCookies:
    def __init__(
        self, name: str, purpose: Purpose, *, signing: Signing, clock: Callable[[], float]
    ) -> None:
        self.name = name
        self.clock = clock
        self._serializer = signing[purpose]

    def payloads(self, request: Request) -> list[Any]:
        """The payloads of the request's cookies of this name whose signatures verify."""
        found = []
        for raw in request.cookies.getlist(self.name)[:MAX_COOKIES_TRIED]:
            if len(raw) > MAX_COOKIE_VALUE:
                continue
            try:
                found.append(self._serializer.loads(raw))
            except SignatureRefused:
                continue
        return found

    def dumps(self, payload: Any) -> str:
        return str(self._serializer.dumps(payload))

    def set_cookie(self, urls: WorkspaceUrls, value: str, *, max_age: int, cross_site: bool) -> str:
        secure = urls.acs_url.startswith("https://")
        # Cross-site POSTs carry only SameSite=None cookies, and browsers take None only with
        # Secure; over plain http (development) the attribute is left out.
        samesite = ("None" if secure else None) if cross_site else "Lax"
        return dump_cookie(
            self.name,
            value,
            max_age=max_age,
            path=state_path(urls),
            secure=secure,
            httponly=True,
            samesite=samesite,
        )

    def clearing_cookie(self, urls: WorkspaceUrls, *, cross_site: bool) -> str:
        return self.set_cookie(urls, "", max_age=0, cross_site=cross_site)


class LoginRequests:
    """The ``webwork_sso_login`` cookie: the AuthnRequests this browser started."""

    def __init__(self, *, signing: Signing, clock: Callable[[], float] = time.time) -> None:
        self._cookies = _SignedCookies(
            REQUESTS_COOKIE, Purpose.LOGIN_REQUESTS, signing=signing, clock=clock
        )
        self.clock = clock

    def new(
        self, request_id: str, relay_state: str, next_path: str, test: SignInTest | None = None
    ) -> LoginRequest:
        expires = int(self.clock() + REQUEST_LIFETIME.total_seconds())
        return LoginRequest(request_id, relay_state, next_path, expires, test)

    def read(self, request: Request, workspace_id: int) -> list[LoginRequest]:
        """This browser's live requests for the workspace, oldest first."""
        now = self.clock()
        for payload in self._cookies.payloads(request):
            if not (
                isinstance(payload, list)
                and len(payload) == 3
                and payload[0] == FORMAT
                and payload[1] == workspace_id
                and isinstance(payload[2], list)
            ):
                continue  # another workspace's (a path the browser matched loosely) or old
            return [
                entry
                for item in payload[2]
                if (entry := _login_request(item)) is not None and entry.expires_at > now
            ]
        return []

    def cookie(
        self, urls: WorkspaceUrls, workspace_id: int, requests: Sequence[LoginRequest]
    ) -> str:
        """``Set-Cookie`` naming ``requests`` (the newest kept when they do not all fit)."""
        kept = list(requests)[-MAX_REQUESTS:]
        while kept:
            value = self._cookies.dumps(
                [
                    FORMAT,
                    workspace_id,
                    [_request_item(r) for r in kept],
                ]
            )
            if len(value) <= MAX_COOKIE_VALUE or len(kept) == 1:
                max_age = max(1, max(r.expires_at for r in kept) - int(self.clock()))
                return self._cookies.set_cookie(urls, value, max_age=max_age, cross_site=True)
            kept.pop(0)
        return self._cookies.clearing_cookie(urls, cross_site=True)


def _request_item(request: LoginRequest) -> list[Any]:
    item: list[Any] = [request.id, request.relay_state, request.next_path, request.expires_at]
    if request.test is not None:
        item += [request.test.nonce, request.test.mark]
    return item


def _login_request(item: Any) -> LoginRequest | None:
    if not (isinstance(item, list) and len(item) in (4, 6)):
        return None
    request_id, relay_state, next_path, expires_at = item[:4]
    test = None
    if len(item) == 6:
        if not (isinstance(item[4], str) and isinstance(item[5], str)):
            return None
        test = SignInTest(item[4], item[5])
    if not (
        isinstance(request_id, str)
        and isinstance(relay_state, str)
        and isinstance(next_path, str)
        and type(expires_at) is int
    ):
        return None
    return LoginRequest(request_id, relay_state, next_path, expires_at, test)


class PendingSignIns:
    """The ``webwork_sso_pending`` cookie: an unsolicited sign-in between the ACS and
    ``/saml/<slug>/continue``."""

    def __init__(self, *, signing: Signing, clock: Callable[[], float] = time.time) -> None:
        self._cookies = _SignedCookies(
            PENDING_COOKIE, Purpose.PENDING_SIGN_IN, signing=signing, clock=clock
        )
        self.clock = clock

    def new(self, workspace_id: int, assertion: VerifiedAssertion, next_path: str) -> PendingSignIn:
        expires = int(self.clock() + PENDING_LIFETIME.total_seconds())
        return PendingSignIn(workspace_id, secrets.token_urlsafe(16), next_path, expires, assertion)

    def cookie(
        self,
        urls: WorkspaceUrls,
        pending: PendingSignIn,
        *,
        mapped: Callable[[], Collection[str]] = frozenset,
    ) -> str:
        """The cookie holding ``pending``. Its asserted groups are never a reason to refuse
        the sign-in: when they make the cookie too large for a browser, those whose role_key
        is in ``mapped()`` (the workspace's role mapping, asked only then) are kept first,
        then others while they fit, and the assertion's ``groups_dropped`` says how many
        went (the owner hears of it at sign-in, saml/failures.py)."""
        value = self._value(pending)
        if len(value) > MAX_COOKIE_VALUE:
            value = self._fitted(pending, mapped())
        # Lax: set by the response to the IdP's top-level POST, read on the top-level GET after.
        return self._cookies.set_cookie(
            urls, value, cross_site=False, max_age=int(PENDING_LIFETIME.total_seconds())
        )

    def _value(self, pending: PendingSignIn) -> str:
        return self._cookies.dumps(
            [
                FORMAT,
                pending.workspace_id,
                pending.nonce,
                pending.next_path,
                pending.expires_at,
                _assertion_fields(pending.assertion),
            ]
        )

    def _fitted(self, pending: PendingSignIn, mapped: Collection[str]) -> str:
        """The cookie value with as many groups as fit, the mapped ones first: the longest
        prefix of that order that fits, found by bisection (a few signings)."""
        assertion = pending.assertion
        order = prioritised(assertion.groups, mapped)

        def value(count: int) -> str:
            kept = tuple(sorted(order[:count], key=group_order))
            cut = dataclasses.replace(
                assertion,
                groups=kept,
                groups_dropped=assertion.groups_dropped + len(order) - count,
            )
            return self._value(dataclasses.replace(pending, assertion=cut))

        low, high = 0, len(order)  # value(low) is the one to try; value(high) is too large
        best = value(0)
        if len(best) > MAX_COOKIE_VALUE:
            # Not the groups: the rest (a long next path, NameID, names) cannot fit either.
            raise Rejection(
                "pending_too_large",
                "this IdP-initiated sign-in carries more than a browser cookie can hold: "
                "start the sign-in from this site's sign-in page instead",
            )
        while high - low > 1:
            middle = (low + high) // 2
            candidate = value(middle)
            if len(candidate) <= MAX_COOKIE_VALUE:
                low, best = middle, candidate
            else:
                high = middle
        log.info(
            "IdP-initiated sign-in of %s: %d of its %d groups fit in the pending cookie "
            "(those mapped to roles first)",
            assertion.email,
            low,
            len(order),
        )
        return best

    def clearing_cookie(self, urls: WorkspaceUrls) -> str:
        return self._cookies.clearing_cookie(urls, cross_site=False)

    def read(self, request: Request, workspace_id: int) -> PendingSignIn | None:
        now = self.clock()
        for payload in self._cookies.payloads(request):
            pending = _pending(payload)
            if (
                pending is not None
                and pending.workspace_id == workspace_id
                and pending.expires_at > now
            ):
                return pending
        return None


def _pending(payload: Any) -> PendingSignIn | None:
    if not (isinstance(payload, list) and len(payload) == 6 and payload[0] == FORMAT):
        return None
    _, workspace_id, nonce, next_path, expires_at, fields = payload
    if not (
        type(workspace_id) is int
        and isinstance(nonce, str)
        and isinstance(next_path, str)
        and type(expires_at) is int
        and isinstance(fields, dict)
    ):
        return None
    assertion = _assertion(fields)
    if assertion is None:
        return None
    return PendingSignIn(workspace_id, nonce, next_path, expires_at, assertion)


# The verified assertion travels field by field (whatever fields it has), times as epoch seconds.
def _assertion_fields(assertion: VerifiedAssertion) -> dict[str, Any]:
    return {
        name: (["t", value.timestamp()] if isinstance(value, dt.datetime) else value)
        for name, value in dataclasses.asdict(assertion).items()
    }


def _assertion(fields: dict[str, Any]) -> VerifiedAssertion | None:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(VerifiedAssertion):
        if field.name not in fields:
            if field.default is dataclasses.MISSING:
                return None
            continue  # a field added since the cookie was made: its default
        value = fields[field.name]
        if field.name == "groups_dropped" and type(value) is not int:
            return None
        if field.name == "groups":  # a JSON list of names; never read as a time
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                return None
            value = tuple(value)
        elif isinstance(value, list) and len(value) == 2 and value[0] == "t":
            value = dt.datetime.fromtimestamp(value[1], dt.UTC)
        values[field.name] = value
    try:
        return VerifiedAssertion(**values)
    except TypeError:
        return None
