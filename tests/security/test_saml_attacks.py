"""The SAML attack corpus: every case starts from a real IdP's valid signed output.

Each forged response is posted over HTTP to the real middleware and must be refused: a 4xx,
no Set-Cookie, nobody signed in, no member created, and a ``login_failed`` audit event whose
reason is the exact code the ACS gives. The redirect cases check that the browser is only ever
sent to a path on this site.

Signature wrapping follows the catalogue of Somorovsky et al., "On Breaking SAML: Be Whoever
You Want to Be" (USENIX Security 2012), as SAML Raider implements it: XSW1-2 wrap a signed
Response, XSW3-8 a signed Assertion. Each is run twice: against the ACS as it is (whose
structural rule, one assertion directly in the Response, refuses all of them), and with that
rule removed, so the signature checks are shown to hold on their own.
"""

from __future__ import annotations

import base64
import copy
import html
import re
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import xmlsec
from lxml import etree

from webwork_sso_middleware.saml.acs import DS, AssertionConsumer
from webwork_sso_middleware.saml.encrypting import Encryption, encrypt_assertion
from webwork_sso_middleware.saml.posted import SAML, SAMLP
from webwork_sso_middleware.saml.rejection import Rejection

from ..saml.conftest import Site
from ..saml.idp import TestIdP, make_key_pair
from ..saml.test_app import sp_initiated, whoami
from ..saml.test_single_logout import renamed, second_name_id, slo, trust_sp, wrapped_request
from .conftest import clean_sign_in

GENUINE = "alice@acme.test"
EVIL = "admin@acme.test"


@pytest.fixture(autouse=True)
def clean_slate(site: Site) -> None:
    """Each case starts with no member, session, audit event, request or seen assertion."""
    clean_sign_in(site)


# -- building and posting responses ------------------------------------------------------------


def xml_for(site: Site, idp: TestIdP, slug: str = "acme", **options: Any) -> etree._Element:
    """The IdP's genuine signed response for ``slug`` (a signed assertion unless told), parsed."""
    options = {"email": GENUINE, **options}
    xml = idp.response_xml(sp_entity_id=site.entity_id(slug), acs_url=site.acs(slug), **options)
    return etree.fromstring(xml.encode("utf-8"))


def signed_response(site: Site, idp: TestIdP, **options: Any) -> etree._Element:
    """A signed Response around an unsigned Assertion (what XSW1 and XSW2 start from)."""
    return xml_for(site, idp, sign_response=True, sign_assertion=False, **options)


def encode(document: etree._Element | str | bytes) -> str:
    if isinstance(document, etree._Element):
        document = etree.tostring(document)
    if isinstance(document, str):
        document = document.encode("utf-8")
    return base64.b64encode(document).decode("ascii")


def assertion_of(root: etree._Element) -> etree._Element:
    return root.find(f"{{{SAML}}}Assertion")


def signature_of(element: etree._Element) -> etree._Element:
    return element.find(f"{{{DS}}}Signature")


def name_id(element: etree._Element) -> etree._Element:
    return element.find(f".//{{{SAML}}}NameID")


def unsigned_copy(
    element: etree._Element, *, new_id: bool = False, email: str | None = None
) -> etree._Element:
    """A deep copy without its own ds:Signature, optionally with a fresh ID and another NameID."""
    clone = copy.deepcopy(element)
    clone.remove(signature_of(clone))
    if new_id:
        clone.set("ID", f"_evil{uuid.uuid4().hex}")
    if email:
        name_id(clone).text = email
    return clone


def post(
    site: Site,
    saml_response: str,
    *,
    slug: str = "acme",
    relay_state: str | None = None,
    url: str | None = None,
    browser: requests.Session | None = None,
) -> requests.Response:
    browser = browser or requests.Session()
    data = {"SAMLResponse": saml_response}
    if relay_state is not None:
        data["RelayState"] = relay_state
    response = browser.post(url or site.acs(slug), data=data, allow_redirects=False)
    response.browser = browser  # type: ignore[attr-defined]
    return response


def assert_refused(
    site: Site,
    response: requests.Response,
    reason: str,
    *,
    status: int = 400,
    members: tuple[str, ...] = (),
    public: str | None = None,
) -> None:
    """Refused with ``reason``: status, no cookie, nobody signed in, no new member, audited.
    ``public``: the code the page shows, where it differs from the owner's: whatever fails in
    a decrypted assertion no signature vouched for yet reads as ``decryption_failed`` (acs.py:
    no oracle on what an altered cipher text decrypted to)."""
    assert response.status_code == status, response.text
    assert "Set-Cookie" not in response.headers
    assert f'<span class="reason">{public or reason}</span>' in response.text, response.text
    assert "Traceback" not in response.text
    assert "://" not in response.text  # no configuration on a page for whoever posted
    assert whoami(response.browser, site).startswith("user=;")  # type: ignore[attr-defined]
    assert [m.user_name for m in site.members()] == list(members)
    failures = [event.changes["reason"] for event in site.audit("login_failed")]
    assert failures and failures[-1] == reason, failures


def assert_signed_in(site: Site, response: requests.Response, email: str = GENUINE) -> None:
    assert response.status_code == 303, response.text
    assert "Set-Cookie" in response.headers
    assert whoami(response.browser, site).startswith(f"user={email};")  # type: ignore[attr-defined]


def sp_initiated_as(
    site: Site, idp: TestIdP, email: str, slug: str = "acme", next_path: str = "/"
) -> requests.Response:
    """An SP-initiated sign-in through the real IdP, as ``email``."""
    idp.next_user = email
    browser = requests.Session()
    response = sp_initiated(browser, site, slug, next_path=next_path)
    response.browser = browser  # type: ignore[attr-defined]
    return response


def inject_comment(element: etree._Element, kept: str) -> None:
    """``<X>kept<!---->rest</X>`` from ``<X>keptrest</X>``: exclusive c14n without comments
    gives the same bytes, so a signature over the element stays valid."""
    text = element.text or ""
    assert text.startswith(kept) and text != kept
    comment = etree.Comment("")
    comment.tail = text[len(kept) :]
    element.text = kept
    element.append(comment)


