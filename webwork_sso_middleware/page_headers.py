"""The security headers of every HTML page this package serves, owned in one place.

The settings page, the SAML pages (``/saml/login``, ``/saml/logout``, sign-in errors) and the
dev IdP's pages all call :func:`secure_page`, so none of them can drift from the others.
Nothing may load from anywhere; inline styles and scripts run only when the policy names them
(by a per-response nonce, or by the hash of a fixed block, which keeps a page byte-identical
between responses); nothing may frame the pages; forms may be submitted to this site only,
unless a page names the other places its form goes (the sign-in form, the dev IdP's auto-post).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from werkzeug.wrappers import Response

SELF = "'self'"
NONE = "'none'"
# What a CSP host-source may hold: anything else (a quote, ";", ",", a space) could change the
# policy, so such an origin is left out rather than written.
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def new_nonce() -> str:
    """A fresh CSP nonce: one per response, never reused."""
    return secrets.token_urlsafe(16)


def nonce_source(nonce: str) -> str:
    return f"'nonce-{nonce}'"


def hash_source(inline: str) -> str:
    """The CSP source that allows exactly this inline ``<style>`` or ``<script>`` content."""
    digest = hashlib.sha256(inline.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def origin_source(url: str) -> str | None:
    """``url``'s origin as a CSP source (``https://idp.example.com:8443``), or None when it has
    no http(s) origin that a policy can safely name."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not _HOST.match(parts.netloc):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(
    *, styles: str, scripts: str = NONE, form_action: Sequence[str] = (SELF,)
) -> str:
    """The CSP of one page: ``styles`` and ``scripts`` are the sources allowed for each."""
    return "; ".join(
        (
            "default-src 'none'",
            f"style-src {styles}",
            f"script-src {scripts}",
            f"form-action {' '.join(form_action) or NONE}",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        )
    )


def secure_page(
    response: Response, *, styles: str, scripts: str = NONE, form_action: Sequence[str] = (SELF,)
) -> Response:
    """Add the page headers to ``response`` (and return it).

    Sign-in pages and the settings page may hold tokens, a signed assertion or a fresh SCIM
    secret: they are never cached, framed, sniffed as another type, or named in a Referer.
    """
    headers = response.headers
    headers["Cache-Control"] = "no-store"
    headers["X-Frame-Options"] = "DENY"  # for browsers older than frame-ancestors
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Content-Security-Policy"] = content_security_policy(
        styles=styles, scripts=scripts, form_action=form_action
    )
    return response
