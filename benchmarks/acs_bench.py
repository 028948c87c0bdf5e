#!/usr/bin/env python
"""Our SAML Assertion Consumer Service, end to end, beside a stock pysaml2 SP, in one run.

Not a test: it prints figures (and a PASS/FAIL line for the target) and exits 0, unless something
failed to run. See benchmarks/README.md.

    .venv/bin/python benchmarks/acs_bench.py                  # 300 sign-ins per side
    .venv/bin/python benchmarks/acs_bench.py --samples 100 --profile always
    .venv/bin/python benchmarks/acs_bench.py --json > acs.json   # report on stderr

- ours: the middleware served by waitress (threads=4) in a child process (this script with the
  hidden ``--_serve`` option), SQLite file in a temp dir; timed from sending ``POST
  /saml/<slug>/acs`` (keep-alive ``http.client`` connection, body encoded beforehand) to having read
  the ``303`` carrying the session cookie. Also, for information, the same middleware called as a
  WSGI app in this process (no HTTP, no server).
- ours, encrypted: the same HTTP sign-in with the assertion signed, then encrypted (RSA-OAEP key
  transport, AES-256-GCM content) for the workspace's SP certificate as its SP metadata publishes
  it, and the response signed over the encrypted form: what Okta or Entra ID send with assertion
  encryption on. Reported beside the plain one, with the ratio encrypted / plain. The stock SP
  gets the same (encrypted for a key pair of its own, which it decrypts with ``xmlsec1``).
- stock: pysaml2's ``Saml2Client`` with its DEFAULT crypto backend (the ``xmlsec1`` program, run
  once per signature check), same IdP metadata, same SP entity ID and ACS URL, calling
  ``parse_authn_request_response(saml_response, BINDING_HTTP_POST)`` in this process: no HTTP, no
  database, no session. That makes the comparison conservative for us.

The IdP is tests/saml/idp.py's ``TestIdP`` (pysaml2's ``Server`` on our in-process crypto); it is
never contacted over the network. Every response is made before the timing starts and used once
(the ACS refuses replays): each side gets its own, all for the same SP and users.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import http.client
import io
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

# The server wrapper (control endpoints, cProfile, SQL statement counts) and the profile report
# are common.py's; importing it first also makes the checkout's tests/ importable.
from common import (
    SECRET,
    WAITRESS_THREADS,
    BenchWrapper,
    fmt,
    host_app,
    profile_report,
    publish,
    rss_kb,
    summarize,
    version_of,
)
from tests.saml.idp import Encryption, TestIdP, make_key_pair, pysaml2_sp_config

SLUG = "bench"
COOKIE_NAME = "webwork_sso_session"
IDP_URL = "http://127.0.0.1:9/idp-never-contacted"
# Long enough that no response made before the timing expires during it (both SPs check it).
RESPONSE_LIFETIME_S = 3600

# Our median end-to-end ACS time / stock pysaml2's median parse time (issue 11: from 0.10 to
# 0.04; python3-saml's bare in-process validation measures about 0.043).
RATIO_MAX = 0.04

XMLSEC1_MISSING = """\
The reference side of this benchmark is a stock pysaml2 SP with its default crypto backend,
which runs the `xmlsec1` program; it was not found{where}.

Install it for the benchmark only (webwork-sso-middleware itself never needs it):
    Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y xmlsec1
    Fedora/RHEL:    sudo dnf install xmlsec1 xmlsec1-openssl
    Alpine:         apk add xmlsec
    macOS:          brew install libxmlsec1
