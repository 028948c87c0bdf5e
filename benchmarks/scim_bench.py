#!/usr/bin/env python
"""Compare our SCIM server with scim2-server (the peer) over real HTTP, in one run.

Not a test: it prints figures (and PASS/FAIL lines for the performance targets) and exits 0,
unless something failed to run. See benchmarks/README.md.

    .venv/bin/python benchmarks/scim_bench.py                 # N=1000 then 5N=5000 users
    .venv/bin/python benchmarks/scim_bench.py --n 200 --only peer
    .venv/bin/python benchmarks/scim_bench.py --json > bench.json   # report on stderr

Each SCIM server runs in its own process (this same script, with the hidden ``--_serve``
option), served by waitress (threads=4) on a loopback port, so the client's CPU and GIL never
mix with the server's. The client is one ``requests.Session`` per server (keep-alive), and the
timed requests are sequential and interleaved between the two servers (ours, peer, peer, ours,
...) so that drift on the machine hits both equally. Creates run in parallel (``--create-threads``
client threads, one session each) in slices of 100 users that alternate between the servers the
same way, after 50 untimed ones.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import io
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from common import (
    BENCH_PREFIX,
    ROOT,
    SECRET,
    WAITRESS_THREADS,
    BenchWrapper,
    add_json_option,
    cpu_seconds,
    fmt,
    host_app,
    postgres_cpu_seconds,
    publish,
    rss_kb,
    summarize,
    version_of,
)

SCIM_MEDIA = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PEER_TOKEN = "bench-peer-token"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Creates alternate between the servers in slices of this many users; the first
# CREATE_WARMUP of the first size are untimed.
CREATE_SLICE = 100
CREATE_WARMUP = 50

# Targets (printed as PASS/FAIL lines).
LOOKUP_RATIO_MAX = 1.0  # our filter lookup median / peer's, at N and at 5N
LOOKUP_GROWTH_MAX = 1.5  # our lookup median at 5N / at N
CREATES_RATIO_MIN = 1.0  # our creates per second / the peer's, at N and at 5N
# Our server keeps members in the database, so its RSS must not follow the member count. What
# may still grow: SQLite's page cache (default cache_size -2000 = 2 MiB per connection, and the
# pool keeps up to 5 connections + waitress's 4 threads => at most ~10 MiB once the file is big
# enough to fill it), SQLAlchemy's bounded statement cache, and allocator fragmentation from
# 4000 extra POSTs. 20 MB covers that with headroom, while the peer, which keeps one pydantic
# model per user (plus indexes), grows by tens of MB over the same 4000 users.
RSS_GROWTH_MAX_MB = 20.0


# ---------------------------------------------------------------------------------------------
# Server side (runs in a child process)
# ---------------------------------------------------------------------------------------------


def build_ours(port: int, database_url: str) -> tuple[Any, str]:
    from webwork_sso_middleware import SSOMiddleware

    mw = SSOMiddleware(
        host_app, database_url=database_url, secret_key=SECRET, base_url=f"http://127.0.0.1:{port}"
    )
    _info, token = mw.workspaces.create(
        "bench", name="Bench", plan="plus", owner_email="owner@example.com"
    )
    mw.workspaces.enable("bench", scim=True)
    return mw, token


def our_engine(mw: Any) -> Any:
    return mw.database.engine


def build_peer() -> tuple[Any, str]:
    from scim2_models import ScimProvider
    from scim2_server.memory import InMemoryStorage
    from scim2_server.service import ScimService
    from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
    from scim2_server.utils import (
        load_default_resource_types,
        load_default_schemas,
        load_default_service_provider_config,
    )

    # As the ``scim2-server`` command builds it, with one static bearer token (a set lookup),
    # so the client sends the same Authorization header to both servers.
    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    service = ScimService(provider, secret=SECRET)
    app = BearerTokenApplication(
        InMemoryStorage(), provider, service=service, bearer_tokens=[PEER_TOKEN]
    )
    return app, PEER_TOKEN


def serve(kind: str, database_url: str | None) -> None:
    """Child process: build one SCIM server, print its port and token as JSON, serve forever."""
    import logging

    import waitress

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    wrapper = BenchWrapper(strip="/scim" if kind == "peer" else "")
    server = waitress.create_server(
        wrapper,
        host="127.0.0.1",
        port=0,
        threads=WAITRESS_THREADS,
        ident="bench",
        connection_limit=200,
    )
    port = server.effective_port
    if kind == "ours":
        assert database_url
        wrapper.app, token = build_ours(port, database_url)
        wrapper.engine = our_engine(wrapper.app)
    else:
        wrapper.app, token = build_peer()
    gc.collect()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.stdout.write(json.dumps({"port": port, "token": token, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    server.run()


# ---------------------------------------------------------------------------------------------
# Client side
# ---------------------------------------------------------------------------------------------

GIVEN = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Katherine",
    "Linus",
    "Margaret",
    "Niklaus",
    "Radia",
    "Ken",
    "Sophie",
    "Tim",
    "Shafi",
    "Leslie",
]
FAMILY = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Backus",
    "Johnson",
    "Torvalds",
    "Hamilton",
    "Wirth",
    "Perlman",
    "Thompson",
    "Wilson",
    "Lee",
    "Goldwasser",
    "Lamport",
]


def okta_user(i: int) -> dict[str, Any]:
    """The body Okta sends to create a user (deterministic in ``i``)."""
    given, family = GIVEN[i % len(GIVEN)], FAMILY[(i // len(GIVEN)) % len(FAMILY)]
    email = f"{given.lower()}.{family.lower()}.{i:06d}@bench.example.com"
    return {
        "schemas": [USER_SCHEMA],
        "userName": email,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": f"{given} {family}",
        "externalId": f"00u{i:017x}",
        "active": True,
    }


class ServerDied(RuntimeError):
    pass


class ServerError(AssertionError):
    """A wrong or failed answer from one server: that server drops out, the other goes on."""

    def __init__(self, server: Server, message: str) -> None:
        super().__init__(f"{server.kind}: {message}")
        self.server = server


@dataclass
class Server:
    """A SCIM server running in a child process, and the client session that talks to it."""

    kind: str
    label: str
    database_url: str | None = None
    log_path: Path | None = None
    proc: subprocess.Popen[str] | None = None
    port: int = 0
    token: str = ""
    pid: int = 0
    session: Any = None
    user_ids: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/scim/v2"

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Accept": SCIM_MEDIA,
            "Content-Type": SCIM_MEDIA,
        }

    def start(self, workdir: Path, timeout: float = 60.0) -> None:
        import requests

        self.log_path = workdir / f"{self.kind}-server.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_serve", self.kind]
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        with open(self.log_path, "w") as log:  # the child keeps its own copy of the descriptor
            self.proc = proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=str(workdir)
            )
        assert proc.stdout is not None  # stdout=PIPE
        stdout = proc.stdout
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].strip():
            self.stop()
            raise ServerDied(f"{self.label} did not start:\n{self.log_tail()}")
        info = json.loads(line[0])
        self.port, self.token, self.pid = info["port"], info["token"], info["pid"]
        self.session = requests.Session()
        self.session.headers.update(self.headers())

    def log_tail(self, lines: int = 25) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return (
            "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
            or "(empty log)"
        )

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerError(self, f"server exited with {self.proc.returncode}")

    def rss_mb(self) -> dict[str, float]:
        """RSS after a gc.collect() in the server, read by the client from /proc."""
        r = self.session.get(f"http://127.0.0.1:{self.port}{BENCH_PREFIX}/gc", timeout=30)
        r.raise_for_status()
        kb = rss_kb(self.pid)
        return {"rss": kb["VmRSS"] / 1024, "hwm": kb["VmHWM"] / 1024}

    def control(self, action: str) -> dict[str, Any]:
        r = self.session.get(f"http://127.0.0.1:{self.port}{BENCH_PREFIX}{action}", timeout=60)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        if self.session is not None:
            self.session.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


class Creator:
    """POSTs users to one server from ``threads`` client threads, each with its own keep-alive
    session; kept for a whole run, so that slices of creates can alternate between servers."""

    def __init__(self, server: Server, threads: int) -> None:
        self.server = server
        self.pool = concurrent.futures.ThreadPoolExecutor(threads)
        self.local = threading.local()
        self.sessions: list[Any] = []
        self.lock = threading.Lock()
        self.created = 0
        self.seconds = 0.0
        # Each POST's time from send to parsed reply, as a client thread saw it.
        self.latencies: list[float] = []
        # CPU seconds spent while this creator's slices ran, read from /proc: the server's
        # process, the machine's PostgreSQL (None if not local) and this client process.
        self.on_postgres = (server.database_url or "").startswith("postgresql")
        self.cpu: dict[str, float | None] = {
            "server": 0.0,
            "postgres": 0.0 if self.on_postgres else None,
            "client": 0.0,
        }

    def _session(self) -> Any:
        import requests

        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = requests.Session()
            s.headers.update(self.server.headers())
            with self.lock:
                self.sessions.append(s)
        return s

    def _post(self, i: int) -> tuple[int, str]:
        server = self.server
        body = okta_user(i)
        session = self._session()
        start = time.perf_counter()
        r = session.post(f"{server.base}/Users", json=body, timeout=60)
        took = time.perf_counter() - start
        if r.status_code != 201:
            raise ServerError(server, f"POST /Users #{i} -> {r.status_code} {r.text[:300]}")
        data = r.json()
        if data.get("userName") != body["userName"] or not data.get("id"):
            raise ServerError(server, f"POST /Users #{i} answered {data!r:.300}")
        with self.lock:
            self.latencies.append(took)
        return i, data["id"]

    def _cpu_now(self) -> dict[str, float | None]:
        return {
            "server": cpu_seconds(self.server.pid),
            "postgres": (
                postgres_cpu_seconds(self.server.database_url or "") if self.on_postgres else None
            ),
            "client": time.process_time(),
        }

    def create(self, indexes: range) -> None:
        """POST ``indexes`` in parallel; the time they took counts towards :attr:`rate`, the
        CPU towards :meth:`cpu_ms_per_user`."""
        before = self._cpu_now()
        start = time.perf_counter()
        ids = dict(self.pool.map(self._post, indexes))
        self.seconds += time.perf_counter() - start
        after = self._cpu_now()
        for key, total in self.cpu.items():
            a, b = before[key], after[key]
            self.cpu[key] = None if total is None or a is None or b is None else total + b - a
        self.created += len(indexes)
        self.server.user_ids.extend(ids[i] for i in indexes)

    def cpu_ms_per_user(self) -> dict[str, float | None]:
        return {k: None if v is None else v * 1000 / self.created for k, v in self.cpu.items()}

    @property
    def rate(self) -> float:
        return self.created / self.seconds

    def close(self) -> None:
        self.pool.shutdown()
        for s in self.sessions:
            s.close()


def create_interleaved(
    servers: list[Server],
    indexes: range,
    threads: int,
    dropped: Callable[[Server, Exception], None],
) -> dict[str, dict[str, Any]]:
    """Create ``indexes`` on every server, in slices of CREATE_SLICE that alternate between the
    servers (ours, peer, peer, ours, ...), as the timed lookups do: the machine's drift over the
    seconds this takes then weighs on both alike. Returns, per server kind, users/s
    (``create_per_s``) and CPU ms per user (``create_cpu_ms``: server, postgres, client); a
    server whose create fails is reported through ``dropped`` and left out."""
    creators = [Creator(server, threads) for server in servers]
    try:
        slices = [
            range(first, min(first + CREATE_SLICE, indexes.stop))
            for first in range(indexes.start, indexes.stop, CREATE_SLICE)
        ]
        for n, part in enumerate(slices):
            for creator in creators if n % 2 == 0 else reversed(creators):
                if creator.server not in servers:
                    continue
                try:
                    creator.create(part)
                except Exception as exc:  # noqa: BLE001 - that server drops out, the other goes on
                    dropped(creator.server, exc)
        return {
            c.server.kind: {
                "create_per_s": c.rate,
                "create_cpu_ms": c.cpu_ms_per_user(),
                "create_latency": create_latency(c.latencies),
            }
            for c in creators
            if c.server in servers
        }
    finally:
        for creator in creators:
            creator.close()


def create_latency(seconds: list[float]) -> dict[str, float]:
    """Median, p99 and slowest create, in ms: with 4 creates in flight, how long one waits."""
    ms = sorted(s * 1000 for s in seconds)
    return {
        "median_ms": statistics.median(ms),
        "p99_ms": statistics.quantiles(ms, n=100, method="inclusive")[98],
        "max_ms": ms[-1],
    }


def lookup_url(server: Server, user_name: str) -> str:
    scim_filter = quote(f'userName eq "{user_name}"')
    return f"{server.base}/Users?filter={scim_filter}&startIndex=1&count=100"


def page_url(server: Server, start: int, count: int = 100) -> str:
    return f"{server.base}/Users?startIndex={start}&count={count}"


def timed_get(server: Server, url: str) -> tuple[float, Any]:
    import requests

    t0 = time.perf_counter()
    try:
        r = server.session.get(url, timeout=60)
        _ = r.content
    except requests.RequestException as exc:
        server.check_alive()
        raise ServerError(server, f"GET {url} failed: {exc}") from exc
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        server.check_alive()
        raise ServerError(server, f"GET {url} -> {r.status_code} {r.text[:300]}")
    return elapsed, r


def check_lookup(server: Server, r: Any, user_name: str, user_id: str) -> None:
    data = r.json()
    got = [u.get("userName") for u in data.get("Resources", [])]
    if (
        data.get("totalResults") != 1
        or got != [user_name]
        or data["Resources"][0].get("id") != user_id
    ):
        raise ServerError(
            server,
            f"filter userName eq {user_name!r} answered totalResults="
            f"{data.get('totalResults')} userNames={got[:3]}",
        )


def check_page(server: Server, r: Any, start: int, total: int, count: int = 100) -> None:
    data = r.json()
    resources = data.get("Resources", [])
    expected = min(count, total - start + 1)
    if (
        data.get("totalResults") != total
        or len(resources) != expected
        or data.get("startIndex") != start
    ):
        raise ServerError(
            server,
            f"page startIndex={start} answered totalResults={data.get('totalResults')} "
            f"startIndex={data.get('startIndex')} with {len(resources)} resources (expected "
            f"{expected} of {total})",
        )
    if not all(u.get("userName") and u.get("id") for u in resources):
        raise ServerError(server, f"page startIndex={start} holds a resource without userName/id")


def measure(
    servers: list[Server], user_names: list[str], args: argparse.Namespace, rng: random.Random
) -> dict[str, Any]:
    """Filter lookups, then 100-item pages, interleaved between the servers, the same targets for
    all."""
    total = len(user_names)
    picks = [rng.randrange(total) for _ in range(args.lookups)]
    warm_picks = [rng.randrange(total) for _ in range(args.warmup)]
    last_start = max(1, total - 99)
    starts = [rng.randint(1, last_start) for _ in range(args.pages)]
    warm_starts = [rng.randint(1, last_start) for _ in range(max(5, args.warmup // 3))]

    results: dict[str, Any] = {
        s.kind: {"lookup": [], "page": [], "lookup_bytes": [], "page_bytes": [], "closed": 0}
        for s in servers
    }

    def order(k: int) -> list[Server]:
        # ABBA: each server goes first half of the time.
        return servers if k % 2 == 0 else servers[::-1]

    def run(kind: str, items: list[int], timed: bool) -> None:
        for k, item in enumerate(items):
            for server in order(k):
                url = (
                    lookup_url(server, user_names[item])
                    if kind == "lookup"
                    else page_url(server, item)
                )
                elapsed, r = timed_get(server, url)
                if kind == "lookup":
                    check_lookup(server, r, user_names[item], server.user_ids[item])
                else:
                    check_page(server, r, item, total)
                if timed:
                    res = results[server.kind]
                    res[kind].append(elapsed)
                    res[f"{kind}_bytes"].append(len(r.content))
                    res["closed"] += r.headers.get("Connection", "").lower() == "close"

    run("lookup", warm_picks, timed=False)
    run("lookup", picks, timed=True)
    run("page", warm_starts, timed=False)
    run("page", starts, timed=True)

    out: dict[str, Any] = {}
    for server in servers:
        res = results[server.kind]
        out[server.kind] = {
            "members": total,
            "lookup": summarize(res["lookup"]),
            "page": summarize(res["page"]),
            "lookup_response_bytes": int(statistics.fmean(res["lookup_bytes"])),
            "page_response_bytes": int(statistics.fmean(res["page_bytes"])),
            "connection_close_responses": res["closed"],
        }
    return out


def db_size_mb(database_url: str | None) -> dict[str, float] | None:
    """Sizes of the SQLite database file and of its write-ahead log, in MB."""
    if not database_url or not database_url.startswith("sqlite:///"):
        return None
    path = Path(database_url[len("sqlite:///") :])
    wal = Path(str(path) + "-wal")

    def size(f: Path) -> float:
        return f.stat().st_size / 1024 / 1024 if f.exists() else 0.0

    return {"db": size(path), "wal": size(wal)}


def wipe_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    from webwork_sso_middleware.store.models import Base

    engine = create_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        # Migration 0013's trigger functions outlive the tables they served.
        for function in ("workspace_created()", "member_changed()", "group_changed()"):
            conn.execute(text(f"DROP FUNCTION IF EXISTS scim_totals_{function}"))
        conn.execute(text("DROP FUNCTION IF EXISTS scim_totals_add(integer, integer, integer)"))
    engine.dispose()


def analyze_postgres(url: str) -> None:
    """ANALYZE our tables, as autovacuum would in production (it is often off on test servers,
    and without statistics the planner answers ``userName eq`` by walking the created_at index)."""
    from sqlalchemy import create_engine, text

    from webwork_sso_middleware.store.models import Base

    engine = create_engine(url)
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            conn.execute(text(f'ANALYZE "{table.name}"'))
    engine.dispose()


def ours_version() -> str:
    init = ROOT / "webwork_sso_middleware" / "__init__.py"
    for line in init.read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "?"


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def get(report: dict[str, Any], kind: str, phase: str, *keys: str) -> Any:
    node: Any = report["phases"].get(phase, {}).get(kind)
    for key in keys:
        if node is None:
            return None
        node = node.get(key)
    return node


def server_rows(report: dict[str, Any], kind: str) -> list[tuple[str, Callable[[str], str]]]:
    """The rows of one server's table: a name, and the cell of each phase ("N", "5N")."""

    def cell(*keys: str, spec: str = ".2f") -> Callable[[str], str]:
        return lambda phase: fmt(get(report, kind, phase, *keys), spec)

    rows = [
        ("users", cell("members", spec="d")),
        ("create throughput (users/s)", cell("create_per_s", spec=".0f")),
        ("create CPU, server (ms/user)", cell("create_cpu_ms", "server")),
        ("create CPU, client (ms/user)", cell("create_cpu_ms", "client")),
        ("create latency median (ms)", cell("create_latency", "median_ms", spec=".1f")),
        ("create latency p99 (ms)", cell("create_latency", "p99_ms", spec=".1f")),
        ("create latency max (ms)", cell("create_latency", "max_ms", spec=".0f")),
        ("lookup median (ms)", cell("lookup", "median_ms")),
        ("lookup p90 (ms)", cell("lookup", "p90_ms")),
        ("page median (ms)", cell("page", "median_ms")),
        ("page p90 (ms)", cell("page", "p90_ms")),
        ("server RSS (MB)", cell("rss_mb", spec=".1f")),
        ("server peak RSS (MB)", cell("hwm_mb", spec=".1f")),
        ("lookup response (bytes)", cell("lookup_response_bytes", spec="d")),
        ("page response (bytes)", cell("page_response_bytes", spec="d")),
    ]
    if report["servers"][kind].get("on_postgres"):
        rows.insert(3, ("create CPU, PostgreSQL (ms/user)", cell("create_cpu_ms", "postgres")))
    if get(report, kind, "N", "db_mb") is not None:
        db, wal = cell("db_mb", "db", spec=".1f"), cell("db_mb", "wal", spec=".1f")
        rows.append(("SQLite file + WAL (MB)", lambda phase: f"{db(phase)}+{wal(phase)}"))
    return rows


