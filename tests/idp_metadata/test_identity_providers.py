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

