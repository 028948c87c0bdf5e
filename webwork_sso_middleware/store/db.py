"""Engine, transactions and schema migrations.

The store is the only part of the package that talks SQL. Transactions come from
:meth:`Database.run` alone, and store functions take its :class:`UnitOfWork`. The work is
retried when the database reports a transient conflict (SQLite's busy lock, PostgreSQL's
serialization and deadlock errors, a lost optimistic-lock race), so callers write it once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import StaticPool

from ..errors import StoreUnavailable
from ..logs import package_logger
from .driver import OneWrite, one_write

log = package_logger(__name__)

_SURROGATE = re.compile("[\ud800-\udfff]")
# One encoder each, made once: json.dumps with any option builds a new encoder per call.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_COMPACT_ESCAPED = json.JSONEncoder(separators=(",", ":"))


def json_text(value: Any) -> str:
    """JSON columns hold compact JSON with characters as they are (not \\u escapes): what the
    size caps measure (scim/extensions.py MAX_EXTENSION_BYTES) is what is stored, on both
    backends. A lone surrogate has no UTF-8 form, so text holding one is escaped instead (the
    extension attributes never do: they are refused)."""
    text = _COMPACT.encode(value)
    if _SURROGATE.search(text):
        text = _COMPACT_ESCAPED.encode(value)
    return text


T = TypeVar("T")

# PostgreSQL SQLSTATEs worth one more try: serialization failure, deadlock.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


class _WriterTurn:
    """One SQLite database's turn to write, among the threads of this process.

    SQLite lets one connection write at a time, and a writer that finds the file locked polls
    for it, sleeping 1, 2, 5, 10... up to 100 ms between tries (its busy handler). The threads
    of one process queue on this lock instead, and the next goes as soon as the last commits;
    BEGIN IMMEDIATE's wait is left for writers in other processes."""

    __slots__ = ("lock", "holder", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holder: int | None = None  # the thread whose turn it is


# One turn per file, shared by every Database on it, kept while one of them holds it.
_turns_by_file: weakref.WeakValueDictionary[str, _WriterTurn] = weakref.WeakValueDictionary()
_all_turns: weakref.WeakSet[_WriterTurn] = weakref.WeakSet()  # in-memory databases' too
_turns_guard = threading.Lock()


def _writer_turn(database: str | None) -> _WriterTurn:
    if database in (None, "", ":memory:") or database.startswith("file:"):
        turn = _WriterTurn()  # a database of its own (or a URI we do not resolve)
        with _turns_guard:
            _all_turns.add(turn)
        return turn
    path = os.path.realpath(database)
    with _turns_guard:
        shared = _turns_by_file.get(path)
        if shared is None:
            shared = _turns_by_file[path] = _WriterTurn()
            _all_turns.add(shared)
        return shared


def _writers_gone_in_child() -> None:
    """After a fork, in the child: a turn that another thread of the parent held is copied
    held, and that thread does not exist here (nor do SQLite's file locks pass to a child),
    so every write of the child would otherwise wait out busy_timeout for ever. The forking
    thread, the one that goes on here, releases its own turn itself."""
    global _turns_guard
    _turns_guard = threading.Lock()  # held, maybe, by a thread that stayed behind
    me = threading.get_ident()
    for turn in list(_all_turns):
        if turn.lock.locked() and turn.holder != me:
            turn.holder = None
            turn.lock.release()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_writers_gone_in_child)


# A transaction that ends members' sessions in SQL names the members here, on its connection;
# at commit the Database tells its listeners (the session manager's revocation cache).
SESSIONS_ENDED = "webwork_sso.sessions_revoked"
SessionsEndedListener = Callable[[frozenset[str]], None]
# Told, after a transaction committed, the ids of the lifecycle events it recorded, in order
# (store/events.py notes them on the UnitOfWork).
EventsCommittedListener = Callable[[tuple[str, ...]], None]


