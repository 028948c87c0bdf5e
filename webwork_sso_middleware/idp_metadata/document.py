"""Fetching IdP metadata from its URL without becoming a way into the site's own network.

A workspace owner chooses the URL, and every owner may be hostile, so (issue 9, SSRF):

- Only globally routable addresses are fetched: the host is resolved here, every address it has
  must be public, and the connection goes to the address that was checked (pinned), so a DNS
  answer that changes between the check and the connect cannot reach an internal host. TLS still
  verifies the certificate against the host name. Hosts the operator names in
  ``metadata_allowed_hosts`` skip the address check (testing, an IdP on the site's own network).
- Redirects are followed here, a few at most, each one checked like the first URL.
- One deadline bounds the whole fetch: DNS, connects, TLS, redirects and a dripping body.
- Every failure a caller could use as an oracle (refused address, connection refused, timeout,
  HTTP status, not XML, not SAML metadata) raises the same :class:`MetadataUnavailable`; nothing
  of what the server sent comes back. The detail goes to the server log, escaped.

No proxy is used: the proxy would resolve the name itself, which defeats the check.
Stdlib only; :mod:`.metadata` re-exports these names.
"""

from __future__ import annotations

import codecs
import dataclasses
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

from lxml import etree

from ..config import Settings, normalise_host
from ..errors import MetadataError, MetadataUnavailable

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds, for the whole fetch
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
METADATA_ROOTS = (f"{{{MD_NS}}}EntityDescriptor", f"{{{MD_NS}}}EntitiesDescriptor")

_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][\w.-]*)["']""")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")
# Forms of IPv6 address that carry an IPv4 address the network may deliver to: judge that one.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# IETF protocol assignments (192.0.0.8 and friends): Python 3.11 calls some of them global.
_IETF_PROTOCOL = ipaddress.ip_network("192.0.0.0/24")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class QuotingMetadataError(MetadataError):
    """A refusal whose reason quotes the document; ``unquoted`` says the same without it, for
    a document the site fetched (``metadata.parse(..., echo=False)``)."""

    def __init__(self, reason: str, *, unquoted: str) -> None:
        super().__init__(reason)
        self.unquoted = unquoted



def decode_document(raw: bytes) -> str:
    """XML bytes as text: a byte-order mark, else the XML declaration's encoding, else UTF-8."""
    if raw.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        declared = _DECLARED_ENCODING.match(raw)
        encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        return raw.decode(encoding)
    except LookupError:
        raise QuotingMetadataError(f"the XML declares an unknown encoding {encoding!r}",
                                   unquoted="the XML declares an unknown encoding") from None
    except UnicodeDecodeError as error:
        raise QuotingMetadataError(
            f"the metadata is not valid {encoding} text (bad byte at offset {error.start})",
            unquoted="the metadata is not valid text in its encoding",
        ) from None


def metadata_root(xml: str, *, max_chars: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse ``xml`` safely and return its root, when that is SAML 2.0 metadata (an
    EntityDescriptor or EntitiesDescriptor); :class:`MetadataError` saying why not."""
    if len(xml) > max_chars:
        raise MetadataError(f"the metadata is longer than {max_chars} characters")
    # The text is already decoded: drop a declaration whose encoding lxml would refuse for str.
    text = _XML_DECLARATION.sub("", xml.lstrip("\ufeff"), count=1)
    if not text.strip():
        raise MetadataError("the metadata is empty")
    # No DTD at all: metadata never needs one, and DTDs carry XXE and entity-expansion attacks.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise MetadataError("the metadata contains a DOCTYPE or entity declaration (refused)")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        remove_comments=True, remove_pis=True, huge_tree=False, collect_ids=False,
    )  # fmt: skip
    try:
        root = etree.fromstring(text, parser)
    except (etree.XMLSyntaxError, ValueError) as error:
        raise QuotingMetadataError(f"the metadata is not well-formed XML ({error})",
                                   unquoted="the metadata is not well-formed XML") from None
    if root.getroottree().docinfo.doctype:  # belt and braces to the text check above
        raise MetadataError("the metadata contains a DOCTYPE, which is refused")
    if root.tag not in METADATA_ROOTS:
        name = etree.QName(root)
        raise QuotingMetadataError(
            f"the document is a <{name.localname}> element"
            f"{f' in namespace {name.namespace}' if name.namespace else ''}, not SAML 2.0"
            " metadata (an EntityDescriptor or EntitiesDescriptor)",
            unquoted="the document is not SAML 2.0 metadata (an EntityDescriptor or"
            " EntitiesDescriptor)",
        )
    return root
