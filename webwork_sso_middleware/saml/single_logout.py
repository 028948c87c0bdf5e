"""Single logout (SAML 2.0 SLO) at ``/saml/<slug>/slo``, HTTP-Redirect (GET) and HTTP-POST.

IdP-initiated: the IdP's LogoutRequest must be signed by a certificate of its metadata (the
query-string signature over the parameters as received, SAML bindings 3.4.4.1, or an enveloped
signature checked by crypto.py as strictly as the ACS checks a response), addressed to this
workspace's SLO URL, from the IdP's entity ID, fresh, and not seen before (the replay cache).
Then every live session of the workspace that a sign-in of that NameID started ends (only those
of the listed SessionIndex values, when any are listed): marked ended in the database, so this
worker drops it at commit and every other within its ``session_recheck_seconds``. The answer is
a LogoutResponse signed with the workspace's current SP key, sent to the IdP's
SingleLogoutService by Redirect (query signature) when offered, else by an auto-submitting POST
form. A refused request ends nothing and gets an error page with its reason code.

SP-initiated (``/saml/logout``, logout.py): the local session ends first, always; then, when the
IdP offers a SingleLogoutService and the sign-in named a NameID, a signed LogoutRequest goes to
the IdP, its ID kept in a short-lived signed cookie. The LogoutResponse comes back here: its
InResponseTo must match the cookie and its signature, when it has one, must verify. It changes
nothing (the session is over already), so an unsigned one is accepted to show the last page;
neither the IdP's refusal nor its silence can keep the local session alive.

Messages are built here (lxml) and signed in-process: a query signature with ``cryptography``,
an enveloped one with crypto.XmlsecBackend. pysaml2 is not involved on either side.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import secrets
import time
import zlib
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, unquote_plus, urlencode, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from lxml import etree
from saml2.sigver import SignatureError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import dump_cookie
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from ..bodies import read_form
from ..errors import SignatureRefused, StoreError
from ..logs import package_logger
from ..page_headers import SELF, hash_source, origin_source, secure_page
from ..signing import Purpose
from ..sp_keys import SpKey
from ..store import replay_cache
from ..store import sessions as session_store
from ..store import sign_in_target as target_store
from ..store.db import UnitOfWork
from ..store.models import utcnow
from ..urls import LOGOUT_PATH, PublicUrls, WorkspaceUrls, public_urls, workspace_path
from .crypto import DocumentRefused, XmlsecBackend, parse_xml
from .pages import STYLE, STYLE_SOURCE, error_page, page
from .posted import SAML, SAMLP, single_text
from .redirects import safe_next
from .rejection import Rejection

if TYPE_CHECKING:
    from ..sessions import SessionCookie
    from .login_flow import LoginFlow
    from .sp import ServiceProvider

log = package_logger(__name__)

SIGNATURES = XmlsecBackend()
DS = "http://www.w3.org/2000/09/xmldsig#"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
LOGOUT_REQUEST = f"{SAMLP}:LogoutRequest"  # crypto.py's node names
LOGOUT_RESPONSE = f"{SAMLP}:LogoutResponse"
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
MAX_MESSAGE_CHARS = 64 * 1024  # as sent: base64 (of the deflated XML, for Redirect)
MAX_XML_BYTES = 128 * 1024  # inflated: a deflate bomb stops one byte past this
MAX_RELAY_STATE = 1024
MAX_SESSION_INDEXES = 64  # a person's sessions at one IdP; each is a bound parameter
MAX_ID_LENGTH = 200  # the replay cache's column holds 256 with the prefix
# An IdP's LogoutRequest older than this (by its IssueInstant, beyond the clock skew) is refused:
# the replay cache keeps its ID only this long.
REQUEST_MAX_AGE = dt.timedelta(minutes=10)
LOGOUT_COOKIE = "webwork_sso_logout"
LOGOUT_LIFETIME = dt.timedelta(minutes=10)
MAX_COOKIE_VALUE = 3800
COOKIE_FORMAT = 1
AUTOPOST_SCRIPT = "document.forms[0].submit()"
AUTOPOST_SOURCE = hash_source(AUTOPOST_SCRIPT)
MESSAGE_FIELDS = ("SAMLRequest", "SAMLResponse", "RelayState")


@dataclasses.dataclass(frozen=True)
class Received:
    """A SAML message as it arrived, parsed strictly; nothing in it is trusted yet."""

    field: str  # "SAMLRequest" or "SAMLResponse"
    binding: str
    root: Any
    relay_state: str | None
    # Redirect only: (SigAlg, Signature as sent in base64, the octets it signs); None: unsigned.
    query_signature: tuple[str, str, bytes] | None


@dataclasses.dataclass(frozen=True)
class LogoutOrder:
    """A verified LogoutRequest from the workspace's IdP."""

    id: str
    name_id: str
    session_indexes: list[str]
    remember_until: dt.datetime  # its ID stays in the replay cache until then


