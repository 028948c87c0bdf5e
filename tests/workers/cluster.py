"""Several real server processes on one database, and the mixed load the tests and
benchmarks/load_bench.py drive through them.

    cluster = Cluster.start(database_url, workers=3)   # tests/workers/worker.py, each its own process
    cluster.url(1, "/scim/v2/Users")                    # worker 1, directly
    cluster.route(form_action, 2)                       # a URL built from BASE_URL, sent to worker 2
    cluster.stop()

Every worker has the same ``base_url`` (BASE_URL), as behind a load balancer: the ACS checks
Destination and Recipient against it, the SP entity ID is built from it, and a client chooses
the worker a request reaches by sending it to that worker's port (``route``). Cookies are
host-wide, so a browser's session cookie from one worker rides along to every other.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from ..constants import SCIM_JSON
from ..saml.idp import TestIdP, autopost_form

WORKER_SCRIPT = Path(__file__).resolve().parent / "worker.py"
BASE_URL = "http://sso.cluster.test"  # what the IdP and SCIM clients are told; never resolved
SECRET = "workers-secret-padded-to-thirty-two-bytes-at-least"


@dataclasses.dataclass
class Worker:
    index: int
    process: subprocess.Popen[str]
    port: int
    pid: int
    log: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


class Cluster:
    def __init__(self, database_url: str, workers: list[Worker]) -> None:
        self.database_url = database_url
        self.workers = workers

    @classmethod
    def start(
        cls,
        database_url: str,
        workers: int,
        logdir: Path,
        *,
        recheck: float = 1.0,
        threads: int = 6,
        extra_args: list[str] | None = None,
        timeout: float = 90.0,
    ) -> Cluster:
        """Start the workers in parallel; return once each has printed its port."""
        logdir.mkdir(parents=True, exist_ok=True)
        started: list[tuple[int, subprocess.Popen[str], Path]] = []
        for index in range(workers):
            log = logdir / f"worker{index}.log"
            command = [
                sys.executable,
                str(WORKER_SCRIPT),
                "--database-url",
                database_url,
                "--base-url",
                BASE_URL,
                "--secret-key",
                SECRET,
                "--index",
                str(index),
                "--recheck",
                str(recheck),
                "--threads",
                str(threads),
                *(extra_args or []),
            ]
            with log.open("w") as stderr:
                process = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1
                )
            started.append((index, process, log))
        cluster = cls(database_url, [])
        try:
            for index, process, log in started:
                line = _readline(process, timeout)
                if not line:
                    raise RuntimeError(f"worker {index} did not start:\n{log.read_text()}")
                info = json.loads(line)
                cluster.workers.append(Worker(index, process, info["port"], info["pid"], log))
        except BaseException:
            for _, process, _ in started:
                process.kill()
                process.wait(10)
            raise
        return cluster

    def __len__(self) -> int:
        return len(self.workers)

    def url(self, index: int, path: str) -> str:
        return self.workers[index].origin + path

    def route(self, url: str, index: int) -> str:
        """A URL the middleware built from BASE_URL (an ACS URL, a SCIM location), sent to
        worker ``index``: what a load balancer does when it picks that worker."""
        if not url.startswith(BASE_URL):
            raise ValueError(f"{url} is not under {BASE_URL}")
        return self.workers[index].origin + url[len(BASE_URL) :]

    def check_alive(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is not None:
                raise AssertionError(
                    f"worker {worker.index} exited with "
                    f"{worker.process.returncode}:\n{worker.log_tail()}"
                )

    def logged_errors(self) -> list[str]:
        """Lines the workers logged at ERROR (a 500 is always logged so) or with a traceback."""
        found = []
        for worker in self.workers:
            for line in worker.log.read_text(errors="replace").splitlines():
                if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback"):
                    found.append(f"worker{worker.index}: {line}")
        return found

    def kill(self, index: int) -> None:
        """SIGKILL: the process dies where it stands, as in a crash or an OOM kill."""
        worker = self.workers[index]
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(10)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.terminate()
        for worker in self.workers:
            try:
                worker.process.wait(10)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(10)
            if worker.process.stdout:
                worker.process.stdout.close()


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    """The process's next stdout line, or "" when it exits or stays silent past ``timeout``."""
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.append(process.stdout.readline()),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    reader.join(timeout)
    return lines[0].strip() if lines else ""


def wait_for_line(process: subprocess.Popen[str], expected: str, timeout: float) -> None:
    line = _readline(process, timeout)
    if line != expected:
        raise AssertionError(f"expected {expected!r} from the worker, got {line!r}")


# -- a workspace, an IdP, sign-in ----------------------------------------------------------------


def locked(app: Callable[..., Any]) -> Callable[..., Any]:
    """One request at a time: pysaml2's IdP ``Server`` keeps unguarded state."""
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Any) -> Any:
        with lock:
            return list(app(environ, start_response))

    return serve


