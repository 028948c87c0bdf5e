"""In-process XML signatures for pysaml2: python-xmlsec + lxml, never the ``xmlsec1`` program.

``XmlsecBackend`` is the pysaml2 ``CryptoBackend`` that signs and verifies; pysaml2 entities (SP
client, IdP server, metadata stores) are built on it by ``entities.py``.

Verification accepts (saml-core 5.4; anything else raises ``SignatureError``):
- no DOCTYPE, DTD or entity declaration; lxml never loads DTDs, resolves entities or goes online;
- the ID asked for is carried by one element only (attributes ID, Id, id, xml:id, matched by local
  name as xmlsec does): the element pysaml2 parsed is the one whose signature is checked (XSW);
- that element (the root when pysaml2 gives no ID, as for metadata) is a ``node_name`` with exactly
  one ds:Signature child: SignedInfo, SignatureValue, at most a KeyInfo (never read: the key is the
  metadata certificate's), no ds:Object; one Reference, URI ``#<its ID>`` (``""`` on a root only);
- transforms enveloped-signature [+ exclusive c14n]; CanonicalizationMethod exclusive c14n. Inclusive
  c14n and the WithComments variants are refused: pysaml2 refuses inclusive c14n itself, and neither
  is the default of any IdP we target (Okta, Entra ID, ADFS, Google, Keycloak, OneLogin, Shibboleth);
- SignatureMethod RSA-SHA256/384/512, ECDSA-SHA256/384/512 and RSA-SHA1; DigestMethod SHA-256/384/512
  and SHA-1. SHA-1 stays for legacy set-ups (Okta's and ADFS's per-app "SHA-1" choice, old Shibboleth);
  ``XmlsecBackend(accept_sha1=False)`` refuses it. HMAC, DSA, MD5 and SHA-224 never pass.
These lists are also xmlsec's enabled transforms, so libxmlsec enforces them a second time.

Signing fills pysaml2's Signature template in the element with the given ID, keeping its algorithms
when listed above, except that SHA-1 becomes SHA-256 (pysaml2 still defaults to RSA-SHA1).
Encryption is encryption.py's (XML Encryption with ``cryptography``): encrypting.py's
``EncryptingBackend``, a subclass that entities.py builds pysaml2 entities on, adds
``encrypt_assertion`` and ``decrypt``. Here (this module is below both) ``encrypt``,
``encrypt_assertion`` and ``decrypt`` raise
``SigverError("encrypted assertions are not supported ...")``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from lxml import etree
from saml2.sigver import CryptoBackend, SignatureError, SigverError

from ..errors import WebworkSSOError

__all__ = ["DocumentRefused", "XmlsecBackend", "parse_xml"]

DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SIG_RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SIG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
DIGEST_SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
_MORE = "http://www.w3.org/2001/04/xmldsig-more#"

SIGNATURE_METHODS: dict[str, Any] = {
    SIG_RSA_SHA256: xmlsec.Transform.RSA_SHA256,
    _MORE + "rsa-sha384": xmlsec.Transform.RSA_SHA384,
    _MORE + "rsa-sha512": xmlsec.Transform.RSA_SHA512,
    _MORE + "ecdsa-sha256": xmlsec.Transform.ECDSA_SHA256,
    _MORE + "ecdsa-sha384": xmlsec.Transform.ECDSA_SHA384,
    _MORE + "ecdsa-sha512": xmlsec.Transform.ECDSA_SHA512,
    SIG_RSA_SHA1: xmlsec.Transform.RSA_SHA1,
}
DIGEST_METHODS: dict[str, Any] = {
    DIGEST_SHA256: xmlsec.Transform.SHA256,
    _MORE + "sha384": xmlsec.Transform.SHA384,
    "http://www.w3.org/2001/04/xmlenc#sha512": xmlsec.Transform.SHA512,
    DIGEST_SHA1: xmlsec.Transform.SHA1,
}
LEGACY_SHA1 = frozenset({SIG_RSA_SHA1, DIGEST_SHA1})
_SIGNING_UPGRADE = {SIG_RSA_SHA1: SIG_RSA_SHA256, DIGEST_SHA1: DIGEST_SHA256}
_ID_NAMES = frozenset({"ID", "Id", "id"})  # local names; "id" also covers xml:id
# Every attribute of the document with a given value, found in C (a Python walk costs several times more).
_ATTRIBUTES_EQUAL_TO = etree.XPath("//@*[. = $value]")


def _ds(name: str) -> str:
    return f"{{{DS}}}{name}"


def _reject(reason: str) -> SignatureError:
    # SignatureError is what SecurityContext._check_signature and MetaDataExtern expect on failure.
    return SignatureError(f"XML signature rejected: {reason}")


class DocumentRefused(SignatureError, WebworkSSOError):
    """A document refused before any signature is looked at; ``kind`` says why: ``missing``
    (no document), ``dtd`` (a DOCTYPE, DTD or entity) or ``malformed`` (not well-formed XML)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"XML signature rejected: {reason}")
        self.kind = kind


