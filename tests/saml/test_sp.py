"""The workspace's SP (saml/sp.py): signed AuthnRequests and what its metadata says about them.

The IdP is the real pysaml2 one (tests/saml/idp.py), served over HTTP, that learns the SP from
the SP's own metadata at /saml/<slug>/metadata and verifies each request's signature with the
certificate it finds there: a query-string signature (HTTP-Redirect) over the query as sent,
an enveloped XML signature (HTTP-POST) through pysaml2 on our backend.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import subprocess
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
import saml2.sigver
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from saml2 import BINDING_HTTP_POST
from sqlalchemy import text

from webwork_sso_middleware.saml.rejection import Rejection
from webwork_sso_middleware.saml.sp import IdPSettings, ServiceProvider
from webwork_sso_middleware.sp_keys import SpKey, SpKeyRing, SpKeys
from webwork_sso_middleware.urls import WorkspaceUrls

from ..constants import DS
from .conftest import Site
from .idp import KeyPair, TestIdP, autopost_form, make_key_pair
from .test_login_flow import offering

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


# -- helpers ------------------------------------------------------------------------------------


def sp_keys(site: Site) -> SpKeys:
    return site.middleware.saml.flow.keys


def sp_role(site: Site, slug: str) -> etree._Element:
    """The SPSSODescriptor of the metadata the site serves for ``slug``."""
    answer = requests.get(site.entity_id(slug), timeout=10)
    assert answer.status_code == 200, answer.text
    role = etree.fromstring(answer.content).find(f"{{{MD}}}SPSSODescriptor")
    assert role is not None
    return role


def start(browser: requests.Session, site: Site, slug: str) -> str:
    """The IdP URL (with the AuthnRequest) that /saml/<slug>/login sends the browser to."""
    answer = browser.get(f"{site.url}/saml/{slug}/login", allow_redirects=False)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["Location"])


def finish(browser: requests.Session, location: str) -> requests.Response:
    """Browser at the IdP, then the auto-post back to our ACS."""
    at_idp = browser.get(location)
    assert at_idp.status_code == 200, at_idp.text
    action, fields = autopost_form(at_idp.text)
    return browser.post(action, data=fields, allow_redirects=False)


def raw_parameters(location: str) -> list[tuple[str, str]]:
    """The query's parameters as sent: names and still URL-encoded values, in order."""
    return [
        (name, value)
        for name, _, value in (part.partition("=") for part in urlsplit(location).query.split("&"))
    ]


def with_parameter(location: str, name: str, value: str) -> str:
    """``location`` with the (URL-encoded) value of ``name`` replaced, the rest left as sent."""
    base = location.split("?", 1)[0]
    query = "&".join(f"{n}={value if n == name else v}" for n, v in raw_parameters(location))
    return f"{base}?{query}"


def query_signature_verifies(location: str, certificate: str) -> bool:
    """SAML bindings 3.4.4.1, checked here on its own: the signature covers
    ``SAMLRequest=..&RelayState=..&SigAlg=..`` exactly as the query carries them."""
    parameters = raw_parameters(location)
    names = [name for name, _ in parameters]
    assert names == ["SAMLRequest", "RelayState", "SigAlg", "Signature"], names
    signed = "&".join(f"{name}={value}" for name, value in parameters[:3]).encode("ascii")
    signature = base64.b64decode(parse_qs(urlsplit(location).query)["Signature"][0])
    der = base64.b64decode(certificate)
    key = x509.load_der_x509_certificate(der).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def authn_request_xml(location: str) -> etree._Element:
    """The AuthnRequest a Redirect URL carries (base64 of raw DEFLATE)."""
    deflated = base64.b64decode(parse_qs(urlsplit(location).query)["SAMLRequest"][0])
    return etree.fromstring(zlib.decompress(deflated, -15))


def workspace_with_idp(site: Site, idp: TestIdP, slug: str = "acme") -> None:
    """A workspace using ``idp``, which knows the SP by the SP's own metadata (its keys too)."""
    site.add_workspace(slug, idp)
    assert idp.load_sp_metadata(site.entity_id(slug)) == [site.entity_id(slug)]


# -- HTTP-Redirect, end to end --------------------------------------------------------------------


