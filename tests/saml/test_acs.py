"""Each check of the Assertion Consumer Service failing alone: rejected, no session, no member,
and the reason recorded. Responses come from a real IdP; tampering happens after signing."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
import requests
import xmlsec
from lxml import etree

from webwork_sso_middleware.saml.acs import BEARER, DS, AssertionConsumer, VerifiedAssertion
from webwork_sso_middleware.saml.encrypting import Encryption
from webwork_sso_middleware.saml.encryption import AES128_CBC, AES256_GCM, RSA_1_5, RSA_OAEP_MGF1P
from webwork_sso_middleware.saml.posted import SAML, SAMLP, Peek, peek
from webwork_sso_middleware.saml.rejection import Rejection
from webwork_sso_middleware.saml.sp import IdPSettings, ServiceProvider
from webwork_sso_middleware.sp_keys import SpKey, SpKeyRing
from webwork_sso_middleware.store import replay_cache
from webwork_sso_middleware.store.models import SeenAssertion
from webwork_sso_middleware.urls import WorkspaceUrls

from ..store_helpers import transaction
from .conftest import ACS, SP_ID, Site
from .idp import KeyPair, TestIdP, autopost_form, make_key_pair
from .test_app import whoami


def encode(xml: str) -> str:
    return base64.b64encode(xml.encode("utf-8")).decode("ascii")


def honest(site: Site, idp: TestIdP, **overrides: Any) -> dict[str, Any]:
    return {
        "sp_entity_id": site.entity_id("acme"),
        "acs_url": site.acs("acme"),
        "email": "alice@acme.test",
        **overrides,
    }


def assert_rejected(
    site: Site,
    response: requests.Response,
    reason: str,
    status: int = 400,
    *,
    public: str | None = None,
) -> None:
    """``public``: the code the page shows, where it differs from the owner's ``reason``."""
    assert response.status_code == status, response.text
    assert "Set-Cookie" not in response.headers
    assert whoami(response.browser, site).startswith("user=;")  # type: ignore[attr-defined]
    assert f'<span class="reason">{public or reason}</span>' in response.text
    assert "Traceback" not in response.text
    # The page is for whoever posted: no configuration (entity IDs, URLs, expected values).
    assert "://" not in response.text and "expect" not in response.text
    assert site.members() == []
    failures = [e.changes["reason"] for e in site.audit("login_failed")]
    assert failures and failures[-1] == reason


def post(site: Site, saml_response: str) -> requests.Response:
    browser = requests.Session()
    response = site.post_response(browser, "acme", saml_response)
    response.browser = browser  # type: ignore[attr-defined]
    return response


def test_the_honest_response_passes(site: Site, idp: TestIdP, acme: str):
    assert post(site, idp.response(**honest(site, idp))).status_code == 303


def test_signed_response_with_unsigned_assertion_passes(site: Site, idp: TestIdP, acme: str):
    response = post(
        site, idp.response(**honest(site, idp), sign_assertion=False, sign_response=True)
    )
    assert response.status_code == 303


EACH_CHECK = [
    ("audience", "https://other.test/saml/acme/metadata", "audience_mismatch"),
    ("recipient", "https://other.test/saml/acme/acs", "recipient_mismatch"),
    ("destination", "https://other.test/saml/acme/acs", "destination_mismatch"),
    ("issuer", "https://impostor.test/idp", "issuer_mismatch"),
    ("not_on_or_after_offset", -400, "expired"),
    ("not_before_offset", 400, "not_yet_valid"),
    ("in_response_to", "id-never-issued", "request_not_bound"),
]


@pytest.mark.parametrize("field, value, reason", EACH_CHECK)
def test_each_check_failing_alone(
    site: Site, idp: TestIdP, acme: str, field: str, value: Any, reason: str
):
    assert_rejected(site, post(site, idp.response(**honest(site, idp, **{field: value}))), reason)
    if isinstance(value, str) and "://" in value:
        # The owner's record keeps what was sent and what this workspace expects.
        detail = site.audit("login_failed")[-1].changes["detail"]
        assert value in detail and ("expects" in detail or "ACS is" in detail)


def test_the_page_names_no_configured_idp(site: Site, idp: TestIdP, second_idp: TestIdP, acme: str):
    """The finding: "the response was issued by X, not Y" told anyone the configured IdP."""
    forged = second_idp.response(**honest(site, idp))
    response = post(site, forged)
    assert_rejected(site, response, "issuer_mismatch")
    assert idp.entity_id not in response.text and second_idp.entity_id not in response.text
    detail = site.audit("login_failed")[-1].changes["detail"]
    assert idp.entity_id in detail and second_idp.entity_id in detail


def test_clock_skew_within_the_allowance_passes(site: Site, idp: TestIdP, acme: str):
    # Expired 100 s ago, and valid from 100 s ahead: both within the default 180 s skew.
    assert (
        post(site, idp.response(**honest(site, idp), not_on_or_after_offset=-100)).status_code
        == 303
    )
    assert (
        post(
            site, idp.response(**honest(site, idp, email="b@acme.test"), not_before_offset=100)
        ).status_code
        == 303
    )


def test_unsigned_assertion_in_unsigned_response(site: Site, idp: TestIdP, acme: str):
    response = post(site, idp.response(**honest(site, idp), sign_assertion=False))
    assert_rejected(site, response, "unsigned")


def test_content_tampered_after_signing(site: Site, idp: TestIdP, acme: str):
    xml = idp.response_xml(**honest(site, idp))
    tampered = xml.replace("alice@acme.test", "admin@acme.test")
    assert_rejected(site, post(site, encode(tampered)), "signature_invalid")


def test_signature_by_a_key_not_in_metadata(
    site: Site, idp: TestIdP, second_idp: TestIdP, acme: str
):
    forged = second_idp.response(**honest(site, idp), issuer=idp.entity_id)
    assert_rejected(site, post(site, forged), "signature_invalid")


def test_replay_is_refused(site: Site, idp: TestIdP, acme: str):
    saml_response = idp.response(**honest(site, idp))
    assert post(site, saml_response).status_code == 303
    again = requests.Session()
    response = site.post_response(again, "acme", saml_response)
    assert response.status_code == 400 and "replayed" in response.text
    assert "Set-Cookie" not in response.headers


def test_replays_and_unverified_refusals_are_counted_not_listed(
    site: Site, idp: TestIdP, acme: str
):
    """Both can be repeated at will without the IdP signing anything new: one row per reason
    (and hour) with a count, whereas a refusal after a fresh valid signature has its own row."""
    saml_response = idp.response(**honest(site, idp))
    assert post(site, saml_response).status_code == 303
    for _ in range(3):
        assert post(site, saml_response).status_code == 400
        assert (
            post(
                site,
                idp.response(**honest(site, idp), audience="https://x.test/sp"),
            ).status_code
            == 400
        )
    assert post(site, idp.response(**honest(site, idp, email="no-email"))).status_code == 400
    assert post(site, idp.response(**honest(site, idp, email="still-no-email"))).status_code == 400
    counted: dict[str, int] = {}
    single = []
    for event in site.audit("login_failed"):
        if event.target_type == "counted":
            counted[event.changes["reason"]] = (
                counted.get(event.changes["reason"], 0) + event.changes["count"]
            )
        else:
            single.append(event.changes["reason"])
    assert counted == {"replayed": 3, "audience_mismatch": 3}
    assert single == ["bad_name_id", "bad_name_id"]
    assert len(site.audit("login_failed")) <= 2 + 2 * 2  # two rows a reason if the hour turned


def test_unsolicited_responses_can_be_switched_off(site: Site, idp: TestIdP, acme: str):
    site.workspaces.set_idp("acme", metadata_xml=idp.metadata_xml(), allow_idp_initiated=False)
    assert_rejected(site, post(site, idp.response(**honest(site, idp))), "unsolicited_not_allowed")


def test_dtd_is_refused(site: Site, idp: TestIdP, acme: str):
    xml = idp.response_xml(**honest(site, idp))
    declaration, _, rest = xml.partition("?>") if xml.startswith("<?xml") else ("", "", xml)
    evil = '<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + (rest or xml)
    assert_rejected(site, post(site, encode(evil)), "dtd_forbidden")


def test_two_assertions_are_refused(site: Site, idp: TestIdP, acme: str):
    xml = idp.response_xml(**honest(site, idp))
    assertion = re.search(r"<(\w+:)?Assertion\b.*?</(\w+:)?Assertion>", xml, re.S)
    assert assertion
    doubled = xml.replace(assertion.group(0), assertion.group(0) * 2, 1)
    assert_rejected(site, post(site, encode(doubled)), "assertion_count")


def test_bad_base64_and_missing_response(site: Site, acme: str):
    assert_rejected(site, post(site, "%%%not-base64%%%"), "bad_encoding")
    response = requests.post(site.acs("acme"), data={}, allow_redirects=False)
    assert response.status_code == 400 and "missing_response" in response.text


def test_not_xml_is_refused(site: Site, acme: str):
    assert_rejected(site, post(site, encode("this is not xml")), "malformed_xml")


def test_oversized_body_is_refused(site: Site, acme: str):
    response = requests.post(
        site.acs("acme"), data={"SAMLResponse": "A" * 2_000_000}, allow_redirects=False
    )
    assert response.status_code == 413 and "Set-Cookie" not in response.headers


