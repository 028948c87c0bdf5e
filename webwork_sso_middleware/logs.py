"""The package's loggers: every value a record carries is rendered with line breaks escaped.

Log lines embed what requests send (a slug in the URL, a path, an entity ID, a client address,
a rejection's detail). A raw newline, carriage return, U+2028 or U+0085 there would let a caller
write a log line of their own choosing, so each module takes its logger from
:func:`package_logger`, whose filter escapes the record's message and arguments: one mechanism
at every call, rather than a fix at each call site that the next call could forget.

The filter sits on the package's own loggers only (never the root logger or the host's), and
changes nothing but the text our records produce; handlers, levels and propagation stay the
host's to configure. Tracebacks (``exc_info``) are left as the formatter renders them.
"""

from __future__ import annotations

import logging
import unicodedata
from typing import Any

# Control characters (C0, DEL, C1 including U+0085), format characters (bidi overrides,
# zero-width), and the line and paragraph separators U+2028 and U+2029.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def escape_log_text(text: str) -> str:
    """``text`` on one line: line breaks and other invisible characters as escapes, and the
    backslash doubled so an escape in the output is never ambiguous."""
    if text.isprintable() and "\\" not in text:
        return text  # the common case, without a character loop
    return "".join(_escaped(character) for character in text)


def _escaped(character: str) -> str:
    if character in _NAMED:
        return _NAMED[character]
    if unicodedata.category(character) not in _ESCAPED_CATEGORIES:
        return character
    code = ord(character)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


class _Escaped:
    """An argument whose ``%s`` and ``%r`` renderings are escaped (numbers are left alone, so
    ``%d`` keeps working)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return escape_log_text(str(self.value))

    def __repr__(self) -> str:
        return escape_log_text(repr(self.value))


class EscapingFilter(logging.Filter):
    """Escapes a record's message and arguments in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_webwork_sso_escaped", False):
            return True  # the same record met the filter twice: escape once
        setattr(record, "_webwork_sso_escaped", True)  # noqa: B010 - not a LogRecord field
        if isinstance(record.msg, str):
            record.msg = escape_log_text(record.msg)
        else:
            record.msg = _Escaped(record.msg)
        if isinstance(record.args, dict):  # log.info("%(slug)s", {"slug": ...})
            record.args = {key: _wrap(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(_wrap(value) for value in record.args)
        return True


def _wrap(value: Any) -> Any:
    if isinstance(value, (int, float)) or value is None:
        return value  # nothing to escape, and %d / %.1f need the number itself
    return _Escaped(value)


_FILTER = EscapingFilter()


def package_logger(name: str) -> logging.Logger:
    """The logger ``name`` (one of this package's modules), with the escaping filter."""
    package = __name__.rpartition(".")[0]
    if name != package and not name.startswith(package + "."):
        raise ValueError(f"{name!r} is not one of this package's loggers")
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