# -- signing as an attacker would (python-xmlsec directly, every algorithm enabled) -------------


def sign(
    element: etree._Element,
    key: xmlsec.Key,
    *,
    method: Any = xmlsec.Transform.RSA_SHA256,
    key_info: bool = False,
) -> None:
    """(Re)sign ``element`` in place, enveloped, exclusive c14n; its old signature goes."""
    for old in element.findall(f"{{{DS}}}Signature"):
        element.remove(old)
    signature = xmlsec.template.create(element, xmlsec.Transform.EXCL_C14N, method, ns="ds")
    element.find(f"{{{SAML}}}Issuer").addnext(signature)  # schema order: right after Issuer
    reference = xmlsec.template.add_reference(
        signature, xmlsec.Transform.SHA256, uri=f"#{element.get('ID')}"
    )
    xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
    if key_info:  # filled by xmlsec with the certificate loaded into the key
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    context = xmlsec.SignatureContext()
    context.key = key
    context.register_id(element, "ID")
    context.sign(signature)


def verifies(element: etree._Element, key: xmlsec.Key) -> bool:
    """Whether ``element``'s signature is mathematically valid under ``key`` (lenient xmlsec)."""
    context = xmlsec.SignatureContext()
    context.key = key
    context.register_id(element, "ID")
    try:
        context.verify(signature_of(element))
    except xmlsec.Error:
        return False
    return True


def rsa_key(key_pem: bytes, cert_pem: bytes | None = None) -> xmlsec.Key:
    key = xmlsec.Key.from_memory(key_pem, xmlsec.KeyFormat.PEM)
    if cert_pem:
        key.load_cert_from_memory(cert_pem, xmlsec.KeyFormat.CERT_PEM)
    return key


def idp_public_key(idp: TestIdP) -> xmlsec.Key:
    return xmlsec.Key.from_memory(idp.keys.cert_pem, xmlsec.KeyFormat.CERT_PEM)


# -- XML signature wrapping: XSW1-8 ------------------------------------------------------------


def xsw1(site: Site, idp: TestIdP) -> etree._Element:
    """Signed Response: the original (unsigned copy) moves into the Signature; evil at the root."""
    root = signed_response(site, idp)
    original = unsigned_copy(root)
    signature_of(root).append(original)
    root.set("ID", f"_evil{uuid.uuid4().hex}")
    name_id(assertion_of(root)).text = EVIL
    return root


def xsw2(site: Site, idp: TestIdP) -> etree._Element:
    """Signed Response: the original goes before the Signature, as a detached sibling."""
    root = signed_response(site, idp)
    original = unsigned_copy(root)
    signature_of(root).addprevious(original)
    root.set("ID", f"_evil{uuid.uuid4().hex}")
    name_id(assertion_of(root)).text = EVIL
    return root


def xsw3(site: Site, idp: TestIdP) -> etree._Element:
    """Signed Assertion: an evil unsigned copy (fresh ID) placed before the original."""
    root = xml_for(site, idp)
    signed = assertion_of(root)
    signed.addprevious(unsigned_copy(signed, new_id=True, email=EVIL))
    return root


def xsw4(site: Site, idp: TestIdP) -> etree._Element:
    """Signed Assertion: the evil copy replaces it, and holds the original as a child."""
    root = xml_for(site, idp)
    signed = assertion_of(root)
    evil = unsigned_copy(signed, new_id=True, email=EVIL)
    root.replace(signed, evil)
    evil.append(signed)
    return root


def xsw5(site: Site, idp: TestIdP) -> etree._Element:
    """Signed Assertion: the evil one keeps the signature (fresh ID); the original, unsigned,
    goes to the end of the Response."""
    root = xml_for(site, idp)
    signed = assertion_of(root)
    root.append(unsigned_copy(signed))
    signed.set("ID", f"_evil{uuid.uuid4().hex}")
    name_id(signed).text = EVIL
    return root


def xsw6(site: Site, idp: TestIdP) -> etree._Element:
    """Signed Assertion: as XSW5, with the original inside the evil assertion's Signature."""
    root = xml_for(site, idp)
    signed = assertion_of(root)
    signature_of(signed).append(unsigned_copy(signed))
    signed.set("ID", f"_evil{uuid.uuid4().hex}")
    name_id(signed).text = EVIL
    return root


def xsw7(site: Site, idp: TestIdP) -> etree._Element:
    """Signed Assertion: an evil copy (same ID) in a samlp:Extensions before it; the original
    stays where it was."""
    root = xml_for(site, idp)
    signed = assertion_of(root)
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    root.find(f"{{{SAML}}}Issuer").addnext(extensions)  # schema order: Issuer, Extensions
    extensions.append(unsigned_copy(signed, email=EVIL))
    return root


def xsw8(site: Site, idp: TestIdP) -> etree._Element:
    """Signed Assertion: the evil one keeps the signature (fresh ID); the original, unsigned,
    sits in a ds:Object appended to that Signature."""
    root = xml_for(site, idp)
    signed = assertion_of(root)
    holder = etree.SubElement(signature_of(signed), f"{{{DS}}}Object")
    holder.append(unsigned_copy(signed))
    signed.set("ID", f"_evil{uuid.uuid4().hex}")
    name_id(signed).text = EVIL
    return root


def xsw_advice(site: Site, idp: TestIdP) -> etree._Element:
    """Beyond the catalogue: the signed original hidden in the evil assertion's saml:Advice."""
    root = xml_for(site, idp)
    signed = assertion_of(root)
    evil = unsigned_copy(signed, new_id=True, email=EVIL)
    advice = etree.Element(f"{{{SAML}}}Advice")
    evil.find(f"{{{SAML}}}Conditions").addnext(advice)  # schema order: Conditions, Advice
    root.replace(signed, evil)
    advice.append(signed)
    return root