or point the script at it with --xmlsec1 /path/to/xmlsec1.
"""


# ---------------------------------------------------------------------------------------------
# Our site (in the child process, and in this process for the in-process figure)
# ---------------------------------------------------------------------------------------------


def build_site(database_url: str, base_url: str, idp_metadata: str) -> Any:
    """The middleware with one workspace (plan plus, SSO on) trusting the bench IdP."""
    from webwork_sso_middleware import SSOMiddleware

    mw = SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET, base_url=base_url)
    mw.workspaces.create(SLUG, name="Bench", plan="plus", owner_email="owner@bench.example.com")
    mw.workspaces.enable(SLUG, sso=True)
    # The IdP may sign in (and create) members only in a domain the workspace verified.
    mw.workspaces.verify_domain(SLUG, "bench.example.com", by_operator=True)
    mw.workspaces.set_idp(SLUG, metadata_xml=idp_metadata)  # IdP-initiated sign-in allowed
    return mw


def serve(database_url: str, metadata_file: str) -> None:
    """Child process: our site under waitress; print its port as JSON, serve forever."""
    import logging

    import waitress

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    wrapper = BenchWrapper()
    server = waitress.create_server(
        wrapper,
        host="127.0.0.1",
        port=0,
        threads=WAITRESS_THREADS,
        ident="bench",
        connection_limit=100,
    )
    port = server.effective_port
    wrapper.app = build_site(
        database_url, f"http://127.0.0.1:{port}", Path(metadata_file).read_text()
    )
    wrapper.engine = wrapper.app.database.engine
    gc.collect()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.stdout.write(json.dumps({"port": port, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    server.run()


class Child:
    """Our site in a child process, and one keep-alive HTTP connection to it."""

    def __init__(self, workdir: Path, database_url: str, metadata_file: Path) -> None:
        self.log_path = workdir / "ours-server.log"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--_serve",
            "--database-url",
            database_url,
            "--metadata-file",
            str(metadata_file),
        ]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=str(workdir)
            )
        line: list[str] = []
        reader = threading.Thread(
            target=lambda: line.append(self.proc.stdout.readline()), daemon=True
        )  # type: ignore[union-attr]
        reader.start()
        reader.join(120)
        if not line or not line[0].strip():
            self.stop()
            raise RuntimeError(f"our server did not start:\n{self.log_tail()}")
        info = json.loads(line[0])
        self.port, self.pid = info["port"], info["pid"]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.conn: http.client.HTTPConnection | None = None
        self.reconnects = 0

    def log_tail(self, lines: int = 25) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return (
            "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
            or "(empty log)"
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on the keep-alive connection: (status, headers, body)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.reconnects += 1
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"our server exited with {self.proc.returncode}:\n{self.log_tail()}"
                ) from None
            raise
        if response.will_close:
            self.conn.close()
            self.conn = None
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def control(self, action: str) -> dict[str, Any]:
        status, _, data = self.request("GET", f"/__bench__{action}")
        if status != 200:
            raise RuntimeError(f"control {action} -> {status}")
        return json.loads(data)

    def stop(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()  # type: ignore[union-attr]
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# ---------------------------------------------------------------------------------------------
# The three measurements
# ---------------------------------------------------------------------------------------------


class WrongAnswer(AssertionError):
    pass


class OursHttp:
    name = "ours (HTTP)"

    def __init__(self, child: Child, name: str | None = None) -> None:
        self.child = child
        self.name = name or self.name
        self.path = f"/saml/{SLUG}/acs"
        self.headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}

    def prepare(self, saml_response: str) -> bytes:
        return urlencode({"SAMLResponse": saml_response}).encode("ascii")

    def run(self, body: bytes, email: str) -> float:
        t0 = time.perf_counter()
        status, headers, data = self.child.request("POST", self.path, body, self.headers)
        elapsed = time.perf_counter() - t0
        cookie = headers.get("set-cookie", "")
        if (
            status != 303
            or not cookie.startswith(COOKIE_NAME + "=")
            or cookie.startswith(COOKIE_NAME + "=;")
        ):
            raise WrongAnswer(f"{self.name} answered {status} {cookie[:60]!r} {data[:300]!r}")
        return elapsed


class OursInProcess:
    """The same middleware called as a WSGI app in this process (informational: no HTTP)."""

    name = "ours (in-process WSGI)"

    def __init__(self, mw: Any) -> None:
        self.mw = mw

    def prepare(self, saml_response: str) -> dict[str, Any]:
        from werkzeug.test import EnvironBuilder

        builder = EnvironBuilder(
            path=f"/saml/{SLUG}/acs",
            method="POST",
            base_url=self.mw.settings.base_url,
            data={"SAMLResponse": saml_response},
            headers={"Accept": "text/html"},
        )
        try:
            return builder.get_environ()
        finally:
            builder.close()

    def run(self, environ: dict[str, Any], email: str) -> float:
        seen: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            seen.append((status, headers))
            return lambda _data: None

        t0 = time.perf_counter()
        result = self.mw(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        elapsed = time.perf_counter() - t0
        status, headers = seen[0]
        cookies = [v for k, v in headers if k.lower() == "set-cookie"]
        if (
            not status.startswith("303")
            or not cookies
            or not cookies[0].startswith(COOKIE_NAME + "=")
        ):
            raise WrongAnswer(f"ours (in-process) answered {status} {body[:300]!r}")
        return elapsed


class OursParse:
    """Our ACS checks alone (decode, parse, every check, signature), in-process (information only)."""

    name = "our ACS checks alone"

    def __init__(
        self, base_url: str, idp_entity_id: str, idp_metadata: str, keys: Any = None
    ) -> None:
        import datetime as dt

        from webwork_sso_middleware.saml.sp import IdPSettings, ServiceProvider
        from webwork_sso_middleware.urls import WorkspaceUrls

        idp = IdPSettings(
            entity_id=idp_entity_id,
            metadata_xml=idp_metadata,
            allow_idp_initiated=True,
            version="bench",
        )
        self.provider = ServiceProvider(
            WorkspaceUrls(base_url, SLUG), idp, keys=keys, clock_skew=dt.timedelta(seconds=180)
        )

    def prepare(self, saml_response: str) -> str:
        return saml_response

    def run(self, saml_response: str, email: str) -> float:
        import datetime as dt

        from webwork_sso_middleware.saml.acs import AssertionConsumer
        from webwork_sso_middleware.saml.posted import decode, peek

        t0 = time.perf_counter()
        consumer = AssertionConsumer(self.provider, clock_skew=dt.timedelta(seconds=180))
        verified = consumer.consume(peek(decode(saml_response)), {}, now=dt.datetime.now(dt.UTC))
        elapsed = time.perf_counter() - t0
        if verified.email != email:
            raise WrongAnswer(f"our checks read {verified.email!r}")
        return elapsed


class Stock:
    """Stock pysaml2 SP on its default crypto backend (xmlsec1), in this process."""

    name = "stock pysaml2 (xmlsec1)"

    def __init__(
        self,
        entity_id: str,
        acs_url: str,
        idp_metadata: str,
        xmlsec1: str | None,
        decryption: tuple[Path, Path] | None = None,
    ) -> None:
        from saml2.client import Saml2Client
        from saml2.config import SPConfig

        config = pysaml2_sp_config(entity_id, acs_url, [idp_metadata])
        if xmlsec1:
            config["xmlsec_binary"] = xmlsec1
        if decryption is not None:  # (key file, certificate file) it decrypts assertions with
            key_file, cert_file = (str(path) for path in decryption)
            config["key_file"], config["cert_file"] = key_file, cert_file
            config["encryption_keypairs"] = [{"key_file": key_file, "cert_file": cert_file}]
            self.name = "stock pysaml2 (xmlsec1), encrypted"
        # Nothing else: default crypto backend (xmlsec1), default everything.
        self.client = Saml2Client(config=SPConfig().load(config))
        self.backend = type(self.client.sec.crypto).__name__

    def prepare(self, saml_response: str) -> str:
        return saml_response

    def run(self, saml_response: str, email: str) -> float:
        from saml2 import BINDING_HTTP_POST

        t0 = time.perf_counter()
        response = self.client.parse_authn_request_response(saml_response, BINDING_HTTP_POST)
        elapsed = time.perf_counter() - t0
        if response is None or response.name_id is None or response.name_id.text != email:
            raise WrongAnswer(f"stock pysaml2 returned {response!r}")
        return elapsed


def count_xmlsec1_runs(stock: Stock, responses: list[tuple[str, str]]) -> dict[str, float]:
    """xmlsec1 processes the stock SP starts per response, by command (outside the timing)."""
    from saml2 import sigver

    runs: dict[str, int] = {}
    original = sigver.Popen

    def counting(args: Any, *rest: Any, **kwargs: Any) -> Any:
        command = "--version" if "--version" in args else (args[1] if len(args) > 1 else "?")
        runs[command] = runs.get(command, 0) + 1
        return original(args, *rest, **kwargs)

    sigver.Popen = counting  # type: ignore[assignment]
    try:
        for saml_response, email in responses:
            stock.run(saml_response, email)
    finally:
        sigver.Popen = original  # type: ignore[assignment]
    return {command: n / max(1, len(responses)) for command, n in runs.items()}


def count_sql(mw: Any, side: OursInProcess, prepared: list[tuple[Any, str]]) -> float:
    """SQL statements per sign-in of a returning member (in-process, outside the timing)."""
    from sqlalchemy import event

    count = [0]

    def before(*_args: Any) -> None:
        count[0] += 1

    event.listen(mw.database.engine, "before_cursor_execute", before)
    try:
        for environ, email in prepared:
            side.run(environ, email)
    finally:
        event.remove(mw.database.engine, "before_cursor_execute", before)
    return count[0] / max(1, len(prepared))


def local_sp_keys() -> tuple[Any, str]:
    """An SP key ring with one fresh key, as a workspace holds it, and its certificate (PEM):
    for our checks alone on encrypted assertions, without the database."""
    import datetime as dt

    from webwork_sso_middleware.sp_keys import SpKey, SpKeyRing
    from webwork_sso_middleware.sp_keys.material import SP_KEY_BITS, make_key_pair

    pair = make_key_pair("bench SAML SP", bits=SP_KEY_BITS)
    now = dt.datetime.now(dt.UTC)
    key = SpKey("current", pair.cert_pem.decode("ascii"), pair.key_pem, now, now)
    ring = SpKeyRing(
        0, key, None, None, sign_authn_requests=False, require_encrypted_assertions=False, version=0
    )
    return ring, pair.cert_pem.decode("ascii")


def metadata_encryption_certificate(metadata_xml: bytes) -> str:
    """The first certificate the SP metadata publishes for encryption (the current key), PEM."""
    from lxml import etree

    found = etree.fromstring(metadata_xml).xpath(
        "//md:KeyDescriptor[@use='encryption']//ds:X509Certificate/text()",
        namespaces={
            "md": "urn:oasis:names:tc:SAML:2.0:metadata",
            "ds": "http://www.w3.org/2000/09/xmldsig#",
        },
    )
    if not found:
        raise RuntimeError("our SP metadata publishes no encryption certificate")
    body = "".join(found[0].split())
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"


def assertion_id(saml_response: str) -> str:
    xml = base64.b64decode(saml_response).decode("utf-8")
    match = re.search(r"<(?:\w+:)?Assertion\b[^>]*\bID=\"([^\"]+)\"", xml)
    assert match, "no assertion ID"
    return match.group(1)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    out = io.StringIO()
    w = out.write
    cfg = report["config"]
    w(
        f"\nSAML ACS benchmark: {cfg['samples']} timed sign-ins per side, {cfg['users']} members signing in "
        f"in turn (each signed in once, untimed, before: the timed ones are returning members)\n"
    )
    w(
        f"  python {cfg['python']}, {cfg['cpus']} CPUs, load average {cfg['loadavg_start']:.2f} at start, "
        f"{fmt(cfg.get('loadavg_end'))} at end; pysaml2 {cfg['pysaml2']}, "
        f"{cfg.get('xmlsec1_version') or 'xmlsec1 ?'}, "
        f"waitress {cfg['waitress']} (threads={WAITRESS_THREADS})\n"
    )
    w(
        "  Samples interleaved (the order of the sides rotates every sample); every response made and "
        "signed (RSA-SHA256, assertion signed) before timing, each used once.\n"
    )
    if report.get("error"):
        w(f"  RUN FAILED: {report['error'][:800]}\n")
    w(
        "\n  ours (HTTP):   POST /saml/<slug>/acs to our site under waitress in a child process, SQLite; "
        "timed until the 303 with the session cookie is read (keep-alive http.client; includes HTTP, "
        "the database transaction, member update, audit record, session row and cookie)\n"
    )
    w("  ours (WSGI):   the same middleware called in this process (no HTTP): information only\n")
    w(
        "  our checks alone: decode, strict parse, every ACS check and the signature (saml/acs.py), "
        "no HTTP, no database: information only\n"
    )
    w(
        "  stock pysaml2: Saml2Client, default crypto backend (xmlsec1 subprocess), "
        "parse_authn_request_response(saml_response, BINDING_HTTP_POST) in this process: no HTTP, "
        "no database, no session; so the comparison is conservative for us\n"
    )
    if cfg.get("xmlsec1_runs_per_response") is not None:
        runs = cfg["xmlsec1_runs_per_response"]
        detail = ", ".join(f"{n:g} x {command}" for command, n in runs.items())
        w(
            f"                 (backend {cfg.get('stock_backend')}: {sum(runs.values()):g} xmlsec1 processes "
            f"per response: {detail})\n"
        )
    res = report.get("results", {})
    if res:
        w(f"\n  {'':28} {'median ms':>10} {'p90 ms':>8} {'mean ms':>8} {'min ms':>8}\n")
        for key, label in (
            ("ours_http", "ours (HTTP, end to end)"),
            ("ours_http_encrypted", "ours (HTTP), encrypted"),
            ("ours_wsgi", "ours (in-process WSGI)"),
            ("ours_parse", "our ACS checks alone"),
            ("ours_parse_encrypted", "our checks alone, encrypted"),
            ("stock", "stock pysaml2 (xmlsec1)"),
            ("stock_encrypted", "stock pysaml2, encrypted"),
        ):
            s = res.get(key)
            if s:
                w(
                    f"  {label:28} {s['median_ms']:10.2f} {s['p90_ms']:8.2f} "
                    f"{s['mean_ms']:8.2f} {s['min_ms']:8.2f}\n"
                )
    r = report.get("ratios", {})
    if r:
        w(
            f"\n  ratio ours (HTTP) / stock, medians: {fmt(r.get('ours_http_over_stock'), '.3f')}   "
            f"(p90: {fmt(r.get('ours_http_over_stock_p90'), '.3f')}; in-process WSGI / stock: "
            f"{fmt(r.get('ours_wsgi_over_stock'), '.3f')}; our checks alone / stock: "
            f"{fmt(r.get('ours_parse_over_stock'), '.3f')})\n"
        )
    if r.get("encrypted_over_plain") is not None:
        w(
            f"  encrypted sign-in (assertion signed, then RSA-OAEP + AES-256-GCM, response signed): "
            f"{res['ours_http_encrypted']['median_ms']:.2f} ms median end to end, "
            f"ratio encrypted / plain {fmt(r.get('encrypted_over_plain'), '.2f')} "
            f"(our checks alone: {fmt(r.get('parse_encrypted_over_plain'), '.2f')}; stock "
            f"pysaml2: {fmt(r.get('stock_encrypted_over_plain'), '.2f')}; ours / stock, "
            f"encrypted: {fmt(r.get('encrypted_ours_over_stock'), '.3f')})\n"
        )
    if cfg.get("sql_per_sign_in") is not None:
        w(
            f"  SQL statements per sign-in of a returning member (ours): {cfg['sql_per_sign_in']:.1f}\n"
        )
    if cfg.get("server_rss_mb") is not None:
        w(f"  our server RSS after the run: {cfg['server_rss_mb']:.1f} MB\n")
    w("\n== Target ==\n")
    for t in report.get("targets", []):
        w(f"  {t['status']:4}  {t['name']}: {t['detail']}\n")
    if res.get("ours_http") and res.get("stock"):
        w("\n== For the README ==\n")
        w("| SAML ACS, one sign-in | median | p90 |\n| --- | --- | --- |\n")
        w(
            "| ours: HTTP POST to session cookie (waitress, SQLite) "
            f"| {res['ours_http']['median_ms']:.1f} ms "
            f"| {res['ours_http']['p90_ms']:.1f} ms |\n"
        )
        if res.get("ours_http_encrypted"):
            w(
                "| ours, encrypted assertion (RSA-OAEP, AES-256-GCM): HTTP POST to session cookie "
                f"| {res['ours_http_encrypted']['median_ms']:.1f} ms "
                f"| {res['ours_http_encrypted']['p90_ms']:.1f} ms |\n"
            )
        w(
            f"| stock pysaml2 + xmlsec1: parse only, in-process | {res['stock']['median_ms']:.1f} ms "
            f"| {res['stock']['p90_ms']:.1f} ms |\n"
        )
        w(
            f"| ratio ours / stock (target <= {RATIO_MAX}) | {r['ours_http_over_stock']:.3f} | "
            f"{r['ours_http_over_stock_p90']:.3f} |\n"
        )
    for label, text in (report.get("profiles") or {}).items():
        w(f"\n== cProfile: {label} ==\n")
        w(text)
    return out.getvalue()


def compute(report: dict[str, Any]) -> None:
    res = report.get("results", {})

    def ratio(a: str, b: str, key: str = "median_ms") -> float | None:
        if a not in res or b not in res or not res[b][key]:
            return None
        return res[a][key] / res[b][key]

    r = {
        "ours_http_over_stock": ratio("ours_http", "stock"),
        "ours_http_over_stock_p90": ratio("ours_http", "stock", "p90_ms"),
        "ours_wsgi_over_stock": ratio("ours_wsgi", "stock"),
        "ours_parse_over_stock": ratio("ours_parse", "stock"),
        "encrypted_over_plain": ratio("ours_http_encrypted", "ours_http"),
        "parse_encrypted_over_plain": ratio("ours_parse_encrypted", "ours_parse"),
        "stock_encrypted_over_plain": ratio("stock_encrypted", "stock"),
        "encrypted_ours_over_stock": ratio("ours_http_encrypted", "stock_encrypted"),
    }
    report["ratios"] = r
    value = r["ours_http_over_stock"]
    status = "SKIP" if value is None else ("PASS" if value <= RATIO_MAX else "FAIL")
    report["targets"] = [
        {
            "name": "ACS ours/stock",
            "status": status,
            "value": value,
            "limit": RATIO_MAX,
            "detail": f"median end-to-end ACS (HTTP) / stock pysaml2 median parse = {fmt(value, '.3f')} "
            f"(must be <= {RATIO_MAX})",
        }
    ]


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time our SAML ACS end to end beside a stock pysaml2 SP (xmlsec1) "
        "parsing equivalent responses."
    )
    p.add_argument("--samples", type=int, default=300, help="timed sign-ins per side (default 300)")
    p.add_argument(
        "--users",
        type=int,
        default=25,
        help="members signing in in turn; each signs in once, untimed, first (default 25)",
    )
    p.add_argument(
        "--no-extra",
        action="store_true",
        help="skip the informational figures (our middleware in-process; pysaml2's parse on our crypto)",
    )
    p.add_argument(
        "--xmlsec1", help="path of the xmlsec1 program for the stock SP (default: found on PATH)"
    )
    p.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="cProfile our server (and the stock SP) over more sign-ins: 'auto' (default) when "
        "the target fails",
    )
    p.add_argument("--profile-requests", type=int, default=100)
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the numbers as JSON to FILE, or to stdout (then the report goes to stderr)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (database, server log)")
    p.add_argument("--_serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--database-url", help=argparse.SUPPRESS)
    p.add_argument("--metadata-file", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def find_xmlsec1(explicit: str | None) -> str | None:
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("xmlsec1")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._serve:
        serve(args.database_url, args.metadata_file)
        return 0

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    xmlsec1 = find_xmlsec1(args.xmlsec1)
    if xmlsec1 is None:
        say(XMLSEC1_MISSING.format(where=f" at {args.xmlsec1}" if args.xmlsec1 else " on PATH"))
        return 1
    report_stream = sys.stderr if args.json == "-" else sys.stdout
    xmlsec1_version = subprocess.run(
        [xmlsec1, "--version"], capture_output=True, text=True
    ).stdout.strip()
    report: dict[str, Any] = {
        "config": {
            "samples": args.samples,
            "users": args.users,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg()[0],
            "pysaml2": version_of("pysaml2"),
            "waitress": version_of("waitress"),
            "xmlsec1": xmlsec1,
            "xmlsec1_version": xmlsec1_version,
        },
        "results": {},
    }
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        say(
            f"WARNING: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: "
            "other work will add noise"
        )
    workdir = Path(tempfile.mkdtemp(prefix="acs-bench-"))
    child: Child | None = None
    local_mw: Any = None
    failed = False
    started = time.perf_counter()
    try:
        idp = TestIdP(IDP_URL, workdir / "idp", name="Bench IdP")
        metadata_xml = idp.metadata_xml()
        metadata_file = workdir / "idp-metadata.xml"
        metadata_file.write_text(metadata_xml)

        say("starting our server ...")
        child = Child(workdir, f"sqlite:///{workdir}/ours-http.db", metadata_file)
        entity_id = f"{child.base_url}/saml/{SLUG}/metadata"
        acs_url = f"{child.base_url}/saml/{SLUG}/acs"
        # The IdP encrypts for the certificate our SP metadata publishes, as an IdP admin sets it.
        status, _, sp_metadata = child.request("GET", f"/saml/{SLUG}/metadata")
        if status != 200:
            raise RuntimeError(f"our SP metadata answered {status}")
        encrypt_for = {"ours_http_encrypted": metadata_encryption_certificate(sp_metadata)}
        sides: dict[str, Any] = {
            "ours_http": OursHttp(child),
            "ours_http_encrypted": OursHttp(child, "ours (HTTP), encrypted"),
        }
        if not args.no_extra:
            # Same base URL, so the same entity ID and ACS: the responses have the very same form.
            local_mw = build_site(f"sqlite:///{workdir}/ours-wsgi.db", child.base_url, metadata_xml)
            sides["ours_wsgi"] = OursInProcess(local_mw)
            sides["ours_parse"] = OursParse(child.base_url, idp.entity_id, metadata_xml)
            ring, encrypt_for["ours_parse_encrypted"] = local_sp_keys()
            sides["ours_parse_encrypted"] = OursParse(
                child.base_url, idp.entity_id, metadata_xml, keys=ring
            )
        stock = Stock(entity_id, acs_url, metadata_xml, xmlsec1)
        sides["stock"] = stock
        stock_pair = make_key_pair("stock SP")
        stock_files = (workdir / "stock-sp.key", workdir / "stock-sp.crt")
        stock_files[0].write_bytes(stock_pair.key_pem)
        stock_files[1].write_bytes(stock_pair.cert_pem)
        encrypt_for["stock_encrypted"] = stock_pair.cert_pem.decode("ascii")
        sides["stock_encrypted"] = Stock(
            entity_id, acs_url, metadata_xml, xmlsec1, decryption=stock_files
        )
        report["config"]["stock_backend"] = stock.backend
        for side in (stock, sides["stock_encrypted"]):
            if side.backend != "CryptoBackendXmlSec1":
                raise RuntimeError(f"the stock SP is not on the xmlsec1 backend but {side.backend}")

        users = [f"member{i:03d}@bench.example.com" for i in range(args.users)]
        timed_emails = [users[i % len(users)] for i in range(args.samples)]

        def make(email: str, side: str | None = None) -> str:
            if side in encrypt_for:
                # Assertion signed, then encrypted (RSA-OAEP, AES-256-GCM), response signed over
                # the encrypted form: Okta's and Entra ID's order.
                return idp.response(
                    sp_entity_id=entity_id,
                    acs_url=acs_url,
                    email=email,
                    not_on_or_after_offset=RESPONSE_LIFETIME_S,
                    sign_response=True,
                    encryption=Encryption(encrypt_for[side]),
                )
            return idp.response(
                sp_entity_id=entity_id,
                acs_url=acs_url,
                email=email,
                not_on_or_after_offset=RESPONSE_LIFETIME_S,
            )

        count = (len(users) + args.samples) * len(sides) + 11 + (10 if "ours_wsgi" in sides else 0)
        say(f"[{time.perf_counter() - started:6.1f}s] signing {count} responses ...")
        # The same response bytes verify on both SPs: one response, stock first, then ours.
        shared = make(users[0])
        plan: dict[str, dict[str, list[tuple[Any, str]]]] = {}
        all_ids = [assertion_id(shared)]
        for key, side in sides.items():
            plan[key] = {}
            for phase, emails in (("warmup", users), ("timed", timed_emails)):
                made = [(make(e, key), e) for e in emails]
                if key not in encrypt_for:  # an encrypted assertion's ID is cipher text
                    all_ids.extend(assertion_id(r) for r, _ in made)
                plan[key][phase] = [(side.prepare(r), e) for r, e in made]
        xmlsec_check = [(make(users[i % len(users)]), users[i % len(users)]) for i in range(10)]
        sql_check = (
            [
                (sides["ours_wsgi"].prepare(make(users[i % len(users)])), users[i % len(users)])
                for i in range(10)
            ]
            if "ours_wsgi" in sides
            else []
        )
        all_ids.extend(assertion_id(r) for r, _ in xmlsec_check)
        if len(set(all_ids)) != len(all_ids):
            raise RuntimeError("assertion IDs are not unique")

        say(
            f"[{time.perf_counter() - started:6.1f}s] checking that one response passes both SPs ..."
        )
        sides["stock"].run(shared, users[0])
        sides["ours_http"].run(sides["ours_http"].prepare(shared), users[0])
        encrypted_check = make(users[0], "ours_http_encrypted")
        if b"EncryptedAssertion" not in base64.b64decode(encrypted_check):
            raise RuntimeError("the encrypted side's response holds no EncryptedAssertion")
        sides["ours_http_encrypted"].run(
            sides["ours_http_encrypted"].prepare(encrypted_check), users[0]
        )

        keys = list(sides)

        def run(phase: str) -> dict[str, list[float]]:
            samples: dict[str, list[float]] = {k: [] for k in keys}
            for i in range(len(plan[keys[0]][phase])):
                shift = i % len(keys)
                for key in keys[shift:] + keys[:shift]:  # every side goes first as often
                    prepared, email = plan[key][phase][i]
                    samples[key].append(sides[key].run(prepared, email))
            return samples

        say(
            f"[{time.perf_counter() - started:6.1f}s] warm-up: {len(users)} first sign-ins per side ..."
        )
        run("warmup")
        report["config"]["xmlsec1_runs_per_response"] = count_xmlsec1_runs(stock, xmlsec_check)
        gc.collect()
        child.control("/gc")
        say(f"[{time.perf_counter() - started:6.1f}s] timing {args.samples} sign-ins per side ...")
        timed = run("timed")
        for key, samples in timed.items():
            report["results"][key] = summarize(samples)
        if sql_check:
            report["config"]["sql_per_sign_in"] = count_sql(local_mw, sides["ours_wsgi"], sql_check)
        report["config"]["server_rss_mb"] = rss_kb(child.pid)["VmRSS"] / 1024
        report["config"]["http_connections"] = child.reconnects
        compute(report)

        fails = report["targets"][0]["status"] == "FAIL"
        if args.profile == "always" or (args.profile == "auto" and fails):
            n = args.profile_requests
            say(
                f"[{time.perf_counter() - started:6.1f}s] profiling {n} sign-ins in our server "
                f"and {max(10, n // 4)} in the stock SP ..."
            )
            ours_bodies = [
                (sides["ours_http"].prepare(make(users[i % len(users)])), users[i % len(users)])
                for i in range(n)
            ]
            stock_responses = [
                (make(users[i % len(users)]), users[i % len(users)]) for i in range(max(10, n // 4))
            ]
            child.control("/profile/start")
            for body, email in ours_bodies:
                sides["ours_http"].run(body, email)
            text = child.control("/profile/stop?top=30")["text"]
            stock_profiles = []
            for saml_response, email in stock_responses:
                profile = cProfile.Profile()
                profile.enable()
                stock.run(saml_response, email)
                profile.disable()
                stock_profiles.append(profile)
            report["profiles"] = {
                "ours, server side, per ACS request (sign-in of a returning member)": text,
                "stock pysaml2 + xmlsec1, in-process parse": profile_report(stock_profiles, {}, 20),
            }
        report["elapsed_s"] = time.perf_counter() - started
        report["config"]["loadavg_end"] = os.getloadavg()[0]
        say(f"[{report['elapsed_s']:6.1f}s] done")
    except Exception as exc:  # noqa: BLE001
        failed = True
        report["error"] = f"{type(exc).__name__}: {exc}"
        if child is not None:
            report["error"] += f"\n--- our server log (tail) ---\n{child.log_tail()}"
        say(f"ERROR: {report['error']}")
        compute(report)
    finally:
        if child is not None:
            child.stop()
        if local_mw is not None:
            local_mw.close()
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    publish(render(report), report, report_stream, args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
