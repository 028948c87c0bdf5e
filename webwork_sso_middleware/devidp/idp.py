"""DevIdP: a SAML 2.0 identity provider for development, with a "pick or type a user" page.

    idp = DevIdP("http://127.0.0.1:8001", key_dir=Path("."))
    idp.register_sp(sp_entity_id, acs_url)            # or register_sp_from_metadata_url(url)
    serve(idp.wsgi_app)                                 # any WSGI server
    workspaces.set_idp("demo", metadata_xml=idp.metadata_xml())

HTTP (relative to ``base_url``):

    GET  /idp/metadata        IdP metadata; the URL is also the entity ID
    GET  /idp/sso             SP-initiated sign-in, HTTP-Redirect binding (SAMLRequest, RelayState)
    POST /idp/sso             the same, HTTP-POST binding; and the sign-in form's answer
    GET  /idp/start[?sp=ID]   IdP-initiated sign-in: the known SPs, then a sign-in form for one

Whoever is picked or typed is signed in: no password, by design. The answer is a page that
auto-POSTs a SAMLResponse (assertion signed, NameID emailAddress, attributes ``email``,
``firstName``, ``lastName`` as Okta names them) and the RelayState to the SP's ACS.

Only SPs registered with ``register_sp*`` are answered, at the ACS they registered: any other
request gets a 400 page saying so, as a real IdP would refuse an app it has no record of.
"""

from __future__ import annotations

