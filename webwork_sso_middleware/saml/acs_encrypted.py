"""The ACS checks of an EncryptedAssertion (acs.py runs them, around decrypting it).

Its structure in the posted Response, the structure of the decrypted document, and the
refusal for each kind of DecryptionRefused (encryption.py). AssertionConsumer.decrypt decides
the order (a Response signature first, the decrypted assertion's own before anything else
reads it) and how a refusal reads to the sender.
"""

from __future__ import annotations

from typing import Any

from .encryption import DecryptionRefused
from .posted import ASSERTION, ENCRYPTED_ASSERTION, SAML, SIGNATURE, Peek
from .rejection import Rejection

DECRYPTION_FAILED = "decryption_failed"  # what a stranger reads of any failure to open one


def check_encrypted_structure(root: Any, assertions: list[Any], encrypted: list[Any]) -> Any:
    """The one EncryptedAssertion, directly in the Response, with no plaintext assertion
    anywhere: a plaintext one beside it would be read by one party and the decrypted one
    by another (whether an assertion inside is signed is known only once decrypted)."""
    if len(encrypted) != len(assertions):
        raise Rejection(
            "encrypted_and_plain",
            f"the response holds {len(encrypted)} encrypted and "
            f"{len(assertions) - len(encrypted)} plaintext assertion(s); it must hold "
            "exactly one assertion, encrypted or not",
        )
    if len(encrypted) != 1 or encrypted[0].getparent() is not root:
        raise Rejection(
            "assertion_count",
            "the response must hold exactly one encrypted assertion, "
            f"directly inside it (found {len(encrypted)})",
        )
    return encrypted[0]


def check_decrypted_structure(seen: Peek, assertion: Any) -> None:
    """AssertionConsumer.check_structure's rules for the decrypted document: the decrypted
    assertion is the only assertion (none nested in its Advice, encrypted or not), directly in
    the Response, signed unless the Response's signature verified; peek's rule on empty
    InResponseTo."""
    document = assertion.getroottree().getroot()
    found = list(document.iter(ASSERTION, ENCRYPTED_ASSERTION))
    if found != [assertion] or assertion.getparent() is not document:
        raise Rejection(
            "assertion_count",
            "the decrypted assertion must be the response's only assertion, directly "
            f"inside it (found {len(found)} once decrypted)",
        )
    if not seen.response_verified and assertion.find(SIGNATURE) is None:
        raise Rejection(
            "unsigned",
            "neither the response nor its decrypted assertion is signed (anyone can "
            "encrypt to the SP certificate: encryption proves nothing)",
        )
    confirmations = assertion.iterfind(
        f"{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation/{{{SAML}}}SubjectConfirmationData"
    )
    if any(c.get("InResponseTo") == "" for c in confirmations):
        raise Rejection(
            "empty_in_response_to",
            'the IdP sent InResponseTo="" (empty) in the encrypted assertion, which the '
            "SAML schema does not allow",
        )


def decryption_refused(refused: DecryptionRefused, keys: int) -> Rejection:
    """The refusal for an EncryptedAssertion encryption.py would not decrypt, by its kind."""
    if refused.kind == DecryptionRefused.WRONG_KEY:
        return Rejection(
            "decryption_failed",
            f"none of this workspace's {keys} SP key(s) (current, next, previous) decrypts the "
            "assertion: the IdP encrypted it for another certificate; give the IdP the SP "
            f"certificate from the SP metadata ({refused.reason})",
        )
    if refused.kind == DecryptionRefused.ALGORITHM:
        return Rejection(
            "encryption_algorithm",
            f"{refused.reason}; set the IdP to RSA-OAEP (or RSA 1.5) key transport and AES-GCM "
            "(or AES-CBC) content encryption",
        )
    if refused.kind == DecryptionRefused.MALFORMED:
        return Rejection(
            "encrypted_malformed", f"the encrypted assertion is malformed: {refused.reason}"
        )
    # A stranger reads a decryption failure: which of the two it was tells whether an altered
    # cipher text decrypted to XML (see AssertionConsumer.decrypt).
    return Rejection(
        "encrypted_not_assertion",
        f"the encrypted assertion does not decrypt to one saml:Assertion: {refused.reason}",
        public_code="decryption_failed",
    )
