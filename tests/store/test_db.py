"""The engine, transactions and migrations, on the backend under test."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from webwork_sso_middleware.errors import StoreUnavailable
from webwork_sso_middleware.store import Database, audit
from webwork_sso_middleware.store.db import UnitOfWork, json_text, note_sessions_ended
from webwork_sso_middleware.store.driver import combined
from webwork_sso_middleware.store.models import AuditEvent, Base, Workspace, utcnow
from webwork_sso_middleware.store.workspaces import find_credential

from ..conftest import POSTGRES_URL
from ..store_helpers import EndedSessions, lose, transaction


def test_migrations_build_exactly_the_models(database: Database):
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_fresh_sqlite_file_needs_no_step(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        assert "members" in db.table_names()
        assert db.current_revision() is not None
    finally:
        db.dispose()


def test_auto_migrate_off_leaves_the_database_alone_until_upgrade(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'manual.db'}", auto_migrate=False)
    try:
        assert db.table_names() == []
        db.upgrade()
        assert "workspaces" in db.table_names()
        db.upgrade()  # idempotent
    finally:
        db.dispose()


def test_sqlite_connections_are_set_up_for_concurrency(database: Database):
    if POSTGRES_URL:
        assert not database.is_sqlite
        return
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        # case_sensitive_like cannot be read back; LIKE must now respect case.
        assert conn.exec_driver_sql("SELECT 'A' LIKE 'a'").scalar() == 0


def test_failed_work_rolls_back_everything(database: Database):
    def work(unit):
        unit.session.add(Workspace(slug="half", name="Half", plan="plus", owner_email="o@x.test"))
        unit.session.flush()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        database.run(work)
    with transaction(database) as unit:
        assert unit.session.scalars(select(Workspace)).all() == []


@pytest.mark.parametrize("together", [True, False], ids=["transaction", "without-transaction"])
def test_ended_sessions_are_told_after_a_commit_and_never_after_a_rollback(
    database: Database, together: bool
):
    told = EndedSessions(database)

    def end_then_fail(unit: UnitOfWork) -> None:
        note_sessions_ended(unit.connection, ["rolled-back"])
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        database.run(end_then_fail, together=together)
    assert told == []
    # The pooled connection goes on to other work: what the failed work noted is gone with it.
    database.run(lambda unit: None, together=together)
    assert told == []

    database.run(lambda unit: note_sessions_ended(unit.connection, ["ada"]), together=together)
    assert told == [frozenset({"ada"})]
    database.run(lambda unit: None, together=together)
    assert told == [frozenset({"ada"})]  # told once


def test_ended_sessions_are_told_when_a_write_without_a_transaction_went_out_then_failed(
    database: Database, workspace_id: int
):
    """Without a transaction (PostgreSQL), a write that went out has committed, whatever
    happens after it: what the work noted is told. In a transaction (SQLite) it rolls back."""
    told = EndedSessions(database)

    def write_then_fail(unit: UnitOfWork) -> None:
        note_sessions_ended(unit.connection, ["grace"])
        with combined(unit.connection):
            record(unit, workspace_id, "sent")
        raise RuntimeError("after the write")

    with pytest.raises(RuntimeError):
        database.run(write_then_fail, together=False)
    if database.is_sqlite:
        assert (told, actions(database)) == ([], [])
    else:
        assert (told, actions(database)) == ([frozenset({"grace"})], ["sent"])


def add_workspace(unit: UnitOfWork, slug: str) -> None:
    unit.connection.execute(
        insert(Workspace).values(
            slug=slug, name=slug, plan="plus", owner_email="o@x.test", created_at=utcnow()
        )
    )


def slugs(database: Database) -> list[str]:
    return database.run(
        lambda unit: list(unit.connection.execute(select(Workspace.slug)).scalars()), write=False
    )


def test_run_retries_a_transient_conflict_in_a_fresh_transaction(database: Database):
    tries: list[int] = []

    def work(unit: UnitOfWork) -> str:
        tries.append(1)
        add_workspace(unit, f"try-{len(tries)}")
        if len(tries) == 1:
            raise StaleDataError("another writer won the race")  # as the ORM raises it
        return "done"

    assert database.run(work) == "done"
    assert len(tries) == 2
    assert slugs(database) == ["try-2"]  # the first try's write was rolled back


def test_run_does_not_retry_other_errors_nor_past_its_attempts(database: Database):
    tries: list[int] = []

    def fails(error: Exception) -> Callable[[UnitOfWork], None]:
        def work(unit: UnitOfWork) -> None:
            tries.append(1)
            add_workspace(unit, f"try-{len(tries)}")
            raise error

        return work

    with pytest.raises(IntegrityError):  # a real conflict: running again cannot help
        database.run(fails(IntegrityError("INSERT", {}, Exception("unique"))))
    assert len(tries) == 1
    with pytest.raises(StaleDataError):
        database.run(fails(StaleDataError("lost again")), attempts=3)
    assert len(tries) == 4
    assert slugs(database) == []


def test_run_reconnects_when_the_server_dropped_the_pooled_connections(database: Database):
    """No ping per checkout: a connection found dead before the commit is a retry, on a pool
    started afresh (a restart drops them all)."""
    if database.is_sqlite:
        pytest.skip("a SQLite file has no server to drop its connections")
    pooled = [database.engine.connect() for _ in range(5)]  # the pool's size, all dead below
    pids = [c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() for c in pooled]
    for connection in pooled:
        connection.close()  # back to the pool, alive
    killer = psycopg.connect(database.url.set(drivername="postgresql").render_as_string(False))
    with killer:
        for pid in pids:
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
    tries: list[int] = []

    def work(unit: UnitOfWork) -> None:
        tries.append(1)
        # A statement on the driver's cursor first (store/driver.py), as every SCIM request's.
        assert find_credential(unit, "no-such-token") is None
        add_workspace(unit, "after-restart")

    database.run(work)
    assert len(tries) == 2  # once on a dead connection, once on a new one
    assert slugs(database) == ["after-restart"]


def test_reads_run_apart_need_no_transaction(database: Database):
    def ends_with_its_statement(unit: UnitOfWork) -> bool:
        unit.connection.execute(text("SELECT 1"))
        time.sleep(0.02)
        # True when this statement is a transaction of its own (autocommit).
        return bool(
            unit.connection.execute(
                text("SELECT transaction_timestamp() = statement_timestamp()")
            ).scalar_one()
        )

    if not database.is_sqlite:  # SQLite's BEGIN and COMMIT cost no round trip: kept there
        assert database.run(ends_with_its_statement, write=False, together=False) is True
        assert database.run(ends_with_its_statement, write=False) is False
        # The connection went back to the pool in its transactional mode.
        assert database.run(ends_with_its_statement, write=False) is False

        def leaves_a_transaction_open(unit: UnitOfWork) -> int:
            driver = unit.connection.connection.driver_connection
            driver.execute("BEGIN")  # as a BEGIN whose ROLLBACK was lost would leave it
            return int(driver.info.backend_pid)

        left_open = database.run(leaves_a_transaction_open, write=False, together=False)
        # That connection is gone: the next ones are fresh, and their transactions are whole.
        assert database.run(ends_with_its_statement, write=False) is False
        backends = database.run(
            lambda unit: unit.connection.execute(text("SELECT pg_backend_pid()")).scalar_one(),
            write=False,
        )
        assert backends != left_open
    # Reads may use the ORM there; writing work may not (its flush is several statements).
    assert (
        database.run(
            lambda unit: unit.session.scalars(select(Workspace.slug)).all(),
            write=False,
            together=False,
        )
        == []
    )
    with pytest.raises(RuntimeError, match="no ORM session"):
        database.run(lambda unit: unit.session, together=False)


@pytest.fixture
def workspace_id(database: Database) -> int:
    database.run(lambda unit: add_workspace(unit, "acme"))
    return database.run(
        lambda unit: unit.connection.execute(select(Workspace.id)).scalar_one(), write=False
    )


def record(unit: UnitOfWork, workspace_id: int, action: str) -> None:
    """A write through the driver (store/driver.py), as a SCIM create's are."""
    audit.record(
        unit,
        workspace_id=workspace_id,
        actor="test",
        action=action,
        target_type="member",
        target_id="m1",
    )


