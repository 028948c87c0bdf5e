"""One pysaml2 service provider per workspace, built from the store (never from files).

Building a pysaml2 client parses the IdP metadata, so clients are cached per worker and
rebuilt only when the workspace's IdP record changes.

AuthnRequests are signed with the workspace's current SP key (RSA-SHA256, SHA-256) when the
IdP's metadata says WantAuthnRequestsSigned="true" or the owner asked for it: a query-string
signature on the HTTP-Redirect binding (SAML bindings 3.4.4.1), an enveloped XML signature with
our certificate in KeyInfo on HTTP-POST. The SP metadata's AuthnRequestsSigned says which.
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
from saml2.client_base import SignOnError
from saml2.mdstore import InMemoryMetaData
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from ..idp_metadata.parsing import load_pysaml2
from ..idp_metadata.parsing import parse as parse_metadata
from ..sp_keys import SpKey, SpKeyRing
from ..urls import WorkspaceUrls
from .entities import install, load_metadata, make_client
from .rejection import Rejection

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


@dataclasses.dataclass(frozen=True)
class IdPSettings:
    """What the SP needs to know of a workspace's IdP (from the ``identity_providers`` row)."""

    entity_id: str
    metadata_xml: str
    allow_idp_initiated: bool
    version: str  # changes whenever the stored metadata or settings change


@dataclasses.dataclass(frozen=True)
class OutgoingMessage:
    """A SAML message on its way to the IdP through the browser, as its binding sends it.

    HTTP-Redirect: ``url`` is the whole URL (the message in its query), ``fields`` is empty.
    HTTP-POST: ``url`` is the form's action and ``fields`` the form's hidden inputs
    (``SAMLRequest``, ``RelayState``), for an auto-submitting page (pages.py).
    """

    binding: str
    url: str
    fields: dict[str, str]
    request_id: str


