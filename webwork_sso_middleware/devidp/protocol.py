"""The SAML side of a small IdP, on pysaml2's ``Server`` with our in-process crypto.

Shared by the dev IdP (``webwork-sso dev-idp``, ``serve``) and the test suite's IdP
(tests/saml/idp.py), so both speak SAML the same way:

    server = make_idp_server(entity_id=..., sso_url=..., name=..., key_file=..., cert_file=...)
    register_sp(server, sp_entity_id, acs_url)          # trust an SP (minimal SP metadata)
    register_sp_metadata(server, xml)                   # or the SP's own metadata (its keys too)
    request = read_authn_request(server, saml_request, binding)   # raises RequestRefused
    request = read_authn_request(server, saml_request, BINDING_HTTP_REDIRECT, query=raw_query)
    xml = response_xml(server, sp_entity_id=..., acs_url=..., email=..., attributes={...})
    xml = response_xml(..., encryption=Encryption(sp_cert_pem))   # an EncryptedAssertion

AuthnRequest signatures are checked against the signing certificates of the SP's registered
metadata: an enveloped XML signature by pysaml2 (with our backend) whenever one is present; a
query-string signature (HTTP-Redirect, SAML bindings 3.4.4.1) over the parameters exactly as
sent, whenever ``query`` is given and carries one. ``want_authn_requests_signed(server, True)``
makes the IdP say WantAuthnRequestsSigned="true" in its metadata and refuse unsigned requests.

Attributes whose names are in ``STANDARD_ATTRIBUTES`` are sent under their urn:oid name
(NameFormat uri, FriendlyName the short name); any other name (Okta's ``email``,
``firstName``, ``lastName``) is sent verbatim with NameFormat unspecified, as Okta does.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import secrets
import urllib.parse
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict
from xml.sax.saxutils import quoteattr

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, SAMLError, class_name, samlp
from saml2.attribute_converter import AttributeConverter
from saml2.mdstore import InMemoryMetaData
from saml2.saml import (
    AUTHN_PASSWORD_PROTECTED,
    NAME_FORMAT_UNSPECIFIED,
    NAME_FORMAT_URI,
    NAMEID_FORMAT_EMAILADDRESS,
    NAMEID_FORMAT_PERSISTENT,
    NAMEID_FORMAT_TRANSIENT,
    NameID,
)
from saml2.sigver import pre_signature_part, signed_instance_factory
from saml2.xmldsig import (
    DIGEST_SHA256,
    SIG_RSA_SHA256,
    SIG_RSA_SHA384,
    SIG_RSA_SHA512,
)

from ..errors import WebworkSSOError
from ..saml.encrypting import Encryption
from ..saml.entities import make_server

# As in saml/entities.py: saml2.server's import warns about a cipher mode we never use; silenced
# for this import only, never in the host's filters. (entities.py, imported just above, usually
# got there first; this keeps the module right on its own.)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="CFB has been moved", module="saml2")
    from saml2.server import Server

STANDARD_ATTRIBUTES = {  # local name -> the urn:oid name sent (and FriendlyName = the local name)
    "mail": "urn:oid:0.9.2342.19200300.100.1.3",
    "givenName": "urn:oid:2.5.4.42",
    "sn": "urn:oid:2.5.4.4",
}
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
Attributes = Mapping[str, "str | Sequence[str]"]
SP_KEY_PREFIX = "sp:"  # our entries in the Server's MetadataStore, one per registered SP
# An AuthnRequest is a few KiB even signed with its certificate inside. pysaml2 inflates the
# Redirect binding's DEFLATE (and tries to for HTTP-POST too) without a limit: 398 KiB of
# deflated zeros became 300 MiB. So both sizes are checked before pysaml2 sees the request.
MAX_SAML_REQUEST_CHARS = 64 * 1024  # as sent: base64 of the deflated (or plain) XML
MAX_AUTHN_REQUEST_BYTES = 128 * 1024  # the XML, once decoded and inflated
# Query-string signature algorithms this IdP accepts (no SHA-1: a test IdP may be strict).
QUERY_SIGNATURE_HASHES: dict[str, hashes.HashAlgorithm] = {
    SIG_RSA_SHA256: hashes.SHA256(),
    SIG_RSA_SHA384: hashes.SHA384(),
    SIG_RSA_SHA512: hashes.SHA512(),
}
AUTHN_REQUEST = "urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest"


class RequestRefused(WebworkSSOError):
    """An AuthnRequest the IdP will not answer; ``reason`` says why in plain words."""

    def __init__(self, reason: str, *, unknown_sp: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unknown_sp = unknown_sp  # the issuer, when the request was fine but its SP unknown


@dataclass(frozen=True)
class AuthnRequestInfo:
    """What an IdP needs from a verified AuthnRequest to answer it."""

    id: str
    sp_entity_id: str
    acs_url: str  # from the SP's registered metadata, never taken on the request's word alone
    signature: str | None = None  # "query" (HTTP-Redirect), "xml" (enveloped), None (unsigned)
    signed_by: str | None = None  # the SP certificate (base64 DER) the signature verified with


def make_idp_server(
    *,
    entity_id: str,
    sso_url: str,
    name: str,
    key_file: str,
    cert_file: str,
    slo_url: str | None = None,
) -> Server:
    """A pysaml2 IdP: SSO by HTTP-Redirect and HTTP-POST, emailAddress NameIDs, RSA-SHA256.

    It signs nothing by itself: ``response_xml`` signs after its own edits. With ``slo_url``
    its metadata offers single logout there (HTTP-Redirect and HTTP-POST).
    """
    endpoints: dict[str, Any] = {
        "single_sign_on_service": [(sso_url, BINDING_HTTP_REDIRECT), (sso_url, BINDING_HTTP_POST)]
    }
    if slo_url:
        endpoints["single_logout_service"] = [
            (slo_url, BINDING_HTTP_REDIRECT),
            (slo_url, BINDING_HTTP_POST),
        ]
    server = make_server(
        {
            "entityid": entity_id,
            "name": name,
            "key_file": key_file,
            "cert_file": cert_file,
            "metadata_key_usage": "signing",
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "metadata": {"inline": []},  # SPs are added by register_sp()
            "service": {
                "idp": {
                    "endpoints": endpoints,
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                    "policy": {
                        "default": {"lifetime": {"minutes": 5}, "name_form": NAME_FORMAT_URI}
                    },
                    "sign_response": False,
                    "sign_assertion": False,
                    "want_authn_requests_signed": False,
                }
            },
        }
    )
    # Only the standard names get urn:oid names; any other goes verbatim (see the module doc).
    converter = AttributeConverter(NAME_FORMAT_URI)
    converter.from_dict({"identifier": NAME_FORMAT_URI, "to": STANDARD_ATTRIBUTES})
    converter.adjust()
    server.config.attribute_converters = [converter]
    return server


# -- the SPs an IdP trusts -------------------------------------------------------------------


def want_authn_requests_signed(server: Server, wanted: bool) -> None:
    """Say WantAuthnRequestsSigned in this IdP's metadata, and refuse unsigned requests if so."""
    server.config.setattr("idp", "want_authn_requests_signed", wanted)


