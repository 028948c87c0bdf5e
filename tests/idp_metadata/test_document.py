"""An IdP metadata document as text: byte-order marks and declared encodings."""

from __future__ import annotations

import pytest

from webwork_sso_middleware.errors import MetadataError
from webwork_sso_middleware.idp_metadata.document import decode_document
from webwork_sso_middleware.idp_metadata.parsing import parse

from .metadata_samples import entity_descriptor

# -- text encodings -------------------------------------------------------------------------------


def test_the_declared_encoding_and_a_byte_order_mark_are_respected() -> None:
    xml = entity_descriptor(entity_id="https://idp.example/café", declaration=False)
    latin = ('<?xml version="1.0" encoding="ISO-8859-1"?>' + xml).encode("latin-1")
    assert parse(decode_document(latin)).entity_id == "https://idp.example/café"
    assert parse(decode_document(xml.encode("utf-16"))).entity_id == "https://idp.example/café"
    assert parse(decode_document(b"\xef\xbb\xbf" + xml.encode())).entity_id.endswith("café")
    # A declaration in text that is already decoded is no obstacle either.
    assert parse('<?xml version="1.0" encoding="ISO-8859-1"?>' + xml).entity_id.endswith("café")


def test_bytes_that_are_not_the_declared_encoding_are_refused() -> None:
    with pytest.raises(MetadataError, match="not valid utf-8"):
        decode_document(b"<x>\xff\xfe\xfd</x>")
    with pytest.raises(MetadataError, match="unknown encoding"):
        decode_document(b'<?xml version="1.0" encoding="klingon"?><x/>')
