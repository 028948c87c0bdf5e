"""Fixtures shared by every test: a fresh real database (SQLite, or PostgreSQL when
WEBWORK_SSO_TEST_DATABASE_URL is set), workspaces in it, and real HTTP servers."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from werkzeug.serving import BaseWSGIServer, make_server

from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import Base

POSTGRES_URL = os.environ.get("WEBWORK_SSO_TEST_DATABASE_URL")
SECRET = "test-secret-key"


def pytest_report_header() -> str:
    return f"webwork-sso database: {POSTGRES_URL or 'SQLite (temporary files)'}"


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per run; each test then gets a copy (SQLite) or emptied tables (PostgreSQL)."""
    if POSTGRES_URL:
        engine = create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
        Database(POSTGRES_URL).dispose()
        return POSTGRES_URL
    path = tmp_path_factory.mktemp("template") / "template.db"
    Database(f"sqlite:///{path}").dispose()
    return str(path)


@pytest.fixture
def database_url(_migrated_template: str, tmp_path: Path) -> str:
    """The URL of a fresh, migrated, empty database."""
    if POSTGRES_URL:
        engine = create_engine(POSTGRES_URL)
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return POSTGRES_URL
    path = tmp_path / "webwork_sso.db"
    shutil.copyfile(_migrated_template, path)
    return f"sqlite:///{path}"


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
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
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