def sp_metadata_xml(entity_id: str, acs_url: str, *, signing_cert: str | None = None) -> str:
    """A minimal SP EntityDescriptor: HTTP-POST ACS, emailAddress NameID (and a signing key, if given)."""
    key = ""
    if signing_cert:
        key = (
            '<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
            f"<ds:X509Data><ds:X509Certificate>{signing_cert}</ds:X509Certificate></ds:X509Data>"
            "</ds:KeyInfo></md:KeyDescriptor>"
        )
    return (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"'
        f" entityID={quoteattr(entity_id)}>"
        '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{key}<md:NameIDFormat>{NAMEID_FORMAT_EMAILADDRESS}</md:NameIDFormat>"
        f'<md:AssertionConsumerService Binding="{BINDING_HTTP_POST}" Location={quoteattr(acs_url)}'
        ' index="0" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>'
    )


def register_sp(
    server: Server, entity_id: str, acs_url: str, *, signing_cert: str | None = None
) -> str:
    """Trust an SP (again, replacing what was known of it); returns the SP metadata loaded."""
    xml = sp_metadata_xml(entity_id, acs_url, signing_cert=signing_cert)
    register_sp_metadata(server, xml)
    return xml


def register_sp_metadata(server: Server, xml: str) -> list[str]:
    """Trust the SPs an SP metadata document describes; returns their entity IDs.

    Raises ``ValueError`` when the document describes no SP with an HTTP-POST ACS.
    """
    try:
        metadata = InMemoryMetaData(server.metadata.attrc, xml)
        metadata.load()
    except Exception as error:  # noqa: BLE001 - pysaml2 raises a zoo of types for bad metadata
        raise ValueError(f"not SAML metadata ({error})") from None
    entity_ids = [
        entity_id for entity_id in metadata.keys()  # noqa: SIM118 - pysaml2 MetaData has no __iter__
        if _post_acs(metadata, entity_id)
    ]  # fmt: skip
    if not entity_ids:
        raise ValueError(
            "the metadata describes no SP with an HTTP-POST Assertion Consumer Service"
        )
    for entity_id in entity_ids:
        # One document per SP, keyed by its entity ID: registering again replaces, never adds.
        single = InMemoryMetaData(server.metadata.attrc, xml)
        single.entity = {entity_id: metadata.entity[entity_id]}
        server.metadata.metadata[SP_KEY_PREFIX + entity_id] = single
    return entity_ids