def setup_workspace(database_url: str, slug: str, idp: TestIdP) -> str:
    """Workspace ``slug`` (plan plus, SCIM and SSO on, trusting ``idp``); its SCIM token."""
    from webwork_sso_middleware.idp_metadata.workspaces import Workspaces
    from webwork_sso_middleware.store import Database

    database = Database(database_url, auto_migrate=False)
    try:
        workspaces = Workspaces(database)
        _, token = workspaces.create(
            slug, name=slug.title(), plan="plus", owner_email=f"owner@{slug}.test"
        )
        workspaces.enable(slug, scim=True, sso=True)
        workspaces.verify_domain(slug, f"{slug}.test", by_operator=True)
        workspaces.set_idp(slug, metadata_xml=idp.metadata_xml())
    finally:
        database.dispose()
    idp.sp_config(f"{BASE_URL}/saml/{slug}/metadata", f"{BASE_URL}/saml/{slug}/acs")
    return token


@dataclasses.dataclass
class LoginTrip:
    start: requests.Response  # GET /saml/<slug>/login on the first worker
    acs: requests.Response  # the IdP's auto-posted response on the second
    fields: dict[str, str]  # what the IdP's page posted (SAMLResponse, RelayState)
    seconds: tuple[float, float]  # how long each of our two requests took


def sp_initiated_login(
    cluster: Cluster,
    browser: requests.Session,
    slug: str,
    email: str,
    *,
    start_on: int,
    finish_on: int,
    next_path: str = "/",
) -> LoginTrip:
    """A browser's SP-initiated sign-in: our login URL on one worker, the IdP, then the ACS
    on another worker (as a load balancer might send the IdP's POST)."""
    t0 = time.perf_counter()
    start = browser.get(
        cluster.url(start_on, f"/saml/{slug}/login"),
        params={"next": next_path},
        allow_redirects=False,
        timeout=30,
    )
    t1 = time.perf_counter()
    if start.status_code != 302:
        raise AssertionError(
            f"login start on worker {start_on}: {start.status_code} {start.text[:300]}"
        )
    at_idp = browser.get(start.headers["Location"], params={"user": email}, timeout=30)
    if at_idp.status_code != 200:
        raise AssertionError(f"IdP: {at_idp.status_code} {at_idp.text[:300]}")
    action, fields = autopost_form(at_idp.text)
    t2 = time.perf_counter()
    acs = browser.post(
        cluster.route(action, finish_on), data=fields, allow_redirects=False, timeout=30
    )
    t3 = time.perf_counter()
    return LoginTrip(start, acs, fields, (t1 - t0, t3 - t2))


def page_user(response: requests.Response) -> str:
    """The member the host app saw (``user=`` of worker.py's page)."""
    return response.text.split(";", 1)[0].removeprefix("user=")


def scim_user(email: str, **extra: Any) -> dict[str, Any]:
    local = email.split("@")[0]
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email,
        "name": {"givenName": local.title(), "familyName": "Load"},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": f"{local.title()} Load",
        "active": True,
    }
    body.update(extra)
    return body


# -- the mixed load -------------------------------------------------------------------------------

# Request types, timed one by one (the IdP's step of a login is not ours and is not timed).
KINDS = ("scim_create", "scim_patch", "scim_get", "login_start", "acs", "page_view")


@dataclasses.dataclass
class LoadResult:
    seconds: float
    latencies: dict[str, list[float]]
    errors: list[str]

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())


class MixedLoad:
    """SCIM writes, SP-initiated logins across workers and signed-in page views, from a few
    client threads, every answer checked.

    Each client thread has its own SCIM client, its own browsers (signed in at ``prepare``)
    and its own provisioned members; every request goes to a worker chosen at random. Per
    iteration a thread picks: a page view (60%), a SCIM write or read (30%: create, PATCH of
    a profile field, GET), a full login (10%, two timed requests: our login start and the ACS).
    """

    def __init__(
        self,
        cluster: Cluster,
        slug: str,
        token: str,
        *,
        threads: int = 4,
        browsers: int = 3,
        seed: int = 7,
    ) -> None:
        self.cluster = cluster
        self.slug = slug
        self.token = token
        self.threads = threads
        self.browsers = browsers
        self.seed = seed
        self.run_id = uuid.uuid4().hex[:6]
        self._clients: list[_Client] = []

    def prepare(self) -> None:
        """Provision members and sign browsers in (untimed; also warms every worker up)."""
        for t in range(self.threads):
            client = _Client(self, t, random.Random(self.seed * 1000 + t))
            client.prepare()
            self._clients.append(client)

    def run(self, seconds: float, *, max_requests_per_thread: int = 1_000_000) -> LoadResult:
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        runners = [
            threading.Thread(target=c.loop, args=(deadline, max_requests_per_thread), daemon=True)
            for c in self._clients
        ]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join(seconds + 120)
        elapsed = time.monotonic() - started
        latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
        errors: list[str] = []
        for client in self._clients:
            for kind, values in client.latencies.items():
                latencies[kind].extend(values)
            errors.extend(client.errors)
            client.latencies = collections.defaultdict(list)
            client.errors = []
        return LoadResult(elapsed, latencies, errors)

    def close(self) -> None:
        for client in self._clients:
            client.close()


