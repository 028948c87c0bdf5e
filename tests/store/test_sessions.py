"""The session rows (store/sessions.py), on the backend under test; what a row means is
tests/sessions'."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import sessions as store
from webwork_sso_middleware.store.db import SESSIONS_ENDED
from webwork_sso_middleware.store.models import Member as MemberRow
from webwork_sso_middleware.store.models import MemberSession

from ..sessions.test_manager import add_member, create_workspace
from ..store_helpers import transaction

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def workspace_id(database: Database) -> int:
    return create_workspace(database)


@pytest.fixture
def ada(database: Database, workspace_id: int) -> str:
    return add_member(database, workspace_id, "ada@acme.test", groups=("Staff", "Admins"))


def insert(
    database: Database,
    id_hash: str,
    member_id: str,
    workspace_id: int,
    expires_at: dt.datetime = NOW + HOUR,
) -> None:
    database.run(
        lambda unit: store.insert_session(
            unit,
            id_hash=id_hash,
            member_id=member_id,
            workspace_id=workspace_id,
            generation=0,
            created_at=NOW,
            expires_at=expires_at,
        )
    )


def rows(database: Database, id_hash: str) -> list:
    return list(database.run(lambda unit: store.session_rows(unit, id_hash), write=False))


def ended(database: Database) -> dict[str, dt.datetime | None]:
    with transaction(database) as unit:
        return dict(
            unit.session.execute(select(MemberSession.id_hash, MemberSession.ended_at)).all()
        )


def test_a_session_reads_back_with_its_member_once_per_group(database, workspace_id, ada):
    insert(database, "h1", ada, workspace_id)

    found = rows(database, "h1")
    assert [row.group_name for row in found] == ["Admins", "Staff"]
    assert {row.member_id for row in found} == {ada}
    assert found[0].user_name == "ada@acme.test" and found[0].ended_at is None
    assert found[0].slug == "acme" and found[0].domain_verified
    assert rows(database, "no-such-hash") == []


def test_active_generation_is_only_for_an_active_member_of_the_workspace(
    database, workspace_id, ada
):
    def generation(member_id: str, in_workspace: int) -> int | None:
        return database.run(lambda unit: store.active_generation(unit, member_id, in_workspace))

    assert generation(ada, workspace_id) == 0
    assert generation(ada, workspace_id + 1) is None
    with transaction(database, write=True) as unit:
        unit.session.get(MemberRow, ada).active = False
    assert generation(ada, workspace_id) is None


def test_ending_sessions_marks_only_those_not_ended(database, workspace_id, ada):
    for id_hash in ("h1", "h2", "h3"):
        insert(database, id_hash, ada, workspace_id)
    database.run(lambda unit: store.end_sessions(unit, ["h1"], NOW))
    database.run(lambda unit: store.end_sessions(unit, ["h1", "h2"], NOW + HOUR))

    marks = ended(database)
    assert marks["h1"] == NOW and marks["h2"] == NOW + HOUR and marks["h3"] is None


def test_ending_a_members_sessions_bumps_the_generation_and_names_the_member(
    database, workspace_id, ada
):
    insert(database, "h1", ada, workspace_id)
    heard: list[frozenset[str]] = []

    class Listener:
        def __call__(self, ids: frozenset[str]) -> None:
            heard.append(ids)

    listener = Listener()
    database.on_sessions_ended(listener.__call__)

    def work(unit) -> int | None:
        workspace = store.end_member_sessions(unit, ada, NOW)
        assert unit.connection.info[SESSIONS_ENDED] == {ada}  # told at commit, not before
        assert heard == []
        return workspace

    assert database.run(work) == workspace_id
    assert heard == [frozenset({ada})]
    assert ended(database)["h1"] is not None
    assert rows(database, "h1")[0].session_generation == 1
    assert database.run(lambda unit: store.end_member_sessions(unit, "no-such-member", NOW)) is None


def test_purge_deletes_a_batch_of_expired_rows(database, workspace_id, ada):
    for index in range(5):
        insert(database, f"old{index}", ada, workspace_id, expires_at=NOW - HOUR)
    insert(database, "live", ada, workspace_id)

    assert database.run(lambda unit: store.purge_expired(unit, NOW, 3)) == 3
    assert database.run(lambda unit: store.purge_expired(unit, NOW, 3)) == 2
    assert set(ended(database)) == {"live"}
