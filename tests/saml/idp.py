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
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack
from urllib.parse import parse_qs, urlsplit

import lxml.html
import requests
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp
from saml2.metadata import entity_descriptor, sign_entity_descriptor
from saml2.sigver import verify_redirect_signature
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
from webwork_sso_middleware.saml.encrypting import Encryption

__all__ = [
    "STANDARD_ATTRIBUTES", "Attributes", "AuthnRequestSeen", "Encryption", "KeyPair", "LogoutSeen",
    "TestIdP", "autopost_form",
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
class LogoutSeen:
    """A LogoutRequest or LogoutResponse from an SP, as the IdP read and verified it."""

    id: str
    issuer: str
    binding: str
    signature_verified: bool
    in_response_to: str | None = None
    status: str | None = None
    name_id: str | None = None
    name_id_format: str | None = None
    session_indexes: tuple[str, ...] = ()
    destination: str | None = None


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
        self.slo_url = f"{self.url}/idp/slo"
        self.keys = keys or make_key_pair(name)
        key_file, cert_file = self.keys.write(workdir, "idp")
        self.next_user: str | None = "alice@acme.test"
        self.users: dict[str, Attributes] = {}
        self.sign_metadata = False
        # Set to encrypt the assertions of HTTP sign-ins (``/idp/sso``) for an SP's certificate.
        self.encryption: Encryption | None = None
        self.requests: list[AuthnRequestSeen] = []
        # Single logout: what reached /idp/slo, and how it answers an SP's LogoutRequest
        # (a status code other than Success, or silence: no answer at all).
        self.logout_requests: list[LogoutSeen] = []
        self.logout_responses: list[LogoutSeen] = []
        self.slo_status: str | None = None
        self.slo_silent = False
        self.server = make_idp_server(
            entity_id=self.entity_id, sso_url=self.sso_url, name=name,
            key_file=str(key_file), cert_file=str(cert_file), slo_url=self.slo_url,
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

    def register_sp_metadata(self, xml: str) -> list[str]:
        """Trust an SP by its own metadata (ours: its SP keys and SLO endpoints included)."""
        return protocol.register_sp_metadata(self.server, xml)

    # single logout ----------------------------------------------------------------------------------

    def logout_request_xml(
        self, *, destination: str, name_id: str, sign: bool = True, **options: Any
    ) -> str:
        """An IdP-initiated LogoutRequest (devidp.protocol.logout_request's ``options``),
        with an enveloped signature unless ``sign`` is False (the HTTP-POST binding's form)."""
        message = protocol.logout_request(
            self.server, destination=destination, name_id=name_id, **options
        )
        return protocol.sign_message(self.server, message) if sign else str(message)

    def logout_redirect(
        self,
        *,
        destination: str,
        name_id: str,
        relay_state: str | None = None,
        sign: bool = True,
        xml: str | None = None,
        **options: Any,
    ) -> str:
        """The URL of an IdP-initiated LogoutRequest by HTTP-Redirect, its query signed by
        pysaml2 with the IdP key unless ``sign`` is False (``xml``: that message instead)."""
        if xml is None:
            xml = str(
                protocol.logout_request(
                    self.server, destination=destination, name_id=name_id, **options
                )
            )
        query = protocol.redirect_query(self.server, "SAMLRequest", xml, relay_state, sign=sign)
        return f"{destination}?{query}"

    def logout_form(
        self,
        *,
        destination: str,
        name_id: str,
        relay_state: str | None = None,
        xml: str | None = None,
        **options: Any,
    ) -> dict[str, str]:
        """The fields of an IdP-initiated LogoutRequest by HTTP-POST (signed as asked)."""
        xml = xml or self.logout_request_xml(destination=destination, name_id=name_id, **options)
        fields = {"SAMLRequest": base64.b64encode(xml.encode("utf-8")).decode("ascii")}
        if relay_state is not None:
            fields["RelayState"] = relay_state
        return fields

    def read_logout_response(self, url_or_fields: str | dict[str, str]) -> LogoutSeen:
        """The SP's LogoutResponse (a redirect URL's query, or POST fields), verified as pysaml2
        verifies one: the query signature by pysaml2's own RSA code with the SP's certificate
        from its registered metadata, an enveloped signature by the IdP's security context."""
        if isinstance(url_or_fields, str):
            params = {k: v[0] for k, v in parse_qs(urlsplit(url_or_fields).query).items()}
            binding = BINDING_HTTP_REDIRECT
        else:
            params, binding = dict(url_or_fields), BINDING_HTTP_POST
        return self._read_logout_message(params, binding)

    def _read_logout_message(self, params: dict[str, str], binding: str) -> LogoutSeen:
        field = "SAMLRequest" if "SAMLRequest" in params else "SAMLResponse"
        encoded = params[field]
        if binding == BINDING_HTTP_REDIRECT:
            xml = zlib.decompress(base64.b64decode(encoded), -15).decode("utf-8")
        else:
            xml = base64.b64decode(encoded).decode("utf-8")
        message = (
            samlp.logout_request_from_string(xml)
            if field == "SAMLRequest"
            else samlp.logout_response_from_string(xml)
        )
        if message is None:
            raise RequestRefused(f"the {field} is not a logout message")
        issuer = (message.issuer.text or "").strip() if message.issuer is not None else ""
        verified = False
        if binding == BINDING_HTTP_REDIRECT and "Signature" in params:
            certificates = self._sp_signing_certificates(issuer)
            verified = any(
                verify_redirect_signature(params, self.server.sec.sec_backend, cert=cert)
                for cert in certificates
            )
        elif binding == BINDING_HTTP_POST and message.signature is not None:
            check = (
                self.server.sec.correctly_signed_logout_request
                if field == "SAMLRequest"
                else self.server.sec.correctly_signed_logout_response
            )
            try:
                verified = bool(check(xml, must=True))
            except Exception:  # noqa: BLE001 - pysaml2 raises many types for a bad signature
                verified = False
        seen = LogoutSeen(
            id=message.id,
            issuer=issuer,
            binding=binding,
            signature_verified=verified,
            destination=message.destination,
        )
        if field == "SAMLRequest":
            seen.name_id = message.name_id.text if message.name_id is not None else None
            seen.name_id_format = message.name_id.format if message.name_id is not None else None
            seen.session_indexes = tuple(si.text for si in message.session_index or [])
        else:
            seen.in_response_to = message.in_response_to
            seen.status = message.status.status_code.value
        return seen

    def _sp_signing_certificates(self, entity_id: str) -> list[str]:
        try:
            found = self.server.metadata.certs(entity_id, "spsso", "signing")
        except Exception:  # noqa: BLE001 - an unknown SP has no certificate
            return []
        return [cert for _, cert in found]

    def sp_slo_location(self, entity_id: str, binding: str) -> str | None:
        services = self.server.metadata.single_logout_service(entity_id, binding, "spsso")
        return str(services[0]["location"]) if services else None

    def _slo(self, params: dict[str, str], binding: str) -> tuple[str, str, str]:
        """/idp/slo: an SP's LogoutRequest answered (signed, by its binding), or its
        LogoutResponse to ours read; (status line, content type, body)."""
        try:
            seen = self._read_logout_message(params, binding)
        except Exception as error:  # noqa: BLE001 - any unreadable message
            return "400 Bad Request", "text/plain", f"bad logout message: {error}"
        if "SAMLResponse" in params:
            self.logout_responses.append(seen)
            return "200 OK", "text/plain", f"logged out: {seen.status}"
        self.logout_requests.append(seen)
        if self.slo_silent:
            return "200 OK", "text/plain", "the IdP says nothing"
        destination = self.sp_slo_location(seen.issuer, binding)
        if destination is None:
            return "400 Bad Request", "text/plain", "the SP offers no SingleLogoutService"
        status = None
        if self.slo_status is not None:
            status = samlp.Status(status_code=samlp.StatusCode(value=self.slo_status))
        message = self.server._status_response(
            samlp.LogoutResponse,
            self.server._issuer(),
            status,
            sign=False,
            in_response_to=seen.id,
            destination=destination,
        )
        relay_state = params.get("RelayState")
        if binding == BINDING_HTTP_REDIRECT:
            query = protocol.redirect_query(self.server, "SAMLResponse", str(message), relay_state)
            return "302 Found", f"location:{destination}?{query}", ""
        fields = {
            "SAMLResponse": base64.b64encode(
                protocol.sign_message(self.server, message).encode("utf-8")
            ).decode("ascii")
        }
        if relay_state:
            fields["RelayState"] = relay_state
        return "200 OK", "text/html; charset=utf-8", autopost_page(destination, fields)

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
        if path == "/idp/slo" and method in ("GET", "POST"):
            fields = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            binding = BINDING_HTTP_REDIRECT
            if method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length).decode("utf-8")
                fields = {k: v[0] for k, v in parse_qs(body).items()}
                binding = BINDING_HTTP_POST
            status, content_type, body = self._slo(fields, binding)
            if content_type.startswith("location:"):
                location = content_type.removeprefix("location:")
                start_response(status, [("Location", location), ("Content-Length", "0")])
                return [b""]
            return _reply(start_response, status, content_type, body)
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
