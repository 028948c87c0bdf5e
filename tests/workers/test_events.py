"""Lifecycle events across worker processes: SCIM changes made on every worker at once, read
by readers in this (another) process with their cursors, each polling all along: every event
once per reader, none missed, in one order that all readers agree on."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from webwork_sso_middleware.events import Event, EventFeed
from webwork_sso_middleware.store import Database

from ..saml.idp import TestIdP
from .cluster import Cluster, scim_user
from .test_many_workers import Workspace

WRITERS_PER_WORKER = 3
CHANGES_PER_WRITER = 6


@pytest.fixture
def workspace(
    cluster: Cluster, cluster_idp: TestIdP, shared_database_url: str
) -> Iterator[Workspace]:
    cluster.check_alive()
    ws = Workspace(cluster, cluster_idp, shared_database_url)
    yield ws
    ws.scim.close()
    cluster.check_alive()


class Reader(threading.Thread):
    """A host process's reader: its own Database, polling ``since`` with its cursor."""

    def __init__(self, database_url: str, slug: str, done: threading.Event) -> None:
        super().__init__()
        self.database = Database(database_url, auto_migrate=False)
        self.feed = EventFeed(self.database)
        self.slug = slug
        self.done = done
        self.read: list[Event] = []
        self.error: Exception | None = None

    def run(self) -> None:
        cursor = None
        try:
            while True:
                finished = self.done.is_set()  # read once more after the writers stopped
                page = self.feed.since(cursor, limit=7, workspace=self.slug)
                self.read.extend(page)
                cursor = page[-1].cursor if page else cursor
                if finished and not page:
                    return
        except Exception as error:  # noqa: BLE001 - handed to the test, which asserts on it
            self.error = error
        finally:
            self.database.dispose()


def test_events_from_every_worker_reach_every_reader_once(
    cluster: Cluster, workspace: Workspace, shared_database_url: str
):
    made: list[tuple[str, str]] = []  # (kind, member id) as the workers answered
    lock = threading.Lock()

    def writer(worker: int, n: int) -> None:
        for k in range(CHANGES_PER_WRITER):
            email = workspace.email(f"w{worker}n{n}k{k}")
            response = workspace.scim.post(
                workspace.scim_url(worker, "/Users"), data=json.dumps(scim_user(email))
            )
            assert response.status_code == 201, response.text
            member_id = response.json()["id"]
            with lock:
                made.append(("member.created", member_id))
            if k % 2:  # and deactivate every other one, on the next worker
                other = (worker + 1) % len(cluster)
                answer = workspace.patch(
                    other, member_id, [{"op": "replace", "path": "active", "value": False}]
                )
                assert answer.status_code == 200, answer.text
                with lock:
                    made.append(("member.deactivated", member_id))

    done = threading.Event()
    readers = [Reader(shared_database_url, workspace.slug, done) for _ in range(2)]
    for reader in readers:
        reader.start()
    writers = [
        threading.Thread(target=writer, args=(worker, n))
        for worker in range(len(cluster))
        for n in range(WRITERS_PER_WORKER)
    ]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(120)
    done.set()
    for reader in readers:
        reader.join(60)
        assert reader.error is None, reader.error

    expected = sorted(made)
    assert len(expected) == len(cluster) * WRITERS_PER_WORKER * CHANGES_PER_WRITER * 3 // 2
    for reader in readers:
        assert sorted((e.kind, e.member_id or "") for e in reader.read) == expected
        assert len({e.id for e in reader.read}) == len(reader.read)  # none twice
        cursors = [int(e.cursor or 0) for e in reader.read]
        assert cursors == sorted(cursors)
        # A member's own events keep their order: created before deactivated.
        seen: dict[str, list[str]] = {}
        for event in reader.read:
            seen.setdefault(event.member_id or "", []).append(event.kind)
        assert all(kinds[0] == "member.created" for kinds in seen.values())
    # Every reader saw the one order the numbering gave.
    assert [e.id for e in readers[0].read] == [e.id for e in readers[1].read]
