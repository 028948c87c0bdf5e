"""Prebuilt Core statements run straight on the DB-API cursor, for the sign-in hot path.

SQLAlchemy's execution layer (execution context, events, result metadata) costs several times
what the driver itself does for each statement, and a SAML sign-in runs several statements, so
on that path the layer was a large share of the whole ACS (benchmarks/acs_bench.py measures it).
A ``DriverStatement`` compiles its statement once per dialect with SQLAlchemy (same SQL text,
same type conversions both ways) and then only hands values to the cursor of the
transaction's own connection: it joins the caller's transaction, and errors arrive as the
same ``DBAPIError`` subclasses, so retries and "database unavailable" handling are unchanged.

Anything the fast path cannot honour runs through ``Connection.execute`` as usual: a
statement that does not compile to plain bound parameters (expanding IN lists, post-compile
parameters, Python-side column defaults), and any engine or connection with ``echo`` or
cursor-execute listeners, so SQL logging, statement counters and tracing still see every
statement.

On psycopg 3 the SQL is compiled once more, to PostgreSQL's own ``$1`` placeholders, and runs
on a ``RawCursor`` with the values as a tuple: psycopg then neither parses the query text nor
reorders a mapping for each execution (its cache of parsed queries skips anything over 50
parameters, such as a member's INSERT), and converts the values in C.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.expression import Executable, Insert

Processor = Callable[[Any], Any]


# eq=False: hashed by identity, one per statement and dialect (the key of _combined_sql).
@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bound parameters in the order the driver wants them
    positional: bool
    fixed: dict[str, Any]  # values the statement carries itself (LIMIT 1, literals)
    bind_processors: tuple[tuple[str, Processor], ...]
    result_processors: tuple[Processor | None, ...]
    # The values in the driver's order, picked in C (a forty-column INSERT is on a hot path).
    pick: Callable[[Mapping[str, Any]], Any]
    # psycopg 3: ``sql`` has numbered placeholders ($1, ...), run on a RawCursor (module doc);
    # ``numbered`` holds it as text between placeholders, to renumber in a combined statement.
    numbered: NumberedSQL | None = None


class DriverStatement:
    """One Core statement, compiled once per dialect, executed on the raw cursor.

    ``keys`` names the columns an ``insert()`` or ``update()`` without ``.values()`` sets (as
    the keys of the parameters passed to ``Connection.execute`` would).
    """

    def __init__(self, statement: Executable, *, keys: Sequence[str] = ()) -> None:
        if isinstance(statement, Insert):
            # Else PostgreSQL's INSERT carries RETURNING of the generated key, for SQLAlchemy's
            # inserted_primary_key, which nothing here reads (an explicit returning() stays).
            statement = statement.inline()
        self.statement = statement
        self.keys = list(keys)
        # INSERT, UPDATE or DELETE (with or without RETURNING): what a connection without a
        # transaction takes only inside its one combined() block.
        self.writes = bool(getattr(statement, "is_dml", False))
        self._compiled: dict[tuple[str, str, str], _Compiled | None] = {}

    def rows(self, connection: Connection, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute in the connection's transaction; the result rows (none for a plain write)."""
        compiled = self._compiled_for(connection.dialect)
        queue = connection.info.get(_COMBINED)
        if queue is not None:
            # Queued, not run: a statement whose rows are read, or one SQLAlchemy would run
            # (it reads the cursor at once), would see none.
            if compiled is None or compiled.result_processors or not compiled.numbered:
                raise RuntimeError(f"not a plain write, so not for combining: {compiled}")
            queue.append((compiled, _arguments(compiled, parameters)))
            return []
        if self.writes:
            guard = connection.info.get(_GUARD)
            if guard is not None and not guard.inside:
                raise RuntimeError(
                    "a write outside combined(), on a connection without a transaction: "
                    "it would commit on its own"
                )
        if compiled is None or _observed(connection):
            result = connection.execute(self.statement, dict(parameters))
            return [tuple(row) for row in result] if result.returns_rows else []
        return _run(connection, compiled, parameters)

    def named_rows(self, connection: Connection, parameters: Mapping[str, Any]) -> list[Any]:
        """As :meth:`rows`, each row a named tuple: its columns by name, as SQLAlchemy's are."""
        make = self._row_type._make
        return [make(row) for row in self.rows(connection, parameters)]

    @functools.cached_property
    def _row_type(self) -> Any:
        columns = getattr(self.statement, "exported_columns", ())
        return collections.namedtuple("Row", [column.key for column in columns])

    def first(
        self, connection: Connection, parameters: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        found = self.rows(connection, parameters)
        return found[0] if found else None

    def fast_path(self, dialect: Dialect) -> bool:
        """Whether this statement can skip SQLAlchemy's execution layer on ``dialect``."""
        return self._compiled_for(dialect) is not None

    def _compiled_for(self, dialect: Dialect) -> _Compiled | None:
        try:
            return self._compiled[dialect.name, dialect.driver, dialect.paramstyle]
        except KeyError:
            key = dialect.name, dialect.driver, dialect.paramstyle  # psycopg 3's SQL is its own
            compiled = self._compiled[key] = self._compile(dialect)
            return compiled

    def _compile(self, dialect: Dialect) -> _Compiled | None:
        compiled: Any = self.statement.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=self.keys or None
        )
        binds = compiled.binds
        if (
            "__[POSTCOMPILE_" in compiled.string
            or any(b.expanding for b in binds.values())
            # Column defaults SQLAlchemy would compute per execution: pass every value.
            or compiled.insert_prefetch
            or compiled.update_prefetch
        ):
            return None
        fixed = {name: bind.effective_value for name, bind in binds.items() if not bind.required}
        processors = []
        for name, bind in binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors.append((name, processor))
        # A SELECT's columns, or a write's RETURNING ones (none without RETURNING).
        columns = getattr(self.statement, "exported_columns", ())
        sql = compiled.string
        names = tuple(compiled.positiontup if dialect.positional else binds)
        numbered = _numbered(dialect)
        numbered_sql = None
        if numbered:
            numbered_sql = NumberedSQL.of(sql)
            sql = numbered_sql.render()
            # By the names callers pass: SQLAlchemy renders some escaped (a.b as %(a_b)s).
            escaped = {e: name for name, e in (compiled.escaped_bind_names or {}).items()}
            names = tuple(escaped.get(name, name) for name in numbered_sql.names)
        positional = dialect.positional or numbered
        return _Compiled(
            sql=sql,
            numbered=numbered_sql,
            names=names,
            pick=_picker(names, positional=positional),
            positional=positional,
            fixed=fixed,
            bind_processors=tuple(processors),
            result_processors=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ),
        )