@dataclasses.dataclass(frozen=True)
class Endpoint:
    binding: str
    location: str
    response_location: str


@dataclasses.dataclass(frozen=True)
class PendingLogout:
    """A LogoutRequest this browser sent its IdP (the ``webwork_sso_logout`` cookie)."""

    workspace_id: int
    slug: str
    request_id: str
    next_path: str
    expires_at: int


class SingleLogout:
    """The ``/saml/<slug>/slo`` endpoint, and the LogoutRequest that ``/saml/logout`` sends."""

    def __init__(self, flow: LoginFlow) -> None:
        self.flow = flow
        self.database = flow.database
        self.sessions = flow.sessions
        self.clock_skew = flow.clock_skew
        self._cookies = flow.sessions.signing[Purpose.LOGOUT_REQUESTS]

    def site(self, request: Request) -> PublicUrls:
        return public_urls(request.environ, self.flow.settings.base_url)

    # -- /saml/<slug>/slo ------------------------------------------------------------------------

    def endpoint(self, request: Request, slug: str) -> Response:
        slug = slug.strip().lower()
        try:
            received = self.receive(request)
            if received.field == "SAMLRequest":
                return self.idp_logout(request, slug, received)
            return self.logout_answered(request, slug, received)
        except Rejection as rejection:
            log.info("single logout at %s refused: %s", slug, rejection)
            return error_page(
                "Sign-out failed",
                rejection.public_text,
                site=self.site(request),
                reason=rejection.public_code,
                status=rejection.status,
            )

    def receive(self, request: Request) -> Received:
        """The message, by the binding its method says; its encoding and XML checked."""
        if request.method == "POST":
            try:
                form = read_form(request, self.flow.settings.max_body_bytes)
            except RequestEntityTooLarge:
                raise Rejection(
                    "slo_too_large",
                    "the logout message is larger than this site accepts",
                    status=413,
                ) from None
            fields = {name: form.getlist(name) for name in MESSAGE_FIELDS}
            binding = BINDING_POST
            signature = None
        else:
            fields, signature = _query_fields(str(request.environ.get("QUERY_STRING") or ""))
            binding = BINDING_REDIRECT
        if any(len(values) > 1 for values in fields.values()):
            raise Rejection("slo_malformed", "a SAML parameter is given more than once")
        present = [name for name in ("SAMLRequest", "SAMLResponse") if fields[name]]
        if len(present) != 1:
            raise Rejection(
                "slo_missing_message",
                "the request carries no SAMLRequest or SAMLResponse (or both)",
            )
        field = present[0]
        document = _decode(fields[field][0], deflated=binding == BINDING_REDIRECT)
        try:
            root = parse_xml(document).getroot()
        except DocumentRefused as refused:
            if refused.kind == "dtd":
                raise Rejection(
                    "slo_dtd_forbidden", "the logout message contains a DTD, which is never allowed"
                ) from None
            raise Rejection("slo_malformed", "the logout message is not well-formed XML") from None
        relay_state = fields["RelayState"][0] if fields["RelayState"] else None
        if relay_state is not None and len(relay_state) > MAX_RELAY_STATE:
            relay_state = None  # bindings 3.4.3 allow 80 bytes: a longer one is not echoed
        return Received(field, binding, root, relay_state, signature)

    # -- IdP-initiated ---------------------------------------------------------------------------

    def idp_logout(self, request: Request, slug: str, received: Received) -> Response:
        self.flow.prepare(slug)  # the IdP's metadata (a rolled-over key) and our SP key
        cookie = self.sessions.read_cookie(request.environ)
        site = self.site(request)

        def work(unit: UnitOfWork) -> tuple[ServiceProvider, LogoutOrder, list[str]]:
            target, provider = self.flow.usable_provider(request, slug, unit)
            order = self.check_logout_request(provider, received, site)
            if not replay_cache.use_logout_request(
                unit,
                workspace_id=target.workspace_id,
                request_id=order.id,
                expires_at=order.remember_until,
            ):
                raise Rejection(
                    "slo_replayed", "this LogoutRequest was already acted on", repeatable=True
                )
            ended = session_store.end_saml_sessions(
                unit,
                workspace_id=target.workspace_id,
                name_id=order.name_id,
                session_indexes=order.session_indexes,
                now=utcnow(),
            )
            return provider, order, ended

        status = SUCCESS
        try:
            provider, order, ended = self.database.run(work)
        except (StoreError, SQLAlchemyError):
            # Verified, but the sessions could not be ended: the IdP hears so (Responder), and
            # may try again; nothing was recorded, so its retry is no replay.
            log.warning("single logout at %s: could not end the sessions", slug, exc_info=True)
            provider, order = self.database.run(
                lambda unit: self._verify_only(request, slug, unit, received, site), write=False
            )
            ended, status = [], RESPONDER
        log.info(
            "single logout at %s: the IdP ended %d session(s) of one subject", slug, len(ended)
        )
        response = self.answer(provider, order.id, status, received.relay_state, site)
        if cookie is not None and cookie.id_hash in ended:
            response.headers.add("Set-Cookie", self.sessions.clearing_cookie())
        return response

    def _verify_only(
        self, request: Request, slug: str, unit: UnitOfWork, received: Received, site: PublicUrls
    ) -> tuple[ServiceProvider, LogoutOrder]:
        _, provider = self.flow.usable_provider(request, slug, unit)
        return provider, self.check_logout_request(provider, received, site)

    def check_logout_request(
        self, provider: ServiceProvider, received: Received, site: PublicUrls
    ) -> LogoutOrder:
        """Every check of an IdP's LogoutRequest but the replay cache's; raises Rejection."""
        root = received.root
        if root.tag != f"{{{SAMLP}}}LogoutRequest":
            raise Rejection("slo_not_a_request", "the SAMLRequest is not a LogoutRequest")
        # Exactly one LogoutRequest and one NameID in the whole document, the NameID directly in
        # it: a second copy anywhere is how a wrapping attack smuggles a subject in.
        if sum(1 for _ in root.iter(f"{{{SAMLP}}}LogoutRequest")) != 1:
            raise Rejection("slo_wrapped", "the document holds more than one LogoutRequest")
        name_ids = list(root.iter(f"{{{SAML}}}NameID"))
        if len(name_ids) != 1 or name_ids[0].getparent() is not root:
            if root.find(f"{{{SAML}}}EncryptedID") is not None and not name_ids:
                raise Rejection(
                    "slo_bad_name_id", "the LogoutRequest names its subject by an EncryptedID"
                )
            raise Rejection(
                "slo_wrapped",
                f"the LogoutRequest must hold exactly one NameID, directly in it "
                f"(found {len(name_ids)})",
            )
        self.verify_signature(provider, received, LOGOUT_REQUEST)
        request_id = root.get("ID") or ""
        if not request_id or len(request_id) > MAX_ID_LENGTH or root.get("Version") != "2.0":
            raise Rejection("slo_malformed", "the LogoutRequest has no usable ID or Version")
        self.check_issuer(provider, root, required=True)
        self.check_destination(provider.urls, root, site, required=True)
        now = utcnow()
        issued = _instant(root.get("IssueInstant"))
        if issued is None:
            raise Rejection("slo_bad_time", "the LogoutRequest has no IssueInstant")
        if issued > now + self.clock_skew:
            raise Rejection(
                "slo_not_yet_valid",
                f"the LogoutRequest was issued at {issued:%Y-%m-%d %H:%M:%S}Z, in the future; "
                "check the clocks of this server and the IdP",
            )
        if issued < now - self.clock_skew - REQUEST_MAX_AGE:
            raise Rejection(
                "slo_expired", f"the LogoutRequest was issued at {issued:%Y-%m-%d %H:%M:%S}Z"
            )
        not_on_or_after = _instant(root.get("NotOnOrAfter"))
        if not_on_or_after is not None and now - self.clock_skew >= not_on_or_after:
            raise Rejection(
                "slo_expired",
                f"the LogoutRequest expired at {not_on_or_after:%Y-%m-%d %H:%M:%S}Z",
            )
        name_id = single_text(name_ids[0])
        if not name_id or len(name_id) > 1024:
            raise Rejection("slo_bad_name_id", "the LogoutRequest's NameID is empty or malformed")
        indexes = [single_text(e) for e in root.iterfind(f"{{{SAMLP}}}SessionIndex")]
        if any(not index for index in indexes) or sum(
            1 for _ in root.iter(f"{{{SAMLP}}}SessionIndex")
        ) != len(indexes):
            raise Rejection("slo_malformed", "a SessionIndex is empty or out of place")
        if len(indexes) > MAX_SESSION_INDEXES:
            raise Rejection(
                "slo_malformed", f"the LogoutRequest lists more than {MAX_SESSION_INDEXES} sessions"
            )
        return LogoutOrder(
            request_id,
            name_id,
            [index for index in indexes if index],
            issued + REQUEST_MAX_AGE + 2 * self.clock_skew,
        )

    def verify_signature(
        self,
        provider: ServiceProvider,
        received: Received,
        node_name: str,
        *,
        required: bool = True,
    ) -> bool:
        """Whether the message is signed by the IdP (raises Rejection when a signature fails,
        or is missing while ``required``). Redirect: the query-string signature only; POST:
        the enveloped signature of the root."""
        certificates = provider.idp_certificates
        if received.binding == BINDING_REDIRECT:
            if received.query_signature is None:
                if required:
                    raise Rejection("slo_unsigned", "the logout message has no query signature")
                return False
            algorithm, signature, signed = received.query_signature
            if not verify_query_signature(signed, algorithm, signature, certificates):
                raise Rejection(
                    "slo_signature_invalid",
                    "the logout message's query signature does not verify with the IdP's "
                    "certificates (or uses an algorithm that is not allowed)",
                )
            return True
        root = received.root
        if root.find(f"{{{DS}}}Signature") is None:
            if required:
                raise Rejection("slo_unsigned", "the logout message is not signed")
            return False
        try:
            SIGNATURES.verify_element(root, node_name, root.get("ID"), certificates)
        except SignatureError as exc:
            log.info("logout signature rejected: %s", exc)
            raise Rejection(
                "slo_signature_invalid",
                "the logout message's signature does not verify with the IdP's certificates",
            ) from None
        return True

    def check_issuer(self, provider: ServiceProvider, root: Any, *, required: bool) -> None:
        assert provider.idp is not None
        issuer = root.find(f"{{{SAML}}}Issuer")
        if issuer is None:
            if required:
                raise Rejection("slo_issuer_mismatch", "the logout message names no issuer")
            return
        value = single_text(issuer)
        if value != provider.idp.entity_id:
            raise Rejection(
                "slo_issuer_mismatch",
                f"the logout message comes from {value!r}; "
                f"this workspace's IdP is {provider.idp.entity_id!r}",
            )

    def check_destination(
        self, urls: WorkspaceUrls, root: Any, site: PublicUrls, *, required: bool
    ) -> None:
        destination = root.get("Destination")
        if destination is None and not required:
            return
        # /saml/logout too: an IdP set up with the generic sign-out URL sends there, and that
        # page forwards to this one (logout.py); the issuer and signature pin the workspace.
        if destination not in (urls.slo_url, site.url(LOGOUT_PATH)):
            raise Rejection(
                "slo_destination_mismatch",
                f"the logout message is addressed to {destination!r}; "
                f"this workspace's SLO URL is {urls.slo_url}",
            )

    def answer(
        self,
        provider: ServiceProvider,
        in_response_to: str,
        status: str,
        relay_state: str | None,
        site: PublicUrls,
    ) -> Response:
        """The LogoutResponse to the IdP; a page saying so when it offers no endpoint."""
        assert provider.idp is not None
        endpoints = idp_slo_endpoints(provider.idp.metadata_xml)
        key = provider.keys.current if provider.keys is not None else None
        endpoint = endpoints.get(BINDING_REDIRECT) or endpoints.get(BINDING_POST)
        if endpoint is None or key is None:
            return signed_out_page(site, "/", idp_told=False)
        destination = endpoint.response_location
        xml = logout_response_xml(provider.urls.sp_entity_id, destination, in_response_to, status)
        return send(endpoint, destination, "SAMLResponse", xml, key, relay_state)

    # -- SP-initiated ----------------------------------------------------------------------------

    def subject_of(self, cookie: SessionCookie) -> Any | None:
        """The session's workspace and SAML subject, read before the session ends."""
        return self.database.run(
            lambda unit: session_store.saml_subject(unit, cookie.id_hash), write=False
        )

    def logout_at_idp(self, request: Request, subject: Any, next_path: str) -> Response | None:
        """After the local session ended: the browser's way to the IdP with our signed
        LogoutRequest, or None when the IdP offers no single logout (or the sign-in named no
        NameID, or the workspace has no key or IdP now)."""
        if subject is None or not subject.saml_name_id:
            return None
        slug = subject.slug
        self.flow.keys.ensure(slug)

        def work(unit: UnitOfWork) -> ServiceProvider | None:
            target = target_store.sign_in_target(unit, slug)
            if target is None or target.workspace_id != subject.workspace_id:
                return None
            return self.flow.provider(request, target, unit)

        provider = self.database.run(work, write=False)
        if provider is None or provider.idp is None or provider.keys is None:
            return None
        key = provider.keys.current
        endpoints = idp_slo_endpoints(provider.idp.metadata_xml)
        endpoint = endpoints.get(BINDING_REDIRECT) or endpoints.get(BINDING_POST)
        if endpoint is None or key is None:
            return None
        request_id = "_" + secrets.token_hex(20)
        xml = logout_request_xml(
            request_id,
            provider.urls.sp_entity_id,
            endpoint.location,
            subject,
            not_on_or_after=utcnow() + LOGOUT_LIFETIME,
        )
        response = send(endpoint, endpoint.location, "SAMLRequest", xml, key, None)
        pending = PendingLogout(
            subject.workspace_id,
            slug,
            request_id,
            safe_next(next_path),
            int(time.time() + LOGOUT_LIFETIME.total_seconds()),
        )
        response.headers.add("Set-Cookie", self.pending_cookie(request, pending))
        return response

    def logout_answered(self, request: Request, slug: str, received: Received) -> Response:
        """The IdP's LogoutResponse to ours: the last page of an SP-initiated sign-out."""
        site = self.site(request)
        root = received.root
        if root.tag != f"{{{SAMLP}}}LogoutResponse":
            raise Rejection("slo_not_a_response", "the SAMLResponse is not a LogoutResponse")

        def work(unit: UnitOfWork) -> tuple[ServiceProvider, int]:
            target = self.flow.target(unit, slug)
            provider = self.flow.provider(request, target, unit)
            if provider.idp is None:
                raise Rejection(
                    "idp_not_configured",
                    "this workspace has no identity provider",
                    status=404,
                    public_code="sso_unavailable",
                )
            return provider, target.workspace_id

        provider, workspace_id = self.database.run(work, write=False)
        pending = self.read_pending(request, workspace_id)
        in_response_to = root.get("InResponseTo")
        if pending is None or not in_response_to or in_response_to != pending.request_id:
            raise Rejection(
                "slo_unknown_in_response_to",
                "the LogoutResponse answers a LogoutRequest this browser did not send, "
                "or one already answered or expired",
            )
        self.check_issuer(provider, root, required=False)
        self.check_destination(provider.urls, root, site, required=False)
        # Unsigned is accepted: this answer only chooses the words of the page below.
        self.verify_signature(provider, received, LOGOUT_RESPONSE, required=False)
        status = root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
        confirmed = status is not None and status.get("Value") == SUCCESS
        response = signed_out_page(site, pending.next_path, idp_told=True, confirmed=confirmed)
        response.headers.add("Set-Cookie", self.clearing_pending_cookie(request))
        return response

    # -- the pending-logout cookie ---------------------------------------------------------------

    def cookie_path(self, request: Request) -> str:
        # /saml/: the IdP may answer at /saml/<slug>/slo or, set up so, at /saml/logout.
        return self.site(request).link("/saml/")

    def pending_cookie(self, request: Request, pending: PendingLogout) -> str:
        value = str(
            self._cookies.dumps(
                [
                    COOKIE_FORMAT,
                    pending.workspace_id,
                    pending.slug,
                    pending.request_id,
                    pending.next_path,
                    pending.expires_at,
                ]
            )
        )
        return self._set_cookie(request, value, int(LOGOUT_LIFETIME.total_seconds()))

    def clearing_pending_cookie(self, request: Request) -> str:
        return self._set_cookie(request, "", 0)

    def _set_cookie(self, request: Request, value: str, max_age: int) -> str:
        secure = self.site(request).base_url.startswith("https://")
        # The IdP's answer may be a cross-site POST: like the sign-in's, SameSite=None (with
        # Secure) on https, left out on plain http (development), where browsers treat it as Lax.
        return dump_cookie(
            LOGOUT_COOKIE,
            value,
            max_age=max_age,
            path=self.cookie_path(request),
            secure=secure,
            httponly=True,
            samesite="None" if secure else None,
        )

    def read_pending(self, request: Request, workspace_id: int | None) -> PendingLogout | None:
        """This browser's live pending logout (for ``workspace_id``, when given)."""
        now = time.time()
        for raw in request.cookies.getlist(LOGOUT_COOKIE)[:4]:
            if not raw or len(raw) > MAX_COOKIE_VALUE:
                continue
            try:
                payload = self._cookies.loads(raw)
            except SignatureRefused:
                continue
            pending = _pending(payload)
            if (
                pending is not None
                and pending.expires_at > now
                and (workspace_id is None or pending.workspace_id == workspace_id)
            ):
                return pending
        return None