def render(report: dict[str, Any]) -> str:
    out = io.StringIO()
    w = out.write
    cfg = report["config"]
    n, n5 = cfg["n"], cfg["n_large"]
    w(
        f"\nSCIM benchmark: {cfg['lookups']} filter lookups and {cfg['pages']} pages of 100 per "
        f"size, at N={n} then {n5} users\n"
    )
    w(
        f"  WSGI server: waitress {cfg['waitress']} (threads={WAITRESS_THREADS}), one process per "
        f"SCIM server; client: requests {cfg['requests']} Session (keep-alive), sequential timed "
        f"requests interleaved ABBA between servers, {cfg['warmup']} warm-up lookups per size\n"
    )
    w(
        f"  python {cfg['python']}, {cfg['cpus']} CPUs, load average {cfg['loadavg_start']:.2f} at "
        f"start, {fmt(cfg.get('loadavg_end'))} at end (other work on the machine skews N vs 5N; "
        f"ours/peer is interleaved); users created with {cfg['create_threads']} client threads, "
        f"{CREATE_SLICE} at a time, alternating ABBA between servers, the first "
        f"{CREATE_WARMUP} untimed\n"
    )
    if report.get("error"):
        w(f"  RUN FAILED: {report['error'][:600]}\n")
    for kind in report["servers"]:
        srv = report["servers"][kind]
        w(f"\n== {srv['label']} ==\n")
        if srv.get("error"):
            w(f"  ERROR: {srv['error'][:600]}\n")
            if not any(kind in report["phases"][p] for p in ("N", "5N")):
                continue
        w(f"  {srv['description']}\n")
        rows = server_rows(report, kind)
        w(f"  {'':30} {'empty':>10} {'N=' + str(n):>10} {'5N=' + str(n5):>10}\n")
        for name, cell in rows:
            empty = fmt(srv.get("rss_empty_mb"), ".1f") if name == "server RSS (MB)" else ""
            w(f"  {name:30} {empty:>10} {cell('N'):>10} {cell('5N'):>10}\n")

    r = report["ratios"]
    w("\n== Ratios ==\n")
    w(
        f"  ours/peer lookup median   at N: {fmt(r['lookup_ours_over_peer_N'])}   at 5N: "
        f"{fmt(r['lookup_ours_over_peer_5N'])}\n"
    )
    w(
        f"  ours/peer page median     at N: {fmt(r['page_ours_over_peer_N'])}   at 5N: "
        f"{fmt(r['page_ours_over_peer_5N'])}\n"
    )
    w(
        f"  ours/peer creates per s   at N: {fmt(r['creates_ours_over_peer_N'])}   at 5N: "
        f"{fmt(r['creates_ours_over_peer_5N'])}\n"
    )
    w(
        f"  ours/peer server-side CPU per create (PostgreSQL's included for ours)   at N: "
        f"{fmt(r['create_cpu_ours_over_peer_N'])}   at 5N: "
        f"{fmt(r['create_cpu_ours_over_peer_5N'])}\n"
    )
    w(
        f"  ours 5N/N lookup median: {fmt(r['ours_lookup_5N_over_N'])}   (peer: "
        f"{fmt(r['peer_lookup_5N_over_N'])})\n"
    )
    w(
        f"  ours 5N/N page median:   {fmt(r['ours_page_5N_over_N'])}   (peer: "
        f"{fmt(r['peer_page_5N_over_N'])})\n"
    )
    w(
        f"  RSS growth N->5N (MB): ours {fmt(r['ours_rss_growth_mb'], '+.1f')}   peer "
        f"{fmt(r['peer_rss_growth_mb'], '+.1f')}   (peer per extra user: "
        f"{fmt(r['peer_rss_kb_per_user'], '.1f')} kB)\n"
    )

    w("\n== Targets ==\n")
    for t in report["targets"]:
        w(f"  {t['status']:4}  {t['name']}: {t['detail']}\n")
    if report.get("profiles"):
        for kind, text in report["profiles"].items():
            what = "filter lookups" if kind.endswith("lookup") else "100-item pages"
            w(f"\n== Server-side cProfile at 5N: {kind.split()[0]}, {what} ==\n")
            w(text)
    return out.getvalue()