_COMBINED = "webwork_sso.combined"
_GUARD = "webwork_sso.one_write"
# PostgreSQL takes at most 65,535 parameters in one statement: more are sent one by one.
_MAX_PARAMETERS = 65_535
# psycopg prepares a query a connection ran 5 times and keeps up to 100 per connection; a
# combined statement's text changes with its count of writes (a member's values, up to 800),
# and prepared, one of hundreds of writes holds megabytes of the server's memory. So only a
# combined statement of at most this many writes (a usual create) may be prepared, or kept
# in _combined_sql's cache; a larger one is sent unprepared, its text made each time.
_MAX_PREPARED_WRITES = 8
# psycopg 3: the RawCursor kept with its pooled connection for the connection's next statement
# (SQLAlchemy clears this info when the connection is replaced). A new cursor copies the
# adapters and makes psycopg's converter for each type of value anew, some 3% of a create's
# instructions. Kept only after a result of at most _KEPT_CURSOR_ROWS rows (a write's, a
# lookup's), which it holds until the next statement: a page of members is not kept alive.
_CURSOR = "webwork_sso.raw_cursor"
_KEPT_CURSOR_ROWS = 1


@dataclasses.dataclass(slots=True)
class OneWrite:
    """The rule for a connection without a transaction around its statements (autocommit on
    PostgreSQL), where each statement commits as it runs: reads, and one :func:`combined`
    block, whose writes are one statement there. Any other write through a
    :class:`DriverStatement` raises RuntimeError, as does a second block."""

    # Autocommit (PostgreSQL): a block that cannot be one statement gets a transaction of its
    # own. False where the work has a transaction anyway (SQLite).
    without_transaction: bool = False
    inside: bool = False  # in the combined() block
    used: bool = False  # the block has begun
    sent: bool = False  # its write (or COMMIT) went to the server: its outcome may be unknown


