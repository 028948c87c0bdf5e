"""The owner's "Test sign-in": a signed ticket from the settings page to the SAML login.

A test sign-in runs every check of a real sign-in but starts no session, so it must never be
something a stranger can ask for (to sign someone in without a session, or to learn whether
they could sign in). The settings page (admin/) issues the ticket, in its Test sign-in link,
only to a viewer its access check let in, and binds it to the credential that opened the page
(a settings session or the owner's SSO session: the CSRF binding). The SAML side (saml/)
reads it at ``/login``, keeps it with the pending AuthnRequest, and at the ACS records the
result under the ticket's nonce with a *mark* of that binding. The settings page shows a
result only to a viewer holding the same binding, so nobody else learns it, not even with
the nonce.

Here, below both (they may not import each other): the ticket's format, and the mark.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from ..errors import SignatureRefused
from ..signing import Purpose, Signing

# The ticket is in the settings page's Test sign-in link, made when the page is shown: an hour
# for the page to sit open (the login's own request then has its ten minutes).
TICKET_LIFETIME = dt.timedelta(hours=1)
RESULT_WINDOW = dt.timedelta(minutes=30)  # how long the settings page can show a result
MAX_TICKET = 512
FORMAT = 1
# The audit log's action for a test's result (admin/diagnostics.py reads it).
TESTED = "sign_in_tested"


def binding_mark(binding: str) -> str:
    """What the result keeps of the binding: a digest of the digest, so the audit log (which
    may be exported) never holds a value a CSRF token is made of."""
    return hashlib.sha256(("sign-in-test\0" + binding).encode("utf-8")).hexdigest()[:32]


@dataclasses.dataclass(frozen=True)
class SignInTest:
    """One test sign-in: its nonce (the result's key) and the mark of its owner's binding."""

    nonce: str
    mark: str


class SignInTests:
    """Issue (settings page) and read (SAML login) test sign-in tickets."""

    def __init__(self, *, signing: Signing, clock: Callable[[], float] = time.time) -> None:
        self._serializer = signing[Purpose.SIGN_IN_TEST]
        self.clock = clock

    def ticket(self, workspace_id: int, binding: str) -> tuple[str, SignInTest]:
        test = SignInTest(secrets.token_urlsafe(16), binding_mark(binding))
        expires = int(self.clock() + TICKET_LIFETIME.total_seconds())
        value = self._serializer.dumps([FORMAT, workspace_id, test.nonce, test.mark, expires])
        return str(value), test

    def read(self, ticket: str | None, workspace_id: int) -> SignInTest | None:
        """The ticket's test, when it is ours, for this workspace and not expired."""
        if not ticket or len(ticket) > MAX_TICKET:
            return None
        try:
            payload: Any = self._serializer.loads(ticket)
        except SignatureRefused:
            return None
        if not (isinstance(payload, list) and len(payload) == 5 and payload[0] == FORMAT):
            return None
        _, workspace, nonce, mark, expires = payload
        if not (
            type(workspace) is int
            and isinstance(nonce, str)
            and isinstance(mark, str)
            and type(expires) is int
        ):
            return None
        if workspace != workspace_id or expires <= self.clock():
            return None
        return SignInTest(nonce, mark)
