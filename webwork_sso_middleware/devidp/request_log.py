"""The request log of the development servers (``serve`` and ``dev-idp``), safe to keep in a file.

werkzeug's request handler logs each request line as it came: a sign-in's whole
``SAMLRequest``, a settings link's token, a ``RelayState``; and it colours the line with ANSI
codes whatever stderr is, so a log redirected to a file fills with escape sequences. This
handler, given to werkzeug's ``make_server`` (a subclass, not a patch of werkzeug's globals, so
nothing else in the process changes), logs the same line with

- the value of every SAML protocol parameter and of every token-like parameter replaced by
  ``…`` (``SAMLRequest=…``), its name kept so the log still says what was asked;
- every value escaped (logs.escape_log_text): no control character from a request reaches the
  log raw, so a request cannot write a log line of its choosing;
- colour only when stderr is a terminal.
"""

from __future__ import annotations

import re
import sys
from urllib.parse import unquote

from werkzeug.serving import WSGIRequestHandler
from werkzeug.urls import uri_to_iri

from ..logs import escape_log_text

__all__ = ["REDACTED", "RedactingRequestHandler", "redact_target"]

REDACTED = "…"
# The SAML bindings' parameters, compared without letter case (as a hostile client may vary it).
SAML_PARAMETERS = frozenset(
    {"samlrequest", "samlresponse", "samlart", "relaystate", "signature", "sigalg"}
)
# Names that say "credential": a settings link (link=), an OAuth code or token, a password.
TOKEN_LIKE_NAME = re.compile(
    r"token|secret|passw|key|code|ticket|nonce|session|auth|sig|link|assertion|credential",
    re.IGNORECASE,
)
# A value that looks like a credential whatever its name: long, unbroken, base64/hex-like.
TOKEN_LIKE_VALUE = re.compile(r"[A-Za-z0-9_\-.~+/=%]{32,}")
# The colours werkzeug uses, by status: what a terminal still gets.
_COLOURS = {"1": "1", "304": "36", "3": "32", "404": "33", "4": "1;31", "5": "1;35"}


def _sensitive(name: str, value: str) -> bool:
    decoded = unquote(name.replace("+", " ")).strip()
    return (
        decoded.lower() in SAML_PARAMETERS
        or TOKEN_LIKE_NAME.search(decoded) is not None
        or TOKEN_LIKE_VALUE.fullmatch(value) is not None
    )


def _redact_query(query: str) -> str:
    parts = []
    for part in re.split(r"([&;])", query):
        if part in ("&", ";") or not part:
            parts.append(part)
            continue
        name, equals, value = part.partition("=")
        if equals and _sensitive(name, value):
            parts.append(f"{name}={REDACTED}")
        elif not equals and TOKEN_LIKE_VALUE.fullmatch(name):
            parts.append(REDACTED)  # a bare token (?abc...)
        else:
            parts.append(part)
    return "".join(parts)


def redact_target(target: str) -> str:
    """A request target (path and query) as the log shows it: credentials' values replaced by
    ``…`` and percent-escapes shown as characters, as werkzeug shows them. Not yet escaped:
    the caller escapes the whole line once."""
    path, question, query = target.partition("?")
    return uri_to_iri(path) + question + (uri_to_iri(_redact_query(query)) if question else "")


def _redact_words(text: str) -> str:
    """A request line werkzeug could not parse, or a message quoting one: each word that
    carries a query has its credentials redacted all the same (nothing decoded)."""
    return " ".join(
        head + "?" + _redact_query(query) if "?" in word else word
        for word in text.split(" ")
        for head, _, query in [word.partition("?")]
    )


class RedactingRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, logging request lines redacted, escaped, and coloured only
    when stderr is a terminal."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        try:
            line = f"{self.command} {redact_target(self.path)} {self.request_version}"
        except AttributeError:  # no path: the request line did not parse
            line = _redact_words(self.requestline)
        # Escaped once, whole: the method and version are the client's words too.
        line = escape_log_text(line)
        status = escape_log_text(str(code))
        colour = _COLOURS.get(status) or _COLOURS.get(status[:1])
        if colour is not None and _colour_wanted():
            line = f"\x1b[{colour}m{line}\x1b[0m"
        self.log("info", '"%s" %s %s', line, status, escape_log_text(str(size)))

    def log_error(self, format: str, *args: object) -> None:
        # werkzeug's "code 400, message Bad request syntax ('...')" quotes the raw request line.
        self.log("error", "%s", escape_log_text(_redact_words(format % args)))


def _colour_wanted() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())
