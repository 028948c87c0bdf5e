"""IdP metadata: parse it safely, extract what the SP needs, and say when to fetch it again.

No database and no network here: fetching.py gets the document, identity_providers.py and
refresh.py hand the store what to keep. The IdP's signing keys come from its metadata only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml import etree
from saml2.mdstore import InMemoryMetaData

from ..errors import MetadataError
from .document import MD_NS, QuotingMetadataError, metadata_root

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SSO_BINDINGS = (BINDING_REDIRECT, BINDING_POST)

# Refresh at least daily even when the IdP allows longer: that is how a certificate rollover
# published in the metadata reaches us in time.
DEFAULT_REFRESH = dt.timedelta(days=1)
# Whatever the metadata says (cacheDuration PT0S, a validUntil in the past), don't hammer the IdP.
MIN_REFRESH = dt.timedelta(minutes=5)
MAX_ENTITY_ID = 1024  # the identity_providers.entity_id column

_UTC = dt.UTC
_PLAIN_URL = re.compile(r"[\x21-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DURATION = re.compile(
    r"^(-)?P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
# Years and months have no fixed length; for a cache lifetime these approximations are fine.
_DURATION_SECONDS = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)
_MAX_DURATION = dt.timedelta(days=3650)


@dataclasses.dataclass(frozen=True)
class Certificate:
    """One of the IdP's signing certificates, as published in its metadata."""

    der_base64: str = dataclasses.field(repr=False)  # X509Certificate text, no whitespace
    sha256_fingerprint: str  # "AA:BB:..", as IdP admin consoles show it
    subject: str  # RFC 4514
    not_before: dt.datetime
    not_after: dt.datetime

    @property
    def pem(self) -> str:
        body = "\n".join(self.der_base64[i : i + 64] for i in range(0, len(self.der_base64), 64))
        return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"

    def expired(self, now: dt.datetime) -> bool:
        return self.not_after <= now


@dataclasses.dataclass(frozen=True)
class IdPMetadata:
    """What the SP needs from an IdP's metadata, checked."""

    entity_id: str
    sso_urls: Mapping[str, str]  # binding URI -> Location (HTTP-Redirect and/or HTTP-POST)
    signing_certificates: tuple[Certificate, ...]  # all of them: several during a rollover
    valid_until: dt.datetime | None  # the earliest validUntil on the way to the IdP's role
    cache_duration: dt.timedelta | None  # the shortest cacheDuration on that way
    xml: str = dataclasses.field(repr=False)  # the IdP's EntityDescriptor, re-serialised

    @property
    def sso_url(self) -> str:
        """The SSO URL SP-initiated sign-in uses: HTTP-Redirect when offered, else HTTP-POST."""
        return self.sso_urls.get(BINDING_REDIRECT) or self.sso_urls[BINDING_POST]

    def expired(self, now: dt.datetime) -> bool:
        return self.valid_until is not None and self.valid_until <= now


# -- parsing ---------------------------------------------------------------------------------


def parse(
    xml: str, *, check_loadable: bool = True, echo: bool = True, require_sso: bool = True
) -> IdPMetadata:
    """Check ``xml`` is SAML 2.0 metadata of exactly one IdP and extract what the SP needs.

    With ``check_loadable`` the result is also loaded by pysaml2, as the SP will load it, so
    nothing is stored that sign-in would later choke on. With ``echo=False`` (a document the
    site fetched from a URL an owner gave) no error quotes anything from the document.
    ``require_sso=False``: an IdP without an HTTP-Redirect or HTTP-POST SingleSignOnService
    is read anyway (``sso_urls`` empty), for the SP of a stored record that predates these
    checks: its sign-in start then says so (saml/login_flow.py) instead of failing.
    """
    try:
        return _parse(xml, check_loadable=check_loadable, require_sso=require_sso)
    except QuotingMetadataError as error:
        if echo:
            raise
        raise MetadataError(error.unquoted) from None


def _parse(xml: str, *, check_loadable: bool, require_sso: bool) -> IdPMetadata:
    root = metadata_root(xml)
    entity = _the_idp_entity(root)
    roles = _idp_roles(entity)
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id:
        raise MetadataError("the EntityDescriptor has no entityID")
    if len(entity_id) > MAX_ENTITY_ID:
        raise MetadataError(f"the entityID is longer than {MAX_ENTITY_ID} characters")
    if _CONTROL.search(entity_id):
        raise MetadataError("the entityID contains a control character")
    _check_endpoint_urls(entity)
    if require_sso:  # what set-idp and refreshes store; the SP reads stored metadata leniently
        _check_logout_urls(roles)
    # validUntil and cacheDuration may sit on any element from the root down to the role.
    path = [*reversed(list(entity.iterancestors())), entity, *roles]
    until = [_datetime(e.get("validUntil", "")) for e in path if e.get("validUntil")]
    cache = [_duration(e.get("cacheDuration", "")) for e in path if e.get("cacheDuration")]
    metadata = IdPMetadata(
        entity_id=entity_id,
        sso_urls=_sso_urls(roles, required=require_sso),
        signing_certificates=_signing_certificates(roles),
        valid_until=min(until, default=None),
        cache_duration=min(cache, default=None),
        xml=etree.tostring(entity, encoding="unicode"),
    )
    if check_loadable:
        _check_pysaml2_loads(metadata)
    return metadata