def _pending(payload: Any) -> PendingLogout | None:
    if not (isinstance(payload, list) and len(payload) == 6 and payload[0] == COOKIE_FORMAT):
        return None
    _, workspace_id, slug, request_id, next_path, expires_at = payload
    if not (
        type(workspace_id) is int
        and isinstance(slug, str)
        and isinstance(request_id, str)
        and isinstance(next_path, str)
        and type(expires_at) is int
    ):
        return None
    return PendingLogout(workspace_id, slug, request_id, next_path, expires_at)


# -- decoding ---------------------------------------------------------------------------------------


def _query_fields(query: str) -> tuple[dict[str, list[str]], tuple[str, str, bytes] | None]:
    """The SAML parameters of a raw query string, and (SigAlg, Signature, signed octets)
    when it carries a signature: the octets are the parameters exactly as received, in the
    order SAML bindings 3.4.4.1 fixes (never re-encoded: IdPs encode differently)."""
    raw: dict[str, list[str]] = {name: [] for name in (*MESSAGE_FIELDS, "SigAlg", "Signature")}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name in raw:
            raw[name].append(value)
    if any(len(values) > 1 for values in raw.values()):
        raise Rejection("slo_malformed", "a SAML parameter is given more than once")
    fields = {name: [unquote_plus(v) for v in raw[name]] for name in MESSAGE_FIELDS}
    signature = None
    if raw["Signature"] or raw["SigAlg"]:
        field = "SAMLRequest" if raw["SAMLRequest"] else "SAMLResponse"
        if not raw[field] or not raw["Signature"] or not raw["SigAlg"]:
            return fields, ("", "", b"")  # refused by verify_query_signature
        parts = [f"{field}={raw[field][0]}"]
        if raw["RelayState"]:
            parts.append(f"RelayState={raw['RelayState'][0]}")
        parts.append(f"SigAlg={raw['SigAlg'][0]}")
        signed = "&".join(parts).encode("latin-1", "replace")
        signature = (
            unquote_plus(raw["SigAlg"][0]),
            unquote_plus(raw["Signature"][0]),
            signed,
        )
    return fields, signature


