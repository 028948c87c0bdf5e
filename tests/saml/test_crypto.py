"""The in-process XML-DSig backend: real pysaml2 IdP and SP objects, real keys, real attacks.

Forged and legacy signatures are made with python-xmlsec directly (``xmlsec_sign``), the way an
attacker or an old IdP would, so the tests never depend on our own signer to produce them.
"""

from __future__ import annotations

import base64
import copy
import http.server
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xmlsec
from defusedxml import DefusedXmlException
from lxml import etree
from saml2 import BINDING_HTTP_POST
from saml2.client import Saml2Client
from saml2.response import InvalidAssertion
from saml2.saml import AUTHN_PASSWORD_PROTECTED, NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.sigver import MissingKey, SignatureError, SigverError

from webwork_sso_middleware.saml.crypto import (
    DocumentRefused,
    XmlsecBackend,
    load_certificate_der,
    parse_xml,
    read_private_key,
    refuse_dtd,
    safe_parser,
    verification_key,
)

from ..constants import DS, SAML
from .conftest import ACS, SP_ID
from .idp import KeyPair, TestIdP, make_key_pair

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
ASSERTION = f"{SAML}:Assertion"
RESPONSE = f"{SAMLP}:Response"
# What the SP raises for a rejected signature, depending on where pysaml2 notices.
REJECTED = (SignatureError, MissingKey)


@pytest.fixture
def cert_file(tmp_path: Path, idp_keys: KeyPair) -> str:
    """The IdP certificate as pysaml2 hands it to the backend: a PEM file."""
    path = tmp_path / "metadata-cert.pem"
    path.write_bytes(idp_keys.cert_pem)
    return str(path)


def response_xml(idp: TestIdP, **options: Any) -> str:
    options = {"sign_assertion": True, **options}
    return idp.response_xml(sp_entity_id=SP_ID, acs_url=ACS, email="alice@acme.test", **options)


def parse(sp: Saml2Client, xml: str | bytes) -> Any:
    data = xml.encode() if isinstance(xml, str) else xml
    return sp.parse_authn_request_response(base64.b64encode(data).decode(), BINDING_HTTP_POST)


def tree(xml: str | bytes) -> etree._Element:
    return etree.fromstring(xml.encode() if isinstance(xml, str) else xml)


def ids(xml: str) -> tuple[str, str]:
    root = tree(xml)
    return root.get("ID"), root.find(f"{{{SAML}}}Assertion").get("ID")


def xmlsec_sign(
    xml: str | bytes,
    element_id: str,
    key: xmlsec.Key,
    *,
    method: Any = xmlsec.Transform.RSA_SHA256,
    digest: Any = xmlsec.Transform.SHA256,
    c14n: Any = xmlsec.Transform.EXCL_C14N,
    transforms: tuple[Any, ...] = (xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N),
    uri: str | None = None,
    key_info: bool = False,
    edit: Callable[[etree._Element], None] | None = None,
) -> bytes:
    """(Re)sign the element with ``element_id`` as any xmlsec user could; its old signature goes.

    ``edit`` changes the Signature template before signing (parameters an IdP adds)."""
    root = tree(xml)
    element = root.xpath("//*[@ID=$id]", id=element_id)[0]
    for old in element.findall(f"{{{DS}}}Signature"):
        element.remove(old)
    signature = xmlsec.template.create(element, c14n, method, ns="ds")
    element.find(f"{{{SAML}}}Issuer").addnext(signature)  # schema order: right after Issuer
    reference = xmlsec.template.add_reference(
        signature, digest, uri=f"#{element_id}" if uri is None else uri
    )
    for transform in transforms:
        xmlsec.template.add_transform(reference, transform)
    if key_info:  # xmlsec fills it with the certificate loaded into the key
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    if edit is not None:
        edit(signature)
    context = xmlsec.SignatureContext()
    context.key = key
    for node in root.xpath("//*[@ID]"):
        context.register_id(node, "ID")
    context.sign(signature)
    return etree.tostring(root)


def rsa_key(keys: KeyPair, *, with_cert: bool = False) -> xmlsec.Key:
    key = xmlsec.Key.from_memory(keys.key_pem, xmlsec.KeyFormat.PEM)
    if with_cert:
        key.load_cert_from_memory(keys.cert_pem, xmlsec.KeyFormat.CERT_PEM)
    return key


def backend_verify(
    xml: str | bytes, cert: str, node_id: str, node_name: str = ASSERTION, **kw: Any
) -> bool:
    return XmlsecBackend(**kw).validate_signature(xml, cert, "pem", node_name, node_id)


# -- what must pass ------------------------------------------------------------------------------


def test_signed_assertion_is_verified_and_parsed(test_idp: TestIdP, sp: Saml2Client) -> None:
    result = parse(sp, response_xml(test_idp))
    assert result.name_id.text == "alice@acme.test"
    assert result.name_id.format == NAMEID_FORMAT_EMAILADDRESS
    assert result.ava["email"] == ["alice@acme.test"] and result.ava["givenName"] == ["Alice"]


def test_signed_response_covering_an_unsigned_assertion_is_verified(
    test_idp: TestIdP, sp: Saml2Client
) -> None:
    result = parse(sp, response_xml(test_idp, sign_assertion=False, sign_response=True))
    assert result.name_id.text == "alice@acme.test"


def test_pysaml2_server_signing_both_is_verified(test_idp: TestIdP, sp: Saml2Client) -> None:
    test_idp.sp_config(SP_ID, ACS)
    signed = test_idp.server.create_authn_response(
        {"email": ["alice@acme.test"]}, None, ACS, SP_ID,
        name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text="alice@acme.test"),
        authn={"class_ref": AUTHN_PASSWORD_PROTECTED}, sign_assertion=True, sign_response=True,
    )  # fmt: skip
    root = tree(str(signed))
    assert root.find(f"{{{DS}}}Signature") is not None
    assert root.find(f"{{{SAML}}}Assertion/{{{DS}}}Signature") is not None
    assert parse(sp, str(signed)).name_id.text == "alice@acme.test"