def _the_idp_entity(root: Any) -> Any:
    # metadata_root() made sure the root is one of these two.
    if root.tag == f"{{{MD_NS}}}EntityDescriptor":
        entities = [root]
    else:
        entities = list(root.iterfind(f".//{{{MD_NS}}}EntityDescriptor"))
    idps = [entity for entity in entities if _idp_roles(entity)]
    if not idps:
        raise MetadataError(
            "the metadata describes no identity provider (no IDPSSODescriptor for SAML 2.0)"
        )
    if len(idps) > 1:
        raise QuotingMetadataError(
            f"the metadata describes {len(idps)} identity providers; give the metadata of one",
            unquoted="the metadata describes more than one identity provider; give the metadata"
            " of one",
        )
    return idps[0]


def _idp_roles(entity: Any) -> list[Any]:
    return [
        role
        for role in entity.iterfind(f"{{{MD_NS}}}IDPSSODescriptor")
        if SAML2_PROTOCOL in (role.get("protocolSupportEnumeration") or "").split()
    ]


def _check_endpoint_urls(entity: Any) -> None:
    """Every endpoint URL of the entity is printable ASCII.

    They end up in a Location header or a form's action: a newline (``&#10;``), a tab, a DEL,
    a C1 control or a letter outside Latin-1 there made every sign-in a 500. URLs are ASCII
    (RFC 3986): anything else must be percent-encoded, and IdPs publish them that way.
    """
    for element in entity.iter(etree.Element):
        for attribute in ("Location", "ResponseLocation"):
            value = element.get(attribute)
            if value is not None and not _PLAIN_URL.fullmatch(value):
                name = etree.QName(element).localname
                problem = (
                    "contains a control character, a space or a non-ASCII character;"
                    " an endpoint URL must be printable ASCII (percent-encode the rest)"
                )
                raise QuotingMetadataError(
                    f"the {name} {attribute} {value!r} {problem}",
                    unquoted=f"an endpoint's {attribute} {problem}",
                )


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:  # "https://[host/" and other unreadable authorities
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _require_http_url(service: str, attribute: str, value: str) -> None:
    if not _is_http_url(value):
        raise QuotingMetadataError(
            f"the {service} {attribute} {value!r} is not an http(s) URL",
            unquoted=f"a {service} {attribute} is not an http(s) URL",
        )


def _check_logout_urls(roles: list[Any]) -> None:
    """Single logout sends the browser to these (saml/single_logout.py): a URL it could not
    read would make every logout the IdP starts fail, after the sessions ended."""
    for role in roles:
        for service in role.iterfind(f"{{{MD_NS}}}SingleLogoutService"):
            if (service.get("Binding") or "") not in SSO_BINDINGS:
                continue  # SOAP and others are never used
            for attribute in ("Location", "ResponseLocation"):
                value = service.get(attribute)
                if value is not None and (value.strip() or attribute == "Location"):
                    _require_http_url("SingleLogoutService", attribute, value.strip())


def _sso_urls(roles: list[Any], *, required: bool = True) -> dict[str, str]:
    """Binding -> URL of the SingleSignOnServices sign-in can use: HTTP-Redirect, HTTP-POST.

    An IdP offering neither (SOAP or Artifact only) could never be sent a request: refused
    when ``required``, so set-idp and refreshes never store one."""
    urls: dict[str, str] = {}
    offered: list[str] = []
    for role in roles:
        for service in role.iterfind(f"{{{MD_NS}}}SingleSignOnService"):
            binding = service.get("Binding") or ""
            location = (service.get("Location") or "").strip()
            offered.append(binding.rpartition(":")[2] or "(no binding)")
            if binding not in SSO_BINDINGS or binding in urls:
                continue  # the first endpoint of a binding is the one to use
            _require_http_url("SingleSignOnService", "Location", location)
            urls[binding] = location
    if not urls and required:
        found = f" (it offers: {', '.join(offered)})" if offered else ""
        missing = "the IdP has no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding"
        raise QuotingMetadataError(missing + found, unquoted=missing)
    return urls


