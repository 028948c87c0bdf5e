"""XML Encryption of SAML assertions, the IdP side: what the test and dev IdPs run to encrypt.

    encrypted = encrypt_assertion(assertion, sp_certificate_pem)
    idp = TestIdP(..., encryption=Encryption(sp_certificate_pem, content=AES128_CBC))

The algorithms, and the checks an SP applies to what this makes, are encryption.py's (the SP
side, which decrypts): this module encrypts only with what encryption.py accepts, so every
encrypted assertion a test or dev IdP sends is one the SP could decrypt.

``EncryptingBackend`` is ``crypto.XmlsecBackend`` plus ``encrypt_assertion`` and ``decrypt`` for
pysaml2 (``Server.create_authn_response(..., encrypt_assertion=True, encrypt_cert_assertion=pem)``);
``entities`` builds pysaml2 entities on it.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree
from saml2 import SamlBase
from saml2.sigver import (
    ASSERT_XPATH,
    DecryptError,
    EncryptError,
    SigverError,
    pre_encrypt_assertion,
)

from .crypto import DS, XmlsecBackend, load_certificate_der, parse_xml, read_private_key
from .encryption import (
    AES256_GCM,
    BLOCK,
    CONTENT,
    CONTENT_ALGORITHMS,
    ELEMENT_TYPE,
    ENCRYPTED_KEY_TYPE,
    GCM_IV,
    KEY_TRANSPORTS,
    MGF1_SHA1,
    MGF_DIGESTS,
    OAEP_DIGESTS,
    RSA_1_5,
    RSA_OAEP,
    RSA_OAEP_MGF1P,
    SAML,
    SHA1,
    TRIPLEDES_CBC,
    XENC,
    XENC11,
    DecryptionRefused,
    _Content,
    _decrypt,
    _ds,
    _local,
    _splice,
    _xenc,
)

__all__ = ["EncryptingBackend", "Encryption", "encrypt_assertion"]


# -- encrypting (the IdP side) ---------------------------------------------------------------


def _encrypt_content(content: _Content, key: bytes, plaintext: bytes) -> bytes:
    if content.gcm:
        iv = os.urandom(GCM_IV)
        return iv + AESGCM(key).encrypt(iv, plaintext, None)
    iv = os.urandom(BLOCK)
    count = BLOCK - len(plaintext) % BLOCK
    padded = plaintext + os.urandom(count - 1) + bytes([count])  # ISO 10126, as xmlenc says
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


def _key_transport_padding(
    key_transport: str, oaep_digest: str, oaep_mgf: str | None
) -> padding.AsymmetricPadding:
    if key_transport == RSA_1_5:
        return padding.PKCS1v15()
    if key_transport not in (RSA_OAEP_MGF1P, RSA_OAEP):
        raise ValueError(f"key transport {key_transport!r} is not one of {sorted(KEY_TRANSPORTS)}")
    if oaep_mgf is not None and key_transport != RSA_OAEP:
        raise ValueError("only xmlenc11#rsa-oaep names its mask function")
    mgf = oaep_mgf or MGF1_SHA1
    if oaep_digest not in OAEP_DIGESTS or mgf not in MGF_DIGESTS:
        raise ValueError(f"RSA-OAEP digest {oaep_digest!r} / mask {mgf!r} is not accepted")
    return padding.OAEP(padding.MGF1(MGF_DIGESTS[mgf]()), OAEP_DIGESTS[oaep_digest](), None)


def encrypt_assertion(
    assertion: etree._Element | str | bytes,
    certificate_pem: str | bytes,
    *,
    key_transport: str = RSA_OAEP_MGF1P,
    content: str = AES256_GCM,
    oaep_digest: str = SHA1,
    oaep_mgf: str | None = None,
    key_placement: Literal["key_info", "sibling"] = "key_info",
) -> etree._Element:
    """A saml:EncryptedAssertion of ``assertion`` for the holder of ``certificate_pem`` (RSA).

    ``key_placement``: the EncryptedKey inside EncryptedData/ds:KeyInfo (Okta, Entra, ADFS), or
    beside the EncryptedData with a RetrievalMethod pointing at it (Shibboleth). An element with a
    parent is replaced by the EncryptedAssertion in its tree; text is parsed by ``parse_xml``.
    Raises ``ValueError`` for an algorithm not listed in encryption.py's module doc or a non-RSA
    certificate.
    """
    element = parse_xml(assertion).getroot() if isinstance(assertion, (str, bytes)) else assertion
    if element.tag != f"{{{SAML}}}Assertion":
        raise ValueError(f"{_local(element)} is not a saml:Assertion")
    if content not in CONTENT:
        raise ValueError(f"content encryption {content!r} is not one of {sorted(CONTENT)}")
    scheme = _key_transport_padding(key_transport, oaep_digest, oaep_mgf)
    certificate_der = load_certificate_der(certificate_pem)
    public_key = x509.load_der_x509_certificate(certificate_der).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("the encryption certificate's key is not RSA")

    session = os.urandom(CONTENT[content].key_size)
    plaintext = etree.tostring(element, encoding="UTF-8", xml_declaration=False, with_tail=False)
    cipher = _encrypt_content(CONTENT[content], session, plaintext)

    nsmap = {"xenc": XENC, "ds": DS}
    encrypted = etree.Element(f"{{{SAML}}}EncryptedAssertion", nsmap={"saml": SAML})
    data = etree.SubElement(
        encrypted, _xenc("EncryptedData"), nsmap=nsmap, Id=_id("ED"), Type=ELEMENT_TYPE
    )
    etree.SubElement(data, _xenc("EncryptionMethod"), Algorithm=content)
    key_info = etree.SubElement(data, _ds("KeyInfo"))

    encrypted_key = etree.Element(_xenc("EncryptedKey"), nsmap=nsmap, Id=_id("EK"))
    method = etree.SubElement(encrypted_key, _xenc("EncryptionMethod"), Algorithm=key_transport)
    if key_transport != RSA_1_5:
        etree.SubElement(method, _ds("DigestMethod"), Algorithm=oaep_digest)
        if oaep_mgf is not None:
            etree.SubElement(
                method, f"{{{XENC11}}}MGF", nsmap={"xenc11": XENC11}, Algorithm=oaep_mgf
            )
    # Which SP key it is for (the SP may have several during a rollover), as Okta and pysaml2 say.
    x509_data = etree.SubElement(etree.SubElement(encrypted_key, _ds("KeyInfo")), _ds("X509Data"))
    etree.SubElement(x509_data, _ds("X509Certificate")).text = base64.b64encode(
        certificate_der
    ).decode("ascii")
    _add_cipher_value(encrypted_key, public_key.encrypt(session, scheme))

    _add_cipher_value(data, cipher)
    if key_placement == "key_info":
        key_info.append(encrypted_key)
    elif key_placement == "sibling":
        etree.SubElement(
            key_info,
            _ds("RetrievalMethod"),
            Type=ENCRYPTED_KEY_TYPE,
            URI="#" + encrypted_key.get("Id", ""),
        )
        encrypted.append(encrypted_key)
    else:
        raise ValueError(f"key_placement {key_placement!r} is not 'key_info' or 'sibling'")

    parent = element.getparent()
    if parent is not None:
        encrypted.tail = element.tail
        parent.replace(element, encrypted)
    return encrypted


def _add_cipher_value(parent: etree._Element, value: bytes) -> None:
    cipher_data = etree.SubElement(parent, _xenc("CipherData"))
    etree.SubElement(cipher_data, _xenc("CipherValue")).text = base64.b64encode(value).decode()


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


@dataclass(frozen=True)
class Encryption:
    """How an IdP encrypts its assertion (the test and dev IdPs' ``encryption=`` option)."""

    certificate_pem: str | bytes  # the SP's encryption certificate
    key_transport: str = RSA_OAEP_MGF1P
    content: str = AES256_GCM
    oaep_digest: str = SHA1
    oaep_mgf: str | None = None
    key_placement: Literal["key_info", "sibling"] = "key_info"

    def encrypt(self, assertion: etree._Element) -> etree._Element:
        return encrypt_assertion(
            assertion,
            self.certificate_pem,
            key_transport=self.key_transport,
            content=self.content,
            oaep_digest=self.oaep_digest,
            oaep_mgf=self.oaep_mgf,
            key_placement=self.key_placement,
        )


# -- pysaml2 -----------------------------------------------------------------------------------


class EncryptingBackend(XmlsecBackend):
    """``crypto.XmlsecBackend`` that also encrypts and decrypts assertions for pysaml2 entities.

    A subclass here rather than methods there because this module builds on crypto.py (its
    parser and certificate loading) and imports may not form a cycle; ``entities`` builds every
    pysaml2 entity on this class.
    """

    def encrypt_assertion(
        self,
        statement: object,
        enc_key: str | bytes,
        template: object,
        key_type: str | None = None,
        node_xpath: str | None = None,
        node_id: str | None = None,
    ) -> str:
        """What ``Entity._encrypt_assertion`` asks: the Assertion at ``node_xpath`` (by default the
        one pysaml2 put in an empty EncryptedAssertion) encrypted for the certificate in the file
        ``enc_key``, with the algorithms of pysaml2's EncryptedData ``template``.

        pysaml2's default content algorithm, 3DES (refused on decryption), becomes AES-256-GCM, as
        signing turns SHA-1 into SHA-256; ``key_type`` (xmlsec1's session key option) follows from
        the content algorithm.
        """
        if isinstance(statement, SamlBase):
            if getattr(statement, "assertion", None) is not None:
                statement = pre_encrypt_assertion(statement)  # as CryptoBackendXmlSec1 does
            statement = str(statement)
        source = statement if isinstance(statement, (str, bytes)) else str(statement)
        try:
            tree = parse_xml(source)
            content, key_transport = _template_algorithms(template)
            found = tree.getroot().xpath(node_xpath or ASSERT_XPATH)
            if not isinstance(found, list) or len(found) != 1:
                raise EncryptError(f"{node_xpath or ASSERT_XPATH} selects no single element")
            assertion = found[0]
            if not isinstance(assertion, etree._Element):
                raise EncryptError("the XPath does not select an element")
            holder = assertion.getparent()
            encrypted = encrypt_assertion(
                assertion, enc_key, key_transport=key_transport, content=content
            )
            # pysaml2 wraps the Assertion in an empty EncryptedAssertion first: ours replaces it.
            if holder is not None and holder.tag == encrypted.tag and len(holder) == 1:
                outer = holder.getparent()
                if outer is None:
                    tree._setroot(encrypted)
                else:
                    encrypted.tail = holder.tail
                    outer.replace(holder, encrypted)
        except (SigverError, ValueError) as error:
            raise EncryptError(f"cannot encrypt the assertion: {error}") from error
        declared = (
            source.startswith("<?xml") if isinstance(source, str) else source.startswith(b"<?xml")
        )
        return etree.tostring(tree, encoding="UTF-8", xml_declaration=declared).decode("utf-8")

    def decrypt(self, enctext: str | bytes, key_file: str | bytes | list[str | bytes]) -> str:
        """Every EncryptedAssertion of the document decrypted with the key(s) in ``key_file``,
        each Assertion left inside its EncryptedAssertion, as ``xmlsec1 --decrypt`` leaves it and
        pysaml2's ``AuthnResponse`` expects. Raises ``DecryptError`` (pysaml2 then tries its next key).
        """
        files = key_file if isinstance(key_file, list) else [key_file]
        try:
            keys = [read_private_key(file) for file in files if file]
            root = parse_xml(enctext).getroot()
            tag = f"{{{SAML}}}EncryptedAssertion"
            if next(root.iter(tag), None) is None:
                raise DecryptError("the document has no EncryptedAssertion")
            while True:
                encrypted = next(
                    (
                        found
                        for found in root.iter(tag)
                        if found.find(_xenc("EncryptedData")) is not None
                    ),
                    None,
                )
                if encrypted is None:
                    break
                assertion = _decrypt(encrypted, keys, CONTENT_ALGORITHMS)
                shell = etree.Element(encrypted.tag, dict(encrypted.attrib), nsmap=encrypted.nsmap)
                shell.text = marker = secrets.token_hex(16)
                head, _, tail = etree.tostring(shell, encoding="UTF-8").partition(marker.encode())
                root = _splice(encrypted, head + assertion + tail).getroottree().getroot()
        except (OSError, SigverError, DecryptionRefused) as error:
            raise DecryptError(f"cannot decrypt: {error}") from error
        return etree.tostring(root, encoding="UTF-8").decode("utf-8")


def _template_algorithms(template: object) -> tuple[str, str]:
    """(content, key transport) named by pysaml2's EncryptedData template (``pre_encryption_part``)."""
    root = parse_xml(template if isinstance(template, (str, bytes)) else str(template)).getroot()
    content = root.find(_xenc("EncryptionMethod"))
    transport = root.find(f"{_ds('KeyInfo')}/{_xenc('EncryptedKey')}/{_xenc('EncryptionMethod')}")
    content_algorithm = content.get("Algorithm") if content is not None else None
    transport_algorithm = transport.get("Algorithm") if transport is not None else None
    if content_algorithm in (None, TRIPLEDES_CBC):
        content_algorithm = AES256_GCM
    return content_algorithm or AES256_GCM, transport_algorithm or RSA_OAEP_MGF1P