import base64
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.metadata import entity_descriptor
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from ..errors import WebworkSSOError
from . import pages
from .keys import KeyPair, load_or_create_key_pair
from .protocol import (
    AuthnRequestInfo,
    RequestRefused,
    make_idp_server,
    names_from_email,
    read_authn_request,
    register_sp,
    register_sp_metadata,
    registered_sps,
    response_xml,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

DEFAULT_USERS = ("alice.smith@example.com", "bob.jones@example.com")
DEFAULT_NAME = "webwork-sso dev IdP"
# The same shape the SP's ACS accepts as a NameID, so a typed address never fails over there.
EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
MAX_EMAIL = 254
MAX_NAME = 100
MAX_BODY_BYTES = 1024 * 1024
MAX_METADATA_BYTES = 1024 * 1024
# The sign-in form re-posts the SP's SAMLRequest; this field remembers how it first arrived.
BINDING_FIELD = "binding"
BINDINGS = {"redirect": BINDING_HTTP_REDIRECT, "post": BINDING_HTTP_POST}


class DevIdPError(WebworkSSOError):
    """The dev IdP cannot do what was asked; the message says why in one sentence."""


class DevIdP:
    """A development IdP at ``base_url`` (see the module doc), keyed from ``key_dir``."""

    def __init__(
        self,
        base_url: str,
        *,
        key_dir: Path,
        users: Sequence[str] = DEFAULT_USERS,
        name: str = DEFAULT_NAME,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.entity_id = self.metadata_url = f"{self.base_url}/idp/metadata"
        self.sso_url = f"{self.base_url}/idp/sso"
        self.start_url = f"{self.base_url}/idp/start"
        self.name = name
        self.users = tuple(users)
        self.keys: KeyPair
        self.keys, self.key_file = load_or_create_key_pair(Path(key_dir), common_name=name)
        self.server = make_idp_server(
            entity_id=self.entity_id, sso_url=self.sso_url, name=name,
            key_file=str(self.key_file), cert_file=str(self.key_file),
        )  # fmt: skip
        # pysaml2's Server keeps SP metadata and issued assertions in plain dicts: one lock
        # keeps a registration from changing them under a request in another server thread.
        self._lock = threading.RLock()
        self._retry_metadata_urls: list[str] = []

    # -- metadata and SPs -------------------------------------------------------------------

    def metadata_xml(self) -> str:
        """This IdP's metadata: entity ID, signing certificate, SSO URL for both bindings."""
        with self._lock:
            return str(entity_descriptor(self.server.config))

    def register_sp(self, entity_id: str, acs_url: str) -> None:
        """Trust an SP whose ACS (HTTP-POST) is ``acs_url``; again replaces what was known."""
        with self._lock:
            register_sp(self.server, entity_id, acs_url)

    def register_sp_metadata(self, xml: str) -> list[str]:
        """Trust the SP(s) an SP metadata document describes; returns their entity IDs."""
        try:
            with self._lock:
                return register_sp_metadata(self.server, xml)
        except ValueError as error:
            raise DevIdPError(f"cannot use that SP metadata: {error}") from None

    def register_sp_from_metadata_url(self, url: str, *, retry_later: bool = False) -> list[str]:
        """Fetch SP metadata (http or https) and trust the SP(s) in it; returns their entity IDs.

        With ``retry_later``, a URL that cannot be fetched now (the SP not started yet) is
        tried again when a request from an unknown SP arrives, instead of raising.
        """
        try:
            return self.register_sp_metadata(fetch_metadata(url))
        except DevIdPError:
            if not retry_later:
                raise
            with self._lock:
                if url not in self._retry_metadata_urls:
                    self._retry_metadata_urls.append(url)
            return []

    def known_sps(self) -> dict[str, str]:
        """Entity ID -> ACS URL of every SP this IdP answers."""
        with self._lock:
            return registered_sps(self.server)

    def _retry_pending_metadata(self) -> bool:
        with self._lock:
            pending = list(self._retry_metadata_urls)
        found = False
        for url in pending:
            try:
                self.register_sp_metadata(fetch_metadata(url))
            except DevIdPError:
                continue
            with self._lock:
                self._retry_metadata_urls.remove(url)
            found = True
        return found

    # -- responses --------------------------------------------------------------------------

    def response(
        self,
        *,
        sp_entity_id: str,
        email: str,
        first_name: str | None = None,
        last_name: str | None = None,
        in_response_to: str | None = None,
    ) -> str:
        """A signed base64 SAMLResponse for ``email``, to a registered SP's ACS."""
        acs_url = self.known_sps().get(sp_entity_id)
        if acs_url is None:
            raise DevIdPError(f"the SP {sp_entity_id!r} is not registered with this dev IdP")
        given, family = names_from_email(email)
        if first_name or last_name:  # typed names replace the guess as a pair
            given, family = first_name or given, last_name
        attributes = {"email": email, "firstName": given}
        if family:
            attributes["lastName"] = family
        with self._lock:
            xml = response_xml(
                self.server, sp_entity_id=sp_entity_id, acs_url=acs_url, email=email,
                attributes=attributes, in_response_to=in_response_to,
            )  # fmt: skip
        return base64.b64encode(xml.encode("utf-8")).decode("ascii")

    # -- HTTP -------------------------------------------------------------------------------

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        request.max_form_memory_size = MAX_BODY_BYTES
        routes = {
            "/idp/metadata": (self.metadata_endpoint, ("GET", "HEAD")),
            "/idp/sso": (self.sso_endpoint, ("GET", "POST")),
            "/idp/start": (self.start_endpoint, ("GET", "POST")),
            "/": (self.index_endpoint, ("GET", "HEAD")),
            "/idp": (self.index_endpoint, ("GET", "HEAD")),
        }
        handler, methods = routes.get(request.path.rstrip("/") or "/", (None, ()))
        try:
            if handler is None:
                response = pages.error_page(
                    "Not found", "This dev IdP has no such page.", status=404
                )
            elif request.method not in methods:
                response = pages.error_page(
                    "Method not allowed", f"Use {' or '.join(methods)}.", status=405
                )
                response.headers["Allow"] = ", ".join(methods)
            else:
                response = handler(request)
        except RequestEntityTooLarge:
            response = pages.error_page(
                "Request too large", "The request was too large.", status=413
            )
        return response(environ, start_response)

    __call__ = wsgi_app

    def index_endpoint(self, request: Request) -> Response:
        body = pages.index_body(
            metadata_url=self.metadata_url,
            sso_url=self.sso_url,
            start_url=self.start_url,
            sps=self.known_sps(),
        )
        return pages.page(self.name, body)

    def metadata_endpoint(self, request: Request) -> Response:
        return Response(
            self.metadata_xml(), content_type="application/samlmetadata+xml; charset=utf-8"
        )

    def sso_endpoint(self, request: Request) -> Response:
        """SP-initiated: read the AuthnRequest, show the sign-in form, then answer the SP."""
        params = request.args if request.method == "GET" else request.form
        saml_request = params.get("SAMLRequest")
        relay_state = params.get("RelayState")
        if not saml_request:
            return pages.error_page(
                "No sign-in request",
                "This address answers a SAMLRequest from a service provider. Start from the "
                "app's “Sign in with SSO”, or sign in IdP-initiated.",
                hint_html=f'<p><a href="{escape(self.start_url)}">IdP-initiated sign-in</a></p>',
            )
        marker = "redirect" if request.method == "GET" else params.get(BINDING_FIELD, "post")
        binding = BINDINGS.get(marker, BINDING_HTTP_POST)
        try:
            authn = self._read_request(saml_request, binding)
        except RequestRefused as refused:
            return self._refusal(refused)
        carry = {"SAMLRequest": saml_request, "RelayState": relay_state, BINDING_FIELD: marker}
        # The SP's login hint (the address typed on its sign-in page): pre-selected below.
        hint = (params.get("login_hint") or "").strip()
        return self._sign_in_or_answer(
            request, action=self.sso_url, sp_entity_id=authn.sp_entity_id, acs_url=authn.acs_url,
            carry=carry, in_response_to=authn.id, relay_state=relay_state,
            hint=hint if len(hint) <= MAX_EMAIL and EMAIL.match(hint) else "",
        )  # fmt: skip

    def start_endpoint(self, request: Request) -> Response:
        """IdP-initiated: pick an SP, then a user; the response answers no request."""
        sp = request.values.get("sp")
        sps = self.known_sps()
        if not sp:
            return pages.page("IdP-initiated sign-in", pages.start_body(self.start_url, sps))
        if sp not in sps:
            return pages.error_page(
                "Unknown service provider",
                f"The SP {sp!r} is not registered with this dev IdP.",
                hint_html=f'<p><a href="{escape(self.start_url)}">Known service providers</a></p>',
            )
        relay_state = request.form.get("RelayState") or None
        return self._sign_in_or_answer(
            request, action=self.start_url, sp_entity_id=sp, acs_url=sps[sp],
            carry={"sp": sp, "RelayState": relay_state}, in_response_to=None,
            relay_state=relay_state,
        )  # fmt: skip

    def _read_request(self, saml_request: str, binding: str) -> AuthnRequestInfo:
        try:
            with self._lock:
                return read_authn_request(self.server, saml_request, binding)
        except RequestRefused as refused:
            # An SP given by metadata URL that was not up when we started may be up now.
            if refused.unknown_sp is None or not self._retry_pending_metadata():
                raise
        with self._lock:
            return read_authn_request(self.server, saml_request, binding)

    def _refusal(self, refused: RequestRefused) -> Response:
        hint = ""
        if refused.unknown_sp is not None:
            hint = (
                "<p>Register it first: <code>webwork-sso dev-idp --sp-metadata-url "
                f"{escape(refused.unknown_sp)}</code> (the entity ID of a webwork-sso SP is its "
                "metadata URL), or <code>DevIdP.register_sp(entity_id, acs_url)</code>.</p>"
            )
        return pages.error_page("Sign-in request refused", refused.reason, hint_html=hint)

    def _sign_in_or_answer(
        self,
        request: Request,
        *,
        action: str,
        sp_entity_id: str,
        acs_url: str,
        carry: dict[str, str | None],
        in_response_to: str | None,
        relay_state: str | None,
        hint: str = "",
    ) -> Response:
        def form(error: str | None = None, typed: dict[str, str] | None = None) -> Response:
            body = pages.sign_in_body(
                action=action, sp_entity_id=sp_entity_id, acs_url=acs_url, users=self._labels(),
                carry=carry, error=error, typed=typed, hint=hint,
            )  # fmt: skip
            return pages.page(
                f"Sign in to {_host(acs_url)}",
                body,
                status=400 if error else 200,
                form_targets=(action,),
            )

        # Only the form's POST signs in: a plain link to this page never does by itself.
        user = request.form.get("user") if request.method == "POST" else None
        if user is None:
            return form()
        typed = {
            key: request.form.get(key, "").strip() for key in ("user", "first_name", "last_name")
        }
        email = typed["user"]
        if len(email) > MAX_EMAIL or not EMAIL.match(email):
            return form("Type an email address, such as alice@example.com.", typed)
        if len(typed["first_name"]) > MAX_NAME or len(typed["last_name"]) > MAX_NAME:
            return form(f"Names may be at most {MAX_NAME} characters.", typed)
        saml_response = self.response(
            sp_entity_id=sp_entity_id, email=email, first_name=typed["first_name"] or None,
            last_name=typed["last_name"] or None, in_response_to=in_response_to,
        )  # fmt: skip
        fields = {"SAMLResponse": saml_response, "RelayState": relay_state}
        return pages.autopost_response(acs_url, fields)

    def _labels(self) -> list[tuple[str, str]]:
        labels = []
        for email in self.users:
            first, last = names_from_email(email)
            labels.append((email, f"{first} {last}" if last else first))
        return labels


def fetch_metadata(url: str, *, timeout: float = 10.0) -> str:
    """GET an SP's metadata document (http or https, at most 1 MiB)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DevIdPError(f"cannot fetch SP metadata from {url!r}: only http and https URLs")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            data: bytes = answer.read(MAX_METADATA_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise DevIdPError(f"cannot fetch SP metadata from {url}: HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise DevIdPError(f"cannot fetch SP metadata from {url}: {reason}") from None
    if len(data) > MAX_METADATA_BYTES:
        raise DevIdPError(f"the SP metadata at {url} is larger than {MAX_METADATA_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def _host(url: str) -> str:
    return urlsplit(url).netloc or url
