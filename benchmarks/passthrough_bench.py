#!/usr/bin/env python
"""What a signed-in request costs on its way through the middleware to the host app.

Not a test: it prints figures (and a PASS/FAIL line for the target) and exits 0, unless something
failed to run. See benchmarks/README.md.

    .venv/bin/python benchmarks/passthrough_bench.py             # 20000 calls per variant
    .venv/bin/python benchmarks/passthrough_bench.py --iterations 50000 --profile always
    .venv/bin/python benchmarks/passthrough_bench.py --json > passthrough.json   # report on stderr

Everything runs in this one process and every request is a plain WSGI call (no HTTP server:
the figure is our cost, not a server's). Interleaved, in batches (timeit-style; garbage
collection stays on):

  (a) the bare host app;
  (b) the middleware in front of it, the request carrying a valid session cookie, with a long
      session recheck interval (300 s, the most the settings allow), so the steady state is
      measured: the session's check is cached and no SQL is issued (counted on the engine, must
      be 0);
  (c) one ``itsdangerous.URLSafeTimedSerializer(secret).loads(value)`` of a cookie of the same
      payload and about the same size: the yardstick;
  (d) as (b) with the default recheck interval (2 s): one query per session and process every 2 s
      of wall time (the timed phase lasts a few seconds, so only a few of the calls pay it);
  (e) as (b) with a recheck interval of 0 (ask the database on every request): what a request
      pays when its session's cached check has expired (information only).

The session is real: made by an in-process sign-in (POST to the ACS) with a response from
tests/saml/idp.py's ``TestIdP``. The host app checks ``REMOTE_USER`` on every call.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Importing common first also makes the checkout's tests/ importable.
from common import SECRET, add_json_option, fmt, profile_report, publish, version_of
from tests.saml.idp import TestIdP

SLUG = "bench"
BASE_URL = "http://127.0.0.1:8000"
EMAIL = "ada.lovelace@bench.example.com"
LONG_RECHECK_S = 300.0  # the longest the settings allow; the timed run takes far less
DEFAULT_RECHECK_S = 2.0  # Settings.session_recheck_seconds

OVERHEAD_RATIO_MAX = 1.5  # (b) - (a), in itsdangerous loads (c): issue 11's target

BODY = [b"hello from the host app"]
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY[0])))]


class Host:
    """The host app: counts the calls that arrive with the expected REMOTE_USER."""

    def __init__(self, expected: str) -> None:
        self.expected = expected
        self.identified = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("REMOTE_USER") == self.expected:
            self.identified += 1
        start_response("200 OK", HEADERS)
        return BODY


class Browser:
    """start_response for the timed calls; keeps a refreshed session cookie, as a browser would."""

    def __init__(self) -> None:
        self.refreshed: list[str] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        for name, value in headers:
            if name == "Set-Cookie":
                self.refreshed.append(value)
        return _write

    def take(self) -> str | None:
        value = self.refreshed[-1] if self.refreshed else None
        self.refreshed.clear()
        return value


def _write(_data: bytes) -> None:
    return None


def sign_in(mw: Any, workdir: Path) -> str:
    """A workspace trusting a bench IdP, one sign-in through the ACS; returns the cookie value."""
    from werkzeug.test import EnvironBuilder

    idp = TestIdP("http://127.0.0.1:9/idp-never-contacted", workdir / "idp", name="Bench IdP")
    mw.workspaces.create(SLUG, name="Bench", plan="plus", owner_email="owner@bench.example.com")
    mw.workspaces.enable(SLUG, sso=True)
    # The IdP may sign in (and create) members only in a domain the workspace verified.
    mw.workspaces.verify_domain(SLUG, "bench.example.com", by_operator=True)
    mw.workspaces.set_idp(SLUG, metadata_xml=idp.metadata_xml())
    saml_response = idp.response(
        sp_entity_id=f"{BASE_URL}/saml/{SLUG}/metadata",
        acs_url=f"{BASE_URL}/saml/{SLUG}/acs",
        email=EMAIL,
    )
    builder = EnvironBuilder(
        path=f"/saml/{SLUG}/acs",
        method="POST",
        base_url=BASE_URL,
        data={"SAMLResponse": saml_response},
    )
    environ = builder.get_environ()
    builder.close()
    seen: list[Any] = []
    body = b"".join(
        mw(environ, lambda status, headers, exc_info=None: seen.append((status, headers)))
    )
    status, headers = seen[0]
    cookies = [v for k, v in headers if k.lower() == "set-cookie"]
    name = mw.settings.session_cookie_name
    if not status.startswith("303") or not cookies or not cookies[0].startswith(name + "="):
        raise RuntimeError(f"sign-in failed: {status} {body[:300]!r}")
    return cookies[0].split(";", 1)[0].split("=", 1)[1]


def request_environ(cookie_name: str, cookie_value: str) -> dict[str, Any]:
    """A browser's GET of a host-app page, with the session cookie (built once, copied per call)."""
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(
        path="/timesheets/2024-w07",
        base_url=BASE_URL,
        headers={
            "Cookie": f"{cookie_name}={cookie_value}",
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "Accept-Language": "en-GB,en;q=0.7",
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
        },
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    environ.pop("wsgi.input", None)  # a GET: no body; every call gets a fresh copy anyway
    environ["wsgi.input"] = io.BytesIO(b"")
    return environ


class SqlCounter:
    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.count = 0
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, *_args: Any) -> None:
        self.count += 1

    def remove(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._before)


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def summarize(samples: list[float]) -> dict[str, float]:
    us = sorted(s * 1e6 for s in samples)
    return {
        "median_us": statistics.median(us),
        "mean_us": statistics.fmean(us),
        "min_us": us[0],
        "p90_us": statistics.quantiles(us, n=10, method="inclusive")[8],
        "batches": len(us),
    }