def test_legacy_rsa_sha1_is_accepted_unless_disabled(
    test_idp: TestIdP, sp: Saml2Client, idp_keys: KeyPair, cert_file: str
) -> None:
    xml = response_xml(test_idp, sign_assertion=False)
    _, assertion_id = ids(xml)
    legacy = xmlsec_sign(
        xml,
        assertion_id,
        rsa_key(idp_keys),
        method=xmlsec.Transform.RSA_SHA1,
        digest=xmlsec.Transform.SHA1,
    )
    assert parse(sp, legacy).name_id.text == "alice@acme.test"
    assert backend_verify(legacy, cert_file, assertion_id)  # accepted by default
    with pytest.raises(SignatureError, match="not allowed"):
        backend_verify(legacy, cert_file, assertion_id, accept_sha1=False)


@pytest.mark.parametrize("method", [xmlsec.Transform.RSA_SHA384, xmlsec.Transform.RSA_SHA512])
def test_other_sha2_rsa_signatures_are_accepted(
    test_idp: TestIdP, idp_keys: KeyPair, cert_file: str, method: Any
) -> None:
    xml = response_xml(test_idp, sign_assertion=False)
    _, assertion_id = ids(xml)
    signed = xmlsec_sign(
        xml, assertion_id, rsa_key(idp_keys), method=method, digest=xmlsec.Transform.SHA512
    )
    assert backend_verify(signed, cert_file, assertion_id)


def test_ecdsa_signature_is_accepted(test_idp: TestIdP, tmp_path: Path) -> None:
    ec_keys = make_key_pair("EC IdP", elliptic=True)
    (tmp_path / "ec.pem").write_bytes(ec_keys.cert_pem)
    xml = response_xml(test_idp, sign_assertion=False)
    _, assertion_id = ids(xml)
    key = xmlsec.Key.from_memory(ec_keys.key_pem, xmlsec.KeyFormat.PEM)
    signed = xmlsec_sign(xml, assertion_id, key, method=xmlsec.Transform.ECDSA_SHA256)
    assert backend_verify(signed, str(tmp_path / "ec.pem"), assertion_id)


def test_certificate_may_be_a_file_pem_text_or_base64_der(
    test_idp: TestIdP, idp_keys: KeyPair, cert_file: str
) -> None:
    xml = response_xml(test_idp)
    _, assertion_id = ids(xml)
    for cert in (cert_file, idp_keys.cert_pem.decode(), idp_keys.cert_base64):
        assert backend_verify(xml, cert, assertion_id)


def test_verify_element_tries_each_metadata_certificate_and_keys_are_loaded_once(
    test_idp: TestIdP, idp_keys: KeyPair, attacker_keys: KeyPair
) -> None:
    xml = response_xml(test_idp)
    genuine = base64.b64decode(idp_keys.cert_base64)
    other = base64.b64decode(attacker_keys.cert_base64)
    rollover = [b"not a certificate", other, genuine]  # garbage and a stranger's key first

    verified = XmlsecBackend().verify_element(tree(xml), ASSERTION, ids(xml)[1], rollover)

    assert verified.tag == f"{{{SAML}}}Assertion"
    assert verification_key(genuine) is verification_key(genuine)  # cached, not re-parsed
    with pytest.raises(SigverError, match="unusable metadata certificate"):
        verification_key(b"not a certificate")
    with pytest.raises(SignatureError, match="unusable metadata certificate.*does not verify"):
        XmlsecBackend().verify_element(tree(xml), ASSERTION, ids(xml)[1], rollover[:2])


def test_signed_metadata_is_verified(test_idp: TestIdP, cert_file: str) -> None:
    signed = test_idp.metadata_xml(signed=True)
    node_name = "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor"
    assert XmlsecBackend().validate_signature(signed, cert_file, "pem", node_name, None)
    with pytest.raises(SignatureError):  # what MetaDataExtern tries first for an EntityDescriptor
        XmlsecBackend().validate_signature(
            signed, cert_file, "pem", node_name.replace("Entity", "Entities"), None
        )


def _template_parts(signature: etree._Element, name: str) -> list[etree._Element]:
    """The ds:``name`` elements of a Signature template, in document order. By walking: lxml's
    tag-filtered ``find`` misses nodes libxmlsec created (their names are not in lxml's dictionary)."""
    return [node for node in signature.iter() if node.tag == f"{{{DS}}}{name}"]


def _c14n_method(signature: etree._Element) -> etree._Element:
    return _template_parts(signature, "CanonicalizationMethod")[0]


def _exc_c14n_transform(signature: etree._Element) -> etree._Element:
    return _template_parts(signature, "Transform")[-1]


def test_inclusive_namespaces_prefix_list_is_accepted(
    test_idp: TestIdP, idp_keys: KeyPair, cert_file: str
) -> None:
    """Okta, ADFS and Shibboleth give exclusive c14n its one parameter, ``<ec:InclusiveNamespaces
    PrefixList="xs"/>``, in CanonicalizationMethod and in the Reference's transform: it must verify."""
    xml = response_xml(test_idp, sign_assertion=False)
    assertion_id = ids(xml)[1]

    def prefix_list(signature: etree._Element) -> None:
        for node in (_c14n_method(signature), _exc_c14n_transform(signature)):
            xmlsec.template.transform_add_c14n_inclusive_namespaces(node, "xs")

    signed = xmlsec_sign(xml, assertion_id, rsa_key(idp_keys), edit=prefix_list)
    assert (
        len(tree(signed).findall(".//{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces"))
        == 2
    )
    assert backend_verify(signed, cert_file, assertion_id)
    # The ACS verifies with verify_element on its own parse (not pysaml2's response parser, whose
    # schema validation refuses InclusiveNamespaces in CanonicalizationMethod): end to end in
    # test_acs.py's test_okta_style_inclusive_namespaces_sign_in.
    genuine = [base64.b64decode(idp_keys.cert_base64)]
    assert (
        XmlsecBackend().verify_element(tree(signed), ASSERTION, assertion_id, genuine) is not None
    )