def safe_parser() -> etree.XMLParser:
    """A parser that loads no DTD, expands no entity, reaches no network and keeps libxml2's
    depth and size limits. A new one per document: an lxml parser is not for sharing between
    threads."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def refuse_dtd(tree: etree._ElementTree) -> None:
    """Refuse a parsed document that declares a DTD or holds an entity reference. The byte scan
    in :func:`parse_xml` misses other encodings (UTF-16); the parsed document tells the truth."""
    # libxml2 names a DOCTYPE whenever the document has an internal or external subset.
    if tree.docinfo.doctype:
        raise DocumentRefused("dtd", "document has a DOCTYPE or entity declaration")
    # iter(etree.Entity) filters inside lxml: no Python step per node of every response.
    if next(tree.iter(etree.Entity), None) is not None:
        raise DocumentRefused("dtd", "document has an entity reference")


def parse_xml(text: str | bytes) -> etree._ElementTree:
    """Parse a SAML document safely; any DOCTYPE, DTD or entity declaration is refused.

    Three layers, each tested alone: a byte scan refuses declarations before libxml2 sees them,
    the parser could not act on one anyway (:func:`safe_parser`), and the parsed document is
    checked for any that got through (:func:`refuse_dtd`)."""
    if not isinstance(text, (str, bytes)):
        raise DocumentRefused("missing", "no XML document given")  # pysaml2 passing origdoc=None
    data = text.encode("utf-8") if isinstance(text, str) else text
    if re.search(rb"<!(DOCTYPE|ENTITY)", data, re.IGNORECASE):
        raise DocumentRefused("dtd", "document has a DOCTYPE or entity declaration")
    try:
        tree = etree.fromstring(data, safe_parser()).getroottree()
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise DocumentRefused("malformed", f"not well-formed XML ({exc})") from exc
    refuse_dtd(tree)
    return tree


def _qualified_name(element: etree._Element) -> str:
    qname = etree.QName(element)
    return f"{qname.namespace}:{qname.localname}"


def _find_target(root: etree._Element, node_name: str, node_id: str | None) -> etree._Element:
    """The one element pysaml2 means: the only carrier of its ID in the document, a ``node_name``.

    pysaml2 passes no ``node_id`` for signed metadata: then the root is meant.
    """
    wanted = node_id if node_id is not None else root.get("ID")
    target = root
    if wanted is not None:
        # Any ID-like attribute (ID, Id, id, xml:id, in any namespace: xmlsec and libxml2 match by local
        # name) with this value counts, so "#<ID>" can only ever resolve to the element checked here.
        # Counted per attribute: one element holding it twice (ID and xml:id) is refused too.
        carriers = [
            value.getparent()
            for value in _ATTRIBUTES_EQUAL_TO(root, value=wanted)
            if etree.QName(value.attrname).localname in _ID_NAMES
        ]
        if len(carriers) > 1:
            raise _reject(f"ID {wanted!r} is carried {len(carriers)} times")
        if not carriers or carriers[0].get("ID") != wanted:
            raise _reject(f"no element with ID {wanted!r}")
        target = carriers[0]
    if _qualified_name(target) != node_name:
        raise _reject(f"element with ID {wanted!r} is not a {node_name}")
    return target


def _check_signature_shape(
    target: etree._Element, *, accept_sha1: bool, signing: bool = False
) -> etree._Element:
    """Enforce saml-core 5.4 and our algorithm lists on the target's Signature; return that Signature."""
    signatures = target.findall(_ds("Signature"))
    if len(signatures) != 1:
        raise _reject(f"expected one ds:Signature child, found {len(signatures)}")
    signature = signatures[0]
    parts = list(signature.iterchildren("*"))
    tags = [part.tag for part in parts]
    if tags[:2] != [_ds("SignedInfo"), _ds("SignatureValue")] or tags[2:] not in (
        [],
        [_ds("KeyInfo")],
    ):
        raise _reject(
            "ds:Signature must hold SignedInfo, SignatureValue and at most KeyInfo (no ds:Object)"
        )
    signed_info = parts[0]
    info_tags = [c.tag for c in signed_info.iterchildren("*")]
    if info_tags != [_ds("CanonicalizationMethod"), _ds("SignatureMethod"), _ds("Reference")]:
        raise _reject(
            "SignedInfo must hold CanonicalizationMethod, SignatureMethod and exactly one Reference"
        )
    c14n, method, reference = signed_info.iterchildren("*")
    _check_c14n(c14n)
    _check_algorithm(method, SIGNATURE_METHODS, accept_sha1, signing)
    if len(method):
        raise _reject("SignatureMethod parameters (e.g. HMACOutputLength) are not allowed")

    target_id = target.get("ID")
    allowed_uris = {f"#{target_id}"} if target_id else set()
    if target.getparent() is None and not signing:
        allowed_uris.add("")  # a whole-document signature on the root (some signed metadata)
    if reference.get("URI") not in allowed_uris:
        raise _reject(
            f"Reference URI {reference.get('URI')!r} does not point at the signed element"
        )
    ref_children = [c.tag for c in reference.iterchildren("*")]
    if ref_children != [_ds("Transforms"), _ds("DigestMethod"), _ds("DigestValue")]:
        raise _reject("Reference must hold Transforms, DigestMethod and DigestValue")
    transforms = list(reference[0].iterchildren("*"))
    algorithms = [t.get("Algorithm") for t in transforms]
    if any(t.tag != _ds("Transform") for t in transforms) or algorithms not in (
        [ENVELOPED],
        [ENVELOPED, EXC_C14N],
    ):
        raise _reject(
            f"transforms must be enveloped-signature and optionally exclusive c14n, not {algorithms}"
        )
    if len(transforms[0]):
        raise _reject("the enveloped-signature transform takes no parameters")
    if len(transforms) == 2:
        _check_c14n(transforms[1])
    _check_algorithm(reference[1], DIGEST_METHODS, accept_sha1, signing)
    return signature


