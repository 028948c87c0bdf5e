"""A workspace's IdP: set by URL or XML, refreshed, and the last good copy kept on failure."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from webwork_sso_middleware.errors import (
    ConfigurationError,
    MetadataError,
    MetadataUnavailable,
    NotFound,
)
from webwork_sso_middleware.saml.metadata import MetadataFetcher, parse
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import identity_providers as idps
from webwork_sso_middleware.store.identity_providers import (
    RETRY_AFTER_FAILURE,
    IdentityProviders,
    refresh_if_due,
)
from webwork_sso_middleware.store.models import AuditEvent, IdentityProvider, utcnow
from webwork_sso_middleware.store.workspaces import Workspaces

from ..saml.metadata_samples import (
    OKTA_ENTITY_ID,
    OKTA_SSO_POST,
    certificate,
    entity_descriptor,
    fingerprint,
    okta_metadata,
    sso_services,
)

URL = "https://acme.okta.com/app/exk1fxyz2AbCdEfGh0h8/sso/saml/metadata"
DAY = dt.timedelta(days=1)


class FakeIdP:
    """Stands in for metadata.fetch: serves what it is told, and counts the fetches."""

    def __init__(self, xml: str) -> None:
        self.xml = xml
        self.error: Exception | None = None
        self.calls: list[str] = []
        self.delay = 0.0

    def __call__(self, url: str) -> str:
        self.calls.append(url)
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.xml


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP(okta_metadata(certificate("old")))


@pytest.fixture
def workspaces(database: Database, idp: FakeIdP) -> Workspaces:
    workspaces = Workspaces(database, fetch=idp)
    workspaces.create("acme", name="Acme", plan="plus", owner_email="it@acme.example")
    return workspaces


def workspace_id(workspaces: Workspaces) -> int:
    return workspaces.get("acme").id


def events(database: Database, action: str) -> list[AuditEvent]:
    with database.transaction() as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(session.scalars(query))


def stored_xml(database: Database) -> str:
    with database.transaction() as session:
        return session.scalars(select(IdentityProvider.metadata_xml)).one()


# -- set_idp ------------------------------------------------------------------------------------


def test_no_idp_until_one_is_set(workspaces: Workspaces) -> None:
    assert workspaces.idp("acme") is None


def test_set_by_pasted_xml(workspaces: Workspaces, database: Database, idp: FakeIdP) -> None:
    old, new = certificate("old"), certificate("new")

    info = workspaces.set_idp("acme", metadata_xml=okta_metadata(old, new))

    assert info == workspaces.idp("acme")
    assert info.entity_id == OKTA_ENTITY_ID and info.metadata_url is None
    assert [c.sha256_fingerprint for c in info.certificates] == [fingerprint(old), fingerprint(new)]
    assert info.certificates[0].not_after == old.not_valid_after_utc
    assert info.sso_url.startswith("https://acme.okta.com/")
    assert info.refresh_after is None  # pasted: nowhere to refresh from
    assert info.allow_idp_initiated is True and info.last_refresh_error is None
    assert abs(info.fetched_at - utcnow()) < dt.timedelta(seconds=30)
    assert parse(info.metadata_xml).entity_id == OKTA_ENTITY_ID
    assert idp.calls == []
    (event,) = events(database, "idp_configured")
    assert event.actor == "api" and event.target_type == "idp"
    assert event.changes["after"]["certificates"] == [fingerprint(old), fingerprint(new)]


def test_set_by_url_fetches_now_and_schedules_the_refresh(
    workspaces: Workspaces, idp: FakeIdP
) -> None:
    idp.xml = entity_descriptor(attributes=' cacheDuration="PT8H"')

    info = workspaces.set_idp("acme", metadata_url=f"  {URL} ", actor="cli")

    assert idp.calls == [URL]
    assert info.metadata_url == URL
    assert info.refresh_after == info.fetched_at + dt.timedelta(hours=8)


def test_set_by_url_over_real_http(database: Database, serve: Any) -> None:
    xml = okta_metadata(certificate("served"))

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/samlmetadata+xml")])
        return [xml.encode()]

    url = f"{serve(app).url}/app/exk1/sso/saml/metadata"
    # The test IdP is on 127.0.0.1, which the site fetches from only when the operator says so.
    workspaces = Workspaces(database, fetch=MetadataFetcher(allowed_hosts=("127.0.0.1",)))
    workspaces.create("acme", name="Acme", plan="plus", owner_email="it@acme.example")

    info = workspaces.set_idp("acme", metadata_url=url)

    assert info.metadata_url == url
    assert [c.sha256_fingerprint for c in info.certificates] == [fingerprint(certificate("served"))]
    assert info.refresh_after == info.fetched_at + DAY


def test_by_default_an_internal_url_is_refused_and_nothing_stored(
    database: Database, serve: Any
) -> None:
    served: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        served.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "application/samlmetadata+xml")])
        return [okta_metadata().encode()]

    url = f"{serve(app).url}/metadata"
    workspaces = Workspaces(database)  # the default fetch: no host allowed
    workspaces.create("acme", name="Acme", plan="plus", owner_email="it@acme.example")

    with pytest.raises(MetadataUnavailable):
        workspaces.set_idp("acme", metadata_url=url)

    assert workspaces.idp("acme") is None and served == []
    assert events(database, "idp_configured") == []


def test_a_refresh_that_now_leads_inside_fails_with_the_generic_reason(
    database: Database, serve: Any
) -> None:
    """The IdP was fine when set; later its URL redirects to an internal address. The refresh
    keeps the last good copy and records only the generic reason: nothing of the inside."""
    internal: list[str] = []

    def inside(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        internal.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"internal-secret"]

    inside_port = serve(inside).url.rpartition(":")[2]
    answers = [okta_metadata().encode()]

    def idp(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if answers:
            start_response("200 OK", [("Content-Type", "application/samlmetadata+xml")])
            return [answers.pop()]
        start_response("302 Found", [("Location", f"http://localhost:{inside_port}/admin")])
        return [b""]

    url = f"{serve(idp).url}/metadata"
    workspaces = Workspaces(database, fetch=MetadataFetcher(allowed_hosts=("127.0.0.1",)))
    workspaces.create("acme", name="Acme", plan="plus", owner_email="it@acme.example")
    before = workspaces.set_idp("acme", metadata_url=url)

    refresh_if_due(database, before.workspace_id, now=before.refresh_after,
                   fetch=MetadataFetcher(allowed_hosts=("127.0.0.1",)))

    after = workspaces.idp("acme")
    assert after.metadata_xml == before.metadata_xml and internal == []
    assert after.last_refresh_error == MetadataUnavailable.REASON
    (event,) = events(database, "metadata_refresh_failed")
    assert event.changes["error"] == MetadataUnavailable.REASON


@pytest.mark.parametrize("noise", ["&#10;", "&#13;&#10;Set-Cookie: x=1", "\x7f", "\x85", "&#9;"])
@pytest.mark.parametrize("source", ["xml", "url"])
def test_control_characters_in_an_endpoint_url_are_refused_and_nothing_stored(
    workspaces: Workspaces, database: Database, idp: FakeIdP, noise: str, source: str
) -> None:
    """Stored, such metadata made every sign-in a 500 (issue 9)."""
    xml = entity_descriptor(services=sso_services(post=OKTA_SSO_POST + noise, redirect=None))

    with pytest.raises(MetadataError, match="printable ASCII"):
        if source == "xml":
            workspaces.set_idp("acme", metadata_xml=xml)
        else:
            idp.xml = xml
            workspaces.set_idp("acme", metadata_url=URL)

    assert workspaces.idp("acme") is None
    assert events(database, "idp_configured") == []


def test_bad_input_changes_nothing(workspaces: Workspaces, database: Database,
                                   idp: FakeIdP) -> None:  # fmt: skip
    before = workspaces.set_idp("acme", metadata_url=URL)
    idp.xml = "<html>Okta sign-in</html>"

    with pytest.raises(MetadataError, match="not SAML 2.0 metadata"):
        workspaces.set_idp("acme", metadata_url=URL)
    with pytest.raises(MetadataError, match="no signing certificate"):
        workspaces.set_idp("acme", metadata_xml=entity_descriptor(keys=""))
    with pytest.raises(MetadataError, match="plain http"):
        workspaces.set_idp("acme", metadata_url="http://example.com/metadata")
    idp.error = MetadataError("https://acme.okta.com/... answered HTTP 404 Not Found")
    with pytest.raises(MetadataError, match="404"):
        workspaces.set_idp("acme", metadata_url=URL)
    with pytest.raises(MetadataError, match="expired"):
        workspaces.set_idp(
            "acme", metadata_xml=entity_descriptor(attributes=' validUntil="2001-01-01T00:00:00Z"')
        )

    assert workspaces.idp("acme") == before
    assert len(events(database, "idp_configured")) == 1


def test_exactly_one_source_and_a_known_workspace(workspaces: Workspaces, idp: FakeIdP) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        workspaces.set_idp("acme", metadata_url=URL, metadata_xml=okta_metadata())
    with pytest.raises(ConfigurationError, match="metadata URL or metadata XML"):
        workspaces.set_idp("acme")
    with pytest.raises(NotFound):
        workspaces.set_idp("nope", metadata_url=URL)
    assert idp.calls == []  # an unknown workspace fails before any fetch
    with pytest.raises(ConfigurationError, match="no IdP yet"):
        workspaces.set_idp("acme", allow_idp_initiated=False)


def test_idp_initiated_sign_in_can_be_switched(workspaces: Workspaces) -> None:
    workspaces.set_idp("acme", metadata_xml=okta_metadata(), allow_idp_initiated=False)
    assert workspaces.idp("acme").allow_idp_initiated is False

    assert workspaces.set_idp("acme", allow_idp_initiated=True).allow_idp_initiated is True
    # Replacing the metadata keeps the switch unless it is given.
    assert workspaces.set_idp("acme", metadata_xml=okta_metadata()).allow_idp_initiated is True


def test_pasted_xml_replaces_a_url_and_is_never_refreshed(
    workspaces: Workspaces, database: Database, idp: FakeIdP
) -> None:
    workspaces.set_idp("acme", metadata_url=URL)

    info = workspaces.set_idp("acme", metadata_xml=okta_metadata(certificate("pasted")))
    refresh_if_due(database, info.workspace_id, now=utcnow() + 30 * DAY, fetch=idp)

    assert (info.metadata_url, info.refresh_after) == (None, None)
    assert idp.calls == [URL]


# -- refresh_if_due ----------------------------------------------------------------------------


def test_not_due_does_nothing(workspaces: Workspaces, database: Database, idp: FakeIdP) -> None:
    info = workspaces.set_idp("acme", metadata_url=URL)

    refresh_if_due(database, info.workspace_id, now=info.refresh_after - dt.timedelta(seconds=1),
                   fetch=idp)  # fmt: skip

    assert idp.calls == [URL]
    assert workspaces.idp("acme") == info


def test_a_due_refresh_stores_the_new_metadata(
    workspaces: Workspaces, database: Database, idp: FakeIdP
) -> None:
    before = workspaces.set_idp("acme", metadata_url=URL)
    old, new = certificate("old"), certificate("new")
    idp.xml = okta_metadata(old, new)  # the IdP publishes its next certificate
    now = before.refresh_after + dt.timedelta(minutes=1)

    refresh_if_due(database, before.workspace_id, now=now, fetch=idp)

    after = workspaces.idp("acme")
    assert idp.calls == [URL, URL]
    assert [c.sha256_fingerprint for c in after.certificates] == [
        fingerprint(old), fingerprint(new),
    ]  # fmt: skip
    assert (after.fetched_at, after.refresh_after) == (now, now + DAY)
    (event,) = events(database, "metadata_refreshed")
    assert event.changes["before"]["certificates"] == [fingerprint(old)]
    assert event.changes["after"]["certificates"] == [fingerprint(old), fingerprint(new)]


def test_an_unchanged_refresh_is_not_audited(
    workspaces: Workspaces, database: Database, idp: FakeIdP
) -> None:
    before = workspaces.set_idp("acme", metadata_url=URL)

    refresh_if_due(database, before.workspace_id, now=before.refresh_after, fetch=idp)

    assert workspaces.idp("acme").fetched_at == before.refresh_after
    assert events(database, "metadata_refreshed") == []


@pytest.mark.parametrize(
    "failure",
    [MetadataError("https://acme.okta.com/... did not answer within 10 seconds"),
     OSError("network is unreachable"), "<html>maintenance</html>", "not xml"],
    ids=["timeout", "oserror", "html", "garbage"],
)  # fmt: skip
def test_a_failed_refresh_keeps_the_last_good_copy_and_records_why(
    workspaces: Workspaces, database: Database, idp: FakeIdP, failure: Exception | str
) -> None:
    before = workspaces.set_idp("acme", metadata_url=URL)
    good_xml = stored_xml(database)
    if isinstance(failure, str):
        idp.xml = failure
    else:
        idp.error = failure
    now = before.refresh_after + dt.timedelta(hours=1)

    refresh_if_due(database, before.workspace_id, now=now, fetch=idp)

    after = workspaces.idp("acme")
    assert stored_xml(database) == good_xml
    assert (after.entity_id, after.certificates, after.fetched_at) == (
        before.entity_id, before.certificates, before.fetched_at,
    )  # fmt: skip
    assert after.last_refresh_error and after.last_refresh_error_at == now
    assert after.refresh_after == now + RETRY_AFTER_FAILURE
    (event,) = events(database, "metadata_refresh_failed")
    assert (event.target_type, event.actor) == ("idp", idps.REFRESH_ACTOR)
    assert event.changes["error"] == after.last_refresh_error
    assert event.changes["metadata_url"] == URL and event.changes["expired"] is False

    # A dead IdP is not fetched again on every sign-in ...
    refresh_if_due(database, before.workspace_id, now=now + dt.timedelta(minutes=1), fetch=idp)
    assert len(idp.calls) == 2
    # ... and once it is back, the error is cleared, with a note in the log.
    idp.xml, idp.error = okta_metadata(certificate("old")), None
    later = now + RETRY_AFTER_FAILURE
    refresh_if_due(database, before.workspace_id, now=later, fetch=idp)
    recovered = workspaces.idp("acme")
    assert (recovered.last_refresh_error, recovered.last_refresh_error_at) == (None, None)
    assert recovered.fetched_at == later
    (event,) = events(database, "metadata_refreshed")
    assert event.changes["recovered_from"] == after.last_refresh_error


def test_expired_metadata_stays_in_use_when_the_refresh_fails_and_says_so(
    workspaces: Workspaces, database: Database, idp: FakeIdP
) -> None:
    valid_until = utcnow().replace(microsecond=0) + dt.timedelta(hours=2)
    idp.xml = entity_descriptor(attributes=f' validUntil="{valid_until:%Y-%m-%dT%H:%M:%SZ}"')
    before = workspaces.set_idp("acme", metadata_url=URL)
    assert before.refresh_after == valid_until  # refreshed when it runs out
    idp.error = MetadataError("https://acme.okta.com/... answered HTTP 503 Service Unavailable")
    now = valid_until + dt.timedelta(minutes=10)

    refresh_if_due(database, before.workspace_id, now=now, fetch=idp)

    after = workspaces.idp("acme")
    assert after.expired(now) and after.metadata_xml == before.metadata_xml
    assert "503" in after.last_refresh_error and "expired" in after.last_refresh_error
    (event,) = events(database, "metadata_refresh_failed")
    assert event.changes["expired"] is True


def test_a_refresh_that_serves_expired_metadata_is_a_failure(
    workspaces: Workspaces, database: Database, idp: FakeIdP
) -> None:
    before = workspaces.set_idp("acme", metadata_url=URL)
    idp.xml = entity_descriptor(attributes=' validUntil="2001-01-01T00:00:00Z"')

    refresh_if_due(database, before.workspace_id, now=before.refresh_after, fetch=idp)

    after = workspaces.idp("acme")
    assert after.valid_until is None and "expired" in after.last_refresh_error


def test_concurrent_workers_fetch_once(
    workspaces: Workspaces, database_url: str, idp: FakeIdP
) -> None:
    before = workspaces.set_idp("acme", metadata_url=URL)
    idp.delay = 0.3  # long enough for every worker to arrive while the fetch runs
    now = before.refresh_after + dt.timedelta(seconds=1)
    workers = 8
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []
    databases = [Database(database_url, auto_migrate=False) for _ in range(workers)]

    def worker(database: Database) -> None:
        try:
            barrier.wait()
            refresh_if_due(database, before.workspace_id, now=now, fetch=idp)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for database in databases:
        database.dispose()

    assert errors == []
    assert idp.calls == [URL, URL]  # set_idp's fetch, then exactly one refresh
    assert workspaces.idp("acme").fetched_at == now


def test_a_claim_is_given_once_and_lapses(workspaces: Workspaces, database: Database) -> None:
    info = workspaces.set_idp("acme", metadata_url=URL)
    now = info.refresh_after

    first = database.run(lambda s: idps.claim_refresh(s, info.workspace_id, now))
    second = database.run(lambda s: idps.claim_refresh(s, info.workspace_id, now))
    lapsed = now + idps.REFRESH_CLAIM
    third = database.run(lambda s: idps.claim_refresh(s, info.workspace_id, lapsed))

    assert first is not None and first.metadata_url == URL
    assert second is None
    assert third is not None  # the first worker died: another may try


def test_a_refresh_does_not_undo_a_change_made_while_it_fetched(
    workspaces: Workspaces, database: Database
) -> None:
    info = workspaces.set_idp("acme", metadata_url=URL)
    claim = database.run(lambda s: idps.claim_refresh(s, info.workspace_id, info.refresh_after))
    assert claim is not None
    pasted = workspaces.set_idp("acme", metadata_xml=okta_metadata(certificate("pasted")))
    fetched = parse(okta_metadata(certificate("fetched")))

    stored = database.run(lambda s: idps.store_refreshed(s, claim, fetched, info.refresh_after))
    failed = database.run(
        lambda s: idps.record_refresh_failure(s, claim, "boom", info.refresh_after)
    )

    assert (stored, failed) == (False, False)
    assert workspaces.idp("acme") == pasted


def test_no_idp_or_no_workspace_is_nothing_to_refresh(database: Database, idp: FakeIdP) -> None:
    refresh_if_due(database, 12345, fetch=idp)
    assert idp.calls == []


def test_the_facade_refreshes_before_it_answers(
    workspaces: Workspaces, database: Database, idp: FakeIdP
) -> None:
    info = workspaces.set_idp("acme", metadata_url=URL)
    idp.xml = okta_metadata(certificate("old"), certificate("new"))
    providers = IdentityProviders(database, fetch=idp)

    assert providers.get(info.workspace_id) == info
    current = providers.current(info.workspace_id, now=info.refresh_after)

    assert current is not None and len(current.certificates) == 2
    assert providers.get(999999) is None


def test_the_document_form_is_json_ready(workspaces: Workspaces) -> None:
    info = workspaces.set_idp("acme", metadata_url=URL)

    document = info.as_document()

    assert document["entity_id"] == OKTA_ENTITY_ID and document["metadata_url"] == URL
    assert set(document["sso_urls"]) == {"HTTP-POST", "HTTP-Redirect"}
    assert document["certificates"][0]["sha256_fingerprint"] == fingerprint(certificate("old"))
    assert document["fetched_at"].endswith("Z") and document["refresh_after"].endswith("Z")

