"""One pysaml2 service provider per workspace, built from the store (never from files).

Building a pysaml2 client parses the IdP metadata, so clients are cached per worker and
rebuilt only when the workspace's IdP record changes.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS

from ..idp_metadata.parsing import load_pysaml2
from ..idp_metadata.parsing import parse as parse_metadata
from ..urls import WorkspaceUrls
from .entities import install, load_metadata, make_client


@dataclasses.dataclass(frozen=True)
class IdPSettings:
    """What the SP needs to know of a workspace's IdP (from the ``identity_providers`` row)."""

    entity_id: str
    metadata_xml: str
    allow_idp_initiated: bool
    version: str  # changes whenever the stored metadata or settings change


class _NoIdentityCache:
    """pysaml2 remembers every person it saw in memory; we keep people in the store."""

    def add_information_about_person(self, session_info: Any) -> None:
        return None


class ServiceProvider:
    """The SAML SP of one workspace: its metadata, AuthnRequests and response parsing."""

    def __init__(
        self, urls: WorkspaceUrls, idp: IdPSettings | None, *, clock_skew: dt.timedelta
    ) -> None:
        self.urls = urls
        self.idp = idp
        sp: dict[str, Any] = {
            "endpoints": {
                "assertion_consumer_service": [(urls.acs_url, BINDING_HTTP_POST)],
            },
            "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
            "authn_requests_signed": False,
            # Either the assertion or the whole response must carry the IdP's signature.
            "want_assertions_signed": False,
            "want_response_signed": False,
            "want_assertions_or_response_signed": True,
            "allow_unsolicited": bool(idp and idp.allow_idp_initiated),
            "only_use_keys_in_metadata": True,
        }
        config: dict[str, Any] = {
            "entityid": urls.sp_entity_id,
            "service": {"sp": sp},
            "accepted_time_diff": int(clock_skew.total_seconds()),
            "allow_unknown_attributes": True,
        }
        if idp is not None:
            sp["idp"] = [idp.entity_id]
        self.client = make_client(config)
        self.config = self.client.config
        # DER signing certificates from the metadata, for the ACS's own verification.
        self.idp_certificates: list[bytes] = []
        if idp is not None:
            self.idp_certificates = [
                base64.b64decode(cert.der_base64)
                for cert in parse_metadata(
                    idp.metadata_xml, check_loadable=False
                ).signing_certificates
            ]
            # Not {"inline": [...]}: pysaml2 would silently drop metadata past its validUntil,
            # while we keep using the last good copy when a refresh fails.
            store = load_metadata(self.config, {})
            store.metadata["idp"] = load_pysaml2(idp.metadata_xml)
            self.config.metadata = self.client.metadata = store
            install(self.client)
        self.client.users = _NoIdentityCache()

    def metadata_xml(self) -> str:
        descriptor = entity_descriptor(self.config)
        return str(descriptor)

    def authn_request(self, relay_state: str) -> tuple[str, str]:
        """(request ID, URL of the IdP with the AuthnRequest) for the HTTP-Redirect binding."""
        assert self.idp is not None
        request_id, info = self.client.prepare_for_authenticate(
            entityid=self.idp.entity_id,
            relay_state=relay_state,
            binding=BINDING_HTTP_REDIRECT,
            nameid_format=NAMEID_FORMAT_EMAILADDRESS,
        )
        location = dict(info["headers"])["Location"]
        return request_id, location


class ServiceProviders:
    """A per-worker cache of ServiceProvider objects, keyed by workspace and IdP version."""

    def __init__(self, *, clock_skew: dt.timedelta, size: int = 256) -> None:
        self.clock_skew = clock_skew
        self.size = size
        self._cache: OrderedDict[tuple[str, str | None], ServiceProvider] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, urls: WorkspaceUrls, idp_version: str | None, load: Callable[[], IdPSettings | None]
    ) -> ServiceProvider:
        """The SP for this workspace and IdP version; ``load`` reads the IdP only on a miss."""
        key = (urls.base_url + "|" + urls.slug, idp_version)
        with self._lock:
            provider = self._cache.get(key)
            if provider is not None:
                self._cache.move_to_end(key)
                return provider
        provider = ServiceProvider(
            urls, load() if idp_version else None, clock_skew=self.clock_skew
        )
        with self._lock:
            self._cache[key] = provider
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return provider
