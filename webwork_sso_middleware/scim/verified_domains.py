"""Which workspace verified a domain, as SCIM's creates ask it, remembered by each worker for a
short while (scim/remembered.py: at most the site's ``session_recheck_seconds``).

A create may not name a member in a domain another workspace verified (members/lifecycle.py).
A directory sync creates thousands of members in a handful of domains, and asking the database
each time was a statement, and on PostgreSQL a round trip, in every create.

Why a create may act on an answer up to ``recheck`` old: a new member has no session, and every
sign-in asks the database afresh (lifecycle.py refuses a member named in a domain another
workspace verified). So a member created a moment after another workspace verified its domain
can sign in no more than one created a moment before, a state verification already leaves
behind. A rename asks the database every time: the member renamed may hold a live session,
which a verification ends only for the members it finds named in the domain.
"""

from __future__ import annotations

import datetime as dt

from ..store import domains as domain_store
from ..store.db import UnitOfWork
from .remembered import Remembered

# A sync names members in a few domains; a hostile client naming many only evicts (speed, never
# correctness: an evicted domain is asked again).
MAX_DOMAINS = 4096


class VerifiedDomains:
    def __init__(self, *, recheck: dt.timedelta, max_domains: int = MAX_DOMAINS) -> None:
        self._verifiers: Remembered[str, int | None] = Remembered(
            recheck=recheck, max_entries=max_domains
        )

    def verifier_of(self, unit: UnitOfWork, domain: str) -> int | None:
        """The workspace that verified ``domain`` (None: none did), as domains.verifier_of
        answers it, from this worker's memory when asked less than ``recheck`` ago."""
        return self._verifiers.get(domain, lambda: domain_store.verifier_of(unit, domain))

    def forget(self) -> None:
        """Drop every remembered answer (a domain verified or released in this process)."""
        self._verifiers.forget()

    def __len__(self) -> int:
        return len(self._verifiers)
