"""Many workers, one database: real server processes (tests/workers/worker.py under waitress)
sharing the test database. Three on PostgreSQL; on the SQLite run two processes on one file
(WAL lets them share it), so every property is shown for both backends.

Every worker has the same base_url, as behind a load balancer; a test picks the worker a
request reaches (cluster.py). Sessions are rechecked every second (session_recheck_seconds=1).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from ..conftest import POSTGRES_URL
from ..constants import SCIM_JSON
from ..saml.idp import TestIdP
from .cluster import (
    BASE_URL,
    KINDS,
    Cluster,
    MixedLoad,
    page_user,
    percentile,
    scim_user,
    setup_workspace,
    sp_initiated_login,
)
from .conftest import WORKERS

RECHECK = 1.0  # the cluster's session_recheck_seconds: the documented revocation bound
LOAD_SECONDS = float(os.environ.get("WEBWORK_SSO_LOAD_SECONDS") or (60 if POSTGRES_URL else 10))
CLIENT_THREADS = 8
_slugs = itertools.count(1)


class Workspace:
    def __init__(self, cluster: Cluster, idp: TestIdP, database_url: str) -> None:
        self.slug = f"cluster{next(_slugs)}"
        self.token = setup_workspace(database_url, self.slug, idp)
        self.cluster = cluster
        self.idp = idp
        self.scim = requests.Session()
        self.scim.headers.update(
            {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM_JSON}
        )

    def email(self, name: str) -> str:
        return f"{name}@{self.slug}.test"

    def scim_url(self, worker: int, path: str) -> str:
        return self.cluster.url(worker, "/scim/v2" + path)

    def create(self, worker: int, email: str) -> dict[str, Any]:
        response = self.scim.post(
            self.scim_url(worker, "/Users"), data=json.dumps(scim_user(email))
        )
        assert response.status_code == 201, response.text
        return response.json()

    def patch(
        self, worker: int, member_id: str, operations: list[dict[str, Any]], **headers: str
    ) -> requests.Response:
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": operations,
        }
        return self.scim.patch(
            self.scim_url(worker, f"/Users/{member_id}"), data=json.dumps(body), headers=headers
        )

    def idp_response(self, email: str, **options: Any) -> str:
        return self.idp.response(
            sp_entity_id=f"{BASE_URL}/saml/{self.slug}/metadata",
            acs_url=f"{BASE_URL}/saml/{self.slug}/acs",
            email=email,
            **options,
        )

    def post_acs(
        self, worker: int, fields: dict[str, str], browser: requests.Session | None = None
    ) -> requests.Response:
        return (browser or requests).post(
            self.cluster.url(worker, f"/saml/{self.slug}/acs"), data=fields, allow_redirects=False
        )

    def view(self, browser: requests.Session, worker: int, path: str = "/") -> str:
        response = browser.get(self.cluster.url(worker, path))
        assert response.status_code == 200, response.text
        assert f";worker={worker};" in response.text  # that very process answered
        return page_user(response)


@pytest.fixture
def workspace(
    cluster: Cluster, cluster_idp: TestIdP, shared_database_url: str
) -> Iterator[Workspace]:
    cluster.check_alive()
    ws = Workspace(cluster, cluster_idp, shared_database_url)
    yield ws
    ws.scim.close()
    cluster.check_alive()


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..count-1) in threads released at the same moment; results in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(k: int) -> None:
        barrier.wait(10)
        try:
            results[k] = work(k)
        except Exception as exc:  # noqa: BLE001 - reported by the caller's assertions
            results[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# -- the workers -----------------------------------------------------------------------------------


def test_the_workers_are_separate_processes_on_one_database(cluster: Cluster):
    assert len(cluster) == WORKERS >= 2
    pids = {w.pid for w in cluster.workers}
    assert len(pids) == WORKERS and os.getpid() not in pids
    for worker in cluster.workers:
        page = requests.get(cluster.url(worker.index, "/hello"))
        assert page.text == f"user=;worker={worker.index};path=/hello;roles="


# -- sign-in across workers ------------------------------------------------------------------------


def test_sp_initiated_login_started_on_one_worker_completes_on_another(
    workspace: Workspace, cluster: Cluster
):
    browser = requests.Session()
    email = workspace.email("erin")
    trip = sp_initiated_login(
        cluster,
        browser,
        workspace.slug,
        email,
        start_on=0,
        finish_on=1,
        next_path="/reports?month=11",
    )
    assert trip.acs.status_code == 303, trip.acs.text
    assert trip.acs.headers["Location"].endswith("/reports?month=11")  # worker 0's next, on 1
    request = workspace.idp.requests[-1]
    assert request.acs_url == f"{BASE_URL}/saml/{workspace.slug}/acs"
    for worker in range(len(cluster)):
        assert workspace.view(browser, worker) == email
    # The pending request (in the cookie worker 0 set, answered on worker 1) is used up on
    # every worker, even for a copy of the cookie from before it was answered.
    again = workspace.idp_response(email, in_response_to=request.id)
    for worker in range(len(cluster)):
        copied = requests.Session()
        copied.cookies.update(trip.start.cookies)
        refused = workspace.post_acs(worker, {"SAMLResponse": again}, copied)
        assert refused.status_code == 400 and "unknown_in_response_to" in refused.text


def test_a_replayed_assertion_is_rejected_by_every_worker(workspace: Workspace, cluster: Cluster):
    email = workspace.email("fay")
    fields = {"SAMLResponse": workspace.idp_response(email)}  # IdP-initiated
    assert workspace.post_acs(0, fields).status_code == 303
    for worker in range(len(cluster)):
        replay = workspace.post_acs(worker, fields)
        assert replay.status_code == 400 and "replayed" in replay.text, (worker, replay.text)
        assert "Set-Cookie" not in replay.headers

    # An SP-initiated response, auto-posted to worker 1, then replayed to every worker: from
    # another browser it answers no request of that browser; with a copy of the binding cookie
    # from before, its assertion ID is in the replay cache.
    trip = sp_initiated_login(
        cluster, requests.Session(), workspace.slug, email, start_on=0, finish_on=1
    )
    assert trip.acs.status_code == 303
    for worker in range(len(cluster)):
        replay = workspace.post_acs(worker, trip.fields)
        assert replay.status_code == 400 and "request_not_bound" in replay.text, (
            worker,
            replay.text,
        )
        assert "Set-Cookie" not in replay.headers
        copied = requests.Session()
        copied.cookies.update(trip.start.cookies)
        replay = workspace.post_acs(worker, trip.fields, copied)
        assert replay.status_code == 400 and "replayed" in replay.text, (worker, replay.text)
        assert "Set-Cookie" not in replay.headers

    # The same response reaching every worker at the same moment signs in exactly once.
    for _ in range(5):
        fields = {"SAMLResponse": workspace.idp_response(email)}
        statuses = together(len(cluster), lambda k, f=fields: workspace.post_acs(k, f).status_code)  # type: ignore[misc]
        assert sorted(statuses) == [303] + [400] * (len(cluster) - 1), statuses


# -- revocation across workers ---------------------------------------------------------------------


def test_scim_deactivation_ends_the_session_on_every_worker_within_the_bound(
    workspace: Workspace, cluster: Cluster
):
    email = workspace.email("gus")
    member = workspace.create(0, email)
    browser = requests.Session()
    trip = sp_initiated_login(cluster, browser, workspace.slug, email, start_on=1, finish_on=0)
    assert trip.acs.status_code == 303
    # Alive on every worker, and each has just cached that answer (trusted up to RECHECK).
    for worker in range(len(cluster)):
        assert workspace.view(browser, worker) == email

    sent = time.monotonic()
    off = workspace.patch(0, member["id"], [{"op": "replace", "value": {"active": False}}])
    assert off.status_code == 200 and off.json()["active"] is False
    # The worker that made the change stops honouring the session at once.
    assert workspace.view(browser, 0) == ""
    ended: dict[int, float] = {}
    while len(ended) < len(cluster) - 1 and time.monotonic() - sent < RECHECK + 3:
        for worker in range(1, len(cluster)):
            if worker not in ended and workspace.view(browser, worker) == "":
                ended[worker] = time.monotonic() - sent
        time.sleep(0.02)
    assert sorted(ended) == list(range(1, len(cluster))), f"still signed in after 4 s: {ended}"
    # Counted from before the PATCH was sent, so the commit came later still.
    assert max(ended.values()) <= RECHECK + 0.5, ended

    # Reactivation gives the account back, not the old session, on any worker.
    on = workspace.patch(
        len(cluster) - 1, member["id"], [{"op": "replace", "value": {"active": True}}]
    )
    assert on.status_code == 200
    time.sleep(RECHECK + 0.2)
    for worker in range(len(cluster)):
        assert workspace.view(browser, worker) == ""


def page_roles(text: str) -> str:
    """The member's roles as worker.py's page shows them (``roles=`` part)."""
    return text.rsplit(";roles=", 1)[1]


def test_a_role_change_reaches_every_worker_within_the_bound(
    workspace: Workspace, cluster: Cluster, shared_database_url: str
):
    from webwork_sso_middleware.idp_metadata.workspaces import Workspaces
    from webwork_sso_middleware.store import Database

    email = workspace.email("rhea")
    member = workspace.create(0, email)
    browser = requests.Session()
    trip = sp_initiated_login(cluster, browser, workspace.slug, email, start_on=0, finish_on=1)
    assert trip.acs.status_code == 303

    def roles_seen(worker: int) -> str:
        response = browser.get(workspace.cluster.url(worker, "/"))
        assert f";worker={worker};" in response.text
        return page_roles(response.text)

    assert {roles_seen(w) for w in range(len(cluster))} == {"viewer"}  # the default role

    def wait_for(expected: str, since: float) -> dict[int, float]:
        seen: dict[int, float] = {}
        while len(seen) < len(cluster) and time.monotonic() - since < RECHECK + 3:
            for worker in range(len(cluster)):
                if worker not in seen and roles_seen(worker) == expected:
                    seen[worker] = time.monotonic() - since
            time.sleep(0.02)
        assert sorted(seen) == list(range(len(cluster))), f"{expected!r} not everywhere: {seen}"
        return seen

    # A SCIM group the owner maps to admin, made through one worker...
    database = Database(shared_database_url, auto_migrate=False)
    try:
        Workspaces(database).map_role(
            workspace.slug, "Admins", "admin", declared=("admin", "member", "viewer"), actor="test"
        )
    finally:
        database.dispose()
    sent = time.monotonic()
    group = workspace.scim.post(
        workspace.scim_url(0, "/Groups"),
        data=json.dumps(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Admins",
                "members": [{"value": member["id"]}],
            }
        ),
    )
    assert group.status_code == 201, group.text
    # ...reaches every worker within the recheck bound, as a deactivation does.
    assert max(wait_for("admin", sent).values()) <= RECHECK + 0.5

    # Taking the member out of the group takes the role away everywhere, as fast.
    sent = time.monotonic()
    removed = workspace.scim.patch(
        workspace.scim_url(len(cluster) - 1, f"/Groups/{group.json()['id']}"),
        data=json.dumps(
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "remove", "path": f'members[value eq "{member["id"]}"]'}],
            }
        ),
    )
    assert removed.status_code in (200, 204), removed.text
    assert max(wait_for("viewer", sent).values()) <= RECHECK + 0.5


def test_an_idps_logout_request_at_one_worker_ends_the_session_on_every_worker_within_the_bound(
    workspace: Workspace, cluster: Cluster
):
    email = workspace.email("ines")
    browser = requests.Session()
    trip = sp_initiated_login(cluster, browser, workspace.slug, email, start_on=1, finish_on=0)
    assert trip.acs.status_code == 303
    for worker in range(len(cluster)):  # alive everywhere, and cached (trusted up to RECHECK)
        assert workspace.view(browser, worker) == email

    slo_url = f"{BASE_URL}/saml/{workspace.slug}/slo"
    url = workspace.idp.logout_redirect(destination=slo_url, name_id=email)
    sent = time.monotonic()
    answer = requests.get(cluster.route(url, 0), allow_redirects=False)  # no cookie: cross-site
    assert answer.status_code == 302, answer.text
    assert answer.headers["Location"].startswith(workspace.idp.slo_url + "?")
    # The worker that received the LogoutRequest stops honouring the session at once.
    assert workspace.view(browser, 0) == ""
    ended: dict[int, float] = {}
    while len(ended) < len(cluster) - 1 and time.monotonic() - sent < RECHECK + 3:
        for worker in range(1, len(cluster)):
            if worker not in ended and workspace.view(browser, worker) == "":
                ended[worker] = time.monotonic() - sent
        time.sleep(0.02)
    assert sorted(ended) == list(range(1, len(cluster))), f"still signed in after 4 s: {ended}"
    assert max(ended.values()) <= RECHECK + 0.5, ended
    # The same LogoutRequest at any other worker is a replay.
    for worker in range(1, len(cluster)):
        again = requests.get(cluster.route(url, worker), allow_redirects=False)
        assert again.status_code == 400 and "slo_replayed" in again.text, (worker, again.text)


# -- concurrent SCIM writes across workers --------------------------------------------------------


def test_parallel_patches_from_many_clients_lose_no_update(workspace: Workspace, cluster: Cluster):
    email = workspace.email("hana")
    member = workspace.create(0, email)
    url = lambda worker: workspace.scim_url(worker, f"/Users/{member['id']}")  # noqa: E731

    def add_email(k: int) -> int:
        with requests.Session() as client:  # a client of its own, as separate IdP connections
            client.headers.update(workspace.scim.headers)
            body = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {
                        "op": "add",
                        "path": "emails",
                        "value": [{"value": f"extra{k}@hana.test", "type": "other"}],
                    }
                ],
            }
            return client.patch(url(k % len(cluster)), data=json.dumps(body)).status_code

    assert together(CLIENT_THREADS, add_email) == [200] * CLIENT_THREADS
    final = requests.get(url(0), headers=workspace.scim.headers)
    values = {e["value"] for e in final.json()["emails"]}
    assert values == {email} | {f"extra{k}@hana.test" for k in range(CLIENT_THREADS)}
    assert final.headers["ETag"] == f'W/"{1 + CLIENT_THREADS}"'  # every update counted once

    # Clients that use ETags: read, then PATCH with If-Match; a 412 means read again and retry.
    conflicts = [0] * CLIENT_THREADS

    def add_phone(k: int) -> int:
        with requests.Session() as client:
            client.headers.update(workspace.scim.headers)
            for _ in range(100):
                worker = (k + conflicts[k]) % len(cluster)
                etag = client.get(url(worker)).headers["ETag"]
                body = {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [
                        {
                            "op": "add",
                            "path": "phoneNumbers",
                            "value": [{"value": f"+1555000{k:04d}", "type": "work"}],
                        }
                    ],
                }
                status = client.patch(
                    url((worker + 1) % len(cluster)),
                    data=json.dumps(body),
                    headers={"If-Match": etag},
                ).status_code
                if status != 412:
                    return status
                conflicts[k] += 1
            return 412

    assert together(CLIENT_THREADS, add_phone) == [200] * CLIENT_THREADS
    final = requests.get(url(1), headers=workspace.scim.headers).json()
    assert {p["value"] for p in final["phoneNumbers"]} == {
        f"+1555000{k:04d}" for k in range(CLIENT_THREADS)
    }
    assert final["meta"]["version"] == f'W/"{1 + 2 * CLIENT_THREADS}"'
    print(f"\nIf-Match: {sum(conflicts)} stale writes refused with 412 and retried")


def test_parallel_creates_of_one_user_name_make_exactly_one(workspace: Workspace, cluster: Cluster):
    for round_ in range(3):
        name = workspace.email(f"dup{round_}")

        def create(k: int, name: str = name) -> requests.Response:
            # userName is case-insensitive: the clients do not even agree on its case.
            body = scim_user(name.upper() if k % 2 else name)
            return requests.post(
                workspace.scim_url(k % len(cluster), "/Users"),
                data=json.dumps(body),
                headers=workspace.scim.headers,
            )

        responses = together(CLIENT_THREADS, create)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * (CLIENT_THREADS - 1), statuses
        assert all(
            r.json().get("scimType") == "uniqueness" for r in responses if r.status_code == 409
        )
        found = requests.get(
            workspace.scim_url(round_ % len(cluster), "/Users"),
            headers=workspace.scim.headers,
            params={"filter": f'userName eq "{name}"'},
        ).json()
        assert found["totalResults"] == 1


# -- a sustained mixed load ----------------------------------------------------------------------


def database_connections(database_url: str) -> tuple[int, int]:
    """(connections to the test database other than this one, of them idle in a transaction)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%') "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            ).one()
            return int(row[0]), int(row[1])
    finally:
        engine.dispose()


