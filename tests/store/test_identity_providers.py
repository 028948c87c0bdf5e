"""A workspace's IdP as stored: the values it is given, kept unread, and the refresh claims."""

from __future__ import annotations

import datetime as dt

import pytest

from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import identity_providers as idps
from webwork_sso_middleware.store.identity_providers import MetadataCopy
from webwork_sso_middleware.store.models import AuditEvent, utcnow
from webwork_sso_middleware.store.workspaces import Workspaces

from ..store_helpers import transaction

URL = "https://acme.okta.com/app/exk1fxyz2AbCdEfGh0h8/sso/saml/metadata"
# Not metadata at all: the store must keep it without reading it (parsing is idp_metadata's).
XML = "<not-parsed-by-the-store/>"
SUMMARY = {"entity_id": "https://idp.example", "certificates": ["AA:BB"]}


@pytest.fixture
def workspace_id(database: Database) -> int:
    info, _ = Workspaces(database).create(
        "acme", name="Acme", plan="plus", owner_email="it@acme.example"
    )
    return info.id


def configure(
    database: Database,
    workspace_id: int,
    *,
    refresh_after: dt.datetime | None,
    before: dict[str, object] | None = None,
) -> None:
    copy = MetadataCopy(entity_id="https://idp.example", xml=XML, valid_until=None, summary=SUMMARY)
    database.run(
        lambda unit: idps.configure(
            unit,
            workspace_id,
            copy,
            before=before,
            metadata_url=URL,
            fetched_at=utcnow(),
            refresh_after=refresh_after,
            allow_idp_initiated=None,
            actor="test",
        )
    )


def test_the_store_keeps_what_it_is_given_and_audits_the_summaries(
    database: Database, workspace_id: int
) -> None:
    configure(database, workspace_id, refresh_after=None, before={"entity_id": "earlier"})

    with transaction(database) as unit:
        row = idps.find(unit, workspace_id)
        assert row is not None
        assert (row.entity_id, row.metadata_xml, row.refresh_after) == (
            "https://idp.example",
            XML,
            None,
        )
        assert row.allow_idp_initiated  # a new IdP allows IdP-initiated sign-in
        event = unit.session.query(AuditEvent).filter_by(action="idp_configured").one()
        assert event.changes["before"] == {"entity_id": "earlier"}
        assert event.changes["after"] == SUMMARY


def test_a_claim_is_given_once_and_lapses(database: Database, workspace_id: int) -> None:
    now = utcnow()
    configure(database, workspace_id, refresh_after=now)

    first = database.run(lambda unit: idps.claim_refresh(unit, workspace_id, now))
    second = database.run(lambda unit: idps.claim_refresh(unit, workspace_id, now))
    lapsed = now + idps.REFRESH_CLAIM
    third = database.run(lambda unit: idps.claim_refresh(unit, workspace_id, lapsed))

    assert first is not None and first.metadata_url == URL
    assert second is None
    assert third is not None  # the first worker died: another may try
