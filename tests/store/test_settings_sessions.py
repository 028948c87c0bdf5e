"""The owner-settings session rows and the settings-link redemption check, on the backend under
test."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import settings_sessions as store
from webwork_sso_middleware.store.models import SettingsSession, Workspace, utcnow
from webwork_sso_middleware.store.sign_in import redeem_settings_link
from webwork_sso_middleware.store.workspaces import Workspaces

HALF_HOUR = dt.timedelta(minutes=30)


@pytest.fixture
def workspace_ids(database: Database) -> tuple[int, int]:
    workspaces = Workspaces(database)
    return tuple(workspaces.create(slug, name=slug.title(), plan="plus",  # type: ignore[return-value]
                                   owner_email=f"owner@{slug}.test")[0].id
                 for slug in ("acme", "globex"))


def start(database: Database, id_hash: str, workspace_id: int, now: dt.datetime,
          lifetime: dt.timedelta = HALF_HOUR) -> None:
    database.run_unit(lambda unit: store.start(unit.connection, id_hash=id_hash,
                                               workspace_id=workspace_id, now=now,
                                               expires_at=now + lifetime))


def live(database: Database, id_hash: str, workspace_id: int, now: dt.datetime) -> bool:
    return database.run_unit(lambda unit: store.is_live(
        unit.connection, id_hash=id_hash, workspace_id=workspace_id, now=now), write=False)


def count(database: Database) -> int:
    with database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(SettingsSession)) or 0)


def test_a_session_is_live_for_its_workspace_until_it_expires(database, workspace_ids):
    acme, globex = workspace_ids
    now = utcnow()
    start(database, "a" * 64, acme, now)
    assert live(database, "a" * 64, acme, now + HALF_HOUR - dt.timedelta(seconds=1))
    assert not live(database, "a" * 64, acme, now + HALF_HOUR)
    assert not live(database, "a" * 64, globex, now)  # another workspace's page: no
    assert not live(database, "b" * 64, acme, now)  # never started


def test_ending_is_for_good_and_only_for_the_sessions_named(database, workspace_ids):
    acme, _ = workspace_ids
    now = utcnow()
    start(database, "a" * 64, acme, now)
    start(database, "b" * 64, acme, now)
    assert database.run_unit(lambda unit: store.end(unit.connection, ["a" * 64], now=now)) == 1
    assert database.run_unit(lambda unit: store.end(unit.connection, ["a" * 64], now=now)) == 0
    assert database.run_unit(lambda unit: store.end(unit.connection, [], now=now)) == 0
    assert not live(database, "a" * 64, acme, now)
    assert live(database, "b" * 64, acme, now)


def test_starting_purges_expired_rows_ended_or_not(database, workspace_ids):
    acme, _ = workspace_ids
    then = utcnow() - dt.timedelta(hours=2)
    start(database, "a" * 64, acme, then)
    start(database, "b" * 64, acme, then)
    database.run_unit(lambda unit: store.end(unit.connection, ["b" * 64], now=then))
    assert count(database) == 2
    start(database, "c" * 64, acme, utcnow())
    assert count(database) == 1
    assert database.run_unit(lambda unit: store.purge_expired(unit.connection, now=utcnow())) == 0


def test_a_deleted_workspace_takes_its_sessions_along(database, workspace_ids):
    acme, _ = workspace_ids
    start(database, "a" * 64, acme, utcnow())
    with database.transaction(write=True) as session:
        session.delete(session.get(Workspace, acme))
    assert count(database) == 0


def test_link_redeemed_reads_without_redeeming(database, workspace_ids):
    acme, globex = workspace_ids
    expires = utcnow() + dt.timedelta(minutes=15)

    def redeemed(workspace_id: int, nonce: str) -> bool:
        return database.run_unit(lambda unit: store.link_redeemed(
            unit.connection, workspace_id=workspace_id, nonce=nonce), write=False)

    assert not redeemed(acme, "n1") and not redeemed(acme, "n1")  # asking uses nothing up
    assert database.run_unit(lambda unit: redeem_settings_link(
        unit.connection, workspace_id=acme, nonce="n1", expires_at=expires))
    assert redeemed(acme, "n1")
    assert not redeemed(globex, "n1") and not redeemed(acme, "n2")
