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
EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")


@dataclasses.dataclass
class Peek:
    """What the consumer reads before verification, to decide which request it answers."""

    root: Any
    in_response_to: str | None
    # Set by the consumer once the IdP's signature verified on this tree: a refusal after
    # that is a real failure of the IdP's, one before it anything anyone could have sent.
    signature_verified: bool = False


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


def claimed_email(seen: Peek | None) -> str | None:
    """The email a response's NameID names, for the owner's diagnostics when it is refused:
    unverified, so recorded as what the response claimed and used for nothing else."""
    if seen is None:
        return None
    name_id = seen.root.find(f"{{{SAML}}}Assertion/{{{SAML}}}Subject/{{{SAML}}}NameID")
    text = (single_text(name_id) or "") if name_id is not None else ""
    return text if len(text) <= 320 and EMAIL.match(text) else None


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
    return Peek(root, root.get("InResponseTo"))


def single_text(element: Any) -> str | None:
    """The element's stripped text, or None when it has child nodes (comments included).

    A comment injected after signing leaves an exclusive-c14n signature valid while ``.text``
    stops at it (CVE-2017-11427): ``<Audience>ours<!---->.other</Audience>`` would read as
    ours. A signed value is read only when it is a single text node.
    """
    return None if len(element) else (element.text or "").strip()