def test_reference_with_only_the_enveloped_transform_is_accepted(
    test_idp: TestIdP, sp: Saml2Client, idp_keys: KeyPair, cert_file: str
) -> None:
    """XML-DSig applies the CanonicalizationMethod after the transforms anyway; some IdPs (older
    Shibboleth, OneLogin) list the enveloped-signature transform alone."""
    xml = response_xml(test_idp, sign_assertion=False)
    assertion_id = ids(xml)[1]
    signed = xmlsec_sign(
        xml, assertion_id, rsa_key(idp_keys), transforms=(xmlsec.Transform.ENVELOPED,)
    )
    assert len(tree(signed).findall(f".//{{{DS}}}Transform")) == 1
    assert backend_verify(signed, cert_file, assertion_id)
    assert parse(sp, signed).name_id.text == "alice@acme.test"


# -- what must not pass --------------------------------------------------------------------------


def test_content_changed_after_signing_is_rejected(
    test_idp: TestIdP, sp: Saml2Client, cert_file: str
) -> None:
    xml = response_xml(test_idp)
    root = tree(xml)
    root.find(f".//{{{SAML}}}NameID").text = "mallory@acme.test"
    tampered = etree.tostring(root)
    with pytest.raises(REJECTED):
        parse(sp, tampered)
    with pytest.raises(SignatureError, match="does not verify"):
        backend_verify(tampered, cert_file, ids(xml)[1])


@pytest.mark.parametrize("claimed", ["attacker cert", "genuine IdP cert"])
def test_signature_by_another_key_is_rejected_whatever_keyinfo_says(
    test_idp: TestIdP,
    sp: Saml2Client,
    idp_keys: KeyPair,
    attacker_keys: KeyPair,
    cert_file: str,
    claimed: str,
) -> None:
    xml = response_xml(test_idp, sign_assertion=False)
    root = tree(xml)
    root.find(f".//{{{SAML}}}NameID").text = "mallory@acme.test"
    assertion_id = ids(xml)[1]
    forged = xmlsec_sign(
        etree.tostring(root), assertion_id, rsa_key(attacker_keys, with_cert=True), key_info=True
    )
    if claimed == "genuine IdP cert":
        forged_root = tree(forged)
        forged_root.find(f".//{{{DS}}}X509Certificate").text = idp_keys.cert_base64
        forged = etree.tostring(forged_root)
    in_keyinfo = "".join(tree(forged).find(f".//{{{DS}}}X509Certificate").text.split())
    assert in_keyinfo == (attacker_keys if claimed == "attacker cert" else idp_keys).cert_base64
    with pytest.raises(REJECTED):
        parse(sp, forged)
    with pytest.raises(SignatureError, match="does not verify"):
        backend_verify(forged, cert_file, assertion_id)


@pytest.mark.parametrize("secret", ["the metadata certificate", "a shared secret"])
def test_hmac_signature_is_rejected(
    test_idp: TestIdP, sp: Saml2Client, idp_keys: KeyPair, cert_file: str, secret: str
) -> None:
    xml = response_xml(test_idp, sign_assertion=False)
    assertion_id = ids(xml)[1]
    material = (
        idp_keys.cert_pem
        if secret == "the metadata certificate"
        else b"s3cret-padded-to-thirty-two-bytes-at-least"
    )
    key = xmlsec.Key.from_binary_data(xmlsec.KeyData.HMAC, material)
    forged = xmlsec_sign(xml, assertion_id, key, method=xmlsec.Transform.HMAC_SHA256)
    with pytest.raises(REJECTED):
        parse(sp, forged)
    with pytest.raises(SignatureError, match="hmac-sha256' is not allowed"):
        backend_verify(forged, cert_file, assertion_id)


@pytest.mark.parametrize(
    "prolog",
    [
        '<!DOCTYPE Response [<!ENTITY who "mallory@acme.test">]>',
        '<!DOCTYPE Response SYSTEM "http://127.0.0.1:9/evil.dtd">',
        '<!DOCTYPE Response [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
        "<!DOCTYPE Response>",
    ],
)
def test_doctype_and_entities_are_rejected_before_anything_else(
    test_idp: TestIdP, sp: Saml2Client, cert_file: str, prolog: str
) -> None:
    xml = response_xml(test_idp)
    body = xml.split("?>", 1)[1] if xml.startswith("<?xml") else xml
    with_dtd = f'<?xml version="1.0" encoding="UTF-8"?>{prolog}{body}'
    with pytest.raises(SignatureError, match="DOCTYPE"):
        backend_verify(with_dtd, cert_file, ids(xml)[1])
    with pytest.raises(SignatureError, match="DOCTYPE"):  # the UTF-16 text escapes the byte scan
        backend_verify(with_dtd.replace("UTF-8", "UTF-16").encode("utf-16"), cert_file, ids(xml)[1])
    with pytest.raises(
        (SignatureError, DefusedXmlException)
    ):  # defusedxml refuses entities before us
        parse(sp, with_dtd)


@pytest.mark.parametrize(
    "placement", ["copy in Extensions", "copy inside the evil assertion", "copy after it"]
)
def test_duplicate_id_signature_wrapping_is_rejected(
    test_idp: TestIdP, sp: Saml2Client, cert_file: str, placement: str
) -> None:
    """XSW: an evil assertion takes the signed one's ID; the signed original hides elsewhere."""
    xml = response_xml(test_idp)
    root = tree(xml)
    original = root.find(f"{{{SAML}}}Assertion")
    evil = copy.deepcopy(original)
    evil.find(f".//{{{SAML}}}NameID").text = "mallory@acme.test"
    original.addprevious(evil)
    root.remove(original)
    if placement == "copy in Extensions":
        extensions = etree.Element(f"{{{SAMLP}}}Extensions")
        root.find(f"{{{SAML}}}Issuer").addnext(extensions)
        extensions.append(original)
    elif placement == "copy inside the evil assertion":
        evil.find(f"{{{DS}}}Signature").append(etree.Element(f"{{{DS}}}Object"))
        evil.find(f"{{{DS}}}Signature")[-1].append(original)
    else:
        evil.addnext(original)
    wrapped = etree.tostring(root)
    with pytest.raises((*REJECTED, InvalidAssertion)):  # pysaml2 also refuses two assertions
        parse(sp, wrapped)
    with pytest.raises(SignatureError, match="carried 2 times"):
        backend_verify(wrapped, cert_file, original.get("ID"))


