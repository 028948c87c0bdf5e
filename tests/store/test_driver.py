"""DriverStatement: the same rows, types, transaction and errors as SQLAlchemy's own execution,
on the backend under test."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from sqlalchemy import String, bindparam, event, insert, literal_column, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from webwork_sso_middleware.store import (
    Database,
    audit,
    events,
    members,
    replay_cache,
    sign_in,
    sign_in_target,
    workspaces,
)
from webwork_sso_middleware.store.db import UnitOfWork
from webwork_sso_middleware.store.driver import (
    _CURSOR,
    DriverStatement,
    NumberedSQL,
    combined,
)
from webwork_sso_middleware.store.models import AuditEvent, Member, Workspace, utcnow
from webwork_sso_middleware.store.sessions import _INSERT_SESSION

from ..store_helpers import lose, transaction

WORKSPACES = Workspace.__table__
MEMBERS = Member.__table__
NOW = dt.datetime(2025, 1, 2, 7, 30, 15, 123456, tzinfo=dt.UTC)

ADD_MEMBER = DriverStatement(
    insert(MEMBERS),
    keys=(
        "id",
        "workspace_id",
        "user_name",
        "user_name_key",
        "active",
        "active_assigned",
        "source",
        "session_generation",
        "created_at",
        "modified_at",
        "version",
    ),
)
MEMBER_BY_NAME = DriverStatement(
    select(MEMBERS.c.id, MEMBERS.c.active, MEMBERS.c.created_at, MEMBERS.c.session_generation)
    .where(MEMBERS.c.user_name_key == bindparam("key"))
    .limit(1)
)


@pytest.fixture
def workspace_id(database: Database) -> int:
    with transaction(database, write=True) as unit:
        return unit.connection.execute(
            insert(WORKSPACES)
            .values(
                slug="acme",
                name="Acme",
                plan="plus",
                owner_email="o@acme.test",
                scim_enabled=False,
                sso_enabled=True,
                created_at=NOW,
                modified_at=NOW,
            )
            .returning(WORKSPACES.c.id)
        ).scalar_one()


def member(workspace_id: int, name: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": f"id-{name}",
        "workspace_id": workspace_id,
        "user_name": name,
        "user_name_key": name.lower(),
        "active": True,
        "active_assigned": True,
        "source": "sso",
        "session_generation": 3,
        "created_at": NOW,
        "modified_at": NOW,
        "version": 1,
        **changes,
    }


def test_every_hot_statement_takes_the_fast_path_on_this_backend(database: Database) -> None:
    statements = [
        sign_in_target._TARGET_QUERY,
        sign_in._LOGIN_MEMBER_QUERY,
        sign_in._STAMP_LOGIN_ONLY,
        replay_cache._REMEMBER_ASSERTION[database.engine.dialect.name],
        audit._INSERT,
        _INSERT_SESSION,
        ADD_MEMBER,
        MEMBER_BY_NAME,
        sign_in._LOOKUP_QUERY,
        replay_cache._REMEMBER_ANSWER[database.engine.dialect.name],
        sign_in._login_record(()),
        sign_in._login_record(("given_name",)),
        sign_in._login_record((), groups=True),
        # SCIM: every request's token, Okta's lookups, a create's INSERTs
        workspaces._CREDENTIAL_QUERY,
        members._BY_USER_NAME,
        members._BY_ID,
        members._DETAILS_OF_MEMBER,
        members._INSERT_MEMBER,
        members._INSERT_VALUE,
        events._INSERT,
    ]
    assert all(s.fast_path(database.engine.dialect) for s in statements)


def test_a_plain_insert_returns_nothing_and_an_explicit_returning_stays(
    database: Database, workspace_id: int
) -> None:
    """SQLAlchemy would add RETURNING of the generated key to an INSERT on PostgreSQL (for its
    inserted_primary_key); nothing reads it here, so the server need not send it."""
    row = {
        "workspace_id": workspace_id,
        "occurred_at": NOW,
        "actor": "test",
        "action": "probe",
        "target_type": "member",
        "target_id": None,
        "changes": {},
    }
    returning = DriverStatement(
        insert(AuditEvent.__table__).returning(AuditEvent.id), keys=tuple(row)
    )
    with transaction(database, write=True) as unit:
        assert audit._INSERT.rows(unit.connection, row) == []
        assert ADD_MEMBER.rows(unit.connection, member(workspace_id, "ren@acme.test")) == []
        ((new_id,),) = returning.rows(unit.connection, row)
    assert isinstance(new_id, int)


def test_named_rows_read_as_sqlalchemy_rows_do(database: Database, workspace_id: int) -> None:
    with transaction(database, write=True) as unit:
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "hana@acme.test"))
        (fast,) = MEMBER_BY_NAME.named_rows(unit.connection, {"key": "hana@acme.test"})
        slow = unit.connection.execute(MEMBER_BY_NAME.statement, {"key": "hana@acme.test"}).one()
    assert fast == tuple(slow)
    assert (fast.id, fast.active, fast.created_at) == (slow.id, slow.active, slow.created_at)
    assert fast._fields == ("id", "active", "created_at", "session_generation")


def test_rows_and_types_match_sqlalchemy(database: Database, workspace_id: int) -> None:
    with transaction(database, write=True) as unit:
        assert ADD_MEMBER.rows(unit.connection, member(workspace_id, "Alice@Acme.test")) == []
        fast = MEMBER_BY_NAME.first(unit.connection, {"key": "alice@acme.test"})
        slow = tuple(
            unit.connection.execute(MEMBER_BY_NAME.statement, {"key": "alice@acme.test"}).one()
        )
    assert fast == slow == ("id-Alice@Acme.test", True, NOW, 3)
    assert type(fast[1]) is bool and fast[2].tzinfo is not None  # converted, as SQLAlchemy does
    with transaction(database) as unit:
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "nobody@acme.test"}) is None


def test_json_and_update_parameters_are_converted(database: Database, workspace_id: int) -> None:
    with transaction(database, write=True) as unit:
        audit.record(
            unit,
            workspace_id=workspace_id,
            actor="saml",
            action="signed_in",
            target_type="member",
            target_id="m1",
            changes={"given_name": "Zoë"},
        )
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "bob@acme.test"))
        sign_in._STAMP_LOGIN_ONLY.rows(
            unit.connection, {"member_id": "id-bob@acme.test", "last_login_at": NOW}
        )
    with transaction(database) as unit:
        changes = unit.connection.execute(select(AuditEvent.changes)).scalar_one()
        stamped = unit.connection.execute(
            select(MEMBERS.c.last_login_at).where(MEMBERS.c.id == "id-bob@acme.test")
        ).scalar_one()
    assert changes == {"given_name": "Zoë"}
    assert stamped == NOW


def test_it_joins_the_callers_transaction(database: Database, workspace_id: int) -> None:
    with pytest.raises(RuntimeError), transaction(database, write=True) as unit:
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "carol@acme.test"))
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "carol@acme.test"}) is not None
        raise RuntimeError("the rest of the unit failed")
    with transaction(database) as unit:
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "carol@acme.test"}) is None


def test_driver_errors_arrive_as_sqlalchemy_errors(database: Database, workspace_id: int) -> None:
    with transaction(database, write=True) as unit:
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "dave@acme.test"))
    # IntegrityError: what the store's unique-violation handling catches.
    with pytest.raises(IntegrityError), transaction(database, write=True) as unit:
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "dave@acme.test"))


def test_numbered_sql_replaces_psycopgs_named_placeholders() -> None:
    numbered = NumberedSQL.of("SELECT %(a)s::VARCHAR, '100%%', %(b)s, %(a)s WHERE x LIKE 'a%%b'")
    assert numbered.render() == "SELECT $1::VARCHAR, '100%', $2, $1 WHERE x LIKE 'a%b'"
    assert numbered.names == ("a", "b")
    # Renumbered after another statement's placeholders; a literal '$1' stays as it is.
    shifted = NumberedSQL.of("INSERT INTO t VALUES (%(x)s, '$1', %(y)s)").render(offset=2)
    assert shifted == "INSERT INTO t VALUES ($3, '$1', $4)"


def test_bind_names_sqlalchemy_escapes_or_leaves_alone_reach_the_driver(
    database: Database,
) -> None:
    """SQLAlchemy renders bindparam("a.b") as %(a_b)s and leaves "a-b" as it is; psycopg takes
    any name up to ")". The numbered SQL must bind both, by the names the caller passes."""
    statement = DriverStatement(
        select(bindparam("a.b", type_=String), bindparam("a-b", type_=String))
    )
    with transaction(database) as unit:
        assert statement.rows(unit.connection, {"a.b": "x", "a-b": "y"}) == [("x", "y")]


def test_a_literal_percent_sign_reaches_the_database_as_one(database: Database) -> None:
    statement = DriverStatement(
        select(literal_column("'100%'", String).label("x"), bindparam("y", type_=String))
    )
    with transaction(database) as unit:
        assert statement.rows(unit.connection, {"y": "50%"}) == [("100%", "50%")]


def test_combined_writes_land_together_and_a_refused_one_raises_at_the_end(
    database: Database, workspace_id: int
) -> None:
    with transaction(database, write=True) as unit:
        with combined(unit.connection):
            ADD_MEMBER.rows(unit.connection, member(workspace_id, "erin@acme.test"))
            ADD_MEMBER.rows(unit.connection, member(workspace_id, "finn@acme.test"))
        # Both arrived, and the transaction goes on after the block.
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "finn@acme.test"}) is not None
    # A duplicate id among queued writes: the IntegrityError any statement's refusal is, and
    # nothing of the transaction stays.
    with (
        pytest.raises(IntegrityError),
        transaction(database, write=True) as unit,
        combined(unit.connection),
    ):
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "gail@acme.test"))
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "erin@acme.test"))
    with transaction(database) as unit:
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "gail@acme.test"}) is None
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "erin@acme.test"}) is not None


def test_combined_writes_are_one_statement_on_postgresql(
    database: Database, workspace_id: int
) -> None:
    """Without a transaction around them, the writes of one block stand or fall together on
    PostgreSQL (one statement); elsewhere they run one by one, each on its own."""
    with database.engine.connect() as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(IntegrityError), combined(autocommit):
            ADD_MEMBER.rows(autocommit, member(workspace_id, "lee@acme.test"))
            ADD_MEMBER.rows(autocommit, member(workspace_id, "mo@acme.test"))
            ADD_MEMBER.rows(autocommit, member(workspace_id, "lee@acme.test", id="id-lee-2"))
    with transaction(database) as unit:
        kept = MEMBER_BY_NAME.first(unit.connection, {"key": "mo@acme.test"}) is not None
    assert kept is database.is_sqlite


def test_watched_statements_of_a_block_still_land_together_without_a_transaction(
    database: Database, workspace_id: int
) -> None:
    """Where statements are watched (SQL logging, tracing: cursor listeners), a block runs
    them one by one through SQLAlchemy: without a transaction around the work, in one of
    their own, so a refused one leaves none."""

    def work(unit: UnitOfWork) -> None:
        with combined(unit.connection):
            ADD_MEMBER.rows(unit.connection, member(workspace_id, "sol@acme.test"))
            ADD_MEMBER.rows(unit.connection, member(workspace_id, "sol@acme.test", id="again"))

    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", watch)
    try:
        with pytest.raises(IntegrityError):
            database.run(work, together=False)
    finally:
        event.remove(database.engine, "before_cursor_execute", watch)
    assert sum(s.startswith("INSERT INTO members") for s in seen) == 2  # watched, one by one
    with transaction(database) as unit:
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "sol@acme.test"}) is None


def test_a_block_inside_another_joins_it(database: Database, workspace_id: int) -> None:
    """Its writes go with the outer block's, in the one statement, not before them."""
    with (
        pytest.raises(IntegrityError),
        transaction(database, write=True) as unit,
        combined(unit.connection),
    ):
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "oak@acme.test"))
        with combined(unit.connection):
            ADD_MEMBER.rows(unit.connection, member(workspace_id, "pia@acme.test"))
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "oak@acme.test", id="again"))
    with transaction(database) as unit:
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "pia@acme.test"}) is None

    def nested_without_a_transaction(unit: UnitOfWork) -> None:
        with combined(unit.connection):
            ADD_MEMBER.rows(unit.connection, member(workspace_id, "quin@acme.test"))
            with combined(unit.connection):
                ADD_MEMBER.rows(unit.connection, member(workspace_id, "rae@acme.test"))

    database.run(nested_without_a_transaction, together=False)
    with transaction(database) as unit:
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "rae@acme.test"}) is not None