@contextlib.contextmanager
def one_write(connection: Connection, *, without_transaction: bool) -> Iterator[OneWrite]:
    """Hold ``connection`` to :class:`OneWrite`'s rule while the block runs."""
    guard = OneWrite(without_transaction=without_transaction)
    info = connection.info
    info[_GUARD] = guard
    try:
        yield guard
    finally:
        info.pop(_GUARD, None)


@contextlib.contextmanager
def combined(connection: Connection) -> Iterator[None]:
    """Send the plain writes :class:`DriverStatement` runs inside as one statement when the
    block ends (PostgreSQL on psycopg 3: each one a data-modifying CTE of the last), where a
    refused one raises; if the block raises, none is sent.

    For independent writes whose results nobody reads (a new member, its values, its audit
    record, its event): one statement is one round trip and one parse, where each write would
    otherwise cost both in turn, and it is atomic on its own (so it needs no transaction: see
    :class:`OneWrite`). Its parts run in one snapshot and in no promised order (PostgreSQL
    runs the last first), so none may depend on another's effect beyond a constraint checked
    at the end, and serial ids come out in no particular order. Elsewhere (SQLite, psycopg2,
    an engine whose statements are watched) the statements simply run one by one, as they
    come. A block inside another joins it."""
    # The dict itself, kept: once a lost connection is invalidated, reading
    # ``connection.info`` again would try to reconnect inside the failed transaction.
    info = connection.info
    guard: OneWrite | None = info.get(_GUARD)
    if _COMBINED in info or (guard is not None and guard.inside):
        yield  # inside another block: its writes are that block's
        return
    if guard is not None:
        if guard.used:
            raise RuntimeError("one combined() block on a connection without a transaction")
        guard.used = guard.inside = True
    own_transaction = guard is not None and guard.without_transaction
    try:
        if not _numbered(connection.dialect) or _observed(connection):
            # One by one, as they come: in a transaction of their own where there is none.
            with _transaction_of_its_own(connection, guard) if own_transaction else _NO_BLOCK:
                yield
            return
        queue: list[tuple[_Compiled, Sequence[Any]]] = []
        info[_COMBINED] = queue
        try:
            yield
        finally:
            info.pop(_COMBINED, None)
        if not queue:
            return
        statements = tuple(compiled for compiled, _ in queue)
        if sum(len(arguments) for _, arguments in queue) > _MAX_PARAMETERS:
            with _transaction_of_its_own(connection, guard) if own_transaction else _NO_BLOCK:
                for compiled, arguments in queue:
                    _execute(connection, compiled.sql, arguments, compiled.result_processors)
            return
        if guard is not None:
            guard.sent = True
        if len(queue) <= _MAX_PREPARED_WRITES:
            _execute(connection, _combined_sql(statements), _concatenated(queue), ())
        else:
            sql = _combine(statements)
            _execute(connection, sql, _concatenated(queue), (), prepare=False)
    finally:
        if guard is not None:
            guard.inside = False


_NO_BLOCK = contextlib.nullcontext()