# builder, the code with the ACS as it is, the code with its structural rule removed
XSW: list[tuple[Callable[[Site, TestIdP], etree._Element], str, str]] = [
    (xsw1, "assertion_count", "signature_invalid"),  # Signature holds a Response; URI mismatch
    (xsw2, "assertion_count", "signature_invalid"),  # Reference URI is not the root's ID
    (xsw3, "assertion_count", "unsigned"),  # the first assertion carries no signature
    (xsw4, "assertion_count", "unsigned"),
    (xsw5, "assertion_count", "signature_invalid"),  # Reference URI is not the evil one's ID
    (xsw6, "assertion_count", "signature_invalid"),
    (xsw7, "assertion_count", "unsigned"),
    (xsw8, "assertion_count", "signature_invalid"),  # ds:Object, and the URI mismatch
    (xsw_advice, "assertion_count", "unsigned"),
]
XSW_IDS = [builder.__name__ for builder, _, _ in XSW]


@pytest.mark.parametrize("build, reason, _", XSW, ids=XSW_IDS)
def test_signature_wrapping(site: Site, idp: TestIdP, build: Any, reason: str, _: str):
    assert_refused(site, post(site, encode(build(site, idp))), reason)


def _naive_structure(self: AssertionConsumer, root: Any) -> Any:
    """check_structure without "exactly one assertion, directly in the Response": the first
    assertion in document order, as SPs using getElementsByTagName read it."""
    assertion = next(root.iter(f"{{{SAML}}}Assertion"))
    if signature_of(root) is None and signature_of(assertion) is None:
        raise Rejection("unsigned", "neither the response nor its assertion is signed")
    return assertion


@pytest.fixture
def without_structural_rule(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The site's server threads run in this process: the patch applies to them.
    monkeypatch.setattr(AssertionConsumer, "check_structure", _naive_structure)
    yield


@pytest.mark.parametrize("build, _, reason", XSW, ids=XSW_IDS)
def test_signature_wrapping_fails_on_the_signature_alone(
    site: Site, idp: TestIdP, without_structural_rule: None, build: Any, _: str, reason: str
):
    assert_refused(site, post(site, encode(build(site, idp))), reason)


def test_naive_structure_still_lets_genuine_responses_in(
    site: Site, idp: TestIdP, without_structural_rule: None
):
    """The control for the test above: the relaxed ACS is not simply refusing everything."""
    assert_signed_in(site, post(site, encode(xml_for(site, idp))))
    assert_signed_in(site, post(site, encode(signed_response(site, idp))))


# -- signatures removed, swapped, doubled, forged ----------------------------------------------


def test_signature_removed_from_the_assertion(site: Site, idp: TestIdP):
    root = xml_for(site, idp)
    assertion = assertion_of(root)
    assertion.remove(signature_of(assertion))
    assert_refused(site, post(site, encode(root)), "unsigned")


def test_signature_removed_from_the_response(site: Site, idp: TestIdP):
    root = signed_response(site, idp)
    root.remove(signature_of(root))
    assert_refused(site, post(site, encode(root)), "unsigned")


def test_unsigned_assertion_in_an_unsigned_response(site: Site, idp: TestIdP):
    root = xml_for(site, idp, sign_assertion=False, email=EVIL)
    assert signature_of(root) is None and signature_of(assertion_of(root)) is None
    assert_refused(site, post(site, encode(root)), "unsigned")


def test_signed_response_whose_assertion_was_swapped(site: Site, idp: TestIdP):
    """The swapped-in assertion is itself validly signed by the IdP (for another person):
    the Response's signature, which covered the original assertion, no longer verifies."""
    root = signed_response(site, idp)
    other = assertion_of(xml_for(site, idp, email=EVIL))
    assert verifies(other, idp_public_key(idp))
    root.replace(assertion_of(root), other)
    assert_refused(site, post(site, encode(root)), "signature_invalid")


def test_two_validly_signed_assertions(site: Site, idp: TestIdP):
    root = xml_for(site, idp)
    assertion_of(root).addnext(assertion_of(xml_for(site, idp, email=EVIL)))
    assert_refused(site, post(site, encode(root)), "assertion_count")


@pytest.mark.parametrize("key_info", ["attacker certificate", "IdP certificate"])
def test_valid_signature_by_a_key_not_in_the_metadata(site: Site, idp: TestIdP, key_info: str):
    """Signed with the attacker's key, the certificate in KeyInfo: either the attacker's own
    (the signature is valid under it) or the IdP's (KeyInfo lying). KeyInfo is never read."""
    attacker = make_key_pair("Mallory")
    root = xml_for(site, idp)
    assertion = assertion_of(root)
    name_id(assertion).text = EVIL
    sign(assertion, rsa_key(attacker.key_pem, attacker.cert_pem), key_info=True)
    certificate = assertion.find(f".//{{{DS}}}X509Certificate")
    assert "".join(certificate.text.split()) == attacker.cert_base64
    assert verifies(assertion, xmlsec.Key.from_memory(attacker.cert_pem, xmlsec.KeyFormat.CERT_PEM))
    if key_info == "IdP certificate":
        certificate.text = idp.keys.cert_base64
    assert_refused(site, post(site, encode(root)), "signature_invalid")


@pytest.mark.parametrize("secret", ["PEM", "DER", "base64 DER"])
def test_hmac_keyed_with_the_idp_certificate(site: Site, idp: TestIdP, secret: str):
    """Key confusion: HMAC-SHA256 over the evil assertion, keyed with the IdP's public
    certificate as it appears in its metadata (PEM, DER, or the base64 text itself)."""
    material = {
        "PEM": idp.keys.cert_pem,
        "DER": base64.b64decode(idp.keys.cert_base64),
        "base64 DER": idp.keys.cert_base64.encode("ascii"),
    }[secret]
    key = xmlsec.Key.from_binary_data(xmlsec.KeyData.HMAC, material)
    root = xml_for(site, idp)
    assertion = assertion_of(root)
    name_id(assertion).text = EVIL
    sign(assertion, key, method=xmlsec.Transform.HMAC_SHA256)
    method = assertion.find(f".//{{{DS}}}SignatureMethod").get("Algorithm")
    assert method == "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
    assert verifies(assertion, xmlsec.Key.from_binary_data(xmlsec.KeyData.HMAC, material))
    assert_refused(site, post(site, encode(root)), "signature_invalid")


# -- content changed after signing -------------------------------------------------------------


def test_comment_in_name_id_never_signs_in_the_truncated_address(site: Site, idp: TestIdP):
    """CVE-2017-11427 family: the IdP signed ``alice@acme.test.evil.test``; a comment injected
    after ``alice@acme.test`` leaves the exclusive-c14n signature valid, and a parser reading
    the first text node would see ``alice@acme.test``. The ACS refuses NameIDs with children."""
    root = xml_for(site, idp, email="alice@acme.test.evil.test")
    assertion = assertion_of(root)
    inject_comment(name_id(assertion), GENUINE)
    assert verifies(assertion, idp_public_key(idp))  # the attack is real: still validly signed
    assert_refused(site, post(site, encode(root)), "bad_name_id")
    assert site.audit("signed_in") == [] and site.audit("created") == []
    # Nor is the truncated address recorded as the one the refused response claimed.
    assert "email" not in site.audit("login_failed")[-1].changes


def test_comment_in_audience_cannot_make_another_audience_ours(site: Site, idp: TestIdP):
    """The same trick on Audience: the IdP signed an assertion for another SP whose entity ID
    extends ours (addressed to our ACS); a comment after our entity ID must not make it ours."""
    ours = site.entity_id("acme")
    root = xml_for(site, idp, audience=ours + ".legacy.test")
    assertion = assertion_of(root)
    inject_comment(assertion.find(f".//{{{SAML}}}Audience"), ours)
    assert verifies(assertion, idp_public_key(idp))
    assert_refused(site, post(site, encode(root)), "audience_mismatch")


def test_comment_in_issuer_cannot_make_another_issuer_ours(site: Site, idp: TestIdP):
    """And on Issuer: an IdP signing for several tenants with one key, whose entity IDs extend
    each other (``.../idp/metadata`` and ``.../idp/metadata.other.test``)."""
    root = xml_for(site, idp, issuer=idp.entity_id + ".other.test")
    assertion = assertion_of(root)
    root.find(f"{{{SAML}}}Issuer").text = idp.entity_id  # the Response is not signed
    inject_comment(assertion.find(f"{{{SAML}}}Issuer"), idp.entity_id)
    assert verifies(assertion, idp_public_key(idp))
    assert_refused(site, post(site, encode(root)), "issuer_mismatch")


@pytest.mark.parametrize("tamper", ["changed value", "added attribute"])
def test_attribute_tampered_after_signing(site: Site, idp: TestIdP, tamper: str):
    root = xml_for(site, idp)
    statement = assertion_of(root).find(f"{{{SAML}}}AttributeStatement")
    if tamper == "changed value":
        value = statement.find(f"{{{SAML}}}Attribute[@Name='firstName']/{{{SAML}}}AttributeValue")
        value.text = "Administrator"
    else:
        attribute = etree.SubElement(statement, f"{{{SAML}}}Attribute", Name="displayName")
        etree.SubElement(attribute, f"{{{SAML}}}AttributeValue").text = "Root Admin"
    assert_refused(site, post(site, encode(root)), "signature_invalid")


def test_name_id_tampered_after_signing(site: Site, idp: TestIdP):
    root = xml_for(site, idp)
    name_id(root).text = EVIL
    assert_refused(site, post(site, encode(root)), "signature_invalid")


# -- DTDs and entities ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doctype, reference",
    [
        pytest.param(
            '<!DOCTYPE r [<!ENTITY who "admin@acme.test">]>', "&who;", id="internal-entity"
        ),
        pytest.param(
            '<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>', "&e;", id="external-entity"
        ),
        pytest.param('<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd">', None, id="external-dtd"),
        pytest.param(
            '<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>',
            None,
            id="parameter-entity",
        ),
        pytest.param(
            '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;">]>',
            "&d;",
            id="entity-expansion",
        ),
    ],
)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_dtd_and_entities(
    site: Site, idp: TestIdP, doctype: str, reference: str | None, encoding: str
):
    """Any DTD is refused; in UTF-16 the byte scan misses it and the parsed tree must tell."""
    body = etree.tostring(xml_for(site, idp)).decode("utf-8")
    if reference:  # the entity is used where the identity is read
        body = body.replace(GENUINE, reference, 1)
    document = f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n{doctype}\n{body}'
    assert_refused(site, post(site, encode(document.encode(encoding))), "dtd_forbidden")