def actions(database: Database) -> list[str]:
    return database.run(
        lambda unit: sorted(unit.connection.execute(select(AuditEvent.action)).scalars()),
        write=False,
    )


def test_work_without_a_transaction_writes_once_in_one_combined_block(
    database: Database, workspace_id: int
):
    def work(unit: UnitOfWork) -> bool:
        with combined(unit.connection):
            record(unit, workspace_id, "first")
            record(unit, workspace_id, "second")
        if database.is_sqlite:
            return False  # a transaction there, as ever
        # True when this statement is a transaction of its own (autocommit).
        return bool(
            unit.connection.execute(
                text("SELECT transaction_timestamp() = statement_timestamp()")
            ).scalar_one()
        )

    without_transaction = database.run(work, together=False)
    assert without_transaction is not database.is_sqlite
    assert actions(database) == ["first", "second"]


def test_work_without_a_transaction_may_not_write_outside_its_block(
    database: Database, workspace_id: int
):
    """Such a write would commit on its own: refused before it is sent, on every backend."""

    def write_alone(unit: UnitOfWork) -> None:
        record(unit, workspace_id, "alone")

    def two_blocks(unit: UnitOfWork) -> None:
        with combined(unit.connection):
            pass
        with combined(unit.connection):
            record(unit, workspace_id, "second block")

    def after_the_block(unit: UnitOfWork) -> None:
        with combined(unit.connection):
            pass
        record(unit, workspace_id, "after")

    with pytest.raises(RuntimeError, match="outside combined"):
        database.run(write_alone, together=False)
    with pytest.raises(RuntimeError, match="one combined"):
        database.run(two_blocks, together=False)
    with pytest.raises(RuntimeError, match="outside combined"):
        database.run(after_the_block, together=False)
    with pytest.raises(RuntimeError, match="outside combined"):
        database.run(write_alone, write=False, together=False)  # reads never write
    assert actions(database) == []
    # In a transaction, the same writes are ordinary ones.
    database.run(write_alone)
    assert actions(database) == ["alone"]


