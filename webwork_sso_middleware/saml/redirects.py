"""Where a browser may be sent after sign-in or sign-out: relative paths on this site only."""

from __future__ import annotations

import re

# A path on this site: one leading slash, then no second slash, no backslash anywhere
# (browsers read "/\\evil.com" as "//evil.com"), no control characters or spaces.
_LOCAL_PATH = re.compile(r"^/(?![/\\])[^\\\x00-\x20\x7f]*$")


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` when it is a relative path on this site, else ``default``.

    Absolute URLs, scheme-relative ``//host``, ``/\\host``, ``javascript:`` and anything
    with control characters all fall back to the default: no open redirects.
    """
    if not value or len(value) > 2048 or not _LOCAL_PATH.match(value):
        return default
    return value