def registered_sps(server: Server) -> dict[str, str]:
    """Entity ID -> default HTTP-POST ACS URL of every SP the IdP trusts."""
    found: dict[str, str] = {}
    for key, metadata in list(server.metadata.metadata.items()):
        if not key.startswith(SP_KEY_PREFIX):
            continue
        for entity_id in metadata.keys():  # noqa: SIM118 - pysaml2 MetaData has no __iter__
            if acs_url := _post_acs(metadata, entity_id):
                found[entity_id] = acs_url
    return found


def _post_acs(metadata: InMemoryMetaData, entity_id: str) -> str | None:
    """The SP's default HTTP-POST ACS URL (isDefault, else the first), or None."""
    services = (
        metadata.service(
            entity_id, "spsso_descriptor", "assertion_consumer_service", BINDING_HTTP_POST
        )
        or []
    )
    chosen = next((s for s in services if str(s.get("is_default")).lower() == "true"), None)
    chosen = chosen or (services[0] if services else None)
    return str(chosen["location"]) if chosen else None


def read_authn_request(
    server: Server, saml_request: str, binding: str, *, query: str | None = None
) -> AuthnRequestInfo:
    """Decode and check an AuthnRequest (either binding); RequestRefused says what is wrong.

    ``query``: the raw query string of an HTTP-Redirect request, whose signature (if any, and
    required when the IdP wants signed requests) is then checked over the bytes as sent.
    """
    _refuse_oversized(saml_request)
    signed_query = _signed_query(query) if binding == BINDING_HTTP_REDIRECT and query else None
    try:
        # pysaml2 checks a query signature itself only when the IdP wants signed requests.
        request = server.parse_authn_request(
            saml_request, binding, **(signed_query.pysaml2_arguments() if signed_query else {})
        )
    except Exception as error:  # noqa: BLE001 - pysaml2 raises many types for undecodable input
        raise RequestRefused(f"the SAMLRequest could not be read ({error})") from None
    if request is None or request.message is None:
        raise RequestRefused("the SAMLRequest could not be read")
    message = request.message
    issuer = (message.issuer.text or "").strip() if message.issuer is not None else ""
    if not issuer:
        raise RequestRefused("the AuthnRequest names no issuer (SP entity ID)")
    if issuer not in registered_sps(server):
        raise RequestRefused(
            f"the SP {issuer!r} is not registered with this IdP", unknown_sp=issuer
        )
    try:
        args = server.response_args(message, [BINDING_HTTP_POST])
    except SAMLError:
        # pysaml2 found no registered ACS matching the one the request asks for.
        asked = message.assertion_consumer_service_url or "(none)"
        raise RequestRefused(
            f"the AuthnRequest asks for ACS {asked}, which the SP {issuer!r} did not register"
        ) from None
    certificates = _sp_signing_certificates(server, issuer)
    signature: str | None = None
    signed_by: str | None = None
    if signed_query is not None and signed_query.signature is not None:
        signature, signed_by = "query", signed_query.verify(certificates)
    elif message.signature is not None:
        # pysaml2 verified it already (on our backend); which of the SP's keys did is told here.
        signature = "xml"
        signed_by = _xml_signer(server, request.xmlstr, message.id, certificates)
    return AuthnRequestInfo(
        args["in_response_to"], issuer, args["destination"], signature, signed_by
    )


