"""XML Encryption of SAML assertions (saml-core 6.2, xmlenc-core 1.1), in-process, never ``xmlsec1``:
the SP side, decryption. The IdP side (``encrypt_assertion``, for the test and dev IdPs) is
encrypting.py, on this module's algorithm tables.

    assertion = decrypt_assertion(encrypted_assertion, [current_key_pem, next_pem, previous_pem])

Accepted (anything else raises ``DecryptionRefused(kind="algorithm")``):
- content: AES-128/192/256-CBC (xmlenc#aes*-cbc) and AES-128/192/256-GCM (xmlenc11#aes*-gcm);
- key transport: RSA-OAEP (xmlenc#rsa-oaep-mgf1p; xmlenc11#rsa-oaep with an MGF1-SHA-1/SHA-256
  mask) with a SHA-1 or SHA-256 digest, and RSA 1.5 (xmlenc#rsa-1_5, which ADFS and Entra ID can
  send). 3DES, AES key wrap, key agreement, a key named by KeyName only and a missing
  EncryptedKey are refused.
- shape: the EncryptedAssertion holds one xenc:EncryptedData (Type Element or none) followed by
  zero or more xenc:EncryptedKey; the EncryptedKeys sit in EncryptedData/ds:KeyInfo (Okta, Entra,
  ADFS, pysaml2) or beside EncryptedData, optionally named by a ds:RetrievalMethod (Shibboleth).
  Cipher text is inline (CipherValue, never a CipherReference to fetch). KeyInfo inside an
  EncryptedKey (the SP certificate, a KeyName) is never read: every SP key given is tried.
- plaintext: exactly one saml:Assertion, nothing but whitespace around it, parsed by
  ``crypto.safe_parser`` (no DTD, no entity, no network), in the namespace context of the
  EncryptedAssertion as libxmlsec does (IdPs may leave out declarations made on ancestors).

Why ``cryptography`` does the RSA and AES steps rather than libxmlsec's ``EncryptionContext``:
- RSA 1.5 (Bleichenbacher): libxmlsec fails a bad padding with its own error, at once. Here a key
  that does not unwrap (or unwraps to the wrong length) is replaced by a random key made before
  the attempt, so a bad padding, a forged key and a wrong SP key all end the same way: as a
  content-decryption failure (``wrong_key``), after the same work.
- libxmlsec parses the plaintext itself, into the document; ours goes through our parser and our
  checks first, and only an accepted Assertion enters the tree.
- python-xmlsec's EncryptionContext has no allow-list of algorithms (SignatureContext has), it
  follows KeyInfo (RetrievalMethod, KeyName lookups) on its own, and it reports every failure as
  one ``xmlsec.Error``; the callers here need to know which failure it was.
The XML around the cipher text is small and checked element by element below. The tests check our
output and input against libxmlsec (python-xmlsec), an independent implementation.

CBC has no integrity: a CBC plaintext that fails its padding or is not well-formed XML counts as
a content failure (as a wrong key would produce), so RSA 1.5's random key cannot be told apart.
What CBC still leaks to someone replaying altered cipher text (well-formed or not, Jager and
Somorovsky 2011) is the mode's own flaw; ``content_algorithms`` lets a caller refuse CBC.

The decrypted Assertion is returned in a new document: the Response's, with the EncryptedAssertion
replaced by the Assertion, so later checks (one assertion, IDs carried once) and the Assertion's own
signature run on one tree. The caller's document is not changed: a Response signature covers the
encrypted form and still verifies there. Not in place, because lxml rebinds a moved element's
prefixes to its new parent's (same URI, other prefix) and exclusive c14n depends on the prefixes.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import os
import re
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from ..errors import WebworkSSOError
from ..logs import package_logger
from .crypto import DS, DocumentRefused, load_own_private_key, refuse_dtd, safe_parser

__all__ = ["CONTENT_ALGORITHMS", "KEY_TRANSPORTS", "DecryptionRefused", "decrypt_assertion"]

log = package_logger(__name__)

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"

RSA_OAEP_MGF1P = XENC + "rsa-oaep-mgf1p"
RSA_OAEP = XENC11 + "rsa-oaep"
RSA_1_5 = XENC + "rsa-1_5"
KEY_TRANSPORTS = frozenset({RSA_OAEP_MGF1P, RSA_OAEP, RSA_1_5})
AES128_CBC, AES192_CBC, AES256_CBC = (XENC + f"aes{n}-cbc" for n in (128, 192, 256))
AES128_GCM, AES192_GCM, AES256_GCM = (XENC11 + f"aes{n}-gcm" for n in (128, 192, 256))
TRIPLEDES_CBC = XENC + "tripledes-cbc"  # refused; pysaml2's default, see crypto.XmlsecBackend
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
MGF1_SHA1 = XENC11 + "mgf1sha1"
MGF1_SHA256 = XENC11 + "mgf1sha256"
ELEMENT_TYPE = XENC + "Element"
ENCRYPTED_KEY_TYPE = XENC + "EncryptedKey"


@dataclass(frozen=True)
class _Content:
    key_size: int  # bytes
    gcm: bool


CONTENT: dict[str, _Content] = {
    AES128_CBC: _Content(16, False),
    AES192_CBC: _Content(24, False),
    AES256_CBC: _Content(32, False),
    AES128_GCM: _Content(16, True),
    AES192_GCM: _Content(24, True),
    AES256_GCM: _Content(32, True),
}
CONTENT_ALGORITHMS = frozenset(CONTENT)
OAEP_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {SHA1: hashes.SHA1, SHA256: hashes.SHA256}
MGF_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    MGF1_SHA1: hashes.SHA1,
    MGF1_SHA256: hashes.SHA256,
}
GCM_IV, GCM_TAG, BLOCK = 12, 16, 16
# Each EncryptedKey is tried with each SP key (an RSA operation each): a few recipients, not more.
MAX_ENCRYPTED_KEYS = 8
_DECLARATION = re.compile(rb"\A<\?xml\s[^>]*\?>")  # an XML declaration some serializers prepend
_UTF8_DECLARED = re.compile(rb"encoding\s*=\s*[\"']utf-8[\"']", re.IGNORECASE)


def _xenc(name: str) -> str:
    return f"{{{XENC}}}{name}"


def _ds(name: str) -> str:
    return f"{{{DS}}}{name}"


class DecryptionRefused(WebworkSSOError, ValueError):
    """An EncryptedAssertion that is not decrypted; ``kind`` says why, ``reason`` in words.

    ``wrong_key``: none of the SP keys opens it (no EncryptedKey unwraps, or the content fails
    its check with every key; also a bad RSA 1.5 padding); ``malformed``: parts missing or out of
    place, bad base64, cipher text of an impossible length; ``algorithm``: an algorithm or key
    delivery that is not accepted; ``not_an_assertion``: the plaintext is not exactly one
    saml:Assertion; ``dtd``: the plaintext has a DOCTYPE, DTD or entity.
    """

    WRONG_KEY = "wrong_key"
    MALFORMED = "malformed"
    ALGORITHM = "algorithm"
    NOT_AN_ASSERTION = "not_an_assertion"
    DTD = "dtd"

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"encrypted assertion refused: {reason}")
        self.kind = kind
        self.reason = reason


def _malformed(reason: str) -> DecryptionRefused:
    return DecryptionRefused(DecryptionRefused.MALFORMED, reason)


def _algorithm(reason: str) -> DecryptionRefused:
    return DecryptionRefused(DecryptionRefused.ALGORITHM, reason)


def _not_an_assertion(reason: str) -> DecryptionRefused:
    return DecryptionRefused(DecryptionRefused.NOT_AN_ASSERTION, reason)


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else repr(element)


# -- reading the EncryptedAssertion ---------------------------------------------------------


@dataclass(frozen=True)
class _EncryptedKey:
    cipher: bytes
    padding: padding.AsymmetricPadding  # PKCS1v15 (RSA 1.5) or OAEP


@dataclass(frozen=True)
class _EncryptedAssertion:
    content: _Content
    cipher: bytes
    keys: list[_EncryptedKey]


def _children(parent: etree._Element) -> list[etree._Element]:
    """Element children, and processing instructions (never expected, so refused); comments skipped."""
    return [child for child in parent.iterchildren() if not isinstance(child, etree._Comment)]


def _sequence(
    parent: etree._Element, expected: Sequence[tuple[str, bool]]
) -> dict[str, etree._Element]:
    """The children of ``parent`` by tag, in the schema's order: (tag, required) pairs, each once."""
    children = _children(parent)
    found: dict[str, etree._Element] = {}
    index = 0
    for tag, required in expected:
        if index < len(children) and children[index].tag == tag:
            found[tag] = children[index]
            index += 1
        elif required:
            raise _malformed(f"{_local(parent)} has no {etree.QName(tag).localname}")
    if index < len(children):
        raise _malformed(f"unexpected {_local(children[index])} in {_local(parent)}")
    return found