def test_unsigned_assertion_beside_a_hidden_signed_one_is_rejected(
    test_idp: TestIdP, sp: Saml2Client
) -> None:
    """XSW with a fresh ID: the signed original hides in Extensions; the one pysaml2 reads is unsigned."""
    root = tree(response_xml(test_idp))
    original = root.find(f"{{{SAML}}}Assertion")
    evil = copy.deepcopy(original)
    evil.set("ID", "id-evil")
    evil.remove(evil.find(f"{{{DS}}}Signature"))
    evil.find(f".//{{{SAML}}}NameID").text = "mallory@acme.test"
    original.addprevious(evil)
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    root.find(f"{{{SAML}}}Issuer").addnext(extensions)
    extensions.append(original)
    with pytest.raises(SigverError, match="Neither the response nor the assertions are signed"):
        parse(sp, etree.tostring(root))


@pytest.mark.parametrize("attribute", ["{http://www.w3.org/XML/1998/namespace}id", "Id"])
def test_id_shared_through_another_id_attribute_is_rejected(
    test_idp: TestIdP, cert_file: str, attribute: str
) -> None:
    """xmlsec resolves "#x" through any attribute whose local name is ID, Id or id (xml:id
    included): each is a carrier."""
    xml = response_xml(test_idp)
    root = tree(xml)
    assertion_id = root.find(f"{{{SAML}}}Assertion").get("ID")
    root.find(f"{{{SAML}}}Issuer").set(attribute, assertion_id)
    with pytest.raises(SignatureError, match="carried 2 times"):
        backend_verify(etree.tostring(root), cert_file, assertion_id)


@pytest.mark.parametrize("uri", ["#response", ""])
def test_reference_to_another_element_is_rejected(
    test_idp: TestIdP, sp: Saml2Client, idp_keys: KeyPair, cert_file: str, uri: str
) -> None:
    xml = response_xml(test_idp, sign_assertion=False)
    response_id, assertion_id = ids(xml)
    reference = f"#{response_id}" if uri == "#response" else uri
    forged = xmlsec_sign(
        xml, assertion_id, rsa_key(idp_keys), uri=reference
    )  # a valid signature, elsewhere
    with pytest.raises(REJECTED):
        parse(sp, forged)
    with pytest.raises(SignatureError, match="does not point at the signed element"):
        backend_verify(forged, cert_file, assertion_id)


def test_two_signature_children_are_rejected(
    test_idp: TestIdP, sp: Saml2Client, cert_file: str
) -> None:
    xml = response_xml(test_idp)
    root = tree(xml)
    signature = root.find(f"{{{SAML}}}Assertion/{{{DS}}}Signature")
    signature.addnext(copy.deepcopy(signature))
    doubled = etree.tostring(root)
    with pytest.raises(REJECTED):
        parse(sp, doubled)
    with pytest.raises(SignatureError, match="expected one ds:Signature child, found 2"):
        backend_verify(doubled, cert_file, ids(xml)[1])


def test_object_in_signature_is_rejected(test_idp: TestIdP, cert_file: str) -> None:
    xml = response_xml(test_idp)
    root = tree(xml)
    etree.SubElement(
        root.find(f"{{{SAML}}}Assertion/{{{DS}}}Signature"), f"{{{DS}}}Object"
    ).text = "unsigned"
    with pytest.raises(SignatureError, match="no ds:Object"):
        backend_verify(etree.tostring(root), cert_file, ids(xml)[1])


@pytest.mark.parametrize(
    ("c14n", "transforms"),
    [
        (xmlsec.Transform.C14N, (xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N)),
        (
            xmlsec.Transform.EXCL_C14N_COMMENTS,
            (xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N),
        ),
        (xmlsec.Transform.EXCL_C14N, (xmlsec.Transform.ENVELOPED, xmlsec.Transform.C14N)),
        (xmlsec.Transform.EXCL_C14N, (xmlsec.Transform.EXCL_C14N,)),
        (
            xmlsec.Transform.EXCL_C14N,
            (xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N_COMMENTS),
        ),
        (
            xmlsec.Transform.EXCL_C14N,
            (xmlsec.Transform.ENVELOPED, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.EXCL_C14N),
        ),
    ],
    ids=[
        "inclusive c14n",
        "exc-c14n with comments",
        "inclusive transform",
        "no enveloped",
        "comments transform",
        "three transforms",
    ],
)
def test_other_canonicalizations_and_transforms_are_rejected(
    test_idp: TestIdP, idp_keys: KeyPair, cert_file: str, c14n: Any, transforms: tuple[Any, ...]
) -> None:
    xml = response_xml(test_idp, sign_assertion=False)
    assertion_id = ids(xml)[1]
    signed = xmlsec_sign(xml, assertion_id, rsa_key(idp_keys), c14n=c14n, transforms=transforms)
    with pytest.raises(SignatureError, match=r"c14n|transforms"):
        backend_verify(signed, cert_file, assertion_id)


def test_id_shared_by_attributes_of_one_element_is_rejected(
    test_idp: TestIdP, cert_file: str
) -> None:
    xml = response_xml(test_idp)
    root = tree(xml)
    assertion = root.find(f"{{{SAML}}}Assertion")
    assertion.set("{http://www.w3.org/XML/1998/namespace}id", assertion.get("ID"))
    with pytest.raises(SignatureError, match="carried 2 times"):
        backend_verify(etree.tostring(root), cert_file, assertion.get("ID"))


def test_an_attribute_that_is_no_id_may_hold_the_same_value(
    test_idp: TestIdP, cert_file: str
) -> None:
    """Only ID, Id and id attributes are carriers: another attribute with the value is no
    duplicate (here on the unsigned Response, beside the signed assertion)."""
    xml = response_xml(test_idp)
    root = tree(xml)
    assertion_id = root.find(f"{{{SAML}}}Assertion").get("ID")
    root.set("Consent", assertion_id)
    assert backend_verify(etree.tostring(root), cert_file, assertion_id)


