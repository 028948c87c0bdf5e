"""Token guessing, slowed per source: failed SCIM authentications are counted per client
address, and an address with too many of them in a sliding window is *blocked*: its wrong
tokens get 429 instead of 401, cheaply. A right token always works, from any address.

How it works, and what it costs:

* A request whose bearer token matches no live token (a *failure*) adds one to the
  ``scim_auth_failures`` row of its source and minute (one UPSERT, in a transaction of its
  own after the request's rolled back) and reads the source's rows of the window (at most
  ``window`` minutes of the primary key). The table is shared, so failures on every worker
  count together.
* A source with ``limit`` failures or more within ``window`` is blocked: the worker that
  saw the failure remembers it in a per-process map (source -> deadline). A request from a
  blocked source has its token looked up in a read-only transaction of its own (one indexed
  SELECT by the token's digest) before anything else: a right token goes on as usual; any
  other request is answered 429 with Retry-After at once, and nothing is written for it
  (no failure counted, no log line, no write transaction or write lock taken). The deadline
  is when enough of its failures leave the window.
* A successful request from a source that is not blocked does no more than before: it
  checks that per-process map, which is empty unless some source is blocked (then it is one
  dict lookup). No query is added.

Decisions, deliberately:

* A right token is never refused for its address. The source is only an address, and many
  clients share one: every tenant's IdP behind one egress proxy, or the whole site behind a
  reverse proxy that the host app did not tell us about. Refusing a blocked address's right
  tokens let one guesser stop provisioning for every workspace behind it. Tokens carry 256
  random bits, so guessing one is hopeless at any rate; what the block is for is load and
  noise: a blocked guesser costs one read per request and never a write, a log line or a
  write lock. (It still learns, from 200 or 429, whether a guess was right: at 256 bits
  that is worth nothing.)
* A success does not reset the count. Every tenant holds a valid token of its own; if
  success reset the count, one valid token interleaved with guesses would unblock a
  guesser at will. A blocked IdP (say, one retrying with a revoked token) recovers by itself
  within ``window`` once its failures stop.
* A request without any token, or with one longer than any token, is answered 401 but not
  counted: it guesses nothing, and counting it would cost a write per health check. From a
  blocked source it is answered 429 like any other request without a right token.
* Another worker learns about a block at its own first failure from that source (which
  consults the shared table, and is answered 429). Until then it answers that source's
  wrong tokens 401 and counts them.
* The source is ``REMOTE_ADDR`` (an IPv6 address counts as its /64, which one host
  usually holds whole). Headers such as X-Forwarded-For are never read here: behind a
  reverse proxy, have the host app set REMOTE_ADDR from the proxy's header with werkzeug's
  ``ProxyFix`` (trusting exactly as many hops as there are proxies), or every client
  shares the proxy's address and one guesser gets all their wrong tokens answered 429
  (their right ones still work).
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import math
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from ..errors import StoreUnavailable
from ..logs import package_logger
from ..metrics import NO_METRICS, Metrics
from ..store import auth_failures
from ..store.db import Database, UnitOfWork
from ..store.models import utcnow

log = package_logger(__name__)

AUTH_FAILURE_LIMIT = 20
AUTH_FAILURE_WINDOW = dt.timedelta(minutes=5)
MAX_BLOCKED = 10_000  # sources remembered per process; the oldest go first past this


@functools.lru_cache(maxsize=4096)
def source_of(remote_addr: str | None) -> str:
    """The throttled unit for a client address: the IPv4 address, or an IPv6 /64."""
    text = (remote_addr or "").strip()
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # without an IPv6 zone
    except ValueError:
        return text[:64] or "unknown"  # a unix socket, a test client: as it is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


class AuthThrottle:
    """Counts failures per source in the store and blocks sources past the limit."""

    def __init__(
        self,
        database: Database,
        *,
        limit: int = AUTH_FAILURE_LIMIT,
        window: dt.timedelta = AUTH_FAILURE_WINDOW,
        clock: Callable[[], dt.datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        if limit < 1 or window <= dt.timedelta(0):
            raise ValueError("the limit must be at least 1 and the window positive")
        self.database = database
        self.limit = limit
        self.window = window
        self.clock = clock
        self.monotonic = monotonic
        self.metrics = metrics
        # source -> monotonic deadline. Read without the lock on every request: falsy
        # unless some source is blocked, so a request then pays one truth test.
        self.blocked: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def retry_after(self, source: str) -> int | None:
        """Seconds until ``source`` may try again, or None when this process lets it in."""
        deadline = self.blocked.get(source)
        if deadline is None:
            return None
        left = deadline - self.monotonic()
        if left <= 0:
            with self._lock:
                if self.blocked.get(source) == deadline:
                    del self.blocked[source]
            return None
        return max(1, math.ceil(left))

    def failed(self, source: str) -> tuple[int, int | None]:
        """Record a failure of ``source``: (its failures within the window, seconds it must
        wait now, or None). When the store cannot count, (0, None): a 401 is still a 401."""
        now = self.clock()
        purge = self.monotonic() >= self._next_purge

        def work(unit: UnitOfWork) -> list[tuple[dt.datetime, int]]:
            minutes = auth_failures.record(unit, source, now, self.window)
            if purge:
                auth_failures.purge(unit, now - self.window)
            return minutes

        try:
            minutes = self.database.run(work, write=True)
        except (StoreUnavailable, SQLAlchemyError):
            log.warning(
                "could not record a failed SCIM authentication from %s", source, exc_info=True
            )
            return 0, None
        if purge:
            self._next_purge = self.monotonic() + 60
        total = sum(failures for _, failures in minutes)
        if total < self.limit:
            return total, None
        # Blocked until enough of the oldest minutes have left the window.
        remaining, until = total, now + self.window
        for minute, failures in minutes:
            remaining -= failures
            if remaining < self.limit:
                until = minute + self.window
                break
        wait = max(1.0, (until - now).total_seconds())
        self._block(source, wait, total)
        return total, math.ceil(wait)

    def _block(self, source: str, wait: float, total: int) -> None:
        deadline = self.monotonic() + wait
        with self._lock:
            known = source in self.blocked
            if not known and len(self.blocked) >= MAX_BLOCKED:
                now = self.monotonic()
                for stale in [s for s, d in self.blocked.items() if d <= now]:
                    del self.blocked[stale]
                while len(self.blocked) >= MAX_BLOCKED:
                    del self.blocked[next(iter(self.blocked))]
            self.blocked[source] = deadline
        if not known:
            self.metrics.scim_client_blocked()
            log.warning(
                "SCIM: %d failed token checks from %s within %d minutes; refusing it (429)"
                " for %d s",
                total,
                source,
                self.window.total_seconds() // 60,
                math.ceil(wait),
                extra={"event": "scim.throttled", "reason": "too_many_failures"},
            )