def _cipher_value(cipher_data: etree._Element) -> bytes:
    children = _children(cipher_data)
    if [child.tag for child in children] != [_xenc("CipherValue")]:
        raise _malformed("CipherData must hold one CipherValue (CipherReference is not accepted)")
    if len(children[0]):
        raise _malformed("CipherValue holds elements")
    text = "".join((children[0].text or "").split())  # base64 wrapped at 64 or 76 columns is common
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed("CipherValue is not base64") from None
    if not value:
        raise _malformed("CipherValue is empty")
    return value


def _read_encrypted_key(element: etree._Element) -> _EncryptedKey:
    parts = _sequence(
        element,
        [
            (_xenc("EncryptionMethod"), True),
            (_ds("KeyInfo"), False),  # names the SP key (a certificate, a KeyName): not read
            (_xenc("CipherData"), True),
            (_xenc("ReferenceList"), False),
            (_xenc("CarriedKeyName"), False),
        ],
    )
    method = parts[_xenc("EncryptionMethod")]
    algorithm = method.get("Algorithm")
    parameters = _children(method)
    scheme: padding.AsymmetricPadding
    if algorithm == RSA_1_5:
        if parameters:
            raise _algorithm("rsa-1_5 takes no parameters")
        scheme = padding.PKCS1v15()
    elif algorithm in (RSA_OAEP_MGF1P, RSA_OAEP):
        digest, mgf = SHA1, MGF1_SHA1  # the defaults when DigestMethod or MGF is left out
        seen: set[str] = set()
        for parameter in parameters:
            tag = parameter.tag
            if tag in seen or tag not in (_ds("DigestMethod"), f"{{{XENC11}}}MGF"):
                raise _algorithm(f"RSA-OAEP parameter {_local(parameter)} is not accepted")
            seen.add(tag)
            if tag == _ds("DigestMethod"):
                digest = parameter.get("Algorithm") or ""
            elif algorithm == RSA_OAEP:
                mgf = parameter.get("Algorithm") or ""
            else:
                raise _algorithm("rsa-oaep-mgf1p has a fixed mask (MGF1 with SHA-1)")
        if digest not in OAEP_DIGESTS or mgf not in MGF_DIGESTS:
            raise _algorithm(f"RSA-OAEP digest {digest!r} / mask {mgf!r} is not accepted")
        scheme = padding.OAEP(
            mgf=padding.MGF1(MGF_DIGESTS[mgf]()), algorithm=OAEP_DIGESTS[digest](), label=None
        )
    else:
        raise _algorithm(
            f"key transport {algorithm!r} is not accepted (RSA-OAEP or RSA 1.5 to the SP key only)"
        )
    return _EncryptedKey(_cipher_value(parts[_xenc("CipherData")]), scheme)


