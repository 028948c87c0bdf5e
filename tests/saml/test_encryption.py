"""XML Encryption of assertions: real pysaml2 IdP responses, real keys, libxmlsec as the other side.

Cipher texts that an honest IdP would never send (3DES, odd plaintexts, a bad RSA 1.5 padding) are
made with python-xmlsec (libxmlsec, ``xmlsec_encrypt``) or ``cryptography`` directly, so the
refusals never depend on our own encryptor producing them.
"""

from __future__ import annotations

import base64
import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xmlsec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from saml2 import BINDING_HTTP_POST
from saml2.saml import AUTHN_PASSWORD_PROTECTED, NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.sigver import DecryptError, EncryptError, SignatureError, pre_encryption_part

from webwork_sso_middleware.errors import WebworkSSOError
from webwork_sso_middleware.saml import encryption
from webwork_sso_middleware.saml.crypto import XmlsecBackend, load_certificate_der, parse_xml
from webwork_sso_middleware.saml.encrypting import EncryptingBackend, Encryption, encrypt_assertion
from webwork_sso_middleware.saml.encryption import (
    AES128_CBC,
    AES128_GCM,
    AES192_CBC,
    AES192_GCM,
    AES256_CBC,
    AES256_GCM,
    MGF1_SHA256,
    RSA_1_5,
    RSA_OAEP,
    RSA_OAEP_MGF1P,
    SHA256,
    DecryptionRefused,
    decrypt_assertion,
)
from webwork_sso_middleware.saml.entities import make_client

from ..constants import DS, SAML
from .conftest import ACS, SP_ID
from .idp import KeyPair, TestIdP, make_key_pair, pysaml2_sp_config

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
XENC = "http://www.w3.org/2001/04/xmlenc#"
ASSERTION = f"{SAML}:Assertion"
RESPONSE = f"{SAMLP}:Response"
EA = f"{{{SAML}}}EncryptedAssertion"
CONTENTS = [AES128_CBC, AES192_CBC, AES256_CBC, AES128_GCM, AES192_GCM, AES256_GCM]
# (key transport, OAEP digest, MGF): every combination the module doc lists.
TRANSPORTS = [
    (RSA_OAEP_MGF1P, encryption.SHA1, None),
    (RSA_OAEP_MGF1P, SHA256, None),
    (RSA_OAEP, encryption.SHA1, None),
    (RSA_OAEP, SHA256, MGF1_SHA256),
    (RSA_1_5, encryption.SHA1, None),
]
EMAIL = "alice@acme.test"


@pytest.fixture(scope="module")
def sp_keys() -> KeyPair:
    return make_key_pair("SP encryption")


@pytest.fixture(scope="module")
def other_keys() -> KeyPair:
    return make_key_pair("Another SP")


def refused(kind: str) -> Any:
    return pytest.raises(DecryptionRefused, check=lambda error: error.kind == kind)


def idp_der(test_idp: TestIdP) -> list[bytes]:
    return [load_certificate_der(test_idp.keys.cert_pem)]


def encrypted_response(test_idp: TestIdP, **options: Any) -> etree._Element:
    """A Response from the test IdP (assertion signed unless told), parsed; its root."""
    options = {"sign_assertion": True, **options}
    xml = test_idp.response_xml(sp_entity_id=SP_ID, acs_url=ACS, email=EMAIL, **options)
    return parse_xml(xml).getroot()


def the_encrypted(root: etree._Element) -> etree._Element:
    found = root.findall(EA)
    assert len(found) == 1 and root.find(f"{{{SAML}}}Assertion") is None
    return found[0]


def reparsed(element: etree._Element) -> etree._Element:
    """The EncryptedAssertion of a fresh parse of ``element``'s document (after editing it)."""
    root = parse_xml(etree.tostring(element.getroottree())).getroot()
    return root if root.tag == EA else the_encrypted(root)


def name_id(assertion: etree._Element) -> str | None:
    return assertion.findtext(f"{{{SAML}}}Subject/{{{SAML}}}NameID")


def xmlsec_encrypt(
    plaintext: bytes,
    certificate_pem: bytes,
    *,
    content: Any = xmlsec.Transform.AES128_GCM,
    transport: Any = xmlsec.Transform.RSA_OAEP,
    bits: int = 128,
    key_data: Any = xmlsec.KeyData.AES,
) -> etree._Element:
    """An EncryptedAssertion of any plaintext, made by libxmlsec inside a Response."""
    root = etree.fromstring(
        f'<samlp:Response xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="r">'.encode()
        + b"<saml:EncryptedAssertion/></samlp:Response>"
    )
    holder = root.find(EA)
    data = xmlsec.template.encrypted_data_create(
        holder, content, type=xmlsec.EncryptionType.ELEMENT, ns="xenc"
    )
    holder.append(data)
    xmlsec.template.encrypted_data_ensure_cipher_value(data)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(data, ns="ds")
    xmlsec.template.encrypted_data_ensure_cipher_value(
        xmlsec.template.add_encrypted_key(key_info, transport)
    )
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(certificate_pem, xmlsec.KeyFormat.CERT_PEM))
    context_ = xmlsec.EncryptionContext(manager)
    context_.key = xmlsec.Key.generate(key_data, bits, xmlsec.KeyDataType.SESSION)
    context_.encrypt_binary(data, plaintext)
    return reparsed(holder)