def _signing_certificates(roles: list[Any]) -> tuple[Certificate, ...]:
    certificates: dict[str, Certificate] = {}  # by fingerprint: in order, each once
    for role in roles:
        for key in role.iterfind(f"{{{MD_NS}}}KeyDescriptor"):
            if key.get("use") not in (None, "signing"):  # no use means both
                continue
            path = f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate"
            for element in key.iterfind(path):
                certificate = _certificate(element.text or "")
                certificates.setdefault(certificate.sha256_fingerprint, certificate)
    if not certificates:
        raise MetadataError(
            'the IdP has no signing certificate (a KeyDescriptor with use="signing" or'
            " without use, holding an X509Certificate)"
        )
    return tuple(certificates.values())


def _certificate(text: str) -> Certificate:
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
        loaded = x509.load_der_x509_certificate(der)
        subject = loaded.subject.rfc4514_string()
    except (binascii.Error, ValueError) as error:
        raise QuotingMetadataError(
            f"an X509Certificate is not a valid certificate ({error})",
            unquoted="an X509Certificate is not a valid certificate",
        ) from None
    return Certificate(
        der_base64=base64.b64encode(der).decode("ascii"),
        sha256_fingerprint=loaded.fingerprint(hashes.SHA256()).hex(":").upper(),
        subject=subject,
        not_before=loaded.not_valid_before_utc,
        not_after=loaded.not_valid_after_utc,
    )


def _datetime(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise QuotingMetadataError(
            f"validUntil {text!r} is not a date and time",
            unquoted="a validUntil is not a date and time",
        ) from None
    # SAML times without a zone are UTC (SAML core 1.3.3).
    return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)


def _duration(text: str) -> dt.timedelta:
    """An xsd:duration such as PT8H or P1D."""
    match = _DURATION.match(text.strip())
    if match is None or match.group(1):
        raise QuotingMetadataError(
            f"cacheDuration {text!r} is not a positive duration such as PT8H",
            unquoted="a cacheDuration is not a positive duration such as PT8H",
        )
    seconds = sum(
        float(value) * unit
        for value, unit in zip(match.groups()[1:], _DURATION_SECONDS, strict=True)
        if value
    )
    # A silly cacheDuration (P9999Y) is harmless, as we refresh daily anyway: cap, don't refuse.
    return dt.timedelta(seconds=min(seconds, _MAX_DURATION.total_seconds()))


def load_pysaml2(xml: str) -> InMemoryMetaData:
    """The stored metadata as pysaml2 metadata, ready for a MetadataStore.

    Validity is not checked here (check_validity=False): pysaml2 would silently drop an expired
    entity, while we keep using the last good copy when a refresh fails (see
    refresh.py). Unsigned metadata needs no xmlsec1 to load.
    """
    loaded = InMemoryMetaData([], xml, check_validity=False)
    loaded.load()
    return loaded


def _check_pysaml2_loads(metadata: IdPMetadata) -> None:
    try:
        loaded = load_pysaml2(metadata.xml)
        if metadata.entity_id not in loaded:  # pysaml2 logs, rather than raises, some refusals
            raise MetadataError("pysaml2 does not accept the IdP's EntityDescriptor")
        services = loaded.service(metadata.entity_id, "idpsso_descriptor", "single_sign_on_service")
        certificates = loaded.certs(metadata.entity_id, "idpsso", use="signing")
    except MetadataError:
        raise
    except Exception as error:  # noqa: BLE001 - pysaml2 raises many kinds; any means "unusable"
        raise QuotingMetadataError(
            f"pysaml2 cannot load the metadata ({error})",
            unquoted="pysaml2 cannot load the metadata",
        ) from None
    if not services or not set(services) & set(metadata.sso_urls):
        raise MetadataError("pysaml2 finds no usable IdP single sign-on service in the metadata")
    found = {"".join(certificate.split()) for _, certificate in certificates}
    if found != {certificate.der_base64 for certificate in metadata.signing_certificates}:
        raise MetadataError("pysaml2 reads different signing certificates from the metadata")


# -- refresh schedule -------------------------------------------------------------------------


def next_refresh(metadata: IdPMetadata, fetched_at: dt.datetime) -> dt.datetime:
    """When to fetch again: at validUntil or when cacheDuration runs out, at the latest daily,
    and never sooner than five minutes after this fetch."""
    candidates = [fetched_at + DEFAULT_REFRESH]
    if metadata.valid_until is not None:
        candidates.append(metadata.valid_until)
    if metadata.cache_duration is not None:
        candidates.append(fetched_at + metadata.cache_duration)
    return max(min(candidates), fetched_at + MIN_REFRESH)