def test_comment_in_signed_name_id_cannot_truncate_it(test_idp: TestIdP, sp: Saml2Client) -> None:
    """CVE-2017-11427 style: exc-c14n ignores comments, so the signature survives one inserted into
    the NameID; what counts is that the SP then reads the whole signed text, not the part before it."""
    xml = test_idp.response_xml(sp_entity_id=SP_ID, acs_url=ACS, email="alice@acme.test.evil.test")
    root = tree(xml)
    name_id = root.find(f".//{{{SAML}}}NameID")
    name_id.text = "alice@acme.test"
    comment = etree.Comment("")
    comment.tail = ".evil.test"
    name_id.append(comment)
    assert parse(sp, etree.tostring(root)).name_id.text == "alice@acme.test.evil.test"


def test_wrong_element_type_for_the_id_is_rejected(test_idp: TestIdP, cert_file: str) -> None:
    xml = response_xml(test_idp, sign_response=True)
    response_id, assertion_id = ids(xml)
    assert backend_verify(xml, cert_file, response_id, node_name=RESPONSE)
    with pytest.raises(SignatureError, match="is not a"):
        backend_verify(xml, cert_file, response_id, node_name=ASSERTION)
    with pytest.raises(SignatureError, match="is not a"):
        backend_verify(xml, cert_file, assertion_id, node_name=RESPONSE)


def test_object_before_key_info_is_rejected(
    test_idp: TestIdP, idp_keys: KeyPair, cert_file: str
) -> None:
    """A ds:Object between SignatureValue and KeyInfo, where only a trailing one was tested. libxmlsec
    refuses this order too, but as "failed to verify": the message shows our shape check is the one
    that answers, before any key is used (a trailing Object, which xmlsec accepts, is the test above)."""
    xml = response_xml(test_idp, sign_assertion=False)
    assertion_id = ids(xml)[1]
    signed = xmlsec_sign(xml, assertion_id, rsa_key(idp_keys, with_cert=True), key_info=True)
    assert backend_verify(signed, cert_file, assertion_id)  # the control, before the Object
    root = tree(signed)
    signature = root.find(f"{{{SAML}}}Assertion/{{{DS}}}Signature")
    signature.find(f"{{{DS}}}KeyInfo").addprevious(etree.Element(f"{{{DS}}}Object"))
    assert [etree.QName(c).localname for c in signature] == [
        "SignedInfo",
        "SignatureValue",
        "Object",
        "KeyInfo",
    ]
    with pytest.raises(SignatureError, match="no ds:Object"):
        backend_verify(etree.tostring(root), cert_file, assertion_id)


@pytest.mark.parametrize("where", ["CanonicalizationMethod", "Reference transform"])
def test_canonicalization_parameter_other_than_inclusive_namespaces_is_rejected(
    test_idp: TestIdP, idp_keys: KeyPair, cert_file: str, where: str
) -> None:
    """Exclusive c14n has one parameter; anything else there (here a ds:XPath, which would select
    what is signed) is refused by our shape check before any key is tried. libxmlsec would refuse
    it too ("unexpected node"; it will not even sign with one), so the parameter is added after
    signing, and the message shows which check answered."""
    xml = response_xml(test_idp, sign_assertion=False)
    assertion_id = ids(xml)[1]
    root = tree(xmlsec_sign(xml, assertion_id, rsa_key(idp_keys)))
    signature = root.find(f"{{{SAML}}}Assertion/{{{DS}}}Signature")
    node = (
        _c14n_method(signature)
        if where == "CanonicalizationMethod"
        else _exc_c14n_transform(signature)
    )
    assert node.get("Algorithm") == "http://www.w3.org/2001/10/xml-exc-c14n#"
    etree.SubElement(node, f"{{{DS}}}XPath").text = "not(ancestor-or-self::saml:Attribute)"
    with pytest.raises(SignatureError, match="unexpected canonicalization parameters"):
        backend_verify(etree.tostring(root), cert_file, assertion_id)


def test_enveloped_transform_with_a_parameter_is_rejected(
    test_idp: TestIdP, idp_keys: KeyPair, cert_file: str
) -> None:
    """libxmlsec signs and verifies an enveloped-signature transform carrying a child (it ignores
    it): only our shape check refuses a transform that takes no parameters but was given one."""
    xml = response_xml(test_idp, sign_assertion=False)
    assertion_id = ids(xml)[1]

    def add_parameter(signature: etree._Element) -> None:
        enveloped = _template_parts(signature, "Transform")[0]
        assert enveloped.get("Algorithm") == "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
        etree.SubElement(enveloped, f"{{{DS}}}XPath").text = "true()"

    signed = xmlsec_sign(xml, assertion_id, rsa_key(idp_keys), edit=add_parameter)
    with pytest.raises(SignatureError, match="takes no parameters"):
        backend_verify(signed, cert_file, assertion_id)


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "hmac-sha256"])
def test_hmac_output_length_is_rejected(
    test_idp: TestIdP, sp: Saml2Client, idp_keys: KeyPair, cert_file: str, algorithm: str
) -> None:
    """``<ds:HMACOutputLength>`` truncates an HMAC (CVE-2009-0217: down to a few bits): no
    SignatureMethod may carry it, or any other parameter, even an algorithm we allow (RSA-SHA256)."""
    xml = response_xml(test_idp, sign_assertion=False)
    assertion_id = ids(xml)[1]

    def truncate(signature: etree._Element) -> None:
        method = _template_parts(signature, "SignatureMethod")[0]
        # 128 bits: libxmlsec itself refuses to sign below its floor of 80 (CVE-2009-0217's fix).
        etree.SubElement(method, f"{{{DS}}}HMACOutputLength").text = "128"

    if algorithm == "hmac-sha256":
        key = xmlsec.Key.from_binary_data(xmlsec.KeyData.HMAC, idp_keys.cert_pem)
        signed = xmlsec_sign(
            xml, assertion_id, key, method=xmlsec.Transform.HMAC_SHA256, edit=truncate
        )
        expected = "hmac-sha256' is not allowed"
    else:
        signed = xmlsec_sign(xml, assertion_id, rsa_key(idp_keys), edit=truncate)
        expected = "HMACOutputLength"
    assert tree(signed).find(f".//{{{DS}}}HMACOutputLength") is not None
    with pytest.raises(SignatureError, match=expected):
        backend_verify(signed, cert_file, assertion_id)
    with pytest.raises(REJECTED):
        parse(sp, signed)


