"""A refused SAML response, or sign-in start: the owner's reason and what a stranger may read.

Below every other SAML module (posted.py, acs.py, login_state.py, the sign-in flow), so each
can refuse with it.
"""

from __future__ import annotations

from ..errors import WebworkSSOError


class Rejection(WebworkSSOError):
    """A response (or a sign-in start) we refuse.

    ``code`` and ``detail`` are the owner's: the server log and the workspace's audit log
    (diagnostics on the settings page) get them, and ``detail`` may name configuration
    (entity IDs, URLs, expected values) and quote what the response said. Whoever sent the
    request, unauthenticated by definition, sees only ``public_code`` and :attr:`public_text`:
    a fixed sentence per code (PUBLIC_REASONS), never built from values, so nothing about a
    workspace's configuration can leak through a refusal page. ``public_code`` differs from
    ``code`` only where the reason itself would tell a stranger something (a workspace's plan,
    its SSO switch, whether it exists): those all read ``sso_unavailable``.
    """

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int = 400,
        public_code: str | None = None,
        repeatable: bool = False,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status
        self.public_code = public_code or code
        # True when a caller can cause it again at will even with a validly signed response
        # (a replay): the audit log counts such refusals instead of recording each.
        self.repeatable = repeatable

    @property
    def public_text(self) -> str:
        return PUBLIC_REASONS.get(self.public_code, "The sign-in response was refused.")


