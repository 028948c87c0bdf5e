"""A real SAML 2.0 IdP for the tests: pysaml2's ``Server`` on our in-process crypto, with an HTTP front.

    idp = TestIdP.start(serve, tmp_path)        # or the ``idp`` / ``second_idp`` fixtures
    idp.metadata_xml()                          # EntityDescriptor with its signing certificate
    idp.sp_config(sp_entity_id, acs_url)        # make an SP known to it (minimal SP metadata)
    idp.load_sp_metadata(url)                   # or by the SP's own metadata (its keys too)
    idp.want_authn_requests_signed = True       # WantAuthnRequestsSigned="true"; unsigned refused
    idp.response(sp_entity_id=..., acs_url=..., email="alice@acme.test")   # base64 SAMLResponse
    idp.response(..., name_id_format=NAMEID_FORMAT_PERSISTENT)  # opaque NameID, email attribute
    idp.response(..., encryption=Encryption(sp_cert_pem, content=AES128_CBC))  # EncryptedAssertion
    idp.encryption = Encryption(sp_cert_pem)    # ... in the HTTP sign-ins below too

HTTP (``idp.url`` + path): GET ``/idp/metadata``; GET ``/idp/sso?SAMLRequest=..&RelayState=..``
(HTTP-Redirect; HTTP-POST is answered too) signs ``idp.next_user`` (or ``?user=``) in and returns a page
whose form auto-POSTs SAMLResponse and RelayState to the request's ACS. A signed AuthnRequest is
verified with the SP's signing certificates from its registered metadata (a query signature over
the raw query as sent; an enveloped one by pysaml2): a bad one gets 400; ``idp.requests`` records
how each was signed and by which certificate.

Attributes sent by default for ``first.last@domain`` (override per call with ``attributes=`` or per user
with ``idp.users[email] = {...}``): Okta's ``email``, ``firstName``, ``lastName`` (verbatim names,
NameFormat unspecified) and the standard ``mail``, ``givenName``, ``sn`` as urn:oid names (NameFormat
uri, with FriendlyName). Given name is the capitalised part before the first dot, family name the
rest, or "Test".
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack
from urllib.parse import parse_qs

import lxml.html
import requests
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.metadata import entity_descriptor, sign_entity_descriptor
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

# The IdP machinery is the dev IdP's (webwork_sso_middleware.devidp): keys, SP registration,
# responses and the auto-post page are shared, so both IdPs speak SAML the same way.
from webwork_sso_middleware.devidp import protocol
from webwork_sso_middleware.devidp.keys import KeyPair, make_key_pair
from webwork_sso_middleware.devidp.pages import autopost_page
from webwork_sso_middleware.devidp.protocol import (
    STANDARD_ATTRIBUTES,
    Attributes,
    RequestRefused,
    make_idp_server,
    sp_metadata_xml,
)
from webwork_sso_middleware.saml.encryption import Encryption

__all__ = [
    "STANDARD_ATTRIBUTES", "Attributes", "AuthnRequestSeen", "Encryption", "KeyPair", "TestIdP",
    "autopost_form",
    "default_attributes", "make_key_pair", "pysaml2_sp_config", "sp_metadata_xml",
]  # fmt: skip


def default_attributes(email: str) -> dict[str, list[str]]:
    local = email.partition("@")[0]
    given, _, family = local.partition(".")
    given, family = given.capitalize(), family.replace(".", " ").title() or "Test"
    return {
        "email": [email], "firstName": [given], "lastName": [family],
        "mail": [email], "givenName": [given], "sn": [family],
    }  # fmt: skip


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
    signature: str | None = None  # "query", "xml" or None (unsigned)
    signed_by: str | None = None  # base64 DER of the SP certificate that verified it


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
        # Set to encrypt the assertions of HTTP sign-ins (``/idp/sso``) for an SP's certificate.
        self.encryption: Encryption | None = None
        self.requests: list[AuthnRequestSeen] = []
        self.server = make_idp_server(
            entity_id=self.entity_id, sso_url=self.sso_url, name=name,
            key_file=str(key_file), cert_file=str(cert_file),
        )  # fmt: skip

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
            return sign_entity_descriptor(
                descriptor, None, self.server.sec, SIG_RSA_SHA256, DIGEST_SHA256
            )[1]
        return str(descriptor)

    def sp_config(self, entity_id: str, acs_url: str, *, signing_cert: str | None = None) -> str:
        """Register (or re-register) an SP with the IdP; returns the SP metadata XML it loaded."""
        return protocol.register_sp(self.server, entity_id, acs_url, signing_cert=signing_cert)

    def load_sp_metadata(self, url: str) -> list[str]:
        """Register the SP(s) of the SP metadata at ``url`` (fetched over HTTP), signing
        certificates included, replacing what was known of them; returns their entity IDs."""
        answer = requests.get(url, timeout=10)
        answer.raise_for_status()
        return protocol.register_sp_metadata(self.server, answer.text)

    @property
    def want_authn_requests_signed(self) -> bool:
        """WantAuthnRequestsSigned in this IdP's metadata; when true, unsigned requests get 400."""
        return bool(self.server.config.getattr("want_authn_requests_signed", "idp"))

    @want_authn_requests_signed.setter
    def want_authn_requests_signed(self, wanted: bool) -> None:
        protocol.want_authn_requests_signed(self.server, wanted)

    # responses --------------------------------------------------------------------------------------

    def response(
        self,
        *,
        sp_entity_id: str,
        acs_url: str,
        email: str,
        attributes: Attributes | None = None,
        **options: Unpack[protocol.ResponseOptions],
    ) -> str:
        """A base64 SAMLResponse (HTTP-POST binding) for ``email``; NameID format emailAddress
        unless ``name_id_format=`` names another (transient, persistent: an opaque NameID, the
        email in the attributes only; None: no Format) or ``name_id=`` gives the value.

        Made by ``Server.create_authn_response``, then edited as ``options`` ask (see
        ``devidp.protocol.response_xml``: offsets are seconds from now; issuer, audience,
        destination and recipient default to the honest values), then signed with the IdP key.
        ``attributes`` default to ``idp.users[email]``, else ``default_attributes(email)``. An SP
        the IdP has not met is registered with ``acs_url`` on the way, as if an admin had set it up.
        """
        xml = self.response_xml(
            sp_entity_id=sp_entity_id,
            acs_url=acs_url,
            email=email,
            attributes=attributes,
            **options,
        )
        return base64.b64encode(xml.encode("utf-8")).decode("ascii")

    def response_xml(
        self,
        *,
        sp_entity_id: str,
        acs_url: str,
        email: str,
        attributes: Attributes | None = None,
        **options: Unpack[protocol.ResponseOptions],
    ) -> str:
        """``response()`` as XML text (for tests that tamper with it before encoding it)."""
        if sp_entity_id not in protocol.registered_sps(self.server):
            self.sp_config(sp_entity_id, acs_url)
        return protocol.response_xml(
            self.server,
            sp_entity_id=sp_entity_id,
            acs_url=acs_url,
            email=email,
            attributes=attributes or self.users.get(email) or default_attributes(email),
            **options,
        )

    def signature_template(self, element_id: str) -> Any:
        """pysaml2's ds:Signature template (RSA-SHA256, exc-c14n, our certificate in KeyInfo)."""
        return protocol.signature_template(self.server, element_id)

    # HTTP -------------------------------------------------------------------------------------------

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if path == "/idp/metadata" and method == "GET":
            return _reply(
                start_response, "200 OK", "application/samlmetadata+xml", self.metadata_xml()
            )
        if path != "/idp/sso" or method not in ("GET", "POST"):
            return _reply(start_response, "404 Not Found", "text/plain", "not found")
        raw_query = environ.get("QUERY_STRING", "")
        query = parse_qs(raw_query)
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
            # Any unparseable or unknown-SP request: say so, as a real IdP would.
            request = protocol.read_authn_request(
                self.server,
                saml_request,
                binding,
                query=raw_query if binding == BINDING_HTTP_REDIRECT else None,
            )
        except RequestRefused as refused:
            return _reply(
                start_response, "400 Bad Request", "text/plain", f"bad AuthnRequest: {refused}"
            )
        self.requests.append(
            AuthnRequestSeen(
                request.id,
                request.sp_entity_id,
                request.acs_url,
                relay_state,
                binding,
                user,
                request.signature,
                request.signed_by,
            )
        )
        saml_response = self.response(
            sp_entity_id=request.sp_entity_id,
            acs_url=request.acs_url,
            email=user,
            in_response_to=request.id,
            encryption=self.encryption,
        )
        page = autopost_page(
            request.acs_url, {"SAMLResponse": saml_response, "RelayState": relay_state}
        )
        return _reply(start_response, "200 OK", "text/html; charset=utf-8", page)


def _reply(
    start_response: Callable[..., Any], status: str, content_type: str, body: str
) -> list[bytes]:
    data = body.encode("utf-8")
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]