@dataclass(frozen=True)
class _SignedQuery:
    """The parameters of an HTTP-Redirect query: decoded, and as sent (for the signature)."""

    decoded: dict[str, str]
    raw: dict[str, str]

    @property
    def signature(self) -> str | None:
        return self.decoded.get("Signature")

    def pysaml2_arguments(self) -> dict[str, str | None]:
        return {
            "relay_state": self.decoded.get("RelayState"),
            "sigalg": self.decoded.get("SigAlg"),
            "signature": self.signature,
        }

    def verify(self, certificates: Sequence[bytes]) -> str:
        """The base64 DER of the SP certificate whose key signed the query (bindings 3.4.4.1:
        SAMLRequest, RelayState if present, SigAlg, URL-encoded exactly as sent)."""
        algorithm = self.decoded.get("SigAlg")
        hash_algorithm = QUERY_SIGNATURE_HASHES.get(algorithm or "")
        if hash_algorithm is None:
            raise RequestRefused(f"the query signature algorithm {algorithm!r} is not accepted")
        signed = "&".join(
            f"{name}={self.raw[name]}" for name in ("SAMLRequest", "RelayState", "SigAlg")
            if name in self.raw
        ).encode("ascii")  # fmt: skip
        try:
            signature_value = base64.b64decode(self.decoded["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise RequestRefused("the query's Signature is not base64") from None
        for der in certificates:
            try:
                key = x509.load_der_x509_certificate(der).public_key()
            except ValueError:
                continue  # not a certificate: it signed nothing
            if not isinstance(key, rsa.RSAPublicKey):
                continue
            try:
                key.verify(signature_value, signed, padding.PKCS1v15(), hash_algorithm)
            except InvalidSignature:
                continue
            return base64.b64encode(der).decode("ascii")
        raise RequestRefused(
            "the AuthnRequest's query signature does not verify with any signing certificate"
            " in the SP's metadata"
        )


def _signed_query(query: str) -> _SignedQuery:
    decoded: dict[str, str] = {}
    raw: dict[str, str] = {}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        name = urllib.parse.unquote_plus(name)
        if name in raw:
            # Which copy would be signed, and which read? Neither: a real IdP refuses it too.
            raise RequestRefused(f"the query names {name!r} more than once")
        raw[name] = value
        decoded[name] = urllib.parse.unquote_plus(value)
    return _SignedQuery(decoded, raw)


def _sp_signing_certificates(server: Server, entity_id: str) -> list[bytes]:
    """DER signing certificates of the SP's registered metadata (none in minimal metadata)."""
    try:
        found = server.metadata.certs(entity_id, "spsso", "signing")
    except KeyError:
        return []
    certificates = []
    for _name, text in found:  # base64 DER, wrapped at 64 columns by pysaml2
        try:
            certificates.append(base64.b64decode("".join(text.split()), validate=True))
        except (binascii.Error, ValueError):
            continue  # pysaml2 verifies with it or not; it cannot have signed a query here
    return certificates


def _xml_signer(
    server: Server, xml: str, request_id: str, certificates: Sequence[bytes]
) -> str | None:
    """Which SP certificate the enveloped signature verifies with, asked of the server's own
    backend (the in-process one entities.make_server installed), one certificate at a time."""
    for der in certificates:
        certificate = base64.b64encode(der).decode("ascii")
        try:
            server.sec.crypto.validate_signature(xml, certificate, "der", AUTHN_REQUEST, request_id)
        except SAMLError:
            continue
        return certificate
    return None


def _refuse_oversized(saml_request: str) -> None:
    """RequestRefused when the request, as sent or inflated, is larger than any real one.

    Inflating stops one byte past the limit, so a deflate bomb costs at most that much memory.
    Input that is not base64 or not DEFLATE is left for pysaml2 to refuse in its own words.
    """
    too_large = RequestRefused(
        f"the SAMLRequest is too large (at most {MAX_SAML_REQUEST_CHARS // 1024} KiB as sent and "
        f"{MAX_AUTHN_REQUEST_BYTES // 1024} KiB of XML are accepted)"
    )
    if len(saml_request) > MAX_SAML_REQUEST_CHARS:
        raise too_large
    try:
        raw = base64.b64decode(saml_request)  # lenient, as pysaml2 decodes it
    except (binascii.Error, ValueError):
        return
    if len(raw) > MAX_AUTHN_REQUEST_BYTES:
        raise too_large
    try:
        inflated = zlib.decompressobj(-15).decompress(raw, MAX_AUTHN_REQUEST_BYTES + 1)
    except zlib.error:
        return  # not deflated: the HTTP-POST binding's plain base64, or garbage
    if len(inflated) > MAX_AUTHN_REQUEST_BYTES:
        raise too_large


# -- responses -------------------------------------------------------------------------------


def _now_plus(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


class ResponseOptions(TypedDict, total=False):
    """The optional knobs of :func:`response_xml`, for callers that pass them through."""

    in_response_to: str | None
    sign_assertion: bool
    sign_response: bool
    issuer: str | None
    audience: str | None
    destination: str | None
    recipient: str | None
    not_on_or_after_offset: float
    not_before_offset: float
    authn_instant: dt.datetime | None
    name_id_format: str | None
    name_id: str | None
    encryption: Encryption | None


def response_xml(
    server: Server,
    *,
    sp_entity_id: str,
    acs_url: str,
    email: str,
    attributes: Attributes,
    in_response_to: str | None = None,
    sign_assertion: bool = True,
    sign_response: bool = False,
    issuer: str | None = None,
    audience: str | None = None,
    destination: str | None = None,
    recipient: str | None = None,
    not_on_or_after_offset: float = 300,
    not_before_offset: float = -300,
    authn_instant: dt.datetime | None = None,
    name_id_format: str | None = NAMEID_FORMAT_EMAILADDRESS,
    name_id: str | None = None,
    encryption: Encryption | None = None,
) -> str:
    """A SAML Response (XML text) for ``email``, NameID format emailAddress, signed as asked.

    ``name_id_format`` names another NameID Format (None: no Format attribute, i.e.
    unspecified); ``name_id`` its value, by default ``email``, or for a transient or persistent
    format an opaque identifier (as Entra's default persistent NameID), the email then going in
    the attributes only.

    Made by ``Server.create_authn_response``, then edited (offsets are seconds from now;
    Conditions and SubjectConfirmationData share NotOnOrAfter), then signed with the IdP key.
    ``issuer``/``audience``/``destination``/``recipient`` default to the honest values (the
    IdP's entity ID, ``sp_entity_id``, ``acs_url``, ``acs_url``); tests set them to lie.
    With ``encryption`` the assertion is signed (if asked), then encrypted as it says, and the
    response signature (if asked) covers the EncryptedAssertion, in the order pysaml2 uses.
    """
    identity = {name: [v] if isinstance(v, str) else list(v) for name, v in attributes.items()}
    unsigned = server.create_authn_response(
        identity,
        in_response_to,
        acs_url,
        sp_entity_id,
        name_id=NameID(
            format=name_id_format, text=name_id or _name_id_value(name_id_format, email)
        ),
        authn={"class_ref": AUTHN_PASSWORD_PROTECTED},
        sign_assertion=False,
        sign_response=False,
    )
    # pysaml2 takes times from its policy and the clock: edit its unsigned output, then sign.
    response = samlp.response_from_string(str(unsigned))
    assertion = _first(response.assertion)
    response.issuer.text = assertion.issuer.text = issuer or server.config.entityid
    response.destination = destination or acs_url
    confirmation = _first(assertion.subject.subject_confirmation).subject_confirmation_data
    confirmation.recipient = recipient or acs_url
    confirmation.not_on_or_after = _now_plus(not_on_or_after_offset)
    conditions = assertion.conditions
    conditions.not_before = _now_plus(not_before_offset)
    conditions.not_on_or_after = _now_plus(not_on_or_after_offset)
    _first(_first(conditions.audience_restriction).audience).text = audience or sp_entity_id
    instant = authn_instant or dt.datetime.now(dt.UTC)
    _first(assertion.authn_statement).authn_instant = instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    for statement in assertion.attribute_statement or []:
        for attribute in statement.attribute:
            if attribute.name not in STANDARD_ATTRIBUTES.values():
                attribute.name_format = NAME_FORMAT_UNSPECIFIED  # Okta's way: its names as they are

    to_sign = []
    # The assertion first: a response signature then covers the signed assertion.
    for element, wanted in ((assertion, sign_assertion), (response, sign_response)):
        if wanted:
            element.signature = signature_template(server, element.id)
            to_sign.append((class_name(element), element.id))
    if encryption is None:
        return str(signed_instance_factory(response, server.sec, to_sign) if to_sign else response)
    xml = str(response)
    if sign_assertion:
        xml = server.sec.sign_statement(xml, class_name(assertion), node_id=assertion.id)
    # Our own output, just made: a plain parse is safe here.
    root = etree.fromstring(xml.encode("utf-8"))
    encryption.encrypt(root.find(f"{{{SAML}}}Assertion"))
    xml = etree.tostring(root, encoding="UTF-8", xml_declaration=True).decode("utf-8")
    if sign_response:
        xml = server.sec.sign_statement(xml, class_name(response), node_id=response.id)
    return xml


def _name_id_value(name_id_format: str | None, email: str) -> str:
    """The NameID an IdP sends for ``email`` in this format: opaque for transient (new each
    time) and persistent (stable per person, as an IdP keeps it), else the email itself."""
    if name_id_format == NAMEID_FORMAT_TRANSIENT:
        return "_" + secrets.token_hex(16)
    if name_id_format == NAMEID_FORMAT_PERSISTENT:
        return base64.b64encode(hashlib.sha256(email.encode("utf-8")).digest()).decode("ascii")
    return email


def signature_template(server: Server, element_id: str) -> Any:
    """pysaml2's ds:Signature template (RSA-SHA256, exc-c14n, the IdP certificate in KeyInfo)."""
    return pre_signature_part(
        element_id, server.sec.my_cert, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
    )


def names_from_email(email: str) -> tuple[str, str | None]:
    """(given name, family name or None) guessed from ``first.last@domain``."""
    local = email.partition("@")[0]
    given, _, family = local.partition(".")
    return given.capitalize(), (family.replace(".", " ").title() or None)


# -- single logout ---------------------------------------------------------------------------


def logout_request(
    server: Server,
    *,
    destination: str,
    name_id: str,
    name_id_format: str = NAMEID_FORMAT_EMAILADDRESS,
    session_indexes: Sequence[str] = (),
    issuer: str | None = None,
    issued_offset: float = 0,
    expires_offset: float | None = 300,
) -> samlp.LogoutRequest:
    """An unsigned IdP-initiated LogoutRequest (pysaml2's), edited as asked: offsets are
    seconds from now, ``issuer`` defaults to the IdP's entity ID."""
    _, request = server.create_logout_request(
        destination,
        issuer_entity_id=None,
        name_id=NameID(format=name_id_format, text=name_id),
        session_indexes=list(session_indexes) or None,
        sign=False,
    )
    request.issue_instant = _now_plus(issued_offset)
    request.not_on_or_after = _now_plus(expires_offset) if expires_offset is not None else None
    request.issuer.text = issuer or server.config.entityid
    return request


def sign_message(server: Server, message: Any) -> str:
    """``message`` (a pysaml2 LogoutRequest or LogoutResponse) with an enveloped signature."""
    message.signature = signature_template(server, message.id)
    return str(signed_instance_factory(message, server.sec, [(class_name(message), message.id)]))


def redirect_query(
    server: Server, field: str, xml: str, relay_state: str | None = None, *, sign: bool = True
) -> str:
    """The HTTP-Redirect query of ``xml`` as ``field``, signed (RSA-SHA256) by pysaml2's own
    query-string signer with the IdP key unless ``sign`` is False."""
    info = server.apply_binding(
        BINDING_HTTP_REDIRECT,
        xml,
        destination="http://x.invalid/",
        relay_state=relay_state or "",
        response=field == "SAMLResponse",
        sign=sign,
        sigalg=SIG_RSA_SHA256,
    )
    return str(dict(info["headers"])["Location"]).partition("?")[2]
