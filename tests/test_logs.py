"""logs: what a request sends can never start a log line of its own (log forging)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.logs import escape_log_text, package_logger

from .constants import SECRET

# Each starts a new line in some log viewer: LF, CR, NEL (U+0085), LINE SEPARATOR (U+2028).
LINE_BREAKS = ["\n", "\r", "\u0085", "\u2028"]


def host_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"host"]


@pytest.fixture
def site_url(serve: Callable[[Any], Any], database_url: str) -> Iterator[str]:
    middleware = SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET)
    yield serve(middleware).url
    middleware.close()


def package_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("webwork_sso_middleware")]


@pytest.mark.parametrize("line_break", LINE_BREAKS)
def test_a_line_break_in_the_slug_writes_one_line(site_url, caplog, line_break):
    slug = f"a{line_break}FAKE LINE: admin signed in"
    encoded = requests.utils.quote(slug, safe="")
    with caplog.at_level(logging.INFO, logger="webwork_sso_middleware"):
        answer = requests.post(
            f"{site_url}/saml/{encoded}/acs", data={"SAMLResponse": "eA=="}, timeout=5
        )

    assert answer.status_code == 400
    (record,) = package_records(caplog)
    message = record.getMessage()
    assert message.splitlines() == [message]  # no raw line break of any kind
    assert escape_log_text(line_break) in message and "FAKE LINE" in message


@pytest.mark.parametrize("line_break", LINE_BREAKS)
def test_every_argument_of_a_package_record_is_escaped(caplog, line_break):
    user_name = f"dave@acme.test{line_break}INFO forged entry"
    log = package_logger("webwork_sso_middleware.scim.users")
    with caplog.at_level(logging.INFO, logger="webwork_sso_middleware"):
        log.info("created %s (%d of %.1f) %r", user_name, 3, 2.5, user_name)
        log.info("by name %(user)s", {"user": user_name})
        log.warning(user_name)  # a message that is itself request data

    messages = [r.getMessage() for r in package_records(caplog)]
    assert len(messages) == 3 and all(m.splitlines() == [m] for m in messages)
    assert messages[0].startswith("created dave@acme.test") and "(3 of 2.5)" in messages[0]


def test_escaping_is_unambiguous_and_leaves_ordinary_text_alone():
    assert escape_log_text("Zoë O'Neil — ünïcode ✓") == "Zoë O'Neil — ünïcode ✓"
    assert escape_log_text("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert escape_log_text("\x00\x1b[31m\x7f\u0085\u2028\u2029\u202e\ufeff") == (
        "\\x00\\x1b[31m\\x7f\\x85\\u2028\\u2029\\u202e\\ufeff"
    )
    assert escape_log_text("typed \\n, not a newline") == "typed \\\\n, not a newline"


def test_only_the_packages_own_loggers_get_the_filter():
    package_logger("webwork_sso_middleware.saml.app")

    assert logging.getLogger().filters == []
    assert logging.getLogger("webwork_sso_middleware").filters == []  # parents untouched
    assert logging.getLogger("werkzeug").filters == []
    with pytest.raises(ValueError):
        package_logger("myhostapp.views")
    with pytest.raises(ValueError):
        package_logger("webwork_sso_middleware_other")


def test_a_host_record_is_left_as_it_is(caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("myhostapp").info("two\nlines %s", "a\nb")
    (record,) = [r for r in caplog.records if r.name == "myhostapp"]
    assert record.getMessage() == "two\nlines a\nb"