@contextlib.contextmanager
def _transaction_of_its_own(connection: Connection, guard: OneWrite | None) -> Iterator[None]:
    """BEGIN and COMMIT around the block, on a connection without a transaction, so writes
    that cannot be one statement still land together (or not at all)."""
    numbered = _numbered(connection.dialect)  # else psycopg2: its plain cursor
    _execute(connection, "BEGIN", None, (), numbered=numbered)
    try:
        yield
    except BaseException:
        # A lost connection rolls back by itself (SQLAlchemy has invalidated it: asking for it
        # again would raise); otherwise the error being raised is the one to report.
        if not connection.invalidated:
            with contextlib.suppress(Exception):
                _execute(connection, "ROLLBACK", None, (), numbered=numbered)
        raise
    if guard is not None:
        guard.sent = True  # from here a lost connection leaves the outcome unknown
    _execute(connection, "COMMIT", None, (), numbered=numbered)


def _numbered(dialect: Dialect) -> bool:
    """psycopg 3.2 or newer (RawCursor): statements compile to numbered placeholders."""
    return (
        dialect.driver == "psycopg"
        and not dialect.positional
        and hasattr(dialect.loaded_dbapi, "RawCursor")
    )


def _concatenated(queue: list[tuple[_Compiled, Sequence[Any]]]) -> list[Any]:
    values: list[Any] = []
    for _, arguments in queue:
        values.extend(arguments)
    return values


@functools.lru_cache(maxsize=256)
def _combined_sql(statements: tuple[_Compiled, ...]) -> str:
    """:func:`_combine`, cached (for combined statements of few writes: _MAX_PREPARED_WRITES)."""
    return _combine(statements)


def _combine(statements: tuple[_Compiled, ...]) -> str:
    """``WITH w1 AS (first), w2 AS (second), ... last``, each one's placeholders renumbered
    after those of the statements before it. All of them run, in one snapshot, and their
    constraints are checked at the end of the whole statement (so a foreign key may name a
    row another of them inserts)."""
    if len(statements) == 1:
        return statements[0].sql
    parts = []
    offset = 0
    for compiled in statements:
        assert compiled.numbered is not None  # only such statements are queued
        parts.append(compiled.numbered.render(offset))
        offset += len(compiled.names)
    *ctes, last = parts
    return "WITH " + ", ".join(f"w{n} AS ({cte})" for n, cte in enumerate(ctes, 1)) + " " + last


# A name is anything up to ")", as psycopg reads it (SQLAlchemy escapes only some characters).
_PYFORMAT = re.compile(r"%%|%\(([^)]+)\)s")


@dataclasses.dataclass(frozen=True, slots=True)
class NumberedSQL:
    """SQL compiled for psycopg (``%(name)s``, a literal % doubled), to be sent with
    PostgreSQL's own numbered placeholders (``$1``; a name used twice gets one number)."""

    texts: tuple[str, ...]  # the SQL between placeholders, one more than ``numbers``
    numbers: tuple[int, ...]  # each placeholder's number, in order of appearance
    names: tuple[str, ...]  # the parameter each number stands for

    @classmethod
    def of(cls, sql: str) -> NumberedSQL:
        texts: list[str] = []
        numbers: list[int] = []
        names: dict[str, int] = {}
        text: list[str] = []
        position = 0
        for match in _PYFORMAT.finditer(sql):
            text.append(sql[position : match.start()])
            position = match.end()
            name = match.group(1)
            if name is None:
                text.append("%")
                continue
            texts.append("".join(text))
            text = []
            numbers.append(names.setdefault(name, len(names) + 1))
        text.append(sql[position:])
        texts.append("".join(text))
        return cls(tuple(texts), tuple(numbers), tuple(names))

    def render(self, offset: int = 0) -> str:
        """The SQL, its placeholders numbered from ``offset + 1``."""
        pieces = [self.texts[0]]
        for number, text in zip(self.numbers, self.texts[1:], strict=True):
            pieces += (f"${number + offset}", text)
        return "".join(pieces)


