"""Logout messages on their way out (saml/logout_bindings.py): the IdP's endpoints from its
metadata, our Redirect query signature and its verification, our enveloped signature. Real
keys (sp_keys.material) and the real verifiers: crypto.py's XmlsecBackend, and the
query-signature check the SLO endpoint uses. The whole exchange through HTTP is in
test_single_logout.py."""

from __future__ import annotations

import base64
import datetime as dt
import zlib
from urllib.parse import parse_qs

import pytest
from lxml import etree
from saml2 import BINDING_HTTP_POST
from saml2.sigver import SignatureError

from webwork_sso_middleware.saml.crypto import load_certificate_der, parse_xml
from webwork_sso_middleware.saml.logout_bindings import (
    MD,
    SIGNATURES,
    SUCCESS,
    idp_slo_endpoints,
    logout_response_xml,
    sign_enveloped,
    sign_query,
    verify_query_signature,
)
from webwork_sso_middleware.saml.logout_messages import LOGOUT_RESPONSE, query_fields
from webwork_sso_middleware.saml.posted import SAMLP
from webwork_sso_middleware.sp_keys import SpKey
from webwork_sso_middleware.sp_keys.material import KeyPair


def sp_key(pair: KeyPair) -> SpKey:
    now = dt.datetime.now(dt.UTC)
    return SpKey("current", pair.cert_pem.decode("ascii"), pair.key_pem, now, now)


# The key pairs are conftest's (idp_keys, attacker_keys): here idp_keys plays the SP's key.


def answer_xml() -> bytes:
    return logout_response_xml("https://sp/metadata", "https://idp/slo", "_req1", SUCCESS)


def test_idp_slo_endpoints_prefer_the_response_location():
    xml = (
        f'<md:EntityDescriptor xmlns:md="{MD}" entityID="x"><md:IDPSSODescriptor '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f'<md:SingleLogoutService Binding="{BINDING_HTTP_POST}" '
        'Location="https://idp/slo" ResponseLocation="https://idp/slo-answer"/>'
        f'<md:SingleLogoutService Binding="{BINDING_HTTP_POST}" Location="https://late"/>'
        '<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:SOAP" '
        'Location="https://idp/soap"/></md:IDPSSODescriptor></md:EntityDescriptor>'
    )
    [(binding, endpoint)] = idp_slo_endpoints(xml).items()
    assert binding == BINDING_HTTP_POST
    assert (endpoint.location, endpoint.response_location) == (
        "https://idp/slo",
        "https://idp/slo-answer",
    )


def test_a_query_signature_verifies_over_the_parameters_as_sent(
    idp_keys: KeyPair, attacker_keys: KeyPair
):
    """What sign_query writes, the SLO endpoint reads back (logout_messages.query_fields) and
    verifies with the signer's certificate only; any change to the signed octets fails."""
    xml = answer_xml()
    query = sign_query("SAMLResponse", xml, "state 1/2", sp_key(idp_keys))
    fields, signature = query_fields(query)
    assert signature is not None
    algorithm, value, signed = signature
    assert signed == query.rsplit("&Signature=", 1)[0].encode("ascii")
    assert fields["RelayState"] == ["state 1/2"]
    deflated = base64.b64decode(fields["SAMLResponse"][0])
    assert zlib.decompress(deflated, -15) == xml

    ours = [load_certificate_der(idp_keys.cert_pem)]
    assert verify_query_signature(signed, algorithm, value, ours)
    assert not verify_query_signature(
        signed, algorithm, value, [load_certificate_der(attacker_keys.cert_pem)]
    )
    assert not verify_query_signature(signed + b"x", algorithm, value, ours)
    assert not verify_query_signature(
        signed, "http://www.w3.org/2000/09/xmldsig#dsa-sha1", value, ours
    )
    assert not verify_query_signature(signed, algorithm, "not base64!", ours)
    assert parse_qs(query)["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]


def test_an_enveloped_signature_follows_the_issuer_and_verifies(
    idp_keys: KeyPair, attacker_keys: KeyPair
):
    signed = sign_enveloped(answer_xml(), LOGOUT_RESPONSE, sp_key(idp_keys))
    root = parse_xml(signed).getroot()
    assert [etree.QName(child).localname for child in root][:2] == ["Issuer", "Signature"]
    SIGNATURES.verify_element(
        root, LOGOUT_RESPONSE, root.get("ID"), [load_certificate_der(idp_keys.cert_pem)]
    )
    with pytest.raises(SignatureError):
        SIGNATURES.verify_element(
            root, LOGOUT_RESPONSE, root.get("ID"), [load_certificate_der(attacker_keys.cert_pem)]
        )
    assert root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode").get("Value") == SUCCESS
