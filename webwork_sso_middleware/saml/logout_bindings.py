"""Logout messages on their way out, and the signatures of the bindings: our LogoutRequest and
LogoutResponse built with lxml, signed in-process with the workspace's SP key (a Redirect
query signature with ``cryptography``, SAML bindings 3.4.4.1; an enveloped signature with
crypto.XmlsecBackend for POST) and sent through the browser (a redirect, or an auto-submitting
form); the verification of an IdP's query signature; the IdP's SingleLogoutService endpoints
from its metadata. pysaml2 is not involved.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import secrets
import zlib
from collections.abc import Mapping
from html import escape
from types import MappingProxyType
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from saml2.sigver import SignatureError
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from ..page_headers import SELF, origin_source, secure_page
from ..sp_keys import SpKey
from ..store.models import utcnow
from .crypto import DocumentRefused, XmlsecBackend, load_own_private_key, parse_xml
from .pages import AUTOPOST_SCRIPT, AUTOPOST_SOURCE, STYLE, STYLE_SOURCE
from .posted import SAML, SAMLP

SIGNATURES = XmlsecBackend()
DS = "http://www.w3.org/2000/09/xmldsig#"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
SIG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

# Query-string signatures we accept: RSA with SHA-256/384/512, and RSA-SHA1 as the ACS does for
# legacy IdP set-ups (crypto.py). We sign with RSA-SHA256.
QUERY_SIGNATURE_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    SIG_RSA_SHA256: hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": hashes.SHA384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512,
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": hashes.SHA1,
}


@dataclasses.dataclass(frozen=True)
class Endpoint:
    binding: str
    location: str
    response_location: str


# -- signatures -------------------------------------------------------------------------------------


def verify_query_signature(
    signed: bytes, algorithm: str, signature: str, certificates: list[bytes]
) -> bool:
    """Whether ``signature`` (base64) over ``signed`` verifies with one of the IdP's
    metadata certificates by an allowed RSA algorithm."""
    digest = QUERY_SIGNATURE_ALGORITHMS.get(algorithm)
    if digest is None or not signed:
        return False
    try:
        value = base64.b64decode("".join(signature.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    for der in certificates:
        try:
            key = x509.load_der_x509_certificate(der).public_key()
        except ValueError:
            continue
        if not isinstance(key, rsa.RSAPublicKey):
            continue
        try:
            key.verify(value, signed, padding.PKCS1v15(), digest())
            return True
        except InvalidSignature:
            continue
    return False


def sign_query(message_field: str, xml: bytes, relay_state: str | None, key: SpKey) -> str:
    """The HTTP-Redirect query for ``xml`` (DEFLATE, base64), signed with RSA-SHA256: each
    parameter URL-encoded as pysaml2 and most IdPs encode it, then the signature over them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(xml) + compressor.flush()
    parts = [f"{message_field}={quote_plus(base64.b64encode(deflated).decode('ascii'))}"]
    if relay_state is not None:
        parts.append(f"RelayState={quote_plus(relay_state)}")
    parts.append(f"SigAlg={quote_plus(SIG_RSA_SHA256)}")
    signed = "&".join(parts)
    private_key = load_own_private_key(key.private_key_pem)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise SignatureError("the SP key is not an RSA key")
    signature = private_key.sign(signed.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signed + "&" + urlencode({"Signature": base64.b64encode(signature).decode("ascii")})


def sign_enveloped(xml: bytes, node_name: str, key: SpKey) -> bytes:
    """``xml`` with an enveloped signature (RSA-SHA256, exclusive c14n) by the SP key, placed
    after the Issuer as the schema wants it."""
    root = etree.fromstring(xml)
    element_id = root.get("ID")
    signature = etree.Element(f"{{{DS}}}Signature", nsmap={"ds": DS})
    info = etree.SubElement(signature, f"{{{DS}}}SignedInfo")
    etree.SubElement(info, f"{{{DS}}}CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(info, f"{{{DS}}}SignatureMethod", Algorithm=SIG_RSA_SHA256)
    reference = etree.SubElement(info, f"{{{DS}}}Reference", URI=f"#{element_id}")
    transforms = etree.SubElement(reference, f"{{{DS}}}Transforms")
    etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=ENVELOPED)
    etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=EXC_C14N)
    etree.SubElement(reference, f"{{{DS}}}DigestMethod", Algorithm=DIGEST_SHA256)
    etree.SubElement(reference, f"{{{DS}}}DigestValue")
    etree.SubElement(signature, f"{{{DS}}}SignatureValue")
    key_info = etree.SubElement(signature, f"{{{DS}}}KeyInfo")
    data = etree.SubElement(key_info, f"{{{DS}}}X509Data")
    etree.SubElement(data, f"{{{DS}}}X509Certificate").text = key.certificate_base64
    root.insert(1, signature)  # after the Issuer, the first child
    signed = SIGNATURES.sign_statement(
        etree.tostring(root), node_name, key.private_key_pem, element_id
    )
    return signed.encode("utf-8")


# -- building messages ------------------------------------------------------------------------------