def test_a_block_that_raises_sends_none_of_its_writes(
    database: Database, workspace_id: int
) -> None:
    with transaction(database, write=True) as unit:
        with pytest.raises(RuntimeError), combined(unit.connection):
            ADD_MEMBER.rows(unit.connection, member(workspace_id, "nia@acme.test"))
            raise RuntimeError("the work failed before the block ended")
        sent = MEMBER_BY_NAME.first(unit.connection, {"key": "nia@acme.test"}) is not None
    assert sent is database.is_sqlite  # run as they came there, and rolled back with the unit


def test_more_parameters_than_one_statement_takes_are_sent_one_by_one(
    database: Database, workspace_id: int
) -> None:
    """PostgreSQL takes at most 65,535 parameters in a statement; these are 6,000 x 11."""
    with transaction(database, write=True) as unit, combined(unit.connection):
        for n in range(6000):
            ADD_MEMBER.rows(unit.connection, member(workspace_id, f"many{n}@acme.test"))
    with transaction(database) as unit:
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "many5999@acme.test"}) is not None


def test_too_many_parameters_still_land_together_without_a_transaction(
    database: Database, workspace_id: int
) -> None:
    """Work without a transaction (Database.run, together=False) whose block is too big for
    one statement: its writes go one by one in a transaction of their own, all or none."""

    def work(unit: UnitOfWork) -> None:
        with combined(unit.connection):
            for n in range(6000):
                ADD_MEMBER.rows(unit.connection, member(workspace_id, f"bulk{n}@acme.test"))
            ADD_MEMBER.rows(unit.connection, member(workspace_id, "bulk0@acme.test", id="again"))

    with pytest.raises(IntegrityError):
        database.run(work, together=False)
    with transaction(database) as unit:
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "bulk0@acme.test"}) is None