# -- replay ----------------------------------------------------------------------------------------


def test_replay_on_the_same_worker(site: Site, idp: TestIdP):
    saml_response = encode(xml_for(site, idp))
    assert_signed_in(site, post(site, saml_response))
    assert_refused(site, post(site, saml_response), "replayed", members=(GENUINE,))
    assert len(site.audit("created")) == 1


@pytest.mark.parametrize("expiry", ["removed", "kept"])
def test_assertion_without_expiry_cannot_outlive_the_replay_cache(
    site: Site, idp: TestIdP, expiry: str
):
    """An IdP that signs bearer assertions without NotOnOrAfter (saml-profiles 4.1.4.2: it
    MUST NOT): the replay cache keeps an ID only until the assertion's expiry plus the clock
    skew, so such an assertion was accepted, and accepted again once the cache forgot it
    (three minutes on). Re-signed by the IdP's own key: a lax IdP, not a forgery; "kept" is
    the control, re-signed the same way."""
    root = xml_for(site, idp, sign_assertion=False)
    assertion = assertion_of(root)
    if expiry == "removed":
        for element in assertion.iter():
            element.attrib.pop("NotOnOrAfter", None)
    sign(assertion, rsa_key(idp.keys.key_pem))
    assert verifies(assertion, idp_public_key(idp))
    if expiry == "kept":
        assert_signed_in(site, post(site, encode(root)))
    else:
        assert_refused(site, post(site, encode(root)), "missing_not_on_or_after")


def test_replay_on_another_worker(site: Site, idp: TestIdP, other_worker: str):
    saml_response = encode(xml_for(site, idp))
    assert_signed_in(site, post(site, saml_response))
    replay = post(site, saml_response, url=f"{other_worker}/saml/acme/acs")
    assert_refused(site, replay, "replayed", members=(GENUINE,))


