"""What the benchmarks share: the checkout on sys.path, the server wrapper with its control
endpoints, the profile report, formatting and publishing of the results.

Every benchmark is a script run by path (``python benchmarks/acs_bench.py``), so Python puts
benchmarks/ first on sys.path and ``from common import ...`` finds this module. Importing it puts
the repository root on sys.path too (the one place that does): the benchmarks then import
``webwork_sso_middleware`` from this checkout and the test helpers they reuse as the package they
are (``from tests.saml.idp import TestIdP``), as the test suite itself does. Import it before any
of those.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The sites' signing key (the middleware wants at least 32 bytes).
SECRET = "bench-secret-padded-to-thirty-two-bytes-at-least"
WAITRESS_THREADS = 4  # every benchmark's server runs waitress with this many threads
BENCH_PREFIX = "/__bench__"  # BenchWrapper's control endpoints


def rss_kb(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB, from /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def _run_ns(path: str) -> int:
    """Nanoseconds a task has run, the first field of its /proc schedstat."""
    with open(path) as f:
        return int(f.read().split()[0])


def cpu_seconds(pid: int | str) -> float | None:
    """CPU a process has used, summed over its live threads, from /proc's schedstat
    (nanoseconds; /proc/<pid>/stat counts 10 ms ticks, too coarse for a slice of creates).
    None where there is no /proc."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    for task in tasks:
        try:
            total += _run_ns(f"/proc/{pid}/task/{task}/schedstat")
        except OSError:  # the thread ended meanwhile
            continue
    return total / 1e9


def _is_local_host(host: str | None) -> bool:
    return host in (None, "", "localhost", "127.0.0.1", "::1") or (host or "").startswith("/")


