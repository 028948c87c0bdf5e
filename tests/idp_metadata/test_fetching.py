"""Fetching IdP metadata over real HTTP: the SSRF rules, one deadline, one error."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from webwork_sso_middleware.errors import MetadataError, MetadataUnavailable
from webwork_sso_middleware.idp_metadata import document, fetching
from webwork_sso_middleware.idp_metadata.addresses import is_loopback
from webwork_sso_middleware.idp_metadata.fetching import MetadataFetcher, fetch
from webwork_sso_middleware.idp_metadata.parsing import parse

from .metadata_samples import OKTA_ENTITY_ID, okta_metadata

LOCAL = ("127.0.0.1",)  # the allow-list these tests serve metadata under, on purpose
GENERIC = MetadataUnavailable.REASON
SECRET = "internal-secret-5c1e"


# -- real HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every outgoing connection's address; one to anything but loopback is refused (and
    recorded) so no test ever reaches beyond this machine."""
    made: list[Any] = []
    real = socket.create_connection

    def guarded(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        made.append(address)
        if not is_loopback(address[0]):
            raise ConnectionRefusedError(f"the test refused a connection to {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    yield made


class Counting:
    """A WSGI app that answers as told and counts its requests."""

    def __init__(
        self,
        status: str = "200 OK",
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        *,
        sleep: float = 0.0,
    ) -> None:
        self.status, self.body, self.sleep = status, body, sleep
        self.headers = headers or [("Content-Type", "application/samlmetadata+xml")]
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.requests += 1
        time.sleep(self.sleep)
        start_response(self.status, self.headers)
        return [self.body]


def redirecting(location: str, status: str = "302 Found") -> Counting:
    return Counting(status, b"", [("Location", location), ("Content-Length", "0")])


def unavailable(call: Callable[[], Any]) -> MetadataUnavailable:
    with pytest.raises(MetadataUnavailable) as caught:
        call()
    assert caught.value.reason == GENERIC
    return caught.value


def test_fetch_returns_the_metadata_text(serve: Any, connections: list[Any]) -> None:
    xml = okta_metadata()
    server = serve(Counting(body=xml.encode()))

    text = fetch(f"{server.url}/app/exk1/sso/saml/metadata", allowed_hosts=LOCAL)

    assert text == xml and parse(text).entity_id == OKTA_ENTITY_ID
    assert len(connections) == 1


def test_fetch_respects_the_declared_encoding(serve: Any) -> None:
    from .metadata_samples import entity_descriptor

    xml = entity_descriptor(entity_id="https://idp.example/München", declaration=False)
    body = ('<?xml version="1.0" encoding="ISO-8859-1"?>' + xml).encode("latin-1")
    server = serve(Counting(body=body))

    assert parse(fetch(server.url, allowed_hosts=LOCAL)).entity_id == "https://idp.example/München"


def test_the_fetcher_carries_the_sites_settings(serve: Any) -> None:
    server = serve(Counting(body=okta_metadata().encode()))

    assert parse(MetadataFetcher(allowed_hosts=LOCAL)(server.url)).entity_id == OKTA_ENTITY_ID
    unavailable(lambda: MetadataFetcher()(server.url))


# -- refused addresses: nothing is even connected to ---------------------------------------------


def test_loopback_on_any_port_is_refused_without_a_connection(
    serve: Any, connections: list[Any]
) -> None:
    app = Counting(body=okta_metadata().encode())
    server = serve(app)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]

    for url in (
        server.url,
        f"http://127.0.0.1:{closed_port}/",
        "http://127.0.0.1/",
        "http://127.0.0.1:22/",
        f"https://127.0.0.1:{closed_port}/admin",
        f"http://127.1.2.3:{closed_port}/",
    ):
        unavailable(lambda: fetch(url))  # noqa: B023 - called at once

    assert connections == [] and app.requests == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]:8080/metadata",
        "https://[::1]/metadata",
        "https://[::ffff:127.0.0.1]:8080/metadata",
        "https://[fe80::1]/metadata",
        "https://10.0.0.1/metadata",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/metadata",
        "https://[fc00::1]/metadata",
        "https://0.0.0.0/metadata",
        "https://2130706433/metadata",
    ],
)
def test_internal_addresses_are_refused_without_a_connection(
    url: str, connections: list[Any]
) -> None:
    unavailable(lambda: fetch(url))
    assert connections == []


def test_a_name_that_resolves_to_loopback_is_refused_unless_allowed(
    serve: Any, connections: list[Any]
) -> None:
    app = Counting(body=okta_metadata().encode())
    port = serve(app).url.rpartition(":")[2]
    url = f"http://localhost:{port}/metadata"

    unavailable(lambda: fetch(url))
    unavailable(lambda: fetch(url, allowed_hosts=LOCAL))  # the name is what is allowed
    assert connections == [] and app.requests == 0

    assert parse(fetch(url, allowed_hosts=["LocalHost."])).entity_id == OKTA_ENTITY_ID
    assert app.requests == 1


