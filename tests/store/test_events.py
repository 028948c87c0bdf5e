"""store/events.py: rows recorded in the change's transaction, numbered by readers in commit
order, so a cursor never skips an event that commits late; retention; rollback."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from webwork_sso_middleware.errors import InvalidCursor, UnknownWorkspace
from webwork_sso_middleware.events import Event, EventFeed
from webwork_sso_middleware.events import feed as feed_module
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import events as event_store
from webwork_sso_middleware.store.audit import Retention
from webwork_sso_middleware.store.db import UnitOfWork
from webwork_sso_middleware.store.events import SEQUENCE_LOCK
from webwork_sso_middleware.store.models import LifecycleEvent, LifecycleEventSequence, Workspace

from ..conftest import POSTGRES_URL
from ..store_helpers import Statements, transaction


@pytest.fixture
def workspace_id(database: Database) -> int:
    def work(unit: UnitOfWork) -> int:
        workspace = Workspace(slug="acme", name="Acme", plan="plus", owner_email="o@acme.test")
        unit.session.add(workspace)
        unit.session.flush()
        return workspace.id

    return database.run(work)


class Told:
    """A Database listener (held weakly there: kept alive by the test)."""

    def __init__(self) -> None:
        self.ids: list[tuple[str, ...]] = []

    def hear(self, ids: tuple[str, ...]) -> None:
        self.ids.append(ids)


def record(unit: UnitOfWork, workspace_id: int, member_id: str) -> str:
    return event_store.record(
        unit, workspace_id, "member.created", "cli", member_id=member_id, changes={"n": 1}
    )


def test_listeners_hear_after_commit_and_not_after_a_rollback(
    database: Database, workspace_id: int
):
    told = Told()
    database.on_events_committed(told.hear)

    committed = database.run(lambda unit: record(unit, workspace_id, "m1"))

    def fails(unit: UnitOfWork) -> None:
        record(unit, workspace_id, "m2")
        raise RuntimeError("the change fails after its event was recorded")

    with pytest.raises(RuntimeError):
        database.run(fails)
    assert told.ids == [(committed,)]
    assert [e.member_id for e in EventFeed(database).since()] == ["m1"]  # m2 rolled back


def test_a_failing_listener_is_logged_and_the_change_stands(
    database: Database, workspace_id: int, caplog: pytest.LogCaptureFixture
):
    class Broken:
        def hear(self, ids: tuple[str, ...]) -> None:
            raise RuntimeError("listener bug")

    broken = Broken()
    database.on_events_committed(broken.hear)
    database.run(lambda unit: record(unit, workspace_id, "m1"))  # does not raise
    assert "could not deliver lifecycle events" in caplog.text
    assert len(EventFeed(database).since()) == 1


def test_unknown_kinds_and_sources_are_refused(database: Database, workspace_id: int):
    with pytest.raises(ValueError):
        database.run(lambda unit: event_store.record(unit, workspace_id, "member.exploded", "cli"))
    with pytest.raises(ValueError):
        database.run(lambda unit: event_store.record(unit, workspace_id, "member.created", "email"))


def test_numbering_follows_commit_order_not_insert_order(database: Database, workspace_id: int):
    # Rows inserted and committed, but numbered later: the pk order among unnumbered rows.
    ids = database.run(lambda unit: [record(unit, workspace_id, f"m{n}") for n in range(3)])
    assert database.run(event_store.unsequenced, write=False)
    assert database.run(event_store.sequence) == 3
    assert not database.run(event_store.unsequenced, write=False)
    assert database.run(event_store.sequence) == 0
    rows = database.run(lambda unit: event_store.read(unit, after=0, limit=10), write=False)
    assert [(r.id, r.seq) for r in rows] == list(zip(ids, [1, 2, 3], strict=True))


def test_an_event_that_commits_after_a_later_one_is_not_skipped(
    database: Database, workspace_id: int
):
    feed = EventFeed(database)
    # A transaction records its event first (the lower pk) and stays open...
    early = database.engine.connect()
    transaction_ = early.begin()
    early_id = record(UnitOfWork(early), workspace_id, "early")
    try:
        if not POSTGRES_URL:
            # SQLite: writers take turns, so the later writer waits for the early one's commit
            # and the two can never commit out of order; the reader sees early, then late.
            late = threading.Thread(
                target=lambda: database.run(lambda unit: record(unit, workspace_id, "late"))
            )
            late.start()
            late.join(0.5)
            assert late.is_alive()  # held by the early transaction's write lock
            transaction_.commit()
            late.join(10)
            assert [e.member_id for e in feed.since()] == ["early", "late"]
            return
        # ...while another records one later and commits; a reader reads it.
        database.run(lambda unit: record(unit, workspace_id, "late"))
        first = feed.since()
        assert [e.member_id for e in first] == ["late"]
        transaction_.commit()
    finally:
        early.close()
    # The early event committed last: the reader's cursor still finds it.
    after = feed.since(first[-1].cursor)
    assert [(e.id, e.member_id) for e in after] == [(early_id, "early")]
    assert int(after[0].cursor or 0) > int(first[-1].cursor or 0)


def age(database: Database, days: int = 400) -> None:
    """Every event happened ``days`` ago."""
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    with transaction(database, write=True) as unit:
        unit.connection.execute(update(LifecycleEvent).values(occurred_at=old))


def count_events(database: Database) -> int:
    with transaction(database) as unit:
        return int(
            unit.connection.execute(select(func.count()).select_from(LifecycleEvent)).scalar_one()
        )


def test_purge_deletes_even_the_newest_and_numbering_never_restarts(
    database: Database, workspace_id: int
):
    feed = EventFeed(database)
    for n in range(3):
        database.run(lambda unit, n=n: record(unit, workspace_id, f"m{n}"))
    last = feed.since()[-1].cursor
    age(database)
    before = dt.datetime.now(dt.UTC)
    assert database.run(lambda unit: event_store.purge(unit, before=before)) == 3
    assert database.run(lambda unit: event_store.purge(unit, before=before)) == 0
    assert feed.since(last) == []  # not "past the newest": the high-water mark stays
    database.run(lambda unit: record(unit, workspace_id, "m3"))
    assert [e.member_id for e in feed.since(last)] == ["m3"]
    assert int(feed.since(last)[0].cursor or 0) == int(last or 0) + 1


def test_retention_purges_events_no_reader_ever_numbered(database: Database, workspace_id: int):
    # A host that only subscribes (or uses the Django/Flask signals) never calls since():
    # its events are never numbered, and must not outlive audit_retention_days for it.
    database.run(
        lambda unit: event_store.record_many(
            unit,
            workspace_id,
            [
                event_store.NewEvent("member.signed_in", "saml", member_id=f"m{n}")
                for n in range(50)
            ],
        )
    )
    database.run(lambda unit: record(unit, workspace_id, "fresh"))
    with transaction(database, write=True) as unit:
        unit.connection.execute(
            update(LifecycleEvent)
            .where(LifecycleEvent.member_id != "fresh")
            .values(occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=400))
        )
    assert Retention(database, days=30, batch=20).maybe_purge() == 50
    assert [e.member_id for e in EventFeed(database).since()] == ["fresh"]


def test_deleting_the_workspace_of_the_newest_event_does_not_restart_numbering(
    database: Database, workspace_id: int
):
    feed = EventFeed(database)

    def hostile(unit: UnitOfWork) -> int:
        workspace = Workspace(slug="beta", name="Beta", plan="plus", owner_email="o@beta.test")
        unit.session.add(workspace)
        unit.session.flush()
        return workspace.id

    beta = database.run(hostile)
    database.run(lambda unit: record(unit, workspace_id, "a1"))
    database.run(lambda unit: record(unit, beta, "b1"))
    cursor = feed.since()[-1].cursor  # beta's event is the newest
    with transaction(database, write=True) as unit:  # ON DELETE CASCADE takes its events
        unit.connection.execute(delete(Workspace).where(Workspace.id == beta))
    database.run(lambda unit: record(unit, workspace_id, "a2"))
    assert [e.member_id for e in feed.since(cursor)] == ["a2"]


def test_cursors_beyond_32_bits_work(database: Database, workspace_id: int):
    feed = EventFeed(database)
    start = 2**31 + 10  # as after two thousand million events (one per member of a PATCH)
    with transaction(database, write=True) as unit:
        unit.connection.execute(delete(LifecycleEventSequence))
        unit.connection.execute(insert(LifecycleEventSequence).values(id=1, last=start))
    database.run(lambda unit: record(unit, workspace_id, "m1"))
    found = feed.since()
    assert [(e.member_id, e.cursor) for e in found] == [("m1", str(start + 1))]
    assert feed.since(found[-1].cursor) == []
    assert feed.since(str(2**31)) == [found[0]]
    with pytest.raises(InvalidCursor, match="past the newest"):
        feed.since(str(2**63 - 1))  # in range, but never given: refused, not a DataError
    for beyond in (str(2**63), "9" * 19, "9" * 40):
        with pytest.raises(InvalidCursor, match="not a cursor"):
            feed.since(beyond)


def test_a_cursor_that_is_not_a_str_is_refused_saying_so(database: Database, workspace_id: int):
    with pytest.raises(InvalidCursor, match="is a int: a cursor is the str"):
        EventFeed(database).since(5)  # type: ignore[arg-type]


def test_numbering_is_one_statement_per_batch(database: Database, workspace_id: int):
    many = [event_store.NewEvent("member.signed_in", "saml", member_id=f"m{n}") for n in range(30)]
    database.run(lambda unit: event_store.record_many(unit, workspace_id, many))
    with Statements(database) as statements:
        assert EventFeed(database).sequence() == 30
    updates = statements.matching("UPDATE lifecycle_events")
    assert [many for _, many in updates] == [False]  # one set-based UPDATE, no executemany


def test_since_numbers_a_bounded_batch_and_a_reader_with_a_backlog_still_progresses(
    database: Database, workspace_id: int, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(event_store, "SEQUENCE_BATCH", 4)
    monkeypatch.setattr(feed_module, "SINCE_BATCHES", 1)
    many = [event_store.NewEvent("member.signed_in", "saml", member_id=f"m{n}") for n in range(10)]
    database.run(lambda unit: event_store.record_many(unit, workspace_id, many))
    feed = EventFeed(database)
    seen: list[str | None] = []
    cursor = None
    for _ in range(3):  # each call numbers 4 at most: no call walks the whole backlog
        page = feed.since(cursor, limit=100)
        assert 0 < len(page) <= 4
        seen += [e.member_id for e in page]
        cursor = page[-1].cursor
    assert seen == [f"m{n}" for n in range(10)]
    assert feed.since(cursor) == []


def test_a_workspace_filter_is_a_plain_id_and_an_unknown_slug_is_refused(
    database: Database, workspace_id: int
):
    database.run(lambda unit: record(unit, workspace_id, "m1"))
    feed = EventFeed(database)
    with Statements(database) as statements:
        assert [e.member_id for e in feed.since(workspace=" ACME ")] == ["m1"]
    reads = statements.matching("lifecycle_events.seq >")
    assert len(reads) == 1
    # No subquery on the slug: PostgreSQL plans the (workspace_id, seq) index for a value.
    assert "workspaces.slug =" not in reads[0][0]
    with pytest.raises(UnknownWorkspace, match="no workspace 'nobody'"):
        feed.since(workspace="nobody")


def test_many_events_insert_many_rows_per_statement(database: Database, workspace_id: int):
    many = [
        event_store.NewEvent("group.member_added", "scim", member_id=f"m{n}", group_id="g")
        for n in range(2500)
    ]
    with Statements(database) as statements:
        ids = database.run(lambda unit: event_store.record_many(unit, workspace_id, many))
    inserts = statements.matching("INSERT INTO lifecycle_events")
    # Many rows per statement (PostgreSQL: unnest() of arrays; SQLite: SQLAlchemy's
    # insertmanyvalues), never an executemany, which is one INSERT per row on PostgreSQL.
    chunk = event_store.PG_INSERT_CHUNK if POSTGRES_URL else event_store.INSERT_CHUNK
    assert len(inserts) == -(-2500 // chunk)
    if POSTGRES_URL:
        assert not any(many for _, many in inserts)
    assert len(set(ids)) == 2500 == count_events(database)
    rows = EventFeed(database).since(limit=1000)
    assert [e.member_id for e in rows] == [f"m{n}" for n in range(1000)]


def test_a_commit_beyond_the_parameter_limit_is_delivered_whole(
    database: Database, workspace_id: int
):
    # More ids than one statement may carry (SQLite 32766, PostgreSQL 65535 parameters).
    total = 66_000 if POSTGRES_URL else 33_000
    heard: list[str] = []
    feed = EventFeed(database)
    feed.subscribe(lambda event: heard.append(event.id))
    many = [event_store.NewEvent("member.signed_in", "saml", member_id="m") for _ in range(total)]
    ids = database.run(lambda unit: event_store.record_many(unit, workspace_id, many))
    assert heard == ids


def test_a_handler_that_unsubscribes_hears_no_more_of_the_commit(
    database: Database, workspace_id: int
):
    feed = EventFeed(database)
    calls: list[str | None] = []
    late: list[str | None] = []

    def once(event: Event) -> None:
        calls.append(event.member_id)
        feed.unsubscribe(once)
        feed.subscribe(lambda e: late.append(e.member_id))  # from the next commit on

    feed.subscribe(once)
    many = [event_store.NewEvent("member.created", "cli", member_id=f"m{n}") for n in range(3)]
    database.run(lambda unit: event_store.record_many(unit, workspace_id, many))
    assert calls == ["m0"]
    assert late == []
    database.run(lambda unit: record(unit, workspace_id, "next"))
    assert (calls, late) == (["m0"], ["next"])


def test_another_connection_numbering_or_writing_never_fails_a_reader(
    database: Database, database_url: str, workspace_id: int
):
    database.run(lambda unit: record(unit, workspace_id, "numbered"))
    EventFeed(database).sequence()
    database.run(lambda unit: record(unit, workspace_id, "waiting"))
    if not POSTGRES_URL:
        # SQLite has one write lock and no advisory locks: a reader waits its turn (within
        # busy_timeout) while another connection writes, then numbers and reads everything.
        writer = database.engine.connect()
        writing = writer.begin()
        record(UnitOfWork(writer), workspace_id, "written")
        release = threading.Timer(0.3, writing.commit)
        release.start()
        try:
            seen = [e.member_id for e in EventFeed(database).since()]
        finally:
            release.join()
            writer.close()
        assert seen == ["numbered", "waiting", "written"]
        return
    impatient = Database(database_url, busy_timeout=0.2)
    other = database.engine.connect()
    try:
        holding = other.begin()  # another reader, numbering right now
        other.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": SEQUENCE_LOCK})
        # Stuck past lock_timeout: not LockNotAvailable, but what is numbered.
        assert [e.member_id for e in EventFeed(impatient).since()] == ["numbered"]
        holding.rollback()
        assert [e.member_id for e in EventFeed(impatient).since()] == ["numbered", "waiting"]
    finally:
        other.close()
        impatient.dispose()


def test_a_reader_waits_for_another_reader_numbering_so_an_empty_page_means_caught_up(
    database: Database, workspace_id: int
):
    database.run(lambda unit: record(unit, workspace_id, "numbered"))
    feed = EventFeed(database)
    cursor = feed.since()[-1].cursor
    database.run(lambda unit: record(unit, workspace_id, "committed before the call"))
    other = database.engine.connect()
    try:
        # Another reader that is numbering and has not committed: on PostgreSQL it holds the
        # numbering lock; on SQLite, the write lock every numbering takes.
        if POSTGRES_URL:
            holding = other.begin()
            other.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": SEQUENCE_LOCK})
        else:
            other = other.execution_options(sqlite_immediate=True)
            holding = other.begin()
        release = threading.Timer(0.3, holding.rollback)
        release.start()
        started = time.monotonic()
        try:
            page = feed.since(cursor)
        finally:
            release.join()
        assert time.monotonic() - started >= 0.25  # it waited for the holder...
        assert [e.member_id for e in page] == ["committed before the call"]  # ...not empty
    finally:
        other.close()


def test_a_big_batch_is_numbered_in_several_transactions(
    database: Database, workspace_id: int, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(event_store, "SEQUENCE_BATCH", 4)
    database.run(
        lambda unit: event_store.record_many(
            unit,
            workspace_id,
            [
                event_store.NewEvent("member.signed_in", "saml", member_id=f"m{n}")
                for n in range(10)
            ],
        )
    )
    assert EventFeed(database).sequence() == 10
    with transaction(database) as unit:
        numbers = unit.connection.execute(select(func.count(LifecycleEvent.seq))).scalar_one()
    assert numbers == 10