def test_no_bearer_subject_confirmation(site: Site, idp: TestIdP, acme: str):
    xml = idp.response_xml(**honest(site, idp))
    changed = xml.replace(
        "urn:oasis:names:tc:SAML:2.0:cm:bearer", "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
    )
    assert changed != xml
    assert_rejected(site, post(site, encode(changed)), "no_bearer_confirmation")


def test_signature_wrapping_with_the_signed_assertion_hidden_in_extensions(
    site: Site, idp: TestIdP, acme: str
):
    """XSW: the genuine signed assertion moves into Extensions; an evil copy takes its place."""
    root = etree.fromstring(idp.response_xml(**honest(site, idp)).encode())
    signed = root.find(f"{{{SAML}}}Assertion")
    evil = copy.deepcopy(signed)
    evil.remove(evil.find(f"{{{DS}}}Signature"))
    evil.find(f".//{{{SAML}}}NameID").text = "admin@acme.test"
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    root.replace(signed, evil)
    root.insert(1, extensions)
    extensions.append(signed)
    assert_rejected(site, post(site, encode(etree.tostring(root).decode())), "assertion_count")


# -- responses the IdP itself signed after an edit ---------------------------------------------
# What an IdP configured (or broken) that way sends: the edit is made before the IdP's own key
# signs, so each case below fails on the one check it names and never on the signature.


def idp_sign(element: etree._Element, idp: TestIdP, *, prefix_list: str | None = None) -> None:
    """Sign ``element`` (enveloped, exclusive c14n, RSA-SHA256) with the IdP's private key;
    ``prefix_list`` gives exclusive c14n an InclusiveNamespaces parameter, as Okta and ADFS do."""
    for old in element.findall(f"{{{DS}}}Signature"):
        element.remove(old)
    signature = xmlsec.template.create(
        element, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.RSA_SHA256, ns="ds"
    )
    issuer = element.find(f"{{{SAML}}}Issuer")
    if issuer is not None:
        issuer.addnext(signature)  # schema order: right after Issuer
    else:
        element.insert(0, signature)
    reference = xmlsec.template.add_reference(
        signature, xmlsec.Transform.SHA256, uri=f"#{element.get('ID')}"
    )
    xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
    c14n = xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
    if prefix_list is not None:
        # By walking: lxml's tag-filtered find misses nodes libxmlsec created.
        method = next(
            node for node in signature.iter() if node.tag == f"{{{DS}}}CanonicalizationMethod"
        )
        for node in (method, c14n):
            xmlsec.template.transform_add_c14n_inclusive_namespaces(node, prefix_list)
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(idp.keys.key_pem, xmlsec.KeyFormat.PEM)
    if element.get("ID"):
        context.register_id(element, "ID")
    context.sign(signature)


def edited(
    site: Site,
    idp: TestIdP,
    edit: Callable[[etree._Element], None],
    *,
    signed: str = "assertion",
    **overrides: Any,
) -> etree._Element:
    """The IdP's honest response, changed by ``edit`` and then signed by the IdP's key:
    ``signed`` is "assertion" or "response"."""
    xml = idp.response_xml(**honest(site, idp, **overrides), sign_assertion=False)
    root = etree.fromstring(xml.encode("utf-8"))
    edit(root)
    idp_sign(root if signed == "response" else root.find(f"{{{SAML}}}Assertion"), idp)
    return root


def post_tree(site: Site, root: etree._Element) -> requests.Response:
    return post(site, encode(etree.tostring(root).decode("utf-8")))


def confirmation_data(root: etree._Element) -> etree._Element:
    return root.find(
        f"{{{SAML}}}Assertion/{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation/"
        f"{{{SAML}}}SubjectConfirmationData"
    )


def conditions_of(root: etree._Element) -> etree._Element:
    return root.find(f"{{{SAML}}}Assertion/{{{SAML}}}Conditions")


def instant(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_now(seconds: float) -> str:
    return instant(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))


# -- the bearer confirmation's own time window ---------------------------------------------------


@pytest.mark.parametrize(
    "attribute, offset, reason",
    [
        ("NotOnOrAfter", -400, "expired"),
        ("NotBefore", 400, "not_yet_valid"),
    ],
)
def test_subject_confirmation_window_is_checked_on_its_own(
    site: Site, idp: TestIdP, acme: str, attribute: str, offset: int, reason: str
):
    """Conditions valid for ten minutes either way; only the bearer SubjectConfirmationData
    is outside its window (beyond the 180 s skew). The test IdP gives both the same
    NotOnOrAfter, so no other test separates them."""

    def edit(root: etree._Element) -> None:
        conditions_of(root).set("NotBefore", from_now(-600))
        conditions_of(root).set("NotOnOrAfter", from_now(600))
        confirmation_data(root).set(attribute, from_now(offset))

    assert_rejected(site, post_tree(site, edited(site, idp, edit)), reason)


def test_subject_confirmation_window_inside_the_skew_passes(site: Site, idp: TestIdP, acme: str):
    """The control: the same edit, 100 s outside the window, is within the 180 s skew."""

    def edit(root: etree._Element) -> None:
        confirmation_data(root).set("NotBefore", from_now(100))
        confirmation_data(root).set("NotOnOrAfter", from_now(-100))

    response = post_tree(site, edited(site, idp, edit))
    assert response.status_code == 303, response.text
    assert whoami(response.browser, site).startswith(  # type: ignore[attr-defined]
        "user=alice@acme.test;"
    )


def test_okta_style_inclusive_namespaces_sign_in(site: Site, idp: TestIdP, acme: str):
    """Okta and ADFS sign with ``<ec:InclusiveNamespaces PrefixList="xs"/>`` in both the
    CanonicalizationMethod and the Reference's exclusive c14n transform (xs: the prefix their
    xsi:type values name): such a response signs in."""
    xml = idp.response_xml(**honest(site, idp), sign_assertion=False)
    root = etree.fromstring(xml.encode("utf-8"))
    idp_sign(root.find(f"{{{SAML}}}Assertion"), idp, prefix_list="xs")
    assert len(root.findall(".//{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces")) == 2
    response = post_tree(site, root)
    assert response.status_code == 303, response.text
    assert whoami(response.browser, site).startswith(  # type: ignore[attr-defined]
        "user=alice@acme.test;"
    )


# -- status, issuer, structure -------------------------------------------------------------------


def _status(value: str | None) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        status = root.find(f"{{{SAMLP}}}Status")
        if value is None:
            root.remove(status)
        else:
            status.find(f"{{{SAMLP}}}StatusCode").set("Value", value)

    return edit


@pytest.mark.parametrize("signed", ["assertion", "response"])
@pytest.mark.parametrize(
    "status",
    [
        "urn:oasis:names:tc:SAML:2.0:status:Responder",
        "urn:oasis:names:tc:SAML:2.0:status:Requester",
        None,
    ],
    ids=["responder", "requester", "no-status"],
)
def test_status_other_than_success_refuses_even_a_signed_assertion(
    site: Site, idp: TestIdP, acme: str, signed: str, status: str | None
):
    """An IdP that says it did not sign the person in, yet carries a validly signed
    assertion (the status signed along with the response, or outside the signed assertion):
    the status wins. A response without any Status is refused the same way."""
    root = edited(site, idp, _status(status), signed=signed)
    assert_rejected(site, post_tree(site, root), "idp_status_error")
    detail = site.audit("login_failed")[-1].changes["detail"]
    assert (status or "none") in detail


def _response_issuer(value: str | None) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        issuer = root.find(f"{{{SAML}}}Issuer")
        if value is None:
            root.remove(issuer)
        else:
            issuer.text = value

    return edit


@pytest.mark.parametrize("signed", ["assertion", "response"])
def test_wrong_issuer_on_the_response_alone_is_refused(
    site: Site, idp: TestIdP, acme: str, signed: str
):
    """The assertion's Issuer is the right one; the Response names another IdP."""
    root = edited(site, idp, _response_issuer("https://impostor.test/idp"), signed=signed)
    assert root.find(f"{{{SAML}}}Assertion/{{{SAML}}}Issuer").text == idp.entity_id
    assert_rejected(site, post_tree(site, root), "issuer_mismatch")
    assert "impostor.test" in site.audit("login_failed")[-1].changes["detail"]


def test_response_without_an_issuer_passes(site: Site, idp: TestIdP, acme: str):
    """saml-core 3.2.2: Issuer is optional on a Response; the assertion's is what counts."""
    response = post_tree(site, edited(site, idp, _response_issuer(None)))
    assert response.status_code == 303, response.text


def test_assertion_without_an_issuer_is_refused(site: Site, idp: TestIdP, acme: str):
    """The Response names the right IdP; the signed assertion names none (it MUST, core 2.3.3)."""

    def edit(root: etree._Element) -> None:
        assertion = root.find(f"{{{SAML}}}Assertion")
        assertion.remove(assertion.find(f"{{{SAML}}}Issuer"))

    assert_rejected(site, post_tree(site, edited(site, idp, edit)), "issuer_mismatch")


def test_a_document_that_is_not_a_response_is_refused(site: Site, idp: TestIdP, acme: str):
    """The IdP's signed assertion alone, posted without its Response."""
    root = etree.fromstring(idp.response_xml(**honest(site, idp)).encode("utf-8"))
    assertion = root.find(f"{{{SAML}}}Assertion")
    assert_rejected(site, post(site, encode(etree.tostring(assertion).decode())), "not_a_response")


