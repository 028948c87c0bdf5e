"""The replay cache: use_response records an assertion and the request it answers in one
statement, and refuses (keeping neither) when either was used before."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from webwork_sso_middleware.idp_metadata.workspaces import Workspaces
from webwork_sso_middleware.store import Database, replay_cache, sign_in_target
from webwork_sso_middleware.store.models import SeenAssertion

from ..store_helpers import transaction

EXPIRES = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def workspaces(database: Database) -> Workspaces:
    """acme and globex, each with its own replay cache."""
    workspaces = Workspaces(database)
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    workspaces.create("globex", name="Globex", plan="plus", owner_email="o@globex.test")
    return workspaces


def workspace_id(slug: str, database: Database) -> int:
    with transaction(database) as unit:
        target = sign_in_target.sign_in_target(unit, slug)
    assert target is not None
    return target.workspace_id


def use(database: Database, acme: int, assertion_id: str, request_id: str | None) -> str | None:
    """use_response in a transaction that commits only when it accepts (as the ACS does)."""
    try:
        with transaction(database, write=True) as unit:
            refused = replay_cache.use_response(
                unit,
                workspace_id=acme,
                assertion_id=assertion_id,
                expires_at=EXPIRES,
                request_id=request_id,
                request_expires_at=EXPIRES if request_id else None,
            )
            if refused:
                raise LookupError(refused)
            return None
    except LookupError as error:
        return str(error)


def seen(database: Database) -> list[str]:
    with transaction(database) as unit:
        return sorted(unit.session.scalars(select(SeenAssertion.assertion_id)))


def test_use_response_refuses_replays_and_used_requests_and_keeps_nothing_then(
    workspaces, database
):
    acme = workspace_id("acme", database)
    assert use(database, acme, "a1", None) is None
    assert use(database, acme, "a1", None) == "replayed"
    assert use(database, acme, "a2", "r1") is None
    assert seen(database) == ["a1", "a2", replay_cache.REQUEST_PREFIX + "r1"]
    # The request was answered before: refused, and the new assertion ID is not kept.
    assert use(database, acme, "a3", "r1") == "unknown_in_response_to"
    # A replayed assertion says so first, even when its request is new.
    assert use(database, acme, "a2", "r2") == "replayed"
    assert seen(database) == ["a1", "a2", replay_cache.REQUEST_PREFIX + "r1"]
    # Both were used before: the replay is what is reported.
    assert use(database, acme, "a1", "r1") == "replayed"
    # Another workspace keeps its own replay cache.
    assert use(database, workspace_id("globex", database), "a1", "r1") is None
    with transaction(database) as unit:
        assert unit.session.scalar(select(func.count()).select_from(SeenAssertion)) == 5


def test_an_idps_logout_request_is_acted_on_once_per_workspace(workspaces, database):
    acme, globex = workspace_id("acme", database), workspace_id("globex", database)

    def use_logout(workspace: int, request_id: str) -> bool:
        with transaction(database, write=True) as unit:
            return replay_cache.use_logout_request(
                unit, workspace_id=workspace, request_id=request_id, expires_at=EXPIRES
            )

    assert use_logout(acme, "_r1") is True
    assert use_logout(acme, "_r1") is False
    assert use_logout(globex, "_r1") is True  # each workspace keeps its own
    # Under a prefix of its own: never mistaken for an assertion or an AuthnRequest.
    assert use(database, acme, "_r1", "_r1") is None
    assert replay_cache.LOGOUT_REQUEST_PREFIX + "_r1" in seen(database)
