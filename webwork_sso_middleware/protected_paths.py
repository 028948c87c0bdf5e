"""Which request paths ``protect=`` covers: matched on a normalised form of the path.

The raw path cannot be trusted to mean one page: ``/Reports``, ``//reports``, ``/./reports``,
``/x/../reports``, ``/reports;v=1``, ``/reports.`` and ``/%2572eports`` all reach the host's
``/reports`` page in some host app, framework or front server (case-insensitive routing, merged
slashes, resolved dot segments, Java-style path parameters, Windows' trailing-dot rule, a second
round of percent-decoding). So a path is protected when either of two readings of it falls under
a protected prefix: the path as given, or the path resolved the way the most lenient server
would. Both readings fold case and undo percent-encoding: protecting more than the host app
means is the safe side; protecting less would let a request through without a session.

Only the decision uses these forms: the host app still receives the request's own PATH_INFO.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from urllib.parse import unquote_to_bytes

# Enough rounds for any real double or triple encoding; a path still changing after them is
# matched in the form reached, and protected if that form is covered.
_DECODE_ROUNDS = 8
_SEGMENT_END = re.compile(r"[;\x00]")  # path parameters (Java servers) and C-string ends


def request_path_forms(path_info: str) -> tuple[str, str]:
    """The two readings of a request's PATH_INFO: (as given, resolved)."""
    try:
        raw = path_info.encode("latin-1")  # PEP 3333: PATH_INFO holds the bytes as latin-1
    except UnicodeEncodeError:
        raw = path_info.encode("utf-8", errors="surrogateescape")  # a server that decoded it
    text = _folded(raw)
    return _lexical(text), _resolved(text)


def normalise_prefix(prefix: str) -> str:
    """A configured ``protect=`` prefix in the resolved form it is matched in."""
    return _resolved(_folded(prefix.encode("utf-8")))


def is_protected(path_info: str, prefixes: Sequence[str]) -> bool:
    """``path_info`` falls under one of ``prefixes`` (already normalised), segment-wise:
    ``/reports`` covers ``/reports`` and ``/reports/2024`` but not ``/reports-archive``."""
    if "/" in prefixes:
        return True
    forms = request_path_forms(path_info)
    return any(
        form == prefix or form.startswith(prefix + "/") for prefix in prefixes for form in forms
    )


def _folded(raw: bytes) -> str:
    """Percent-decoded until stable, as text, case-folded (NFKC_Casefold, roughly), with
    backslashes as slashes (as IIS and some frameworks read them)."""
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote_to_bytes(raw)
        if decoded == raw:
            break
        raw = decoded
    text = unicodedata.normalize("NFKC", raw.decode("utf-8", errors="replace"))
    return unicodedata.normalize("NFKC", text.casefold()).replace("\\", "/")


def _lexical(text: str) -> str:
    """The path as given: only empty segments merged, so ``/reports/`` is ``/reports``."""
    return "/" + "/".join(segment for segment in text.split("/") if segment)


def _resolved(text: str) -> str:
    """Dot segments resolved (never above the root), path parameters and trailing dots and
    spaces of a segment dropped, duplicate slashes merged."""
    segments: list[str] = []
    for segment in text.split("/"):
        segment = _SEGMENT_END.split(segment, maxsplit=1)[0]
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segment = segment.rstrip(". ")
        if segment:  # "", "." and "..." name the current segment
            segments.append(segment)
    return "/" + "/".join(segments)
