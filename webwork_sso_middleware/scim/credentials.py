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

import datetime as dt

from ..store.db import UnitOfWork
from ..store.workspaces import (
    ScimCredential,
    find_credential,
    find_credential_by_digest,
    hash_token,
)
from .remembered import Remembered

# Far more than the workspaces whose directories sync in the same few seconds; a full cache
# forgets its least recently used token first.
MAX_TOKENS = 1024


class CredentialCache:
    def __init__(self, *, recheck: dt.timedelta, max_tokens: int = MAX_TOKENS) -> None:
        self._found: Remembered[str, ScimCredential | None] = Remembered(
            recheck=recheck, max_entries=max_tokens
        )

    def find(self, unit: UnitOfWork, token: str) -> ScimCredential | None:
        """The credential of a live ``token``, or None: from this worker's memory when it was
        looked up less than ``recheck`` ago, else from the database (``unit``)."""
        if self._found.recheck_seconds <= 0:
            return find_credential(unit, token)
        digest = hash_token(token)  # once: the memory's key and the database's
        return self._found.get(
            digest,
            lambda: find_credential_by_digest(unit, digest),
            keep=lambda credential: credential is not None,  # a wrong token: asked every time
        )

    def forget(self) -> None:
        """Drop every token this worker remembers (for a change made in this worker)."""
        self._found.forget()

    def __len__(self) -> int:
        return len(self._found)
