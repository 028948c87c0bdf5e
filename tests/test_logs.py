"""logs: what a request sends can never start a log line of its own (log forging)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.errors import ConfigurationError
from webwork_sso_middleware.logs import (
    REQUEST_ID_KEY,
    JsonFormatter,
    begin_request,
    end_request,
    escape_log_text,
    package_logger,
)

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


# -- structured fields and JSON lines ------------------------------------------------------------

JSON_KEYS = {"time", "level", "logger", "event", "workspace", "reason", "request_id", "message"}
PACKAGE = "webwork_sso_middleware"


def echo_request_id(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ[REQUEST_ID_KEY].encode()]


@pytest.fixture
def json_site(serve: Callable[[Any], Any], database_url: str) -> Iterator[str]:
    middleware = SSOMiddleware(
        echo_request_id, database_url=database_url, secret_key=SECRET, log_format="json"
    )
    yield serve(middleware).url
    middleware.close()


def json_records(err: str) -> list[dict[str, Any]]:
    found = []
    for line in err.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger", "").startswith(PACKAGE):
                found.append(record)
    return found


def test_json_lines_name_event_workspace_reason_and_request_id(json_site, capsys):
    # A slug that tries to end the line and to add keys of its own.
    slug = 'a\n{"level": "CRITICAL"}\u2028", "event": "forged'
    capsys.readouterr()
    answer = requests.post(
        f"{json_site}/saml/{requests.utils.quote(slug, safe='')}/acs",
        data={"SAMLResponse": "eA=="},
        headers={"X-Request-Id": "edge-4f2a9c1b"},
        timeout=5,
    )
    assert answer.status_code == 400
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if PACKAGE in line]
    assert lines and all(line.isascii() and line.startswith("{") for line in lines)
    (record,) = json_records(err)
    assert set(record) == JSON_KEYS
    assert record["event"] == "sign_in.refused" and record["level"] == "INFO"
    assert record["workspace"] == slug  # exactly as sent: JSON's escaping is the escaping
    assert record["reason"] and record["request_id"] == "edge-4f2a9c1b"
    assert slug in record["message"]  # not the text mode's backslash escapes
    assert record["time"].endswith("Z") and record["logger"] == f"{PACKAGE}.saml.failures"


@pytest.mark.parametrize(
    "offered",
    [
        "short",
        "has space 123",
        "x" * 129,
        'quo"te12345',
        "semi;colon1234",
        "zo\u00eb-123456",
        "-leading-dash",
    ],
)
def test_an_odd_request_id_is_replaced_by_a_fresh_one(json_site, offered):
    answer = requests.get(json_site + "/", headers={"X-Request-Id": offered}, timeout=5)
    assert re.fullmatch(r"[0-9a-f]{32}", answer.text), answer.text


def test_each_request_gets_an_id_and_a_well_formed_one_is_kept(json_site):
    first, second = (requests.get(json_site + "/", timeout=5).text for _ in range(2))
    assert first != second and re.fullmatch(r"[0-9a-f]{32}", first)
    kept = "0b7c8a6e-9a51-4d0e-8f5a-0c1d2e3f4a5b"
    assert requests.get(json_site + "/", headers={"X-Request-Id": kept}, timeout=5).text == kept


def test_the_json_option_touches_only_the_package_logger_and_close_undoes_it(database_url):
    package = logging.getLogger(PACKAGE)
    root_handlers = list(logging.getLogger().handlers)
    before = (list(package.handlers), package.level, package.propagate)
    first = SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET, log_format="json")
    second = SSOMiddleware(
        host_app, database_url=database_url, secret_key=SECRET, log_format="JSON"
    )
    try:
        assert len(package.handlers) == len(before[0]) + 1  # once, however many middlewares
        assert package.propagate is False and package.level == logging.INFO
        assert isinstance(package.handlers[-1].formatter, JsonFormatter)
        assert logging.getLogger().handlers == root_handlers
        first.close()
        assert len(package.handlers) == len(before[0]) + 1  # the second still uses it
    finally:
        first.close()
        second.close()
    assert (list(package.handlers), package.level, package.propagate) == before
    text = SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET)
    assert text.json_lines is None and package.handlers == before[0]
    text.close()


def test_the_option_comes_from_the_environment_and_is_checked(database_url, monkeypatch):
    monkeypatch.setenv("WEBWORK_SSO_LOG_FORMAT", "json")
    middleware = SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET)
    assert middleware.json_lines is not None
    middleware.close()
    with pytest.raises(ConfigurationError, match="log_format.*must be text or json"):
        SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET, log_format="xml")


def test_the_formatter_keeps_its_keys_whatever_the_values(caplog):
    formatter = JsonFormatter()
    log = package_logger("webwork_sso_middleware.scim.app")
    hostile = '", "level": "CRITICAL", "x": "\n\r\u0085'
    with caplog.at_level(logging.INFO, logger=PACKAGE):
        log.info("user %s", hostile, extra={"event": "scim.write_refused", "workspace": hostile})
        token = begin_request({"HTTP_X_REQUEST_ID": "abcdef-123"})
        try:
            logging.getLogger("myhostapp").warning("host says %s", "hi")
            # A host handler formats as the record is logged, in the request's context.
            host = formatter.format(caplog.records[-1])
        finally:
            end_request(token)
        assert json.loads(formatter.format(caplog.records[-1]))["request_id"] is None  # ended
    ours = formatter.format(caplog.records[0])
    document = json.loads(ours)
    assert set(document) == JSON_KEYS and "\n" not in ours and ours.isascii()
    assert document["level"] == "INFO" and document["workspace"] == hostile
    assert document["message"] == f"user {hostile}" and document["request_id"] is None
    # A host's own record, formatted by the host's handler: it gets the request's id too.
    assert json.loads(host)["request_id"] == "abcdef-123"
    assert json.loads(host)["message"] == "host says hi" and json.loads(host)["event"] is None


# -- the call sites' fields, in text mode (the host's own handlers see them as attributes) -------


@pytest.fixture
def scim_site(serve: Callable[[Any], Any], database_url: str, idp: Any) -> Iterator[Any]:
    from .saml.conftest import Site

    made = Site(serve, database_url)
    made.token = made.add_workspace("acme", idp)
    yield made
    made.middleware.close()


def fields_of(record: logging.LogRecord) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in ("event", "workspace", "reason"))


def test_a_refused_scim_write_names_its_workspace_and_reason(scim_site, caplog):
    from .scim.conftest import okta_user

    headers = {
        "Authorization": f"Bearer {scim_site.token}",
        "Content-Type": "application/scim+json",
        "X-Request-Id": "scim-req-0001",
    }
    url = f"{scim_site.url}/scim/v2/Users"
    assert requests.post(url, json=okta_user("ada@acme.test"), headers=headers).status_code == 201
    with caplog.at_level(logging.INFO, logger=PACKAGE):
        again = requests.post(url, json=okta_user("ada@acme.test"), headers=headers)
        wrong = requests.get(url, headers={"Authorization": "Bearer nope"})
    assert (again.status_code, wrong.status_code) == (409, 401)
    refused = [r for r in package_records(caplog) if r.event == "scim.write_refused"]
    assert [fields_of(r) for r in refused] == [("scim.write_refused", "acme", "uniqueness")]
    assert refused[0].request_id == "scim-req-0001"
    (token,) = [r for r in package_records(caplog) if r.event == "scim.token_refused"]
    assert token.workspace is None and token.reason == "invalid_token"


def test_sign_ins_accepted_and_refused_are_events(scim_site, idp, caplog):
    from .admin.conftest import sign_in

    with caplog.at_level(logging.INFO, logger=PACKAGE):
        accepted = sign_in(requests.Session(), scim_site, idp, "dave@acme.test")
        refused = requests.post(
            f"{scim_site.url}/saml/acme/acs", data={"SAMLResponse": "eA=="}, timeout=5
        )
    assert (accepted.status_code, refused.status_code) == (303, 400)
    events = [fields_of(r) for r in package_records(caplog) if r.event]
    assert ("sign_in.accepted", "acme", None) in events
    assert [e for e in events if e[0] == "sign_in.refused"] == [
        ("sign_in.refused", "acme", "malformed_xml")
    ]