def _check_c14n(element: etree._Element) -> None:
    if element.get("Algorithm") != EXC_C14N:
        raise _reject(f"canonicalization {element.get('Algorithm')!r} is not exclusive c14n")
    # The one parameter exclusive c14n has (Okta, ADFS and Shibboleth send PrefixList="xs").
    if any(c.tag != f"{{{EXC_C14N}}}InclusiveNamespaces" for c in element.iterchildren("*")):
        raise _reject("unexpected canonicalization parameters")


def _check_algorithm(
    element: etree._Element, allowed: Mapping[str, Any], accept_sha1: bool, signing: bool
) -> None:
    algorithm = element.get("Algorithm")
    if signing and algorithm in _SIGNING_UPGRADE:
        element.set("Algorithm", _SIGNING_UPGRADE[algorithm])  # we never produce SHA-1
        return
    if algorithm not in allowed or (algorithm in LEGACY_SHA1 and not accept_sha1):
        raise _reject(f"algorithm {algorithm!r} is not allowed")


def load_certificate_der(cert: str | bytes) -> bytes:
    """The DER of a certificate given as a file name, PEM text, base64 DER (as metadata has it) or DER."""
    if isinstance(cert, str) and "-----BEGIN" not in cert and os.path.isfile(cert):
        with open(cert, "rb") as handle:
            data = handle.read()
    else:
        data = cert.encode("ascii") if isinstance(cert, str) else cert
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            certificate = x509.load_pem_x509_certificate(data)
        else:
            try:
                der = base64.b64decode(b"".join(data.split()), validate=True)
            except binascii.Error:
                der = data  # already DER (cert_type "der")
            certificate = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise SigverError(f"not a certificate: {exc}") from exc
    return certificate.public_bytes(Encoding.DER)