def _read(
    encrypted_assertion: etree._Element, content_algorithms: Collection[str]
) -> _EncryptedAssertion:
    if encrypted_assertion.tag != f"{{{SAML}}}EncryptedAssertion":
        raise _malformed(f"{_local(encrypted_assertion)} is not a saml:EncryptedAssertion")
    children = _children(encrypted_assertion)
    if not children or children[0].tag != _xenc("EncryptedData"):
        raise _malformed("the EncryptedAssertion does not start with an xenc:EncryptedData")
    data, siblings = children[0], children[1:]
    if any(sibling.tag != _xenc("EncryptedKey") for sibling in siblings):
        raise _malformed("only xenc:EncryptedKey may follow the EncryptedData")
    if data.get("Type") not in (None, ELEMENT_TYPE):
        raise _malformed(f"EncryptedData Type {data.get('Type')!r} is not Element")
    parts = _sequence(
        data,
        [
            (_xenc("EncryptionMethod"), True),
            (_ds("KeyInfo"), False),
            (_xenc("CipherData"), True),
            (_xenc("EncryptionProperties"), False),
        ],
    )
    method = parts[_xenc("EncryptionMethod")]
    algorithm = method.get("Algorithm") or ""
    if algorithm not in CONTENT or algorithm not in content_algorithms:
        raise _algorithm(f"content encryption {algorithm!r} is not accepted")
    if _children(method):
        raise _algorithm("the content EncryptionMethod takes no parameters")
    content = CONTENT[algorithm]

    inside: list[etree._Element] = []
    by_id = {key.get("Id"): key for key in siblings if key.get("Id")}
    key_info = parts.get(_ds("KeyInfo"))
    for item in _children(key_info) if key_info is not None else []:
        if item.tag == _xenc("EncryptedKey"):
            inside.append(item)
        elif item.tag == _ds("RetrievalMethod"):
            # Shibboleth's way: a pointer to an EncryptedKey beside the EncryptedData. It must
            # name one; all of them are tried anyway.
            uri = item.get("URI") or ""
            if item.get("Type") != ENCRYPTED_KEY_TYPE or _children(item):
                raise _algorithm("a RetrievalMethod may only point at an EncryptedKey")
            if not uri.startswith("#") or uri[1:] not in by_id:
                raise _malformed(f"RetrievalMethod {uri!r} names no EncryptedKey beside the data")
        elif item.tag != _ds("KeyName"):  # a name alone delivers no key; a hint beside one is fine
            raise _algorithm(f"key delivery by {_local(item)} is not accepted")
    candidates = inside + siblings
    if not candidates:
        raise _algorithm("no xenc:EncryptedKey: the content key must come RSA-encrypted to the SP")
    if len(candidates) > MAX_ENCRYPTED_KEYS:
        raise _malformed(f"more than {MAX_ENCRYPTED_KEYS} EncryptedKey elements")
    keys = [_read_encrypted_key(candidate) for candidate in candidates]

    cipher = _cipher_value(parts[_xenc("CipherData")])
    if content.gcm:
        if len(cipher) <= GCM_IV + GCM_TAG:
            raise _malformed("the AES-GCM cipher text is truncated")
    elif len(cipher) < 2 * BLOCK or len(cipher) % BLOCK:
        raise _malformed("the AES-CBC cipher text is truncated (not whole 16-byte blocks)")
    return _EncryptedAssertion(content, cipher, keys)


