"""The Assertion Consumer Service checks: every one explicit, each with its own reason code.

The response is parsed once, strictly (no DTD: posted.py), and everything happens on that one
tree: structure, status, destination, issuer, audience, bearer recipient and the request it
answers, time windows, then the signature (crypto.py, keys from the IdP metadata only), then the
identity is read (subject.py) from the very assertion element whose signature (or whose
enclosing Response's) verified.

An EncryptedAssertion (encryption.py decrypts it, acs_encrypted.py checks its structure) takes
one more step, between the response checks and the assertion checks: a Response signature,
which covers the encrypted form, is verified on the posted tree first; then the assertion is
decrypted with the workspace's SP keys (current, next, previous) into a new document, and
every assertion check runs there. Anyone can encrypt to the SP's public certificate, so
decrypting proves nothing: a decrypted assertion in an unsigned Response must carry its own
valid signature, exactly as a plaintext one.

pysaml2 builds the SP (metadata, AuthnRequests) but does not parse responses here: its
parser re-parses and schema-checks the document, which cost several times our whole check
(benchmarks/acs_bench.py) while adding no check this module does not make.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Collection, Mapping
from typing import Any

from lxml import etree
from saml2.sigver import SignatureError

from ..logs import package_logger
from .acs_encrypted import (
    DECRYPTION_FAILED,
    check_decrypted_structure,
    check_encrypted_structure,
    decryption_refused,
)
from .crypto import XmlsecBackend
from .encryption import DecryptionRefused, decrypt_assertion
from .posted import (
    ASSERTION,
    DS,
    ENCRYPTED_ASSERTION,
    SAML,
    SAMLP,
    SIGNATURE,
    Peek,
    single_text,
)
from .rejection import Rejection
from .sp import ServiceProvider
from .subject import (
    MAX_NAME_ID,
    attribute_names,
    attribute_values,
    bounded,
    first_value,
    read_groups,
    read_subject,
    session_index,
)

log = package_logger(__name__)

SIGNATURES = XmlsecBackend()

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"


@dataclasses.dataclass(frozen=True)
class VerifiedAssertion:
    assertion_id: str
    email: str
    in_response_to: str | None
    expires_at: dt.datetime
    given_name: str | None
    family_name: str | None
    display_name: str | None
    # The subject as the IdP named it, and the session it started there: single logout names
    # them back to the IdP (its LogoutRequest is matched on them, ours must carry them).
    name_id: str
    name_id_format: str | None  # None: no Format attribute (unspecified)
    session_index: str | None  # None: the AuthnStatement has none
    # The NameID's qualifiers, which our LogoutRequest repeats (None: absent, or too long).
    name_qualifier: str | None = None
    sp_name_qualifier: str | None = None
    # The group names the assertion carried (subject.read_groups): the member's asserted
    # groups are replaced by these at sign-in (roles.py).
    groups: tuple[str, ...] = ()
    # How many distinct usable group names it carried beyond those kept (roles.py's cap, or
    # a pending sign-in's cookie): told to the owner at sign-in (saml/login_flow.py).
    groups_dropped: int = 0


class AssertionConsumer:
    """Checks one response for one workspace's SP; raises Rejection or returns the identity."""

    def __init__(
        self,
        provider: ServiceProvider,
        *,
        clock_skew: dt.timedelta,
        attribute_map: Mapping[str, str] | None = None,
        mapped_groups: Callable[[], Collection[str]] | None = None,
    ) -> None:
        assert provider.idp is not None
        # The role_keys of the groups the workspace maps to roles, asked only when an
        # assertion carries more groups than are kept (roles.clean_asserted_groups).
        self.mapped_groups = mapped_groups
        # The owner's attribute mapping (attribute_map.py): which attribute holds what.
        self.attribute_map = dict(attribute_map or {})
        self.provider = provider
        self.idp = provider.idp
        self.clock_skew = clock_skew
        # The owner's choice (settings page): a plaintext assertion is then refused.
        self.require_encryption = bool(
            provider.keys is not None and provider.keys.require_encrypted_assertions
        )

    def consume(
        self, seen: Peek, outstanding: Mapping[str, str], *, now: dt.datetime
    ) -> VerifiedAssertion:
        found = self.check_structure(seen.root)
        self.check_response(seen.root, outstanding)
        # check_structure gives the one Assertion, or the one EncryptedAssertion to open first.
        assertion = self.decrypt(seen, found) if found.tag == ENCRYPTED_ASSERTION else found
        self.check_assertion(assertion, now, seen.in_response_to)
        if not assertion.get("ID"):
            raise Rejection("invalid_response", "the assertion has no ID")
        return self.verify(seen, assertion)

    # -- our explicit checks ----------------------------------------------------------------

    def check_structure(self, root: Any) -> Any:
        """The one Assertion, or the one EncryptedAssertion, directly inside the Response."""
        # One walk of the tree for both kinds: a plaintext sign-in costs what it did.
        assertions = list(root.iter(ASSERTION, ENCRYPTED_ASSERTION))
        encrypted = [a for a in assertions if a.tag == ENCRYPTED_ASSERTION]
        if encrypted:
            return check_encrypted_structure(root, assertions, encrypted)
        if assertions and self.require_encryption:
            raise Rejection(
                "encryption_required",
                "this workspace requires encrypted assertions and the IdP sent a plaintext one: "
                "turn on assertion encryption in the IdP with the SP certificate from the SP "
                "metadata, or stop requiring it in the workspace's SAML settings",
            )
        # Exactly one, and directly in the Response: a second copy anywhere (Extensions,
        # Object, Advice) is how signature-wrapping attacks smuggle an identity in.
        if len(assertions) != 1 or assertions[0].getparent() is not root:
            raise Rejection(
                "assertion_count",
                "the response must hold exactly one assertion, "
                f"directly inside it (found {len(assertions)})",
            )
        signed_response = root.find(f"{{{DS}}}Signature") is not None
        signed_assertion = assertions[0].find(f"{{{DS}}}Signature") is not None
        if not (signed_response or signed_assertion):
            raise Rejection("unsigned", "neither the response nor its assertion is signed")
        return assertions[0]

    # -- an encrypted assertion ----------------------------------------------------------------

    def decrypt(self, seen: Peek, encrypted: Any) -> Any:
        """The Assertion of ``encrypted`` (the Response's one EncryptedAssertion), decrypted
        into a new document whose root is a copy of the Response: every assertion check, and
        the assertion's own signature, run on that document.

        A Response signature covers the encrypted form: it is verified here, on the posted
        tree, before anything is decrypted, and never again (the copy in the new document no
        longer matches what was signed). Decrypting proves nothing (the SP certificate is
        public): unless the Response's signature verified, the decrypted assertion must be
        signed itself (verify() checks that signature).
        """
        root = seen.root
        if root.find(SIGNATURE) is not None:
            self.verify_signature(root, root)
            # What follows is the IdP's own: a refusal from here on is its failure (a row of
            # its own in the owner's diagnostics, failures.py), as after verify() for plaintext.
            seen.response_verified = seen.signature_verified = True
        keys = self.provider.decryption_keys
        try:
            assertion = decrypt_assertion(encrypted, keys)
        except DecryptionRefused as refused:
            raise decryption_refused(refused, len(keys)) from None
        seen.decrypted = assertion
        if seen.response_verified:
            check_decrypted_structure(seen, assertion)
            return assertion
        # Nothing signed vouched for the cipher text, and AES-CBC is malleable: an attacker who
        # alters it could tell plaintext that parses from plaintext that does not by which
        # refusal comes back (Jager and Somorovsky, 2011). So the assertion's own signature is
        # checked first, and every refusal until it holds reads as a decryption failure to
        # the sender; the owner's diagnostics keep the real code.
        try:
            check_decrypted_structure(seen, assertion)
            self.verify_signature(assertion.getroottree().getroot(), assertion)
        except Rejection as refused:
            raise Rejection(
                refused.code, refused.detail, status=refused.status, public_code=DECRYPTION_FAILED
            ) from None
        seen.assertion_verified = seen.signature_verified = True
        return assertion

    def check_response(self, root: Any, outstanding: Mapping[str, str]) -> None:
        status = root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
        if status is None or status.get("Value") != SUCCESS:
            code = status.get("Value") if status is not None else "none"
            raise Rejection("idp_status_error", f"the IdP did not sign the person in ({code})")
        destination = root.get("Destination")
        if destination != self.provider.urls.acs_url:
            raise Rejection(
                "destination_mismatch",
                f"the response is addressed to "
                f"{destination!r}; this workspace's ACS is {self.provider.urls.acs_url}",
            )
        self.check_issuer(root, required=False)
        in_response_to = root.get("InResponseTo")
        if in_response_to == "":  # posted.peek refuses it first; never rely on that alone
            raise Rejection(
                "empty_in_response_to",
                'the IdP sent InResponseTo="" (empty), which the SAML schema does not allow',
            )
        if in_response_to is None:
            if not self.idp.allow_idp_initiated:
                raise Rejection(
                    "unsolicited_not_allowed",
                    "IdP-initiated sign-in is switched off "
                    "for this workspace; start from the sign-in page",
                )
        elif in_response_to not in outstanding:
            raise Rejection(
                "unknown_in_response_to",
                "the response answers a sign-in request "
                "this site did not make, or one already used or expired",
            )

    def check_issuer(self, element: Any, *, required: bool) -> None:
        issuer = element.find(f"{{{SAML}}}Issuer")
        if issuer is None:
            if required:
                raise Rejection("issuer_mismatch", "the assertion names no issuer")
            return
        value = single_text(issuer)
        if value != self.idp.entity_id:
            raise Rejection(
                "issuer_mismatch",
                f"the IdP sent issuer {value!r}; this workspace expects {self.idp.entity_id!r}",
            )

    def check_assertion(self, assertion: Any, now: dt.datetime, in_response_to: str | None) -> None:
        self.check_issuer(assertion, required=True)
        conditions = assertion.find(f"{{{SAML}}}Conditions")
        if conditions is None:
            raise Rejection("missing_conditions", "the assertion has no Conditions")
        self.check_window(conditions, now)
        audiences = [
            text
            for a in conditions.iter(f"{{{SAML}}}Audience")
            if (text := single_text(a)) is not None
        ]
        expected = self.provider.urls.sp_entity_id
        if expected not in audiences:
            raise Rejection(
                "audience_mismatch",
                f"audience mismatch: the IdP sent "
                f"{', '.join(audiences) or 'none'}, this workspace expects {expected}",
            )
        confirmations = [
            c for c in assertion.iter(f"{{{SAML}}}SubjectConfirmation") if c.get("Method") == BEARER
        ]
        if not confirmations:
            raise Rejection(
                "no_bearer_confirmation", "the assertion has no bearer subject confirmation"
            )
        recipients = []
        for confirmation in confirmations:
            data = confirmation.find(f"{{{SAML}}}SubjectConfirmationData")
            if data is None:
                continue
            recipients.append(data.get("Recipient"))
            if data.get("Recipient") == self.provider.urls.acs_url:
                # The replay cache keeps an assertion ID only until its NotOnOrAfter (plus the
                # skew): without one, an assertion would be valid for ever and replayable once
                # forgotten. saml-profiles 4.1.4.2: bearer confirmations MUST carry it.
                if not data.get("NotOnOrAfter"):
                    raise Rejection(
                        "missing_not_on_or_after",
                        "the assertion's bearer "
                        "confirmation has no NotOnOrAfter, so it would never expire",
                    )
                self.check_window(data, now)
                # The request answered is the one the signed confirmation names: the Response's
                # InResponseTo is unsigned when only the assertion is signed, and rewriting it
                # would pass an unsolicited assertion (or one made for another request) off
                # as the answer to a live request (saml-profiles 4.1.4.2 and 4.1.4.3).
                if data.get("InResponseTo") != in_response_to:
                    raise Rejection(
                        "in_response_to_mismatch",
                        "the assertion answers "
                        f"{data.get('InResponseTo') or 'no request'}, the response "
                        f"{in_response_to or 'no request'}",
                    )
                return
        raise Rejection(
            "recipient_mismatch",
            f"the assertion is for recipient "
            f"{', '.join(map(str, recipients)) or 'none'}; this workspace's ACS is "
            f"{self.provider.urls.acs_url}",
        )

    def check_window(self, element: Any, now: dt.datetime) -> None:
        not_before = _instant(element.get("NotBefore"))
        not_on_or_after = _instant(element.get("NotOnOrAfter"))
        if not_before is not None and now + self.clock_skew < not_before:
            raise Rejection(
                "not_yet_valid",
                f"the assertion is valid only from {not_before:%Y-%m-%d %H:%M:%S}Z; "
                "check the clocks of this server and the IdP",
            )
        if not_on_or_after is not None and now - self.clock_skew >= not_on_or_after:
            raise Rejection(
                "expired", f"the assertion expired at {not_on_or_after:%Y-%m-%d %H:%M:%S}Z"
            )

    # -- the signature, and reading the identity ------------------------------------------------

    def verify(self, seen: Peek, assertion: Any) -> VerifiedAssertion:
        """Verify the IdP's signature on this very tree (for an encrypted assertion: the
        decrypted document, the Response's signature having verified before decryption), then
        read identity from ``assertion``.

        Whichever of the Response and the Assertion carries a signature must verify with a
        certificate from the IdP's metadata (both, when both are signed). The checks are
        crypto.py's strict ones: the signed element is the only carrier of its ID, one
        enveloped signature referencing it, allowed algorithms only.
        """
        in_response_to = seen.in_response_to
        self.verify_signatures(seen, assertion)
        seen.signature_verified = True
        mapping = self.attribute_map
        email, name_id, name_id_format = read_subject(assertion, mapping.get("email"))
        qualifiers = assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").attrib
        attributes = attribute_values(assertion)
        expires = _assertion_expiry(assertion) or dt.datetime.now(dt.UTC)
        try:  # the replay cache keeps it until then plus the skew: past year 9999, no date
            expires_at = expires + self.clock_skew
        except OverflowError:
            raise Rejection(
                "bad_time",
                f"the assertion is valid until {expires:%Y-%m-%d}, "
                "beyond any date this site can keep",
            ) from None
        groups = read_groups(attributes, attribute_names(mapping, "groups"), self.mapped_groups)
        return VerifiedAssertion(
            assertion_id=assertion.get("ID") or "",
            email=email,
            in_response_to=in_response_to,
            expires_at=expires_at,
            given_name=first_value(attributes, attribute_names(mapping, "given_name")),
            family_name=first_value(attributes, attribute_names(mapping, "family_name")),
            display_name=first_value(attributes, attribute_names(mapping, "display_name")),
            name_id=name_id,
            name_id_format=name_id_format,
            session_index=session_index(assertion),
            name_qualifier=bounded(qualifiers.get("NameQualifier"), MAX_NAME_ID),
            sp_name_qualifier=bounded(qualifiers.get("SPNameQualifier"), MAX_NAME_ID),
            groups=groups.names,
            groups_dropped=groups.dropped,
        )

    def verify_signatures(self, seen: Peek, assertion: Any) -> None:
        """Each signature present verifies: the Response's on the posted tree (unless decrypt()
        verified it there already), the Assertion's in the Assertion's own document (the posted
        tree, or the decrypted one)."""
        root = seen.root
        signed_response = root.find(SIGNATURE) is not None
        signed_assertion = assertion.find(SIGNATURE) is not None
        if not (signed_response or signed_assertion):
            # check_structure refuses this already; never rely on it alone
            raise Rejection("unsigned", "neither the response nor its assertion is signed")
        if signed_response and not seen.response_verified:
            self.verify_signature(root, root)
            seen.response_verified = True
        if signed_assertion and not seen.assertion_verified:
            self.verify_signature(assertion.getroottree().getroot(), assertion)

    def verify_signature(self, document: Any, element: Any) -> None:
        name = f"{etree.QName(element).namespace}:{etree.QName(element).localname}"
        try:
            SIGNATURES.verify_element(
                document, name, element.get("ID"), self.provider.idp_certificates
            )
        except SignatureError as exc:
            log.info("signature rejected: %s", exc)
            raise Rejection(
                "signature_invalid",
                "the response's signature does not verify with the IdP's certificates",
            ) from None


def _instant(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())  # "Z" included (Python 3.11)
    except ValueError:
        raise Rejection("bad_time", f"unreadable time {value!r} in the assertion") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _assertion_expiry(assertion: Any) -> dt.datetime | None:
    times = [_instant(e.get("NotOnOrAfter")) for e in assertion.iter() if e.get("NotOnOrAfter")]
    return max((t for t in times if t), default=None)
