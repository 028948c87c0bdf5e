"""Fixtures shared by every test: a fresh real database (SQLite, or PostgreSQL when
WEBWORK_SSO_TEST_DATABASE_URL is set), workspaces in it, and real HTTP servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from werkzeug.serving import BaseWSGIServer, make_server

from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import Base

from .dns_server import TxtServer
from .saml.conftest import idp, second_idp, site  # noqa: F401 - fixtures for tests outside tests/saml

POSTGRES_URL = os.environ.get("WEBWORK_SSO_TEST_DATABASE_URL")


# Tests that need a system program (headless Chromium) are opt-in, as Django's own suite makes its
# Selenium tests: `--browser` (or WEBWORK_SSO_BROWSER_TESTS=1, which .ci/run sets) selects them, so
# the README's test command passes on a machine with only Python. Once selected they never skip.
BROWSER_ENV = "WEBWORK_SSO_BROWSER_TESTS"
BROWSER_HOW = f"--browser or {BROWSER_ENV}=1 selects them"
_browser_deselected = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--browser",
        action="store_true",
        default=False,
        help="also run the tests that drive a real headless Chromium (marker "
        f"'browser'; Debian's chromium and chromium-driver); as {BROWSER_ENV}=1",
    )


def browser_tests_selected(config: pytest.Config) -> bool:
    return bool(config.getoption("browser")) or os.environ.get(BROWSER_ENV) == "1"


def pytest_report_header(config: pytest.Config) -> list[str]:
    browser = (
        "headless Chromium tests: selected"
        if browser_tests_selected(config)
        else f"headless Chromium tests: not selected ({BROWSER_HOW})"
    )
    return [f"webwork-sso database: {POSTGRES_URL or 'SQLite (temporary files)'}", browser]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if browser_tests_selected(config):
        return
    deselected = [item for item in items if item.get_closest_marker("browser")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("browser")]
        config.stash[_browser_deselected] = len(deselected)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    # The summary line says only "N deselected"; say which, and how to run them.
    count = config.stash.get(_browser_deselected, 0)
    if count:
        terminalreporter.write_line(
            f"{count} headless Chromium test{'s' if count > 1 else ''} deselected ({BROWSER_HOW})"
        )


@pytest.fixture(scope="session")
def _postgres_database() -> Iterator[str | None]:
    """A database of this run's own on the PostgreSQL server, so concurrent runs never meet."""
    if not POSTGRES_URL:
        yield None
        return
    with scratch_postgres_database("webwork_sso_test") as url:
        Database(url).dispose()
        yield url


@contextlib.contextmanager
def scratch_postgres_database(prefix: str) -> Iterator[str]:
    """An empty database of its own on the test PostgreSQL server, dropped afterwards."""
    assert POSTGRES_URL
    server = make_url(POSTGRES_URL)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def _migrated_template(
    _postgres_database: str | None, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Migrate once per run; each test then gets a copy (SQLite) or emptied tables (PostgreSQL)."""
    if _postgres_database:
        return _postgres_database
    path = tmp_path_factory.mktemp("template") / "template.db"
    Database(f"sqlite:///{path}").dispose()
    return str(path)


def fresh_database(template: str, directory: Path) -> str:
    """A fresh, migrated, empty database: this run's PostgreSQL database emptied, or a copy
    of the migrated SQLite template in ``directory``."""
    if POSTGRES_URL:
        engine = create_engine(template)
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return template
    path = directory / "webwork_sso.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def database_url(_migrated_template: str, tmp_path: Path) -> str:
    """The URL of a fresh, migrated, empty database."""
    return fresh_database(_migrated_template, tmp_path)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


class LiveServer:
    """A WSGI app served over real HTTP on a loopback port, in a background thread."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        # A short poll interval: shutdown() waits for it, once per server per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[..., Any]], LiveServer]]:
    """``serve(app)`` starts a real HTTP server for the test; all are stopped afterwards."""
    servers: list[LiveServer] = []

    def start(app: Callable[..., Any]) -> LiveServer:
        server = LiveServer(app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def dns_server() -> Iterator[TxtServer]:
    """A real DNS server on 127.0.0.1 (UDP) that serves the TXT records a test publishes."""
    server = TxtServer()
    yield server
    server.stop()