# What a refusal page says, per public reason code. The codes are what the docs and an
# owner's diagnostics use, so the page keeps them; the sentences carry no values at all.
PUBLIC_REASONS: dict[str, str] = {
    "sso_unavailable": "Single sign-on is not available at this address.",
    "no_sign_on_binding": "This workspace's identity provider accepts sign-in requests by no "
    "method this site can send (HTTP-Redirect or HTTP-POST). Ask your administrator.",
    "too_large": "The sign-in response is larger than this site accepts.",
    "missing_response": "The request carries no sign-in response.",
    "bad_encoding": "The sign-in response is not encoded correctly.",
    "dtd_forbidden": "The sign-in response contains a DTD, which is never allowed.",
    "malformed_xml": "The sign-in response is not well-formed XML.",
    "not_a_response": "The document sent is not a SAML response.",
    "assertion_count": "The sign-in response must hold exactly one assertion, directly inside it.",
    # Encrypted assertions (acs.py, encryption.py): each points the admin at the setting to fix.
    "encrypted_and_plain": "The sign-in response holds an encrypted assertion beside a plain "
    "one, which is never allowed.",
    "decryption_failed": "The encrypted assertion could not be opened and verified: the "
    "identity provider may have encrypted it for a key this workspace does not hold (give it "
    "the SP certificate from this workspace's SP metadata).",
    "encrypted_malformed": "The encrypted assertion is damaged or incomplete: parts of it are "
    "missing, cut short or out of place.",
    "encryption_algorithm": "The identity provider encrypted the assertion with an algorithm "
    "this site does not accept: set it to RSA-OAEP (or RSA 1.5) key transport with AES-GCM "
    "or AES-CBC content encryption.",
    "encryption_required": "This workspace requires encrypted assertions and the identity "
    "provider sent a plain one: turn on assertion encryption in the identity provider with "
    "the SP certificate from the SP metadata, or stop requiring it in the SAML settings.",
    "unsigned": "The sign-in response is not signed.",
    "idp_status_error": "The identity provider did not sign you in.",
    "destination_mismatch": "The sign-in response is addressed to another place.",
    "issuer_mismatch": "The sign-in response does not come from this workspace's identity "
    "provider.",
    "unsolicited_not_allowed": "Sign-in has to start from this site: start from the sign-in page.",
    "unknown_in_response_to": "The sign-in response answers a request this site did not "
    "make, or one already used or expired. Please sign in again.",
    "empty_in_response_to": "The identity provider sent an empty InResponseTo, which SAML does "
    "not allow (samlify's default template does this): it must leave the attribute out, or "
    "name the request it answers.",
    "missing_conditions": "The assertion has no conditions.",
    "not_yet_valid": "The assertion is not valid yet: the clocks of this site and the "
    "identity provider may differ.",
    "expired": "The assertion has expired. Please sign in again.",
    "audience_mismatch": "The assertion is meant for another service provider.",
    "no_bearer_confirmation": "The assertion has no bearer subject confirmation.",
    "missing_not_on_or_after": "The assertion's subject confirmation never expires, which "
    "is not allowed.",
    "in_response_to_mismatch": "The assertion and the response answer different requests.",
    "recipient_mismatch": "The assertion is meant for another recipient.",
    "bad_time": "The assertion holds a time that cannot be read.",
    "invalid_response": "The sign-in response is not valid.",
    "signature_invalid": "The sign-in response's signature does not verify.",
    "bad_name_id": "The assertion does not name the person by an email address.",
    "no_email_attribute": "The identity provider names the person by a transient or persistent "
    "identifier and sends no email address: it must send the email in an attribute named "
    "email (or mail, or the emailaddress claim).",
    "replayed": "This sign-in response was already used. Please sign in again.",
    # The identity rules (members/lifecycle.py): the owner's diagnostics say which address.
    "domain_verified_elsewhere": "This workspace's identity provider may not sign in that "
    "address: its domain belongs to another organisation.",
    "domain_not_verified": "This workspace's identity provider may not sign in that address "
    "yet: its domain is not verified, and the person was not "
    "provisioned. Ask your administrator.",
    "invalid_name_id": "The assertion does not name the person by a usable email address.",
    # The browser binding (login_state.py).
    "request_not_bound": "This sign-in was started in another browser, or its cookie is "
    "gone. Please sign in again from this browser.",
    "sign_in_expired": "This sign-in was already finished, or took too long. Please sign in again.",
    "test_expired": "This test sign-in is not valid or has expired. Start it again from the "
    "settings page.",
    "pending_too_large": "This sign-in carries too much to finish here. Please start it from "
    "this site's sign-in page.",
    # Single logout (single_logout.py): a refused LogoutRequest ends nothing.
    "slo_too_large": "The sign-out message is larger than this site accepts.",
    "slo_malformed": "The sign-out message is not valid.",
    "slo_missing_message": "The request carries no sign-out message.",
    "slo_bad_encoding": "The sign-out message is not encoded correctly.",
    "slo_dtd_forbidden": "The sign-out message contains a DTD, which is never allowed.",
    "slo_not_a_request": "The sign-out message is not a SAML LogoutRequest.",
    "slo_not_a_response": "The sign-out message is not a SAML LogoutResponse.",
    "slo_wrapped": "The sign-out message must name exactly one person, directly in it.",
    "slo_unsigned": "The sign-out request is not signed.",
    "slo_signature_invalid": "The sign-out message's signature does not verify.",
    "slo_issuer_mismatch": "The sign-out message does not come from this workspace's identity "
    "provider.",
    "slo_destination_mismatch": "The sign-out message is addressed to another place.",
    "slo_bad_time": "The sign-out message holds a time that cannot be read.",
    "slo_not_yet_valid": "The sign-out request is not valid yet: the clocks of this site and "
    "the identity provider may differ.",
    "slo_expired": "The sign-out request has expired.",
    "slo_bad_name_id": "The sign-out request does not name the person in a way this site reads.",
    "slo_replayed": "This sign-out request was already used.",
    "slo_unknown_in_response_to": "The sign-out response answers a request this browser did "
    "not send, or one already answered or expired. You are signed out of this site.",
}


# Every code a refusal may carry: the public ones, and those only the owner sees (the reasons
# behind "sso_unavailable"). The metrics label sign-ins by these; any other code counts as
# "other", so the label stays a fixed set (tests/saml/test_rejection.py checks the source).
REASON_CODES: frozenset[str] = frozenset(PUBLIC_REASONS) | {
    "unknown_workspace",
    "plan",
    "sso_disabled",
    "idp_not_configured",
    "sp_key_missing",
    "encrypted_not_assertion",
    "signed_in_as_other",
    "member_deactivated",
}


def reason_label(code: str) -> str:
    """A refusal's code as the metrics' ``reason`` label: one of REASON_CODES, or "other"."""
    return code if code in REASON_CODES else "other"