class _Client:
    def __init__(self, load: MixedLoad, number: int, rng: random.Random) -> None:
        self.load = load
        self.cluster = load.cluster
        self.number = number
        self.rng = rng
        self.scim = requests.Session()
        self.scim.headers.update(
            {"Authorization": f"Bearer {load.token}", "Content-Type": SCIM_JSON}
        )
        self.members: list[tuple[str, str]] = []  # (id, email) provisioned by this client
        self.browsers: list[tuple[requests.Session, str]] = []  # (browser, signed-in email)
        self.latencies: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: list[str] = []
        self.created = 0

    def worker(self) -> int:
        return self.rng.randrange(len(self.cluster))

    def email(self) -> str:
        self.created += 1
        return f"u{self.load.run_id}t{self.number}n{self.created}@{self.load.slug}.test"

    def prepare(self) -> None:
        for _ in range(max(2, self.load.browsers)):
            self.create()
        for i in range(self.load.browsers):
            browser = requests.Session()
            email = self.members[i][1]
            self.login(browser, email)
            self.browsers.append((browser, email))
        if self.errors:
            raise AssertionError("the load could not be prepared: " + "; ".join(self.errors[:5]))
        self.latencies.clear()

    def loop(self, deadline: float, max_requests: int) -> None:
        done = 0
        while time.monotonic() < deadline and done < max_requests:
            roll = self.rng.random()
            try:
                if roll < 0.6:
                    self.page_view()
                elif roll < 0.7:
                    self.create()
                elif roll < 0.8:
                    self.patch()
                elif roll < 0.9:
                    self.get()
                else:
                    browser, email = self.rng.choice(self.browsers)
                    self.login(browser, self.rng.choice(self.members)[1])
            except Exception as exc:  # noqa: BLE001 - a refused connection, a timeout: an error like any other
                self.errors.append(f"{type(exc).__name__}: {exc}")
            done += 1

    def timed(self, kind: str, call: Callable[[], requests.Response]) -> requests.Response:
        t0 = time.perf_counter()
        response = call()
        self.latencies[kind].append(time.perf_counter() - t0)
        return response

    def expect(self, kind: str, response: requests.Response, status: int, worker: int) -> bool:
        if response.status_code != status:
            self.errors.append(
                f"{kind} on worker {worker}: {response.status_code} {response.text[:200]!r}"
            )
            return False
        return True

    def create(self) -> None:
        email, w = self.email(), self.worker()
        response = self.timed(
            "scim_create",
            lambda: self.scim.post(
                self.cluster.url(w, "/scim/v2/Users"), data=json.dumps(scim_user(email)), timeout=30
            ),
        )
        if self.expect("scim_create", response, 201, w):
            self.members.append((response.json()["id"], email))

    def patch(self) -> None:
        member_id, _ = self.rng.choice(self.members)
        w = self.worker()
        title = f"title {self.rng.randrange(10**6)}"
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": title}],
        }
        response = self.timed(
            "scim_patch",
            lambda: self.scim.patch(
                self.cluster.url(w, f"/scim/v2/Users/{member_id}"),
                data=json.dumps(body),
                timeout=30,
            ),
        )
        if self.expect("scim_patch", response, 200, w) and response.json().get("title") != title:
            self.errors.append(f"scim_patch on worker {w}: title not applied")

    def get(self) -> None:
        member_id, email = self.rng.choice(self.members)
        w = self.worker()
        response = self.timed(
            "scim_get",
            lambda: self.scim.get(self.cluster.url(w, f"/scim/v2/Users/{member_id}"), timeout=30),
        )
        if self.expect("scim_get", response, 200, w) and response.json()["userName"] != email:
            self.errors.append(f"scim_get on worker {w}: wrong user")

    def login(self, browser: requests.Session, email: str) -> None:
        a, b = self.worker(), self.worker()
        trip = sp_initiated_login(
            self.cluster, browser, self.load.slug, email, start_on=a, finish_on=b
        )
        self.latencies["login_start"].append(trip.seconds[0])
        self.latencies["acs"].append(trip.seconds[1])
        if self.expect("acs", trip.acs, 303, b):
            for i, (known, _) in enumerate(self.browsers):
                if known is browser:
                    self.browsers[i] = (browser, email)

    def page_view(self) -> None:
        browser, email = self.rng.choice(self.browsers)
        w = self.worker()
        response = self.timed(
            "page_view",
            lambda: browser.get(
                self.cluster.url(w, f"/timesheets/{self.rng.randrange(100)}"), timeout=30
            ),
        )
        if self.expect("page_view", response, 200, w) and page_user(response) != email:
            self.errors.append(
                f"page_view on worker {w}: saw {page_user(response)!r}, expected {email!r}"
            )

    def close(self) -> None:
        self.scim.close()
        for browser, _ in self.browsers:
            browser.close()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]
