"""A workspace's SAML IdP: its metadata, the last good copy of it, and keeping that fresh.

Metadata configured by URL is refreshed by :func:`refresh_if_due`, which the SP calls before it
uses the metadata. The network fetch happens outside any transaction; a short write transaction
first *claims* the refresh (moves ``refresh_after`` forward), so of many workers that find the
metadata due at once, only one fetches.

A failed refresh keeps the last good copy, records the error on the row and in the audit log,
and is retried after :data:`RETRY_AFTER_FAILURE`. That holds even when the stored copy is past
its ``validUntil``: refusing every sign-in because the IdP's metadata endpoint is down would be
a worse outage than trusting keys the IdP itself published, over https, a little longer. The
expiry is stated in the recorded error, so the owner sees it in the settings diagnostics.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ..errors import MetadataError
from ..logs import package_logger
from ..saml import metadata
from . import audit
from .db import Database
from .models import IdentityProvider, utcnow

log = package_logger(__name__)

# How long a claimed refresh is left to its worker before another may try: well above a
# fetch's worst case (two timeouts), so a worker that died only delays the refresh.
REFRESH_CLAIM = dt.timedelta(minutes=5)
# After a failure, wait this long before fetching again: a dead IdP is not fetched per login.
RETRY_AFTER_FAILURE = dt.timedelta(minutes=15)
REFRESH_ACTOR = "system:metadata-refresh"
MAX_METADATA_URL = 2048  # the identity_providers.metadata_url column

Fetch = Callable[[str], str]



@dataclasses.dataclass(frozen=True)
class CertificateInfo:
    sha256_fingerprint: str
    subject: str
    not_after: dt.datetime


@dataclasses.dataclass(frozen=True)
class IdPInfo:
    """A snapshot of a workspace's IdP, safe to hand outside a transaction."""

    workspace_id: int
    entity_id: str
    metadata_url: str | None  # None: the metadata was pasted, and is never refreshed
    sso_urls: Mapping[str, str]  # binding URI -> URL
    certificates: tuple[CertificateInfo, ...]  # the signing certificates
    fetched_at: dt.datetime  # when the stored copy was fetched (or pasted)
    valid_until: dt.datetime | None
    refresh_after: dt.datetime | None
    last_refresh_error: str | None
    last_refresh_error_at: dt.datetime | None
    allow_idp_initiated: bool
    metadata_xml: str = dataclasses.field(repr=False)  # what pysaml2 loads (metadata.load_pysaml2)

    @property
    def sso_url(self) -> str:
        return self.sso_urls.get(metadata.BINDING_REDIRECT) or self.sso_urls[metadata.BINDING_POST]

    def expired(self, now: dt.datetime | None = None) -> bool:
        return self.valid_until is not None and self.valid_until <= (now or utcnow())

    def as_document(self) -> dict[str, Any]:
        """JSON-ready: the CLI's ``idp`` object, and what the settings page shows."""
        return {
            "entity_id": self.entity_id,
            "metadata_url": self.metadata_url,
            "sso_url": self.sso_url,
            "sso_urls": {binding.rpartition(":")[2]: url for binding, url in self.sso_urls.items()},
            "certificates": [
                {"sha256_fingerprint": c.sha256_fingerprint, "subject": c.subject,
                 "not_after": _iso(c.not_after)}
                for c in self.certificates
            ],
            "fetched_at": _iso(self.fetched_at),
            "valid_until": _iso_or_none(self.valid_until),
            "refresh_after": _iso_or_none(self.refresh_after),
            "last_refresh_error": self.last_refresh_error,
            "last_refresh_error_at": _iso_or_none(self.last_refresh_error_at),
            "allow_idp_initiated": self.allow_idp_initiated,
        }

    @classmethod
    def of(cls, row: IdentityProvider, parsed: metadata.IdPMetadata | None = None) -> IdPInfo:
        # The stored copy passed the full check when it was stored; re-reading it is cheap.
        parsed = parsed or metadata.parse(row.metadata_xml, check_loadable=False)
        return cls(
            workspace_id=row.workspace_id,
            entity_id=row.entity_id,
            metadata_url=row.metadata_url,
            sso_urls=dict(parsed.sso_urls),
            certificates=tuple(
                CertificateInfo(c.sha256_fingerprint, c.subject, c.not_after)
                for c in parsed.signing_certificates
            ),
            fetched_at=row.fetched_at,
            valid_until=row.valid_until,
            refresh_after=row.refresh_after,
            last_refresh_error=row.last_refresh_error,
            last_refresh_error_at=row.last_refresh_error_at,
            allow_idp_initiated=row.allow_idp_initiated,
            metadata_xml=row.metadata_xml,
        )



def _summary(parsed: metadata.IdPMetadata) -> dict[str, Any]:
    """What an owner compares between two versions of an IdP's metadata."""
    return {
        "entity_id": parsed.entity_id,
        "sso_urls": dict(parsed.sso_urls),
        "certificates": [c.sha256_fingerprint for c in parsed.signing_certificates],
        "valid_until": _iso_or_none(parsed.valid_until),
    }


def _stored_summary(row: IdentityProvider) -> dict[str, Any] | None:
    try:
        return _summary(metadata.parse(row.metadata_xml, check_loadable=False))
    except MetadataError:  # stored by an older version with other rules: replace it anyway
        return None


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _iso_or_none(value: dt.datetime | None) -> str | None:
    return _iso(value) if value is not None else None



class IdentityProviders:
    """The IdP of each workspace, by workspace id: what the SP uses. A call, a transaction."""

    def __init__(self, database: Database, *, fetch: Fetch = metadata.fetch) -> None:
        self.database = database
        self.fetch = fetch

    def get(self, workspace_id: int) -> IdPInfo | None:
        def work(session: Session) -> IdPInfo | None:
            row = find(session, workspace_id)
            return IdPInfo.of(row) if row is not None else None

        return self.database.run(work, write=False)

    def refresh_if_due(self, workspace_id: int, *, now: dt.datetime | None = None) -> None:
        refresh_if_due(self.database, workspace_id, now=now, fetch=self.fetch)

    def current(self, workspace_id: int, *, now: dt.datetime | None = None) -> IdPInfo | None:
        """The metadata to use now: refreshed first when due (a failure keeps the last good)."""
        self.refresh_if_due(workspace_id, now=now)
        return self.get(workspace_id)
