"""A logout message (SAMLRequest or SAMLResponse) as it arrives at ``/saml/<slug>/slo``, and
every check of it: read by its binding (HTTP-POST form, or HTTP-Redirect query with its
signature kept as the octets received), decoded (base64, and inflated for Redirect, both
bounded), parsed strictly (no DTD), then for an IdP's LogoutRequest its shape (exactly one
LogoutRequest and one NameID, against wrapping), signature, ID, issuer, destination and times.

Nothing here acts on a message: single_logout.py ends sessions once these checks pass, and the
replay cache is its own. Signatures are verified with logout_bindings.py's query-signature check
and crypto.py's enveloped one. Each refusal raises a Rejection with its ``slo_*`` code.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import zlib
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from saml2.sigver import SignatureError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

from ..bodies import read_form
from ..logs import package_logger
from ..store.models import utcnow
from ..urls import LOGOUT_PATH, PublicUrls, WorkspaceUrls
from .crypto import DocumentRefused, parse_xml
from .logout_bindings import BINDING_POST, BINDING_REDIRECT, DS, SIGNATURES, verify_query_signature
from .posted import SAML, SAMLP, single_text
from .rejection import Rejection

if TYPE_CHECKING:
    from .sp import ServiceProvider

log = package_logger(__name__)

LOGOUT_REQUEST = f"{SAMLP}:LogoutRequest"  # crypto.py's node names
LOGOUT_RESPONSE = f"{SAMLP}:LogoutResponse"
MAX_MESSAGE_CHARS = 64 * 1024  # as sent: base64 (of the deflated XML, for Redirect)
MAX_XML_BYTES = 128 * 1024  # inflated: a deflate bomb stops one byte past this
MAX_RELAY_STATE = 1024
MAX_SESSION_INDEXES = 64  # a person's sessions at one IdP; each is a bound parameter
MAX_ID_LENGTH = 200  # the replay cache's column holds 256 with the prefix
# An IdP's LogoutRequest older than this (by its IssueInstant, beyond the clock skew) is refused:
# the replay cache keeps its ID only this long.
REQUEST_MAX_AGE = dt.timedelta(minutes=10)
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


# -- reading ----------------------------------------------------------------------------------------


def receive(request: Request, max_body_bytes: int) -> Received:
    """The message, by the binding its method says; its encoding and XML checked."""
    if request.method == "POST":
        try:
            form = read_form(request, max_body_bytes)
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
        fields, signature = query_fields(str(request.environ.get("QUERY_STRING") or ""))
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
    document = decode_message(fields[field][0], deflated=binding == BINDING_REDIRECT)
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


# -- checking ---------------------------------------------------------------------------------------


def check_logout_request(
    provider: ServiceProvider, received: Received, site: PublicUrls, clock_skew: dt.timedelta
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
    verify_signature(provider, received, LOGOUT_REQUEST)
    request_id = root.get("ID") or ""
    if not request_id or len(request_id) > MAX_ID_LENGTH or root.get("Version") != "2.0":
        raise Rejection("slo_malformed", "the LogoutRequest has no usable ID or Version")
    check_issuer(provider, root, required=True)
    check_destination(provider.urls, root, site, required=True)
    now = utcnow()
    issued = _instant(root.get("IssueInstant"))
    if issued is None:
        raise Rejection("slo_bad_time", "the LogoutRequest has no IssueInstant")
    if issued > now + clock_skew:
        raise Rejection(
            "slo_not_yet_valid",
            f"the LogoutRequest was issued at {issued:%Y-%m-%d %H:%M:%S}Z, in the future; "
            "check the clocks of this server and the IdP",
        )
    if issued < now - clock_skew - REQUEST_MAX_AGE:
        raise Rejection(
            "slo_expired", f"the LogoutRequest was issued at {issued:%Y-%m-%d %H:%M:%S}Z"
        )
    not_on_or_after = _instant(root.get("NotOnOrAfter"))
    if not_on_or_after is not None and now - clock_skew >= not_on_or_after:
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
        issued + REQUEST_MAX_AGE + 2 * clock_skew,
    )


def verify_signature(
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


def check_issuer(provider: ServiceProvider, root: Any, *, required: bool) -> None:
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


def check_destination(urls: WorkspaceUrls, root: Any, site: PublicUrls, *, required: bool) -> None:
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


# -- decoding ---------------------------------------------------------------------------------------


def query_fields(query: str) -> tuple[dict[str, list[str]], tuple[str, str, bytes] | None]:
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


def decode_message(value: str, *, deflated: bool) -> bytes:
    # Not posted.decode (the ACS's): this one is bounded before decoding, inflates Redirect
    # messages and refuses with the slo_* codes.
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
