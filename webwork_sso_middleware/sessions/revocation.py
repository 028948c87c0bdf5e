"""Per-process answers to "is this session live?", and eviction at commit in this process.

The bound (see the package docstring): a cached answer is trusted for ``recheck_interval``
after its query began; changes committed in this process evict at once.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import object_session

from ..errors import ConfigurationError
from ..identity import Member
from ..logs import package_logger
from ..store.db import SESSIONS_ENDED, StoreSession
from ..store.models import Member as MemberRow

log = package_logger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class _Check:
    """What the database said about a session, and when the question was asked."""

    asked_at: float  # time.monotonic() before the query began
    member_id: str
    workspace_id: int
    generation: int
    expires_at: float  # epoch seconds
    member: Member | None  # None: the session is not live

    @classmethod
    def unknown(cls, asked_at: float) -> _Check:
        """The answer for a session the database does not hold: dead, and matching no cookie."""
        return cls(asked_at, "", 0, -1, 0.0, None)


class RevocationCache:
    """Per-process answers to "is this session live?", each trusted for ``recheck_interval``.

    Bounded (least recently used entries go first) and safe to share between threads.
    """

    def __init__(self, max_entries: int, recheck_interval: float) -> None:
        if max_entries < 1:
            raise ConfigurationError("cache_size", "must be at least 1")
        self.max_entries = max_entries
        self.recheck_interval = recheck_interval
        self._entries: collections.OrderedDict[str, _Check] = collections.OrderedDict()
        # member id -> monotonic time: answers asked before it may predate a revocation.
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, id_hash: str) -> _Check | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(id_hash)
            if entry is None:
                return None
            if now - entry.asked_at >= self.recheck_interval:
                del self._entries[id_hash]
                return None
            self._entries.move_to_end(id_hash)
            return entry

    def put(self, id_hash: str, check: _Check) -> None:
        with self._lock:
            # Only a "live" answer can be dangerously stale; a "dead" one is always kept.
            if check.member is not None:
                if check.asked_at < self._revoked.get(check.member_id, float("-inf")):
                    return  # it may have been read before the revocation committed
                current = self._entries.get(id_hash)
                if current is not None and current.asked_at > check.asked_at:
                    return  # a newer answer (such as a logout's) wins over a slow query's
            self._entries[id_hash] = check
            self._entries.move_to_end(id_hash)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget_members(self, member_ids: frozenset[str]) -> None:
        """Drop every answer about these members, and refuse answers read before now."""
        # The commit event fires just before COMMIT: answers read in the next moment may
        # still see the old row, so they are not cached for a little while either.
        until = time.monotonic() + max(self.recheck_interval, 1.0)
        with self._lock:
            for key in [k for k, v in self._entries.items() if v.member_id in member_ids]:
                del self._entries[key]
            for member_id in member_ids:
                self._revoked.pop(member_id, None)
                self._revoked[member_id] = until
            now = time.monotonic()
            while self._revoked and (
                len(self._revoked) > self.max_entries or next(iter(self._revoked.values())) < now
            ):
                del self._revoked[next(iter(self._revoked))]


# -- revocation inside this process ------------------------------------------------------------
# Every cache in the process hears about a member whose sessions end here, at commit.

_CACHES: weakref.WeakSet[RevocationCache] = weakref.WeakSet()
_CACHES_LOCK = threading.Lock()
_PENDING = SESSIONS_ENDED  # the store names members whose sessions it ended in SQL here too


def revoke_locally(member_ids: Iterable[str]) -> None:
    """Evict these members' sessions from every cache in this process."""
    ids = frozenset(member_ids)
    with _CACHES_LOCK:
        caches = list(_CACHES)
    for cache in caches:
        cache.forget_members(ids)


def _note_change(target: MemberRow, value: Any, oldvalue: Any, _initiator: Any) -> None:
    session = object_session(target)
    if value != oldvalue and target.id is not None and session is not None:
        session.info.setdefault(_PENDING, set()).add(target.id)


event.listen(MemberRow.session_generation, "set", _note_change)
event.listen(MemberRow.active, "set", _note_change)


def watch(engine: Engine) -> None:
    """Evict in this process when a transaction on ``engine`` that ended sessions commits.

    Attached to the store's engine only (never to SQLAlchemy's Engine class), so a host app's
    own engines carry none of this.
    """
    if not event.contains(engine, "commit", _on_commit):
        event.listen(engine, "commit", _on_commit)
        event.listen(engine, "rollback", _on_rollback)


@event.listens_for(StoreSession, "after_flush")
def _hand_to_connection(session: StoreSession, _context: Any) -> None:
    # The store's sessions join a Core transaction and never commit themselves: the
    # connection's commit is the moment that counts.
    if ids := session.info.pop(_PENDING, None):
        session.connection().info.setdefault(_PENDING, set()).update(ids)


def _on_commit(connection: Connection) -> None:
    if ids := connection.info.pop(_PENDING, None):
        try:
            revoke_locally(ids)
        except Exception:  # an error here would abort the commit: the bound still holds
            log.exception("could not evict revoked sessions from this process's caches")


def _on_rollback(connection: Connection) -> None:
    # A connection lost mid-transaction (invalidated) took its info with it; asking for that
    # info again would try to reconnect inside the failed transaction and raise.
    if not connection.invalidated:
        connection.info.pop(_PENDING, None)