# -- decrypting ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _private_key(pem: bytes) -> rsa.RSAPrivateKey | None:
    """The RSA key of a PEM, loaded once (loading checks the key, which costs milliseconds)."""
    try:
        key = load_own_private_key(pem)
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, rsa.RSAPrivateKey) else None


def _unwrap(encrypted: _EncryptedKey, key: rsa.RSAPrivateKey, size: int) -> bytes | None:
    """The content key, or None when this SP key does not open the EncryptedKey (RSA-OAEP).

    RSA 1.5 never says no: a failed unwrap becomes a random key, drawn before the attempt so both
    outcomes cost the same, and the content check then fails as it would for a wrong key.
    (OpenSSL 3.2+ already answers a bad padding with a pseudo-random message; the length check
    covers both.)"""
    if isinstance(encrypted.padding, padding.PKCS1v15):
        substitute = os.urandom(size)
        try:
            opened = key.decrypt(encrypted.cipher, encrypted.padding)
        except ValueError:
            opened = b""
        return opened if len(opened) == size else substitute
    try:
        opened = key.decrypt(encrypted.cipher, encrypted.padding)
    except ValueError:
        return None
    return opened if len(opened) == size else None


def _open_content(content: _Content, key: bytes, cipher: bytes) -> bytes | None:
    """The plaintext, or None when it fails its check (GCM tag; CBC padding)."""
    if content.gcm:
        try:
            return AESGCM(key).decrypt(cipher[:GCM_IV], cipher[GCM_IV:], None)
        except InvalidTag:
            return None
    decryptor = Cipher(algorithms.AES(key), modes.CBC(cipher[:BLOCK])).decryptor()
    padded = decryptor.update(cipher[BLOCK:]) + decryptor.finalize()
    # xmlenc padding: the last byte is the count, the others are arbitrary (ISO 10126).
    count = padded[-1]
    return padded[:-count] if 1 <= count <= BLOCK else None