@functools.lru_cache(maxsize=256)
def verification_key(certificate_der: bytes) -> xmlsec.Key:
    """The public key of a metadata certificate, as xmlsec wants it; loaded once per certificate.

    Only the key is used: in SAML the metadata is the trust anchor, so the certificate is a
    container (its validity dates and issuer are not checked, as by pysaml2 and Okta). A bare
    key also verifies faster than a certificate-wrapped one, and xmlsec copies it into each
    context (``context.key = ...``), so one cached Key serves every thread.
    """
    try:
        public_key = x509.load_der_x509_certificate(certificate_der).public_key()
        pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM)
    except (ValueError, TypeError, xmlsec.Error) as exc:
        raise SigverError(f"unusable metadata certificate ({exc})") from exc


def load_own_private_key(pem: bytes) -> PrivateKeyTypes:
    """A private key of this site's own (an SP key opened from the vault, whose AES-GCM seal
    already proved it is ours, or a dev/test IdP's key made here), loaded without the RSA
    consistency check: OpenSSL 3 spends ~60 ms proving the primes of a key we generated,
    at every SP a worker builds. A key from anywhere else must not come through here."""
    return load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)


def read_private_key(key_file: str | bytes) -> bytes:
    """A PEM private key given as bytes, PEM text or a file name (as pysaml2 configs give it)."""
    if isinstance(key_file, bytes):
        return key_file
    if "-----BEGIN" in key_file:
        return key_file.encode("ascii")
    with open(key_file, "rb") as handle:
        return handle.read()


def _serialize(tree: etree._ElementTree, source: str | bytes) -> str:
    """The signed document as text, with an XML declaration only if the statement had one."""
    # Nothing may precede a declaration, so the first bytes tell.
    declared = (
        source.startswith("<?xml") if isinstance(source, str) else source.startswith(b"<?xml")
    )
    return etree.tostring(tree, encoding="UTF-8", xml_declaration=declared).decode("utf-8")


