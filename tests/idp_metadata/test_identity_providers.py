"""A workspace's IdP as the site sees it (IdPInfo)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select

from webwork_sso_middleware.idp_metadata.workspaces import Workspaces
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import AuditEvent, IdentityProvider

from .metadata_samples import (
    OKTA_ENTITY_ID,
    certificate,
    fingerprint,
    okta_metadata,
)
from ..store_helpers import transaction

URL = "https://acme.okta.com/app/exk1fxyz2AbCdEfGh0h8/sso/saml/metadata"
DAY = dt.timedelta(days=1)


class FakeIdP:
    """Stands in for fetching.fetch: serves what it is told, and counts the fetches."""

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
    with transaction(database) as unit:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(unit.session.scalars(query))


def stored_xml(database: Database) -> str:
    with transaction(database) as unit:
        return unit.session.scalars(select(IdentityProvider.metadata_xml)).one()


def test_the_document_form_is_json_ready(workspaces: Workspaces) -> None:
    info = workspaces.set_idp("acme", metadata_url=URL)

    document = info.as_document()

    assert document["entity_id"] == OKTA_ENTITY_ID and document["metadata_url"] == URL
    assert set(document["sso_urls"]) == {"HTTP-POST", "HTTP-Redirect"}
    assert document["certificates"][0]["sha256_fingerprint"] == fingerprint(certificate("old"))
    assert document["fetched_at"].endswith("Z") and document["refresh_after"].endswith("Z")