def _read_plaintext(
    plaintext: bytes, namespaces: dict[str | None, str], *, authenticated: bool
) -> etree._Element | None:
    """The one saml:Assertion of the plaintext; None when unauthenticated (CBC) text is not XML."""
    if re.search(rb"<!(DOCTYPE|ENTITY)", plaintext, re.IGNORECASE):
        raise DecryptionRefused(DecryptionRefused.DTD, "the plaintext has a DOCTYPE or entity")
    declaration = _DECLARATION.match(plaintext)
    if declaration:
        if b"encoding" in declaration[0] and not _UTF8_DECLARED.search(declaration[0]):
            raise _not_an_assertion("the plaintext is not UTF-8")
        plaintext = plaintext[declaration.end() :]
    # Parsed inside an element declaring the EncryptedAssertion's namespaces in scope, as
    # libxmlsec parses in the node's context: some IdPs rely on declarations made above it.
    declarations = "".join(
        f" xmlns={quoteattr(uri)}" if prefix is None else f" xmlns:{prefix}={quoteattr(uri)}"
        for prefix, uri in namespaces.items()
    )
    wrapped = f"<decrypted{declarations}>".encode() + plaintext + b"</decrypted>"
    try:
        wrapper = etree.fromstring(wrapped, safe_parser())
    except (etree.XMLSyntaxError, ValueError):
        if not authenticated:
            return None  # what a wrong key (RSA 1.5's random one) or altered CBC text gives
        raise _not_an_assertion("the plaintext is not well-formed XML") from None
    try:
        refuse_dtd(wrapper.getroottree())
    except DocumentRefused as refused:
        raise DecryptionRefused(DecryptionRefused.DTD, "the plaintext has an entity") from refused
    nodes = list(wrapper)
    if len(nodes) != 1 or not isinstance(nodes[0].tag, str):
        raise _not_an_assertion(f"the plaintext holds {len(nodes)} nodes, not one saml:Assertion")
    assertion = nodes[0]
    if assertion.tag != f"{{{SAML}}}Assertion":
        raise _not_an_assertion(f"the plaintext is a {assertion.tag}, not a saml:Assertion")
    if (wrapper.text or "").strip() or (assertion.tail or "").strip():
        raise _not_an_assertion("the plaintext has text beside the saml:Assertion")
    return assertion


def decrypt_assertion(
    encrypted_assertion: etree._Element,
    private_keys: Sequence[bytes],
    *,
    content_algorithms: Collection[str] = CONTENT_ALGORITHMS,
) -> etree._Element:
    """Decrypt a saml:EncryptedAssertion with the first of ``private_keys`` (PEM RSA) that opens it.

    Returns the saml:Assertion in a new document: the EncryptedAssertion's document with the
    EncryptedAssertion replaced by the Assertion as the IdP serialized it (``assertion.getroottree()``;
    the Response is its root). The caller's document is left as it was (see the module doc).

    Raises ``DecryptionRefused`` (see its ``kind``). The element must come from
    ``crypto.parse_xml`` or an equally strict parser.
    """
    return _splice(
        encrypted_assertion, _decrypt(encrypted_assertion, private_keys, content_algorithms)
    )