def test_a_large_combined_statement_is_not_kept_prepared_on_the_server(
    database: Database, workspace_id: int
) -> None:
    """psycopg prepares a statement it has run 5 times on a connection and keeps up to 100.
    A combined statement's text differs with the count of its writes (a member's values), and
    one of hundreds of CTEs holds megabytes of the server's memory once prepared: a client
    varying the count would make each connection hold gigabytes. Small ones (a usual create)
    may stay prepared; large ones must not."""
    if database.is_sqlite:
        pytest.skip("one by one on SQLite: nothing is combined")
    for run in range(7):
        with transaction(database, write=True) as unit, combined(unit.connection):
            for n in range(40):
                ADD_MEMBER.rows(unit.connection, member(workspace_id, f"p{run}-{n}@acme.test"))
    with transaction(database) as unit:
        prepared = (
            unit.connection.exec_driver_sql("SELECT statement FROM pg_prepared_statements")
            .scalars()
            .all()
        )
    assert [s for s in prepared if s.count("INSERT INTO") > 8] == []


def test_a_connection_lost_inside_a_combined_block_is_retried_by_run(
    database: Database, workspace_id: int
) -> None:
    """The loss reaches Database.run as a lost connection (so the work runs again), not as an
    error about the block's bookkeeping."""
    tries: list[int] = []

    def work(unit: UnitOfWork) -> None:
        tries.append(1)
        unit.connection.execute(select(1))
        if len(tries) == 1:
            lose(database, unit.connection)  # found out by the block's writes
        with combined(unit.connection):
            ADD_MEMBER.rows(unit.connection, member(workspace_id, "ivy@acme.test"))

    database.run(work)
    assert len(tries) == 2
    with transaction(database) as unit:
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "ivy@acme.test"}) is not None


