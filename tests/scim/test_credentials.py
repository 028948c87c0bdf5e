"""A worker's memory of SCIM tokens: bounded in time by session_recheck_seconds, at once in the
worker that made a change, only for live tokens, and never one workspace's for another's."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import pytest
from webtest import TestApp

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.errors import StoreUnavailable
from webwork_sso_middleware.scim import credentials
from webwork_sso_middleware.scim.credentials import CredentialCache
from webwork_sso_middleware.store.workspaces import find_credential, find_credential_by_digest

from ..store_helpers import transaction
from .conftest import host_app, okta_user

SECRET = "test-secret-padded-to-thirty-two-bytes-at-least"
RECHECK = 0.5


def worker(database_url: str, recheck: float = RECHECK) -> SSOMiddleware:
    """A middleware of its own on the shared database, as another worker process has."""
    return SSOMiddleware(
        host_app,
        database_url=database_url,
        secret_key=SECRET,
        base_url="https://tracker.example.com",
        session_recheck_seconds=recheck,
    )


@pytest.fixture
def workers(database_url: str) -> Iterator[tuple[SSOMiddleware, SSOMiddleware]]:
    first, second = worker(database_url), worker(database_url)
    yield first, second
    first.close()
    second.close()


def open_workspace(app: SSOMiddleware, slug: str) -> str:
    _, token = app.workspaces.create(slug, name=slug, plan="plus", owner_email=f"o@{slug}.test")
    app.workspaces.enable(slug, scim=True)
    return token


def users(app: SSOMiddleware, token: str, status: int = 200) -> dict:
    response = TestApp(app).get(
        "/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}, status=status
    )
    return json.loads(response.body)


def test_a_new_token_reaches_the_other_workers_within_the_recheck_bound(workers):
    here, there = workers
    old = open_workspace(here, "acme")
    users(here, old)
    users(there, old)  # remembered there from now on, for RECHECK seconds
    new = here.workspaces.rotate_token("acme")
    changed = time.monotonic()
    users(here, old, status=401)  # the worker that made the change forgot at once
    users(here, new)
    while not _refused(there, old):
        assert time.monotonic() - changed <= RECHECK + 0.25, "still open past the bound"
        time.sleep(0.05)
    users(there, new)


def _refused(app: SSOMiddleware, token: str) -> bool:
    response = TestApp(app).get(
        "/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}, expect_errors=True
    )
    return response.status_int == 401


def test_scim_switched_off_and_the_free_plan_reach_the_other_workers_within_the_bound(workers):
    here, there = workers
    token = open_workspace(here, "acme")
    for change, restore, detail in (
        (
            lambda: here.workspaces.disable("acme", scim=True),
            lambda: here.workspaces.enable("acme", scim=True),
            "switched off",
        ),
        (
            lambda: here.workspaces.set_plan("acme", "free"),
            lambda: (
                here.workspaces.set_plan("acme", "plus"),
                here.workspaces.enable("acme", scim=True),
            ),
            "Plus or Premium",
        ),
    ):
        users(there, token)
        change()
        assert detail in users(here, token, status=403)["detail"]  # at once here
        time.sleep(RECHECK + 0.1)
        assert detail in users(there, token, status=403)["detail"]
        restore()
        time.sleep(RECHECK + 0.1)


def test_with_no_recheck_every_request_asks_the_database(database_url: str):
    here, there = worker(database_url, recheck=0), worker(database_url, recheck=0)
    try:
        old = open_workspace(here, "acme")
        users(there, old)
        here.workspaces.rotate_token("acme")
        users(there, old, status=401)
        assert len(there.scim.credentials) == 0
    finally:
        here.close()
        there.close()


def test_only_live_tokens_are_remembered_and_each_wrong_one_is_counted(workers):
    here, _ = workers
    open_workspace(here, "acme")
    for _ in range(3):
        users(here, "not-a-token", status=401)
    assert len(here.scim.credentials) == 0
    with transaction(here.database) as unit:
        counted = unit.connection.exec_driver_sql(
            "SELECT SUM(failures) FROM scim_auth_failures"
        ).scalar_one()
    assert counted == 3


def test_a_hostile_second_workspace_opens_only_its_own_through_the_memory(workers):
    here, _ = workers
    acme = open_workspace(here, "acme")
    evil = open_workspace(here, "evil")
    app = TestApp(here)
    for token in (acme, evil, acme, evil):  # both remembered, side by side
        users(here, token)
    app.post(
        "/scim/v2/Users",
        json.dumps(okta_user("ada@acme.test")),
        headers={"Authorization": f"Bearer {acme}", "Content-Type": "application/scim+json"},
        status=201,
    )
    assert users(here, evil)["totalResults"] == 0
    assert [u["userName"] for u in users(here, acme)["Resources"]] == ["ada@acme.test"]
    # A change to evil forgets every remembered token, acme's too: still the right workspace.
    here.workspaces.rotate_token("evil")
    assert users(here, acme)["totalResults"] == 1
    users(here, evil, status=401)


def test_the_memory_is_bounded(workers):
    here, _ = workers
    tokens = [open_workspace(here, f"w{n}") for n in range(3)]
    cache = CredentialCache(recheck=dt.timedelta(seconds=60), max_tokens=2)
    with transaction(here.database) as unit:
        for token in tokens * 2:
            credential = cache.find(unit, token)
            assert credential == find_credential(unit, token)
            assert len(cache) <= 2


def test_a_lookup_that_raced_a_change_in_this_worker_is_not_remembered(workers, monkeypatch):
    """A request whose lookup read the token before this worker rotated it, and finished after
    the rotation forgot every remembered token, must not put the old credential back: the
    worker that made the change refuses the old token at once, not within the bound."""
    here, _ = workers
    old = open_workspace(here, "acme")
    rotated: list[str] = []

    def lookup_overtaken_by_a_rotation(unit, digest):
        credential = find_credential_by_digest(unit, digest)  # read before the change committed
        if not rotated:  # meanwhile another thread of this worker rotates the token
            rotated.append(here.workspaces.rotate_token("acme"))
        return credential

    monkeypatch.setattr(credentials, "find_credential_by_digest", lookup_overtaken_by_a_rotation)
    users(here, old)  # the request in flight: it read first, so it is served
    monkeypatch.undo()
    assert rotated
    users(here, old, status=401)  # every later request: refused at once in this worker
    users(here, rotated[0])


class _CommitOutcomeLost:
    """The database as a change sees it when the connection drops as its COMMIT goes out: the
    change committed, and the caller gets an error all the same."""

    def __init__(self, database):
        self.database = database

    def run(self, work, **options):
        self.database.run(work, **options)
        raise StoreUnavailable("server closed the connection unexpectedly")


def test_a_change_whose_commit_raised_is_still_forgotten_in_this_worker(workers):
    here, _ = workers
    token = open_workspace(here, "acme")
    users(here, token)  # remembered
    database = here.workspaces.database
    here.workspaces.database = _CommitOutcomeLost(database)
    try:
        with pytest.raises(StoreUnavailable):
            here.workspaces.disable("acme", scim=True)
    finally:
        here.workspaces.database = database
    assert not here.workspaces.get("acme").scim_enabled  # it did commit
    assert "switched off" in users(here, token, status=403)["detail"]
