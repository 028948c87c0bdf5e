"""What the IdP metadata tests share: a stand-in for the network fetch, and read-backs."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select

from webwork_sso_middleware.idp_metadata.workspaces import Workspaces
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import AuditEvent, IdentityProvider

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


def workspace_id(workspaces: Workspaces) -> int:
    return workspaces.get("acme").id


def events(database: Database, action: str) -> list[AuditEvent]:
    with transaction(database) as unit:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(unit.session.scalars(query))


def stored_xml(database: Database) -> str:
    with transaction(database) as unit:
        return unit.session.scalars(select(IdentityProvider.metadata_xml)).one()