def test_the_address_checked_is_the_address_connected_to(
    monkeypatch: pytest.MonkeyPatch, connections: list[Any]
) -> None:
    """DNS rebinding: the first answer is public, every later one internal. The connection goes
    to the address that was checked, and the name is not looked up again in between."""
    answers: list[str] = []
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.example":
            return real(host, *args, **kwargs)
        address = "93.184.216.34" if not answers else "127.0.0.1"
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)

    unavailable(lambda: fetch("https://rebind.example/metadata"))

    assert answers == ["93.184.216.34"]
    assert [address[0] for address in connections] == ["93.184.216.34"]


def test_a_name_with_any_internal_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, connections: list[Any]
) -> None:
    def split(host: Any, *args: Any, **kwargs: Any) -> Any:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0))
            for address in ("93.184.216.34", "10.0.0.7")
        ]

    monkeypatch.setattr(socket, "getaddrinfo", split)

    unavailable(lambda: fetch("https://split.example/metadata"))
    assert connections == []


# -- redirects -----------------------------------------------------------------------------------


def test_fetch_follows_a_redirect_between_allowed_hosts(serve: Any) -> None:
    target = serve(Counting(body=okta_metadata().encode()))
    hop = serve(redirecting(f"{target.url}/metadata", "301 Moved Permanently"))

    assert parse(fetch(f"{hop.url}/old", allowed_hosts=LOCAL)).entity_id == OKTA_ENTITY_ID


@pytest.mark.parametrize("target", ["localhost", "[::1]", "127.0.0.2", "[::ffff:127.0.0.1]"])
def test_a_redirect_from_an_allowed_host_to_a_forbidden_one_is_refused(
    serve: Any, connections: list[Any], target: str
) -> None:
    forbidden = Counting(body=okta_metadata().encode())
    port = serve(forbidden).url.rpartition(":")[2]
    hop = serve(redirecting(f"http://{target}:{port}/metadata"))

    unavailable(lambda: fetch(hop.url, allowed_hosts=LOCAL))

    assert forbidden.requests == 0
    assert [address[0] for address in connections] == ["127.0.0.1"]  # the allowed hop only


@pytest.mark.parametrize(
    "location",
    [
        "http://example.com/metadata",
        "file:///etc/passwd",
        "ftp://example.com/m",
        "https://169.254.169.254/latest/meta-data",
    ],
)
def test_a_redirect_to_what_would_not_be_fetched_is_refused(
    serve: Any, connections: list[Any], location: str
) -> None:
    server = serve(redirecting(location))

    unavailable(lambda: fetch(server.url, allowed_hosts=LOCAL))

    assert all(address[0] == "127.0.0.1" for address in connections)


