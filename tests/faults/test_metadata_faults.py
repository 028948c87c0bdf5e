"""The IdP's metadata URL down, slow or serving garbage: sign-in goes on with the last good copy,
and the failure is recorded where the settings page shows it (the IdP's last_refresh_error and
the audit event metadata_refresh_failed).

The metadata is served over real HTTP by a server the test controls. A refresh is made due by
moving identity_providers.refresh_after into the past; each sign-in then goes to a fresh
middleware (a new worker: empty caches, including SamlApplication's once-a-minute check).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import select, update
from werkzeug.serving import BaseWSGIServer, make_server

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.errors import MetadataUnavailable
from webwork_sso_middleware.store.db import UnitOfWork
from webwork_sso_middleware.store.identity_providers import RETRY_AFTER_FAILURE
from webwork_sso_middleware.store.models import AuditEvent, IdentityProvider, utcnow

from ..saml.conftest import host_app
from ..saml.idp import TestIdP

BASE_URL = "http://sp.metadata.test"  # every worker's base_url; requests go to a worker's port
FETCH_TIMEOUT = 1.0


class MetadataHost:
    """Serves the IdP's metadata at /metadata, or fails as told; can go down and come back
    on the same port."""

    def __init__(self, idp: TestIdP) -> None:
        self.idp = idp
        self.fault: str | None = None
        self.fetches = 0
        self.port = 0
        self._server: BaseWSGIServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metadata"

    def up(self) -> None:
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.fetches += 1
        good = self.idp.metadata_xml().encode()
        status, body, content_type = "200 OK", good, "application/samlmetadata+xml"
        if self.fault == "slow":
            time.sleep(FETCH_TIMEOUT * 3)  # answers, but long after the fetch gave up
        elif self.fault == "http_500":
            status, body, content_type = "500 Internal Server Error", b"oops", "text/plain"
        elif self.fault == "html_page":
            body, content_type = b"<html><body><h1>Maintenance</h1></body></html>", "text/html"
        elif self.fault == "binary":
            body, content_type = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20, "image/png"
        elif self.fault == "truncated":
            body = good[: len(good) // 2]
        elif self.fault == "empty":
            body = b""
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]


class Workers:
    """Middleware instances on one database and one base_url, each served on its own port:
    ``fresh()`` is a new worker, with nothing cached."""

    def __init__(self, serve: Callable[[Any], Any], database_url: str) -> None:
        self.serve = serve
        self.database_url = database_url
        self.started: list[SSOMiddleware] = []
        self.fetch_timeout = FETCH_TIMEOUT

    def fresh(self) -> tuple[SSOMiddleware, str]:
        # The metadata host is on 127.0.0.1: allowed on purpose, as an operator would allow an
        # IdP on the site's own network. The fetch's deadline (10 s by default) is shortened so
        # that "slow" takes a second.
        middleware = SSOMiddleware(
            host_app,
            database_url=self.database_url,
            secret_key="k-padded-to-thirty-two-bytes-at-least",
            base_url=BASE_URL,
            metadata_allowed_hosts="127.0.0.1",
            metadata_fetch_timeout=self.fetch_timeout,
        )
        self.started.append(middleware)
        return middleware, self.serve(middleware).url

    def close(self) -> None:
        for middleware in self.started:
            middleware.close()


@pytest.fixture
def workers(serve: Callable[[Any], Any], database_url: str) -> Iterator[Workers]:
    made = Workers(serve, database_url)
    yield made
    made.close()


@pytest.fixture
def host(idp: TestIdP) -> Iterator[MetadataHost]:
    made = MetadataHost(idp)
    yield made
    made.down()


def sign_in(workers: Workers, idp: TestIdP, email: str) -> tuple[requests.Response, float]:
    """An IdP-initiated sign-in on a fresh worker; (the ACS's answer, seconds it took)."""
    _, url = workers.fresh()
    saml_response = idp.response(
        sp_entity_id=f"{BASE_URL}/saml/acme/metadata",
        acs_url=f"{BASE_URL}/saml/acme/acs",
        email=email,
    )
    started = time.monotonic()
    answer = requests.post(
        f"{url}/saml/acme/acs",
        data={"SAMLResponse": saml_response},
        allow_redirects=False,
        timeout=30,
    )
    return answer, time.monotonic() - started


def make_refresh_due(middleware: SSOMiddleware) -> None:
    middleware.database.run(
        lambda unit: unit.session.execute(
            update(IdentityProvider).values(refresh_after=utcnow() - dt.timedelta(minutes=1))
        )
    )


def audit(middleware: SSOMiddleware, action: str) -> list[AuditEvent]:
    def work(unit: UnitOfWork) -> list[AuditEvent]:
        events = list(
            unit.session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )
        unit.session.expunge_all()
        return events

    return middleware.database.run(work, write=False)


FAULTS = {
    # fault: what the server log says (the owner sees only MetadataUnavailable's words)
    "down": "Connection refused",
    "slow": f"within the {FETCH_TIMEOUT:g} s deadline",
    "http_500": "HTTP 500",
    "html_page": "is a <html> element, not SAML 2.0 metadata",
    "binary": "not valid utf-8 text",
    "truncated": "not well-formed XML",
    "empty": "the metadata is empty",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failing_metadata_url_keeps_the_last_good_copy_and_says_why(
    fault: str, workers: Workers, idp: TestIdP, host: MetadataHost, caplog: pytest.LogCaptureFixture
):
    admin, _ = workers.fresh()
    admin.workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    admin.workspaces.enable("acme", sso=True)
    admin.workspaces.verify_domain("acme", "acme.test", by_operator=True)
    admin.workspaces.set_idp("acme", metadata_url=host.url)
    idp.sp_config(f"{BASE_URL}/saml/acme/metadata", f"{BASE_URL}/saml/acme/acs")
    assert sign_in(workers, idp, "alice@acme.test")[0].status_code == 303
    good = admin.workspaces.idp("acme")
    assert good is not None and good.last_refresh_error is None
    # What a sign-in costs on this machine right now, without a refresh (CI runs two suites at once).
    baseline = sign_in(workers, idp, "carol@acme.test")[1]

    if fault == "down":
        host.down()
    else:
        host.fault = fault
    make_refresh_due(admin)
    fetches = host.fetches
    answer, seconds = sign_in(workers, idp, "bob@acme.test")
    assert answer.status_code == 303, answer.text  # the last good copy signed bob in
    assert seconds < baseline + FETCH_TIMEOUT * 1.5  # one fetch, bounded by its timeout
    if fault != "down":
        assert host.fetches == fetches + 1

    info = admin.workspaces.idp("acme")
    assert info is not None
    # The owner is told it failed, in the same words whatever the fault; the log says which.
    assert info.last_refresh_error == MetadataUnavailable.REASON
    assert FAULTS[fault] in caplog.text, caplog.text
    assert info.last_refresh_error_at is not None
    # The stored copy is the good one still, and the next try waits (no fetch per sign-in).
    assert (info.entity_id, info.certificates, info.fetched_at) == (
        good.entity_id,
        good.certificates,
        good.fetched_at,
    )
    assert info.refresh_after is not None
    assert info.refresh_after - info.last_refresh_error_at == RETRY_AFTER_FAILURE
    (failed,) = audit(admin, "metadata_refresh_failed")
    assert failed.changes["error"] == info.last_refresh_error
    assert failed.changes["metadata_url"] == host.url
    fetches = host.fetches
    assert sign_in(workers, idp, "carol@acme.test")[0].status_code == 303
    assert host.fetches == fetches

    # The URL heals: the next due refresh stores it again and clears the error.
    if fault == "down":
        host.up()
    host.fault = None
    make_refresh_due(admin)
    assert sign_in(workers, idp, "dave@acme.test")[0].status_code == 303
    healed = admin.workspaces.idp("acme")
    assert healed is not None and healed.last_refresh_error is None
    assert healed.fetched_at > good.fetched_at
    (refreshed,) = audit(admin, "metadata_refreshed")
    assert refreshed.changes["recovered_from"] == info.last_refresh_error


def test_a_slow_metadata_url_delays_one_sign_in_not_all(
    workers: Workers, idp: TestIdP, host: MetadataHost, caplog: pytest.LogCaptureFixture
):
    """The worker that claims the refresh waits for the fetch; sign-ins elsewhere meanwhile do
    not, and do not fetch again."""
    # A longer wait than the module's (the host still answers later, at FETCH_TIMEOUT * 3), so
    # the sign-ins that must not wait have room on a busy machine.
    timeout = workers.fetch_timeout = FETCH_TIMEOUT * 2.5
    admin, _ = workers.fresh()
    admin.workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    admin.workspaces.enable("acme", sso=True)
    admin.workspaces.verify_domain("acme", "acme.test", by_operator=True)
    admin.workspaces.set_idp("acme", metadata_url=host.url)
    idp.sp_config(f"{BASE_URL}/saml/acme/metadata", f"{BASE_URL}/saml/acme/acs")
    # What a sign-in costs on this machine right now, with no refresh due (CI runs suites side
    # by side): the sign-ins that must not wait are measured against it.
    baseline = max(sign_in(workers, idp, f"warm{i}@acme.test")[1] for i in range(2))
    host.fault = "slow"
    make_refresh_due(admin)
    fetches = host.fetches

    first: list[tuple[requests.Response, float]] = []
    claimer = threading.Thread(target=lambda: first.append(sign_in(workers, idp, "a@acme.test")))
    claimer.start()
    deadline = time.monotonic() + 5
    while host.fetches == fetches:  # the first sign-in is fetching now
        assert time.monotonic() < deadline
        time.sleep(0.01)
    others = [sign_in(workers, idp, f"u{i}@acme.test") for i in range(3)]
    claimer.join(10)
    assert all(answer.status_code == 303 for answer, _ in others)
    assert max(seconds for _, seconds in others) < baseline + timeout / 2
    ((answer, seconds),) = first
    assert answer.status_code == 303 and seconds >= timeout * 0.9
    assert host.fetches == fetches + 1
    info = admin.workspaces.idp("acme")
    assert info is not None and info.last_refresh_error == MetadataUnavailable.REASON
    assert "deadline" in caplog.text
