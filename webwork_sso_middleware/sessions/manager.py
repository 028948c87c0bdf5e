"""SessionManager: signed session cookies and their records in the database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from werkzeug.http import dump_cookie, parse_cookie

from ..errors import NotFound, SignatureRefused, StoreError
from ..identity import Member, frozen_attributes, host_identity
from ..logs import package_logger
from ..metrics import NO_METRICS, Metrics
from ..names import is_plain_address
from ..names import key as name_key
from ..roles import member_groups, member_roles
from ..signing import CLOCK_TOLERANCE, Purpose, Signing
from ..store import audit, enforcement
from ..store import sessions as session_store
from ..store.db import Database, UnitOfWork
from ..store.models import (
    SSO_PLANS,
)
from .revocation import RevocationCache, _Check

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

log = package_logger(__name__)

COOKIE_FORMAT = 1
REFRESH_AFTER = 60.0  # re-issue the cookie (sliding idle timeout) at most once a minute
PURGE_EVERY = 600.0  # seconds between opportunistic deletions of expired rows, per process
PURGE_BATCH = 1000
MAX_COOKIE_LENGTH = 4096
MAX_COOKIES_TRIED = 4  # a parent domain may set a cookie of the same name beside ours


@dataclasses.dataclass(frozen=True, slots=True)
class SamlSubject:
    """Who a SAML sign-in named, kept with the session so that single logout (an IdP's
    LogoutRequest, or ours to the IdP) can name it again: the assertion's NameID with its
    Format and qualifiers, and the AuthnStatement's SessionIndex."""

    name_id: str
    name_id_format: str | None = None
    name_qualifier: str | None = None
    sp_name_qualifier: str | None = None
    session_index: str | None = None

    def columns(self) -> dict[str, str | None]:
        """The member_sessions columns (store/sessions.py SAML_SUBJECT_KEYS)."""
        return {
            "saml_name_id": self.name_id,
            "saml_name_id_format": self.name_id_format,
            "saml_name_qualifier": self.name_qualifier,
            "saml_sp_name_qualifier": self.sp_name_qualifier,
            "saml_session_index": self.session_index,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class SessionCookie:
    """A cookie whose signature verified."""

    session_id: str
    member_id: str
    workspace_id: int
    generation: int
    issued_at: int  # epoch seconds
    last_seen: int

    @property
    def id_hash(self) -> str:
        return hash_session_id(self.session_id)


def hash_session_id(session_id: str) -> str:
    # 256 random bits: a fast hash suffices, and a leaked table names no usable session.
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class SessionManager:
    """Start, recognise and end members' sessions.

    ``signing``: the site's keys (signing.py); cookies are signed for ``Purpose.SESSION``.
    ``clock`` returns epoch seconds; tests pass their own.
    """

    def __init__(
        self,
        database: Database,
        *,
        signing: Signing,
        secure: bool,
        cookie_name: str = "webwork_sso_session",
        absolute_lifetime: dt.timedelta = dt.timedelta(hours=12),
        idle_lifetime: dt.timedelta = dt.timedelta(hours=2),
        recheck_interval: dt.timedelta = dt.timedelta(seconds=2),
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        roles: Sequence[str] = (),
        default_role: str | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.database = database
        self.metrics = metrics
        # Read on every request to the host app: off, the check costs one attribute test.
        self._metered = metrics.enabled
        self.cookie_name = cookie_name
        self.secure = secure
        self.absolute_lifetime = absolute_lifetime.total_seconds()
        self.idle_lifetime = idle_lifetime.total_seconds()
        self.recheck_interval = recheck_interval.total_seconds()
        # Short idle lifetimes (tests, strict sites) still get refreshed before they lapse.
        self.refresh_after = min(REFRESH_AFTER, self.idle_lifetime / 2)
        self.cache = RevocationCache(cache_size, self.recheck_interval)
        # The host's declared roles (the roles option), for member.roles (roles.py).
        self.roles = tuple(roles)
        self.default_role = default_role
        # Changes committed on this database evict this cache's answers at once (held weakly:
        # the cache lives as long as this manager, and its middleware, keep it).
        database.on_sessions_ended(self.cache.forget_members)
        self._clock = clock
        self.signing = signing
        self._serializer = signing[Purpose.SESSION]
        # The cookie's attributes never change: werkzeug writes them once (after the name, as
        # given, and the value), and each cookie is its name, value and those. A signed value
        # is URL-safe base64 and dots, which dump_cookie would not quote either.
        sample = dump_cookie(
            cookie_name, "v", path="/", secure=secure, httponly=True, samesite="Lax"
        )
        if not sample.startswith(f"{cookie_name}=v;"):
            # A name werkzeug would quote or encode: the prebuilt attributes would be wrong.
            raise ValueError(f"not a plain cookie name: {cookie_name!r}")
        self._cookie_attributes = sample.removeprefix(f"{cookie_name}=v")
        self._next_purge = float("-inf")  # the first start() purges

    # -- sessions -------------------------------------------------------------------------------

    def start(
        self,
        member_id: str,
        workspace_id: int,
        unit: UnitOfWork,
        *,
        generation: int | None = None,
        saml_subject: SamlSubject | None = None,
    ) -> str:
        """Record a new session in the caller's transaction; return its ``Set-Cookie`` value.

        Raises NotFound when the member is not an active, undeleted member of the workspace.
        A caller that has just read (and locked) the active member passes its ``generation``;
        a SAML sign-in passes the subject its assertion named (for single logout).
        """
        # Flush first: the member may have been created (or changed) in this very transaction.
        unit.flush()
        now = self._clock()
        if generation is None:
            generation = session_store.active_generation(unit, member_id, workspace_id)
        if generation is None:
            raise NotFound("active member", member_id)
        session_id = secrets.token_urlsafe(32)
        session_store.insert_session(
            unit,
            id_hash=hash_session_id(session_id),
            member_id=member_id,
            workspace_id=workspace_id,
            generation=generation,
            created_at=_utc(now),
            expires_at=_utc(now + self.absolute_lifetime),
            saml_subject=saml_subject.columns() if saml_subject is not None else None,
        )
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + PURGE_EVERY
            self._purge(unit, now)
        cookie = SessionCookie(session_id, member_id, workspace_id, generation, int(now), int(now))
        return self._set_cookie(cookie)

    def identify(self, environ: WSGIEnvironment) -> tuple[Member, str | None] | None:
        """The member whose live session the request carries, and a refreshed ``Set-Cookie``
        value when the cookie is due one (else None). None for anything else."""
        now = self._clock()
        cookie = self._read_cookie(environ, now)
        if cookie is None:
            return None
        check = self._check(cookie.id_hash)
        if check is None or check.member is None or check.expires_at <= now:
            return None
        if (check.member_id, check.workspace_id, check.generation) != (
            cookie.member_id,
            cookie.workspace_id,
            cookie.generation,
        ):
            return None
        refreshed = None
        if now - cookie.last_seen >= self.refresh_after:
            refreshed = self._set_cookie(dataclasses.replace(cookie, last_seen=int(now)))
        return check.member.copy(), refreshed

    def end(self, environ: WSGIEnvironment) -> str:
        """End the request's session for good; return a ``Set-Cookie`` value that clears it."""
        cookies = list(self._signed_cookies(environ))
        if cookies:
            now = self._clock()
            hashes = [cookie.id_hash for cookie in cookies]
            self.database.run(lambda unit: session_store.end_sessions(unit, hashes, _utc(now)))
            for cookie in cookies:  # at once in this process; within the bound elsewhere
                self.cache.put(
                    cookie.id_hash,
                    _Check(
                        time.monotonic(),
                        cookie.member_id,
                        cookie.workspace_id,
                        cookie.generation,
                        now,
                        None,
                    ),
                )
        return self.clearing_cookie()

    def sign_out_everywhere(
        self, member_id: str, *, actor: str = "admin", source: str = "settings"
    ) -> None:
        """End every session of the member, on every device (raises NotFound for no member).
        ``source``: where it was asked, for the member.signed_out event (``settings``,
        ``cli``)."""
        now = _utc(self._clock())

        def work(unit: UnitOfWork) -> None:
            workspace_id = session_store.end_member_sessions(unit, member_id, now, source=source)
            if workspace_id is None:
                raise NotFound("member", member_id)
            audit.record(
                unit,
                workspace_id=workspace_id,
                actor=actor,
                action="signed_out",
                target_type="member",
                target_id=member_id,
            )

        self.database.run(work)  # the store names the member: evicted at commit

    def purge_expired(self) -> int:
        """Delete up to a batch of expired session rows now; return how many went."""
        now = self._clock()
        return self.database.run(lambda unit: self._purge(unit, now))

    # -- cookies --------------------------------------------------------------------------------

    def read_cookie(self, environ: WSGIEnvironment) -> SessionCookie | None:
        """The request's session cookie if its signature verifies and neither lifetime has
        passed (the database is not asked)."""
        return self._read_cookie(environ, self._clock())

    def _read_cookie(self, environ: WSGIEnvironment, now: float) -> SessionCookie | None:
        for cookie in self._signed_cookies(environ):
            if self._within_lifetimes(cookie, now):
                return cookie
        return None  # pragma: no mutate (the last statement: deleting it returns None all the same)

    def clearing_cookie(self) -> str:
        return dump_cookie(
            self.cookie_name,
            "",
            max_age=0,
            expires=0,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="Lax",
        )

    def _set_cookie(self, cookie: SessionCookie) -> str:
        # Uncompressed: zlib spares a few bytes of this short, mostly random payload at best,
        # and costs more than the rest of the cookie's making (signing.py).
        value = self._serializer.dumps(
            [
                COOKIE_FORMAT,
                cookie.session_id,
                cookie.member_id,
                cookie.workspace_id,
                cookie.generation,
                cookie.issued_at,
                cookie.last_seen,
            ],
            compress=False,
        )
        # No Max-Age: a browser session cookie. The lifetimes are enforced here, not by it.
        return f"{self.cookie_name}={value}{self._cookie_attributes}"

    def _signed_cookies(self, environ: WSGIEnvironment) -> Iterator[SessionCookie]:
        header = environ.get("HTTP_COOKIE")
        if not header:
            return
        for raw in cookie_values(header, self.cookie_name)[:MAX_COOKIES_TRIED]:
            if cookie := self._decode(raw):
                yield cookie

    def _decode(self, raw: str) -> SessionCookie | None:
        if len(raw) > MAX_COOKIE_LENGTH:
            return None
        try:
            data = self._serializer.loads(raw)  # any of the keys verifies
        except SignatureRefused:
            return None
        if not isinstance(data, list) or len(data) != 7 or data[0] != COOKIE_FORMAT:
            return None
        _, session_id, member_id, workspace_id, generation, issued_at, last_seen = data
        if not (
            isinstance(session_id, str)
            and isinstance(member_id, str)
            and all(type(v) is int for v in (workspace_id, generation, issued_at, last_seen))
        ):
            return None
        return SessionCookie(session_id, member_id, workspace_id, generation, issued_at, last_seen)

    def _within_lifetimes(self, cookie: SessionCookie, now: float) -> bool:
        # Our own timestamps rather than itsdangerous's max_age: that refuses any cookie
        # signed a second "in the future", which another host's clock makes routine.
        if max(cookie.issued_at, cookie.last_seen) > now + CLOCK_TOLERANCE:
            return False
        return (
            cookie.issued_at <= cookie.last_seen
            and now - cookie.issued_at < self.absolute_lifetime
            and now - cookie.last_seen < self.idle_lifetime
        )

    # -- the database ---------------------------------------------------------------------------

    def _check(self, id_hash: str) -> _Check | None:
        cached = self.cache.get(id_hash)
        if cached is not None:
            if self._metered:
                self.metrics.session_check("cache")
            return cached
        if self._metered:
            self.metrics.session_check("database")
        asked_at = time.monotonic()  # before the query: the bound counts from here
        try:
            rows = self.database.run(
                lambda unit: session_store.session_rows(unit, id_hash), write=False
            )
        except (SQLAlchemyError, StoreError) as exc:
            # Fail closed for this request only: the cookie stays, the next request retries.
            log.warning("could not check a session; the request goes on without identity: %s", exc)
            return None
        check = self._evaluate(rows, asked_at)
        if (
            rows
            and rows[0].ended_at is None
            and session_store.first_value(rows, "domain_verified_elsewhere")
        ):
            self._end_missed(id_hash)
        self.cache.put(id_hash, check)
        return check

    def _end_missed(self, id_hash: str) -> None:
        """End for good a session the domain's verification missed (refused by the check
        either way): a later release of the domain must not bring it back."""
        now = _utc(self._clock())
        try:
            self.database.run(lambda unit: session_store.end_missed_session(unit, id_hash, now))
        except (SQLAlchemyError, StoreError) as exc:  # refused all the same; ended next time
            log.warning("could not end a session its check refused: %s", exc)

    def _evaluate(self, rows: Sequence[Any], asked_at: float) -> _Check:
        if not rows:  # never existed here, or purged: remembered as dead like any other
            return _Check.unknown(asked_at)
        row = rows[0]
        expires_at = row.expires_at.timestamp()
        # Sent on one row only (store/sessions.py); None (no row carried it) is refused too.
        elsewhere = session_store.first_value(rows, "domain_verified_elsewhere")
        # Expiry is not judged here: identify compares expires_at with its own now for every
        # answer, fresh or cached (an answer may outlive the row's expiry in the cache).
        live = (
            row.ended_at is None
            and row.active
            and row.deleted_at is None
            and row.session_generation == row.generation
            and row.member_workspace_id == row.workspace_id
            # A sign-in that committed its session just after another workspace verified the
            # member's domain (store/sessions.py): the verification would have ended it.
            and elsewhere is not None
            and not elsewhere
            # SSO switched off (or the plan lost it): the IdP no longer vouches for anyone.
            and row.sso_enabled
            and row.plan in SSO_PLANS
        )
        member = None
        if live:
            identity = host_identity(
                row.slug, row.member_id, row.user_name_key, bool(row.domain_verified)
            )
            # Each sent on one row only (store/sessions.py), decoded once.
            asserted = session_store.first_value(rows, "sign_in_groups")
            role_map = session_store.first_value(rows, "role_map")
            groups = member_groups(
                [r.group_name for r in rows if r.group_name is not None],
                asserted if isinstance(asserted, list) else None,
            )
            member = Member(
                id=row.member_id,
                workspace=row.slug,
                user_name=row.user_name,
                email=row.email
                or row.email_key
                or (row.user_name if "@" in row.user_name else None),
                given_name=row.given_name,
                family_name=row.family_name,
                display_name=row.display_name,
                active=True,
                groups=groups,
                identity=identity,
                sso_required=_sso_required(row),
                attributes=frozen_attributes(session_store.profile(rows)),
                roles=member_roles(
                    groups,
                    role_map if isinstance(role_map, dict) else None,
                    self.roles,
                    self.default_role,
                ),
                is_owner=identity == name_key(row.owner_email),
            )
        return _Check(asked_at, row.member_id, row.workspace_id, row.generation, expires_at, member)

    @staticmethod
    def _purge(unit: UnitOfWork, now: float) -> int:
        # Cheap and bounded: one batch, in whatever transaction is at hand.
        return session_store.purge_expired(unit, _utc(now), PURGE_BATCH)


def _sso_required(row: Any) -> bool:
    """enforcement.sso_required for the member's identity, from the session row: its own
    workspace verified the domain (the only one that can), requires SSO, has SSO usable (the
    row is live, so switch and plan are), has an IdP, and no break-glass window is open for it.
    Judged when the check is made, so a window's end reaches the member within the recheck."""
    if not (row.domain_verified and row.require_sso and row.idp_set):
        return False
    if not is_plain_address(row.user_name_key):
        return False  # its identity is the scoped form, not an address (identity.py)
    return not enforcement.break_glass_open(row, row.user_name_key)


def cookie_values(header: str, name: str) -> list[str]:
    """The values of the cookies called ``name`` in a ``Cookie`` header, in order.

    Read on every request the host app serves, so the common header (ASCII, no quoted values)
    is split here; anything else goes to werkzeug's full parser. A value read differently
    from werkzeug could only fail its signature check, never pass one.
    """
    if name not in header:
        return []
    if not header.isascii() or '"' in header or "\\" in header:
        return parse_cookie(header).getlist(name)
    found = []
    for part in header.split(";"):
        key, _, value = part.partition("=")
        if key.strip(" \t") == name:
            found.append(value.strip(" \t"))
    return found


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)
