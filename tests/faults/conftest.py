"""Database faults made for real: PostgreSQL becomes unreachable (a TCP proxy in front of it is
cut), SQLite becomes locked (another connection holds an exclusive lock).

``outage.url`` is the database URL to give the middleware; ``outage.cut()`` starts the fault,
``outage.restore()`` ends it. The test's own checks use ``database_url``, which never breaks.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from ..saml.idp import TestIdP


@pytest.fixture
def idp(serve: Callable[[Any], Any], tmp_path: Path) -> TestIdP:
    """A real IdP over HTTP, as tests/saml/conftest.py's."""
    return TestIdP.start(serve, tmp_path / "idp", name="Test IdP")


class TcpProxy:
    """127.0.0.1:<port> forwarded to a server. ``cut()`` closes the listener and every
    forwarded connection (clients see the server vanish; new connections are refused);
    ``restore()`` listens on the same port again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)  # wakes accept()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _close(client)
                    _close(upstream)
                    continue
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            _close(sock)
            with self._lock:
                self._sockets.discard(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already shut or never connected
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() or accept()
    sock.close()


class PostgresOutage:
    """The middleware reaches PostgreSQL through a proxy; cutting it is the server going away."""

    backend = "postgresql"
    reads_survive = False  # nothing at all reaches the database

    def __init__(self, database_url: str) -> None:
        real = make_url(database_url)
        self.proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
        self.url = real.set(host="127.0.0.1", port=self.proxy.port).render_as_string(
            hide_password=False
        )

    def cut(self) -> None:
        self.proxy.cut()

    def restore(self) -> None:
        self.proxy.restore()

    def close(self) -> None:
        self.proxy.cut()


class SqliteOutage:
    """Another connection holds an exclusive lock: writers wait out the busy timeout. In WAL
    mode readers are never blocked, so reads (SCIM GETs, session checks) keep working."""

    backend = "sqlite"
    reads_survive = True

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.path = make_url(database_url).database
        self._holder: sqlite3.Connection | None = None

    def cut(self) -> None:
        holder = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        self._holder = holder

    def restore(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()

    def close(self) -> None:
        self.restore()


Outage = PostgresOutage | SqliteOutage


@pytest.fixture
def outage(database_url: str) -> Iterator[Outage]:
    """The fault for this run's backend (see the module docstring)."""
    made: Outage = (
        PostgresOutage(database_url)
        if make_url(database_url).get_backend_name() == "postgresql"
        else SqliteOutage(database_url)
    )
    yield made
    made.close()