def render(report: dict[str, Any]) -> str:
    out = io.StringIO()
    w = out.write
    cfg = report["config"]
    w(
        f"\nPass-through benchmark: {cfg['rounds']} interleaved rounds x {cfg['batch']} calls per "
        f"variant ({cfg['rounds'] * cfg['batch']} calls each), in-process WSGI calls, no HTTP "
        "server\n"
    )
    w(
        f"  python {cfg['python']}, {cfg['cpus']} CPUs, load average {cfg['loadavg_start']:.2f} at "
        f"start, {fmt(cfg.get('loadavg_end'))} at end; itsdangerous {cfg['itsdangerous']}, "
        f"werkzeug {cfg['werkzeug']}, SQLAlchemy {cfg['sqlalchemy']}; SQLite; gc on; per-call time "
        "= batch time / batch size, figures are medians over batches\n"
    )
    if cfg.get("cookie_bytes"):
        w(
            f"  session cookie value {cfg['cookie_bytes']} bytes (ours, URLSafeSerializer + "
            f"HMAC-SHA256); yardstick cookie {cfg['timed_cookie_bytes']} bytes "
            "(URLSafeTimedSerializer defaults, same payload)\n"
        )
    if report.get("error"):
        w(f"  RUN FAILED: {report['error'][:800]}\n")
    res = report.get("results", {})
    labels = {
        "bare": "(a) bare host app",
        "ours": f"(b) middleware, signed in, recheck {LONG_RECHECK_S:.0f} s",
        "loads": "(c) one URLSafeTimedSerializer.loads",
        "ours_default": f"(d) middleware, signed in, recheck {DEFAULT_RECHECK_S:g} s (default)",
        "ours_miss": "(e) middleware, signed in, recheck 0 (query every call)",
        "ours_loads": "    our own serializer's loads (info)",
    }
    if res:
        w(f"\n  {'':55} {'median us':>10} {'p90 us':>8} {'mean us':>8} {'min us':>8}\n")
        for key, label in labels.items():
            s = res.get(key)
            if s:
                w(
                    f"  {label:55} {s['median_us']:10.2f} {s['p90_us']:8.2f} {s['mean_us']:8.2f} "
                    f"{s['min_us']:8.2f}\n"
                )
    r = report.get("ratios", {})
    if r:
        w(
            f"\n  overhead (b)-(a), median of per-round differences: {fmt(r['overhead_us'])} us "
            f"= {fmt(r['overhead_in_loads'])} loads (c)\n"
        )
        w(
            f"  overhead (d)-(a), default recheck interval:        {fmt(r['overhead_default_us'])} "
            f"us = {fmt(r['overhead_default_in_loads'])} loads (mean "
            f"{fmt(r['overhead_default_mean_us'])} us: the batches with a recheck query)\n"
        )
        w(
            f"  overhead (e)-(a), a request whose check expired:   {fmt(r['overhead_miss_us'])} us "
            f"= {fmt(r['overhead_miss_in_loads'])} loads (one session query, SQLite)\n"
        )
    checks = report.get("checks", {})
    if checks:
        w(
            "\n  REMOTE_USER seen by the host app: (b) "
            f"{checks['identified_ours']}/{checks['calls_ours']} calls, (d) "
            f"{checks['identified_default']}/{checks['calls_default']}, (e) "
            f"{checks['identified_miss']}/{checks['calls_miss']}, (a) "
            f"{checks['identified_bare']}/{checks['calls_bare']} (must be none)\n"
        )
        w(
            f"  SQL statements during the timed calls: (b) {checks['sql_ours']} (recheck "
            f"{LONG_RECHECK_S:.0f} s: must be 0); (d) {checks['sql_default']} over a timed phase "
            f"of {checks['timed_seconds']:.1f} s (one session query per {DEFAULT_RECHECK_S:g} s); "
            f"(e) {checks['sql_miss']} for {checks['calls_miss']} calls\n"
        )
        w(
            f"  cookie refreshes during the run: {checks['refreshes']} (re-issued at most once a "
            "minute)\n"
        )
    if report.get("breakdown"):
        w("\n  where (b)'s time goes (each step alone, median per call, not interleaved):\n")
        for name, us in report["breakdown"].items():
            w(f"    {us:8.2f} us  {name}\n")
    w("\n== Target ==\n")
    for t in report.get("targets", []):
        w(f"  {t['status']:4}  {t['name']}: {t['detail']}\n")
    if r and res:
        w("\n== For the README ==\n")
        w("| signed-in pass-through, per request | median |\n| --- | --- |\n")
        w(f"| bare host app (WSGI call) | {res['bare']['median_us']:.1f} µs |\n")
        w(
            "| behind the middleware, signed in (steady state, 0 SQL) | "
            f"{res['ours']['median_us']:.1f} µs |\n"
        )
        w(f"| overhead | {r['overhead_us']:.1f} µs |\n")
        w(f"| one itsdangerous `loads` | {res['loads']['median_us']:.1f} µs |\n")
        w(
            f"| overhead in `loads` (target <= {OVERHEAD_RATIO_MAX:g}) | "
            f"{r['overhead_in_loads']:.2f} |\n"
        )
        w(
            "| overhead with the default 2 s recheck (median / mean) | "
            f"{r['overhead_default_us']:.1f} / {r['overhead_default_mean_us']:.1f} µs |\n"
        )
        w(
            "| overhead of a request whose cached check expired (1 query) | "
            f"{r['overhead_miss_us']:.1f} µs |\n"
        )
    if report.get("profile"):
        w("\n== cProfile: (b), middleware + host app, per call ==\n")
        w(report["profile"])
    return out.getvalue()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Per-request cost of a signed-in pass-through through the middleware."
    )
    p.add_argument(
        "--iterations", type=int, default=20000, help="calls per variant (default 20000)"
    )
    p.add_argument("--batch", type=int, default=200, help="calls per timed batch (default 200)")
    p.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="cProfile (b): 'auto' (default) when the target fails",
    )
    p.add_argument("--profile-calls", type=int, default=2000)
    add_json_option(p)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (database)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from itsdangerous import URLSafeTimedSerializer
    from sqlalchemy import __version__ as sqlalchemy_version

    from webwork_sso_middleware import SSOMiddleware

    report_stream = sys.stderr if args.json == "-" else sys.stdout

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rounds = max(1, args.iterations // args.batch)
    batch = args.batch
    report: dict[str, Any] = {
        "config": {
            "iterations": rounds * batch,
            "rounds": rounds,
            "batch": batch,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg()[0],
            "itsdangerous": version_of("itsdangerous"),
            "werkzeug": version_of("werkzeug"),
            "sqlalchemy": sqlalchemy_version,
            "long_recheck_s": LONG_RECHECK_S,
            "default_recheck_s": DEFAULT_RECHECK_S,
        },
    }
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        say(
            f"WARNING: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: other work "
            "will add noise"
        )
    workdir = Path(tempfile.mkdtemp(prefix="passthrough-bench-"))
    database_url = f"sqlite:///{workdir}/bench.db"
    failed = False
    middlewares: list[Any] = []
    counters: list[SqlCounter] = []
    started = time.perf_counter()
    try:
        host = Host(EMAIL)
        ours = SSOMiddleware(
            host,
            database_url=database_url,
            secret_key=SECRET,
            base_url=BASE_URL,
            session_recheck_seconds=LONG_RECHECK_S,
        )
        middlewares.append(ours)
        cookie_value = sign_in(ours, workdir)
        # A second worker of the same site (same database and keys), with the default interval.
        ours_default = SSOMiddleware(
            host, database_url=database_url, secret_key=SECRET, base_url=BASE_URL
        )
        middlewares.append(ours_default)
        ours_miss = SSOMiddleware(
            host,
            database_url=database_url,
            secret_key=SECRET,
            base_url=BASE_URL,
            session_recheck_seconds=0,
        )
        middlewares.append(ours_miss)
        assert ours_default.sessions.recheck_interval == DEFAULT_RECHECK_S, (
            ours_default.sessions.recheck_interval
        )
        cookie_name = ours.settings.session_cookie_name

        # The yardstick: the same payload in an itsdangerous timed cookie, as a Flask-like app has.
        payload = ours.sessions._serializer.loads(cookie_value)
        yardstick = URLSafeTimedSerializer(SECRET)
        timed_cookie = yardstick.dumps(payload)
        if yardstick.loads(timed_cookie) != payload:
            raise RuntimeError("the yardstick cookie does not round-trip")
        our_serializer = ours.sessions._serializer
        report["config"]["cookie_bytes"] = len(cookie_value)
        report["config"]["timed_cookie_bytes"] = len(timed_cookie)

        browser = Browser()
        start_response = browser.start_response
        environs = {"ours": request_environ(cookie_name, cookie_value)}
        environs["ours_default"] = dict(environs["ours"])
        environs["ours_miss"] = dict(environs["ours"])
        environs["bare"] = dict(environs["ours"])
        apps = {"bare": host, "ours": ours, "ours_default": ours_default, "ours_miss": ours_miss}
        calls = {key: 0 for key in apps}
        identified = {key: 0 for key in apps}
        refreshes = 0

        def app_batch(key: str, n: int) -> float:
            nonlocal refreshes
            app, base = apps[key], environs[key]
            before = host.identified
            t0 = time.perf_counter()
            for _ in range(n):
                result = app(base.copy(), start_response)
                for _chunk in result:
                    pass
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            elapsed = time.perf_counter() - t0
            identified[key] += host.identified - before
            calls[key] += n
            if (fresh := browser.take()) is not None:  # the browser keeps the re-issued cookie
                refreshes += 1
                value = fresh.split(";", 1)[0].split("=", 1)[1]
                for k in environs:
                    environs[k]["HTTP_COOKIE"] = f"{cookie_name}={value}"
            return elapsed / n

        def loads_batch(serializer: Any, value: str, n: int) -> float:
            loads = serializer.loads
            t0 = time.perf_counter()
            for _ in range(n):
                loads(value)
            return (time.perf_counter() - t0) / n

        variants: dict[str, Callable[[int], float]] = {
            "bare": lambda n: app_batch("bare", n),
            "ours": lambda n: app_batch("ours", n),
            "loads": lambda n: loads_batch(yardstick, timed_cookie, n),
            "ours_default": lambda n: app_batch("ours_default", n),
            "ours_miss": lambda n: app_batch("ours_miss", n),
            "ours_loads": lambda n: loads_batch(our_serializer, cookie_value, n),
        }
        keys = list(variants)

        say(f"[{time.perf_counter() - started:5.1f}s] warm-up ...")
        for _ in range(max(3, rounds // 20)):
            for key in keys:
                variants[key](batch)
        for key in calls:
            calls[key] = identified[key] = 0

        counters = [SqlCounter(mw.database.engine) for mw in (ours, ours_default, ours_miss)]
        say(
            f"[{time.perf_counter() - started:5.1f}s] timing {rounds} rounds x {batch} calls per "
            "variant ..."
        )
        samples: dict[str, list[float]] = {k: [] for k in keys}
        gc.collect()
        timed_start = time.perf_counter()
        for i in range(rounds):
            shift = i % len(keys)
            for key in keys[shift:] + keys[:shift]:  # every variant goes first as often
                samples[key].append(variants[key](batch))
        timed_seconds = time.perf_counter() - timed_start
        sql_ours, sql_default, sql_miss = (counter.count for counter in counters)
        for counter in counters:
            counter.remove()
        counters = []

        results = {k: summarize(v) for k, v in samples.items()}
        report["results"] = results
        overhead = [b - a for a, b in zip(samples["bare"], samples["ours"], strict=True)]
        overhead_default = [
            d - a for a, d in zip(samples["bare"], samples["ours_default"], strict=True)
        ]
        overhead_miss = [e - a for a, e in zip(samples["bare"], samples["ours_miss"], strict=True)]
        loads_us = results["loads"]["median_us"]
        r = {
            "overhead_us": median_us(overhead),
            "overhead_default_us": median_us(overhead_default),
            "overhead_default_mean_us": statistics.fmean(overhead_default) * 1e6,
            "overhead_miss_us": median_us(overhead_miss),
        }
        r["overhead_miss_in_loads"] = r["overhead_miss_us"] / loads_us
        r["overhead_in_loads"] = r["overhead_us"] / loads_us
        r["overhead_default_in_loads"] = r["overhead_default_us"] / loads_us
        report["ratios"] = r
        report["checks"] = {
            "calls_ours": calls["ours"],
            "identified_ours": identified["ours"],
            "calls_default": calls["ours_default"],
            "identified_default": identified["ours_default"],
            "calls_bare": calls["bare"],
            "identified_bare": identified["bare"],
            "calls_miss": calls["ours_miss"],
            "identified_miss": identified["ours_miss"],
            "sql_ours": sql_ours,
            "sql_default": sql_default,
            "sql_miss": sql_miss,
            "timed_seconds": timed_seconds,
            "refreshes": refreshes,
        }
        problems = []
        if any(identified[k] != calls[k] for k in ("ours", "ours_default", "ours_miss")):
            problems.append("REMOTE_USER was missing on some signed-in calls")
        if identified["bare"]:
            problems.append("the bare app saw REMOTE_USER")
        if sql_ours:
            problems.append(
                f"{sql_ours} SQL statements in the steady state (recheck {LONG_RECHECK_S:.0f} s)"
            )
        if problems:
            raise RuntimeError("; ".join(problems))

        # Where (b)'s time goes: each step alone (not interleaved; information only).
        from werkzeug.http import parse_cookie

        env = environs["ours"]
        steps: dict[str, Callable[[], Any]] = {
            "dict copy of the environ (in every variant's loop)": lambda: env.copy(),
            "werkzeug parse_cookie(environ)": lambda: parse_cookie(env),
            "our serializer's loads": lambda: our_serializer.loads(cookie_value),
            "sessions.read_cookie(environ) (parse + loads + checks)": lambda: (
                ours.sessions.read_cookie(env)
            ),
            "sessions.identify(environ) (read_cookie + cached check + Member.copy)": lambda: (
                ours.sessions.identify(env)
            ),
        }
        breakdown = {}
        for name, step in steps.items():
            times = []
            for _ in range(30):
                t0 = time.perf_counter()
                for _ in range(batch):
                    step()
                times.append((time.perf_counter() - t0) / batch)
            breakdown[name] = median_us(times)
        report["breakdown"] = breakdown

        status = "PASS" if r["overhead_in_loads"] <= OVERHEAD_RATIO_MAX else "FAIL"
        report["targets"] = [
            {
                "name": "pass-through overhead in loads",
                "status": status,
                "value": r["overhead_in_loads"],
                "limit": OVERHEAD_RATIO_MAX,
                "detail": f"((b) - (a)) / (c) = {r['overhead_us']:.2f} us / {loads_us:.2f} us = "
                f"{r['overhead_in_loads']:.2f} (must be <= {OVERHEAD_RATIO_MAX:g})",
            }
        ]
        if args.profile == "always" or (args.profile == "auto" and status == "FAIL"):
            say(
                f"[{time.perf_counter() - started:5.1f}s] profiling {args.profile_calls} calls of "
                "(b) ..."
            )
            env = environs["ours"]
            profiles = []
            for _ in range(args.profile_calls):
                profile = cProfile.Profile()
                profile.enable()
                for _chunk in ours(env.copy(), start_response):
                    pass
                profile.disable()
                profiles.append(profile)
            # "ms/request" below is per call; the tables are totals over all the calls.
            report["profile"] = profile_report(profiles, {}, 25)
        report["elapsed_s"] = time.perf_counter() - started
        report["config"]["loadavg_end"] = os.getloadavg()[0]
        say(f"[{report['elapsed_s']:5.1f}s] done")
    except Exception as exc:  # noqa: BLE001
        failed = True
        report["error"] = f"{type(exc).__name__}: {exc}"
        say(f"ERROR: {report['error']}")
    finally:
        for counter in counters:
            counter.remove()
        for mw in middlewares:
            mw.close()
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    publish(render(report), report, report_stream, args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
