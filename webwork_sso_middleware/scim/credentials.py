"""Which workspace a SCIM token opens, remembered by each worker for a short while.

Every SCIM request presents its workspace's token, and a directory sync sends thousands in a
burst with the same one: looking the token up each time was a statement (and, on PostgreSQL, a
round trip) in every request, a sixth of a create's CPU. A worker keeps what it found for at
most ``recheck`` (the site's ``session_recheck_seconds``, the bound a session's cached check
has too), so rotating a token, switching SCIM off or leaving the plans that include it reaches
every worker within that time; 0 asks the database on every request.

Only tokens that opened a workspace are kept, by their SHA-256 (the form the database holds),
never the token itself: a wrong token is looked up, refused and counted by the throttle every
time, as before.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time

from ..store.db import UnitOfWork
from ..store.workspaces import ScimCredential, find_credential, hash_token

# Far more than the workspaces whose directories sync in the same few seconds; a full cache
# forgets its least recently used token first.
MAX_TOKENS = 1024


class CredentialCache:
    def __init__(self, *, recheck: dt.timedelta, max_tokens: int = MAX_TOKENS) -> None:
        self.recheck_seconds = recheck.total_seconds()
        self.max_tokens = max_tokens
        self._found: collections.OrderedDict[str, tuple[float, ScimCredential]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()
        # Counts forget()s: a lookup that began before one may have read what the change
        # replaced, and is not remembered (its own request is answered as it read).
        self._generation = 0

    def find(self, unit: UnitOfWork, token: str) -> ScimCredential | None:
        """The credential of a live ``token``, or None: from this worker's memory when it was
        looked up less than ``recheck`` ago, else from the database (``unit``)."""
        if self.recheck_seconds <= 0:
            return find_credential(unit, token)
        digest = hash_token(token)
        now = time.monotonic()
        with self._lock:
            found = self._found.get(digest)
            if found is not None:
                if found[0] > now:
                    self._found.move_to_end(digest)
                    return found[1]
                del self._found[digest]
            generation = self._generation
        credential = find_credential(unit, token)
        if credential is not None:
            with self._lock:
                if generation != self._generation:
                    return credential  # a change committed meanwhile: not remembered
                self._found[digest] = (now + self.recheck_seconds, credential)
                self._found.move_to_end(digest)
                while len(self._found) > self.max_tokens:
                    self._found.popitem(last=False)
        return credential

    def forget(self) -> None:
        """Drop every token this worker remembers (for a change made in this worker)."""
        with self._lock:
            self._found.clear()
            self._generation += 1

    def __len__(self) -> int:
        return len(self._found)