def xmlsec_decrypt(encrypted: etree._Element, key_pem: bytes) -> etree._Element:
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(key_pem, xmlsec.KeyFormat.PEM))
    return xmlsec.EncryptionContext(manager).decrypt(encrypted.find(f"{{{XENC}}}EncryptedData"))


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("content", CONTENTS, ids=lambda uri: uri.rpartition("#")[2])
@pytest.mark.parametrize(
    ("transport", "digest", "mgf"),
    TRANSPORTS,
    ids=["mgf1p", "mgf1p-sha256", "oaep11", "oaep11-sha256", "rsa-1_5"],
)
def test_every_algorithm_pair_round_trips_and_the_signature_verifies_after(
    test_idp: TestIdP, sp_keys: KeyPair, transport: str, digest: str, mgf: str | None, content: str
) -> None:
    choice = Encryption(
        sp_keys.cert_pem, key_transport=transport, content=content, oaep_digest=digest, oaep_mgf=mgf
    )
    root = encrypted_response(test_idp, encryption=choice)
    encrypted = the_encrypted(root)
    methods = [m.get("Algorithm") for m in encrypted.iter(f"{{{XENC}}}EncryptionMethod")]
    assert methods == [content, transport]  # the options are honoured, not defaults
    assert EMAIL.encode() not in etree.tostring(root)

    assertion = decrypt_assertion(encrypted, [sp_keys.key_pem])

    assert name_id(assertion) == EMAIL
    new_root = assertion.getroottree().getroot()
    assert assertion.getparent() is new_root and new_root.find(EA) is None
    assert root.find(EA) is encrypted  # the caller's document is left as it was
    verified = XmlsecBackend().verify_element(
        new_root, ASSERTION, assertion.get("ID"), idp_der(test_idp)
    )
    assert verified is assertion


@pytest.mark.parametrize("transport", [RSA_OAEP_MGF1P, RSA_1_5])
@pytest.mark.parametrize("placement", ["key_info", "sibling"])
def test_both_encrypted_key_placements_decrypt(
    test_idp: TestIdP, sp_keys: KeyPair, placement: Any, transport: str
) -> None:
    choice = Encryption(sp_keys.cert_pem, key_transport=transport, key_placement=placement)
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=choice))
    inside = encrypted.findall(f"{{{XENC}}}EncryptedData/{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey")
    beside = encrypted.findall(f"{{{XENC}}}EncryptedKey")
    assert (len(inside), len(beside)) == ((1, 0) if placement == "key_info" else (0, 1))
    if placement == "sibling":
        pointer = encrypted.find(f".//{{{DS}}}RetrievalMethod")
        assert pointer is not None and pointer.get("URI") == "#" + beside[0].get("Id")
    assert name_id(decrypt_assertion(encrypted, [sp_keys.key_pem])) == EMAIL


def test_a_sibling_key_without_retrieval_method_decrypts(
    test_idp: TestIdP, sp_keys: KeyPair
) -> None:
    choice = Encryption(sp_keys.cert_pem, key_placement="sibling")
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=choice))
    key_info = encrypted.find(f".//{{{DS}}}KeyInfo")
    key_info.remove(key_info.find(f"{{{DS}}}RetrievalMethod"))
    assert name_id(decrypt_assertion(reparsed(encrypted), [sp_keys.key_pem])) == EMAIL


def test_a_key_for_another_recipient_beside_ours_is_passed_over(
    test_idp: TestIdP, sp_keys: KeyPair, other_keys: KeyPair
) -> None:
    # Shibboleth encrypts the content key once per recipient, each EncryptedKey beside the data.
    choice = Encryption(sp_keys.cert_pem, key_placement="sibling")
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=choice))
    theirs = Encryption(other_keys.cert_pem, key_placement="sibling")
    foreign = the_encrypted(encrypted_response(test_idp, encryption=theirs))
    encrypted.find(f"{{{XENC}}}EncryptedData").addnext(foreign.find(f"{{{XENC}}}EncryptedKey"))
    assert len(encrypted.findall(f"{{{XENC}}}EncryptedKey")) == 2
    assert name_id(decrypt_assertion(reparsed(encrypted), [sp_keys.key_pem])) == EMAIL