def test_assertion_without_an_id_is_refused(site: Site, idp: TestIdP, acme: str):
    """Inside a Response the IdP signed: the signature verifies, the replay cache would
    have no ID to keep, so the ACS refuses it itself."""

    def edit(root: etree._Element) -> None:
        del root.find(f"{{{SAML}}}Assertion").attrib["ID"]

    assert_rejected(
        site, post_tree(site, edited(site, idp, edit, signed="response")), "invalid_response"
    )


def test_assertion_without_conditions_is_refused(site: Site, idp: TestIdP, acme: str):
    def edit(root: etree._Element) -> None:
        assertion = root.find(f"{{{SAML}}}Assertion")
        assertion.remove(assertion.find(f"{{{SAML}}}Conditions"))

    assert_rejected(site, post_tree(site, edited(site, idp, edit)), "missing_conditions")


@pytest.mark.parametrize(
    "element, attribute",
    [
        ("conditions", "NotBefore"),
        ("conditions", "NotOnOrAfter"),
        ("confirmation", "NotOnOrAfter"),
    ],
)
def test_unreadable_time_is_refused(
    site: Site, idp: TestIdP, acme: str, element: str, attribute: str
):
    def edit(root: etree._Element) -> None:
        target = conditions_of(root) if element == "conditions" else confirmation_data(root)
        target.set(attribute, "tomorrow at noon")

    assert_rejected(site, post_tree(site, edited(site, idp, edit)), "bad_time")


# -- the NameID, and the email the member gets -------------------------------------------------


@pytest.mark.parametrize(
    "name_id",
    [
        "alice",
        "alice@acme",
        "+15551234567",
        "alice bob@acme.test",
        "x" * 247 + "@acme.test",  # 257 characters, an address in form
        "x" * 246 + "@acme.test",  # 256
    ],
    ids=["no-domain", "no-dot", "phone", "space", "257-chars", "256-chars"],
)
def test_name_id_that_is_not_a_usable_email_is_refused(
    site: Site, idp: TestIdP, acme: str, name_id: str
):
    assert_rejected(
        site, post(site, idp.response(**honest(site, idp, email=name_id))), "bad_name_id"
    )


def test_assertion_without_a_name_id_is_refused(site: Site, idp: TestIdP, acme: str):
    def edit(root: etree._Element) -> None:
        subject = root.find(f"{{{SAML}}}Assertion/{{{SAML}}}Subject")
        subject.remove(subject.find(f"{{{SAML}}}NameID"))

    assert_rejected(site, post_tree(site, edited(site, idp, edit)), "bad_name_id")


def test_name_id_of_255_characters_passes(site: Site, idp: TestIdP, acme: str):
    """The boundary of the length check above: 255 is the longest userName a member has."""
    email = "x" * 245 + "@acme.test"
    assert len(email) == 255
    response = post(site, idp.response(**honest(site, idp, email=email)))
    assert response.status_code == 303, response.text
    assert [m.user_name for m in site.members()] == [email]


def test_the_member_is_named_by_the_name_id_never_by_attributes(
    site: Site, idp: TestIdP, acme: str
):
    """Attributes are the IdP user's editable profile (Okta's email, mail, a phone number):
    the member is whom the NameID names, trimmed of the whitespace IdPs wrap it in."""
    attributes = {
        "email": ["bob@acme.test"],
        "mail": ["carol@acme.test"],
        "mobile": ["+15551234567"],
        "firstName": ["Alice"],
    }

    def edit(root: etree._Element) -> None:
        name_id = root.find(f"{{{SAML}}}Assertion/{{{SAML}}}Subject/{{{SAML}}}NameID")
        name_id.text = "\n    alice@acme.test  \n"

    response = post_tree(site, edited(site, idp, edit, attributes=attributes))
    assert response.status_code == 303, response.text
    assert whoami(response.browser, site).startswith(  # type: ignore[attr-defined]
        "user=alice@acme.test;"
    )
    (member,) = site.members()
    assert member.user_name == "alice@acme.test" and member.given_name == "Alice"


# -- how long the replay cache keeps an assertion ID ---------------------------------------------


def test_replay_cache_keeps_the_id_until_the_assertion_can_no_longer_pass(
    site: Site, idp: TestIdP, acme: str
):
    """The ACS accepts an assertion until its NotOnOrAfter plus the 180 s skew, so its ID must
    stay in the replay cache at least that long: a purge at the last instant the assertion
    still passes must keep it, and a replay then is still refused. Stored any shorter, the
    purge would reopen the replay."""
    xml = idp.response_xml(**honest(site, idp))
    root = etree.fromstring(xml.encode("utf-8"))
    expiry = dt.datetime.fromisoformat(
        conditions_of(root).get("NotOnOrAfter").replace("Z", "+00:00")
    )
    assert confirmation_data(root).get("NotOnOrAfter") == conditions_of(root).get("NotOnOrAfter")
    assert post(site, encode(xml)).status_code == 303

    with transaction(site.middleware.database) as unit:
        (row,) = unit.session.query(SeenAssertion).all()
        assert row.assertion_id == root.find(f"{{{SAML}}}Assertion").get("ID")
        assert row.expires_at == expiry + dt.timedelta(seconds=180)

    def purge_at(now: dt.datetime) -> int:
        def work(unit: Any) -> int:
            replay_cache.purge_replay_cache(unit, now)
            return len(unit.session.query(SeenAssertion).all())

        return site.middleware.database.run(work)

    last_acceptance = expiry + dt.timedelta(seconds=180) - dt.timedelta(microseconds=1)
    assert purge_at(last_acceptance) == 1
    again = post(site, encode(xml))
    assert again.status_code == 400 and '<span class="reason">replayed</span>' in again.text
    # The control: past that instant the purge does forget it (nothing could use it now).
    assert purge_at(expiry + dt.timedelta(seconds=181)) == 0


# -- exact boundaries, on the consumer itself with a fixed clock ---------------------------------
# Over HTTP the clock is the server's; these call the very AssertionConsumer the ACS builds,
# on responses the real IdP signed, at chosen instants a microsecond apart.

T = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
SKEW = dt.timedelta(seconds=180)
HOUR = dt.timedelta(hours=1)
TICK = dt.timedelta(microseconds=1)
Window = tuple[dt.datetime | None, dt.datetime | None]


@pytest.fixture
def consumer(test_idp: TestIdP) -> AssertionConsumer:
    """The ACS's consumer for workspace acme at http://sp.test (conftest's SP_ID and ACS)."""
    urls = WorkspaceUrls("http://sp.test", "acme")
    assert (urls.sp_entity_id, urls.acs_url) == (SP_ID, ACS)
    settings = IdPSettings(
        test_idp.entity_id, test_idp.metadata_xml(), allow_idp_initiated=True, version="1"
    )
    return AssertionConsumer(ServiceProvider(urls, settings, clock_skew=SKEW), clock_skew=SKEW)


def timed(
    idp: TestIdP,
    *,
    conditions: Window = (T - HOUR, T + HOUR),
    confirmation: Window = (None, T + HOUR),
) -> bytes:
    """An unsolicited response for alice whose windows are (NotBefore, NotOnOrAfter) as given
    (None: no such attribute), signed by the IdP."""
    root = etree.fromstring(
        idp.response_xml(
            sp_entity_id=SP_ID, acs_url=ACS, email="alice@acme.test", sign_assertion=False
        ).encode()
    )
    for element, window in (
        (conditions_of(root), conditions),
        (confirmation_data(root), confirmation),
    ):
        for name, value in zip(("NotBefore", "NotOnOrAfter"), window, strict=True):
            if value is None:
                element.attrib.pop(name, None)
            else:
                element.set(name, instant(value))
    idp_sign(root.find(f"{{{SAML}}}Assertion"), idp)
    return etree.tostring(root)


def consume(consumer: AssertionConsumer, document: bytes, now: dt.datetime) -> VerifiedAssertion:
    return consumer.consume(peek(document), {}, now=now)


WINDOWS: dict[str, dict[str, Window]] = {
    "conditions": {"starts": (T, T + HOUR), "ends": (T - HOUR, T)},
    "confirmation": {"starts": (T, T + HOUR), "ends": (T - HOUR, T)},
}


@pytest.mark.parametrize("element", ["conditions", "confirmation"])
@pytest.mark.parametrize(
    "now, outcome",
    [
        (T - SKEW - TICK, "not_yet_valid"),
        (T - SKEW, "passes"),
    ],
    ids=["just-before", "at-the-skewed-start"],
)
def test_not_before_boundary_with_clock_skew(
    consumer: AssertionConsumer, test_idp: TestIdP, element: str, now: dt.datetime, outcome: str
):
    """NotBefore=T is valid from T - skew on, inclusive (now + skew < NotBefore refuses)."""
    document = timed(test_idp, **{element: WINDOWS[element]["starts"]})
    if outcome == "passes":
        assert consume(consumer, document, now).email == "alice@acme.test"
    else:
        with pytest.raises(Rejection) as refused:
            consume(consumer, document, now)
        assert refused.value.code == outcome


@pytest.mark.parametrize("element", ["conditions", "confirmation"])
@pytest.mark.parametrize(
    "now, outcome",
    [
        (T + SKEW - TICK, "passes"),
        (T + SKEW, "expired"),
    ],
    ids=["just-before-the-skewed-end", "at-the-skewed-end"],
)
def test_not_on_or_after_boundary_with_clock_skew(
    consumer: AssertionConsumer, test_idp: TestIdP, element: str, now: dt.datetime, outcome: str
):
    """NotOnOrAfter=T is valid until T + skew, exclusive (now - skew >= NotOnOrAfter refuses)."""
    document = timed(test_idp, **{element: WINDOWS[element]["ends"]})
    if outcome == "passes":
        assert consume(consumer, document, now).email == "alice@acme.test"
    else:
        with pytest.raises(Rejection) as refused:
            consume(consumer, document, now)
        assert refused.value.code == outcome