def _decrypt(
    encrypted_assertion: etree._Element,
    private_keys: Sequence[bytes],
    content_algorithms: Collection[str],
) -> bytes:
    """The Assertion, checked, serialized with every namespace it had in scope (self-contained)."""
    encrypted = _read(encrypted_assertion, content_algorithms)
    keys = []
    for pem in private_keys:
        key = _private_key(bytes(pem))
        if key is None:
            log.warning("an SP decryption key is not a PEM RSA private key; skipped")
        else:
            keys.append(key)
    if not keys:
        raise DecryptionRefused(DecryptionRefused.WRONG_KEY, "no usable SP decryption key")
    sizes = {key.key_size // 8 for key in keys}
    if not any(len(transport.cipher) in sizes for transport in encrypted.keys):
        # Key lengths are public: saying so tells nothing about any padding.
        raise _malformed("no EncryptedKey has the length of an SP key (truncated?)")
    namespaces = dict(encrypted_assertion.nsmap)
    # Every (EncryptedKey, SP key) pair is tried, whatever an earlier one gave: stopping at the
    # first plaintext that parses would let the time taken tell well-formed plaintext from the
    # rest, an oracle on unauthenticated (CBC) content. The first outcome wins.
    outcome: bytes | DecryptionRefused | None = None
    for transport in encrypted.keys:
        for key in keys:
            if len(transport.cipher) != key.key_size // 8:
                continue
            try:
                found: bytes | DecryptionRefused | None = _attempt(
                    transport, key, encrypted, namespaces
                )
            except DecryptionRefused as refused:
                found = refused
            if outcome is None:
                outcome = found
    if isinstance(outcome, bytes):
        return outcome
    if outcome is not None:
        raise outcome
    raise DecryptionRefused(
        DecryptionRefused.WRONG_KEY, "none of the SP keys decrypts the assertion"
    )


def _attempt(
    transport: _EncryptedKey,
    key: rsa.RSAPrivateKey,
    encrypted: _EncryptedAssertion,
    namespaces: dict[str | None, str],
) -> bytes | None:
    """The serialized Assertion one SP key opens, or None when it opens nothing."""
    content_key = _unwrap(transport, key, encrypted.content.key_size)
    if content_key is None:
        return None
    plaintext = _open_content(encrypted.content, content_key, encrypted.cipher)
    if plaintext is None:
        return None
    assertion = _read_plaintext(plaintext, namespaces, authenticated=encrypted.content.gcm)
    if assertion is None:
        return None
    return etree.tostring(assertion, encoding="UTF-8", xml_declaration=False, with_tail=False)


def _splice(target: etree._Element, fragment: bytes) -> etree._Element:
    """The element ``fragment`` (self-contained XML) makes in a copy of ``target``'s document
    where it replaces ``target``: spliced as text and parsed again, so no prefix is rebound."""
    path = []
    node = target
    while (parent := node.getparent()) is not None:
        path.append(parent.index(node))
        node = parent
    document = fragment
    if path:
        copy_root = copy.deepcopy(node)
        copy_target = _follow(copy_root, path)
        marker = f"webwork-sso-decrypted-{secrets.token_hex(16)}"  # cannot occur in the document
        placeholder = etree.Element(marker)
        placeholder.tail = copy_target.tail
        holder = copy_target.getparent()
        assert holder is not None
        holder.replace(copy_target, placeholder)
        text = etree.tostring(copy_root, encoding="UTF-8", xml_declaration=False)
        found = re.search(rb"<" + marker.encode() + rb"[^>]*/>", text)
        assert found is not None
        document = text[: found.start()] + fragment + text[found.end() :]
    try:
        root = etree.fromstring(document, safe_parser())
    except (etree.XMLSyntaxError, ValueError):
        raise _not_an_assertion("the plaintext does not fit in the document") from None
    try:
        refuse_dtd(root.getroottree())
    except DocumentRefused as refused:
        raise DecryptionRefused(DecryptionRefused.DTD, "the plaintext has an entity") from refused
    return _follow(root, path)


def _follow(root: etree._Element, path: list[int]) -> etree._Element:
    """The node reached from ``root`` by ``path`` (child indexes, innermost first)."""
    node = root
    for index in reversed(path):
        node = node[index]
    return node
