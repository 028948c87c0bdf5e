"""The audit log: records in the caller's transaction, the diagnostics' query, and retention."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from sqlalchemy import insert, select

from webwork_sso_middleware.store import Database, audit
from webwork_sso_middleware.store.db import UnitOfWork
from webwork_sso_middleware.store.models import AuditEvent, Workspace, utcnow

from ..store_helpers import transaction

EVENTS = AuditEvent.__table__


@pytest.fixture
def workspace_ids(database: Database) -> list[int]:
    def work(unit: UnitOfWork) -> list[int]:
        workspaces = [
            Workspace(slug=slug, name=slug, plan="plus", owner_email=f"o@{slug}.test")
            for slug in ("acme", "beta")
        ]
        unit.session.add_all(workspaces)
        unit.session.flush()
        return [w.id for w in workspaces]

    return database.run(work)


def add_events(
    database: Database,
    workspace_id: int,
    days_ago: float,
    count: int = 1,
    action: str = "signed_in",
) -> None:
    at = utcnow() - dt.timedelta(days=days_ago)
    with transaction(database, write=True) as unit:
        unit.connection.execute(
            insert(EVENTS),
            [
                {
                    "workspace_id": workspace_id,
                    "occurred_at": at,
                    "actor": "saml",
                    "action": action,
                    "target_type": "member",
                    "target_id": None,
                    "changes": {},
                }
                for _ in range(count)
            ],
        )


def ages(database: Database) -> list[int]:
    with transaction(database) as unit:
        times = unit.connection.execute(select(EVENTS.c.occurred_at)).scalars().all()
    return sorted(round((utcnow() - t) / dt.timedelta(days=1)) for t in times)


def test_a_record_belongs_to_the_callers_transaction(database: Database, workspace_ids: list[int]):
    with pytest.raises(RuntimeError), transaction(database, write=True) as unit:
        audit.record(
            unit,
            workspace_id=workspace_ids[0],
            actor="scim",
            action="created",
            target_type="member",
            target_id="m1",
        )
        raise RuntimeError("the change it describes failed")
    assert ages(database) == []


def test_latest_gives_the_newest_events_of_the_kinds_asked(
    database: Database, workspace_ids: list[int]
):
    acme, beta = workspace_ids
    add_events(database, acme, 3, action="login_failed")
    add_events(database, acme, 1, count=5)
    add_events(database, acme, 2, action="login_refused")
    add_events(database, beta, 0, action="login_failed")
    with transaction(database) as unit:
        found = audit.latest(unit, acme, ("login_failed", "login_refused"))
        recent = audit.latest(
            unit, acme, ("login_failed", "login_refused"), since=utcnow() - dt.timedelta(days=2.5)
        )
    assert [e.action for e in found] == ["login_refused", "login_failed"]
    assert [e.action for e in recent] == ["login_refused"]


def test_purge_deletes_only_events_older_than_the_cutoff_in_batches(
    database: Database, workspace_ids: list[int]
):
    acme, beta = workspace_ids
    add_events(database, acme, 40, count=3)
    add_events(database, beta, 35, count=2)
    add_events(database, acme, 10, count=2)
    cutoff = utcnow() - dt.timedelta(days=30)
    with transaction(database, write=True) as unit:
        assert audit.purge(unit, before=cutoff, limit=4) == 4
    assert ages(database) == [10, 10, 35]  # the oldest went first, across workspaces
    with transaction(database, write=True) as unit:
        assert audit.purge(unit, before=cutoff, limit=4) == 1
        assert audit.purge(unit, before=cutoff, limit=4) == 0
    assert ages(database) == [10, 10]


def test_retention_runs_at_most_once_per_interval_and_batch_by_batch(
    database: Database, workspace_ids: list[int]
):
    now = [1000.0]
    retention = audit.Retention(
        database, days=30, interval=600, batch=2, max_batches=2, clock=lambda: now[0]
    )
    add_events(database, workspace_ids[0], 60, count=5)
    add_events(database, workspace_ids[0], 1)

    assert retention.maybe_purge() == 4  # two batches of two, then it stops for this time
    assert retention.maybe_purge() == 0  # not due
    now[0] += 599
    assert retention.maybe_purge() == 0
    now[0] += 1
    assert retention.maybe_purge() == 1
    assert ages(database) == [1]


def test_a_failing_purge_never_fails_the_caller(tmp_path, workspace_ids: list[int]):
    broken = Database(f"sqlite:///{tmp_path / 'no-schema.db'}", auto_migrate=False)
    try:
        assert audit.Retention(broken, days=1).maybe_purge() == 0  # no table: logged, not raised
    finally:
        broken.dispose()


def counted_rows(database: Database) -> list[tuple[int, str | None, dict[str, Any]]]:
    with transaction(database) as unit:
        rows = unit.connection.execute(
            select(EVENTS.c.workspace_id, EVENTS.c.target_id, EVENTS.c.changes)
            .where(EVENTS.c.target_type == audit.COUNTED)
            .order_by(EVENTS.c.id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_count_keeps_one_row_per_workspace_key_and_window(
    database: Database, workspace_ids: list[int]
):
    acme, beta = workspace_ids
    start = dt.datetime(2026, 12, 1, 10, 0, 5, tzinfo=dt.UTC)

    def count(workspace_id: int, key: str, minutes: float, detail: str = "junk") -> int:
        with transaction(database, write=True) as unit:
            return audit.count(
                unit,
                workspace_id=workspace_id,
                actor="saml",
                action="login_failed",
                key=key,
                changes={"reason": key, "detail": detail},
                now=start + dt.timedelta(minutes=minutes),
            )

    assert [count(acme, "missing_response", m) for m in range(3)] == [1, 2, 3]
    assert count(acme, "malformed_xml", 3) == 1
    assert count(beta, "missing_response", 4) == 1
    assert count(acme, "missing_response", 59, detail="the latest") == 4
    assert count(acme, "missing_response", 60) == 1  # 11:00:05: the next hour's row
    rows = counted_rows(database)
    assert [(w, key, c["count"]) for w, key, c in rows] == [
        (acme, "missing_response", 4),
        (acme, "malformed_xml", 1),
        (beta, "missing_response", 1),
        (acme, "missing_response", 1),
    ]
    assert rows[0][2]["detail"] == "the latest"
    assert rows[0][2]["first_at"] == start.isoformat()
    with transaction(database) as unit:
        latest = audit.latest(unit, acme, ("login_failed",), counted=True)
        single = audit.latest(unit, acme, ("login_failed",), counted=False)
    assert [e.changes["count"] for e in latest] == [1, 4, 1] and single == []  # by latest


def test_concurrent_counts_add_up_in_one_row(database_url: str, workspace_ids: list[int]):
    """Workers (here threads, each with its own engine) never both insert the first row."""
    acme = workspace_ids[0]
    databases = [Database(database_url) for _ in range(4)]
    barrier = threading.Barrier(len(databases))

    def worker(database: Database) -> None:
        barrier.wait()
        for _ in range(10):
            database.run(
                lambda unit: audit.count(
                    unit,
                    workspace_id=acme,
                    actor="saml",
                    action="login_failed",
                    key="bad_encoding",
                    changes={"reason": "bad_encoding"},
                )
            )

    try:
        threads = [threading.Thread(target=worker, args=(db,)) for db in databases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        rows = counted_rows(databases[0])
    finally:
        for database in databases:
            database.dispose()
    # Normally one row; two only if the hour turned during the test.
    assert 1 <= len(rows) <= 2 and sum(c["count"] for _, _, c in rows) == 40