def _observed(connection: Connection) -> bool:
    """Someone is watching statements (echo, or cursor listeners): let SQLAlchemy run them."""
    engine = connection.engine
    if engine.echo or engine.dispatch.before_cursor_execute or engine.dispatch.after_cursor_execute:
        return True
    # A listener on this Connection alone sets its own ``_has_events`` (SQLAlchemy's
    # ConnectionEvents._listen). Asked only then: a new Connection's joined dispatch builds
    # and raises AttributeError on its first lookup of each event, some 2% of a create's CPU.
    # (SQLAlchemy 2.0 copies the engine's flag, which the SQLite engine's own listeners set:
    # the full check there.)
    return getattr(connection, "_has_events", True) and bool(
        connection.dispatch.before_cursor_execute or connection.dispatch.after_cursor_execute
    )


def _picker(names: tuple[str, ...], *, positional: bool) -> Callable[[Mapping[str, Any]], Any]:
    """What hands the driver its parameters: a tuple in ``names``' order (qmark, format), or a
    mapping of exactly those names (named, pyformat)."""
    if not positional:
        return lambda values: {name: values[name] for name in names}
    if not names:
        return lambda values: ()
    if len(names) == 1:  # itemgetter of one name gives the value, not a 1-tuple
        only = names[0]
        return lambda values: (values[only],)
    return operator.itemgetter(*names)


def _arguments(compiled: _Compiled, parameters: Mapping[str, Any]) -> Any:
    values = {**compiled.fixed, **parameters}
    for name, processor in compiled.bind_processors:
        values[name] = processor(values[name])
    return compiled.pick(values)


def _run(
    connection: Connection, compiled: _Compiled, parameters: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    return _execute(
        connection,
        compiled.sql,
        _arguments(compiled, parameters),
        compiled.result_processors,
        numbered=compiled.numbered is not None,
    )


def _execute(
    connection: Connection,
    sql: str,
    arguments: Any,
    processors: tuple[Processor | None, ...],
    *,
    numbered: bool = True,
    prepare: bool | None = None,
) -> list[tuple[Any, ...]]:
    dbapi = connection.dialect.loaded_dbapi
    cursor = None
    keep = False  # the cursor, for the connection's next statement
    try:
        # Inside: a driver connection closed beneath us refuses the cursor itself (SQLite).
        driver: Any = connection.connection.driver_connection
        if numbered:
            info = connection.info
            # Taken out while it runs: after an error none is kept (its result is the error's).
            cursor = info.pop(_CURSOR, None)
            if cursor is None:
                cursor = dbapi.RawCursor(driver)
            cursor.execute(sql, arguments, prepare=prepare)  # None: psycopg's own choice
        else:
            cursor = driver.cursor()
            cursor.execute(sql, arguments)
        # psycopg builds a Column object per column for ``description``: ask the result itself.
        returned = cursor.pgresult.nfields if numbered else cursor.description
        rows = cursor.fetchall() if returned else []
        keep = numbered and len(rows) <= _KEPT_CURSOR_ROWS
    except dbapi.Error as exc:
        raise _as_sqlalchemy_error(connection, exc, sql, arguments, cursor) from exc
    finally:
        if keep:
            info[_CURSOR] = cursor
        elif cursor is not None:
            with contextlib.suppress(dbapi.Error):  # the error above is the one to report
                cursor.close()
    if rows and any(processors):
        # One processor per exported column, so a row of another width is a bug: strict says so
        # rather than drop columns (the check is one comparison per row, at the end).
        return [
            tuple(
                value if processor is None else processor(value)
                for processor, value in zip(processors, row, strict=True)
            )
            for row in rows
        ]
    return rows


def _as_sqlalchemy_error(
    connection: Connection, exc: Any, sql: str | None, arguments: Any, cursor: Any
) -> StatementError:
    """The driver's error as SQLAlchemy raises it (IntegrityError, OperationalError, ...); as
    SQLAlchemy does, a lost connection is invalidated, and the pool replaces it."""
    dialect = connection.dialect
    lost = dialect.is_disconnect(exc, connection.connection.dbapi_connection, cursor)
    if lost:
        connection.invalidate(exc)
    return DBAPIError.instance(
        sql,
        arguments,
        exc,
        dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=dialect,
    )
