"""The development servers' request log: redacted, escaped, coloured only on a terminal.

tests/test_cli.py checks the log of a real ``serve`` in a child process (a pipe, as a file);
here, one werkzeug server in-process with the handler, and the redaction rules one by one.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from webwork_sso_middleware.devidp.request_log import RedactingRequestHandler, redact_target


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("/idp/sso?SAMLRequest=fZJN&RelayState=%2Fhome&SigAlg=rsa&Signature=c2ln",
         "/idp/sso?SAMLRequest=…&RelayState=…&SigAlg=…&Signature=…"),
        ("/acs?samlresponse=PD94&SAMLart=AAQ", "/acs?samlresponse=…&SAMLart=…"),
        # A name spelled with percent-escapes is still recognised (and shown decoded).
        ("/x?SAML%52equest=abc", "/x?SAMLRequest=…"),
        ("/saml/demo/settings?link=eyJ3.abc.def", "/saml/demo/settings?link=…"),
        ("/cb?code=1;id_token=2&access_token=3&api_key=4&password=5",
         "/cb?code=…;id_token=…&access_token=…&api_key=…&password=…"),
        # Whatever its name, a long unbroken value looks like a credential.
        ("/x?q=" + "A" * 40, "/x?q=…"),
        ("/x?" + "b" * 40, "/x?…"),
        # What is not a credential stays, so the log still says what was asked.
        ("/activity?state=all&page=2&tested=1", "/activity?state=all&page=2&tested=1"),
        ("/saml/demo/login?next=%2Fteam", "/saml/demo/login?next=%2Fteam"),
        ("/caf%C3%A9", "/café"),
    ],
)  # fmt: skip
def test_redact_target(target: str, shown: str) -> None:
    assert redact_target(target) == shown


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """What the werkzeug logger (where the request log goes) receives, formatted."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("werkzeug")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def request(raw: bytes) -> None:
    server = make_server("127.0.0.1", 0, hello, request_handler=RedactingRequestHandler)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as client:
            client.sendall(raw)
            client.recv(1024)
    finally:
        thread.join(10)
        server.server_close()


def test_a_request_line_is_logged_redacted_and_escaped_without_colour(
    log_lines: list[str],
) -> None:
    request(b"GET /p\x1b]0;x\x07\x9b?RelayState=s3cret HTTP/1.1\r\nHost: x\r\n\r\n")

    (line,) = [line for line in log_lines if "GET" in line]
    assert line.endswith('"GET /p\\x1b]0;x\\x07\\x9b?RelayState=… HTTP/1.1" 404 -')
    assert "s3cret" not in line


def test_colour_only_when_stderr_is_a_terminal(
    log_lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stderr", Terminal())
    request(b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")

    (line,) = [line for line in log_lines if "GET" in line]
    assert '"\x1b[33mGET /missing HTTP/1.1\x1b[0m" 404' in line


def test_a_request_line_that_does_not_parse_is_redacted_too(log_lines: list[str]) -> None:
    request(b"GET /x?SAMLRequest=s3cret HTTP/1.1 extra\x1b\r\n\r\n")

    assert log_lines and not any("s3cret" in line or "\x1b" in line for line in log_lines)
    assert any("SAMLRequest=…" in line for line in log_lines)