def test_another_worker_accepts_a_fresh_response(site: Site, idp: TestIdP, other_worker: str):
    """The control for the test above: the second worker does sign people in."""
    response = post(site, encode(xml_for(site, idp)), url=f"{other_worker}/saml/acme/acs")
    assert response.status_code == 303 and "Set-Cookie" in response.headers


# -- addressing and time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("audience", "https://other.test/saml/acme/metadata", "audience_mismatch"),
        ("recipient", "https://other.test/saml/acme/acs", "recipient_mismatch"),
        ("destination", "https://other.test/saml/acme/acs", "destination_mismatch"),
        ("issuer", "https://impostor.test/idp", "issuer_mismatch"),
        # The default clock skew is 180 s: 200 s is beyond it.
        ("not_on_or_after_offset", -200, "expired"),
        ("not_before_offset", 200, "not_yet_valid"),
        ("in_response_to", "_never-issued", "request_not_bound"),
    ],
)
@pytest.mark.parametrize("signed", ["assertion", "response"])
def test_validly_signed_but_not_for_us(
    site: Site, idp: TestIdP, field: str, value: Any, reason: str, signed: str
):
    root = xml_for(
        site,
        idp,
        sign_assertion=signed == "assertion",
        sign_response=signed == "response",
        **{field: value},
    )
    assert_refused(site, post(site, encode(root)), reason)


def _request_id(location: str) -> str:
    """The ID of the AuthnRequest in an HTTP-Redirect URL, decoded as an attacker would."""
    saml_request = parse_qs(urlsplit(location).query)["SAMLRequest"][0]
    return etree.fromstring(zlib.decompress(base64.b64decode(saml_request), -15)).get("ID")


def _start(site: Site, slug: str, browser: requests.Session | None = None) -> str:
    """Start a sign-in (in ``browser``, which then holds the request's binding cookie)."""
    start = (browser or requests.Session()).get(
        f"{site.url}/saml/{slug}/login", allow_redirects=False
    )
    assert start.status_code == 302, start.text
    return _request_id(start.headers["Location"])


def test_reused_in_response_to(site: Site, idp: TestIdP):
    """A second, freshly signed response answering an already answered request: refused in
    another browser (no binding), and in the same one (its cookie no longer names it)."""
    signed_in = sp_initiated_as(site, idp, GENUINE)
    assert_signed_in(site, signed_in)
    used = idp.requests[-1].id
    again = xml_for(site, idp, email=EVIL, in_response_to=used)
    assert_refused(site, post(site, encode(again)), "request_not_bound", members=(GENUINE,))
    same = post(site, encode(again), browser=signed_in.browser)  # type: ignore[attr-defined]
    assert same.status_code == 400 and "request_not_bound" in same.text
    assert whoami(same.browser, site).startswith(f"user={GENUINE};")  # type: ignore[attr-defined]


def test_in_response_to_a_request_of_another_workspace(site: Site, idp: TestIdP):
    browser = requests.Session()
    beta_request = _start(site, "beta", browser)
    root = xml_for(site, idp, in_response_to=beta_request)
    assert_refused(site, post(site, encode(root), browser=browser), "request_not_bound")


@pytest.mark.parametrize("assertion_answers", ["nothing (IdP-initiated)", "another request"])
def test_in_response_to_rewritten_on_an_unsigned_response(
    site: Site, idp: TestIdP, assertion_answers: str
):
    """Only the assertion is signed, so the Response's InResponseTo is the attacker's to set.
    Pointed at a live request (one the attacker started), it must not launder an unsolicited
    assertion into a workspace that refuses IdP-initiated sign-in, nor an assertion made for
    another request: the signed SubjectConfirmationData says what the assertion answers.
    (Both were accepted before acs.py bound the two together.)"""
    browser = requests.Session()  # the attacker's own, holding both requests' binding
    live = _start(site, "strict", browser)
    answered = _start(site, "strict", browser) if assertion_answers == "another request" else None
    root = xml_for(site, idp, slug="strict", in_response_to=answered)
    root.set("InResponseTo", live)
    assert_refused(
        site, post(site, encode(root), slug="strict", browser=browser), "in_response_to_mismatch"
    )


def test_in_response_to_removed_from_an_unsigned_response(site: Site, idp: TestIdP):
    """The other way round: an answer passed off as unsolicited, its request left open."""
    root = xml_for(site, idp, in_response_to=_start(site, "acme"))
    del root.attrib["InResponseTo"]
    assert_refused(site, post(site, encode(root)), "in_response_to_mismatch")


def test_sp_initiated_sign_in_where_idp_initiated_is_off(site: Site, idp: TestIdP):
    """The control for the tests above: an honest answer to a live request gets in."""
    assert_signed_in(
        site, sp_initiated_as(site, idp, "alice@strict.test", slug="strict"), "alice@strict.test"
    )


def test_unsolicited_response_where_idp_initiated_sign_in_is_off(site: Site, idp: TestIdP):
    root = xml_for(site, idp, slug="strict")
    assert_refused(site, post(site, encode(root), slug="strict"), "unsolicited_not_allowed")


# -- one IdP, two workspaces -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "rewritten, reason",
    [
        ((), "destination_mismatch"),  # posted as the IdP made it
        (("destination",), "audience_mismatch"),  # the unsigned Response re-addressed
        (("destination", "recipient", "audience"), "signature_invalid"),  # the assertion too
    ],
)
def test_response_for_one_workspace_posted_to_another(
    site: Site, idp: TestIdP, rewritten: tuple[str, ...], reason: str
):
    """acme and beta trust the same IdP: a response made for acme must not sign into beta."""
    root = xml_for(site, idp, slug="acme")
    assertion = assertion_of(root)
    if "destination" in rewritten:
        root.set("Destination", site.acs("beta"))
    if "recipient" in rewritten:
        assertion.find(f".//{{{SAML}}}SubjectConfirmationData").set("Recipient", site.acs("beta"))
    if "audience" in rewritten:
        assertion.find(f".//{{{SAML}}}Audience").text = site.entity_id("beta")
    assert_refused(site, post(site, encode(root), slug="beta"), reason)


