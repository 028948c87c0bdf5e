#!/usr/bin/env python
"""A sustained mixed load (SCIM writes, SP-initiated logins, signed-in page views) on SQLite with
one server process and on PostgreSQL with four, in one run: requests/s, p50 and p99 per request
type and overall.

Not a test: it prints figures and exits 0, unless something failed to run or a response was
wrong (then 1). See benchmarks/README.md.

    .venv/bin/python benchmarks/load_bench.py                      # 30 s per backend
    .venv/bin/python benchmarks/load_bench.py --duration 60 --client-threads 8
    .venv/bin/python benchmarks/load_bench.py --json > load.json   # report on stderr
    .venv/bin/python benchmarks/load_bench.py --backends sqlite

The servers and the load are tests/workers/'s: each server is tests/workers/worker.py (the
middleware under waitress) in its own process, all with one base_url as behind a load
balancer; the client threads (this process) pick a server at random for every request, and the
IdP (tests/saml/idp.py's TestIdP) is served from this process too. For PostgreSQL the script
creates a database of its own on the server of ``--postgres-url`` and drops it afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

# Importing common first also makes the checkout's tests/ importable.
from common import add_json_option, publish
from tests.saml.idp import TestIdP
from tests.workers.cluster import (
    KINDS,
    Cluster,
    MixedLoad,
    locked,
    percentile,
    setup_workspace,
)

DEFAULT_POSTGRES = (
    os.environ.get("WEBWORK_SSO_TEST_DATABASE_URL")
    or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SLUG = "loadbench"
WARMUP_SECONDS = 3.0


def serve_idp(workdir: Path) -> tuple[TestIdP, Any]:
    from werkzeug.serving import make_server

    app: list[Any] = []
    server = make_server("127.0.0.1", 0, locked(lambda e, s: app[0](e, s)), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    idp = TestIdP(f"http://127.0.0.1:{server.server_port}", workdir, name="Bench IdP")
    app.append(idp.wsgi_app)
    return idp, server


class PostgresDatabase:
    """A throwaway database on the given server, dropped at the end."""

    def __init__(self, server_url: str) -> None:
        from sqlalchemy import create_engine, make_url, text

        self.admin = create_engine(make_url(server_url), isolation_level="AUTOCOMMIT")
        self.name = f"webwork_sso_load_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = (
            make_url(server_url).set(database=self.name).render_as_string(hide_password=False)
        )

    def drop(self) -> None:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summarize(latencies: list[float], seconds: float) -> dict[str, Any]:
    if not latencies:
        return {"count": 0, "per_second": 0.0, "p50_ms": None, "p99_ms": None}
    return {
        "count": len(latencies),
        "per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


def run_backend(
    backend: str, args: argparse.Namespace, idp: TestIdP, workdir: Path
) -> dict[str, Any]:
    from webwork_sso_middleware.store import Database

    postgres = None
    if backend == "sqlite":
        url, workers = f"sqlite:///{workdir / 'load.db'}", args.sqlite_workers
    else:
        postgres = PostgresDatabase(args.postgres_url)
        url, workers = postgres.url, args.postgres_workers
    cluster = None
    try:
        Database(url).dispose()  # migrate once, before the servers start
        token = setup_workspace(url, SLUG, idp)
        cluster = Cluster.start(
            url,
            workers,
            workdir / f"logs-{backend}",
            recheck=args.recheck,
            threads=args.server_threads,
        )
        load = MixedLoad(
            cluster,
            SLUG,
            token,
            threads=args.client_threads,
            browsers=args.browsers,
            seed=args.seed,
        )
        try:
            load.prepare()
            warmup = load.run(WARMUP_SECONDS)
            client_cpu = time.process_time()
            server_cpu = sum(cpu_seconds(w.pid) for w in cluster.workers)
            result = load.run(args.duration)
            client_cpu = time.process_time() - client_cpu
            server_cpu = sum(cpu_seconds(w.pid) for w in cluster.workers) - server_cpu
        finally:
            load.close()
        cluster.check_alive()
        logged = cluster.logged_errors()
    finally:
        if cluster is not None:
            cluster.stop()
        if postgres is not None:
            postgres.drop()
    every = [v for kind in KINDS for v in result.latencies[kind]]
    return {
        "backend": backend,
        "workers": workers,
        "seconds": round(result.seconds, 2),
        "kinds": {kind: summarize(result.latencies[kind], result.seconds) for kind in KINDS},
        "overall": summarize(every, result.seconds),
        # CPU cores kept busy on average: this process (clients and IdP), the servers together
        # (the database server's own CPU is not counted).
        "cpu_cores": {
            "client": round(client_cpu / result.seconds, 2),
            "servers": round(server_cpu / result.seconds, 2),
        },
        "errors": warmup.errors + result.errors,
        "logged_errors": logged,
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"load_bench: {report['duration']:g} s per backend, {report['client_threads']} client "
        f"threads, waitress threads={report['server_threads']} per server, "
        f"session_recheck_seconds={report['recheck']:g}",
        f"machine: {report['machine']['cpus']} CPUs, load average {report['machine']['load']}, "
        f"Python {report['machine']['python']}",
        "",
        "| backend | servers | request | count | req/s | p50 ms | p99 ms |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for run in report["runs"]:
        rows = [*((kind, run["kinds"][kind]) for kind in KINDS), ("**all**", run["overall"])]
        for kind, s in rows:
            lines.append(
                f"| {run['backend']} | {run['workers']} | {kind} | {s['count']} | "
                f"{s['per_second']:.1f} | {_ms(s['p50_ms'])} | {_ms(s['p99_ms'])} |"
            )
    for run in report["runs"]:
        problems = run["errors"] + run["logged_errors"]
        status = "no error responses" if not problems else f"{len(problems)} ERRORS"
        cpu = run["cpu_cores"]
        lines.append(
            f"\n{run['backend']}: {status}; CPU cores busy: client+IdP {cpu['client']}, "
            f"servers {cpu['servers']}"
        )
        lines.extend(f"  {p}" for p in problems[:20])
    lines.append(
        "\nlogin_start is GET /saml/<slug>/login (to the IdP); acs is the IdP's POST to "
        "/saml/<slug>/acs on another random server; page_view is a signed-in GET of "
        "the host app. The IdP's own step is not timed."
    )
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=30.0, help="timed seconds per backend (30)")
    p.add_argument(
        "--backends",
        default="sqlite,postgresql",
        help="comma-separated: sqlite, postgresql (default both)",
    )
    p.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES,
        help="a PostgreSQL server URL; a throwaway database is made on it "
        f"(default $WEBWORK_SSO_TEST_DATABASE_URL or {DEFAULT_POSTGRES})",
    )
    p.add_argument("--sqlite-workers", type=int, default=1)
    p.add_argument("--postgres-workers", type=int, default=4)
    p.add_argument("--server-threads", type=int, default=4, help="waitress threads per server")
    p.add_argument("--client-threads", type=int, default=4)
    p.add_argument("--browsers", type=int, default=3, help="signed-in browsers per client thread")
    p.add_argument("--recheck", type=float, default=2.0, help="session_recheck_seconds (2)")
    p.add_argument("--seed", type=int, default=7)
    add_json_option(p)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (SQLite file, logs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the IdP's request log
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - {"sqlite", "postgresql"}:
        print(f"unknown backend in {args.backends!r}", file=sys.stderr)
        return 2
    out = sys.stderr if args.json == "-" else sys.stdout
    workdir = Path(tempfile.mkdtemp(prefix="load_bench_"))
    idp, idp_server = serve_idp(workdir / "idp")
    report: dict[str, Any] = {
        "duration": args.duration,
        "client_threads": args.client_threads,
        "server_threads": args.server_threads,
        "recheck": args.recheck,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        },
        "runs": [],
    }
    failed = False
    try:
        for backend in backends:
            print(
                f"== {backend}: preparing, {WARMUP_SECONDS:g} s warm-up, "
                f"{args.duration:g} s timed ...",
                file=out,
                flush=True,
            )
            try:
                run = run_backend(backend, args, idp, workdir)
            except Exception as exc:  # noqa: BLE001 - a server did not start, no database
                print(f"{backend}: failed to run: {type(exc).__name__}: {exc}", file=out)
                failed = True
                continue
            report["runs"].append(run)
            failed = failed or bool(run["errors"] or run["logged_errors"])
    finally:
        idp_server.shutdown()
        if args.keep:
            print(f"kept {workdir}", file=out)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    publish(render(report), report, out, args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
