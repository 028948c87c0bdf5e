"""The package's loggers: every value a record carries is rendered with line breaks escaped.

Log lines embed what requests send (a slug in the URL, a path, an entity ID, a client address,
a rejection's detail). A raw newline, carriage return, U+2028 or U+0085 there would let a caller
write a log line of their own choosing, so each module takes its logger from
:func:`package_logger`, whose filter escapes the record's message and arguments: one mechanism
at every call, rather than a fix at each call site that the next call could forget.

The filter sits on the package's own loggers only (never the root logger or the host's), and
changes nothing but the text our records produce; handlers, levels and propagation stay the
host's to configure. Tracebacks (``exc_info``) are left as the formatter renders them.

Structured fields. Every package record carries ``event`` (a stable short name of what happened,
such as ``sign_in.refused``), ``workspace`` (a slug, where known), ``reason`` (a rejection code,
where there is one) and ``request_id`` (while a request is served), as record attributes, so a
host's own format string may name them (``%(event)s``); the call sites pass the first three with
``extra=``. :class:`JsonFormatter` writes a record as one JSON object per line; the site's
``log_format="json"`` option installs it (see :class:`JsonLines`), or a host installs it in its
own logging configuration. Nothing here runs at import time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
import threading
import unicodedata
from collections.abc import MutableMapping
from contextvars import ContextVar, Token
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
    """Escapes a record's message, arguments and structured fields in place, after keeping
    the originals for :class:`JsonFormatter` (whose JSON escaping is the escaping); fills in
    the structured fields a call did not give. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_webwork_sso_escaped", False):
            return True  # the same record met the filter twice: escape once
        setattr(record, "_webwork_sso_escaped", True)  # noqa: B010 - not a LogRecord field
        raw = {name: _field_value(record, name) for name in FIELDS}
        setattr(record, _RAW, (record.msg, record.args, raw))
        for name, value in raw.items():
            setattr(record, name, escape_log_text(value) if isinstance(value, str) else value)
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


# -- structured fields and JSON lines ------------------------------------------------------------

# The fields every package record carries (None where they do not apply).
FIELDS = ("event", "workspace", "reason", "request_id")
LOG_FORMATS = ("text", "json")
# The request's id, for the host app to log beside its own records (set on every request).
REQUEST_ID_KEY = "webwork_sso.request_id"
# An X-Request-Id a front server (nginx's $request_id, a load balancer) set is kept only in this
# form: letters, digits and ._- (no spaces, quotes or separators a log reader could trip on).
# Anyone may send the header, so an id is a correlation aid, never evidence of anything.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,127}\Z")
_RAW = "_webwork_sso_raw"


class _Served:
    """What the logs know of the request being served on this thread (or task)."""

    __slots__ = ("request_id", "workspace")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.workspace: str | None = None


_SERVED: ContextVar[_Served | None] = ContextVar("webwork_sso_served", default=None)


def request_id_of(environ: MutableMapping[str, Any]) -> str:
    """The request's X-Request-Id when it has the strict form, else a new random id."""
    offered = environ.get("HTTP_X_REQUEST_ID", "")
    if isinstance(offered, str) and REQUEST_ID_PATTERN.match(offered):
        return offered
    return os.urandom(16).hex()  # as random as uuid4().hex, in a fifth of the time


def begin_request(environ: MutableMapping[str, Any]) -> Token[_Served | None]:
    """A request starts being served: its id in ``environ[REQUEST_ID_KEY]`` and in every record
    logged meanwhile on this thread; hand the token to :func:`end_request` when the app has
    returned. (Records logged while a streamed body is being sent carry none.) Two calls, not a
    context manager: this runs on every host request, and a generator-based one costs three
    times as much."""
    request_id = request_id_of(environ)
    environ[REQUEST_ID_KEY] = request_id
    return _SERVED.set(_Served(request_id))


def end_request(token: Token[_Served | None]) -> None:
    _SERVED.reset(token)


def note_workspace(slug: str) -> None:
    """The request being served turned out to be this workspace's (a SCIM token named it):
    its later records carry the slug without each call saying so."""
    served = _SERVED.get()
    if served is not None:
        served.workspace = slug


def _field_value(record: logging.LogRecord, name: str) -> Any:
    value = record.__dict__.get(name)
    if value is None:
        served = _SERVED.get()
        if served is not None and name in ("request_id", "workspace"):
            value = getattr(served, name)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``event``,
    ``workspace``, ``reason``, ``request_id``, ``message``, and ``exception`` / ``stack`` when
    the record has them.

    The keys are fixed: a record's values are only ever JSON strings, numbers or null, so no
    value can add a key or end the line. ``ensure_ascii`` escapes every character past ASCII,
    U+2028 and U+0085 too, which some readers take for line breaks. Package records are written
    from their original text (not the text mode's backslash escapes); a host's own records work
    too, and get the request id of the request being served.

    For a host's logging configuration::

        "formatters": {"json": {"()": "webwork_sso_middleware.logs.JsonFormatter"}}
    """

    def format(self, record: logging.LogRecord) -> str:
        raw = record.__dict__.get(_RAW)
        if raw is not None:
            msg, args, fields = raw
            message = str(msg) % args if args else str(msg)
        else:
            message = record.getMessage()
            fields = {name: _field_value(record, name) for name in FIELDS}
        document: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            **fields,
            "message": message,
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=True, default=str)


class _StandardError(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record comes (as ``logging.lastResort``)."""

    terminator = "\n"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + self.terminator)
            stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as logging.StreamHandler.emit: handleError reports it
            self.handleError(record)


class JsonLines:
    """``log_format="json"``: the package's logger (``webwork_sso_middleware``) writes its
    records to stderr as JSON lines, at INFO and up unless the host set its level, and no
    longer passes them on to the root logger (so they are not written a second time as text),
    as gunicorn's and uvicorn's own loggers do. Nothing else of the host's logging changes.

    Installed once however many middlewares ask; the last :meth:`release` puts the logger back
    as it was. A host that wants the records in its own handlers leaves the option at "text"
    and gives those handlers :class:`JsonFormatter`.
    """

    _lock = threading.Lock()
    _users = 0
    _handler: logging.Handler | None = None
    _saved: tuple[int, bool] = (logging.NOTSET, True)

    def __init__(self) -> None:
        self._released = False
        cls = type(self)
        with cls._lock:
            if cls._users == 0:
                logger = logging.getLogger(_PACKAGE)
                cls._saved = (logger.level, logger.propagate)
                handler = _StandardError()
                handler.setFormatter(JsonFormatter())
                cls._handler = handler
                logger.addHandler(handler)
                logger.propagate = False
                if logger.level == logging.NOTSET:
                    logger.setLevel(logging.INFO)
            cls._users += 1

    def release(self) -> None:
        cls = type(self)
        with cls._lock:
            if self._released:
                return
            self._released = True
            cls._users -= 1
            if cls._users == 0 and cls._handler is not None:
                logger = logging.getLogger(_PACKAGE)
                logger.removeHandler(cls._handler)
                cls._handler = None
                logger.setLevel(cls._saved[0])
                logger.propagate = cls._saved[1]


_PACKAGE = __name__.rpartition(".")[0]