@pytest.mark.parametrize(
    "conditions_end, confirmation_end",
    [
        (T + 2 * HOUR, T + HOUR),
        (T + HOUR, T + 2 * HOUR),
    ],
    ids=["conditions-later", "confirmation-later"],
)
def test_replay_expiry_covers_every_time_the_assertion_names_plus_skew(
    consumer: AssertionConsumer,
    test_idp: TestIdP,
    conditions_end: dt.datetime,
    confirmation_end: dt.datetime,
):
    """What the replay cache stores: the latest NotOnOrAfter in the assertion plus the skew,
    whichever element carries it (never the earlier one, never without the skew)."""
    document = timed(
        test_idp, conditions=(T - HOUR, conditions_end), confirmation=(None, confirmation_end)
    )
    verified = consume(consumer, document, T)
    assert verified.expires_at == T + 2 * HOUR + SKEW
    assert verified.assertion_id == etree.fromstring(document).find(f"{{{SAML}}}Assertion").get(
        "ID"
    )
    assert verified.in_response_to is None


# -- the person's names, from the attributes IdPs send -------------------------------------------

CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
# Written out rather than read from subject.py: the list of names IdPs are known to send.
NAME_ATTRIBUTES = [
    *(
        ("given_name", name)
        for name in (
            "givenName",
            "firstName",
            "given_name",
            "first_name",
            "urn:oid:2.5.4.42",
            CLAIMS + "givenname",
        )
    ),
    *(
        ("family_name", name)
        for name in (
            "sn",
            "surname",
            "lastName",
            "familyName",
            "family_name",
            "last_name",
            "urn:oid:2.5.4.4",
            CLAIMS + "surname",
        )
    ),
    *(
        ("display_name", name)
        for name in (
            "displayName",
            "display_name",
            "name",
            "urn:oid:2.16.840.1.113730.3.1.241",
            "http://schemas.microsoft.com/identity/claims/displayname",
        )
    ),
]


def attributed(idp: TestIdP, *attributes: tuple[dict[str, str], list[str]]) -> bytes:
    """A response for alice whose only AttributeStatement holds these attributes (XML
    attributes of saml:Attribute, and its values), signed by the IdP."""
    root = etree.fromstring(
        idp.response_xml(
            sp_entity_id=SP_ID, acs_url=ACS, email="alice@acme.test", sign_assertion=False
        ).encode()
    )
    assertion = root.find(f"{{{SAML}}}Assertion")
    for statement in assertion.findall(f"{{{SAML}}}AttributeStatement"):
        assertion.remove(statement)
    statement = etree.SubElement(assertion, f"{{{SAML}}}AttributeStatement")
    for names, values in attributes:
        attribute = etree.SubElement(statement, f"{{{SAML}}}Attribute", names)
        for value in values:
            etree.SubElement(attribute, f"{{{SAML}}}AttributeValue").text = value
    idp_sign(assertion, idp)
    return etree.tostring(root)


def names_read(consumer: AssertionConsumer, document: bytes) -> dict[str, str | None]:
    verified = consume(consumer, document, dt.datetime.now(dt.UTC))
    return {
        field: getattr(verified, field) for field in ("given_name", "family_name", "display_name")
    }


@pytest.mark.parametrize("field, name", NAME_ATTRIBUTES, ids=[name for _, name in NAME_ATTRIBUTES])
def test_each_name_attribute_an_idp_sends_is_read(
    consumer: AssertionConsumer, test_idp: TestIdP, field: str, name: str
):
    names = names_read(consumer, attributed(test_idp, ({"Name": name}, ["  Ada  "])))
    assert names == {**dict.fromkeys(names), field: "Ada"}


def test_names_are_matched_by_name_or_friendly_name_in_any_case(
    consumer: AssertionConsumer, test_idp: TestIdP
):
    document = attributed(
        test_idp,
        ({"Name": "urn:oid:2.5.4.42", "FriendlyName": "ignored-name"}, ["Ada"]),
        ({"Name": "urn:example:opaque", "FriendlyName": "sn"}, ["Lovelace"]),
        ({"Name": "DISPLAYNAME"}, ["Ada Lovelace"]),
    )
    assert names_read(consumer, document) == {
        "given_name": "Ada",
        "family_name": "Lovelace",
        "display_name": "Ada Lovelace",
    }


def test_the_first_usable_value_wins_and_is_cut_to_255_characters(
    consumer: AssertionConsumer, test_idp: TestIdP
):
    document = attributed(
        test_idp,
        ({"Name": "givenName"}, ["   "]),  # blank: the next name in the list is asked
        ({"Name": "firstName"}, ["Ada", ""]),  # the first value, even beside a blank one
        ({"Name": "sn"}, ["L" * 300]),
    )
    names = names_read(consumer, document)
    assert (names["given_name"], names["family_name"]) == ("Ada", "L" * 255)


def test_an_attribute_value_holding_markup_is_not_read(
    consumer: AssertionConsumer, test_idp: TestIdP
):
    """A value with child nodes (a comment or an element inserted in it) is not one text."""
    root = etree.fromstring(attributed(test_idp, ({"Name": "givenName"}, ["Ada"])))
    value = root.find(f".//{{{SAML}}}AttributeValue")
    etree.SubElement(value, "b").text = "Mallory"
    idp_sign(root.find(f"{{{SAML}}}Assertion"), test_idp)
    assert names_read(consumer, etree.tostring(root))["given_name"] is None


# -- what the owner reads: each refusal names its reason in the detail -------------------------
# The detail goes to the owner's diagnostics and the server log (never to the browser): these
# call the ACS's own parts, as the ACS does, on documents the real IdP made.


def unit_response(
    idp: TestIdP,
    edit: Callable[[etree._Element], None] | None = None,
    *,
    signed: str | None = "assertion",
) -> bytes:
    root = etree.fromstring(
        idp.response_xml(
            sp_entity_id=SP_ID, acs_url=ACS, email="alice@acme.test", sign_assertion=False
        ).encode()
    )
    if edit is not None:
        edit(root)
    if signed is not None:
        idp_sign(root if signed == "response" else root.find(f"{{{SAML}}}Assertion"), idp)
    return etree.tostring(root)


def drop_assertion_id(root: etree._Element) -> None:
    del root.find(f"{{{SAML}}}Assertion").attrib["ID"]


def encrypt_the_assertion(root: etree._Element) -> None:
    assertion = root.find(f"{{{SAML}}}Assertion")
    encrypted = etree.Element(f"{{{SAML}}}EncryptedAssertion")
    etree.SubElement(encrypted, "{http://www.w3.org/2001/04/xmlenc#}EncryptedData")
    root.replace(assertion, encrypted)


def hide_the_only_assertion(root: etree._Element) -> None:
    assertion = root.find(f"{{{SAML}}}Assertion")
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    root.replace(assertion, extensions)
    extensions.append(assertion)


def assertion_part(path: str) -> Callable[[etree._Element], etree._Element]:
    return lambda root: root.find(
        f"{{{SAML}}}Assertion/" + "/".join(f"{{{SAML}}}{name}" for name in path.split("/"))
    )


def set_text(path: str, text: str) -> Callable[[etree._Element], None]:
    return lambda root: setattr(assertion_part(path)(root), "text", text)


def remove(path: str) -> Callable[[etree._Element], None]:
    return lambda root: (lambda node: node.getparent().remove(node))(assertion_part(path)(root))