def test_a_sustained_mixed_load_gives_no_errors_and_leaks_no_connections(
    workspace: Workspace, cluster: Cluster, shared_database_url: str
):
    load = MixedLoad(cluster, workspace.slug, workspace.token, threads=4, browsers=3)
    try:
        load.prepare()
        fds_before = [w.open_fds() for w in cluster.workers]
        result = load.run(LOAD_SECONDS)
    finally:
        load.close()
    assert result.errors == [], result.errors[:10]
    assert all(result.latencies[kind] for kind in KINDS), {
        k: len(v) for k, v in result.latencies.items()
    }
    cluster.check_alive()
    assert cluster.logged_errors() == []

    time.sleep(0.5)  # let the last responses' connections go back to their pools
    fds_after = [w.open_fds() for w in cluster.workers]
    # A pool keeps at most pool_size (5) connections once the load is over; per connection a
    # worker holds one socket (PostgreSQL), or the database, WAL and shared-memory files (SQLite).
    for before, after in zip(fds_before, fds_after, strict=True):
        assert after <= before + 5 * 3, (fds_before, fds_after)
    if POSTGRES_URL:
        connections, idle_in_transaction = database_connections(shared_database_url)
        assert connections <= len(cluster) * 5, connections
        assert idle_in_transaction == 0

    rate = result.requests / result.seconds
    p99 = {k: round(percentile(v, 99) * 1000) for k, v in result.latencies.items()}
    print(
        f"\n{result.requests} requests in {result.seconds:.0f} s over {len(cluster)} workers "
        f"({rate:.0f}/s), p99 ms {p99}, open fds {fds_before} -> {fds_after}"
    )