@pytest.mark.parametrize(
    ("content", "transport", "bits"),
    [
        (xmlsec.Transform.AES128_GCM, xmlsec.Transform.RSA_OAEP, 128),
        (xmlsec.Transform.AES256_GCM, xmlsec.Transform.RSA_PKCS1, 256),
        (xmlsec.Transform.AES128, xmlsec.Transform.RSA_OAEP, 128),
        (xmlsec.Transform.AES256, xmlsec.Transform.RSA_PKCS1, 256),
    ],
    ids=["gcm-oaep", "gcm-rsa15", "cbc-oaep", "cbc-rsa15"],
)
def test_libxmlsec_cipher_text_decrypts_in_its_namespace_context(
    sp_keys: KeyPair, content: Any, transport: Any, bits: int
) -> None:
    # libxmlsec parses the plaintext in the node's context: the "saml" prefix is declared only on
    # the Response, as IdPs that serialize the bare element send it.
    encrypted = xmlsec_encrypt(
        b'<saml:Assertion ID="_a1" Version="2.0"><saml:Issuer>idp</saml:Issuer></saml:Assertion>',
        sp_keys.cert_pem,
        content=content,
        transport=transport,
        bits=bits,
    )
    assertion = decrypt_assertion(encrypted, [sp_keys.key_pem])
    assert assertion.tag == f"{{{SAML}}}Assertion" and assertion.get("ID") == "_a1"
    assert assertion.findtext(f"{{{SAML}}}Issuer") == "idp"


@pytest.mark.parametrize("content", [AES128_CBC, AES256_GCM])
@pytest.mark.parametrize("transport", [RSA_OAEP_MGF1P, RSA_1_5])
def test_libxmlsec_decrypts_what_we_encrypt(
    test_idp: TestIdP, sp_keys: KeyPair, transport: str, content: str
) -> None:
    choice = Encryption(sp_keys.cert_pem, key_transport=transport, content=content)
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=choice))
    decrypted = xmlsec_decrypt(encrypted, sp_keys.key_pem)
    assert decrypted.tag == f"{{{SAML}}}Assertion" and name_id(decrypted) == EMAIL


def test_a_root_encrypted_assertion_decrypts_to_a_root_assertion(sp_keys: KeyPair) -> None:
    plain = f'<saml:Assertion xmlns:saml="{SAML}" ID="_r" Version="2.0"/>'
    encrypted = parse_xml(etree.tostring(encrypt_assertion(plain, sp_keys.cert_pem))).getroot()
    assertion = decrypt_assertion(encrypted, [sp_keys.key_pem])
    assert assertion.getparent() is None and assertion.get("ID") == "_r"


def test_a_twin_of_the_decrypted_assertion_is_in_the_same_tree(
    test_idp: TestIdP, sp_keys: KeyPair
) -> None:
    # The decrypted Assertion lands in the Response's document, so a plaintext copy with its ID
    # elsewhere (a wrapping attack across the two forms) is seen by the signature check.
    root = encrypted_response(test_idp, encryption=Encryption(sp_keys.cert_pem))
    original = encrypted_response(test_idp)
    twin = original.find(f"{{{SAML}}}Assertion")
    the_encrypted(root).addnext(copy.deepcopy(twin))
    encrypted = parse_xml(etree.tostring(root)).getroot().find(EA)
    assertion = decrypt_assertion(encrypted, [sp_keys.key_pem])
    twin_copy = assertion.getroottree().getroot().findall(f"{{{SAML}}}Assertion")
    assert len(twin_copy) == 2
    twin_copy[1].set("ID", assertion.get("ID"))
    with pytest.raises(SignatureError, match="carried 2 times"):
        XmlsecBackend().verify_element(
            assertion.getroottree().getroot(), ASSERTION, assertion.get("ID"), idp_der(test_idp)
        )


# -- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", [RSA_OAEP_MGF1P, RSA_1_5])
def test_the_right_key_among_several_opens_it_and_none_of_the_others_does(
    test_idp: TestIdP, sp_keys: KeyPair, other_keys: KeyPair, transport: str
) -> None:
    choice = Encryption(sp_keys.cert_pem, key_transport=transport)
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=choice))
    third = make_key_pair("Third")
    rollover = [other_keys.key_pem, sp_keys.key_pem, third.key_pem]
    assert name_id(decrypt_assertion(encrypted, rollover)) == EMAIL
    with refused("wrong_key") as caught:
        decrypt_assertion(encrypted, [other_keys.key_pem, third.key_pem])
    assert caught.value.reason == "none of the SP keys decrypts the assertion"


