"""An IdP metadata document as text and as a safe XML tree, before any SAML meaning.

Shared by :mod:`.fetching` (a fetched body must at least be SAML metadata) and :mod:`.parsing`
(which reads the IdP out of it). Errors that would quote the document carry an unquoted form
too, for a document the site fetched from a URL an owner gave.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

from lxml import etree

from ..errors import MetadataError

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
METADATA_ROOTS = (f"{{{MD_NS}}}EntityDescriptor", f"{{{MD_NS}}}EntitiesDescriptor")

_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][\w.-]*)["']""")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


class QuotingMetadataError(MetadataError):
    """A refusal whose reason quotes the document; ``unquoted`` says the same without it, for
    a document the site fetched (``parsing.parse(..., echo=False)``)."""

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
        raise QuotingMetadataError(
            f"the XML declares an unknown encoding {encoding!r}",
            unquoted="the XML declares an unknown encoding",
        ) from None
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
        raise QuotingMetadataError(
            f"the metadata is not well-formed XML ({error})",
            unquoted="the metadata is not well-formed XML",
        ) from None
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