def test_an_idp_that_wants_signed_requests_gets_them_and_accepts_them(
    site: Site, idp: TestIdP
) -> None:
    idp.want_authn_requests_signed = True
    assert 'WantAuthnRequestsSigned="true"' in idp.metadata_xml()
    workspace_with_idp(site, idp)
    current = sp_keys(site).status("acme").current
    assert current is not None and not sp_keys(site).status("acme").sign_authn_requests

    browser = requests.Session()
    location = start(browser, site, "acme")
    query = parse_qs(urlsplit(location).query)
    assert query["SigAlg"] == [RSA_SHA256]
    assert query_signature_verifies(location, current.certificate_base64)
    # The Redirect binding signs the query, never the deflated XML.
    assert authn_request_xml(location).find(f"{{{DS}}}Signature") is None

    answer = finish(browser, location)
    assert answer.status_code == 303, answer.text
    seen = idp.requests[-1]
    assert (seen.signature, seen.signed_by) == ("query", current.certificate_base64)
    assert browser.get(site.url + "/").text.startswith("user=alice@acme.test;")
    role = sp_role(site, "acme")
    assert role.get("AuthnRequestsSigned") == "true"
    # The ACS takes a signed response or a signed assertion: WantAssertionsSigned stays false.
    assert role.get("WantAssertionsSigned") == "false"

    # The IdP does refuse what is not signed: the same request without its signature.
    unsigned = location.split("&SigAlg=", 1)[0]
    refused = browser.get(unsigned)
    assert refused.status_code == 400 and "bad AuthnRequest" in refused.text


def test_the_owners_choice_signs_requests_the_idp_does_not_ask_for(
    site: Site, idp: TestIdP
) -> None:
    assert 'WantAuthnRequestsSigned="false"' in idp.metadata_xml()
    workspace_with_idp(site, idp)
    assert sp_role(site, "acme").get("AuthnRequestsSigned") == "false"
    ring = sp_keys(site).set_choices("acme", actor="test", sign_authn_requests=True)
    assert ring.current is not None

    browser = requests.Session()
    location = start(browser, site, "acme")
    assert query_signature_verifies(location, ring.current.certificate_base64)
    assert finish(browser, location).status_code == 303
    seen = idp.requests[-1]
    assert (seen.signature, seen.signed_by) == ("query", ring.current.certificate_base64)
    assert sp_role(site, "acme").get("AuthnRequestsSigned") == "true"

    # And back off: the next request is unsigned again, and the metadata says so.
    sp_keys(site).set_choices("acme", actor="test", sign_authn_requests=False)
    assert "Signature=" not in start(requests.Session(), site, "acme")
    assert sp_role(site, "acme").get("AuthnRequestsSigned") == "false"


def test_neither_asking_leaves_requests_unsigned_and_the_metadata_says_so(
    site: Site, idp: TestIdP
) -> None:
    workspace_with_idp(site, idp)
    browser = requests.Session()
    location = start(browser, site, "acme")
    assert [name for name, _ in raw_parameters(location)] == ["SAMLRequest", "RelayState"]
    assert authn_request_xml(location).find(f"{{{DS}}}Signature") is None
    assert finish(browser, location).status_code == 303
    assert (idp.requests[-1].signature, idp.requests[-1].signed_by) == (None, None)
    role = sp_role(site, "acme")
    assert (role.get("AuthnRequestsSigned"), role.get("WantAssertionsSigned")) == ("false", "false")


def test_after_a_key_rotation_requests_are_signed_with_the_new_key(
    site: Site, idp: TestIdP
) -> None:
    workspace_with_idp(site, idp)
    keys = sp_keys(site)
    old = keys.set_choices("acme", actor="test", sign_authn_requests=True).current
    staged = keys.stage("acme", actor="test")
    assert old is not None and staged.next is not None
    # Staged: published, not used yet.
    location = start(requests.Session(), site, "acme")
    assert query_signature_verifies(location, old.certificate_base64)
    assert not query_signature_verifies(location, staged.next.certificate_base64)

    new = keys.activate("acme", actor="test").current
    assert new is not None and new.certificate_base64 == staged.next.certificate_base64
    browser = requests.Session()
    location = start(browser, site, "acme")
    assert query_signature_verifies(location, new.certificate_base64)
    assert not query_signature_verifies(location, old.certificate_base64)

    # An IdP that knows only the old certificate refuses the request...
    idp.sp_config(site.entity_id("acme"), site.acs("acme"), signing_cert=old.certificate_base64)
    refused = browser.get(location)
    assert refused.status_code == 400 and "does not verify" in refused.text
    # ...and one that read the SP metadata again accepts it, verified with the new one.
    idp.load_sp_metadata(site.entity_id("acme"))
    assert finish(browser, location).status_code == 303
    assert idp.requests[-1].signed_by == new.certificate_base64


