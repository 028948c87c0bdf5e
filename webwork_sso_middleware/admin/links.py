"""Who may open the settings page without SSO: short-lived signed links, the short owner-settings
session a link starts, and the CSRF tokens bound to whichever credential opened the page.

A link is ``{base}/saml/<slug>/settings?link=<token>``: a timed token signed for its own purpose
(signing.py: the site's keys, newest last signs, every key verifies), naming the workspace, a
random nonce (a link is redeemed once, in the store) and its expiry. Visiting it (GET) shows a
page with one button and uses nothing up, so a link previewer or a mail scanner that fetches it
leaves it working; the button POSTs back to the same URL, and only that POST redeems the link.
It starts an owner-settings session, a row in the database and a signed cookie
``webwork_sso_settings`` scoped by Path to that workspace's settings page, and redirects to the
clean URL so the token leaves the address bar and the history. "Close settings" ends the row,
and with it every copy of the cookie, on every worker.

Each kind of token has its own purpose (salt), so none can stand in for another (or for a
session cookie). Ages are checked against our own clock with signing.py's one tolerance: the CLI
may run on another machine than the site, with a clock that runs ahead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from werkzeug.http import dump_cookie, parse_cookie

from ..errors import ConfigurationError, SignatureRefused, WebworkSSOError
from ..signing import CLOCK_TOLERANCE, MAX_AGE, Purpose, SignedSerializer, Signing
from ..store import settings_sessions as settings_store
from ..store.db import Database, UnitOfWork
from ..urls import workspace_path

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

PURPOSE = "settings"
LINK_PARAMETER = "link"
LINK_LIFETIME = dt.timedelta(seconds=MAX_AGE[Purpose.SETTINGS_LINK])  # the longest a link lives
SESSION_LIFETIME = dt.timedelta(seconds=MAX_AGE[Purpose.SETTINGS_SESSION])
COOKIE_NAME = "webwork_sso_settings"
MAX_TOKEN_LENGTH = 1024


def settings_path(slug: str) -> str:
    return workspace_path(slug, "settings")


def _load(
    serializer: SignedSerializer, token: str, now: float, max_age: float | None = None
) -> tuple[Any, float] | None:
    """The payload and signing time of a token whose signature verifies and whose age is
    within its purpose's, else None."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        payload, signed_at = serializer.loads_signed_at(token, now=now, max_age=max_age)
    except SignatureRefused:
        return None
    assert signed_at is not None  # a timed purpose
    return payload, signed_at


# -- settings links --------------------------------------------------------------------------------


def settings_link(
    slug: str,
    *,
    base_url: str,
    signing: Signing,
    lifetime: dt.timedelta = LINK_LIFETIME,
    now: float | None = None,
) -> str:
    """A one-time link that opens ``slug``'s settings page for ``lifetime`` (15 minutes at most).

    ``base_url`` is the site's public origin (an empty string gives a relative URL). Whoever
    holds the link is treated as the workspace owner: hand it only to someone the host app has
    checked, and only over a channel as private as a password reset link.
    """
    if not dt.timedelta(0) < lifetime <= LINK_LIFETIME:
        raise ConfigurationError("lifetime", f"must be more than 0 and at most {LINK_LIFETIME}")
    now = time.time() if now is None else now
    token = signing[Purpose.SETTINGS_LINK].dumps(
        {
            "w": slug,
            "p": PURPOSE,
            "n": secrets.token_urlsafe(16),
            "e": int(now + lifetime.total_seconds()),
        },
        now=now,
    )
    return f"{base_url.rstrip('/')}{settings_path(slug)}?{urlencode({LINK_PARAMETER: token})}"


@dataclasses.dataclass(frozen=True)
class SettingsLink:
    slug: str
    nonce: str
    expires_at: float  # epoch seconds

    @property
    def expires(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.expires_at, dt.UTC)


class LinkRefused(WebworkSSOError):
    """A settings link that does not open the page; ``reason`` is shown to the visitor."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def read_settings_link(
    token: str, *, slug: str, signing: Signing, now: float | None = None
) -> SettingsLink:
    """The link's content when it is genuine, for this workspace, and current.

    Raises :class:`LinkRefused` otherwise. Whether it was used already is the store's to say.
    """
    now = time.time() if now is None else now
    loaded = _load(signing[Purpose.SETTINGS_LINK], token, now)
    if loaded is None:
        raise LinkRefused("invalid", "this settings link is not valid; it may be incomplete")
    payload, signed_at = loaded
    if not (
        isinstance(payload, dict)
        and payload.get("p") == PURPOSE
        and isinstance(payload.get("w"), str)
        and isinstance(payload.get("n"), str)
        and type(payload.get("e")) is int
    ):
        raise LinkRefused("invalid", "this settings link is not valid")
    if payload["w"] != slug:
        raise LinkRefused("other_workspace", "this settings link is for another workspace")
    expires_at = float(payload["e"])
    # A link claiming a longer life than any we issue is not ours (one signed in the future,
    # or too long ago, signing.py refused already).
    if expires_at - signed_at > LINK_LIFETIME.total_seconds() + CLOCK_TOLERANCE:
        raise LinkRefused("invalid", "this settings link is not valid")
    if now >= expires_at:
        raise LinkRefused(
            "expired", "this settings link has expired (links last 15 minutes); ask for a new one"
        )
    return SettingsLink(payload["w"], payload["n"], expires_at)


# -- the owner-settings session --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SettingsSession:
    """A live owner-settings session: owner access to one workspace's page."""

    slug: str
    workspace_id: int
    session_id: str
    expires_at: float

    @property
    def expires(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.expires_at, dt.UTC)

    @property
    def id_hash(self) -> str:
        return hash_settings_session_id(self.session_id)


