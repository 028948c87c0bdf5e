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
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import importlib
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.expression import Executable

Processor = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bound parameters in the order the driver wants them
    positional: bool
    fixed: dict[str, Any]  # values the statement carries itself (LIMIT 1, literals)
    bind_processors: tuple[tuple[str, Processor], ...]
    result_processors: tuple[Processor | None, ...]
    # The values in the driver's order, picked in C (a forty-column INSERT is on a hot path).
    pick: Callable[[Mapping[str, Any]], Any]


class DriverStatement:
    """One Core statement, compiled once per dialect, executed on the raw cursor.

    ``keys`` names the columns an ``insert()`` or ``update()`` without ``.values()`` sets (as
    the keys of the parameters passed to ``Connection.execute`` would).
    """

    def __init__(self, statement: Executable, *, keys: Sequence[str] = ()) -> None:
        self.statement = statement
        self.keys = list(keys)
        self._compiled: dict[str, _Compiled | None] = {}

    def rows(self, connection: Connection, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute in the connection's transaction; the result rows (none for a plain write)."""
        compiled = self._compiled_for(connection.dialect)
        if connection.info.get(_PIPELINED):
            # Queued, not run: a statement whose rows are read, or one SQLAlchemy would run
            # (it reads the cursor at once), would see none.
            if compiled is None or compiled.result_processors:
                raise RuntimeError(f"not a plain write, so not for a pipeline: {compiled}")
            _run(connection, compiled, parameters)
            return []
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
            return self._compiled[dialect.name]
        except KeyError:
            compiled = self._compiled[dialect.name] = self._compile(dialect)
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
        names = tuple(compiled.positiontup if dialect.positional else binds)
        return _Compiled(
            sql=compiled.string,
            names=names,
            pick=_picker(names, positional=dialect.positional),
            positional=dialect.positional,
            fixed=fixed,
            bind_processors=tuple(processors),
            result_processors=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ),
        )


_PIPELINED = "webwork_sso.pipelined"


@contextlib.contextmanager
def pipelined(connection: Connection) -> Iterator[None]:
    """Send the plain writes :class:`DriverStatement` runs inside to the server together, in one
    round trip at the end (psycopg 3's pipeline mode on PostgreSQL), where a failed one raises.

    For writes whose results nobody reads (a new member, its audit row, its event): each
    would otherwise wait for the server in turn. Elsewhere (SQLite, psycopg2, an engine whose
    statements are watched) the statements simply run one by one."""
    driver: Any = connection.connection.driver_connection
    driver_type: type = type(driver)
    if not _can_pipeline(driver_type) or _observed(connection):
        yield
        return
    # The dict itself: once a lost connection is invalidated, reading ``connection.info``
    # would try to reconnect inside the failed transaction, and raise instead of the loss.
    info = connection.info
    info[_PIPELINED] = True
    driver_error = connection.dialect.loaded_dbapi.Error
    try:
        with driver.pipeline() as pipeline:
            try:
                yield
            except Exception:
                # The server refused a statement at once, and a later one raised it (as the
                # driver's own error, wrapped by _run): collect the rest of the aborted queue
                # here, so leaving the pipeline has nothing more to report.
                with contextlib.suppress(driver_error):
                    pipeline.sync()
                raise
    except driver_error as exc:
        raise _as_sqlalchemy_error(connection, exc, None, None, None) from exc
    finally:
        info.pop(_PIPELINED, None)


@functools.cache
def _can_pipeline(driver_type: type) -> bool:
    """psycopg 3 built on a libpq that has pipeline mode (14 and newer)."""
    if not hasattr(driver_type, "pipeline"):
        return False
    package = importlib.import_module(driver_type.__module__.partition(".")[0])
    return bool(package.Pipeline.is_supported())


def _observed(connection: Connection) -> bool:
    """Someone is watching statements (echo, or cursor listeners): let SQLAlchemy run them."""
    engine = connection.engine
    return bool(
        engine.echo
        or engine.dispatch.before_cursor_execute
        or engine.dispatch.after_cursor_execute
        or connection.dispatch.before_cursor_execute
        or connection.dispatch.after_cursor_execute
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


def _run(
    connection: Connection, compiled: _Compiled, parameters: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    values = {**compiled.fixed, **parameters}
    for name, processor in compiled.bind_processors:
        values[name] = processor(values[name])
    arguments = compiled.pick(values)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.sql, arguments)
        rows = cursor.fetchall() if cursor.description else []
    except connection.dialect.loaded_dbapi.Error as exc:
        raise _as_sqlalchemy_error(connection, exc, compiled.sql, arguments, cursor) from exc
    finally:
        cursor.close()
    processors = compiled.result_processors
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