def test_without_a_transaction_a_write_sent_on_a_lost_connection_is_not_run_again(
    database: Database, workspace_id: int
):
    """On PostgreSQL the write was its own commit: whether it landed is unknown, so run()
    raises rather than risk writing it twice. A connection lost before it (or, on SQLite, in
    the transaction there) is an ordinary retry."""
    tries: list[int] = []

    def work(unit: UnitOfWork) -> None:
        tries.append(1)
        assert find_credential(unit, "no-such-token") is None
        if len(tries) == 1:
            lose(database, unit.connection)
        with combined(unit.connection):
            record(unit, workspace_id, "once")

    if database.is_sqlite:
        database.run(work, together=False)
        assert (len(tries), actions(database)) == (2, ["once"])
    else:
        with pytest.raises(DBAPIError) as raised:
            database.run(work, together=False)
        assert raised.value.connection_invalidated
        assert (len(tries), actions(database)) == (1, [])

    def lost_before_the_write(unit: UnitOfWork) -> None:
        tries.append(1)
        if len(tries) == 3:
            lose(database, unit.connection)
        assert find_credential(unit, "no-such-token") is None
        with combined(unit.connection):
            record(unit, workspace_id, "after a retry")

    database.run(lost_before_the_write, together=False)
    assert "after a retry" in actions(database)