def note_sessions_ended(connection: Connection, member_ids: Iterable[str]) -> None:
    connection.info.setdefault(SESSIONS_ENDED, set()).update(member_ids)


class StoreSession(Session):
    """The ORM session of a :class:`UnitOfWork`. Listeners for the store's own sessions attach
    to this class, so they never run for the host app's SQLAlchemy sessions."""


class UnitOfWork:
    """One database transaction: Core statements on ``connection``, the ORM on ``session``.

    Every store function that works inside a transaction takes one, named ``unit``, and picks
    the side it needs, so callers never choose. The session is made on first use: most reads
    are Core queries and never need one.
    """

    def __init__(self, connection: Connection, *, one_write: OneWrite | None = None) -> None:
        self.connection = connection
        # Set for work without a transaction that may write (Database.run, together=False):
        # its one write is a combined() block, and the ORM's flush has no place in it.
        self.one_write = one_write
        self._session: Session | None = None
        # Ids of the lifecycle events recorded in this transaction (store/events.py): told to
        # the Database's listeners once it commits, dropped with it when it rolls back.
        self.events: list[str] = []
        # Set once the work is done and the commit is being sent (Database.run's retry).
        self.committing = False

    @property
    def session(self) -> Session:
        if self.one_write is not None:
            raise RuntimeError("no ORM session in work without a transaction that may write")
        if self._session is None:
            self._session = StoreSession(
                bind=self.connection, expire_on_commit=False, autoflush=False
            )
        return self._session

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


@contextlib.contextmanager
def _autocommit(connection: Connection) -> Iterator[None]:
    """The driver's connection in autocommit mode while the block runs (PostgreSQL), then back
    to the engine's default isolation level before the pool takes it back.

    Set by the dialect on the driver's connection, not with SQLAlchemy's
    ``execution_options(isolation_level=...)``: that makes a branched Connection (whose event
    dispatch every statement then asks through), resets the level at check-in, and wraps the
    work in a BEGIN and COMMIT of SQLAlchemy's own that send nothing in autocommit; together 5
    to 10% of a SCIM create's CPU in this process. SQLAlchemy does not know the mode: a Core
    statement begins a transaction of its own, which sends nothing, and ends in a rollback that
    autocommit makes a no-op too.

    On psycopg 3 only its ``autocommit`` switch is flipped, and back: the dialect would also
    clear the connection's isolation level and then set it to the engine's default, which
    autocommit ignores and the connection's transactions get anyway (the server's default, as
    SQLAlchemy read it; SQLAlchemy resets any other level at check-in). Those two more of
    psycopg's setters, and the dialect's checks, cost 1% of a create's instructions."""
    dialect = connection.dialect
    driver_connection: Any = connection.connection.dbapi_connection
    psycopg3 = dialect.driver == "psycopg"
    if psycopg3:
        driver_connection.autocommit = True
    else:
        dialect.set_isolation_level(driver_connection, "AUTOCOMMIT")
    try:
        yield
    finally:
        if not connection.invalidated:
            try:
                if psycopg3:
                    # Refused inside a transaction, as setting the level is.
                    driver_connection.autocommit = False
                else:
                    dialect.reset_isolation_level(driver_connection)
            except dialect.loaded_dbapi.Error as exc:
                # A transaction left open (a BEGIN whose ROLLBACK failed): the pool must not
                # hand this connection out again.
                connection.invalidate(exc)