def answering(request_id: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        root.set("InResponseTo", request_id)
        assertion_part("Subject/SubjectConfirmation/SubjectConfirmationData")(root).set(
            "InResponseTo", request_id
        )

    return edit


def name_id_with_a_child(root: etree._Element) -> None:
    etree.SubElement(assertion_part("Subject/NameID")(root), "b").text = "x"


def holder_of_key(root: etree._Element) -> None:
    assertion_part("Subject/SubjectConfirmation")(root).set(
        "Method", "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
    )


def tamper_after_signing(document: bytes) -> bytes:
    return document.replace(b"alice@acme.test", b"alicia@acme.test")


@pytest.mark.parametrize(
    "edit, signed, code, detail",
    [
        (drop_assertion_id, "response", "invalid_response", "has no ID"),
        (answering("_never-sent"), "assertion", "unknown_in_response_to", "this site did not make"),
        (
            set_text("Issuer", "https://evil.test/idp"),
            "assertion",
            "issuer_mismatch",
            "the IdP sent issuer 'https://evil.test/idp'",
        ),
        (remove("Conditions"), "assertion", "missing_conditions", "has no Conditions"),
        (remove("Issuer"), "assertion", "issuer_mismatch", "the assertion names no issuer"),
        (holder_of_key, "assertion", "no_bearer_confirmation", "no bearer subject confirmation"),
        (
            lambda root: assertion_part("Subject/SubjectConfirmation/SubjectConfirmationData")(
                root
            ).attrib.pop("NotOnOrAfter"),
            "assertion",
            "missing_not_on_or_after",
            "no NotOnOrAfter",
        ),
        (
            set_text("Subject/NameID", "not-an-address"),
            "assertion",
            "bad_name_id",
            "is not an email address",
        ),
        (set_text("Subject/NameID", ""), "assertion", "bad_name_id", "is not an email address"),
        (name_id_with_a_child, "assertion", "bad_name_id", "missing or malformed"),
        (encrypt_the_assertion, "response", "encrypted_malformed", "EncryptedData has no"),
        (hide_the_only_assertion, "response", "assertion_count", r"directly inside it \(found 1\)"),
        (None, None, "unsigned", "neither the response nor its assertion is signed"),
    ],
    ids=[
        "no assertion ID",
        "unknown request",
        "issuer",
        "no conditions",
        "no issuer",
        "holder-of-key",
        "endless confirmation",
        "name id not an address",
        "empty name id",
        "name id markup",
        "empty encrypted assertion",
        "only assertion in Extensions",
        "unsigned",
    ],
)
def test_what_the_consumer_refuses_it_says_why(
    consumer: AssertionConsumer,
    test_idp: TestIdP,
    edit: Any,
    signed: str | None,
    code: str,
    detail: str,
):
    document = unit_response(test_idp, edit, signed=signed)
    with pytest.raises(Rejection) as refused:
        consume(consumer, document, dt.datetime.now(dt.UTC))
    assert refused.value.code == code and re.search(
        re.escape(detail) if "'" in detail else detail, refused.value.detail
    )


def test_a_signature_broken_after_signing_says_so(consumer: AssertionConsumer, test_idp: TestIdP):
    with pytest.raises(Rejection) as refused:
        consume(consumer, tamper_after_signing(unit_response(test_idp)), dt.datetime.now(dt.UTC))
    assert refused.value.code == "signature_invalid"
    assert "does not verify with the IdP's certificates" in refused.value.detail


def test_unsolicited_responses_switched_off_say_so(test_idp: TestIdP):
    urls = WorkspaceUrls("http://sp.test", "acme")
    settings = IdPSettings(
        test_idp.entity_id, test_idp.metadata_xml(), allow_idp_initiated=False, version="1"
    )
    strict = AssertionConsumer(ServiceProvider(urls, settings, clock_skew=SKEW), clock_skew=SKEW)
    with pytest.raises(Rejection) as refused:
        consume(strict, unit_response(test_idp), dt.datetime.now(dt.UTC))
    assert refused.value.code == "unsolicited_not_allowed"
    assert "IdP-initiated sign-in is switched off" in refused.value.detail
    # An answer to a request this site sent still passes.
    seen = peek(unit_response(test_idp, answering("_sent")))
    verified = strict.consume(seen, {"_sent": "/"}, now=dt.datetime.now(dt.UTC))
    assert verified.in_response_to == "_sent"


def test_a_bearer_confirmation_without_data_is_passed_over(
    consumer: AssertionConsumer, test_idp: TestIdP
):
    """A confirmation with no SubjectConfirmationData names no recipient: the next one counts."""

    def add_an_empty_bearer_first(root: etree._Element) -> None:
        confirmation = assertion_part("Subject/SubjectConfirmation")(root)
        empty = etree.Element(f"{{{SAML}}}SubjectConfirmation", Method=BEARER)
        confirmation.addprevious(empty)

    verified = consume(
        consumer, unit_response(test_idp, add_an_empty_bearer_first), dt.datetime.now(dt.UTC)
    )
    assert verified.email == "alice@acme.test"
    with pytest.raises(Rejection) as refused:
        consume(
            consumer,
            unit_response(
                test_idp,
                lambda root: (
                    add_an_empty_bearer_first(root),
                    remove("Subject/SubjectConfirmation/SubjectConfirmationData")(root),
                ),
            ),
            dt.datetime.now(dt.UTC),
        )
    assert refused.value.code == "recipient_mismatch"
    assert "for recipient none" in refused.value.detail


def test_verify_alone_refuses_an_unsigned_assertion(consumer: AssertionConsumer, test_idp: TestIdP):
    """check_structure refuses this first; verify() does not rely on it, nor it on verify()."""
    seen = peek(unit_response(test_idp, signed=None))
    with pytest.raises(Rejection) as refused:
        consumer.verify(seen, seen.root.find(f"{{{SAML}}}Assertion"))
    assert refused.value.code == "unsigned" and not seen.signature_verified
    assert "neither the response nor its assertion is signed" in refused.value.detail
    with pytest.raises(Rejection) as structure:  # and check_structure does not rely on verify
        consumer.check_structure(seen.root)
    assert structure.value.code == "unsigned"
    assert "neither the response nor its assertion is signed" in structure.value.detail


def test_a_peek_is_not_verified_until_the_signature_is(
    consumer: AssertionConsumer, test_idp: TestIdP
):
    seen = peek(unit_response(test_idp))
    assert seen.signature_verified is False
    consumer.consume(seen, {}, now=dt.datetime.now(dt.UTC))
    assert seen.signature_verified is True


def test_a_time_without_a_zone_is_read_as_utc(consumer: AssertionConsumer, test_idp: TestIdP):
    """saml-core 1.3.3 says UTC; some IdPs leave out the "Z"."""
    document = timed(test_idp, confirmation=(None, T + HOUR))
    zoneless = document.replace(instant(T + HOUR).encode(), instant(T + HOUR).rstrip("Z").encode())
    assert zoneless != document
    root = etree.fromstring(zoneless)
    idp_sign(root.find(f"{{{SAML}}}Assertion"), test_idp)
    verified = consume(consumer, etree.tostring(root), T)
    assert verified.expires_at == T + HOUR + SKEW


def test_an_empty_attribute_value_is_no_name(consumer: AssertionConsumer, test_idp: TestIdP):
    document = attributed(test_idp, ({"Name": "givenName"}, [""]), ({"Name": "sn"}, ["Lovelace"]))
    root = etree.fromstring(document)
    value = root.find(f".//{{{SAML}}}AttributeValue")
    value.text = None  # <AttributeValue/>
    idp_sign(root.find(f"{{{SAML}}}Assertion"), test_idp)
    assert names_read(consumer, etree.tostring(root)) == {
        "given_name": None,
        "family_name": "Lovelace",
        "display_name": None,
    }


def test_an_assertion_valid_past_any_date_this_site_can_keep_is_refused(
    consumer: AssertionConsumer, test_idp: TestIdP
):
    """A hostile owner's IdP may sign NotOnOrAfter=9999-12-31: refused, never a crash."""
    end_of_time = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    document = timed(test_idp, conditions=(T - HOUR, end_of_time), confirmation=(None, end_of_time))
    with pytest.raises(Rejection) as refused:
        consume(consumer, document, T)
    assert refused.value.code == "bad_time" and "9999-12-31" in refused.value.detail
    # A century is fine.
    century = T + dt.timedelta(days=36500)
    assert (
        consume(
            consumer,
            timed(test_idp, conditions=(T - HOUR, century), confirmation=(None, century)),
            T,
        ).expires_at
        == century + SKEW
    )


# -- what single logout keeps of the sign-in ---------------------------------------------------------


def qualified_name_id(root: etree._Element) -> None:
    name_id = assertion_part("Subject/NameID")(root)
    name_id.set("NameQualifier", "https://idp.test")
    name_id.set("SPNameQualifier", SP_ID)
    assertion_part("AuthnStatement")(root).set("SessionIndex", "_session-7")


def test_the_verified_assertion_names_the_subject_as_single_logout_needs(
    consumer: AssertionConsumer, test_idp: TestIdP
):
    verified = consume(
        consumer, unit_response(test_idp, qualified_name_id), dt.datetime.now(dt.UTC)
    )

    assert verified.name_id == "alice@acme.test"
    assert verified.name_id_format == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    assert (verified.name_qualifier, verified.sp_name_qualifier) == ("https://idp.test", SP_ID)
    assert verified.session_index == "_session-7"


def test_an_oversized_qualifier_is_dropped_not_fatal(
    consumer: AssertionConsumer, test_idp: TestIdP
):
    def huge(root: etree._Element) -> None:
        qualified_name_id(root)
        assertion_part("Subject/NameID")(root).set("NameQualifier", "q" * 2000)
        assertion_part("AuthnStatement")(root).set("SessionIndex", "s" * 600)

    verified = consume(consumer, unit_response(test_idp, huge), dt.datetime.now(dt.UTC))

    assert verified.name_qualifier is None and verified.session_index is None
    assert verified.sp_name_qualifier == SP_ID and verified.name_id == "alice@acme.test"


# -- an empty InResponseTo: schema-invalid, told apart from an unknown request -----------------


def _empty_in_response_to(on: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        if on in ("response", "both"):
            root.set("InResponseTo", "")
        if on in ("confirmation", "both"):
            confirmation_data(root).set("InResponseTo", "")

    return edit


@pytest.mark.parametrize("on", ["both", "response", "confirmation"])
def test_an_empty_in_response_to_has_its_own_reason(site: Site, idp: TestIdP, acme: str, on: str):
    """samlify's default template writes InResponseTo="" (on the Response and the bearer
    confirmation) for a response that answers no request. Not "unknown request": the owner
    would look for a request gone missing, when the IdP must leave the attribute out."""
    response = post_tree(site, edited(site, idp, _empty_in_response_to(on), signed="response"))
    assert_rejected(site, response, "empty_in_response_to")
    assert "empty InResponseTo" in response.text and "samlify" in response.text
    assert "unknown_in_response_to" not in response.text
    assert 'InResponseTo=""' in site.audit("login_failed")[-1].changes["detail"]


def test_the_consumer_refuses_an_empty_in_response_to_on_its_own(
    consumer: AssertionConsumer, test_idp: TestIdP
):
    """posted.peek refuses it first; the consumer does not rely on that (a Peek made
    elsewhere, or a check moved)."""
    root = etree.fromstring(unit_response(test_idp, _empty_in_response_to("response")))
    with pytest.raises(Rejection) as refused:
        consumer.consume(Peek(root, ""), {"": "/"}, now=dt.datetime.now(dt.UTC))
    assert refused.value.code == "empty_in_response_to"


# -- base64 wrapped in lines ----------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_response_wrapped_at_76_columns_signs_in(
    site: Site, idp: TestIdP, acme: str, newline: str
):
    """Some IdPs wrap the base64 of SAMLResponse MIME-style; the form field keeps the breaks."""
    encoded = idp.response(**honest(site, idp))
    wrapped = newline.join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + newline
    assert newline in wrapped and len(wrapped.split(newline)[0]) == 76
    response = post(site, wrapped)
    assert response.status_code == 303, response.text
    assert whoami(response.browser, site).startswith(  # type: ignore[attr-defined]
        "user=alice@acme.test;"
    )


# -- NameID formats: transient and persistent identify by the email attribute ----------------------

TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"


def signed_in_as(site: Site, response: requests.Response) -> str:
    assert response.status_code == 303, response.text
    return whoami(response.browser, site).partition(";")[0].removeprefix("user=")  # type: ignore[attr-defined]


@pytest.mark.parametrize("name_id_format", [PERSISTENT, TRANSIENT])
def test_an_opaque_name_id_signs_in_by_the_email_attribute(
    site: Site, idp: TestIdP, acme: str, name_id_format: str
):
    """Entra's default NameID is persistent: an identifier, never an address."""
    response = post(site, idp.response(**honest(site, idp), name_id_format=name_id_format))
    assert signed_in_as(site, response) == "alice@acme.test"
    (member,) = site.members()
    assert member.user_name == "alice@acme.test" and member.given_name == "Alice"


@pytest.mark.parametrize(
    "name",
    [
        "email",
        "mail",
        "EmailAddress",
        "urn:oid:0.9.2342.19200300.100.1.3",
        CLAIMS + "emailaddress",
        CLAIMS + "name",
        "User.Email",
    ],
)
def test_each_email_attribute_an_idp_sends_is_read(site: Site, idp: TestIdP, acme: str, name: str):
    attributes = {name: ["dana@acme.test"], "firstName": ["Dana"]}
    response = post(
        site,
        idp.response(
            **honest(site, idp, email="dana@acme.test"),
            attributes=attributes,
            name_id_format=PERSISTENT,
        ),
    )
    assert signed_in_as(site, response) == "dana@acme.test"


@pytest.mark.parametrize(
    "attributes, expected",
    [
        ({"mail": "bob@acme.test", "email": "alice@acme.test"}, "alice@acme.test"),
        ({CLAIMS + "name": "carol@acme.test", "mail": "bob@acme.test"}, "bob@acme.test"),
        # Entra's UPN claim is used only when it is an address; so is every other.
        ({CLAIMS + "name": "CONTOSO\\dave", "User.Email": "dave@acme.test"}, "dave@acme.test"),
        ({"email": "erin", "mail": "erin@acme.test"}, "erin@acme.test"),
    ],
    ids=["email before mail", "mail before upn", "upn not an address", "email not an address"],
)
def test_the_first_email_attribute_in_order_wins(
    site: Site, idp: TestIdP, acme: str, attributes: dict[str, str], expected: str
):
    response = post(
        site, idp.response(**honest(site, idp), attributes=attributes, name_id_format=PERSISTENT)
    )
    assert signed_in_as(site, response) == expected


@pytest.mark.parametrize("name_id_format", [PERSISTENT, TRANSIENT])
def test_an_opaque_name_id_without_an_email_attribute_says_which_to_send(
    site: Site, idp: TestIdP, acme: str, name_id_format: str
):
    attributes = {"firstName": "Alice", CLAIMS + "name": "alice", "mail": "not an address"}
    response = post(
        site,
        idp.response(**honest(site, idp), attributes=attributes, name_id_format=name_id_format),
    )
    assert_rejected(site, response, "no_email_attribute")
    assert "attribute named email" in response.text
    detail = site.audit("login_failed")[-1].changes["detail"]
    assert name_id_format.rpartition(":")[2] in detail and "'email'" in detail


@pytest.mark.parametrize(
    "name_id_format", [EMAIL_FORMAT, None], ids=["emailAddress", "no format (unspecified)"]
)
def test_a_name_id_that_should_be_an_address_is_never_replaced_by_an_attribute(
    site: Site, idp: TestIdP, acme: str, name_id_format: str | None
):
    """The attributes hold an address (the defaults: email, mail), but an emailAddress NameID
    that is none is the IdP's error: it is refused, not worked around."""
    response = post(
        site,
        idp.response(**honest(site, idp), name_id="alice", name_id_format=name_id_format),
    )
    assert_rejected(site, response, "bad_name_id")
    detail = site.audit("login_failed")[-1].changes["detail"]
    assert ("emailAddress NameID" in detail) == (name_id_format == EMAIL_FORMAT)


def test_a_refused_opaque_name_id_records_the_email_it_claimed(site: Site, idp: TestIdP, acme: str):
    """The owner's diagnostics name whom a refused response was for, as with an email NameID."""
    response = post(
        site,
        idp.response(
            **honest(site, idp, audience="https://other.test/sp"), name_id_format=PERSISTENT
        ),
    )
    assert_rejected(site, response, "audience_mismatch")
    assert site.audit("login_failed")[-1].changes["email"] == "alice@acme.test"


def test_an_unspecified_name_id_that_is_an_address_signs_in(site: Site, idp: TestIdP, acme: str):
    response = post(site, idp.response(**honest(site, idp), name_id_format=None))
    assert signed_in_as(site, response) == "alice@acme.test"


def test_an_opaque_name_id_must_not_be_empty(site: Site, idp: TestIdP, acme: str):
    def edit(root: etree._Element) -> None:
        name_id = root.find(f"{{{SAML}}}Assertion/{{{SAML}}}Subject/{{{SAML}}}NameID")
        name_id.set("Format", PERSISTENT)
        name_id.text = "  "

    assert_rejected(site, post_tree(site, edited(site, idp, edit)), "bad_name_id")


# -- what single logout will need, carried on the VerifiedAssertion -------------------------------


def _session_index_of(document: bytes) -> str | None:
    statement = etree.fromstring(document).find(f"{{{SAML}}}Assertion/{{{SAML}}}AuthnStatement")
    return statement.get("SessionIndex")


@pytest.mark.parametrize(
    "name_id_format, name_id",
    [
        (PERSISTENT, "AAdzZWNyZXQxKnEKZGGhrWuZ4VxiQw=="),
        (TRANSIENT, "_9f2c1e"),
        (EMAIL_FORMAT, "alice@acme.test"),
        (None, "alice@acme.test"),
    ],
    ids=["persistent", "transient", "emailAddress", "unspecified"],
)
def test_the_name_id_its_format_and_the_session_index_are_kept(
    consumer: AssertionConsumer, test_idp: TestIdP, name_id_format: str | None, name_id: str
):
    xml = test_idp.response_xml(
        sp_entity_id=SP_ID,
        acs_url=ACS,
        email="alice@acme.test",
        name_id_format=name_id_format,
        name_id=name_id,
    ).encode()
    index = _session_index_of(xml)
    assert index
    verified = consume(consumer, xml, dt.datetime.now(dt.UTC))
    assert (verified.email, verified.name_id, verified.name_id_format) == (
        "alice@acme.test",
        name_id,
        name_id_format,
    )
    assert verified.session_index == index


@pytest.mark.parametrize(
    "session_index, kept",
    [(None, None), ("", None), ("s" * 512, "s" * 512), ("s" * 513, None)],
    ids=["none", "empty", "512", "513"],
)
def test_a_missing_or_oversized_session_index_is_not_kept(
    consumer: AssertionConsumer, test_idp: TestIdP, session_index: str | None, kept: str | None
):
    """Not a refusal: without it, single logout still matches the NameID."""

    def edit(root: etree._Element) -> None:
        statement = assertion_part("AuthnStatement")(root)
        statement.attrib.pop("SessionIndex")
        if session_index is not None:
            statement.set("SessionIndex", session_index)

    verified = consume(consumer, unit_response(test_idp, edit), dt.datetime.now(dt.UTC))
    assert verified.session_index == kept and verified.email == "alice@acme.test"


# -- encrypted assertions ------------------------------------------------------------------------
# The IdP encrypts for the certificate the workspace's SP metadata publishes for encryption (its
# current SP key, and the next one once staged), as an IdP admin would configure it.

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
XENC = "http://www.w3.org/2001/04/xmlenc#"
ENCRYPTED_ASSERTION = f"{{{SAML}}}EncryptedAssertion"
CONTENT_CIPHER = "/".join(
    (
        ENCRYPTED_ASSERTION,
        *(f"{{{XENC}}}{name}" for name in ("EncryptedData", "CipherData", "CipherValue")),
    )
)


def as_pem(certificate_base64: str) -> str:
    lines = [certificate_base64[i : i + 64] for i in range(0, len(certificate_base64), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def encryption_certificates(site: Site, slug: str = "acme") -> list[str]:
    """The certificates (base64 DER) of the SP metadata's KeyDescriptors for encryption, in
    its order: the current key, then the next one when staged."""
    metadata = requests.get(site.entity_id(slug))
    assert metadata.status_code == 200, metadata.text
    root = etree.fromstring(metadata.content)
    return [
        "".join(text.split())
        for text in root.xpath(
            "//md:SPSSODescriptor/md:KeyDescriptor[@use='encryption']//ds:X509Certificate/text()",
            namespaces={"md": MD, "ds": DS},
        )
    ]


def sp_certificate(site: Site, slug: str = "acme") -> str:
    """The SP certificate an IdP admin copies from the SP metadata (the current key), as PEM."""
    return as_pem(encryption_certificates(site, slug)[0])


def sp_keys(site: Site) -> Any:
    return site.middleware.saml.flow.keys


def encrypted_for(site: Site, idp: TestIdP, certificate: str | bytes, **options: Any) -> str:
    """A response from the IdP (assertion signed unless told), its assertion encrypted for
    ``certificate`` (PEM); checked to hold no plaintext assertion."""
    xml = idp.response_xml(**honest(site, idp, **options), encryption=Encryption(certificate))
    assert_encrypted(xml)
    return encode(xml)


def assert_encrypted(xml: str | bytes) -> None:
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    assert len(root.findall(ENCRYPTED_ASSERTION)) == 1
    assert next(root.iter(f"{{{SAML}}}Assertion", f"{{{SAML}}}NameID"), None) is None


def refused_with(site: Site, response: requests.Response, reason: str) -> None:
    """Refused with ``reason`` (members signed in before may exist: see assert_rejected)."""
    assert response.status_code == 400, response.text
    assert "Set-Cookie" not in response.headers
    assert f'<span class="reason">{reason}</span>' in response.text
    assert whoami(response.browser, site).startswith("user=;")  # type: ignore[attr-defined]
    assert site.audit("login_failed")[-1].changes["reason"] == reason


def sp_initiated_encrypted(site: Site, idp: TestIdP) -> tuple[requests.Response, bytes]:
    """Browser: our login URL -> the IdP -> its auto-post form -> our ACS; with the response
    the IdP made (as XML), to see what it sent."""
    browser = requests.Session()
    start = browser.get(f"{site.url}/saml/acme/login", allow_redirects=False)
    assert start.status_code == 302, start.text
    at_idp = browser.get(start.headers["Location"])
    assert at_idp.status_code == 200, at_idp.text
    action, fields = autopost_form(at_idp.text)
    response = browser.post(action, data=fields, allow_redirects=False)
    response.browser = browser  # type: ignore[attr-defined]
    return response, base64.b64decode(fields["SAMLResponse"])


def test_the_metadata_publishes_the_current_sp_key_for_encryption(site: Site, acme: str):
    published = encryption_certificates(site)
    assert published == [sp_keys(site).status("acme").current.certificate_base64]


@pytest.mark.parametrize("content", [AES128_CBC, AES256_GCM], ids=["aes128-cbc", "aes256-gcm"])
@pytest.mark.parametrize("transport", [RSA_OAEP_MGF1P, RSA_1_5], ids=["rsa-oaep", "rsa-1_5"])
def test_each_key_transport_and_content_encryption_signs_in(
    site: Site, idp: TestIdP, acme: str, transport: str, content: str
):
    """RSA-OAEP as Okta and Entra send it, RSA 1.5 as ADFS can; AES-CBC and AES-GCM content."""
    idp.encryption = Encryption(sp_certificate(site), key_transport=transport, content=content)
    response, sent = sp_initiated_encrypted(site, idp)
    assert_encrypted(sent)
    assert f'Algorithm="{transport}"'.encode() in sent and f'Algorithm="{content}"'.encode() in sent
    assert signed_in_as(site, response) == "alice@acme.test"


@pytest.mark.parametrize("signed", ["response", "assertion", "both"])
def test_an_encrypted_assertion_signs_in_whichever_is_signed(
    site: Site, idp: TestIdP, acme: str, signed: str
):
    """A signed Response covers the EncryptedAssertion: verified as posted, before decrypting,
    and never again (in the decrypted document it no longer matches: checking it there would
    refuse every response-signed sign-in)."""
    saml_response = encrypted_for(
        site,
        idp,
        sp_certificate(site),
        sign_assertion=signed != "response",
        sign_response=signed != "assertion",
    )
    assert signed_in_as(site, post(site, saml_response)) == "alice@acme.test"


@pytest.mark.parametrize("field, value, reason", EACH_CHECK)
def test_each_check_failing_alone_in_an_encrypted_assertion(
    site: Site, idp: TestIdP, acme: str, field: str, value: Any, reason: str
):
    """Every check of a plaintext assertion runs on the decrypted one."""
    saml_response = encrypted_for(site, idp, sp_certificate(site), **{field: value})
    assert_rejected(site, post(site, saml_response), reason)


def test_a_refusal_after_decryption_records_the_email_claimed(site: Site, idp: TestIdP, acme: str):
    """Before decryption a response claims nobody; once decrypted, the owner's diagnostics get
    the address it claimed, as for a plaintext one."""
    certificate = sp_certificate(site)
    refused = post(site, encrypted_for(site, idp, certificate, audience="https://x.test/sp"))
    assert_rejected(site, refused, "audience_mismatch")
    assert site.audit("login_failed")[-1].changes["email"] == "alice@acme.test"
    other = make_key_pair("Another SP").cert_pem
    assert_rejected(site, post(site, encrypted_for(site, idp, other)), "decryption_failed")
    assert "email" not in site.audit("login_failed")[-1].changes


def test_an_encrypted_response_is_not_accepted_twice(site: Site, idp: TestIdP, acme: str):
    saml_response = encrypted_for(site, idp, sp_certificate(site), sign_response=True)
    assert signed_in_as(site, post(site, saml_response)) == "alice@acme.test"
    refused_with(site, post(site, saml_response), "replayed")


def test_encrypted_for_another_sp_key_is_refused(site: Site, idp: TestIdP, acme: str):
    other = make_key_pair("Another SP").cert_pem
    response = post(site, encrypted_for(site, idp, other, sign_response=True))
    assert_rejected(site, response, "decryption_failed")
    # The owner is told what to do about it; the page too, without naming any value.
    detail = site.audit("login_failed")[-1].changes["detail"]
    assert "SP certificate from the SP metadata" in detail and "1 SP key" in detail
    assert "give it the SP certificate" in response.text


def test_an_assertion_encrypted_for_the_next_or_the_previous_key_signs_in_until_retired(
    site: Site, idp: TestIdP, acme: str
):
    """Rollover: an IdP may encrypt for the staged key as soon as the metadata shows it, and one
    still encrypting for the old key keeps working after the switch, until that key is retired."""
    [first] = encryption_certificates(site)
    sp_keys(site).stage("acme", actor="owner@acme.test")
    published = encryption_certificates(site)
    assert len(published) == 2 and published[0] == first
    staged = published[1]
    to_next = encrypted_for(site, idp, as_pem(staged), email="next@acme.test")
    assert signed_in_as(site, post(site, to_next)) == "next@acme.test"

    sp_keys(site).activate("acme", actor="owner@acme.test")
    assert encryption_certificates(site) == [staged]
    to_previous = encrypted_for(site, idp, as_pem(first), email="previous@acme.test")
    assert signed_in_as(site, post(site, to_previous)) == "previous@acme.test"
    to_current = encrypted_for(site, idp, as_pem(staged), email="current@acme.test")
    assert signed_in_as(site, post(site, to_current)) == "current@acme.test"

    sp_keys(site).retire("acme", actor="owner@acme.test")
    retired = encrypted_for(site, idp, as_pem(first), email="late@acme.test")
    refused_with(site, post(site, retired), "decryption_failed")
    assert "late@acme.test" not in [m.user_name for m in site.members()]


def test_a_truncated_cipher_value_is_malformed(site: Site, idp: TestIdP, acme: str):
    root = etree.fromstring(base64.b64decode(encrypted_for(site, idp, sp_certificate(site))))
    value = root.find(CONTENT_CIPHER)
    value.text = "".join(value.text.split())[:24]  # 18 bytes: no room for a GCM IV and tag
    assert_rejected(site, post(site, encode(etree.tostring(root).decode())), "encrypted_malformed")


def libxmlsec_encrypt(
    root: etree._Element,
    plaintext: bytes,
    certificate_pem: str | bytes,
    *,
    content: Any = xmlsec.Transform.AES128_GCM,
    bits: int = 128,
    key_data: Any = xmlsec.KeyData.AES,
) -> None:
    """Replace the response's Assertion by an EncryptedAssertion of ``plaintext`` made by
    libxmlsec (RSA-OAEP to ``certificate_pem``): what an IdP sends, whatever our encryptor does."""
    holder = etree.Element(ENCRYPTED_ASSERTION)
    root.replace(root.find(f"{{{SAML}}}Assertion"), holder)
    data = xmlsec.template.encrypted_data_create(
        holder, content, type=xmlsec.EncryptionType.ELEMENT, ns="xenc"
    )
    holder.append(data)
    xmlsec.template.encrypted_data_ensure_cipher_value(data)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(data, ns="ds")
    xmlsec.template.encrypted_data_ensure_cipher_value(
        xmlsec.template.add_encrypted_key(key_info, xmlsec.Transform.RSA_OAEP)
    )
    certificate = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(certificate, xmlsec.KeyFormat.CERT_PEM))
    context = xmlsec.EncryptionContext(manager)
    context.key = xmlsec.Key.generate(key_data, bits, xmlsec.KeyDataType.SESSION)
    context.encrypt_binary(data, plaintext)


def test_triple_des_is_refused_as_an_algorithm(site: Site, idp: TestIdP, acme: str):
    """pysaml2's and older ADFS set-ups' default content encryption, made by libxmlsec."""
    root = etree.fromstring(idp.response_xml(**honest(site, idp)).encode())
    signed = etree.tostring(root.find(f"{{{SAML}}}Assertion"), with_tail=False)
    libxmlsec_encrypt(
        root, signed, sp_certificate(site), content=xmlsec.Transform.DES3, bits=192,
        key_data=xmlsec.KeyData.DES,
    )  # fmt: skip
    response = post(site, encode(etree.tostring(root).decode()))
    assert_rejected(site, response, "encryption_algorithm")
    assert "AES-GCM" in site.audit("login_failed")[-1].changes["detail"]


def test_the_same_assertion_encrypted_by_libxmlsec_signs_in(site: Site, idp: TestIdP, acme: str):
    """The control for the test above and the one below: AES-128-GCM from libxmlsec passes."""
    root = etree.fromstring(idp.response_xml(**honest(site, idp)).encode())
    libxmlsec_encrypt(
        root,
        etree.tostring(root.find(f"{{{SAML}}}Assertion"), with_tail=False),
        sp_certificate(site),
    )
    assert_encrypted(etree.tostring(root))
    assert signed_in_as(site, post(site, encode(etree.tostring(root).decode()))) == (
        "alice@acme.test"
    )


def test_a_plaintext_that_is_not_an_assertion_is_refused(site: Site, idp: TestIdP, acme: str):
    """A whole signed Response, encrypted where its assertion should be."""
    inner = idp.response_xml(**honest(site, idp), sign_response=True).encode()
    root = etree.fromstring(idp.response_xml(**honest(site, idp)).encode())
    libxmlsec_encrypt(root, re.sub(rb"^<\?xml[^>]*\?>\s*", b"", inner), sp_certificate(site))
    response = post(site, encode(etree.tostring(root).decode()))
    assert_rejected(site, response, "encrypted_not_assertion", public="decryption_failed")


def test_an_encrypted_assertion_beside_a_plaintext_one_is_refused(
    site: Site, idp: TestIdP, acme: str
):
    root = etree.fromstring(base64.b64decode(encrypted_for(site, idp, sp_certificate(site))))
    plain = etree.fromstring(idp.response_xml(**honest(site, idp)).encode())
    root.find(ENCRYPTED_ASSERTION).addnext(plain.find(f"{{{SAML}}}Assertion"))
    assert_rejected(site, post(site, encode(etree.tostring(root).decode())), "encrypted_and_plain")


def test_two_encrypted_assertions_are_refused(site: Site, idp: TestIdP, acme: str):
    root = etree.fromstring(base64.b64decode(encrypted_for(site, idp, sp_certificate(site))))
    encrypted = root.find(ENCRYPTED_ASSERTION)
    encrypted.addnext(copy.deepcopy(encrypted))
    assert_rejected(site, post(site, encode(etree.tostring(root).decode())), "assertion_count")


def test_an_owner_can_require_encrypted_assertions(site: Site, idp: TestIdP, acme: str):
    sp_keys(site).set_choices("acme", actor="owner@acme.test", require_encrypted_assertions=True)
    plain = post(site, idp.response(**honest(site, idp), sign_response=True))
    assert_rejected(site, plain, "encryption_required")
    assert "SAML settings" in plain.text
    encrypted = encrypted_for(site, idp, sp_certificate(site), email="bob@acme.test")
    assert signed_in_as(site, post(site, encrypted)) == "bob@acme.test"

    sp_keys(site).set_choices("acme", actor="owner@acme.test", require_encrypted_assertions=False)
    again = post(site, idp.response(**honest(site, idp, email="carol@acme.test")))
    assert signed_in_as(site, again) == "carol@acme.test"


# What the consumer does with an encrypted assertion, called as the ACS calls it.


@pytest.fixture(scope="module")
def consumer_keys() -> KeyPair:
    return make_key_pair("acme SAML SP")


@pytest.fixture
def decrypting_consumer(test_idp: TestIdP, consumer_keys: KeyPair) -> AssertionConsumer:
    """conftest's SP (SP_ID, ACS) with one SP key, ``consumer_keys``."""
    key = SpKey(
        "current", consumer_keys.cert_pem.decode(), consumer_keys.key_pem,
        dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC),
    )  # fmt: skip
    ring = SpKeyRing(1, key, None, None, sign_authn_requests=False,
                     require_encrypted_assertions=False, version=1)  # fmt: skip
    settings = IdPSettings(
        test_idp.entity_id, test_idp.metadata_xml(), allow_idp_initiated=True, version="1"
    )
    urls = WorkspaceUrls("http://sp.test", "acme")
    return AssertionConsumer(
        ServiceProvider(urls, settings, keys=ring, clock_skew=SKEW), clock_skew=SKEW
    )


def encrypted_unit_response(test_idp: TestIdP, keys: KeyPair, **options: Any) -> bytes:
    xml = test_idp.response_xml(
        sp_entity_id=SP_ID, acs_url=ACS, email="alice@acme.test",
        encryption=Encryption(keys.cert_pem), **options,
    )  # fmt: skip
    return xml.encode()


def test_the_response_signature_is_verified_before_anything_is_decrypted(
    decrypting_consumer: AssertionConsumer, test_idp: TestIdP, consumer_keys: KeyPair
):
    root = etree.fromstring(
        encrypted_unit_response(test_idp, consumer_keys, sign_assertion=False, sign_response=True)
    )
    value = root.find(CONTENT_CIPHER)
    value.text = base64.b64encode(b"\0" * 64).decode()  # would be a decryption failure
    seen = peek(etree.tostring(root))
    with pytest.raises(Rejection) as refused:
        decrypting_consumer.consume(seen, {}, now=dt.datetime.now(dt.UTC))
    assert refused.value.code == "signature_invalid"
    assert seen.decrypted is None and not seen.response_verified and not seen.signature_verified


def test_a_decrypted_assertion_is_checked_in_its_own_document(
    decrypting_consumer: AssertionConsumer, test_idp: TestIdP, consumer_keys: KeyPair
):
    document = encrypted_unit_response(test_idp, consumer_keys, sign_response=True)
    seen = peek(document)
    verified = decrypting_consumer.consume(seen, {}, now=dt.datetime.now(dt.UTC))
    assert verified.email == "alice@acme.test"
    assert seen.response_verified and seen.signature_verified
    decrypted = seen.decrypted
    assert decrypted.tag == f"{{{SAML}}}Assertion" and verified.assertion_id == decrypted.get("ID")
    # A new document: the posted one still holds only the encrypted form.
    assert decrypted.getroottree().getroot() is not seen.root
    assert seen.root.find(f"{{{SAML}}}Assertion") is None
    assert seen.root.find(ENCRYPTED_ASSERTION) is not None


def test_without_sp_keys_nothing_decrypts(test_idp: TestIdP, consumer: AssertionConsumer):
    document = encrypted_unit_response(test_idp, make_key_pair("acme SAML SP"))
    with pytest.raises(Rejection) as refused:
        consume(consumer, document, dt.datetime.now(dt.UTC))
    assert refused.value.code == "decryption_failed" and "0 SP key(s)" in refused.value.detail


def test_an_unsigned_decrypted_assertion_is_refused_before_its_checks(
    decrypting_consumer: AssertionConsumer, test_idp: TestIdP, consumer_keys: KeyPair
):
    """Anyone can encrypt to the SP certificate: unsigned stays unsigned once decrypted."""
    document = encrypted_unit_response(
        test_idp, consumer_keys, sign_assertion=False, audience="https://x.test/sp"
    )
    seen = peek(document)
    with pytest.raises(Rejection) as refused:
        decrypting_consumer.consume(seen, {}, now=dt.datetime.now(dt.UTC))
    assert refused.value.code == "unsigned" and "decrypted assertion" in refused.value.detail
    assert seen.decrypted is not None and not seen.signature_verified
    # verify() alone says the same, whatever ran before it.
    with pytest.raises(Rejection) as alone:
        decrypting_consumer.verify(seen, seen.decrypted)
    assert alone.value.code == "unsigned"


def test_an_empty_in_response_to_inside_the_encryption_has_its_own_reason(
    decrypting_consumer: AssertionConsumer, test_idp: TestIdP, consumer_keys: KeyPair
):
    root = etree.fromstring(
        test_idp.response_xml(
            sp_entity_id=SP_ID, acs_url=ACS, email="alice@acme.test", sign_assertion=False
        ).encode()  # fmt: skip
    )
    assertion_part("Subject/SubjectConfirmation/SubjectConfirmationData")(root).set(
        "InResponseTo", ""
    )
    idp_sign(root.find(f"{{{SAML}}}Assertion"), test_idp)
    Encryption(consumer_keys.cert_pem).encrypt(root.find(f"{{{SAML}}}Assertion"))
    with pytest.raises(Rejection) as refused:
        consume(decrypting_consumer, etree.tostring(root), dt.datetime.now(dt.UTC))
    assert refused.value.code == "empty_in_response_to"
