#!/usr/bin/env python
"""Our SCIM server at 1,000, 10,000 and 100,000 members in one workspace, and at 1,000
workspaces of 100 members (the per-token path): what grows with the directory.

    .venv/bin/python benchmarks/scim_bench.py --scale                      # SQLite
    .venv/bin/python benchmarks/scim_bench.py --scale --database-url postgresql+psycopg://...

Members are seeded straight into the database by SQL (100,000 POSTs would take the run's whole
budget); every measurement goes through real HTTP to the server in its own process (scim_bench's
``--_serve ours``, waitress, keep-alive). Per size: ``userName eq`` lookups, a 100-item page at
startIndex=1 and at the end of the list, a PATCH adding 1,000 members to a group and one
removing them (Entra's remove with a value list), and a 10,000-member group read back. Cost at
the largest size over cost at the smallest, and the server's RSS, are printed.
Only our server: scim2-server keeps members in memory, and seeding it means 100,000 POSTs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scim_bench import DEFAULT_PG_URL, Server, analyze_postgres, timed_get, wipe_postgres

SIZES = (1_000, 10_000, 100_000)
TENANTS, TENANT_SIZE = 1_000, 100
GROWTH_MAX = 1.3  # lookups and pages, cost at the largest size over cost at the smallest
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def user_name(workspace: int, i: int) -> str:
    return f"user{i:06d}@w{workspace}.bench.example.com"


def seed_members(engine: Any, workspace_id: int, first: int, last: int) -> list[str]:
    """Insert members first..last-1 (and each one's work email) in bulk; returns their ids."""
    from sqlalchemy import insert

    from webwork_sso_middleware.names import key
    from webwork_sso_middleware.store.models import Member, MemberValue

    ids: list[str] = []
    for lo in range(first, last, 5_000):
        members, values = [], []
        for i in range(lo, min(last, lo + 5_000)):
            name = user_name(workspace_id, i)
            mid = f"{workspace_id:04d}-{i:06d}-0000-0000-000000000000"
            when = START + dt.timedelta(seconds=i)
            ids.append(mid)
            members.append(
                {
                    "id": mid,
                    "workspace_id": workspace_id,
                    "user_name": name,
                    "user_name_key": key(name),
                    "email_key": name,
                    "external_id": f"00u{workspace_id:05d}{i:012x}",
                    "given_name": "Ada",
                    "family_name": f"Lovelace{i}",
                    "display_name": f"Ada Lovelace{i}",
                    "active": True,
                    "source": "scim",
                    "session_generation": 0,
                    "created_at": when,
                    "modified_at": when,
                    "version": 1,
                }
            )
            values.append(
                {
                    "member_id": mid,
                    "attribute": "emails",
                    "position": 0,
                    "value": name,
                    "value_key": name,
                    "type": "work",
                    "primary": True,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(Member), members)
            conn.execute(insert(MemberValue), values)
    return ids


def seed_tenants(engine: Any, count: int, size: int) -> list[tuple[str, int]]:
    """``count`` workspaces with SCIM on, a token each and ``size`` members each."""
    from sqlalchemy import insert, select

    from webwork_sso_middleware.store.models import ScimToken, Workspace

    tokens: list[tuple[str, int]] = []
    with engine.begin() as conn:
        base = (conn.execute(select(Workspace.id).order_by(Workspace.id.desc())).first() or [0])[0]
        rows, token_rows = [], []
        for k in range(count):
            wid = base + 1 + k
            token = f"wsso_bench_{wid}_{os.urandom(16).hex()}"
            tokens.append((token, wid))
            rows.append(
                {
                    "id": wid,
                    "slug": f"tenant{wid}",
                    "name": f"Tenant {wid}",
                    "plan": "plus",
                    "owner_email": "o@example.com",
                    "scim_enabled": True,
                }
            )
            token_rows.append(
                {
                    "workspace_id": wid,
                    "token_hash": hashlib.sha256(token.encode()).hexdigest(),
                    "hint": token[:10],
                }
            )
        conn.execute(insert(Workspace), rows)
        conn.execute(insert(ScimToken), token_rows)
    for _token, wid in tokens:
        seed_members(engine, wid, 0, size)
    return tokens


def eq(name: str) -> str:
    return 'userName eq "' + name + '"'


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(
    server: Server, workspace_id: int, size: int, rng: random.Random, reps: int
) -> dict[str, float]:
    """Medians (ms) of lookups and of the first and last 100-item pages, all checked."""

    def lookup(i: int) -> float:
        name = user_name(workspace_id, i)
        url = f"{server.base}/Users?filter={quote(eq(name))}"
        elapsed, r = timed_get(server, url)
        data = r.json()
        assert data["totalResults"] == 1 and data["Resources"][0]["userName"] == name, data
        return elapsed

    def page(start: int) -> float:
        elapsed, r = timed_get(server, f"{server.base}/Users?startIndex={start}&count=100")
        data = r.json()
        names = [u["userName"] for u in data["Resources"]]
        want = [user_name(workspace_id, i) for i in range(start - 1, min(size, start + 99))]
        assert data["totalResults"] == size and names == want, (start, names[:2], want[:2])
        return elapsed

    for _ in range(10):  # warm-up: caches, pool, statement cache
        lookup(rng.randrange(size))
        page(1)
        page(size - 99)
    return {
        "lookup_ms": median_ms([lookup(rng.randrange(size)) for _ in range(reps)]),
        "first_page_ms": median_ms([page(1) for _ in range(reps // 3)]),
        "last_page_ms": median_ms([page(size - 99) for _ in range(reps // 3)]),
    }


def new_group(server: Server, members: list[str]) -> tuple[str, float]:
    t0 = time.perf_counter()
    r = server.session.post(
        f"{server.base}/Groups?excludedAttributes=members",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": f"group-{time.time_ns()}",
            "members": [{"value": mid} for mid in members],
        },
        timeout=600,
    )
    assert r.status_code == 201, r.text[:300]
    return r.json()["id"], (time.perf_counter() - t0) * 1000


def group_work(server: Server, member_ids: list[str]) -> dict[str, float]:
    """A PATCH adding the newest 1,000 members to a group of 100, and one removing them; a group
    of (up to) 10,000 members created and read back.

    The groups leave out the first page's members: sizes are measured one after another in one
    directory, so a group made at one size would put the next size's first page in groups its
    first size never saw (more rows to read, and on PostgreSQL a small ``memberships`` table
    whose most common member ids are that page's, planned as a sequential scan), and the page
    ratio would compare unlike pages. The newest 1,000 are added and removed again."""
    spared = member_ids[100:]
    gid, _ = new_group(server, spared[:100])
    wanted = [{"value": mid} for mid in member_ids[-1000:]]
    out: dict[str, float] = {}
    for op in ("add", "remove"):
        body = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": op, "path": "members", "value": wanted}],
        }
        t0 = time.perf_counter()
        r = server.session.patch(
            f"{server.base}/Groups/{gid}?excludedAttributes=members", json=body, timeout=600
        )
        out[f"patch_{op}_1000_ms"] = (time.perf_counter() - t0) * 1000
        assert r.status_code in (200, 204), r.text[:300]
    big = spared[:10_000]
    gid, out["group_create_10k_ms"] = new_group(server, big)
    reads = []
    for _ in range(5):
        elapsed, r = timed_get(server, f"{server.base}/Groups/{gid}")
        assert len(r.json().get("members", [])) == len(big)
        reads.append(elapsed)
    out["group_10k_read_ms"] = median_ms(reads)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", help=f"default: SQLite in a temp dir; e.g. {DEFAULT_PG_URL}")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--tenants", type=int, default=TENANTS)
    p.add_argument("--reps", type=int, default=90, help="timed lookups per size (pages: a third)")
    p.add_argument("--json", help="also write the figures as JSON to this file")
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    from sqlalchemy import create_engine

    workdir = Path(tempfile.mkdtemp(prefix="scim-scale-"))
    url = args.database_url or f"sqlite:///{workdir}/scale.db"
    postgres = url.startswith("postgresql")
    if postgres:
        wipe_postgres(url)
    server = Server("ours", "ours", database_url=url)
    rng = random.Random(7)
    report: dict[str, Any] = {
        "database": "postgresql" if postgres else "sqlite",
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg()[0],
        "sizes": {},
    }
    try:
        server.start(workdir)
        engine = create_engine(url)
        with engine.connect() as conn:
            wid = conn.exec_driver_sql(
                "SELECT id FROM workspaces WHERE slug = 'bench'"
            ).scalar_one()
        ids: list[str] = []
        for size in sizes:
            t0 = time.perf_counter()
            ids += seed_members(engine, wid, len(ids), size)
            seeded = time.perf_counter() - t0
            if postgres:
                analyze_postgres(url)
            print(f"[{size}] seeded in {seeded:.1f}s; measuring", file=sys.stderr, flush=True)
            figures = measure(server, wid, size, rng, args.reps)
            figures.update(group_work(server, ids))
            figures["rss_mb"] = server.rss_mb()["rss"]
            report["sizes"][size] = figures
            print(f"[{size}] {json.dumps(figures)}", file=sys.stderr, flush=True)
        if args.tenants:
            t0 = time.perf_counter()
            tenants = seed_tenants(engine, args.tenants, TENANT_SIZE)
            if postgres:
                analyze_postgres(url)
            print(f"[tenants] seeded in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
            report["tenants"] = per_token(server, tenants, rng, args.reps)
            report["tenant_count"] = len(tenants)
        engine.dispose()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report["loadavg_end"] = os.getloadavg()[0]
    print(render(report, sizes))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def per_token(
    server: Server, tenants: list[tuple[str, int]], rng: random.Random, reps: int
) -> dict[str, float]:
    """Lookups, each with a random workspace's own token (the per-token path at 1,000
    workspaces), against the same lookups with one token."""
    samples = []
    for k in range(reps + 10):
        token, wid = tenants[rng.randrange(len(tenants))]
        name = user_name(wid, rng.randrange(TENANT_SIZE))
        url = f"{server.base}/Users?filter={quote(eq(name))}"
        t0 = time.perf_counter()
        r = server.session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        elapsed = time.perf_counter() - t0
        data = r.json()
        assert r.status_code == 200 and data["Resources"][0]["userName"] == name, r.text[:300]
        if k >= 10:
            samples.append(elapsed)
    return {"lookup_ms": median_ms(samples), "rss_mb": server.rss_mb()["rss"]}


def render(report: dict[str, Any], sizes: list[int]) -> str:
    lines = [
        f"== SCIM at scale: ours on {report['database']}, {report['cpus']} CPUs, load "
        f"{report['loadavg_start']:.1f} -> {report['loadavg_end']:.1f} ==",
    ]
    keys = sorted({k for f in report["sizes"].values() for k in f})
    lines.append("  " + f"{'':24}" + "".join(f"{s:>12,}" for s in sizes))
    for k in keys:
        row = [report["sizes"][s].get(k) for s in sizes]
        lines.append(
            "  " + f"{k:24}" + "".join(f"{v:12.1f}" if v is not None else f"{'-':>12}" for v in row)
        )
    lo, hi = report["sizes"][sizes[0]], report["sizes"][sizes[-1]]
    for k in ("lookup_ms", "first_page_ms", "last_page_ms"):
        ratio = hi[k] / lo[k]
        verdict = "PASS" if ratio <= GROWTH_MAX else "FAIL"
        lines.append(f"  {verdict}  {k} at {sizes[-1]:,} / at {sizes[0]:,}: {ratio:.2f}")
    lines.append(f"  RSS growth: {hi['rss_mb'] - lo['rss_mb']:+.1f} MB")
    if "tenants" in report:
        t = report["tenants"]
        ratio = t["lookup_ms"] / lo["lookup_ms"]
        verdict = "PASS" if ratio <= GROWTH_MAX else "FAIL"
        lines.append(
            f"  {verdict}  lookup with 1 of {report['tenant_count']:,} tokens ({TENANT_SIZE} members each): "
            f"{t['lookup_ms']:.1f} ms, / one workspace at {sizes[0]:,}: {ratio:.2f}; "
            f"RSS {t['rss_mb']:.0f} MB"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
