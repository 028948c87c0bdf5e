"""Signed session cookies, their records in the database, and the revocation cache.

A session is a row in ``member_sessions`` (keyed by the SHA-256 of a random id) and a cookie
signed with the site's secret keys that carries the id, the member, the workspace, the member's
session generation, and when the session began and was last used.

Checking a cookie costs no database round trip in the steady state. The signature and both
lifetimes are checked from the cookie alone; whether the session is still live (not ended, the
member active and on the same generation, the workspace's SSO on) is asked of the database at
most once per ``recheck_interval`` per session and per process, and the answer is cached.

**The revocation bound.** Deactivation, deletion, logout, "sign out everywhere" and switching a
workspace's SSO off (or moving it to the free plan: store/workspaces.py) commit to the database;
every worker stops honouring the session within ``recheck_interval`` (2 seconds by default) of
that commit. A cached answer is trusted until ``recheck_interval`` after its query
*began*, so an answer that raced the commit expires no later than ``commit + recheck_interval``.
In the process that made the change the effect is immediate: a member's session_generation or
active flag changed through the ORM (SCIM), sessions the store ended in SQL (it names their
members on the connection, store/db.py ``note_sessions_ended``), ``sign_out_everywhere`` and
``end`` evict the cached answers at commit: the session manager registers its cache with its
Database (``Database.on_sessions_ended``), so each middleware's cache hears its own database.
"""

from .manager import SamlSubject, SessionCookie, SessionManager, hash_session_id
from .revocation import RevocationCache

__all__ = ["RevocationCache", "SamlSubject", "SessionCookie", "SessionManager", "hash_session_id"]
