"""A real SAML 2.0 IdP for the tests: pysaml2's ``Server`` on our in-process crypto, with an HTTP front.

    idp = TestIdP.start(serve, tmp_path)        # or the ``idp`` / ``second_idp`` fixtures
    idp.metadata_xml()                          # EntityDescriptor with its signing certificate
    idp.sp_config(sp_entity_id, acs_url)        # make an SP known to it (minimal SP metadata)
    idp.response(sp_entity_id=..., acs_url=..., email="alice@acme.test")   # base64 SAMLResponse

HTTP (``idp.url`` + path): GET ``/idp/metadata``; GET ``/idp/sso?SAMLRequest=..&RelayState=..``
(HTTP-Redirect; HTTP-POST is answered too) signs ``idp.next_user`` (or ``?user=``) in and returns a page
whose form auto-POSTs SAMLResponse and RelayState to the request's ACS.

Attributes sent by default for ``first.last@domain`` (override per call with ``attributes=`` or per user
with ``idp.users[email] = {...}``): Okta's ``email``, ``firstName``, ``lastName`` (verbatim names,
NameFormat unspecified) and the standard ``mail``, ``givenName``, ``sn`` as urn:oid names (NameFormat
uri, with FriendlyName). Given name is the capitalised part before the first dot, family name the
rest, or "Test".
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import quoteattr

import lxml.html
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, class_name, samlp
from saml2.attribute_converter import AttributeConverter
from saml2.mdstore import InMemoryMetaData
from saml2.metadata import entity_descriptor, sign_entity_descriptor
from saml2.saml import (
    AUTHN_PASSWORD_PROTECTED,
    NAME_FORMAT_UNSPECIFIED,
    NAME_FORMAT_URI,
    NAMEID_FORMAT_EMAILADDRESS,
    NameID,
)
from saml2.sigver import pre_signature_part, signed_instance_factory
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from webwork_sso_middleware.saml.crypto import make_server

STANDARD_ATTRIBUTES = {  # local name -> the urn:oid name sent (and FriendlyName = the local name)
    "mail": "urn:oid:0.9.2342.19200300.100.1.3",
    "givenName": "urn:oid:2.5.4.42",
    "sn": "urn:oid:2.5.4.4",
}
Attributes = Mapping[str, "str | Sequence[str]"]


@dataclass(frozen=True)
class KeyPair:
    """A private key and its self-signed certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes

    @property
    def cert_base64(self) -> str:
        """The certificate as metadata and KeyInfo carry it: base64 DER on one line."""
        return "".join(self.cert_pem.decode().splitlines()[1:-1])

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.crt"
        key_path.write_bytes(self.key_pem)
        cert_path.write_bytes(self.cert_pem)
        return key_path, cert_path


def make_key_pair(common_name: str = "Test IdP", *, elliptic: bool = False) -> KeyPair:
    """A fresh 2048-bit RSA (or P-256) key with a self-signed certificate valid for a year."""
    key = ec.generate_private_key(ec.SECP256R1()) if elliptic else rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return KeyPair(key_pem, cert.public_bytes(serialization.Encoding.PEM))


def default_attributes(email: str) -> dict[str, list[str]]:
    local = email.partition("@")[0]
    given, _, family = local.partition(".")
    given, family = given.capitalize(), family.replace(".", " ").title() or "Test"
    return {
        "email": [email], "firstName": [given], "lastName": [family],
        "mail": [email], "givenName": [given], "sn": [family],
    }  # fmt: skip


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


def pysaml2_sp_config(entity_id: str, acs_url: str, idp_metadata: Iterable[str]) -> dict[str, Any]:
    """A plain pysaml2 SP config trusting the given IdP metadata (for tests below the middleware)."""
    return {
        "entityid": entity_id,
        "metadata": {"inline": list(idp_metadata)},
        "allow_unknown_attributes": True,
        "service": {
            "sp": {
                "endpoints": {"assertion_consumer_service": [(acs_url, BINDING_HTTP_POST)]},
                "allow_unsolicited": True,
                "want_response_signed": False,
                "want_assertions_signed": False,
                "want_assertions_or_response_signed": True,
            }
        },
    }


def autopost_form(page: str | bytes) -> tuple[str, dict[str, str]]:
    """The action and fields of the first form on a page (the IdP's auto-submitting POST)."""
    form = lxml.html.fromstring(page).forms[0]
    return form.action, {name: value for name, value in form.form_values()}


