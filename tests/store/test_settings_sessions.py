"""The owner-settings session rows and the settings-link redemption check, on the backend under
test."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import settings_sessions as store
from webwork_sso_middleware.store.models import SettingsSession, Workspace, utcnow
from webwork_sso_middleware.store.replay_cache import redeem_settings_link
from webwork_sso_middleware.store.workspaces import Workspaces

from ..store_helpers import transaction

HALF_HOUR = dt.timedelta(minutes=30)


@pytest.fixture
def workspace_ids(database: Database) -> tuple[int, int]:
    workspaces = Workspaces(database)
    return tuple(
        workspaces.create(
            slug,
            name=slug.title(),
            plan="plus",  # type: ignore[return-value]
            owner_email=f"owner@{slug}.test",
        )[0].id
        for slug in ("acme", "globex")
    )


def start(
    database: Database,
    id_hash: str,
    workspace_id: int,
    now: dt.datetime,
    lifetime: dt.timedelta = HALF_HOUR,
) -> None:
    database.run(
        lambda unit: store.start(
            unit, id_hash=id_hash, workspace_id=workspace_id, now=now, expires_at=now + lifetime
        )
    )


def live(database: Database, id_hash: str, workspace_id: int, now: dt.datetime) -> bool:
    return database.run(
        lambda unit: store.is_live(unit, id_hash=id_hash, workspace_id=workspace_id, now=now),
        write=False,
    )


def count(database: Database) -> int:
    with transaction(database) as unit:
        return int(unit.session.scalar(select(func.count()).select_from(SettingsSession)) or 0)


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
    assert database.run(lambda unit: store.end(unit, ["a" * 64], now=now)) == 1
    assert database.run(lambda unit: store.end(unit, ["a" * 64], now=now)) == 0
    assert database.run(lambda unit: store.end(unit, [], now=now)) == 0
    assert not live(database, "a" * 64, acme, now)
    assert live(database, "b" * 64, acme, now)


def test_starting_purges_expired_rows_ended_or_not(database, workspace_ids):
    acme, _ = workspace_ids
    then = utcnow() - dt.timedelta(hours=2)
    start(database, "a" * 64, acme, then)
    start(database, "b" * 64, acme, then)
    database.run(lambda unit: store.end(unit, ["b" * 64], now=then))
    assert count(database) == 2
    start(database, "c" * 64, acme, utcnow())
    assert count(database) == 1
    assert database.run(lambda unit: store.purge_expired(unit, now=utcnow())) == 0


def test_a_deleted_workspace_takes_its_sessions_along(database, workspace_ids):
    acme, _ = workspace_ids
    start(database, "a" * 64, acme, utcnow())
    with transaction(database, write=True) as unit:
        unit.session.delete(unit.session.get(Workspace, acme))
    assert count(database) == 0


def test_link_redeemed_reads_without_redeeming(database, workspace_ids):
    acme, globex = workspace_ids
    expires = utcnow() + dt.timedelta(minutes=15)

    def redeemed(workspace_id: int, nonce: str) -> bool:
        return database.run(
            lambda unit: store.link_redeemed(unit, workspace_id=workspace_id, nonce=nonce),
            write=False,
        )

    assert not redeemed(acme, "n1") and not redeemed(acme, "n1")  # asking uses nothing up
    assert database.run(
        lambda unit: redeem_settings_link(unit, workspace_id=acme, nonce="n1", expires_at=expires)
    )
    assert redeemed(acme, "n1")
    assert not redeemed(globex, "n1") and not redeemed(acme, "n2")