# -- encrypted assertions --------------------------------------------------------------------------
# The SP certificate is public (the SP metadata): anyone can encrypt an assertion to it, so a
# decrypted assertion is worth exactly what its signature (or the Response's) is worth.


def our_certificate(site: Site, slug: str = "acme") -> str:
    """The SP certificate of ``slug`` for encryption, as its SP metadata publishes it (PEM)."""
    metadata = requests.get(site.entity_id(slug))
    assert metadata.status_code == 200, metadata.text
    found = etree.fromstring(metadata.content).xpath(
        "//md:KeyDescriptor[@use='encryption']//ds:X509Certificate/text()",
        namespaces={"md": "urn:oasis:names:tc:SAML:2.0:metadata", "ds": DS},
    )
    body = "".join(found[0].split())
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"


def encrypted_of(root: etree._Element) -> etree._Element:
    return root.find(f"{{{SAML}}}EncryptedAssertion")


def attacker_encrypts(assertion: etree._Element, site: Site, slug: str = "acme") -> None:
    """Replace ``assertion`` in its tree by its encryption to the workspace's public SP
    certificate, as anyone can."""
    encrypt_assertion(assertion, our_certificate(site, slug))


def test_an_unsigned_assertion_encrypted_to_our_certificate(site: Site, idp: TestIdP):
    """The attacker's own assertion, encrypted to our public certificate, in an unsigned
    response: decrypting it proves nothing."""
    root = xml_for(site, idp, sign_assertion=False)
    name_id(assertion_of(root)).text = EVIL
    attacker_encrypts(assertion_of(root), site)
    assert signature_of(root) is None and assertion_of(root) is None
    assert_refused(site, post(site, encode(root)), "unsigned", public="decryption_failed")


def test_an_assertion_signed_by_the_attacker_and_encrypted(site: Site, idp: TestIdP):
    attacker = make_key_pair("Mallory")
    root = xml_for(site, idp)
    assertion = assertion_of(root)
    name_id(assertion).text = EVIL
    sign(assertion, rsa_key(attacker.key_pem, attacker.cert_pem), key_info=True)
    attacker_encrypts(assertion, site)
    assert_refused(site, post(site, encode(root)), "signature_invalid", public="decryption_failed")


def test_a_copied_signature_on_an_altered_assertion_encrypted(site: Site, idp: TestIdP):
    """The IdP's signature kept on an assertion whose NameID the attacker changed, the whole
    then encrypted: the signature is checked on the decrypted assertion, and fails."""
    root = xml_for(site, idp)
    name_id(assertion_of(root)).text = EVIL
    attacker_encrypts(assertion_of(root), site)
    assert_refused(site, post(site, encode(root)), "signature_invalid", public="decryption_failed")


def test_a_genuine_signed_assertion_encrypted_by_anyone_signs_in_its_own_subject(
    site: Site, idp: TestIdP
):
    """The control for the tests above: encrypting the IdP's genuine assertion (as anyone
    may) changes nothing; it signs in whom the IdP signed for, once."""
    root = xml_for(site, idp)
    attacker_encrypts(assertion_of(root), site)
    assert_signed_in(site, post(site, encode(root)))


def test_a_signed_responses_encrypted_assertion_swapped_for_the_attackers(site: Site, idp: TestIdP):
    """XSW across encryption: the Response signature covers the EncryptedAssertion as sent, so
    swapping in an attacker-encrypted one breaks it (checked before anything is decrypted)."""
    certificate = our_certificate(site)
    root = signed_response(site, idp, encryption=Encryption(certificate))
    evil_source = xml_for(site, idp, sign_assertion=False, email=EVIL)
    evil = assertion_of(evil_source)
    evil.set("ID", f"_evil{uuid.uuid4().hex}")
    attacker_encrypts(evil, site)
    root.replace(encrypted_of(root), encrypted_of(evil_source))
    assert_refused(site, post(site, encode(root)), "signature_invalid")


def test_an_encrypted_twin_of_a_signed_plaintext_assertion(site: Site, idp: TestIdP):
    """XSW across the two: an evil unsigned copy carrying the signed assertion's ID, encrypted,
    beside the signed plaintext original. Whichever a party reads, one is refused."""
    root = xml_for(site, idp)
    signed = assertion_of(root)
    twin = unsigned_copy(signed, email=EVIL)
    signed.addprevious(twin)
    attacker_encrypts(twin, site)
    assert assertion_of(root).get("ID") == signed.get("ID")
    assert_refused(site, post(site, encode(root)), "encrypted_and_plain")


@pytest.mark.parametrize("where", ["extensions", "signature object"])
def test_a_signed_plaintext_assertion_hidden_beside_an_encrypted_one(
    site: Site, idp: TestIdP, where: str
):
    root = xml_for(site, idp)
    signed = assertion_of(root)
    evil = unsigned_copy(signed, email=EVIL)
    root.replace(signed, evil)
    attacker_encrypts(evil, site)
    if where == "extensions":
        extensions = etree.Element(f"{{{SAMLP}}}Extensions")
        root.find(f"{{{SAML}}}Issuer").addnext(extensions)
        extensions.append(signed)
    else:
        sign(root, rsa_key(make_key_pair("Mallory").key_pem))
        etree.SubElement(signature_of(root), f"{{{DS}}}Object").append(signed)
    assert_refused(site, post(site, encode(root)), "encrypted_and_plain")


def test_the_signed_original_in_the_advice_of_an_encrypted_evil_assertion(site: Site, idp: TestIdP):
    """xsw_advice inside the encryption: only the decrypted document shows the second
    assertion, and it too must hold exactly one."""
    root = xml_for(site, idp)
    signed = assertion_of(root)
    evil = unsigned_copy(signed, new_id=True, email=EVIL)
    root.replace(signed, evil)
    advice = etree.Element(f"{{{SAML}}}Advice")
    evil.find(f"{{{SAML}}}Conditions").addnext(advice)
    advice.append(signed)
    attacker_encrypts(evil, site)
    assert_refused(site, post(site, encode(root)), "assertion_count", public="decryption_failed")


