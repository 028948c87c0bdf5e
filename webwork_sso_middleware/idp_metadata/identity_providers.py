"""A workspace's IdP as the rest of the site sees it, and what the store keeps of checked metadata.

The store holds rows (store/identity_providers.py) and never parses: :func:`copy_of` turns parsed
metadata into the values it keeps, and :meth:`IdPInfo.of` reads a stored row back, parsing its
XML for what has no column of its own (the SSO URLs, the certificates).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from ..errors import MetadataError
from ..store.identity_providers import MetadataCopy
from ..store.models import IdentityProvider, utcnow
from . import parsing as metadata


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
                {
                    "sha256_fingerprint": c.sha256_fingerprint,
                    "subject": c.subject,
                    "not_after": _iso(c.not_after),
                }
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


def copy_of(parsed: metadata.IdPMetadata) -> MetadataCopy:
    """What the store keeps of checked metadata."""
    return MetadataCopy(
        entity_id=parsed.entity_id,
        xml=parsed.xml,
        valid_until=parsed.valid_until,
        summary=summary(parsed),
    )


def summary(parsed: metadata.IdPMetadata) -> dict[str, Any]:
    """What an owner compares between two versions of an IdP's metadata."""
    return {
        "entity_id": parsed.entity_id,
        "sso_urls": dict(parsed.sso_urls),
        "certificates": [c.sha256_fingerprint for c in parsed.signing_certificates],
        "valid_until": _iso_or_none(parsed.valid_until),
    }


def stored_summary(row: IdentityProvider | None) -> dict[str, Any] | None:
    """The summary of the stored copy, for the audit record's "before" (None: nothing stored)."""
    if row is None:
        return None
    try:
        return summary(metadata.parse(row.metadata_xml, check_loadable=False))
    except MetadataError:  # stored by an older version with other rules: replace it anyway
        return None


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _iso_or_none(value: dt.datetime | None) -> str | None:
    return _iso(value) if value is not None else None
