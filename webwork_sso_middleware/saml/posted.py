"""The SAMLResponse as posted to the ACS, before anything in it is trusted: decoded, parsed
strictly (no DTD) and peeked at for the request it claims to answer, and the email it claims
(for a refusal's diagnostics only). The checks of what it says are acs.py's.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from typing import Any

from .crypto import DocumentRefused, parse_xml
from .rejection import Rejection

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
SIGNATURE = f"{{{DS}}}Signature"
ASSERTION = f"{{{SAML}}}Assertion"
ENCRYPTED_ASSERTION = f"{{{SAML}}}EncryptedAssertion"
EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
MAX_EMAIL = 255  # the longest address a member can have (members.user_name)

NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
NAMEID_TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
# NameIDs that never are an address: the person's email comes from an attribute instead.
OPAQUE_NAME_IDS = (NAMEID_TRANSIENT, NAMEID_PERSISTENT)
CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"  # Entra ID, ADFS
# Where IdPs put the email, tried in this order (by Name or FriendlyName, in any case): Okta
# and most others, LDAP's mail (short and urn:oid), Entra/ADFS claims (its "name" claim is the
# UPN, used only when it is an address, as every value here), OneLogin-style User.Email.
EMAIL_ATTRIBUTES = (
    "email",
    "mail",
    "emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
    CLAIMS + "emailaddress",
    CLAIMS + "name",
    "User.Email",
)


@dataclasses.dataclass
class Peek:
    """What the consumer reads before verification, to decide which request it answers."""

    root: Any
    in_response_to: str | None
    # Set by the consumer once the IdP's signature verified on this tree: a refusal after
    # that is a real failure of the IdP's, one before it anything anyone could have sent.
    signature_verified: bool = False
    # Set by the consumer once the Response's own signature verified (for an encrypted
    # assertion: on this tree, before decrypting), so it is never checked again.
    response_verified: bool = False
    # Set once a decrypted assertion's own signature verified (decrypted in an unsigned
    # Response, it is checked before anything else reads it), so it is not checked again.
    assertion_verified: bool = False
    # The Assertion decrypted from the EncryptedAssertion (in a document of its own), once the
    # consumer decrypted it; None for a plaintext assertion.
    decrypted: Any = None


_BASE64_WRAPPING = re.compile(r"[ \t\r\n]")  # ASCII whitespace only: nothing else is skipped


def decode(saml_response: str | None) -> bytes:
    # Strictly base64, but wrapped lines (some IdPs wrap at 76 characters) are fine. Most
    # responses come unwrapped: four scans for the wrapping characters cost less than one
    # regular-expression substitution over the whole response.
    compact = saml_response or ""
    if " " in compact or "\n" in compact or "\r" in compact or "\t" in compact:
        compact = _BASE64_WRAPPING.sub("", compact)
    if not compact:
        raise Rejection("missing_response", "the request carries no SAMLResponse")
    try:
        return base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise Rejection("bad_encoding", "the SAMLResponse is not valid base64") from None


def claimed_email(seen: Peek | None, email_attribute_name: str | None = None) -> str | None:
    """The email a response names (its NameID, or for a transient or persistent NameID its
    email attribute), for the owner's diagnostics when it is refused, and for the ACS's
    lookup: unverified, so recorded as what the response claimed and decided on by nothing.

    ``email_attribute_name``: the workspace's owner mapped the email to this attribute; its
    first address is then the email whatever the NameID is, as subject.read_subject reads it.

    An encrypted assertion names nobody until the consumer decrypted it (``seen.decrypted``):
    None before that."""
    if seen is None:
        return None
    if seen.decrypted is not None:
        assertion = seen.decrypted
        name_id = assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
    else:
        assertion = seen.root.find(f"{{{SAML}}}Assertion")
        name_id = seen.root.find(f"{{{SAML}}}Assertion/{{{SAML}}}Subject/{{{SAML}}}NameID")
    if email_attribute_name:
        return (
            email_attribute(assertion, (email_attribute_name,)) if assertion is not None else None
        )
    if name_id is not None and name_id.get("Format") in OPAQUE_NAME_IDS:
        return email_attribute(assertion)
    text = (single_text(name_id) or "") if name_id is not None else ""
    return text if len(text) <= 320 and EMAIL.match(text) else None


def email_attribute(assertion: Any, names: tuple[str, ...] = EMAIL_ATTRIBUTES) -> str | None:
    """The first email address among the assertion's attributes ``names`` (EMAIL_ATTRIBUTES
    unless the owner mapped another), in their order; values that are no address (an Entra
    UPN that is not, a user name) are passed over."""
    by_name: dict[str, list[str]] = {}
    for attribute in assertion.iterfind(f"{{{SAML}}}AttributeStatement/{{{SAML}}}Attribute"):
        values = [
            text
            for value in attribute.iterfind(f"{{{SAML}}}AttributeValue")
            if (text := single_text(value))
        ]
        for key in {attribute.get("Name"), attribute.get("FriendlyName")} - {None}:
            by_name.setdefault(key.lower(), []).extend(values)
    for name in names:
        for value in by_name.get(name.lower(), ()):
            if len(value) <= MAX_EMAIL and EMAIL.match(value):
                return value
    return None


def peek(document: bytes) -> Peek:
    """Parse without trusting anything yet; refuse DTDs outright (XXE, entity expansion)."""
    try:
        root = parse_xml(document).getroot()
    except DocumentRefused as exc:
        if exc.kind == "dtd":
            raise Rejection(
                "dtd_forbidden", "the response contains a DTD, which is never allowed"
            ) from None
        raise Rejection("malformed_xml", "the response is not well-formed XML") from None
    if root.tag != f"{{{SAMLP}}}Response":
        raise Rejection("not_a_response", "the document is not a SAML Response")
    confirmations = root.iterfind(
        f"{{{SAML}}}Assertion/{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation/"
        f"{{{SAML}}}SubjectConfirmationData"
    )
    if root.get("InResponseTo") == "" or any(c.get("InResponseTo") == "" for c in confirmations):
        # Schema-invalid (an NCName, never empty), and not "unsolicited": samlify's default
        # template writes it so. Said apart, or the owner looks for a request gone missing.
        raise Rejection(
            "empty_in_response_to",
            'the IdP sent InResponseTo="" (empty), which the SAML schema does not allow; '
            "it must leave the attribute out (IdP-initiated) or name the request it answers",
        )
    return Peek(root, root.get("InResponseTo"))


def single_text(element: Any) -> str | None:
    """The element's stripped text, or None when it has child nodes (comments included).

    A comment injected after signing leaves an exclusive-c14n signature valid while ``.text``
    stops at it (CVE-2017-11427): ``<Audience>ours<!---->.other</Audience>`` would read as
    ours. A signed value is read only when it is a single text node.
    """
    return None if len(element) else (element.text or "").strip()