@dataclass
class AuthnRequestSeen:
    id: str
    issuer: str
    acs_url: str
    relay_state: str | None
    binding: str
    user: str


def _now_plus(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


class TestIdP:
    """One IdP: its own key, entity ID ``<url>/idp/metadata``, SSO at ``<url>/idp/sso`` (see module doc)."""

    __test__ = False  # not a test class, despite the name

    def __init__(
        self, url: str, workdir: Path, *, keys: KeyPair | None = None, name: str = "Test IdP"
    ) -> None:
        self.url = url.rstrip("/")
        self.entity_id = f"{self.url}/idp/metadata"
        self.sso_url = f"{self.url}/idp/sso"
        self.keys = keys or make_key_pair(name)
        key_file, cert_file = self.keys.write(workdir, "idp")
        self.next_user: str | None = "alice@acme.test"
        self.users: dict[str, Attributes] = {}
        self.sign_metadata = False
        self.requests: list[AuthnRequestSeen] = []
        self.server = make_server(
            {
                "entityid": self.entity_id,
                "name": name,
                "key_file": str(key_file),
                "cert_file": str(cert_file),
                "metadata_key_usage": "signing",
                "signing_algorithm": SIG_RSA_SHA256,
                "digest_algorithm": DIGEST_SHA256,
                "metadata": {"inline": []},  # SPs are added by sp_config()
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [
                                (self.sso_url, BINDING_HTTP_REDIRECT),
                                (self.sso_url, BINDING_HTTP_POST),
                            ]
                        },
                        "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                        "policy": {"default": {"lifetime": {"minutes": 5}, "name_form": NAME_FORMAT_URI}},
                        "sign_response": False,
                        "sign_assertion": False,  # response() signs after its edits
                        "want_authn_requests_signed": False,
                    }
                },
            }
        )
        # Only the standard names get urn:oid names; any other (Okta's email, firstName...) goes verbatim.
        converter = AttributeConverter(NAME_FORMAT_URI)
        converter.from_dict({"identifier": NAME_FORMAT_URI, "to": STANDARD_ATTRIBUTES})
        converter.adjust()
        self.server.config.attribute_converters = [converter]

    @classmethod
    def start(cls, serve: Callable[[Any], Any], workdir: Path, **kwargs: Any) -> TestIdP:
        """Serve a new IdP over real HTTP with tests/conftest.py's ``serve``; its URL names it."""
        app: list[Callable[..., Any]] = []
        live = serve(lambda environ, start_response: app[0](environ, start_response))
        idp = cls(live.url, workdir, **kwargs)
        app.append(idp.wsgi_app)
        return idp

    # metadata ---------------------------------------------------------------------------------------

    def metadata_xml(self, *, signed: bool | None = None) -> str:
        descriptor = entity_descriptor(self.server.config)
        if signed if signed is not None else self.sign_metadata:
            return sign_entity_descriptor(descriptor, None, self.server.sec, SIG_RSA_SHA256, DIGEST_SHA256)[1]
        return str(descriptor)

    def sp_config(self, entity_id: str, acs_url: str, *, signing_cert: str | None = None) -> str:
        """Register (or re-register) an SP with the IdP; returns the SP metadata XML it loaded."""
        xml = sp_metadata_xml(entity_id, acs_url, signing_cert=signing_cert)
        metadata = InMemoryMetaData(self.server.metadata.attrc, xml)
        metadata.load()
        self.server.metadata.metadata[f"sp:{entity_id}"] = metadata
        return xml

    # responses --------------------------------------------------------------------------------------

    def response(
        self,
        *,
        sp_entity_id: str,
        acs_url: str,
        email: str,
        attributes: Attributes | None = None,
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
    ) -> str:
        """A base64 SAMLResponse (HTTP-POST binding) for ``email``; NameID format emailAddress.

        Made by ``Server.create_authn_response``, then edited as asked (offsets are seconds from now;
        Conditions and SubjectConfirmationData share NotOnOrAfter), then signed with the IdP key.
        ``issuer``/``audience``/``destination``/``recipient`` default to the honest values
        (this IdP's entity ID, ``sp_entity_id``, ``acs_url``, ``acs_url``); ``attributes`` to
        ``idp.users[email]``, else ``default_attributes(email)``. An SP the IdP has not met is
        registered with ``acs_url`` on the way, as if an admin had set it up.
        """
        xml = self.response_xml(
            sp_entity_id=sp_entity_id, acs_url=acs_url, email=email, attributes=attributes,
            in_response_to=in_response_to, sign_assertion=sign_assertion, sign_response=sign_response,
            issuer=issuer, audience=audience, destination=destination, recipient=recipient,
            not_on_or_after_offset=not_on_or_after_offset, not_before_offset=not_before_offset,
            authn_instant=authn_instant,
        )  # fmt: skip
        return base64.b64encode(xml.encode("utf-8")).decode("ascii")

    def response_xml(
        self,
        *,
        sp_entity_id: str,
        acs_url: str,
        email: str,
        attributes: Attributes | None = None,
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
    ) -> str:
        """``response()`` as XML text (for tests that tamper with it before encoding it)."""
        if f"sp:{sp_entity_id}" not in self.server.metadata.metadata:
            self.sp_config(sp_entity_id, acs_url)
        chosen = attributes or self.users.get(email) or default_attributes(email)
        identity = {name: [v] if isinstance(v, str) else list(v) for name, v in chosen.items()}
        unsigned = self.server.create_authn_response(
            identity,
            in_response_to,
            acs_url,
            sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
            authn={"class_ref": AUTHN_PASSWORD_PROTECTED},
            sign_assertion=False,
            sign_response=False,
        )
        # pysaml2 takes times from its policy and the clock: edit its unsigned output, then sign.
        response = samlp.response_from_string(str(unsigned))
        assertion = _first(response.assertion)
        response.issuer.text = assertion.issuer.text = issuer or self.entity_id
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
                element.signature = self.signature_template(element.id)
                to_sign.append((class_name(element), element.id))
        return str(signed_instance_factory(response, self.server.sec, to_sign) if to_sign else response)

    def signature_template(self, element_id: str) -> Any:
        """pysaml2's ds:Signature template (RSA-SHA256, exc-c14n, our certificate in KeyInfo)."""
        return pre_signature_part(
            element_id, self.server.sec.my_cert, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256
        )

    # HTTP -------------------------------------------------------------------------------------------

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if path == "/idp/metadata" and method == "GET":
            return _reply(start_response, "200 OK", "application/samlmetadata+xml", self.metadata_xml())
        if path != "/idp/sso" or method not in ("GET", "POST"):
            return _reply(start_response, "404 Not Found", "text/plain", "not found")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        params = query
        binding = BINDING_HTTP_REDIRECT
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            params = {**query, **parse_qs(environ["wsgi.input"].read(length).decode("utf-8"))}
            binding = BINDING_HTTP_POST
        saml_request = params.get("SAMLRequest", [None])[0]
        relay_state = params.get("RelayState", [None])[0]
        user = params.get("user", [self.next_user])[0]
        if not saml_request:
            return _reply(start_response, "400 Bad Request", "text/plain", "SAMLRequest missing")
        if not user:
            return _reply(start_response, "403 Forbidden", "text/plain", "nobody signs in")
        try:
            request = self.server.parse_authn_request(saml_request, binding)
            args = self.server.response_args(request.message, [BINDING_HTTP_POST])
        except Exception as exc:  # any unparseable or unknown-SP request: say so, as a real IdP would
            return _reply(start_response, "400 Bad Request", "text/plain", f"bad AuthnRequest: {exc!r}")
        acs_url = args["destination"]
        self.requests.append(
            AuthnRequestSeen(
                args["in_response_to"], args["sp_entity_id"], acs_url, relay_state, binding, user
            )
        )
        saml_response = self.response(
            sp_entity_id=args["sp_entity_id"],
            acs_url=acs_url,
            email=user,
            in_response_to=args["in_response_to"],
        )
        fields = f'<input type="hidden" name="SAMLResponse" value="{escape(saml_response)}">'
        if relay_state is not None:
            fields += f'<input type="hidden" name="RelayState" value="{escape(relay_state)}">'
        page = (
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Signing in</title></head>'
            '<body onload="document.forms[0].submit()">'
            f'<form method="post" action="{escape(acs_url)}">{fields}'
            '<noscript><button type="submit">Continue</button></noscript></form></body></html>'
        )
        return _reply(start_response, "200 OK", "text/html; charset=utf-8", page)


def _reply(start_response: Callable[..., Any], status: str, content_type: str, body: str) -> list[bytes]:
    data = body.encode("utf-8")
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]