class XmlsecBackend(CryptoBackend):
    """pysaml2 ``CryptoBackend`` doing XML-DSig in-process with python-xmlsec (see the module doc)."""

    def __init__(self, *, accept_sha1: bool = True) -> None:
        super().__init__()
        self.accept_sha1 = accept_sha1
        self._signature_transforms = [xmlsec.Transform.EXCL_C14N, *self._allowed(SIGNATURE_METHODS)]
        self._reference_transforms = [
            xmlsec.Transform.ENVELOPED,
            xmlsec.Transform.EXCL_C14N,
            *self._allowed(DIGEST_METHODS),
        ]

    @property
    def version(self) -> str:
        return ".".join(str(n) for n in xmlsec.get_libxmlsec_version())

    def validate_signature(
        self,
        signedtext: str | bytes,
        cert_file: str | bytes,
        cert_type: str,
        node_name: str,
        node_id: str | None,
    ) -> bool:
        """True when the element (node_name, node_id) carries a valid signature by ``cert_file``'s key.

        ``cert_file`` is what pysaml2 hands over: a temporary PEM file holding one certificate from the
        issuer's metadata (or, for signed metadata, the configured file). Every failure raises
        ``SignatureError``; pysaml2 then tries the issuer's next metadata certificate, if any.
        """
        tree = parse_xml(signedtext)
        try:
            key_der = load_certificate_der(cert_file)
        except SigverError as exc:
            raise _reject(f"unusable metadata certificate ({exc})") from exc
        self.verify_element(tree.getroot(), node_name, node_id, [key_der])
        return True

    def verify_element(
        self,
        root: etree._Element,
        node_name: str,
        node_id: str | None,
        certificates: Sequence[bytes],
    ) -> etree._Element:
        """Verify the signature of the element (node_name, node_id) in an already parsed document.

        ``certificates`` are DER certificates from the IdP's metadata (several during a rollover);
        the first that verifies wins. Returns the verified element; raises ``SignatureError``.
        The document must come from :func:`parse_xml` or an equally strict parser (no DTDs).
        """
        target = _find_target(root, node_name, node_id)
        signature = _check_signature_shape(target, accept_sha1=self.accept_sha1)
        if not certificates:
            raise _reject("the IdP's metadata has no signing certificate")
        failures = []
        for der in certificates:
            try:
                key = verification_key(der)
            except SigverError as exc:
                failures.append(str(exc))
                continue
            context = self.context_for(key)
            try:
                if target.get("ID"):
                    # Only the target answers to "#ID" (rather than xmlsec.tree.add_ids on every element).
                    context.register_id(target, "ID")
                context.verify(signature)
                return target
            except xmlsec.Error as exc:  # VerificationError included
                failures.append(f"signature does not verify ({exc})")
        raise _reject("; ".join(failures))

    def sign_statement(
        self, statement: Any, node_name: str, key_file: str | bytes, node_id: str | None
    ) -> str:
        """Sign the element with ID ``node_id`` (the root when None) into its Signature template."""
        source = statement if isinstance(statement, (str, bytes)) else str(statement)
        tree = parse_xml(source)
        target = _find_target(tree.getroot(), node_name, node_id)
        signature = _check_signature_shape(target, accept_sha1=False, signing=True)
        if not key_file:
            raise SignatureError("no signing key configured (key_file)")
        try:
            key = xmlsec.Key.from_memory(read_private_key(key_file), xmlsec.KeyFormat.PEM)
        except (OSError, xmlsec.Error) as exc:
            raise SignatureError(f"cannot load the signing key: {exc}") from exc
        context = self.context_for(key)
        try:
            context.register_id(target, "ID")
            context.sign(signature)
        except xmlsec.Error as exc:
            raise SignatureError(f"signing failed: {exc}") from exc
        return _serialize(tree, source)

    def context_for(self, key: xmlsec.Key) -> xmlsec.SignatureContext:
        """A context with the key set (so KeyInfo is never consulted) and only our algorithms
        enabled: libxmlsec itself refuses any other, behind the shape check that does first."""
        context = xmlsec.SignatureContext()
        context.key = key
        for transform in self._signature_transforms:
            context.enable_signature_transform(transform)
        for transform in self._reference_transforms:
            context.enable_reference_transform(transform)
        return context

    def _allowed(self, table: Mapping[str, Any]) -> list[Any]:
        return [
            transform
            for uri, transform in table.items()
            if self.accept_sha1 or uri not in LEGACY_SHA1
        ]

    def encrypt(self, *args: Any, **kwargs: Any) -> str:
        raise SigverError(
            "encrypted assertions are not supported here; use encryption.EncryptingBackend"
        )

    # encryption.EncryptingBackend overrides these two; nothing encrypts anything but assertions.
    encrypt_assertion = decrypt = encrypt