# The SP-initiated bindings, in order of preference: a redirect needs no page of ours.
SIGN_ON_BINDINGS = (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)


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
        idp_metadata: InMemoryMetaData | None = None
        self.idp_wants_signed_requests = False  # WantAuthnRequestsSigned in the IdP's metadata
        if idp is not None:
            idp_metadata = load_pysaml2(idp.metadata_xml)
            self.idp_wants_signed_requests = _wants_signed_requests(idp_metadata, idp.entity_id)
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
            # Drives AuthnRequestsSigned in our metadata: says what authn_request() does.
            "authn_requests_signed": self.signs_authn_requests,
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
        signing_key = self.signing_key
        if signing_key is not None:
            # PEM text, never a file: entities.security_context and our backend read it as is.
            config["key_file"] = signing_key.private_key_pem.decode("ascii")
        self.client = make_client(config)
        self.config = self.client.config
        # DER signing certificates from the metadata, for the ACS's own verification.
        self.idp_certificates: list[bytes] = []
        # Binding URI -> the IdP's SingleSignOnService URL (HTTP-Redirect and/or HTTP-POST).
        self.sso_urls: dict[str, str] = {}
        if idp is not None:
            parsed = parse_metadata(idp.metadata_xml, check_loadable=False, require_sso=False)
            self.idp_certificates = [
                base64.b64decode(cert.der_base64) for cert in parsed.signing_certificates
            ]
            self.sso_urls = dict(parsed.sso_urls)
            # Not {"inline": [...]}: pysaml2 would silently drop metadata past its validUntil,
            # while we keep using the last good copy when a refresh fails.
            store = load_metadata(self.config, {})
            store.metadata["idp"] = idp_metadata
            self.config.metadata = self.client.metadata = store
            install(self.client)
        if signing_key is not None:
            # The certificate an enveloped signature carries in KeyInfo (HTTP-POST). pysaml2 would
            # read it from cert_file, a file name, and then also list it in our metadata on its
            # own; so no cert_file, and the context that signs gets the certificate here.
            self.client.sec.my_cert = signing_key.certificate_base64
        self.client.users = _NoIdentityCache()

    @property
    def signing_key(self) -> SpKey | None:
        """The workspace's current SP key: it signs whatever this SP signs."""
        return self.keys.current if self.keys is not None else None

    @property
    def signs_authn_requests(self) -> bool:
        """True when our AuthnRequests are signed: the IdP's metadata wants them signed
        (WantAuthnRequestsSigned="true"), or the workspace's owner asked for it."""
        owner_asked = self.keys is not None and self.keys.sign_authn_requests
        return self.idp_wants_signed_requests or owner_asked

    def _signature_algorithms(self) -> tuple[str, str] | None:
        """(signature, digest) algorithm URIs when AuthnRequests are signed, else None."""
        if not self.signs_authn_requests:
            return None
        if self.signing_key is None:
            # An unsigned request would only be refused by the IdP, with less clear words.
            raise Rejection(
                "sp_key_missing",
                "AuthnRequests must be signed, but the workspace has no current SP key",
                status=404,
                public_code="sso_unavailable",
            )
        # Always SHA-256, whatever pysaml2's defaults (RSA-SHA1) or the IdP's metadata say.
        return SIG_RSA_SHA256, DIGEST_SHA256

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

    def authn_request(self, relay_state: str) -> OutgoingMessage:
        """An AuthnRequest to the IdP by HTTP-Redirect when it offers that, else by HTTP-POST.

        Raises pysaml2's ``SignOnError`` when the IdP offers neither (metadata checks refuse
        such an IdP at set-idp; the sign-in start still answers it with a page, not a 500).
        Built as pysaml2's ``prepare_for_negotiated_authenticate`` does, minus its HTML for
        HTTP-POST: the request, then the binding. Signed as ``signs_authn_requests`` says:
        enveloped for POST (``create_authn_request``), in the query for Redirect
        (``apply_binding``), with the current SP key.
        """
        assert self.idp is not None
        binding, destination = self._sign_on_endpoint()
        algorithms = self._signature_algorithms()
        sigalg, digest_alg = algorithms or (None, None)
        request_id, request = self.client.create_authn_request(
            destination=destination,
            binding=BINDING_HTTP_POST,  # how the response comes back: to our HTTP-POST ACS
            nameid_format=NAMEID_FORMAT_EMAILADDRESS,
            # HTTP-POST carries an enveloped signature; HTTP-Redirect none inside the deflated
            # XML, its query is signed instead (apply_binding, SAML bindings 3.4.4.1).
            sign=algorithms is not None and binding == BINDING_HTTP_POST,
            sign_alg=sigalg,
            digest_alg=digest_alg,
        )
        if binding == BINDING_HTTP_POST:
            encoded = base64.b64encode(str(request).encode("utf-8")).decode("ascii")
            fields = {"SAMLRequest": encoded, "RelayState": relay_state}
            return OutgoingMessage(binding, destination, fields, request_id)
        info = self.client.apply_binding(
            binding,
            str(request),
            destination,
            relay_state,
            sign=algorithms is not None,
            sigalg=sigalg,
        )
        location = dict(info["headers"])["Location"]
        return OutgoingMessage(binding, location, {}, request_id)

    def _sign_on_endpoint(self) -> tuple[str, str]:
        """(binding, URL) of the IdP's SingleSignOnService this SP sends its requests to.

        From the metadata as parsing.py read it (the URLs it checked), not pysaml2's lookup,
        which logs an error for every binding an IdP does not offer.
        """
        for binding in SIGN_ON_BINDINGS:
            if location := self.sso_urls.get(binding):
                return binding, location
        raise SignOnError(
            "the IdP offers no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding"
        )


def _wants_signed_requests(metadata: InMemoryMetaData, entity_id: str) -> bool:
    """WantAuthnRequestsSigned="true" (or "1", xs:boolean) on an IDPSSODescriptor of the IdP."""
    roles = metadata.entity.get(entity_id, {}).get("idpsso_descriptor") or []
    return any(
        str(role.get("want_authn_requests_signed") or "").strip().lower() in ("true", "1")
        for role in roles
    )


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
        self._cache: OrderedDict[tuple[str, tuple[str, str | None, int]], ServiceProvider] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(
        self,
        urls: WorkspaceUrls,
        version: tuple[str, str | None, int],
        load: Callable[[], tuple[IdPSettings | None, SpKeyRing | None]],
    ) -> ServiceProvider:
        """The SP for this workspace at ``version`` (which workspace: its id and when it was
        made; its IdP's version; its SP version: keys and SAML choices); ``load`` reads the IdP
        and the keys only on a miss."""
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