def hash_settings_session_id(session_id: str) -> str:
    # 192 random bits: a fast hash suffices, and the table names no usable session.
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class SettingsSessions:
    """Starts, reads and ends owner-settings sessions.

    The cookie is signed (a forged or stale one costs no database round trip) and its row in
    ``settings_sessions`` decides whether it is still live, so ending the session ends every
    copy of the cookie on every worker at once. The page is rarely used: every read asks the
    database, there is no cache to wait out.
    """

    def __init__(
        self,
        database: Database,
        *,
        signing: Signing,
        secure: bool,
        lifetime: dt.timedelta = SESSION_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self._serializer = signing[Purpose.SETTINGS_SESSION]
        self.secure = secure
        self.lifetime = lifetime.total_seconds()
        self._clock = clock

    def start(
        self, unit: UnitOfWork, slug: str, workspace_id: int, *, script_root: str = ""
    ) -> tuple[str, SettingsSession]:
        """Record a new session in the caller's transaction (the one that redeems the link);
        its ``Set-Cookie`` value, and the session."""
        now = self._clock()
        session = SettingsSession(
            slug, workspace_id, secrets.token_urlsafe(24), float(int(now + self.lifetime))
        )
        settings_store.start(
            unit,
            id_hash=session.id_hash,
            workspace_id=workspace_id,
            now=_utc(now),
            expires_at=_utc(session.expires_at),
        )
        value = self._serializer.dumps(
            {"w": slug, "i": workspace_id, "s": session.session_id, "e": int(session.expires_at)},
            now=now,
        )
        cookie = dump_cookie(
            COOKIE_NAME,
            value,
            max_age=int(self.lifetime),
            path=script_root + settings_path(slug),
            secure=self.secure,
            httponly=True,
            samesite="Lax",
        )
        return cookie, session

    def read(self, environ: WSGIEnvironment, slug: str) -> SettingsSession | None:
        """The request's live settings session for ``slug``, else None."""
        now = self._clock()
        for session in self._signed(environ, slug, now):

            def live(unit: UnitOfWork, session: SettingsSession = session) -> bool:
                return settings_store.is_live(
                    unit, id_hash=session.id_hash, workspace_id=session.workspace_id, now=_utc(now)
                )

            if self.database.run(live, write=False):
                return session
        return None

    def end(self, environ: WSGIEnvironment, slug: str) -> None:
        """End the request's settings sessions for ``slug`` for good, wherever their cookie is."""
        hashes = [session.id_hash for session in self._signed(environ, slug, self._clock())]
        if hashes:
            now = _utc(self._clock())
            self.database.run(lambda unit: settings_store.end(unit, hashes, now=now))

    def clearing_cookie(self, slug: str, *, script_root: str = "") -> str:
        return dump_cookie(
            COOKIE_NAME,
            "",
            max_age=0,
            expires=0,
            path=script_root + settings_path(slug),
            secure=self.secure,
            httponly=True,
            samesite="Lax",
        )

    def _signed(self, environ: WSGIEnvironment, slug: str, now: float) -> list[SettingsSession]:
        """The request's settings cookies for ``slug`` whose signature and expiry hold."""
        if not environ.get("HTTP_COOKIE"):
            return []
        found = []
        # A few at most: a parent path could hold a stale cookie of the same name.
        for raw in parse_cookie(environ).getlist(COOKIE_NAME)[:4]:
            loaded = _load(self._serializer, raw, now, max_age=self.lifetime)
            if loaded is None:
                continue
            payload, signed_at = loaded
            if not (
                isinstance(payload, dict)
                and payload.get("w") == slug
                and type(payload.get("i")) is int
                and isinstance(payload.get("s"), str)
                and type(payload.get("e")) is int
            ):
                continue
            expires_at = float(payload["e"])
            if expires_at - signed_at <= self.lifetime + CLOCK_TOLERANCE and now < expires_at:
                found.append(SettingsSession(slug, payload["i"], payload["s"], expires_at))
        return found


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


# -- CSRF ------------------------------------------------------------------------------------------


class CsrfTokens:
    """Form tokens bound to the credential that opened the page (a settings session, or an SSO
    session), so a token lifted from one browser is worthless in another."""

    def __init__(self, *, signing: Signing) -> None:
        self._serializer = signing[Purpose.SETTINGS_CSRF]

    @staticmethod
    def binding(kind: str, slug: str, credential_id: str) -> str:
        # A digest: the page's HTML never carries the credential's own secret.
        material = "\0".join(("settings-csrf", kind, slug, credential_id)).encode("utf-8")
        return hashlib.sha256(material).hexdigest()[:32]

    def token(self, binding: str) -> str:
        return self._serializer.dumps(binding)

    def matches(self, token: str | None, bindings: Sequence[str]) -> bool:
        """The token was made for one of the request's current credentials."""
        if not token or len(token) > 512:
            return False
        try:
            bound = self._serializer.loads(token)
        except SignatureRefused:
            return False
        return isinstance(bound, str) and any(
            hmac.compare_digest(bound, binding) for binding in bindings
        )