@pytest.mark.parametrize("signed", ["assertion", "response"])
def test_replay_of_an_encrypted_response(site: Site, idp: TestIdP, signed: str):
    root = xml_for(
        site,
        idp,
        sign_assertion=signed == "assertion",
        sign_response=signed == "response",
        encryption=Encryption(our_certificate(site)),
    )
    saml_response = encode(root)
    assert_signed_in(site, post(site, saml_response))
    assert_refused(site, post(site, saml_response), "replayed", members=(GENUINE,))


def test_replay_by_encrypting_a_used_assertion_again(site: Site, idp: TestIdP):
    """New cipher text, same signed assertion: the replay cache keys the decrypted ID."""
    root = xml_for(site, idp)
    again = copy.deepcopy(root)
    assert_signed_in(site, post(site, encode(root)))
    attacker_encrypts(assertion_of(again), site)
    assert_refused(site, post(site, encode(again)), "replayed", members=(GENUINE,))


@pytest.mark.parametrize("assertion_answers", ["nothing (IdP-initiated)", "another request"])
def test_in_response_to_rewritten_around_an_encrypted_assertion(
    site: Site, idp: TestIdP, assertion_answers: str
):
    """As test_in_response_to_rewritten_on_an_unsigned_response, the signed assertion encrypted:
    what the decrypted assertion answers is what counts."""
    browser = requests.Session()
    live = _start(site, "strict", browser)
    answered = _start(site, "strict", browser) if assertion_answers == "another request" else None
    root = xml_for(
        site,
        idp,
        slug="strict",
        in_response_to=answered,
        encryption=Encryption(our_certificate(site, "strict")),
    )
    root.set("InResponseTo", live)
    assert_refused(
        site, post(site, encode(root), slug="strict", browser=browser), "in_response_to_mismatch"
    )


def test_an_assertion_encrypted_for_another_workspace(site: Site, idp: TestIdP):
    """acme and beta share the IdP, never their SP keys: beta's key does not open it."""
    assert our_certificate(site, "acme") != our_certificate(site, "beta")
    root = xml_for(site, idp, encryption=Encryption(our_certificate(site, "beta")))
    assert_refused(site, post(site, encode(root)), "decryption_failed")


def test_an_encrypted_sign_in_through_the_idp(site: Site, idp: TestIdP):
    """The control: SP-initiated, the IdP encrypting for acme's certificate, signs in."""
    idp.encryption = Encryption(our_certificate(site))
    try:
        assert_signed_in(site, sp_initiated_as(site, idp, GENUINE))
    finally:
        idp.encryption = None


# -- transport: size and encoding ------------------------------------------------------------------


def assert_too_large(site: Site, response: requests.Response) -> None:
    response.browser = getattr(response, "browser", requests.Session())  # type: ignore[attr-defined]
    assert_refused(site, response, "too_large", status=413)


def test_oversized_body(site: Site):
    assert_too_large(site, post(site, "A" * 2_000_000))


