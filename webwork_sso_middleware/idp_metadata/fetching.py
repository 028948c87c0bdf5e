"""Fetching IdP metadata from its URL without becoming a way into the site's own network.

A workspace owner chooses the URL, and every owner may be hostile, so (issue 9, SSRF):

- Only globally routable addresses are fetched: the host is resolved here, every address it has
  must be public (:mod:`.addresses`), and the connection goes to the address that was checked
  (pinned), so a DNS answer that changes between the check and the connect cannot reach an
  internal host. TLS still verifies the certificate against the host name. Hosts the operator
  names in ``metadata_allowed_hosts`` skip the address check (testing, an IdP on the site's own
  network).
- Redirects are followed here, a few at most, each one checked like the first URL.
- One deadline bounds the whole fetch: DNS, connects, TLS, redirects and a dripping body.
- Every failure a caller could use as an oracle (refused address, connection refused, timeout,
  HTTP status, not XML, not SAML metadata) raises the same :class:`MetadataUnavailable`; nothing
  of what the server sent comes back. The detail goes to the server log, escaped.

No proxy is used: the proxy would resolve the name itself, which defeats the check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

from ..config import Settings, normalise_host
from ..errors import MetadataError, MetadataUnavailable
from .addresses import IPAddress, check_url, is_public_address, shown
from .document import DEFAULT_MAX_BYTES, decode_document, metadata_root

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds, for the whole fetch
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# What gets metadata from a URL: fetch, a MetadataFetcher, or a test's stand-in.
Fetch = Callable[[str], str]


@dataclasses.dataclass(frozen=True)
class MetadataFetcher:
    """``fetch`` with the site's settings bound: what Workspaces, the settings page and the
    refresh call with a URL."""

    allowed_hosts: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> MetadataFetcher:
        return cls(
            allowed_hosts=settings.metadata_allowed_hosts, timeout=settings.metadata_fetch_timeout
        )

    def __call__(self, url: str) -> str:
        return fetch(
            url, allowed_hosts=self.allowed_hosts, timeout=self.timeout, max_bytes=self.max_bytes
        )


def fetch(
    url: str,
    *,
    allowed_hosts: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> str:
    """GET the SAML metadata at ``url`` and return it as text.

    Raises :class:`MetadataError` naming the problem when the URL itself is unacceptable (not
    https, say), and :class:`MetadataUnavailable`, always with the same words, for anything
    that happened on the way to it or came back from it. ``timeout`` bounds the whole fetch;
    at most ``max_bytes`` are read. The result is XML whose root is SAML metadata.
    """
    url = url.strip()
    check_url(url)
    allowed = frozenset(normalise_host(host) for host in allowed_hosts)
    guard = _Guard(timeout)
    try:
        text = _follow(url, allowed, guard, max_bytes)
        metadata_root(text)  # not XML, or XML but not SAML metadata: the same answer
        return text
    except _Refused as refused:
        detail = refused.detail
    except MetadataError as error:
        detail = error.reason
    except (OSError, http.client.HTTPException, ValueError) as error:
        detail = f"{type(error).__name__}: {error}"
    finally:
        guard.stop()
    if guard.passed():
        detail = f"no metadata within the {timeout:g} s deadline ({detail})"
    # Only here does the reason appear; repr() keeps a newline in it from forging a log line.
    log.warning("fetching IdP metadata from %r failed: %r", shown(url), detail)
    raise MetadataUnavailable()


class _Refused(Exception):
    """A fetch failure, with the detail for the server log only."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Guard:
    """The fetch's one deadline, enforced by a timer that cuts the open connection when it
    passes: a socket timeout alone restarts at every byte, so a dripping server would never
    meet it."""

    def __init__(self, timeout: float) -> None:
        self.ends = time.monotonic() + timeout
        self.expired = False
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._timer = threading.Timer(timeout, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0 or self.expired:
            self.expired = True
            raise _Refused("deadline passed")
        return left

    def passed(self) -> bool:
        # A socket timeout set to the time remaining may fire a hair before the timer does.
        return self.expired or time.monotonic() >= self.ends - 0.01

    def watch(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._socket = sock
            if self.expired:
                self._shut(sock)

    def stop(self) -> None:
        self._timer.cancel()
        self.watch(None)

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            self._shut(self._socket)

    @staticmethod
    def _shut(sock: socket.socket | None) -> None:
        if sock is None:
            return
        # The plain socket's shutdown, also under TLS: a blocked read returns at once. OSError:
        # the socket is already closed or was never connected; nothing is left to wake.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _follow(url: str, allowed: frozenset[str], guard: _Guard, max_bytes: int) -> str:
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        status, location, body = _get(parts, _addresses(parts, allowed, guard), guard, max_bytes)
        if status in REDIRECT_STATUSES:
            if not location:
                raise _Refused(f"HTTP {status} without a Location")
            url = urljoin(url, location.strip())
            try:
                check_url(url)
            except MetadataError as error:
                raise _Refused(f"redirected to a refused URL: {error.reason}") from None
            continue
        if status != 200:
            raise _Refused(f"HTTP {status}")
        return decode_document(body)
    raise _Refused(f"more than {MAX_REDIRECTS} redirects")


def _addresses(parts: SplitResult, allowed: frozenset[str], guard: _Guard) -> list[str]:
    """The addresses to connect to: all of the host's, when every one of them is public."""
    host = parts.hostname or ""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    found = [literal] if literal is not None else _resolve(host, guard)
    if not found:
        raise _Refused(f"{host} has no address")
    if normalise_host(host) not in allowed:
        refused = [str(address) for address in found if not is_public_address(address)]
        if refused:  # one private answer is enough: which one we'd get is the resolver's choice
            raise _Refused(
                f"{host} is not a public address"
                if literal is not None
                else f"{host} resolves to an address that is not public: {refused[0]}"
            )
    return [str(address) for address in found]


def _resolve(host: str, guard: _Guard) -> list[IPAddress]:
    """getaddrinfo, within the deadline (it has no timeout of its own)."""
    answer: list[Any] = []

    def look_up() -> None:
        try:
            answer.append(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as error:
            answer.append(error)

    worker = threading.Thread(target=look_up, daemon=True)
    worker.start()
    worker.join(guard.remaining())
    if not answer:
        guard.remaining()
        raise _Refused(f"no DNS answer for {host} in time")
    if isinstance(answer[0], Exception):
        raise _Refused(f"cannot resolve {host}: {answer[0]}")
    addresses: list[IPAddress] = []
    for _, _, _, _, sockaddr in answer[0]:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to the address that was checked, whatever DNS says by now; the
    Host header and TLS (SNI, certificate check) use the host name."""

    def __init__(self, parts: SplitResult, address: str, guard: _Guard) -> None:
        tls = parts.scheme.lower() == "https"
        self.default_port = 443 if tls else 80
        super().__init__(
            parts.hostname or "", parts.port or self.default_port, timeout=guard.remaining()
        )
        self.address = address
        self.guard = guard
        self.tls = ssl.create_default_context() if tls else None
        self.pinned: socket.socket | None = None  # kept: http.client drops self.sock early

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.guard.remaining())
        self.guard.watch(sock)
        if self.tls is not None:
            sock = self.tls.wrap_socket(
                sock, server_hostname=self.host, do_handshake_on_connect=False
            )
            self.guard.watch(sock)
            sock.settimeout(self.guard.remaining())
            sock.do_handshake()
        self.sock = self.pinned = sock


def _get(
    parts: SplitResult, addresses: list[str], guard: _Guard, max_bytes: int
) -> tuple[int, str | None, bytes]:
    """One GET: the status, a redirect's Location, and the body (of a 200 only)."""
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    failures = []
    for address in addresses:
        connection = _PinnedConnection(parts, address, guard)
        try:
            connection.connect()
        except OSError as error:
            failures.append(f"{address}: {error}")
            connection.close()
            continue
        try:
            connection.request("GET", path, headers={
                "Accept": "application/samlmetadata+xml, application/xml;q=0.9, "
                          "text/xml;q=0.8, */*;q=0.1",
                "User-Agent": "webwork-sso-middleware (SAML metadata refresh)",
            })  # fmt: skip
            response = connection.getresponse()
            if response.status != 200:
                return response.status, response.getheader("Location"), b""
            assert connection.pinned is not None
            return 200, None, _read_capped(response, connection.pinned, max_bytes, guard)
        finally:
            connection.close()
    guard.remaining()
    raise _Refused("cannot connect: " + "; ".join(failures))


def _read_capped(
    response: http.client.HTTPResponse, sock: socket.socket, max_bytes: int, guard: _Guard
) -> bytes:
    length = response.getheader("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise _Refused(f"announced {int(length)} bytes, more than the limit of {max_bytes}")
    chunks: list[bytes] = []
    total = 0
    while True:
        sock.settimeout(guard.remaining())  # the response reads from this socket
        chunk = response.read1(min(65536, max_bytes + 1 - total))
        guard.remaining()  # a cut connection reads as the end: it is not
        if not chunk:
            if response.length:  # fewer bytes than the Content-Length said
                raise _Refused("the body ended early")
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise _Refused(f"more than the limit of {max_bytes} bytes")
