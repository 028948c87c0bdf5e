"""A transaction as a ``with`` block, for tests' set-up and checks.

The package opens transactions one way only, ``Database.run(work)``, which retries ``work``
after a transient conflict. A test that arranges rows or reads them back wants neither the
retry nor a function per block, so it borrows the context manager ``run`` is built on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import event as sa_event

from webwork_sso_middleware.store.db import Database, UnitOfWork


@contextlib.contextmanager
def transaction(database: Database, *, write: bool = False) -> Iterator[UnitOfWork]:
    """One transaction, committed at the end of the block, rolled back when it raises."""
    with database._unit(write=write) as unit:
        yield unit


class EndedSessions(list[frozenset[str]]):
    """The member ids a database tells its sessions-ended listeners, call by call. The
    database holds listeners weakly: the test keeps this object, and so the listener, alive."""

    def __init__(self, database: Database) -> None:
        super().__init__()
        database.on_sessions_ended(self.hear)

    def hear(self, member_ids: frozenset[str]) -> None:
        self.append(member_ids)


class Statements:
    """The SQL statements the database's engine sends while it is in use (no mock: a
    SQLAlchemy event listener)."""

    def __init__(self, database: Database) -> None:
        self.engine = database.engine
        self.seen: list[tuple[str, bool]] = []

    def hear(self, _conn: Any, _cursor: Any, statement: str, _p: Any, _c: Any, many: bool) -> None:
        self.seen.append((statement, many))

    def __enter__(self) -> Statements:
        sa_event.listen(self.engine, "before_cursor_execute", self.hear)
        return self

    def __exit__(self, *exc: object) -> None:
        sa_event.remove(self.engine, "before_cursor_execute", self.hear)

    def matching(self, *parts: str) -> list[tuple[str, bool]]:
        return [(s, many) for s, many in self.seen if all(p in s for p in parts)]


def lose(database: Database, connection: Connection) -> None:
    """Cut a connection under a transaction: the server ends it (PostgreSQL), or the driver's
    connection is closed beneath SQLAlchemy (SQLite, whose dialect calls that a disconnect)."""
    if database.is_sqlite:
        connection.connection.driver_connection.close()  # type: ignore[union-attr]
        return
    pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with database.engine.connect() as other:
        other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