def test_a_writing_run_takes_the_sqlite_write_lock_at_begin(tmp_path: Path):
    # BEGIN IMMEDIATE is SQLite's: on its own SQLite file whatever backend the suite runs on.
    database = Database(f"sqlite:///{tmp_path / 'lock.db'}")
    other = sqlite3.connect(database.url.database, timeout=0, isolation_level=None)

    def other_can_write(unit: UnitOfWork) -> bool:
        unit.connection.execute(select(Workspace.slug)).all()  # read only, so far
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            return False
        other.execute("ROLLBACK")
        return True

    try:
        # A writer holds the lock from its first statement: two writers queue, never deadlock.
        assert database.run(other_can_write, write=True, attempts=1) is False
        assert database.run(other_can_write, write=False) is True
    finally:
        other.close()
        database.dispose()


def test_concurrent_writers_queue_rather_than_fail(database: Database):
    database.run(
        lambda unit: unit.session.add(
            Workspace(slug="w", name="0", plan="plus", owner_email="o@x.test")
        )
    )
    errors: list[Exception] = []

    def bump() -> None:
        def work(unit):
            workspace = unit.session.scalar(
                select(Workspace).where(Workspace.slug == "w").with_for_update()
            )
            workspace.name = str(int(workspace.name) + 1)

        try:
            for _ in range(10):
                database.run(work)
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with transaction(database) as unit:
        name = unit.session.scalar(select(Workspace.name))
    # Each read-modify-write ran alone: no increment was lost.
    assert name == "40"


def _add_workspace(slug: str) -> Callable[[UnitOfWork], None]:
    def work(unit: UnitOfWork) -> None:
        unit.session.add(Workspace(slug=slug, name=slug, plan="plus", owner_email="o@x.test"))
        unit.session.flush()

    return work


@contextlib.contextmanager
def _write_held_open(database: Database, slug: str) -> Iterator[None]:
    """A write of workspace ``slug`` by a thread named ``slug``, its transaction (and on
    SQLite its turn to write) held open while the block runs, committed after it."""
    inside, let_go = threading.Event(), threading.Event()

    def work(unit: UnitOfWork) -> None:
        _add_workspace(slug)(unit)
        inside.set()
        assert let_go.wait(10)

    holder = threading.Thread(target=lambda: database.run(work), name=slug)
    holder.start()
    try:
        assert inside.wait(10)
        yield
    finally:
        let_go.set()
        holder.join(10)


def test_writers_of_one_process_take_turns_before_they_reach_the_database(
    database: Database, database_url: str
):
    # SQLite has one writer at a time: a second writer of this process waits for its turn
    # here, where it goes on the moment the first commits, not in SQLite's busy handler
    # (which sleeps up to 100 ms between tries). PostgreSQL locks rows: writers of different
    # rows must not wait for each other at all.
    other = Database(database_url, auto_migrate=False)  # another object on the same file
    sent: list[tuple[str, str]] = []
    if database.is_sqlite:
        for db in (database, other):
            event.listen(
                db.engine,
                "connect",
                lambda dbapi, _record: dbapi.set_trace_callback(
                    lambda sql: sent.append((threading.current_thread().name, sql))
                ),
            )
            db.engine.dispose()
    second_done = threading.Event()

    def second() -> None:
        other.run(_add_workspace("second"))
        second_done.set()

    writer = threading.Thread(target=second, name="second")
    with _write_held_open(database, "first"):
        writer.start()
        # On SQLite, time enough for the second writer to reach the database, were it let
        # through; on PostgreSQL, for it to finish (a lock wait would fail it at lock_timeout).
        finished_while_first_open = second_done.wait(0.3 if database.is_sqlite else 10)
    writer.join(10)
    other.dispose()
    assert second_done.is_set()
    with transaction(database) as unit:
        assert set(unit.session.scalars(select(Workspace.slug))) >= {"first", "second"}
    if not database.is_sqlite:
        assert finished_while_first_open  # no turn taken on PostgreSQL
        return
    assert not finished_while_first_open
    order = [
        (thread, sql)
        for thread, sql in sent
        if thread in ("first", "second") and sql in ("BEGIN IMMEDIATE", "COMMIT")
    ]
    # The second writer's BEGIN reached SQLite only after the first writer's COMMIT.
    assert order == [
        ("first", "BEGIN IMMEDIATE"),
        ("first", "COMMIT"),
        ("second", "BEGIN IMMEDIATE"),
        ("second", "COMMIT"),
    ]


