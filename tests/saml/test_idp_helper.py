"""The test IdP itself: its metadata, its responses and its HTTP front, checked with a plain pysaml2 SP."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.mdstore import MetadataStore
from saml2.sigver import MissingKey, SignatureError

from webwork_sso_middleware.saml.encrypting import Encryption
from webwork_sso_middleware.saml.encryption import AES128_CBC
from webwork_sso_middleware.saml.entities import make_client

from ..constants import DS, SAML
from .idp import TestIdP, autopost_form, make_key_pair, pysaml2_sp_config

SP_ID = "http://sp.test/saml/acme/metadata"
ACS = "http://sp.test/saml/acme/acs"


@pytest.fixture
def sp(idp: TestIdP) -> Saml2Client:
    return make_client(pysaml2_sp_config(SP_ID, ACS, [idp.metadata_xml()]))


def test_metadata_lists_the_signing_certificate_and_sso_service(
    idp: TestIdP, sp: Saml2Client
) -> None:
    assert isinstance(sp.metadata, MetadataStore)
    certs = sp.metadata.certs(idp.entity_id, "idpsso", "signing")
    assert ["".join(cert.split()) for _, cert in certs] == [idp.keys.cert_base64]
    for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST):
        (service,) = sp.metadata.single_sign_on_service(idp.entity_id, binding)
        assert service["location"] == idp.sso_url == f"{idp.url}/idp/sso"
    assert idp.entity_id == f"{idp.url}/idp/metadata"


def test_metadata_is_served_and_can_be_signed(idp: TestIdP) -> None:
    served = requests.get(f"{idp.url}/idp/metadata", timeout=5)
    assert served.status_code == 200 and "samlmetadata+xml" in served.headers["Content-Type"]
    assert etree.fromstring(served.content).get("entityID") == idp.entity_id
    idp.sign_metadata = True
    signed = etree.fromstring(requests.get(f"{idp.url}/idp/metadata", timeout=5).content)
    assert signed.find(f"{{{DS}}}Signature") is not None


def test_response_verifies_and_carries_name_id_and_attributes(
    idp: TestIdP, sp: Saml2Client
) -> None:
    saml_response = idp.response(sp_entity_id=SP_ID, acs_url=ACS, email="jane.doe@acme.test")
    result = sp.parse_authn_request_response(saml_response, BINDING_HTTP_POST)
    assert result.name_id.text == "jane.doe@acme.test"
    assert result.name_id.format == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    assert result.ava == {
        "email": ["jane.doe@acme.test"], "firstName": ["Jane"], "lastName": ["Doe"],
        "mail": ["jane.doe@acme.test"], "givenName": ["Jane"], "sn": ["Doe"],
    }  # fmt: skip
    names = {
        a.get("Name"): a.get("NameFormat") for a in _xml(saml_response).iter(f"{{{SAML}}}Attribute")
    }
    assert (
        names["email"] == "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"
    )  # as Okta sends
    assert names["urn:oid:2.5.4.42"] == "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"


def test_response_options_land_where_they_should(idp: TestIdP) -> None:
    xml = _xml(
        idp.response(
            sp_entity_id=SP_ID, acs_url=ACS, email="bob@acme.test", attributes={"department": "R&D"},
            in_response_to="id-request-1", sign_assertion=False, sign_response=True, issuer="http://evil.test",
            audience="http://other.test", destination="http://d.test/acs", recipient="http://r.test/acs",
            not_on_or_after_offset=-10, not_before_offset=60,
        )
    )  # fmt: skip
    assertion = xml.find(f"{{{SAML}}}Assertion")
    assert (
        xml.get("Destination") == "http://d.test/acs" and xml.get("InResponseTo") == "id-request-1"
    )
    assert (
        xml.find(f"{{{SAML}}}Issuer").text
        == assertion.find(f"{{{SAML}}}Issuer").text
        == "http://evil.test"
    )
    assert (
        xml.find(f"{{{DS}}}Signature") is not None and assertion.find(f"{{{DS}}}Signature") is None
    )
    confirmation = assertion.find(f".//{{{SAML}}}SubjectConfirmationData")
    assert confirmation.get("Recipient") == "http://r.test/acs"
    assert confirmation.get("InResponseTo") == "id-request-1"
    conditions = assertion.find(f"{{{SAML}}}Conditions")
    assert conditions.get("NotBefore") > conditions.get(
        "NotOnOrAfter"
    )  # offsets honoured (both ISO UTC)
    assert assertion.find(f".//{{{SAML}}}Audience").text == "http://other.test"
    assert [a.get("Name") for a in assertion.iter(f"{{{SAML}}}Attribute")] == ["department"]


def test_another_idp_is_not_trusted(second_idp: TestIdP, idp: TestIdP, sp: Saml2Client) -> None:
    assert second_idp.keys != idp.keys and second_idp.entity_id != idp.entity_id
    own_issuer = second_idp.response(sp_entity_id=SP_ID, acs_url=ACS, email="alice@acme.test")
    with pytest.raises(MissingKey):  # no metadata, so no key, for that issuer
        sp.parse_authn_request_response(own_issuer, BINDING_HTTP_POST)
    posing = second_idp.response(
        sp_entity_id=SP_ID, acs_url=ACS, email="alice@acme.test", issuer=idp.entity_id
    )
    with pytest.raises(SignatureError):
        sp.parse_authn_request_response(posing, BINDING_HTTP_POST)


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_sp_initiated_sign_in_over_http(idp: TestIdP, sp: Saml2Client, binding: str) -> None:
    idp.sp_config(SP_ID, ACS)
    idp.users["carol@acme.test"] = {
        "email": "carol@acme.test",
        "firstName": "Carol",
        "lastName": "Jones",
    }
    request_id, info = sp.prepare_for_authenticate(
        entityid=idp.entity_id, relay_state="/timesheets?week=3", binding=binding
    )
    if binding == BINDING_HTTP_REDIRECT:
        page = requests.get(
            dict(info["headers"])["Location"], params={"user": "carol@acme.test"}, timeout=5
        )
    else:
        action, fields = autopost_form(info["data"])
        page = requests.post(action, data={**fields, "user": "carol@acme.test"}, timeout=5)
    assert page.status_code == 200 and "document.forms[0].submit()" in page.text
    action, fields = autopost_form(page.text)
    assert action == ACS and fields["RelayState"] == "/timesheets?week=3"
    result = sp.parse_authn_request_response(
        fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={request_id: "/"}
    )
    assert result.name_id.text == "carol@acme.test" and result.in_response_to == request_id
    assert result.ava["firstName"] == ["Carol"] and "givenName" not in result.ava
    (seen,) = idp.requests
    assert (seen.id, seen.issuer, seen.acs_url, seen.relay_state, seen.user) == (
        request_id, SP_ID, ACS, "/timesheets?week=3", "carol@acme.test",
    )  # fmt: skip


def test_next_user_is_who_signs_in(idp: TestIdP, sp: Saml2Client) -> None:
    idp.sp_config(SP_ID, ACS)
    idp.next_user = "dave@acme.test"
    _, info = sp.prepare_for_authenticate(entityid=idp.entity_id, binding=BINDING_HTTP_REDIRECT)
    fields = autopost_form(requests.get(dict(info["headers"])["Location"], timeout=5).text)[1]
    assert "RelayState" not in fields
    assert (
        sp.parse_authn_request_response(
            fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={_in_response_to(fields): "/"}
        ).name_id.text
        == "dave@acme.test"
    )
    idp.next_user = None
    assert requests.get(dict(info["headers"])["Location"], timeout=5).status_code == 403


def test_http_sign_ins_encrypt_when_the_idp_is_told_to(idp: TestIdP, tmp_path: Any) -> None:
    sp_keys = make_key_pair("SP encryption")
    key_file, cert_file = sp_keys.write(tmp_path, "sp")
    config = pysaml2_sp_config(SP_ID, ACS, [idp.metadata_xml()])
    config["encryption_keypairs"] = [{"key_file": str(key_file), "cert_file": str(cert_file)}]
    sp = make_client(config)
    idp.sp_config(SP_ID, ACS)
    idp.encryption = Encryption(sp_keys.cert_pem, content=AES128_CBC, key_placement="sibling")
    _, info = sp.prepare_for_authenticate(entityid=idp.entity_id, binding=BINDING_HTTP_REDIRECT)
    fields = autopost_form(requests.get(dict(info["headers"])["Location"], timeout=5).text)[1]
    xml = base64.b64decode(fields["SAMLResponse"])
    assert b"EncryptedAssertion" in xml and b"alice@acme.test" not in xml
    assert AES128_CBC.encode() in xml
    response = sp.parse_authn_request_response(
        fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={_in_response_to(fields): "/"}
    )
    assert response.name_id.text == "alice@acme.test"


def test_bad_requests_are_refused(idp: TestIdP, sp: Saml2Client) -> None:
    assert requests.get(f"{idp.url}/idp/sso", timeout=5).status_code == 400
    assert (
        requests.get(
            f"{idp.url}/idp/sso", params={"SAMLRequest": "bm90IHNhbWw="}, timeout=5
        ).status_code
        == 400
    )
    _, info = sp.prepare_for_authenticate(entityid=idp.entity_id, binding=BINDING_HTTP_REDIRECT)
    unknown_sp = requests.get(dict(info["headers"])["Location"], timeout=5)  # SP never registered
    assert unknown_sp.status_code == 400
    assert requests.get(f"{idp.url}/elsewhere", timeout=5).status_code == 404


def _xml(saml_response: str) -> Any:
    return etree.fromstring(base64.b64decode(saml_response))


def _in_response_to(fields: dict[str, str]) -> str:
    return _xml(fields["SAMLResponse"]).get("InResponseTo")
