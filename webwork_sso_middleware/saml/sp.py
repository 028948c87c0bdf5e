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

from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS

from ..idp_metadata.parsing import load_pysaml2
from ..idp_metadata.parsing import parse as parse_metadata
from ..sp_keys import SpKeyRing
from ..urls import WorkspaceUrls
from .entities import install, load_metadata, make_client

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


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
        self,
        urls: WorkspaceUrls,
        idp: IdPSettings | None,
        *,
        keys: SpKeyRing | None = None,
        clock_skew: dt.timedelta,
    ) -> None:
        self.urls = urls
        self.idp = idp
        self.keys = keys
        sp: dict[str, Any] = {
            "endpoints": {
                "assertion_consumer_service": [(urls.acs_url, BINDING_HTTP_POST)],
                # Single logout, both front-channel bindings at one URL (saml/single_logout.py).
                "single_logout_service": [
                    (urls.slo_url, BINDING_HTTP_REDIRECT),
                    (urls.slo_url, BINDING_HTTP_POST),
                ],
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

    @property
    def decryption_keys(self) -> list[bytes]:
        """PEM private keys that may open an EncryptedAssertion (sp_keys/keyring.py)."""
        return self.keys.decryption_keys if self.keys is not None else []

    def metadata_xml(self) -> str:
        descriptor = entity_descriptor(self.config)
        root = etree.fromstring(str(descriptor).encode("utf-8"))
        role = root.find(f"{{{MD}}}SPSSODescriptor")
        if role is not None and self.keys is not None:
            # The current and the next key, each for signing and for encryption: an IdP learns
            # a staged key before anything is signed with it (sp_keys/keyring.py).
            position = 1 if role.find(f"{{{MD}}}Extensions") is not None else 0
            for key in self.keys.published:
                for use in ("signing", "encryption"):
                    role.insert(position, _key_descriptor(use, key.certificate_base64))
                    position += 1
        return etree.tostring(root, encoding="unicode")

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


def _key_descriptor(use: str, certificate_base64: str) -> etree._Element:
    descriptor = etree.Element(f"{{{MD}}}KeyDescriptor", use=use, nsmap={"md": MD})
    info = etree.SubElement(descriptor, f"{{{DS}}}KeyInfo", nsmap={"ds": DS})
    data = etree.SubElement(info, f"{{{DS}}}X509Data")
    etree.SubElement(data, f"{{{DS}}}X509Certificate").text = certificate_base64
    return descriptor


class ServiceProviders:
    """A per-worker cache of ServiceProvider objects, keyed by workspace and IdP version."""

    def __init__(self, *, clock_skew: dt.timedelta, size: int = 256) -> None:
        self.clock_skew = clock_skew
        self.size = size
        self._cache: OrderedDict[tuple[str, tuple[str | None, int]], ServiceProvider] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(
        self,
        urls: WorkspaceUrls,
        version: tuple[str | None, int],
        load: Callable[[], tuple[IdPSettings | None, SpKeyRing | None]],
    ) -> ServiceProvider:
        """The SP for this workspace at ``version`` (its IdP's version, and its SP version:
        keys and SAML choices); ``load`` reads the IdP and the keys only on a miss."""
        key = (urls.base_url + "|" + urls.slug, version)
        with self._lock:
            provider = self._cache.get(key)
            if provider is not None:
                self._cache.move_to_end(key)
                return provider
        idp, keys = load()
        provider = ServiceProvider(urls, idp, keys=keys, clock_skew=self.clock_skew)
        with self._lock:
            self._cache[key] = provider
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return provider