def relay_state_changed(location: str) -> str:
    relay_state = parse_qs(urlsplit(location).query)["RelayState"][0]
    return with_parameter(location, "RelayState", quote(relay_state + "x", safe=""))


def sig_alg_changed(location: str) -> str:
    return with_parameter(location, "SigAlg", quote(RSA_SHA256.replace("256", "512"), safe=""))


def relay_state_prefixed(location: str) -> str:
    return location.replace("RelayState=", "RelayState=%2F", 1)


@pytest.mark.parametrize("idp_wants_signed", [True, False], ids=["idp-requires", "owner-asks"])
@pytest.mark.parametrize("tamper", [relay_state_changed, sig_alg_changed, relay_state_prefixed])
def test_a_tampered_query_fails_the_idps_verification(
    site: Site, idp: TestIdP, idp_wants_signed: bool, tamper: Callable[[str], str]
) -> None:
    idp.want_authn_requests_signed = idp_wants_signed
    workspace_with_idp(site, idp)
    if not idp_wants_signed:
        sp_keys(site).set_choices("acme", actor="test", sign_authn_requests=True)
    browser = requests.Session()
    location = start(browser, site, "acme")
    tampered = tamper(location)
    assert tampered != location
    refused = browser.get(tampered)
    assert refused.status_code == 400 and "bad AuthnRequest" in refused.text, refused.text
    assert idp.requests == []
    assert finish(browser, location).status_code == 303  # the untouched one passes


# -- HTTP-POST: an enveloped signature -----------------------------------------------------------


def test_post_binding_requests_carry_an_enveloped_signature_the_idp_verifies(
    site: Site, idp: TestIdP
) -> None:
    """An IdP taking requests by HTTP-POST only (offering(), as test_login_flow.py's), that
    wants them signed: the sign-in page's form carries an enveloped signature."""
    idp.want_authn_requests_signed = True
    workspace_with_idp(site, idp)
    site.workspaces.set_idp("acme", metadata_xml=offering(idp, BINDING_HTTP_POST))
    current = sp_keys(site).status("acme").current
    assert current is not None

    browser = requests.Session()
    page = browser.get(f"{site.url}/saml/acme/login", allow_redirects=False)
    assert page.status_code == 200, page.text
    action, fields = autopost_form(page.text)
    assert action == idp.sso_url
    assert set(fields) == {"SAMLRequest", "RelayState"}  # no query-style signature fields
    request = etree.fromstring(base64.b64decode(fields["SAMLRequest"]))
    assert request.tag == f"{{{SAMLP}}}AuthnRequest"
    (signature,) = request.findall(f"{{{DS}}}Signature")
    ns = {"ds": DS}
    assert signature.xpath("ds:SignedInfo/ds:Reference/@URI", namespaces=ns) == [
        "#" + request.get("ID")
    ]
    assert signature.xpath("ds:SignedInfo/ds:CanonicalizationMethod/@Algorithm", namespaces=ns) == [
        EXC_C14N
    ]
    assert signature.xpath("ds:SignedInfo/ds:SignatureMethod/@Algorithm", namespaces=ns) == [
        RSA_SHA256
    ]
    assert signature.xpath(
        "ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform/@Algorithm", namespaces=ns
    ) == [ENVELOPED, EXC_C14N]
    assert signature.xpath(
        "ds:SignedInfo/ds:Reference/ds:DigestMethod/@Algorithm", namespaces=ns
    ) == [SHA256]
    assert [
        "".join(text.split())
        for text in signature.xpath("ds:KeyInfo/ds:X509Data/ds:X509Certificate/text()", namespaces=ns)
    ] == [current.certificate_base64]  # fmt: skip

    at_idp = browser.post(action, data=fields)
    assert at_idp.status_code == 200, at_idp.text
    back, answer = autopost_form(at_idp.text)
    assert browser.post(back, data=answer, allow_redirects=False).status_code == 303
    assert browser.get(site.url + "/").text.startswith("user=alice@acme.test;")
    seen = idp.requests[-1]
    assert (seen.binding, seen.signature, seen.signed_by) == (
        BINDING_HTTP_POST, "xml", current.certificate_base64,
    )  # fmt: skip

    # Changed after signing: the IdP's verification fails.
    forged = etree.fromstring(base64.b64decode(fields["SAMLRequest"]))
    forged.set("ForceAuthn", "true")
    tampered = {**fields, "SAMLRequest": base64.b64encode(etree.tostring(forged)).decode()}
    refused = requests.post(action, data=tampered, timeout=10)
    assert refused.status_code == 400 and "bad AuthnRequest" in refused.text
    # And unsigned, to an IdP that wants them signed: refused too.
    unsigned = etree.fromstring(base64.b64decode(fields["SAMLRequest"]))
    unsigned.remove(unsigned.find(f"{{{DS}}}Signature"))
    plain = {**fields, "SAMLRequest": base64.b64encode(etree.tostring(unsigned)).decode()}
    refused = requests.post(action, data=plain, timeout=10)
    assert refused.status_code == 400 and "bad AuthnRequest" in refused.text
    assert len(idp.requests) == 1