def test_unusable_keys_are_skipped_and_none_at_all_is_a_wrong_key(
    test_idp: TestIdP, sp_keys: KeyPair
) -> None:
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=Encryption(sp_keys.cert_pem)))
    elliptic = make_key_pair("EC", elliptic=True).key_pem
    assert name_id(decrypt_assertion(encrypted, [b"junk", elliptic, sp_keys.key_pem])) == EMAIL
    with refused("wrong_key"):
        decrypt_assertion(encrypted, [b"junk", elliptic])
    with refused("wrong_key"):
        decrypt_assertion(encrypted, [])


def _set_key_cipher(encrypted: etree._Element, value: bytes) -> etree._Element:
    encrypted.find(f".//{{{XENC}}}EncryptedKey//{{{XENC}}}CipherValue").text = base64.b64encode(
        value
    ).decode()
    return reparsed(encrypted)


@pytest.mark.parametrize("content", [AES128_CBC, AES256_GCM])
def test_a_bad_rsa_1_5_padding_looks_exactly_like_a_wrong_key(
    test_idp: TestIdP, sp_keys: KeyPair, other_keys: KeyPair, content: str
) -> None:
    """Bleichenbacher: a padding failure and a key of the wrong length end as a wrong key does."""
    choice = Encryption(sp_keys.cert_pem, key_transport=RSA_1_5, content=content)
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=choice))
    with refused("wrong_key") as wrong_key:
        decrypt_assertion(encrypted, [other_keys.key_pem])
    public = sp_keys.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    short_key = public.encrypt(os.urandom(5), padding.PKCS1v15())  # valid padding, 5-byte key
    for cipher in (os.urandom(256), short_key):
        with refused("wrong_key") as bad_padding:
            decrypt_assertion(_set_key_cipher(copy.deepcopy(encrypted), cipher), [sp_keys.key_pem])
        assert str(bad_padding.value) == str(wrong_key.value)