def test_a_writer_waits_for_its_turn_at_most_the_busy_timeout(database: Database, database_url):
    impatient = Database(database_url, auto_migrate=False, busy_timeout=0.5)
    with _write_held_open(database, "first"):
        started = time.monotonic()
        if database.is_sqlite:
            # Its turn never comes while the first writer holds the file: "database is
            # locked" after busy_timeout, once (run() does not wait it out again).
            with pytest.raises(OperationalError, match="database is locked"):
                impatient.run(_add_workspace("second"))
            assert 0.45 <= time.monotonic() - started < 2
        else:
            # Another row: nothing to wait for (a lock wait would fail at lock_timeout, 0.5 s).
            impatient.run(_add_workspace("second"))
    impatient.run(_add_workspace("third"))  # the first one committed: its turn comes at once
    impatient.dispose()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="a platform without fork")
def test_a_child_process_does_not_inherit_a_parents_turn_to_write(tmp_path: Path):
    # gunicorn --preload forks workers from a parent that may be in the middle of a write.
    database = Database(f"sqlite:///{tmp_path / 'fork.db'}")
    turn = database._writer_turn
    assert turn is not None
    try:
        with _write_held_open(database, "parent"):
            pid = os.fork()
            if pid == 0:  # the child: its turn is free at once (a parent's write is not its own)
                os._exit(0 if turn.lock.acquire(timeout=0) else 1)
            _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0

        def fork_while_writing(unit: UnitOfWork) -> int:
            _add_workspace("forker")(unit)
            pid = os.fork()
            if pid == 0:  # the forking thread goes on in the child, and releases its own turn
                os._exit(0 if turn.lock.locked() and turn.holder == threading.get_ident() else 1)
            return os.waitpid(pid, 0)[1]

        status = database.run(fork_while_writing)
    finally:
        database.dispose()
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_write_inside_another_on_the_same_sqlite_database_fails_at_once(database: Database):
    def outer(unit: UnitOfWork) -> None:
        _add_workspace("outer")(unit)
        started = time.monotonic()
        if database.is_sqlite:
            # It would wait for its own thread's turn: busy_timeout (30 s), then fail anyway.
            with pytest.raises(RuntimeError, match="inside another"):
                database.run(_add_workspace("inner"))
            assert time.monotonic() - started < 5
        else:
            database.run(_add_workspace("inner"))  # another connection, another row

    database.run(outer)
    with transaction(database) as unit:
        slugs = set(unit.session.scalars(select(Workspace.slug)))
    assert "outer" in slugs
    assert ("inner" in slugs) is not database.is_sqlite


def test_unreachable_database_raises_store_unavailable():
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none", auto_migrate=False)
    with pytest.raises((StoreUnavailable, OperationalError)), transaction(db) as unit:
        unit.session.execute(text("SELECT 1"))
    db.dispose()