def test_oversized_body_without_content_length(site: Site):
    """Chunked transfer encoding: no Content-Length to refuse up front, and werkzeug alone would
    read up to max_body_bytes and stop without an error. The cut body is refused as too large,
    not parsed as if whole."""

    def chunks() -> Iterator[bytes]:
        yield b"SAMLResponse="
        for _ in range(40):
            yield b"A" * 50_000  # 2,000,000 "A": valid base64, had it all been read

    assert_too_large(
        site,
        requests.post(
            site.acs("acme"),
            data=chunks(),
            allow_redirects=False,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
    )


def test_a_chunked_body_within_the_limit_is_read_whole(site: Site):
    value = "A" * 900_000  # past werkzeug's own 500 kB cap on one form field, within 1 MiB

    def chunks() -> Iterator[bytes]:
        body = b"SAMLResponse=" + value.encode()
        for start in range(0, len(body), 64_000):
            yield body[start : start + 64_000]

    response = requests.post(
        site.acs("acme"),
        data=chunks(),
        allow_redirects=False,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    response.browser = requests.Session()  # type: ignore[attr-defined]
    assert_refused(site, response, "malformed_xml")  # decoded whole: base64 of no XML


@pytest.mark.parametrize(
    "value", ["%%%not-base64%%%", "PFJ", "abc", "PHg+!", "PH g", "\u00e9t\u00e9"]
)
def test_bad_base64(site: Site, value: str):
    """Strict base64: a character outside the alphabet or wrong padding is refused (whitespace
    between lines is not an error: test_acs.py's test_base64_wrapped_in_lines_is_read)."""
    assert_refused(site, post(site, value), "bad_encoding")


def test_missing_response(site: Site):
    assert_refused(site, post(site, ""), "missing_response")


# -- open redirects --------------------------------------------------------------------------------

EVIL_TARGETS = [
    "https://evil.test/",
    "http:evil.test",
    "//evil.test/x",
    "/\\evil.test",
    "\\/evil.test",
    "/\t/evil.test",
    " //evil.test",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/\r\nLocation: //evil",
]


def assert_stays_on_site(site: Site, location: str, expected: str = "/") -> None:
    parts = urlsplit(location)
    assert parts.scheme in ("", "http"), location
    assert parts.netloc in ("", urlsplit(site.url).netloc), location
    assert "\\" not in location and not location.startswith("//"), location
    path = location[len(site.url) :] if location.startswith(site.url) else location
    assert path == expected, location


@pytest.mark.parametrize("relay_state", EVIL_TARGETS)
def test_relay_state_open_redirect(site: Site, idp: TestIdP, relay_state: str):
    response = post(site, encode(xml_for(site, idp)), relay_state=relay_state)
    assert response.status_code == 303, response.text
    assert_stays_on_site(site, response.headers["Location"])


def test_relay_state_local_path_is_kept(site: Site, idp: TestIdP):
    """The control: a local path does come through."""
    response = post(site, encode(xml_for(site, idp)), relay_state="/timesheets?week=3")
    assert_stays_on_site(site, response.headers["Location"], "/timesheets?week=3")


@pytest.mark.parametrize("next_path", EVIL_TARGETS)
def test_next_on_workspace_login_open_redirect(site: Site, idp: TestIdP, next_path: str):
    """``next`` is kept server-side with the request and used after the IdP answers."""
    response = sp_initiated_as(site, idp, GENUINE, next_path=next_path)
    assert response.status_code == 303, response.text
    assert_stays_on_site(site, response.headers["Location"])


@pytest.mark.parametrize("next_path", EVIL_TARGETS)
def test_next_on_the_sign_in_page_open_redirect(site: Site, next_path: str):
    page = requests.get(f"{site.url}/saml/login", params={"next": next_path})
    assert page.status_code == 200
    assert 'name="next" value="/"' in page.text and html.escape(next_path) not in page.text
    chosen = requests.post(
        f"{site.url}/saml/login",
        allow_redirects=False,
        data={"email": "newcomer@acme.test", "next": next_path},
    )
    assert chosen.status_code == 303, chosen.text
    location = chosen.headers["Location"]
    assert location.startswith("/saml/acme/login?")
    assert parse_qs(urlsplit(location).query)["next"] == ["/"]


@pytest.mark.parametrize("next_path", EVIL_TARGETS)
def test_next_on_logout_open_redirect(site: Site, idp: TestIdP, next_path: str):
    anonymous = requests.Session()
    page = anonymous.get(f"{site.url}/saml/logout", params={"next": next_path})
    assert 'href="/"' in page.text and html.escape(next_path) not in page.text
    done = anonymous.post(
        f"{site.url}/saml/logout", data={"next": next_path}, allow_redirects=False
    )
    assert done.status_code == 303
    assert_stays_on_site(site, done.headers["Location"])
    # Signed in, with the page's own CSRF token: the one POST that really signs out.
    signed_in = post(site, encode(xml_for(site, idp)))
    browser = signed_in.browser  # type: ignore[attr-defined]
    form = browser.get(f"{site.url}/saml/logout", params={"next": next_path}).text
    token = etree.HTML(form).find(".//input[@name='csrf_token']").get("value")
    assert 'name="next" value="/"' in form and html.escape(next_path) not in form
    done = browser.post(
        f"{site.url}/saml/logout",
        allow_redirects=False,
        data={"csrf_token": token, "next": next_path},
    )
    # Signed out here, then on to the IdP's single logout; its answer ends on our page,
    # whose only way on is a path on this site.
    assert done.status_code == 302 and done.headers["Location"].startswith(idp.slo_url + "?")
    assert whoami(browser, site).startswith("user=;")
    trust_sp(site, idp)
    back = browser.get(done.headers["Location"], allow_redirects=False)
    final = browser.get(back.headers["Location"], allow_redirects=False)
    assert final.status_code == 200, final.text
    assert 'href="/"' in final.text and html.escape(next_path) not in final.text


# -- LogoutRequests (single logout): refused ones end nothing ----------------------------------------
# acme and beta trust the same IdP (one entity ID, one key), as with an IdP that uses a single
# entity ID for every application: only the Destination tells their LogoutRequests apart.


def signed_in_at(site: Site, idp: TestIdP, slug: str = "acme") -> requests.Session:
    answer = post(site, encode(xml_for(site, idp, slug=slug)), slug=slug)
    assert answer.status_code == 303, answer.text
    browser: requests.Session = answer.browser  # type: ignore[attr-defined]
    assert whoami(browser, site).startswith(f"user={GENUINE};")
    return browser


LOGOUT_ATTACKS = {
    "xsw_wrapped_request": (lambda site, idp: wrapped_request(site, idp), "slo_wrapped"),
    "xsw_second_name_id": (lambda site, idp: second_name_id(site, idp), "slo_wrapped"),
    "name_id_rewritten": (lambda site, idp: renamed(site, idp), "slo_signature_invalid"),
    "unsigned": (
        lambda site, idp: idp.logout_request_xml(
            destination=slo(site), name_id=GENUINE, sign=False
        ),
        "slo_unsigned",
    ),
    "signature_stripped": (
        lambda site, idp: re.sub(
            r"<ns\d:Signature.*</ns\d:Signature>",
            "",
            idp.logout_request_xml(destination=slo(site), name_id=GENUINE),
            flags=re.S,
        ),
        "slo_unsigned",
    ),
    "meant_for_another_workspace": (
        lambda site, idp: idp.logout_request_xml(destination=slo(site, "beta"), name_id=GENUINE),
        "slo_destination_mismatch",
    ),
    "meant_for_another_site": (
        lambda site, idp: idp.logout_request_xml(
            destination="https://other-sp.example/slo", name_id=GENUINE
        ),
        "slo_destination_mismatch",
    ),
}


@pytest.mark.parametrize("case", sorted(LOGOUT_ATTACKS))
def test_forged_logout_requests_end_nothing(site: Site, idp: TestIdP, case: str):
    build, reason = LOGOUT_ATTACKS[case]
    browser = signed_in_at(site, idp)
    fields = idp.logout_form(destination="", name_id="", xml=build(site, idp))

    answer = browser.post(slo(site), data=fields, allow_redirects=False)

    assert answer.status_code == 400, answer.text
    assert f'<span class="reason">{reason}</span>' in answer.text
    assert "Set-Cookie" not in answer.headers
    assert whoami(browser, site).startswith(f"user={GENUINE};")


def test_a_replayed_logout_request_is_refused_by_every_binding(site: Site, idp: TestIdP):
    trust_sp(site, idp)
    url = idp.logout_redirect(destination=slo(site), name_id=GENUINE)
    assert requests.get(url, allow_redirects=False).status_code == 302
    browser = signed_in_at(site, idp)

    again = browser.get(url, allow_redirects=False)

    assert again.status_code == 400 and '<span class="reason">slo_replayed</span>' in again.text
    assert whoami(browser, site).startswith(f"user={GENUINE};")


def test_a_genuine_logout_request_for_one_workspace_ends_nothing_in_another(
    site: Site, idp: TestIdP
):
    trust_sp(site, idp, "beta")
    browser = signed_in_at(site, idp, "acme")
    # The same IdP logs the same NameID out of beta, where it has no session: acme's stays.
    answer = requests.get(
        idp.logout_redirect(destination=slo(site, "beta"), name_id=GENUINE),
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    assert whoami(browser, site).startswith(f"user={GENUINE};")