# -- signing and encryption ----------------------------------------------------------------------


def test_signing_never_produces_sha1(test_idp: TestIdP, idp_keys: KeyPair, cert_file: str) -> None:
    from saml2.sigver import pre_signature_part
    from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

    unsigned = test_idp.response_xml(
        sp_entity_id=SP_ID, acs_url=ACS, email="a@acme.test", sign_assertion=False
    )
    root = tree(unsigned)
    assertion = root.find(f"{{{SAML}}}Assertion")
    template = pre_signature_part(
        assertion.get("ID"), sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1
    )
    assertion.find(f"{{{SAML}}}Issuer").addnext(tree(str(template)))
    signed = XmlsecBackend().sign_statement(
        etree.tostring(root), ASSERTION, str(test_idp.server.config.key_file), assertion.get("ID")
    )
    assert "rsa-sha1" not in signed and "#sha1" not in signed
    assert "rsa-sha256" in signed and "xmlenc#sha256" in signed
    assert backend_verify(signed, cert_file, assertion.get("ID"), accept_sha1=False)


@pytest.mark.parametrize(
    "call",
    [
        lambda backend: backend.encrypt("<a/>", "key.pem", "template.xml", "aes256-cbc"),
        lambda backend: backend.encrypt_assertion(
            "<a/>", "key.pem", "template.xml", "aes256-cbc", None
        ),
        lambda backend: backend.decrypt("<a/>", "key.pem"),
    ],
    ids=["encrypt", "encrypt_assertion", "decrypt"],
)
def test_encryption_is_not_supported(call: Any) -> None:
    with pytest.raises(SigverError, match="encrypted assertions are not supported"):
        call(XmlsecBackend())


# -- each check alone (benchmarks/mutation.py found these unguarded) ----------------------------


@pytest.mark.parametrize(
    ("method", "digest", "elliptic"),
    [
        (xmlsec.Transform.RSA_SHA256, xmlsec.Transform.SHA384, False),
        (xmlsec.Transform.RSA_SHA256, xmlsec.Transform.SHA512, False),
        (xmlsec.Transform.ECDSA_SHA384, xmlsec.Transform.SHA256, True),
        (xmlsec.Transform.ECDSA_SHA512, xmlsec.Transform.SHA256, True),
    ],
    ids=["digest sha384", "digest sha512", "ecdsa-sha384", "ecdsa-sha512"],
)
def test_every_listed_sha2_algorithm_verifies(
    test_idp: TestIdP, idp_keys: KeyPair, tmp_path: Path, method: Any, digest: Any, elliptic: bool
) -> None:
    keys = make_key_pair("EC IdP", elliptic=True) if elliptic else idp_keys
    (tmp_path / "signer.pem").write_bytes(keys.cert_pem)
    xml = response_xml(test_idp, sign_assertion=False)
    _, assertion_id = ids(xml)
    key = xmlsec.Key.from_memory(keys.key_pem, xmlsec.KeyFormat.PEM)
    signed = xmlsec_sign(xml, assertion_id, key, method=method, digest=digest)
    assert backend_verify(signed, str(tmp_path / "signer.pem"), assertion_id)


def test_the_id_must_be_carried_by_an_ID_attribute_of_the_element(
    test_idp: TestIdP, cert_file: str
) -> None:
    """The only element answering to the ID holds it as ``id``, not ``ID``: no target."""
    xml = response_xml(test_idp)
    root = tree(xml)
    assertion = root.find(f"{{{SAML}}}Assertion")
    assertion_id = assertion.attrib.pop("ID")
    assertion.set("id", assertion_id)
    with pytest.raises(SignatureError, match="no element with ID"):
        backend_verify(etree.tostring(root), cert_file, assertion_id)
    with pytest.raises(SignatureError, match="no element with ID"):
        backend_verify(xml, cert_file, "_an-id-nobody-carries")


def test_what_is_not_a_document_is_rejected(cert_file: str) -> None:
    with pytest.raises(DocumentRefused, match="no XML document given") as missing:
        XmlsecBackend().validate_signature(None, cert_file, "pem", ASSERTION, "_x")  # type: ignore[arg-type]
    assert missing.value.kind == "missing"
    with pytest.raises(DocumentRefused, match="not well-formed XML") as malformed:
        backend_verify("<Response><unclosed></Response>", cert_file, "_x")
    assert malformed.value.kind == "malformed"
    assert str(malformed.value).startswith("XML signature rejected: not well-formed XML (")
    # An undeclared entity cannot occur without a DTD (which is refused): it is not well-formed.
    with pytest.raises(SignatureError, match="not well-formed XML"):
        backend_verify("<Response>&who;</Response>", cert_file, "_x")


def test_documents_nested_deeper_than_libxml2_allows_are_rejected(cert_file: str) -> None:
    """huge_tree stays off: a document 300 elements deep (libxml2's default limit is 256)
    is refused by the parser rather than walked."""
    deep = "<a>" * 300 + "</a>" * 300
    with pytest.raises(SignatureError, match="not well-formed XML"):
        backend_verify(deep, cert_file, "_x")


def test_signature_children_out_of_order_are_rejected(test_idp: TestIdP, cert_file: str) -> None:
    xml = response_xml(test_idp)
    root = tree(xml)
    signature = root.find(f"{{{SAML}}}Assertion/{{{DS}}}Signature")
    signature.insert(0, signature.find(f"{{{DS}}}SignatureValue"))  # SignatureValue, SignedInfo
    with pytest.raises(SignatureError, match="must hold SignedInfo, SignatureValue"):
        backend_verify(etree.tostring(root), cert_file, ids(xml)[1])


def test_signed_info_with_two_references_is_rejected(test_idp: TestIdP, cert_file: str) -> None:
    xml = response_xml(test_idp)
    root = tree(xml)
    reference = root.find(
        f"{{{SAML}}}Assertion/{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference"
    )
    reference.addnext(copy.deepcopy(reference))
    with pytest.raises(SignatureError, match="exactly one Reference"):
        backend_verify(etree.tostring(root), cert_file, ids(xml)[1])