def postgres_cpu_seconds(url: str) -> float | None:
    """CPU used by this machine's PostgreSQL for the database of ``url``: the backends connected
    to it, plus the server's own processes, which work for every database (the postmaster, the
    WAL writer, the checkpointer...; other work on the same PostgreSQL server therefore skews
    the figure). Backends that have exited are not counted (the benchmark's servers keep their
    pooled connections). None for a server on another host, or when no PostgreSQL process is
    visible (no /proc).

    PostgreSQL titles a backend "postgres: [cluster: ]<user> <database> <client> <state>", the
    client being "host(port)" or "[local]", and its own processes "postgres: [cluster: ]<role>"
    (an autovacuum worker adds its database). The benchmark's own processes never count: only
    a command's first word is read, and theirs is Python."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host")  # ?host=/run/postgresql: a socket
    if not _is_local_host(host if isinstance(host, str | None) else host[0]):
        return None
    database = parsed.database or parsed.username or ""  # libpq's default: the user's name
    total, seen = 0, False
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().split(b"\0", 1)[0].decode(errors="replace")
            if title.startswith("postgres: "):
                words = title.split()
                client = next(
                    (i for i, w in enumerate(words) if w == "[local]" or w.endswith(")")), None
                )
                if client is not None:  # a backend: the database is the word before its client
                    if words[client - 1] != database:
                        continue
                elif "autovacuum worker" in title and words[-1] != database:
                    continue
            elif not title.endswith("/postgres"):
                continue
            total += _run_ns(f"/proc/{pid}/schedstat")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        seen = True
    return total / 1e9 if seen else None


class BenchWrapper:
    """The WSGI app each child serves: the SCIM app, plus a few control endpoints.

    ``/__bench__/gc`` collects garbage (so RSS is read after it), ``/__bench__/profile/start``
    and ``/__bench__/profile/stop`` profile every request in between with cProfile (one profile
    per request, merged). ``strip`` is a path prefix moved to SCRIPT_NAME (the peer is mounted
    at ``/scim`` so both servers answer at ``/scim/v2``). Everything else goes to ``app``.
    """

    def __init__(self, strip: str = "") -> None:
        self.app: Callable[..., Iterable[bytes]] | None = None
        self.strip = strip
        self.profiling = False
        self.profiles: list[Any] = []
        self.lock = threading.Lock()
        # Our SQLAlchemy engine, to count the SQL statements of the profiled requests.
        self.engine: Any = None
        self.statements: dict[str, list[float]] = {}  # statement -> [count, seconds]

    def _before_statement(self, conn: Any, _cursor: Any, _statement: str, *_args: Any) -> None:
        conn.info.setdefault("bench_t0", []).append(time.perf_counter())

    def _after_statement(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        elapsed = time.perf_counter() - conn.info["bench_t0"].pop()
        key = " ".join(statement.split())
        with self.lock:
            entry = self.statements.setdefault(key, [0, 0.0])
            entry[0] += 1
            entry[1] += elapsed

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(BENCH_PREFIX):
            return self.control(path[len(BENCH_PREFIX) :], environ, start_response)
        if self.strip and (path == self.strip or path.startswith(self.strip + "/")):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.strip
            environ["PATH_INFO"] = path[len(self.strip) :]
        assert self.app is not None
        if not self.profiling:
            return self.app(environ, start_response)
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
        try:
            result = self.app(environ, start_response)
            try:
                body = [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            profile.disable()
        with self.lock:
            self.profiles.append(profile)
        return body

    def control(
        self, action: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        payload: dict[str, Any] = {}
        if action == "/gc":
            gc.collect()
            payload = {"pid": os.getpid(), **rss_kb()}
        elif action == "/profile/start":
            with self.lock:
                self.profiles = []
                self.statements = {}
            if self.engine is not None:
                from sqlalchemy import event

                event.listen(self.engine, "before_cursor_execute", self._before_statement)
                event.listen(self.engine, "after_cursor_execute", self._after_statement)
            self.profiling = True
        elif action == "/profile/stop":
            self.profiling = False
            if self.engine is not None:
                from sqlalchemy import event

                event.remove(self.engine, "before_cursor_execute", self._before_statement)
                event.remove(self.engine, "after_cursor_execute", self._after_statement)
            query = dict(
                p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p
            )
            with self.lock:
                profiles, self.profiles = self.profiles, []
                statements, self.statements = self.statements, {}
            text = (
                profile_report(profiles, statements, int(query.get("top", "25")))
                if profiles
                else ""
            )
            payload = {"requests": len(profiles), "text": text}
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"unknown bench action"]
        body = json.dumps(payload).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


def _package_of(filename: str) -> str:
    """Which package a profiled function lives in, for the time-by-package summary."""
    if filename == "~":
        return "(C builtins: sqlite3, json, pydantic-core, ...)"
    parts = Path(filename).parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return rest[0].removesuffix(".py") if rest else filename
    if "webwork_sso_middleware" in parts:
        i = parts.index("webwork_sso_middleware")
        return "/".join(parts[i : i + 2 if len(parts) > i + 2 else i + 1])
    if "benchmarks" in parts:
        return "benchmarks (harness)"
    return "stdlib"


def profile_report(profiles: list[Any], statements: dict[str, list[float]], top: int) -> str:
    import pstats

    requests_ = len(profiles)
    stats = pstats.Stats(*profiles, stream=io.StringIO())
    by_package: dict[str, float] = {}
    total = 0.0
    for (filename, _line, _func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[_package_of(filename)] = by_package.get(_package_of(filename), 0.0) + tottime
        total += tottime
    per_request_ms = total / requests_ * 1000
    text = (
        f"--- own time by package ({requests_} requests, {per_request_ms:.2f} ms/request under "
        "the profiler) ---\n"
    )
    for package, seconds in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]:
        share, ms = seconds / total * 100, seconds / requests_ * 1000
        text += f"  {share:5.1f}%  {ms:6.3f} ms/req  {package}\n"
    if statements:
        count = sum(c for c, _ in statements.values())
        seconds = sum(t for _, t in statements.values())
        text += (
            f"--- SQL statements: {count / requests_:.1f} per request, "
            f"{seconds / requests_ * 1000:.2f} ms/request in cursor.execute (wall time, profiler "
            "included) ---\n"
        )
        for statement, (n, t) in sorted(statements.items(), key=lambda kv: -kv[1][1]):
            short = statement[:130] + ("..." if len(statement) > 130 else "")
            text += f"  {n / requests_:4.1f}x {t / n * 1000:7.3f} ms  {short}\n"
    for sort in ("cumulative", "tottime"):
        stream = io.StringIO()
        pstats.Stats(*profiles, stream=stream).strip_dirs().sort_stats(sort).print_stats(top)
        text += f"--- sorted by {sort} ---\n" + _trim_pstats(stream.getvalue())
    return text


def _trim_pstats(text: str) -> str:
    """Keep the pstats table, without its preamble."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("ncalls"):
            return "\n".join(lines[i - 1 : i] + lines[i:]).rstrip() + "\n"
    return text


def host_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The host app behind the middleware: a fixed 4-byte page."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"host"]


def summarize(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    deciles = statistics.quantiles(ms, n=10, method="inclusive")
    return {
        "median_ms": statistics.median(ms),
        "p90_ms": deciles[8],
        "mean_ms": statistics.fmean(ms),
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "samples": len(ms),
    }


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json [FILE]``, which ``publish`` reads."""
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the numbers as JSON to FILE, or to stdout (then the report goes to stderr)",
    )


def publish(text: str, report: dict[str, Any], stream: Any, json_target: str | None) -> None:
    """Print the report; with --json, also the numbers ("-": on stdout, else to that file)."""
    print(text, file=stream, flush=True)
    if json_target:
        data = json.dumps(report, indent=2, default=str)
        if json_target == "-":
            print(data)
        else:
            Path(json_target).write_text(data + "\n")
