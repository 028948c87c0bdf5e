"""Setting a workspace's IdP by URL or XML (Workspaces.set_idp): checked, fetched safely, stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from webwork_sso_middleware.errors import (
    ConfigurationError,
    MetadataError,
    MetadataUnavailable,
    NotFound,
)
from webwork_sso_middleware.idp_metadata.fetching import MetadataFetcher
from webwork_sso_middleware.idp_metadata.parsing import parse
from webwork_sso_middleware.idp_metadata.refresh import (
    refresh_if_due,
)
from webwork_sso_middleware.idp_metadata.workspaces import Workspaces
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import utcnow

from .metadata_samples import (
    OKTA_ENTITY_ID,
    OKTA_SSO_POST,
    certificate,
    entity_descriptor,
    fingerprint,
    okta_metadata,
    sso_services,
)
from .support import DAY, URL, FakeIdP, events


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

    refresh_if_due(
        database,
        before.workspace_id,
        now=before.refresh_after,
        fetch=MetadataFetcher(allowed_hosts=("127.0.0.1",)),
    )

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