@pytest.mark.parametrize("change", ["no Transforms", "DigestValue first"])
def test_reference_children_other_than_transforms_digest_method_and_value_are_rejected(
    test_idp: TestIdP, cert_file: str, change: str
) -> None:
    xml = response_xml(test_idp)
    root = tree(xml)
    reference = root.find(
        f"{{{SAML}}}Assertion/{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference"
    )
    if change == "no Transforms":
        reference.remove(reference.find(f"{{{DS}}}Transforms"))
    else:
        reference.insert(0, reference.find(f"{{{DS}}}DigestValue"))
    with pytest.raises(
        SignatureError, match="Reference must hold Transforms, DigestMethod and DigestValue"
    ):
        backend_verify(etree.tostring(root), cert_file, ids(xml)[1])


def test_a_transform_under_another_element_name_is_rejected(
    test_idp: TestIdP, cert_file: str
) -> None:
    """An element that is not ds:Transform in ds:Transforms, even one naming an allowed algorithm."""
    xml = response_xml(test_idp)
    root = tree(xml)
    transforms = root.find(
        f"{{{SAML}}}Assertion/{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference/"
        f"{{{DS}}}Transforms"
    )
    for transform in list(transforms):
        transform.tag = f"{{{DS}}}Other"
    with pytest.raises(SignatureError, match="transforms must be enveloped-signature"):
        backend_verify(etree.tostring(root), cert_file, ids(xml)[1])


def test_a_whole_document_signature_is_accepted_on_the_root_only_when_verifying(
    test_idp: TestIdP, idp_keys: KeyPair, cert_file: str
) -> None:
    """Reference URI="" (the whole document) verifies on the root, as some signed metadata is
    signed; a signature we make always names its element's ID."""
    xml = response_xml(test_idp, sign_assertion=False)
    response_id, _ = ids(xml)
    root = tree(xml)
    signature = xmlsec.template.create(
        root, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.RSA_SHA256, ns="ds"
    )
    root.find(f"{{{SAML}}}Issuer").addnext(signature)
    reference = xmlsec.template.add_reference(signature, xmlsec.Transform.SHA256, uri="")
    xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
    template = etree.tostring(root)
    context = xmlsec.SignatureContext()
    context.key = rsa_key(idp_keys)
    context.sign(signature)
    assert backend_verify(etree.tostring(root), cert_file, response_id, RESPONSE)
    with pytest.raises(SignatureError, match="does not point at the signed element"):
        XmlsecBackend().sign_statement(template, RESPONSE, idp_keys.key_pem, response_id)


def test_certificates_are_read_from_a_file_pem_base64_or_der(
    idp_keys: KeyPair, cert_file: str
) -> None:
    der = base64.b64decode(idp_keys.cert_base64)
    for given in (
        cert_file,
        idp_keys.cert_pem.decode(),
        idp_keys.cert_pem,
        idp_keys.cert_base64,
        idp_keys.cert_base64.encode(),
        der,
    ):
        assert load_certificate_der(given) == der
    with pytest.raises(SigverError, match="not a certificate"):
        load_certificate_der("not a certificate")
    with pytest.raises(SignatureError, match="unusable metadata certificate"):
        XmlsecBackend().validate_signature(
            "<a ID='_x'/>", "bm90IGEgY2VydGlmaWNhdGU=", "pem", "a", "_x"
        )


def test_raw_der_that_looks_partly_like_base64_is_read_as_der() -> None:
    """Base64 is decoded strictly: a lenient decoder drops DER's non-base64 bytes and, when
    what is left happens to decode, reads garbage instead of falling back to DER."""
    for attempt in range(50):
        der = base64.b64decode(make_key_pair(f"DER {attempt}").cert_base64)
        kept = bytes(b for b in der if chr(b).isalnum() or chr(b) in "+/")
        if len(kept) % 4 == 0:
            break
    else:
        pytest.fail("no certificate whose base64-alphabet bytes decode leniently")
    assert load_certificate_der(der) == der


def test_private_keys_are_read_from_bytes_pem_text_or_a_file(
    idp_keys: KeyPair, tmp_path: Path
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(idp_keys.key_pem)
    for given in (idp_keys.key_pem, idp_keys.key_pem.decode("ascii"), str(path)):
        assert read_private_key(given) == idp_keys.key_pem


def _unsigned_assertion_with_template(idp: TestIdP) -> tuple[bytes, str]:
    from saml2.sigver import pre_signature_part

    root = tree(
        idp.response_xml(sp_entity_id=SP_ID, acs_url=ACS, email="a@acme.test", sign_assertion=False)
    )
    assertion = root.find(f"{{{SAML}}}Assertion")
    assertion.find(f"{{{SAML}}}Issuer").addnext(tree(str(pre_signature_part(assertion.get("ID")))))
    return etree.tostring(root), assertion.get("ID")


@pytest.mark.parametrize(
    ("key_file", "message"),
    [("", "no signing key configured"), (b"not a key", "cannot load the signing key")],
)
def test_signing_without_a_usable_key_is_refused(
    test_idp: TestIdP, key_file: Any, message: str
) -> None:
    statement, assertion_id = _unsigned_assertion_with_template(test_idp)
    with pytest.raises(SignatureError, match=message):
        XmlsecBackend().sign_statement(statement, ASSERTION, key_file, assertion_id)


def test_signing_with_a_key_of_another_type_than_the_template_fails_cleanly(
    test_idp: TestIdP,
) -> None:
    statement, assertion_id = _unsigned_assertion_with_template(test_idp)  # an RSA-SHA256 template
    ec_key = make_key_pair("EC signer", elliptic=True).key_pem
    with pytest.raises(SignatureError, match="signing failed"):
        XmlsecBackend().sign_statement(statement, ASSERTION, ec_key, assertion_id)


def test_a_signed_statement_keeps_its_declaration_and_its_characters(
    test_idp: TestIdP, cert_file: str
) -> None:
    statement, assertion_id = _unsigned_assertion_with_template(test_idp)
    key = test_idp.server.config.key_file
    body = statement.decode().replace("a@acme.test", "zoë@acme.test")
    declared = XmlsecBackend().sign_statement(
        "<?xml version='1.0' encoding='UTF-8'?>\n" + body, ASSERTION, str(key), assertion_id
    )
    bare = XmlsecBackend().sign_statement(body.encode(), ASSERTION, str(key), assertion_id)
    bare_text = XmlsecBackend().sign_statement(body, ASSERTION, str(key), assertion_id)
    declared_bytes = XmlsecBackend().sign_statement(
        b"<?xml version='1.0' encoding='UTF-8'?>\n" + body.encode(),
        ASSERTION,
        str(key),
        assertion_id,
    )
    assert declared.startswith("<?xml version='1.0' encoding='UTF-8'?>")
    assert declared_bytes.startswith("<?xml version='1.0' encoding='UTF-8'?>")
    for undeclared in (bare, bare_text):
        assert undeclared.startswith("<") and not undeclared.startswith("<?xml")
    assert (
        "zoë@acme.test" in declared and "zoë@acme.test" in bare
    )  # UTF-8, not character references
    assert backend_verify(declared, cert_file, assertion_id)


def test_the_backend_reports_libxmlsec_version() -> None:
    version = XmlsecBackend().version
    assert version == ".".join(str(n) for n in xmlsec.get_libxmlsec_version())
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)