def test_a_refused_write_in_a_combined_block_leaves_nothing_to_report(
    database: Database, workspace_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    with transaction(database, write=True) as unit:
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "jo@acme.test"))
    # The duplicate first, then writes the server would take: the refusal is the one error,
    # none of the others lands, and the driver logs nothing.
    with (
        pytest.raises(IntegrityError),
        transaction(database, write=True) as unit,
        combined(unit.connection),
    ):
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "jo@acme.test"))
        for n in range(60):
            ADD_MEMBER.rows(unit.connection, member(workspace_id, f"kai{n}@acme.test"))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    with transaction(database) as unit:
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "kai0@acme.test"}) is None


def test_a_combined_block_refuses_a_statement_whose_rows_are_read(
    database: Database, workspace_id: int
) -> None:
    with transaction(database, write=True) as unit, combined(unit.connection):
        if unit.connection.dialect.name == "postgresql":  # queued there: no rows to read
            with pytest.raises(RuntimeError, match="not a plain write"):
                MEMBER_BY_NAME.first(unit.connection, {"key": "erin@acme.test"})
        else:  # run one by one: a read is an ordinary read
            assert MEMBER_BY_NAME.first(unit.connection, {"key": "erin@acme.test"}) is None


def test_replay_insert_tells_first_use_from_reuse(database: Database, workspace_id: int) -> None:
    expires = utcnow() + dt.timedelta(minutes=5)
    with transaction(database, write=True) as unit:
        first = replay_cache.remember_assertion(
            unit, workspace_id=workspace_id, assertion_id="_a1", expires_at=expires
        )
        again = replay_cache.remember_assertion(
            unit, workspace_id=workspace_id, assertion_id="_a1", expires_at=expires
        )
    assert (first, again) == (True, False)


