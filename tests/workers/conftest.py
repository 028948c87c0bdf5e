"""Module-wide fixtures for the multi-process tests: one database, one IdP, the workers.

Starting the workers takes a second or two, so one set serves the whole module; each test
works in its own workspace or with its own members.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import POSTGRES_URL, LiveServer, fresh_database
from ..saml.idp import TestIdP
from .cluster import Cluster, locked

# Several real server processes on PostgreSQL; on the SQLite run, two processes on one file.
WORKERS = 3 if POSTGRES_URL else 2


def start_idp(workdir: Path) -> tuple[TestIdP, LiveServer]:
    """A TestIdP over real HTTP that answers one request at a time (pysaml2's Server keeps
    unguarded state, and the load signs from several threads)."""
    app: list[Any] = []
    live = LiveServer(locked(lambda environ, start_response: app[0](environ, start_response)))
    idp = TestIdP(live.url, workdir, name="Cluster IdP")
    app.append(idp.wsgi_app)
    return idp, live


@pytest.fixture(scope="module")
def shared_database_url(_migrated_template: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return fresh_database(_migrated_template, tmp_path_factory.mktemp("workers_db"))


@pytest.fixture(scope="module")
def cluster_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestIdP]:
    idp, live = start_idp(tmp_path_factory.mktemp("cluster_idp"))
    yield idp
    live.stop()


@pytest.fixture(scope="module")
def cluster(
    shared_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    started = Cluster.start(
        shared_database_url, WORKERS, tmp_path_factory.mktemp("worker_logs"), recheck=1.0
    )
    yield started
    started.stop()