def _instant_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(tag: str, destination: str, issuer: str) -> Any:
    root = etree.Element(f"{{{SAMLP}}}{tag}", nsmap={"samlp": SAMLP, "saml": SAML})
    root.set("ID", "_" + secrets.token_hex(20))
    root.set("Version", "2.0")
    root.set("IssueInstant", _instant_text(utcnow()))
    root.set("Destination", destination)
    etree.SubElement(root, f"{{{SAML}}}Issuer").text = issuer
    return root


def logout_request_xml(
    request_id: str,
    issuer: str,
    destination: str,
    subject: Any,
    *,
    not_on_or_after: dt.datetime,
) -> bytes:
    """Our LogoutRequest for the subject a session's sign-in named (store/sessions.py)."""
    root = _message("LogoutRequest", destination, issuer)
    root.set("ID", request_id)
    root.set("NotOnOrAfter", _instant_text(not_on_or_after))
    name_id = etree.SubElement(root, f"{{{SAML}}}NameID")
    name_id.text = subject.saml_name_id
    for attribute, value in (
        ("Format", subject.saml_name_id_format),
        ("NameQualifier", subject.saml_name_qualifier),
        ("SPNameQualifier", subject.saml_sp_name_qualifier),
    ):
        if value:
            name_id.set(attribute, value)
    if subject.saml_session_index:
        etree.SubElement(root, f"{{{SAMLP}}}SessionIndex").text = subject.saml_session_index
    return etree.tostring(root)


def logout_response_xml(issuer: str, destination: str, in_response_to: str, status: str) -> bytes:
    root = _message("LogoutResponse", destination, issuer)
    root.set("InResponseTo", in_response_to)
    status_element = etree.SubElement(root, f"{{{SAMLP}}}Status")
    if status == SUCCESS:
        etree.SubElement(status_element, f"{{{SAMLP}}}StatusCode", Value=SUCCESS)
    else:  # the top-level code is Responder; PartialLogout says what went wrong
        top = etree.SubElement(status_element, f"{{{SAMLP}}}StatusCode", Value=status)
        etree.SubElement(top, f"{{{SAMLP}}}StatusCode", Value=PARTIAL_LOGOUT)
    return etree.tostring(root)


def send(
    endpoint: Endpoint,
    destination: str,
    message_field: str,
    xml: bytes,
    key: SpKey,
    relay_state: str | None,
) -> Response:
    """The browser's way to the IdP: a redirect with a query signature, or a POST form."""
    node_name = f"{SAMLP}:{etree.QName(etree.fromstring(xml)).localname}"
    if endpoint.binding == BINDING_REDIRECT:
        query = sign_query(message_field, xml, relay_state, key)
        separator = "&" if urlsplit(destination).query else "?"
        response = redirect(destination + separator + query, code=302)
        response.headers["Cache-Control"] = "no-store"
        return response
    signed = sign_enveloped(xml, node_name, key)
    fields = {message_field: base64.b64encode(signed).decode("ascii")}
    if relay_state is not None:
        fields["RelayState"] = relay_state
    return autopost_page(destination, fields)


def _http_url(value: str) -> bool:
    """An http(s) URL with a host; False for what urlsplit cannot read ("https://[host/"):
    set-idp refuses those now, but a record stored before may hold one."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@functools.lru_cache(maxsize=256)
def idp_slo_endpoints(metadata_xml: str) -> Mapping[str, Endpoint]:
    """The IdP's SingleLogoutService per binding (the first of each), from its metadata.

    Kept per metadata document (a workspace's stored copy changes only on set-idp or a
    refresh), so a logout does not parse the whole IdP metadata again; read-only, as shared."""
    try:
        root = parse_xml(metadata_xml).getroot()
    except DocumentRefused:
        return MappingProxyType({})
    found: dict[str, Endpoint] = {}
    for role in root.iter(f"{{{MD}}}IDPSSODescriptor"):
        for service in role.iterfind(f"{{{MD}}}SingleLogoutService"):
            binding = service.get("Binding") or ""
            location = (service.get("Location") or "").strip()
            if binding not in (BINDING_REDIRECT, BINDING_POST) or binding in found:
                continue
            if not _http_url(location):
                continue
            response_location = (service.get("ResponseLocation") or "").strip() or location
            if not _http_url(response_location):
                response_location = location
            found[binding] = Endpoint(binding, location, response_location)
    return MappingProxyType(found)


# -- the auto-post form ---------------------------------------------------------------------------


def autopost_page(action: str, fields: dict[str, str], *, title: str = "Signing out") -> Response:
    """A form that submits itself (a hash-allowed script) and, without JavaScript, by its
    button: the HTTP-POST binding's way through the browser.

    Not pages.autopost_page (the AuthnRequest's): that one allows every http(s) form-action,
    since an IdP may redirect a sign-in on to another host; this one only the IdP's origin (or
    this site, for forward_page), and it says "Signing out"."""
    inputs = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>"
        f'<form method="post" action="{escape(action)}">{inputs}'
        "<p>If nothing happens, press the button.</p>"
        '<button type="submit">Continue</button></form></main>'
        f"<script>{AUTOPOST_SCRIPT}</script></body></html>"
    )
    response = Response(html, content_type="text/html; charset=utf-8")
    origin = origin_source(action)
    form_action = (SELF,) if action.startswith("/") else ((origin,) if origin else ())
    return secure_page(
        response, styles=STYLE_SOURCE, scripts=AUTOPOST_SOURCE, form_action=form_action
    )
