"""A SAML 2.0 identity provider for development only: anyone signs in as anyone.

``DevIdP`` (idp.py) is what ``webwork-sso dev-idp`` and ``webwork-sso serve`` run; tests use
it directly. protocol.py and keys.py hold the SAML and key handling it shares with the test
suite's IdP; pages.py its HTML; server.py runs it on werkzeug, loopback only unless forced.
"""

from __future__ import annotations

from .idp import DEFAULT_USERS, DevIdP, DevIdPError

__all__ = ["DEFAULT_USERS", "DevIdP", "DevIdPError"]
