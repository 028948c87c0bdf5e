"""Per-process answers to "is this session live?".

The bound (see the package docstring): a cached answer is trusted for ``recheck_interval``
after its query began; changes committed in this process evict at once: the cache's owner
registers :meth:`RevocationCache.forget_members` with its Database (store/db.py), which calls it
when a transaction that ended sessions commits. No registry of caches outlives its owner.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time

from ..errors import ConfigurationError
from ..identity import Member
from ..logs import package_logger

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