def compute(report: dict[str, Any]) -> None:
    def med(kind: str, phase: str, what: str) -> float | None:
        return get(report, kind, phase, what, "median_ms")

    def growth(kind: str) -> float | None:
        a, b = get(report, kind, "N", "rss_mb"), get(report, kind, "5N", "rss_mb")
        return None if a is None or b is None else b - a

    def create_cpu(kind: str, phase: str) -> float | None:
        """CPU ms per create on the server's side: its process, plus PostgreSQL's for ours
        (None when PostgreSQL's could not be read, so the figure never leaves it out)."""
        cpu = get(report, kind, phase, "create_cpu_ms") or {}
        parts: list[float | None] = [cpu.get("server")]
        if report["servers"].get(kind, {}).get("on_postgres"):  # SQLite runs in the server
            parts.append(cpu.get("postgres"))
        known = [p for p in parts if p is not None]
        return sum(known) if len(known) == len(parts) else None

    extra = report["config"]["n_large"] - report["config"]["n"]
    peer_growth = growth("peer")
    r = {
        "lookup_ours_over_peer_N": ratio(med("ours", "N", "lookup"), med("peer", "N", "lookup")),
        "lookup_ours_over_peer_5N": ratio(med("ours", "5N", "lookup"), med("peer", "5N", "lookup")),
        "page_ours_over_peer_N": ratio(med("ours", "N", "page"), med("peer", "N", "page")),
        "page_ours_over_peer_5N": ratio(med("ours", "5N", "page"), med("peer", "5N", "page")),
        "ours_lookup_5N_over_N": ratio(med("ours", "5N", "lookup"), med("ours", "N", "lookup")),
        "peer_lookup_5N_over_N": ratio(med("peer", "5N", "lookup"), med("peer", "N", "lookup")),
        "ours_page_5N_over_N": ratio(med("ours", "5N", "page"), med("ours", "N", "page")),
        "peer_page_5N_over_N": ratio(med("peer", "5N", "page"), med("peer", "N", "page")),
        # Creates per second, ours over the peer's (higher is better: the target is >= 1).
        "creates_ours_over_peer_N": ratio(
            get(report, "ours", "N", "create_per_s"), get(report, "peer", "N", "create_per_s")
        ),
        "creates_ours_over_peer_5N": ratio(
            get(report, "ours", "5N", "create_per_s"), get(report, "peer", "5N", "create_per_s")
        ),
        # Server-side CPU per create (PostgreSQL's included for ours), ours over the peer's.
        "create_cpu_ours_over_peer_N": ratio(create_cpu("ours", "N"), create_cpu("peer", "N")),
        "create_cpu_ours_over_peer_5N": ratio(create_cpu("ours", "5N"), create_cpu("peer", "5N")),
        "ours_rss_growth_mb": growth("ours"),
        "peer_rss_growth_mb": peer_growth,
        "peer_rss_kb_per_user": None
        if peer_growth is None or extra <= 0
        else peer_growth * 1024 / extra,
    }
    report["ratios"] = r

    def target(
        name: str, value: float | None, limit: float, detail: str, *, at_least: bool = False
    ) -> dict[str, Any]:
        met = value is not None and (value >= limit if at_least else value <= limit)
        status = "SKIP" if value is None else ("PASS" if met else "FAIL")
        return {"name": name, "status": status, "value": value, "limit": limit, "detail": detail}

    report["targets"] = [
        target(
            "lookup ours/peer at N",
            r["lookup_ours_over_peer_N"],
            LOOKUP_RATIO_MAX,
            f"median ratio {fmt(r['lookup_ours_over_peer_N'])} (must be <= {LOOKUP_RATIO_MAX})",
        ),
        target(
            "lookup ours/peer at 5N",
            r["lookup_ours_over_peer_5N"],
            LOOKUP_RATIO_MAX,
            f"median ratio {fmt(r['lookup_ours_over_peer_5N'])} (must be <= {LOOKUP_RATIO_MAX})",
        ),
        target(
            "our lookup 5N/N",
            r["ours_lookup_5N_over_N"],
            LOOKUP_GROWTH_MAX,
            f"median ratio {fmt(r['ours_lookup_5N_over_N'])} (must be <= {LOOKUP_GROWTH_MAX})",
        ),
        *(
            target(
                f"creates ours/peer at {phase}",
                r[f"creates_ours_over_peer_{phase}"],
                CREATES_RATIO_MIN,
                f"ratio {fmt(r[f'creates_ours_over_peer_{phase}'])} of creates per second "
                f"(must be >= {CREATES_RATIO_MIN}: each of ours is committed to the database)",
                at_least=True,
            )
            for phase in ("N", "5N")
        ),
        target(
            "our RSS growth N->5N",
            r["ours_rss_growth_mb"],
            RSS_GROWTH_MAX_MB,
            f"{fmt(r['ours_rss_growth_mb'], '+.1f')} MB (must be < {RSS_GROWTH_MAX_MB:.0f} MB: "
            "members live in the database; only SQLite page caches (~2 MiB per pooled "
            "connection), bounded SQLAlchemy caches and allocator noise may grow)",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare our SCIM server (webwork-sso-middleware) with scim2-server over "
        "loopback HTTP.",
        epilog=f"--database-url with PostgreSQL (e.g. {DEFAULT_PG_URL}) DROPS our tables and "
        "alembic_version in that database before the run.",
    )
    p.add_argument(
        "--n",
        type=int,
        default=1000,
        help="members at the first size; the second is 5N (default 1000)",
    )
    p.add_argument(
        "--lookups",
        type=int,
        default=300,
        help="timed filter lookups per size and server (default 300)",
    )
    p.add_argument(
        "--pages",
        type=int,
        default=100,
        help="timed 100-item pages per size and server (default 100)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=30,
        help="untimed lookups before timing, per size (default 30)",
    )
    p.add_argument(
        "--create-threads", type=int, default=4, help="client threads creating users (default 4)"
    )
    p.add_argument("--only", choices=("both", "ours", "peer"), default="both")
    p.add_argument(
        "--database-url",
        help="our database (default: a fresh SQLite file in a temp dir). "
        "PostgreSQL: our tables there are dropped first!",
    )
    p.add_argument(
        "--no-analyze",
        action="store_true",
        help="PostgreSQL only: do not ANALYZE our tables after creating the users (by default the "
        "bench does, as autovacuum would in production)",
    )
    p.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="server-side cProfile (and, for ours, SQL statements) of filter lookups and pages at "
        "5N: 'auto' (default) when our lookup is slower than the peer's",
    )
    p.add_argument("--profile-requests", type=int, default=200)
    p.add_argument("--seed", type=int, default=7)
    add_json_option(p)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (database, server logs)")
    p.add_argument("--_serve", choices=("ours", "peer"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--scale" in argv:  # 1,000 to 100,000 members, seeded by SQL: benchmarks/scim_scale.py
        import scim_scale

        return scim_scale.main([a for a in argv if a != "--scale"])
    args = parse_args(argv)
    if args._serve:
        serve(args._serve, args.database_url)
        return 0

    import requests
    import waitress  # noqa: F401  (fail early when missing)

    report_stream = sys.stderr if args.json == "-" else sys.stdout

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    n, n5 = args.n, 5 * args.n
    workdir = Path(tempfile.mkdtemp(prefix="scim-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir}/bench.db"
    failed = False

    servers: list[Server] = []
    if args.only in ("both", "ours"):
        servers.append(
            Server(
                "ours", f"ours: webwork-sso-middleware {ours_version()}", database_url=database_url
            )
        )
    if args.only in ("both", "peer"):
        servers.append(Server("peer", f"peer: scim2-server {version_of('scim2-server')}"))

    report: dict[str, Any] = {
        "config": {
            "n": n,
            "n_large": n5,
            "lookups": args.lookups,
            "pages": args.pages,
            "warmup": args.warmup,
            "create_threads": args.create_threads,
            "seed": args.seed,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg()[0],
            "waitress": version_of("waitress"),
            "waitress_threads": WAITRESS_THREADS,
            "requests": requests.__version__,
            "profile_requests": args.profile_requests,
            "postgres_analyze": database_url.startswith("postgresql") and not args.no_analyze,
        },
        "servers": {},
        "phases": {"N": {}, "5N": {}},
    }
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        say(
            f"WARNING: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: other work "
            "will add noise"
        )
    user_names = [okta_user(i)["userName"] for i in range(n5)]
    rng = random.Random(args.seed)
    started_at = time.perf_counter()
    try:
        running: list[Server] = []
        for server in servers:
            desc = (
                "in-memory InMemoryStorage, static bearer token, mounted at /scim/v2"
                if server.kind == "peer"
                else f"store {_redact(database_url)}"
            )
            if server.kind == "ours" and database_url.startswith("postgresql"):
                desc += (
                    " (ANALYZE after each batch of POSTs)"
                    if not args.no_analyze
                    else " (never ANALYZEd)"
                )
            entry: dict[str, Any] = {"label": server.label, "description": desc}
            report["servers"][server.kind] = entry
            entry["on_postgres"] = (server.database_url or "").startswith("postgresql")
            if server.kind == "ours" and database_url.startswith("postgresql"):
                say(
                    "WARNING: dropping webwork-sso tables and alembic_version in "
                    f"{_redact(database_url)}"
                )
                wipe_postgres(database_url)
            say(f"starting {server.label} ...")
            try:
                server.start(workdir)
                entry["rss_empty_mb"] = server.rss_mb()["rss"]
                running.append(server)
            except Exception as exc:  # noqa: BLE001 - reported, the other server still runs
                failed = True
                entry["error"] = f"{type(exc).__name__}: {exc}".strip()
                say(f"  {server.label} NOT RUN: {entry['error']}")
        if not running:
            raise ServerDied("no server started")

        def drop(server: Server, exc: BaseException) -> None:
            nonlocal failed
            failed = True
            report["servers"][server.kind]["error"] = f"{type(exc).__name__}: {exc}"
            say(
                f"ERROR, {server.kind} drops out: {type(exc).__name__}: {exc}\n"
                f"--- {server.kind} server log (tail) ---\n{server.log_tail()}"
            )
            running.remove(server)

        for phase, size, previous in (("N", n, 0), ("5N", n5, n)):
            say(
                f"[{time.perf_counter() - started_at:6.1f}s] creating users {previous}..{size - 1}"
                f" on {', '.join(server.kind for server in running)}, {CREATE_SLICE} at a time"
            )
            timed = range(previous, size)
            if previous == 0:
                # The first creates of a fresh server compile and prepare its statements and
                # open its connections: untimed, as the lookups' warm-up is.
                warm = min(CREATE_WARMUP, size // 2)
                create_interleaved(running, range(0, warm), args.create_threads, drop)
                timed = range(warm, size)
            rates = create_interleaved(running, timed, args.create_threads, drop)
            for kind, created in rates.items():
                report["phases"][phase].setdefault(kind, {}).update(created)
            if (
                any(server.kind == "ours" for server in running)
                and database_url.startswith("postgresql")
                and not args.no_analyze
            ):
                analyze_postgres(database_url)
            while running:
                say(f"[{time.perf_counter() - started_at:6.1f}s] measuring at {size} users ...")
                try:
                    for server in running:
                        server.control(
                            "/gc"
                        )  # the same clean start for both: no garbage left by the POSTs
                    measured = measure(
                        running, user_names[:size], args, random.Random(f"{args.seed}-{phase}")
                    )
                except ServerError as exc:
                    drop(exc.server, exc)
                    continue  # measure again without it, so the figures of the other stay clean
                break
            for server in running:
                entry = report["phases"][phase][server.kind]
                entry.update(measured[server.kind])
                mem = server.rss_mb()
                entry["rss_mb"], entry["hwm_mb"] = mem["rss"], mem["hwm"]
                entry["db_mb"] = db_size_mb(server.database_url)
            if not running:
                raise ServerDied("no server left")

        compute(report)
        slower = any(
            (report["ratios"][k] or 0) > LOOKUP_RATIO_MAX
            for k in ("lookup_ours_over_peer_N", "lookup_ours_over_peer_5N")
        )
        if args.profile == "always" or (args.profile == "auto" and slower):
            report["profiles"] = {}
            for server in running:
                for what in ("lookup", "page"):
                    say(
                        f"[{time.perf_counter() - started_at:6.1f}s] profiling {server.kind} "
                        f"{what}s ..."
                    )
                    server.control("/profile/start")
                    for _ in range(
                        args.profile_requests
                        if what == "lookup"
                        else max(1, args.profile_requests // 4)
                    ):
                        if what == "lookup":
                            k = rng.randrange(n5)
                            _, r = timed_get(server, lookup_url(server, user_names[k]))
                            check_lookup(server, r, user_names[k], server.user_ids[k])
                        else:
                            k = rng.randint(1, n5 - 99)
                            _, r = timed_get(server, page_url(server, k))
                            check_page(server, r, k, n5)
                    text = server.control("/profile/stop?top=25")["text"]
                    report["profiles"][f"{server.kind} {what}"] = text
        report["elapsed_s"] = time.perf_counter() - started_at
        report["config"]["loadavg_end"] = os.getloadavg()[0]
        say(f"[{report['elapsed_s']:6.1f}s] done")
    except Exception as exc:  # noqa: BLE001
        failed = True
        report["error"] = f"{type(exc).__name__}: {exc}"
        say(f"ERROR: {report['error']}")
        compute(report)
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    publish(render(report), report, report_stream, args.json)
    return 1 if failed else 0


def _redact(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url


if __name__ == "__main__":
    sys.exit(main())
