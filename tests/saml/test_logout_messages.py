"""A logout message as it arrives (saml/logout_messages.py): its query parameters and signed
octets, and its decoding, bounded. The checks of a whole LogoutRequest or LogoutResponse, with
a real IdP through HTTP, are in test_single_logout.py and tests/security/test_saml_attacks.py."""

from __future__ import annotations

import base64
import zlib

import pytest

from webwork_sso_middleware.saml.logout_messages import (
    MAX_XML_BYTES,
    decode_message,
    query_fields,
)
from webwork_sso_middleware.saml.rejection import Rejection


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def refusal(call) -> str:
    with pytest.raises(Rejection) as refused:
        call()
    return refused.value.code


def test_the_signed_octets_are_the_parameters_as_received_in_the_bindings_order():
    """SAML bindings 3.4.4.1: SAMLRequest, RelayState, SigAlg, each exactly as sent (an IdP's
    own percent-encoding kept), whatever order the query has them in; other parameters are not
    signed."""
    query = "SigAlg=alg%2Fx&Signature=c2ln&extra=1&RelayState=a%20b&SAMLRequest=UkVR%2b"
    fields, signature = query_fields(query)
    assert fields == {"SAMLRequest": ["UkVR+"], "SAMLResponse": [], "RelayState": ["a b"]}
    assert signature == ("alg/x", "c2ln", b"SAMLRequest=UkVR%2b&RelayState=a%20b&SigAlg=alg%2Fx")


def test_a_signature_without_its_algorithm_is_kept_as_one_that_cannot_verify():
    fields, signature = query_fields("SAMLRequest=UkVR&Signature=c2ln")
    assert signature == ("", "", b"")
    assert query_fields("SAMLRequest=UkVR")[1] is None


def test_a_repeated_parameter_is_refused():
    assert refusal(lambda: query_fields("SAMLRequest=a&SAMLRequest=b")) == "slo_malformed"
    assert refusal(lambda: query_fields("SAMLRequest=a&SigAlg=x&SigAlg=y")) == "slo_malformed"


def test_decoding_takes_wrapped_base64_and_inflates_redirect_messages():
    xml = b"<samlp:LogoutRequest/>"
    wrapped = base64.b64encode(deflate(xml)).decode("ascii")
    wrapped = wrapped[:10] + "\r\n " + wrapped[10:]
    assert decode_message(wrapped, deflated=True) == xml
    assert decode_message(base64.b64encode(xml).decode("ascii"), deflated=False) == xml


def test_decoding_refuses_what_is_not_base64_or_deflate_and_stops_a_bomb():
    assert refusal(lambda: decode_message("not base64!", deflated=False)) == "slo_bad_encoding"
    plain = base64.b64encode(b"<x/>").decode("ascii")
    assert refusal(lambda: decode_message(plain, deflated=True)) == "slo_bad_encoding"
    truncated = base64.b64encode(deflate(b"<x>" + b"y" * 1000 + b"</x>")[:-4]).decode("ascii")
    assert refusal(lambda: decode_message(truncated, deflated=True)) == "slo_bad_encoding"
    bomb = base64.b64encode(deflate(b" " * (MAX_XML_BYTES + 1))).decode("ascii")
    assert refusal(lambda: decode_message(bomb, deflated=True)) == "slo_too_large"
    assert refusal(lambda: decode_message("A" * (64 * 1024 + 4), deflated=False)) == "slo_too_large"