def test_a_bad_rsa_1_5_padding_takes_the_same_path_as_a_good_one(
    test_idp: TestIdP, sp_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The content is decrypted (with a random key) even when the padding fails: no early exit
    whose timing would tell a padding failure from a content failure."""
    choice = Encryption(sp_keys.cert_pem, key_transport=RSA_1_5, content=AES256_GCM)
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=choice))
    keys_used: list[bytes] = []
    real = encryption._open_content

    def probe(content: Any, key: bytes, cipher: bytes) -> bytes | None:
        keys_used.append(key)
        return real(content, key, cipher)

    monkeypatch.setattr(encryption, "_open_content", probe)
    private = serialization.load_pem_private_key(sp_keys.key_pem, None)
    # A leading zero byte keeps the number below the modulus (a larger one is refused before
    # any padding is looked at, which is not the path this test is about).
    cipher = b"\x00" + os.urandom(255)
    # OpenSSL 3.2+ answers a bad padding with a pseudo-random message (implicit rejection):
    # take one whose answer is not by chance 32 bytes long, so only our substitute is at play.
    while len(private.decrypt(cipher, padding.PKCS1v15())) == 32:  # type: ignore[union-attr]
        cipher = b"\x00" + os.urandom(255)
    bad = _set_key_cipher(copy.deepcopy(encrypted), cipher)
    for _ in range(2):
        with refused("wrong_key"):
            decrypt_assertion(bad, [sp_keys.key_pem])
    assert [len(key) for key in keys_used] == [32, 32]
    assert keys_used[0] != keys_used[1]  # a fresh random key each time, never a fixed one


def test_an_oaep_key_that_does_not_unwrap_is_a_wrong_key(
    test_idp: TestIdP, sp_keys: KeyPair
) -> None:
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=Encryption(sp_keys.cert_pem)))
    with refused("wrong_key"):
        decrypt_assertion(_set_key_cipher(encrypted, os.urandom(256)), [sp_keys.key_pem])


# -- malformed ---------------------------------------------------------------------------------


def _content_value(encrypted: etree._Element) -> etree._Element:
    return encrypted.find(f"{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")


def _truncate_content(encrypted: etree._Element, keep: int) -> None:
    value = _content_value(encrypted)
    value.text = base64.b64encode(base64.b64decode(value.text)[:keep]).decode()


def _remove(path: str) -> Callable[[etree._Element], None]:
    def edit(encrypted: etree._Element) -> None:
        found = encrypted.find(path)
        found.getparent().remove(found)

    return edit


def _bad_base64(encrypted: etree._Element) -> None:
    _content_value(encrypted).text = "not*base64!"


def _truncate_key(encrypted: etree._Element) -> None:
    value = encrypted.find(f".//{{{XENC}}}EncryptedKey//{{{XENC}}}CipherValue")
    value.text = value.text.strip()[:200]


def _cipher_reference(encrypted: etree._Element) -> None:
    data = encrypted.find(f"{{{XENC}}}EncryptedData/{{{XENC}}}CipherData")
    data[:] = [etree.Element(f"{{{XENC}}}CipherReference", URI="http://attacker.test/x")]


def _dangling_retrieval(encrypted: etree._Element) -> None:
    encrypted.find(f".//{{{DS}}}RetrievalMethod").set("URI", "#nowhere")


def _content_type(encrypted: etree._Element) -> None:
    encrypted.find(f"{{{XENC}}}EncryptedData").set("Type", XENC + "Content")


def _extra_child(encrypted: etree._Element) -> None:
    encrypted.append(etree.Element(f"{{{SAML}}}Assertion"))


@pytest.mark.parametrize(
    ("placement", "edit"),
    [
        ("key_info", lambda e: _truncate_content(e, 40)),  # CBC: not whole blocks
        ("key_info", lambda e: _truncate_content(e, 20)),  # shorter than IV + one block
        ("key_info", _bad_base64),
        ("key_info", _truncate_key),
        ("key_info", _remove(f"{{{XENC}}}EncryptedData/{{{XENC}}}CipherData")),
        ("key_info", _remove(f"{{{XENC}}}EncryptedData/{{{XENC}}}EncryptionMethod")),
        ("key_info", _remove(f".//{{{XENC}}}EncryptedKey/{{{XENC}}}CipherData")),
        ("key_info", _cipher_reference),
        ("key_info", _content_type),
        ("key_info", _extra_child),
        ("key_info", _remove(f"{{{XENC}}}EncryptedData")),
        ("sibling", _dangling_retrieval),
    ],
    ids=[
        "cbc-partial-block",
        "cbc-too-short",
        "bad-base64",
        "truncated-key",
        "no-cipher-data",
        "no-encryption-method",
        "key-without-cipher",
        "cipher-reference",
        "type-content",
        "assertion-beside",
        "no-encrypted-data",
        "dangling-retrieval-method",
    ],  # fmt: skip
)
def test_malformed_encrypted_assertions_are_refused(
    test_idp: TestIdP, sp_keys: KeyPair, placement: Any, edit: Callable[[etree._Element], None]
) -> None:
    choice = Encryption(sp_keys.cert_pem, content=AES128_CBC, key_placement=placement)
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=choice))
    assert name_id(decrypt_assertion(encrypted, [sp_keys.key_pem])) == EMAIL  # before the edit
    edit(encrypted)
    with refused("malformed"):
        decrypt_assertion(reparsed(encrypted), [sp_keys.key_pem])


def test_gcm_cipher_text_cut_short_is_malformed_and_cut_by_a_block_fails_its_tag(
    test_idp: TestIdP, sp_keys: KeyPair
) -> None:
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=Encryption(sp_keys.cert_pem)))
    cut = copy.deepcopy(encrypted)
    _truncate_content(cut, 28)
    with refused("malformed"):
        decrypt_assertion(reparsed(cut), [sp_keys.key_pem])
    length = len(base64.b64decode(_content_value(encrypted).text))
    _truncate_content(encrypted, length - 16)
    with refused("wrong_key"):
        decrypt_assertion(reparsed(encrypted), [sp_keys.key_pem])


def test_more_encrypted_keys_than_recipients_need_are_refused(
    test_idp: TestIdP, sp_keys: KeyPair
) -> None:
    choice = Encryption(sp_keys.cert_pem, key_placement="sibling")
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=choice))
    key = encrypted.find(f"{{{XENC}}}EncryptedKey")
    for _ in range(encryption.MAX_ENCRYPTED_KEYS):
        encrypted.append(copy.deepcopy(key))
    with refused("malformed"):
        decrypt_assertion(reparsed(encrypted), [sp_keys.key_pem])


def test_not_an_encrypted_assertion_is_malformed(sp_keys: KeyPair) -> None:
    with refused("malformed"):
        decrypt_assertion(etree.fromstring(f'<saml:Assertion xmlns:saml="{SAML}"/>'), [])


# -- algorithms --------------------------------------------------------------------------------


def _set_algorithm(path: str, algorithm: str) -> Callable[[etree._Element], None]:
    def edit(encrypted: etree._Element) -> None:
        encrypted.find(path).set("Algorithm", algorithm)

    return edit


def _key_name_only(encrypted: etree._Element) -> None:
    key_info = encrypted.find(f"{{{XENC}}}EncryptedData/{{{DS}}}KeyInfo")
    key_info[:] = [etree.Element(f"{{{DS}}}KeyName")]
    key_info[0].text = "shared"


def _add_parameter(tag: str, algorithm: str) -> Callable[[etree._Element], None]:
    def edit(encrypted: etree._Element) -> None:
        method = encrypted.find(f".//{{{XENC}}}EncryptedKey/{{{XENC}}}EncryptionMethod")
        method[:] = [etree.Element(tag, Algorithm=algorithm)]

    return edit


_CONTENT_METHOD = f"{{{XENC}}}EncryptedData/{{{XENC}}}EncryptionMethod"
_KEY_METHOD = f".//{{{XENC}}}EncryptedKey/{{{XENC}}}EncryptionMethod"


@pytest.mark.parametrize(
    "edit",
    [
        _set_algorithm(_CONTENT_METHOD, XENC + "tripledes-cbc"),
        _set_algorithm(_CONTENT_METHOD, "http://example.test/rot13"),
        _set_algorithm(_KEY_METHOD, XENC + "kw-aes128"),
        _set_algorithm(_KEY_METHOD, XENC + "kw-tripledes"),
        _remove(f".//{{{XENC}}}EncryptedKey"),
        _key_name_only,
        _add_parameter(f"{{{DS}}}DigestMethod", "http://www.w3.org/2001/04/xmldsig-more#md5"),
        _add_parameter(f"{{{encryption.XENC11}}}MGF", MGF1_SHA256),  # mgf1p's mask is fixed
        _add_parameter(f"{{{XENC}}}OAEPparams", ""),
    ],
    ids=[
        "3des",
        "unknown-content",
        "aes-key-wrap",
        "3des-key-wrap",
        "no-encrypted-key",
        "key-name-only",
        "oaep-md5",
        "mgf1p-with-mgf",
        "oaep-params",
    ],  # fmt: skip
)
def test_algorithms_and_key_deliveries_not_listed_are_refused(
    test_idp: TestIdP, sp_keys: KeyPair, edit: Callable[[etree._Element], None]
) -> None:
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=Encryption(sp_keys.cert_pem)))
    edit(encrypted)
    with refused("algorithm"):
        decrypt_assertion(reparsed(encrypted), [sp_keys.key_pem])


def test_libxmlsec_3des_is_refused(sp_keys: KeyPair) -> None:
    encrypted = xmlsec_encrypt(
        f'<saml:Assertion xmlns:saml="{SAML}"/>'.encode(),
        sp_keys.cert_pem,
        content=xmlsec.Transform.DES3,
        bits=192,
        key_data=xmlsec.KeyData.DES,
    )
    with refused("algorithm"):
        decrypt_assertion(encrypted, [sp_keys.key_pem])


def test_a_caller_can_refuse_cbc(test_idp: TestIdP, sp_keys: KeyPair) -> None:
    choice = Encryption(sp_keys.cert_pem, content=AES256_CBC)
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=choice))
    gcm_only = {AES128_GCM, AES192_GCM, AES256_GCM}
    with refused("algorithm"):
        decrypt_assertion(encrypted, [sp_keys.key_pem], content_algorithms=gcm_only)


# -- plaintexts --------------------------------------------------------------------------------

ASSERTION_XML = f'<saml:Assertion xmlns:saml="{SAML}" ID="_p" Version="2.0"/>'


@pytest.mark.parametrize(
    ("plaintext", "kind"),
    [
        (ASSERTION_XML * 2, "not_an_assertion"),
        (
            f'<samlp:Response xmlns:samlp="{SAMLP}" ID="_r">{ASSERTION_XML}</samlp:Response>',
            "not_an_assertion",
        ),
        ("hello", "not_an_assertion"),
        (f"hello {ASSERTION_XML}", "not_an_assertion"),
        (f"<!-- hi -->{ASSERTION_XML}", "not_an_assertion"),
        (
            '<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion"/>',
            "not_an_assertion",
        ),
        ("<unclosed>", "not_an_assertion"),
        ("\x00\xff binary", "not_an_assertion"),
        (f'<saml:Assertion xmlns:saml="{SAML}">&ent;</saml:Assertion>', "not_an_assertion"),
        ('<?xml version="1.0" encoding="UTF-16"?>' + ASSERTION_XML, "not_an_assertion"),
        (f'<!DOCTYPE a [<!ENTITY e "x">]>{ASSERTION_XML}', "dtd"),
        (f'<!doctype saml:Assertion SYSTEM "http://attacker.test/">{ASSERTION_XML}', "dtd"),
    ],
    ids=[
        "two-assertions",
        "a-response",
        "text",
        "text-beside",
        "comment-beside",
        "saml1-namespace",
        "not-well-formed",
        "binary",
        "entity-reference",
        "utf16-declaration",
        "doctype",
        "external-doctype",
    ],  # fmt: skip
)
def test_a_plaintext_that_is_not_exactly_one_assertion_is_refused(
    sp_keys: KeyPair, plaintext: str, kind: str
) -> None:
    encrypted = xmlsec_encrypt(plaintext.encode("latin-1"), sp_keys.cert_pem)
    with refused(kind):
        decrypt_assertion(encrypted, [sp_keys.key_pem])


def test_whitespace_and_a_utf8_declaration_around_the_assertion_are_fine(
    sp_keys: KeyPair,
) -> None:
    plaintext = f'<?xml version="1.0" encoding="UTF-8"?>\n  {ASSERTION_XML}\n '
    encrypted = xmlsec_encrypt(plaintext.encode(), sp_keys.cert_pem)
    assert decrypt_assertion(encrypted, [sp_keys.key_pem]).get("ID") == "_p"


def test_cbc_plaintext_that_is_not_xml_is_a_decryption_failure(sp_keys: KeyPair) -> None:
    # Without integrity, garbage is what a wrong key gives: not told apart (see the module doc).
    encrypted = xmlsec_encrypt(
        b"<unclosed>", sp_keys.cert_pem, content=xmlsec.Transform.AES128, bits=128
    )
    with refused("wrong_key"):
        decrypt_assertion(encrypted, [sp_keys.key_pem])


def test_the_error_is_part_of_the_package_tree() -> None:
    error = DecryptionRefused(DecryptionRefused.MALFORMED, "why")
    assert isinstance(error, WebworkSSOError) and error.kind == "malformed"
    assert error.reason == "why" and "why" in str(error)


# -- encrypting --------------------------------------------------------------------------------


def test_encrypt_assertion_refuses_what_it_cannot_do(sp_keys: KeyPair) -> None:
    with pytest.raises(ValueError, match="not a saml:Assertion"):
        encrypt_assertion(f'<samlp:Response xmlns:samlp="{SAMLP}"/>', sp_keys.cert_pem)
    choices: list[dict[str, Any]] = [
        {"content": encryption.TRIPLEDES_CBC},
        {"key_transport": XENC + "kw-aes128"},
        {"oaep_mgf": MGF1_SHA256},  # with mgf1p
        {"oaep_digest": "http://www.w3.org/2001/04/xmldsig-more#md5"},
        {"key_placement": "nowhere"},
    ]
    for options in choices:
        with pytest.raises(ValueError):
            encrypt_assertion(ASSERTION_XML, sp_keys.cert_pem, **options)
    elliptic = make_key_pair("EC", elliptic=True)
    with pytest.raises(ValueError, match="not RSA"):
        encrypt_assertion(ASSERTION_XML, elliptic.cert_pem)


# -- pysaml2 -----------------------------------------------------------------------------------


def _server_response(test_idp: TestIdP, sp_keys: KeyPair, **options: Any) -> str:
    test_idp.sp_config(SP_ID, ACS)
    return str(
        test_idp.server.create_authn_response(
            {"mail": [EMAIL]},
            "_request",
            ACS,
            SP_ID,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=EMAIL),
            authn={"class_ref": AUTHN_PASSWORD_PROTECTED},
            encrypt_assertion=True,
            encrypt_cert_assertion=sp_keys.cert_pem.decode(),
            **options,
        )
    )


@pytest.mark.parametrize(
    ("sign_assertion", "sign_response"),
    [(True, False), (False, True), (True, True)],
    ids=["assertion-signed", "response-signed", "both-signed"],
)
def test_pysaml2_server_encrypts_and_we_decrypt_and_verify(
    test_idp: TestIdP, sp_keys: KeyPair, sign_assertion: bool, sign_response: bool
) -> None:
    xml = _server_response(
        test_idp, sp_keys, sign_assertion=sign_assertion, sign_response=sign_response
    )
    root = parse_xml(xml).getroot()
    encrypted = the_encrypted(root)
    # pysaml2 asks for 3DES; the backend encrypts with AES-256-GCM instead.
    assert encrypted.find(_CONTENT_METHOD).get("Algorithm") == AES256_GCM
    if sign_response:  # the response signature covers the encrypted form
        XmlsecBackend().verify_element(root, RESPONSE, root.get("ID"), idp_der(test_idp))
    assertion = decrypt_assertion(encrypted, [sp_keys.key_pem])
    assert name_id(assertion) == EMAIL
    new_root = assertion.getroottree().getroot()
    if sign_assertion:
        XmlsecBackend().verify_element(new_root, ASSERTION, assertion.get("ID"), idp_der(test_idp))
    else:
        assert assertion.find(f"{{{DS}}}Signature") is None


def test_the_backend_follows_the_template_algorithms_and_refuses_unknown_ones(
    test_idp: TestIdP, sp_keys: KeyPair, tmp_path: Path
) -> None:
    unsigned = test_idp.response_xml(
        sp_entity_id=SP_ID, acs_url=ACS, email=EMAIL, sign_assertion=False
    )
    cert_file = tmp_path / "sp.crt"
    cert_file.write_bytes(sp_keys.cert_pem)
    template = pre_encryption_part(msg_enc=AES128_CBC, key_enc=RSA_1_5)
    xml = test_idp.server.sec.encrypt_assertion(
        unsigned, str(cert_file), template, node_xpath="/*/*[local-name()='Assertion']"
    )
    encrypted = the_encrypted(parse_xml(xml).getroot())
    methods = [m.get("Algorithm") for m in encrypted.iter(f"{{{XENC}}}EncryptionMethod")]
    assert methods == [AES128_CBC, RSA_1_5]
    assert name_id(decrypt_assertion(encrypted, [sp_keys.key_pem])) == EMAIL
    with pytest.raises(EncryptError):
        test_idp.server.sec.encrypt_assertion(
            unsigned,
            str(cert_file),
            pre_encryption_part(msg_enc=XENC + "kw-aes128"),
            node_xpath="/*/*[local-name()='Assertion']",
        )
    with pytest.raises(EncryptError):
        test_idp.server.sec.encrypt_assertion(unsigned, str(cert_file), template)  # no such path


def test_a_pysaml2_sp_decrypts_through_the_backend(
    test_idp: TestIdP, sp_keys: KeyPair, other_keys: KeyPair, tmp_path: Path
) -> None:
    key_file, cert_file = sp_keys.write(tmp_path, "sp")
    config = pysaml2_sp_config(SP_ID, ACS, [test_idp.metadata_xml()])
    config["encryption_keypairs"] = [{"key_file": str(key_file), "cert_file": str(cert_file)}]
    client = make_client(config)
    xml = _server_response(test_idp, sp_keys, sign_assertion=True, sign_response=False)
    response = client.parse_authn_request_response(
        base64.b64encode(xml.encode()).decode(), BINDING_HTTP_POST, {"_request": "/"}
    )
    assert response.get_identity()["mail"] == [EMAIL]
    assert response.assertion.subject.name_id.text == EMAIL
    other_key, _ = other_keys.write(tmp_path, "other")
    with pytest.raises(DecryptError, match="none of the SP keys"):
        EncryptingBackend().decrypt(xml, str(other_key))
    with pytest.raises(DecryptError, match="no EncryptedAssertion"):
        EncryptingBackend().decrypt(
            test_idp.response_xml(sp_entity_id=SP_ID, acs_url=ACS, email=EMAIL), str(key_file)
        )


# -- the test and dev IdPs ----------------------------------------------------------------------


def test_the_idp_signs_the_response_over_the_encrypted_assertion(
    test_idp: TestIdP, sp_keys: KeyPair
) -> None:
    root = encrypted_response(
        test_idp, sign_assertion=False, sign_response=True, encryption=Encryption(sp_keys.cert_pem)
    )
    XmlsecBackend().verify_element(root, RESPONSE, root.get("ID"), idp_der(test_idp))
    assertion = decrypt_assertion(the_encrypted(root), [sp_keys.key_pem])
    assert assertion.find(f"{{{DS}}}Signature") is None and name_id(assertion) == EMAIL
    # Changing the encrypted form breaks the response signature.
    _content_value(the_encrypted(root)).text = base64.b64encode(os.urandom(64)).decode()
    with pytest.raises(SignatureError):
        XmlsecBackend().verify_element(root, RESPONSE, root.get("ID"), idp_der(test_idp))


def test_every_key_is_tried_even_after_one_opened_it(
    test_idp: TestIdP, sp_keys: KeyPair, other_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The right key first, then two more: all three are tried, so the time taken does not
    tell whether (altered) cipher text decrypted to something that parses."""
    encrypted = the_encrypted(encrypted_response(test_idp, encryption=Encryption(sp_keys.cert_pem)))
    tried: list[int] = []
    real = encryption._attempt

    def probe(transport: Any, key: Any, content: Any, namespaces: Any) -> bytes | None:
        tried.append(key.key_size)
        return real(transport, key, content, namespaces)

    monkeypatch.setattr(encryption, "_attempt", probe)
    assertion = decrypt_assertion(encrypted, [sp_keys.key_pem, other_keys.key_pem, sp_keys.key_pem])
    assert assertion.tag == f"{{{SAML}}}Assertion"
    assert len(tried) == 3