class Database:
    """One SQLAlchemy engine with the settings each backend needs for concurrent use."""

    def __init__(
        self, url: str, *, auto_migrate: bool = True, echo: bool = False, busy_timeout: float = 30.0
    ) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        # How long a statement waits for another connection's lock before it fails (SQLite's
        # busy_timeout, PostgreSQL's lock_timeout), and on PostgreSQL for a connection too.
        self.busy_timeout = busy_timeout
        self.engine = self._create_engine(echo)
        self._writer_turn = _writer_turn(self.url.database) if self.is_sqlite else None
        # Who hears, in this process, that members' sessions ended: registered by their owner
        # (the middleware's session manager), held weakly, kept per database (no global).
        self._sessions_ended_listeners: list[weakref.WeakMethod[SessionsEndedListener]] = []
        self._listeners_lock = threading.Lock()
        self._events_listeners: list[weakref.WeakMethod[EventsCommittedListener]] = []
        # Commits and rollbacks are heard in _unit, the one place transactions end, not
        # through engine "commit"/"rollback" listeners: an engine with any listener gives
        # every Connection an event dispatch to build and to ask on each statement, some 1%
        # of a SCIM create's instructions on PostgreSQL.
        if auto_migrate:
            self.upgrade()

    # -- sessions ended in this process ------------------------------------------------------------

    def on_sessions_ended(self, listener: SessionsEndedListener) -> None:
        """Call ``listener(member_ids)`` (a bound method, held weakly) whenever a transaction on
        this database that ended members' sessions commits, or :meth:`sessions_ended` is told."""
        with self._listeners_lock:
            self._sessions_ended_listeners.append(weakref.WeakMethod(listener))

    def sessions_ended(self, member_ids: Iterable[str]) -> None:
        """Tell this process's listeners, now, that these members' sessions ended."""
        ids = frozenset(member_ids)
        with self._listeners_lock:
            alive = [(ref, ref()) for ref in self._sessions_ended_listeners]
            self._sessions_ended_listeners = [
                ref for ref, listener in alive if listener is not None
            ]
        for _, listener in alive:
            if listener is not None:
                listener(ids)

    # -- lifecycle events committed in this process -------------------------------------------

    def on_events_committed(self, listener: EventsCommittedListener) -> None:
        """Call ``listener(event_ids)`` (a bound method, held weakly) after each transaction of
        :meth:`run` that recorded lifecycle events has committed: outside the transaction, on
        the thread that ran it, its connection back in the pool."""
        with self._listeners_lock:
            self._events_listeners.append(weakref.WeakMethod(listener))

    def _events_committed(self, event_ids: list[str]) -> None:
        with self._listeners_lock:
            alive = [(ref, ref()) for ref in self._events_listeners]
            self._events_listeners = [ref for ref, listener in alive if listener is not None]
        for _, listener in alive:
            if listener is None:
                continue
            try:
                listener(tuple(event_ids))
            except Exception:  # the change committed: its caller must not see it fail
                log.exception("could not deliver lifecycle events")

    def _on_commit(self, connection: Connection) -> None:
        if ids := connection.info.pop(SESSIONS_ENDED, None):
            try:
                self.sessions_ended(ids)
            except Exception:  # the change committed: the caches' own time bound still holds
                log.exception("could not evict revoked sessions from this process's caches")

    @staticmethod
    def _on_rollback(connection: Connection) -> None:
        # A connection lost mid-transaction (invalidated) took its info with it; asking for that
        # info again would try to reconnect inside the failed transaction and raise.
        if not connection.invalidated:
            connection.info.pop(SESSIONS_ENDED, None)

    def _create_engine(self, echo: bool) -> Engine:
        if not self.is_sqlite:
            return create_engine(
                self.url,
                echo=echo,
                # No ping per checkout (a round trip on every request): run() retries work
                # whose connection turns out dead before its commit.
                pool_pre_ping=False,
                connect_args=self._postgresql_timeouts(),
                json_serializer=json_text,
            )
        memory = self.url.database in (None, "", ":memory:")
        engine = create_engine(
            self.url,
            echo=echo,
            json_serializer=json_text,
            connect_args={"check_same_thread": False, "timeout": self.busy_timeout},
            # An in-memory database lives as long as its one connection.
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN, so writers can take the lock up front.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            # SCIM caseExact attributes must compare case-sensitively in LIKE, as on PostgreSQL.
            cursor.execute("PRAGMA case_sensitive_like=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # BEGIN IMMEDIATE takes the write lock at the start, so two writers queue on
            # busy_timeout instead of failing when a read lock cannot be upgraded.
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
            try:
                # Straight to the driver: this runs on every request, and needs no result handling.
                conn.connection.dbapi_connection.execute(statement)  # type: ignore[union-attr]
            except sqlite3.Error as exc:
                # Raised from here, a driver error would escape SQLAlchemy's wrapping: give it
                # the type any statement's gets (OperationalError for "database is locked"), so
                # the retry and every "database unavailable" handler see it.
                raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc

        return engine

    def _postgresql_timeouts(self) -> dict[str, Any]:
        """Bound a request's wait for PostgreSQL as ``busy_timeout`` bounds SQLite's: for a
        connection (a host that stops answering would otherwise hold a request for minutes)
        and for a row lock another transaction holds. Settings in the URL win, and so do
        libpq's own environment variables: an argument given here would silently replace
        ``PGCONNECT_TIMEOUT`` and ``PGOPTIONS``, so PGOPTIONS is kept beside ours."""
        if self.url.get_driver_name() not in ("psycopg", "psycopg2"):
            return {}  # libpq's parameters; other drivers spell them differently
        arguments: dict[str, Any] = {}
        if "connect_timeout" not in self.url.query and not os.environ.get("PGCONNECT_TIMEOUT"):
            # libpq counts whole seconds, reads below 2 as 2 and 0 as "for ever".
            arguments["connect_timeout"] = max(2, math.ceil(self.busy_timeout))
        options = self.url.query.get("options", "")
        options = " ".join(options) if isinstance(options, tuple) else options
        if "options" not in self.url.query:
            options = os.environ.get("PGOPTIONS", "")  # libpq reads it only when none is given
        if "lock_timeout" not in options:
            # 0 would mean "wait for ever" here, where SQLite's 0 means "do not wait".
            lock_ms = max(1, round(self.busy_timeout * 1000))
            arguments["options"] = f"{options} -c lock_timeout={lock_ms}".strip()
        return arguments

    # -- transactions -------------------------------------------------------------------------

    def run(
        self,
        work: Callable[[UnitOfWork], T],
        *,
        write: bool = True,
        together: bool = True,
        attempts: int = 5,
    ) -> T:
        """Run ``work(unit)`` in one transaction: committed when it returns, rolled back when it
        raises, and run again (up to ``attempts`` times) after a transient conflict.

        The one way to open a transaction, so no caller forgets the retry; ``work`` may
        therefore run more than once and must not have effects outside the database.
        ``write=False`` is a promise that ``work`` only reads: on SQLite a writer takes the
        write lock at BEGIN, which a reader need not wait for.

        ``together=False`` says the work needs no transaction around its statements: each one
        sees what was committed when it runs, as it does under PostgreSQL's READ COMMITTED
        anyway. There they run in autocommit mode, which spares the BEGIN and COMMIT round
        trips. Such work reads, and writes at most once: one ``combined()`` block, which is one
        statement there (store/driver.py, OneWrite; another write through a DriverStatement,
        or the ORM in writing work, raises RuntimeError). Nothing that locks or uses
        savepoints belongs in it. On SQLite, writing work still runs in a transaction (the
        block is several statements there), under the same rule.
        """
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            unit: UnitOfWork | None = None
            try:
                with self._unit(write=write, together=together) as unit:
                    result = work(unit)
                # Committed (a failed commit raised above): only now do events go out.
                if unit.events:
                    self._events_committed(unit.events)
                return result
            except (StaleDataError, DBAPIError) as exc:
                # A connection found dead before the commit was sent (a pooled one the server
                # dropped, or a restart) committed nothing: run again on a new one. This is what
                # spares every checkout a ping; at the commit itself the outcome is unknown.
                lost_early = (
                    isinstance(exc, DBAPIError)
                    and exc.connection_invalidated
                    and unit is not None
                    and not unit.committing
                    # Without a transaction, a write sent is a commit sent: outcome unknown.
                    and not (unit.one_write is not None and unit.one_write.sent)
                )
                if (
                    attempt == attempts
                    or not (lost_early or self._is_transient(exc))
                    or (
                        # SQLite waited out busy_timeout already: the lock is held, not contended.
                        # Waiting again would only keep the caller from its 503 for longer.
                        self.is_sqlite and time.monotonic() - started >= self.busy_timeout
                    )
                ):
                    raise
                if lost_early and not isinstance(self.engine.pool, StaticPool):
                    # The server went away for every pooled connection alike (a restart, a
                    # failover): start the pool afresh rather than find each dead one in turn.
                    self.engine.dispose()
                log.debug("retrying transaction after transient conflict: %s", exc)
                time.sleep(random.uniform(0, 0.02 * attempt))  # jitter: don't collide again
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _unit(self, *, write: bool, together: bool = True) -> Iterator[UnitOfWork]:
        """One transaction, committed on success and rolled back on any error (no retry). On
        SQLite, writing work first waits for this process's turn to write (_WriterTurn),
        before it takes a connection from the pool."""
        with self._turn_to_write() if write and self.is_sqlite else contextlib.nullcontext():
            try:
                connection = self.engine.connect()
            except OperationalError as exc:
                raise StoreUnavailable(str(exc.orig)) from exc
            with connection:
                # Without a transaction (PostgreSQL, together=False): autocommit, each statement
                # committed as it runs, so there is no COMMIT to send.
                apart = not together and not self.is_sqlite
                if self.is_sqlite and write:
                    connection = connection.execution_options(sqlite_immediate=True)
                with (
                    _autocommit(connection) if apart else contextlib.nullcontext(),
                    one_write(connection, without_transaction=apart)
                    if not together
                    else contextlib.nullcontext() as guard,
                ):
                    unit = UnitOfWork(connection, one_write=guard if write else None)
                    try:
                        with contextlib.nullcontext() if apart else connection.begin():
                            yield unit
                            unit.flush()  # (the ORM session's, if the work used one)
                            unit.committing = True  # committed as this block ends (apart: already)
                    except BaseException:
                        # Without a transaction, a write that went out may have committed: tell,
                        # to be safe (telling a cache too much only makes it read again).
                        sent = apart and guard is not None and guard.sent
                        if sent and not connection.invalidated:
                            self._on_commit(connection)
                        else:
                            self._on_rollback(connection)
                        raise
                    else:
                        self._on_commit(connection)
                    finally:
                        unit.close()

    @contextlib.contextmanager
    def _turn_to_write(self) -> Iterator[None]:
        """This process's turn to write to the SQLite database, waited for as long as BEGIN
        IMMEDIATE then waits for another process's (busy_timeout): after that, the same
        "database is locked" as SQLite's, which run() and every "unavailable" handler know."""
        turn = self._writer_turn
        assert turn is not None  # SQLite only
        me = threading.get_ident()
        if turn.holder == me:
            # Writing work that starts another on the same database would wait for itself.
            raise RuntimeError("a write to this SQLite database inside another one's")
        if not turn.lock.acquire(timeout=self.busy_timeout):
            raise OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            )
        turn.holder = me
        try:
            yield
        finally:
            turn.holder = None
            turn.lock.release()

    @staticmethod
    def _is_transient(exc: Exception) -> bool:
        if isinstance(exc, StaleDataError):
            return True
        orig = getattr(exc, "orig", None)
        if getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
            return True
        return isinstance(exc, OperationalError) and "locked" in str(orig)

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Apply the packaged Alembic migrations (idempotent; cheap when already current)."""
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = alembic_config()
        head = ScriptDirectory.from_config(config).get_current_head()
        with self.engine.begin() as connection:
            if (
                revision == "head"
                and MigrationContext.configure(connection).get_current_revision() == head
            ):
                return
            if not self.is_sqlite:
                # Several workers may start at once: let one migrate while the others wait.
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(742311)")
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def table_names(self) -> list[str]:
        return inspect(self.engine).get_table_names()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("webwork_sso_middleware.store") / "migrations")
    )
    return config