def test_watched_engines_see_every_statement(database: Database, workspace_id: int) -> None:
    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", watch)
    try:
        with transaction(database, write=True) as unit:
            ADD_MEMBER.rows(unit.connection, member(workspace_id, "erin@acme.test"))
            row = MEMBER_BY_NAME.first(unit.connection, {"key": "erin@acme.test"})
    finally:
        event.remove(database.engine, "before_cursor_execute", watch)
    assert row == ("id-erin@acme.test", True, NOW, 3)
    assert [s.split()[0] for s in seen] == ["INSERT", "SELECT"]


def test_statements_it_cannot_run_plainly_go_through_sqlalchemy(
    database: Database, workspace_id: int
) -> None:
    expanding = DriverStatement(
        select(MEMBERS.c.id).where(MEMBERS.c.user_name_key.in_(bindparam("keys", expanding=True)))
    )
    defaulted = DriverStatement(
        update(WORKSPACES).where(WORKSPACES.c.id == bindparam("wid")), keys=("name",)
    )  # modified_at has an onupdate default
    dialect = database.engine.dialect
    assert not expanding.fast_path(dialect) and not defaulted.fast_path(dialect)
    with transaction(database, write=True) as unit:
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "fay@acme.test"))
        found = expanding.rows(unit.connection, {"keys": ["fay@acme.test", "x@acme.test"]})
        defaulted.rows(unit.connection, {"wid": workspace_id, "name": "Acme Inc."})
        modified = unit.connection.execute(select(WORKSPACES.c.modified_at)).scalar_one()
    assert found == [("id-fay@acme.test",)]
    assert modified > NOW


def test_a_lost_connection_is_invalidated_and_the_next_unit_reconnects(
    database: Database, workspace_id: int
) -> None:
    with pytest.raises(DBAPIError) as raised, transaction(database, write=True) as unit:
        lose(database, unit.connection)
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "gus@acme.test"))
    assert raised.value.connection_invalidated
    with transaction(database, write=True) as unit:
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "gus@acme.test"))
        assert MEMBER_BY_NAME.first(unit.connection, {"key": "gus@acme.test"}) is not None


def test_a_cursor_is_kept_for_the_next_statement_unless_it_holds_rows_or_an_error(
    database: Database, workspace_id: int
) -> None:
    """psycopg 3 (store/driver.py, _CURSOR): a connection keeps its last RawCursor, and with it
    that statement's result, only after a write or a lookup of one row. SQLite's statements
    take a cursor each: none is ever kept there."""
    names = DriverStatement(
        select(MEMBERS.c.id).where(MEMBERS.c.workspace_id == bindparam("workspace_id"))
    )
    if database.is_sqlite:
        with transaction(database, write=True) as unit:
            ADD_MEMBER.rows(unit.connection, member(workspace_id, "kim@acme.test"))
            assert names.rows(unit.connection, {"workspace_id": workspace_id}) == [
                ("id-kim@acme.test",)
            ]
            assert _CURSOR not in unit.connection.info
        return
    assert ADD_MEMBER.fast_path(database.engine.dialect)
    with transaction(database, write=True) as unit:
        info = unit.connection.info
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "kim@acme.test"))
        kept = info[_CURSOR]
        assert names.rows(unit.connection, {"workspace_id": workspace_id}) == [
            ("id-kim@acme.test",)
        ]
        assert info[_CURSOR] is kept
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "lou@acme.test"))
        assert len(names.rows(unit.connection, {"workspace_id": workspace_id})) == 2
        assert _CURSOR not in info and kept.closed
    with pytest.raises(IntegrityError), transaction(database, write=True) as unit:
        info = unit.connection.info
        ADD_MEMBER.rows(unit.connection, member(workspace_id, "kim@acme.test"))
    assert _CURSOR not in info
