"""store/events.py: rows recorded in the change's transaction, numbered by readers in commit
order, so a cursor never skips an event that commits late; retention; rollback."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select, update

from webwork_sso_middleware.events import EventFeed
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import events as event_store
from webwork_sso_middleware.store.db import UnitOfWork
from webwork_sso_middleware.store.models import LifecycleEvent, Workspace

from ..conftest import POSTGRES_URL
from ..store_helpers import transaction


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


def test_purge_keeps_the_newest_numbered_event_so_numbers_never_restart(
    database: Database, workspace_id: int
):
    feed = EventFeed(database)
    for n in range(3):
        database.run(lambda unit, n=n: record(unit, workspace_id, f"m{n}"))
    last = feed.since()[-1].cursor
    database.run(
        lambda unit: unit.connection.execute(
            update(LifecycleEvent).values(occurred_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        )
    )
    before = dt.datetime.now(dt.UTC)
    assert database.run(lambda unit: event_store.purge(unit, before=before)) == 2
    assert database.run(lambda unit: event_store.purge(unit, before=before)) == 0
    database.run(lambda unit: record(unit, workspace_id, "m3"))
    assert [e.member_id for e in feed.since(last)] == ["m3"]
    assert int(feed.since(last)[0].cursor or 0) == int(last or 0) + 1


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