def _decode(value: str, *, deflated: bool) -> bytes:
    compact = "".join(value.split())
    if len(compact) > MAX_MESSAGE_CHARS:
        raise Rejection("slo_too_large", "the logout message is larger than this site accepts")
    try:
        raw = base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise Rejection("slo_bad_encoding", "the logout message is not valid base64") from None
    if not deflated:
        return raw
    try:
        inflater = zlib.decompressobj(-15)
        xml = inflater.decompress(raw, MAX_XML_BYTES + 1)
    except zlib.error:
        raise Rejection(
            "slo_bad_encoding", "the logout message is not DEFLATE-compressed"
        ) from None
    if len(xml) > MAX_XML_BYTES or inflater.unconsumed_tail:
        raise Rejection("slo_too_large", "the logout message is larger than this site accepts")
    if not inflater.eof:  # a truncated stream, or bytes that merely looked like one
        raise Rejection("slo_bad_encoding", "the logout message is not DEFLATE-compressed")
    return xml


def _instant(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise Rejection(
            "slo_bad_time", f"unreadable time {value!r} in the logout message"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


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
    private_key = load_pem_private_key(key.private_key_pem, password=None)
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


def idp_slo_endpoints(metadata_xml: str) -> dict[str, Endpoint]:
    """The IdP's SingleLogoutService per binding (the first of each), from its metadata."""
    try:
        root = parse_xml(metadata_xml).getroot()
    except DocumentRefused:
        return {}
    found: dict[str, Endpoint] = {}
    for role in root.iter(f"{{{MD}}}IDPSSODescriptor"):
        for service in role.iterfind(f"{{{MD}}}SingleLogoutService"):
            binding = service.get("Binding") or ""
            location = (service.get("Location") or "").strip()
            if binding not in (BINDING_REDIRECT, BINDING_POST) or binding in found:
                continue
            if urlsplit(location).scheme not in ("http", "https"):
                continue
            response_location = (service.get("ResponseLocation") or "").strip() or location
            if urlsplit(response_location).scheme not in ("http", "https"):
                response_location = location
            found[binding] = Endpoint(binding, location, response_location)
    return found


# -- pages ------------------------------------------------------------------------------------------


def autopost_page(action: str, fields: dict[str, str], *, title: str = "Signing out") -> Response:
    """A form that submits itself (a hash-allowed script) and, without JavaScript, by its
    button: the HTTP-POST binding's way through the browser."""
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


def signed_out_page(
    site: PublicUrls, next_path: str, *, idp_told: bool, confirmed: bool = True
) -> Response:
    if not idp_told:
        said = "You are signed out of this site."
    elif confirmed:
        said = "You are signed out of this site and of your identity provider."
    else:
        said = (
            "You are signed out of this site. Your identity provider did not confirm that it "
            "ended its own session: close the browser to be sure you are signed out there."
        )
    body = (
        f"<p>{escape(said)}</p>"
        f'<p><a href="{escape(site.link(safe_next(next_path)))}">Continue</a></p>'
    )
    return page("Signed out", body)


def forward_page(site: PublicUrls, slug: str, fields: dict[str, str]) -> Response:
    """The IdP's POST to /saml/logout, on to the workspace's SLO endpoint (logout.py)."""
    return autopost_page(site.link(workspace_path(slug, "slo")), fields)