def test_fetch_stops_after_a_few_redirects(serve: Any) -> None:
    hops: list[int] = []

    def loop(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        hops.append(1)
        start_response("302 Found", [("Location", f"/{len(hops)}"), ("Content-Length", "0")])
        return [b""]

    unavailable(lambda: fetch(serve(loop).url, allowed_hosts=LOCAL))
    assert len(hops) == fetching.MAX_REDIRECTS + 1


# -- one error for everything, and no echo -------------------------------------------------------


def test_every_failure_reads_the_same_and_echoes_nothing(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever the URL reaches, the caller learns only "could not get it": no port-scan or
    service-fingerprint oracle, and nothing of what the server said. The log has the detail."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}/metadata"
    page = f"<!DOCTYPE html><html><title>{SECRET}</title></html>".encode()
    cases = {
        "refused address": (serve(Counting(body=okta_metadata().encode())).url, ()),
        "connection refused": (closed, LOCAL),
        "HTTP 404": (serve(Counting("404 Not Found", SECRET.encode())).url, LOCAL),
        "HTTP 500": (serve(Counting("500 Internal Server Error", SECRET.encode())).url, LOCAL),
        "not XML": (serve(Counting(body=f'{{"secret": "{SECRET}"}}'.encode())).url, LOCAL),
        "an HTML page": (serve(Counting(body=page)).url, LOCAL),
        "another root": (serve(Counting(body=f"<{SECRET} a='1'/>".encode())).url, LOCAL),
        "bad encoding": (serve(Counting(body=b"<x>\xff\xfe</x>")).url, LOCAL),
        "too slow": (serve(Counting(body=b"<x/>", sleep=1.5)).url, LOCAL),
    }
    said = {}
    with caplog.at_level(logging.WARNING, logger="webwork_sso_middleware.idp_metadata.fetching"):
        for name, (url, allowed) in cases.items():
            error = unavailable(lambda: fetch(url, allowed_hosts=allowed, timeout=0.5))  # noqa: B023
            said[name] = str(error)

    assert len(set(said.values())) == 1, said
    assert SECRET not in next(iter(said.values()))
    # The server log says what happened, one line each.
    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) == len(cases) and all("\n" not in line for line in logged)
    assert any("is not a public address" in line for line in logged)
    assert any("HTTP 404" in line for line in logged)


# -- size and time -------------------------------------------------------------------------------


def test_fetch_refuses_a_body_over_the_cap(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    declared = serve(Counting(body=b"x" * 1001, headers=[("Content-Length", "1001")]))
    unavailable(lambda: fetch(declared.url, allowed_hosts=LOCAL, max_bytes=1000))
    assert "announced 1001 bytes" in caplog.text

    def undeclared(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/xml")])  # no Content-Length
        for _ in range(20):
            yield b"x" * 100

    unavailable(lambda: fetch(serve(undeclared).url, allowed_hosts=LOCAL, max_bytes=1000))
    assert "more than the limit of 1000 bytes" in caplog.text
    document = okta_metadata().encode()
    exact = serve(Counting(body=document))
    assert fetch(exact.url, allowed_hosts=LOCAL, max_bytes=len(document)) == document.decode()


def test_fetch_gives_up_on_a_server_that_does_not_answer(serve: Any) -> None:
    server = serve(Counting(body=okta_metadata().encode(), sleep=3))
    started = time.monotonic()

    unavailable(lambda: fetch(server.url, allowed_hosts=LOCAL, timeout=0.3))

    assert time.monotonic() - started < 1.5


def test_one_deadline_bounds_a_server_that_drips_its_body(serve: Any) -> None:
    def drip(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/xml")])
        for _ in range(30):
            yield b"<"
            time.sleep(0.1)  # each byte well within any socket timeout, the whole far beyond

    started = time.monotonic()
    unavailable(lambda: fetch(serve(drip).url, allowed_hosts=LOCAL, timeout=0.5))
    assert time.monotonic() - started < 1.2


def test_one_deadline_bounds_a_server_that_drips_its_headers() -> None:
    """A byte of the status line and headers at a time: the socket timeout restarts at each,
    so only the whole-fetch deadline ends it."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip_headers() -> None:
        connection, _ = listener.accept()
        with connection:
            for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 200:
                if stop.wait(0.05):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    worker = threading.Thread(target=drip_headers, daemon=True)
    worker.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/metadata"
    try:
        started = time.monotonic()
        unavailable(lambda: fetch(url, allowed_hosts=LOCAL, timeout=0.6))
        assert time.monotonic() - started < 1.3
    finally:
        stop.set()
        listener.close()
        worker.join(5)


def test_one_deadline_covers_every_redirect(serve: Any) -> None:
    target = serve(Counting(body=okta_metadata().encode(), sleep=0.3))
    second = serve(
        Counting("302 Found", b"", [("Location", target.url), ("Content-Length", "0")], sleep=0.3)
    )
    first = serve(
        Counting("302 Found", b"", [("Location", second.url), ("Content-Length", "0")], sleep=0.3)
    )

    assert parse(fetch(first.url, allowed_hosts=LOCAL, timeout=3)).entity_id == OKTA_ENTITY_ID
    started = time.monotonic()
    unavailable(lambda: fetch(first.url, allowed_hosts=LOCAL, timeout=0.7))  # each hop in time
    assert time.monotonic() - started < 1.2


# -- https: pinned, and the certificate still checked against the name ---------------------------


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for idp.test only."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("idp.test")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (
        directory / "ca.pem",
        directory / "idp.pem",
        directory / "idp.key",
    )
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


def test_https_keeps_checking_the_certificate_against_the_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from werkzeug.serving import make_server

    ca_file, cert_file, key_file = _tls_files(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = make_server(
        "127.0.0.1", 0, Counting(body=okta_metadata().encode()), threaded=True, ssl_context=context
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    real = socket.getaddrinfo

    def names(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("idp.test", "other.test"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", names)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # trust the test CA (OpenSSL reads it)
    port = server.server_port
    try:
        allowed = ("idp.test", "other.test")
        text = fetch(f"https://idp.test:{port}/metadata", allowed_hosts=allowed)
        assert parse(text).entity_id == OKTA_ENTITY_ID
        # The same server and address, under a name its certificate does not carry: refused.
        unavailable(lambda: fetch(f"https://other.test:{port}/metadata", allowed_hosts=allowed))
        # And without the allow-list the name's loopback address is refused before TLS.
        unavailable(lambda: fetch(f"https://idp.test:{port}/metadata"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_plain_http_beyond_loopback_is_refused_before_any_connection(
    connections: list[Any],
) -> None:
    with pytest.raises(MetadataError, match="plain http"):
        fetch("http://example.com/app/exk1/sso/saml/metadata", allowed_hosts=["example.com"])
    with pytest.raises(MetadataError, match="not an https URL"):
        fetch("file:///etc/passwd")
    assert connections == []


def test_module_defaults() -> None:
    assert fetching.DEFAULT_TIMEOUT == 10.0 and document.DEFAULT_MAX_BYTES == 2 * 1024 * 1024