# -- the SP object on its own ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sp_key_pair() -> KeyPair:
    return make_key_pair("acme SAML SP")


def key_ring(key: KeyPair | None, *, owner_asks: bool = False) -> SpKeyRing:
    now = dt.datetime.now(dt.UTC)
    current = SpKey("current", key.cert_pem.decode(), key.key_pem, now, now) if key else None
    return SpKeyRing(
        1, current=current, next=None, previous=None, sign_authn_requests=owner_asks,
        require_encrypted_assertions=False, version=1,
    )  # fmt: skip


def idp_metadata_saying(xml: str, want_authn_requests_signed: str | None) -> str:
    """The IdP metadata with WantAuthnRequestsSigned set to a value (None: absent)."""
    root = etree.fromstring(xml.encode())
    role = root.find(f"{{{MD}}}IDPSSODescriptor")
    assert role is not None
    role.attrib.pop("WantAuthnRequestsSigned", None)
    if want_authn_requests_signed is not None:
        role.set("WantAuthnRequestsSigned", want_authn_requests_signed)
    return etree.tostring(root, encoding="unicode")


def provider_for(metadata_xml: str, keys: SpKeyRing | None) -> ServiceProvider:
    return ServiceProvider(
        WorkspaceUrls("http://sp.test", "acme"),
        IdPSettings("http://idp.test/idp/metadata", metadata_xml, False, "1"),
        keys=keys,
        clock_skew=dt.timedelta(minutes=3),
    )


@pytest.mark.parametrize(
    ("value", "signs"),
    [("true", True), ("1", True), (" true ", True), ("false", False), ("0", False), (None, False)],
)
def test_want_authn_requests_signed_is_read_as_xs_boolean(
    test_idp: TestIdP, sp_key_pair: KeyPair, value: str | None, signs: bool
) -> None:
    provider = provider_for(
        idp_metadata_saying(test_idp.metadata_xml(), value), key_ring(sp_key_pair)
    )
    assert provider.signs_authn_requests is signs
    role = etree.fromstring(provider.metadata_xml().encode()).find(f"{{{MD}}}SPSSODescriptor")
    assert role is not None
    assert role.get("AuthnRequestsSigned") == ("true" if signs else "false")
    location = provider.authn_request("rs").url
    assert ("&Signature=" in location) is signs