def test_no_metadata_certificate_means_no_verification(test_idp: TestIdP) -> None:
    xml = response_xml(test_idp)
    with pytest.raises(SignatureError, match="metadata has no signing certificate"):
        XmlsecBackend().verify_element(tree(xml), ASSERTION, ids(xml)[1], [])


def test_each_certificate_failure_is_reported(test_idp: TestIdP, attacker_keys: KeyPair) -> None:
    xml = response_xml(test_idp)
    certificates = [b"not a certificate", base64.b64decode(attacker_keys.cert_base64)]
    with pytest.raises(
        SignatureError, match=r"unusable metadata certificate \(.*\); signature does not verify"
    ):
        XmlsecBackend().verify_element(tree(xml), ASSERTION, ids(xml)[1], certificates)


# -- the three layers against DTDs, each alone ---------------------------------------------------


def test_the_parser_alone_expands_no_entity_and_loads_no_dtd(tmp_path: Path) -> None:
    """What refuse_dtd and the byte scan would stop never reaches this parser; if it did, the
    parser would still neither expand an entity nor load a DTD, from a file or the network."""
    internal = etree.fromstring(b'<!DOCTYPE r [<!ENTITY e "expanded">]><r>&e;</r>', safe_parser())
    assert "expanded" not in "".join(internal.itertext())
    (tmp_path / "evil.dtd").write_text('<!ENTITY e "from the file">')
    from_file = etree.fromstring(
        f'<!DOCTYPE r SYSTEM "{(tmp_path / "evil.dtd").as_uri()}"><r>&e;</r>'.encode(),
        safe_parser(),
    )
    assert from_file.getroottree().docinfo.externalDTD is None
    assert "from the file" not in "".join(from_file.itertext())

    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY e "from the network">')

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/evil.dtd"
        etree.fromstring(f'<!DOCTYPE r SYSTEM "{url}"><r>&e;</r>'.encode(), safe_parser())
    finally:
        server.shutdown()
        server.server_close()
    assert requests == []


def test_the_parser_alone_keeps_libxml2s_depth_limit() -> None:
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(("<a>" * 300 + "</a>" * 300).encode(), safe_parser())


@pytest.mark.parametrize("document", [b"<!DOCTYPE r><r/>", b'<!DOCTYPE r [<!ENTITY e "x">]><r/>'])
def test_a_parsed_document_with_a_doctype_is_refused(document: bytes) -> None:
    """The check after parsing, alone: what a byte scan misses (UTF-16) still has a DOCTYPE."""
    with pytest.raises(DocumentRefused, match="DOCTYPE") as refused:
        refuse_dtd(etree.fromstring(document, safe_parser()).getroottree())
    assert refused.value.kind == "dtd"


def test_a_parsed_document_holding_an_entity_reference_is_refused() -> None:
    root = etree.Element("r")
    root.append(etree.Entity("e"))  # what resolve_entities=False leaves where an entity was
    with pytest.raises(DocumentRefused, match="entity reference") as refused:
        refuse_dtd(root.getroottree())
    assert refused.value.kind == "dtd"
    refuse_dtd(etree.fromstring(b"<r>plain &amp; text</r>").getroottree())  # predefined: fine


@pytest.mark.parametrize(
    "document", [b"<!DOCTYPE r><r/>", b"<!doctype r><r/>", b"<r><!-- <!ENTITY --></r>"]
)
def test_the_byte_scan_alone_refuses_any_declaration(document: bytes, cert_file: str) -> None:
    """Before libxml2 sees the bytes: even inside a comment, in any case."""
    with pytest.raises(DocumentRefused, match="DOCTYPE or entity declaration") as refused:
        parse_xml(document)
    assert refused.value.kind == "dtd"


@pytest.mark.parametrize(
    ("method", "digest"),
    [
        (xmlsec.Transform.RSA_SHA1, xmlsec.Transform.SHA256),
        (xmlsec.Transform.RSA_SHA256, xmlsec.Transform.SHA1),
    ],
    ids=["rsa-sha1 signature", "sha1 digest"],
)
def test_libxmlsec_alone_refuses_what_the_backend_does_not_accept(
    test_idp: TestIdP, idp_keys: KeyPair, method: Any, digest: Any
) -> None:
    """Behind the shape check, the xmlsec context enables only the accepted algorithms: with
    SHA-1 turned off, a SHA-1 signature or digest fails in libxmlsec itself."""
    xml = response_xml(test_idp, sign_assertion=False)
    assertion_id = ids(xml)[1]
    root = tree(xmlsec_sign(xml, assertion_id, rsa_key(idp_keys), method=method, digest=digest))
    assertion = root.find(f"{{{SAML}}}Assertion")
    public_key = verification_key(base64.b64decode(idp_keys.cert_base64))

    def verify(backend: XmlsecBackend) -> None:
        context = backend.context_for(public_key)
        context.register_id(assertion, "ID")
        context.verify(assertion.find(f"{{{DS}}}Signature"))

    verify(XmlsecBackend(accept_sha1=True))  # the control
    with pytest.raises(xmlsec.Error):
        verify(XmlsecBackend(accept_sha1=False))