def test_a_write_waits_for_a_held_lock_at_most_the_busy_timeout(
    database: Database, database_url: str
):
    database.run(
        lambda unit: unit.session.add(
            Workspace(slug="w", name="0", plan="plus", owner_email="o@x.test")
        )
    )
    impatient = Database(database_url, auto_migrate=False, busy_timeout=1.0)
    holder = database.engine.raw_connection()  # the driver's own: no SQLAlchemy autobegin
    try:
        cursor = holder.cursor()
        if database.is_sqlite:
            cursor.execute("BEGIN EXCLUSIVE")
        else:
            cursor.execute("UPDATE workspaces SET name = 'held' WHERE slug = 'w'")
            with impatient.engine.connect() as conn:
                assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "1s"

        def rename(unit):
            unit.session.scalar(select(Workspace).where(Workspace.slug == "w")).name = "renamed"

        started = time.monotonic()
        with pytest.raises(OperationalError):
            impatient.run(rename)
        assert 0.9 <= time.monotonic() - started < 4  # waited once, then gave up: no retries
    finally:
        holder.rollback()
        holder.close()
    impatient.run(rename)  # the lock released, the same write goes through
    with transaction(database) as unit:
        assert unit.session.scalar(select(Workspace.name)) == "renamed"
    impatient.dispose()


def test_a_postgresql_host_that_never_answers_fails_after_the_busy_timeout():
    silent = socket.create_server(("127.0.0.1", 0))  # accepts TCP, never speaks PostgreSQL
    port = silent.getsockname()[1]
    db = Database(
        f"postgresql+psycopg://nobody@127.0.0.1:{port}/none", auto_migrate=False, busy_timeout=2
    )
    try:
        started = time.monotonic()
        with pytest.raises((StoreUnavailable, OperationalError)), transaction(db) as unit:
            unit.session.execute(text("SELECT 1"))
        assert 1.5 <= time.monotonic() - started < 8  # libpq's whole connect attempt, bounded
    finally:
        db.dispose()
        silent.close()


def test_timeouts_given_in_the_postgresql_url_win():
    db = Database(
        "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=7"
        "&options=-c%20lock_timeout%3D5000",
        auto_migrate=False,
        busy_timeout=2,
    )
    assert db._postgresql_timeouts() == {}
    both = Database(
        "postgresql+psycopg://nobody@127.0.0.1:1/none?options=-c%20work_mem%3D8MB",
        auto_migrate=False,
        busy_timeout=0,
    )
    assert both._postgresql_timeouts() == {
        "connect_timeout": 2,
        "options": "-c work_mem=8MB -c lock_timeout=1",
    }


def test_libpq_environment_settings_are_kept(monkeypatch: pytest.MonkeyPatch):
    """An explicit ``options`` or ``connect_timeout`` would replace libpq's PGOPTIONS and
    PGCONNECT_TIMEOUT: a deployment that tunes PostgreSQL through them keeps its settings."""
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=4321")
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "9")
    db = Database(url, auto_migrate=False, busy_timeout=2)
    assert db._postgresql_timeouts() == {
        "options": "-c statement_timeout=4321 -c lock_timeout=2000"
    }
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=77")
    assert Database(url, auto_migrate=False)._postgresql_timeouts() == {}
    # Options in the URL replace PGOPTIONS in libpq too: the URL's are the ones kept.
    in_url = Database(url + "?options=-c%20work_mem%3D8MB", auto_migrate=False, busy_timeout=1)
    assert in_url._postgresql_timeouts() == {"options": "-c work_mem=8MB -c lock_timeout=1000"}


def test_pgoptions_reach_a_postgresql_connection(
    database: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=4321")
    tuned = Database(database_url, auto_migrate=False, busy_timeout=3)
    try:
        with tuned.engine.connect() as conn:
            if database.is_sqlite:  # no libpq: PGOPTIONS reaches no connect argument
                assert tuned._postgresql_timeouts() == {}
                assert conn.exec_driver_sql("SELECT 1").scalar() == 1
            else:
                assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "4321ms"
                assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "3s"
    finally:
        tuned.dispose()


def test_json_columns_hold_compact_text_with_characters_as_they_are():
    """What the extension cap measures is what the column holds (scim/extensions.py)."""
    assert json_text({"a": "\u00e9\U0001f600", "b": [1, 2]}) == '{"a":"\u00e9\U0001f600","b":[1,2]}'
    # A lone surrogate has no UTF-8 form: escaped, rather than a write the driver fails.
    assert json_text({"a": "\ud800"}) == '{"a":"\\ud800"}'