def test_without_an_idp_only_the_owners_choice_counts(sp_key_pair: KeyPair) -> None:
    """Before an IdP is set, only the owner's choice counts."""
    for owner_asks in (False, True):
        provider = ServiceProvider(
            WorkspaceUrls("http://sp.test", "acme"), None,
            keys=key_ring(sp_key_pair, owner_asks=owner_asks), clock_skew=dt.timedelta(minutes=3),
        )  # fmt: skip
        role = etree.fromstring(provider.metadata_xml().encode()).find(f"{{{MD}}}SPSSODescriptor")
        assert role is not None and role.get("AuthnRequestsSigned") == str(owner_asks).lower()


def test_signing_wanted_without_a_key_refuses_clearly_instead_of_sending_unsigned(
    test_idp: TestIdP,
) -> None:
    xml = idp_metadata_saying(test_idp.metadata_xml(), "true")
    for keys in (None, key_ring(None)):
        provider = provider_for(xml, keys)
        with pytest.raises(Rejection) as refused:
            provider.authn_request("rs")
        assert refused.value.code == "sp_key_missing"
        assert refused.value.public_code == "sso_unavailable"
    # Unsigned requests need no key.
    assert "Signature=" not in provider_for(test_idp.metadata_xml(), None).authn_request("rs").url


def test_signing_never_runs_a_program_nor_writes_a_key_file(
    monkeypatch: pytest.MonkeyPatch, test_idp: TestIdP, sp_key_pair: KeyPair
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"tried to start a process or write a temporary file: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(saml2.sigver, "Popen", forbidden)
    monkeypatch.setattr(saml2.sigver, "get_xmlsec_binary", forbidden)
    for name in ("system", "posix_spawn", "posix_spawnp", "fork", "execv", "execve"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, forbidden)
    with monkeypatch.context() as signing:
        # The SP side: key and certificate stay in memory (pysaml2 writes temporary files
        # for a key given as text, or to verify with a metadata certificate, as the IdP below).
        signing.setattr(saml2.sigver, "make_temp", forbidden)
        provider = provider_for(test_idp.metadata_xml(), key_ring(sp_key_pair, owner_asks=True))
        location = provider.authn_request("rs").url
        post_only = offering(test_idp, BINDING_HTTP_POST)
        fields = provider_for(post_only, provider.keys).authn_request("rs").fields
    assert query_signature_verifies(location, sp_key_pair.cert_base64)
    test_idp.sp_config(
        "http://sp.test/saml/acme/metadata", "http://sp.test/saml/acme/acs",
        signing_cert=sp_key_pair.cert_base64,
    )  # fmt: skip
    parsed = test_idp.server.parse_authn_request(fields["SAMLRequest"], BINDING_HTTP_POST)
    assert parsed.message.signature is not None


def test_a_workspace_made_again_under_its_slug_never_gets_its_predecessors_sp(site: Site):
    """Deleted (by the host app, in the database) and made again: the new workspace's versions
    start afresh (and on SQLite its id may be the old one), yet no worker serves it the old SP,
    whose metadata would publish, and whose key would sign with, the deleted workspace's key."""

    def certificates() -> list[str]:
        return re.findall(r"X509Certificate>([^<]+)<", requests.get(site.entity_id("beta")).text)

    site.workspaces.create("beta", name="Beta", plan="plus", owner_email="o@beta.test")
    old = certificates()
    assert old
    database = site.middleware.database
    with database.engine.begin() as connection:
        workspace_id = connection.execute(
            text("SELECT id FROM workspaces WHERE slug = 'beta'")
        ).scalar()
        for table in ("sp_keys", "audit_events", "scim_tokens"):
            connection.execute(
                text(f"DELETE FROM {table} WHERE workspace_id = :w"), {"w": workspace_id}
            )
        connection.execute(text("DELETE FROM workspaces WHERE id = :w"), {"w": workspace_id})
    site.workspaces.create("beta", name="Beta", plan="plus", owner_email="o@beta.test")
    published = [certificates(), certificates()]  # the worker remembered the slug had a key
    with database.engine.connect() as connection:
        stored = connection.execute(
            text(
                "SELECT certificate_pem FROM sp_keys JOIN workspaces"
                " ON workspaces.id = sp_keys.workspace_id WHERE workspaces.slug = 'beta'"
            )
        ).scalar_one()
    new = "".join(stored.strip().splitlines()[1:-1])
    assert all(old[0] not in found for found in published)
    assert new in published[-1]
