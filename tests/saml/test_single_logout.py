"""Single logout (saml/single_logout.py) through real HTTP with the TestIdP (pysaml2's Server):
IdP-initiated LogoutRequests by HTTP-Redirect and HTTP-POST end sessions and are answered with
a signed LogoutResponse the IdP verifies with pysaml2's own code; refused ones end nothing;
SP-initiated logout sends a signed LogoutRequest and shows the IdP's answer."""

from __future__ import annotations

import base64
import datetime as dt
import types
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp
from sqlalchemy import select, update

from webwork_sso_middleware.devidp import protocol
from webwork_sso_middleware.saml.logout_bindings import SUCCESS, sign_enveloped
from webwork_sso_middleware.saml.posted import SAML, SAMLP
from webwork_sso_middleware.store.models import IdentityProvider, MemberSession, SeenAssertion

from ..store_helpers import transaction
from .conftest import Site
from .idp import KeyPair, TestIdP, autopost_form
from .test_app import sp_initiated, whoami

EMAIL = "alice@acme.test"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"


def slo(site: Site, slug: str = "acme") -> str:
    return f"{site.url}/saml/{slug}/slo"


def trust_sp(site: Site, idp: TestIdP, slug: str = "acme") -> None:
    """The IdP loads our real SP metadata: our signing keys and SLO endpoints."""
    metadata = requests.get(site.entity_id(slug))
    assert metadata.status_code == 200
    idp.register_sp_metadata(metadata.text)


def signed_in(site: Site, slug: str = "acme") -> requests.Session:
    browser = requests.Session()
    answer = sp_initiated(browser, site, slug)
    assert answer.status_code == 303, answer.text
    assert whoami(browser, site).startswith(f"user={EMAIL};")
    return browser


def copy_of(browser: requests.Session) -> requests.Session:
    """Another client holding the same cookies (the old cookie, replayed later)."""
    other = requests.Session()
    other.cookies.update(browser.cookies)
    return other


def sessions_of(site: Site) -> list[MemberSession]:
    with transaction(site.middleware.database) as unit:
        rows = list(unit.session.scalars(select(MemberSession).order_by(MemberSession.created_at)))
        unit.session.expunge_all()
        return rows


def assert_refused(response: requests.Response, reason: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert f'<span class="reason">{reason}</span>' in response.text, response.text
    assert "webwork_sso_session=" not in response.headers.get("Set-Cookie", "")


@pytest.fixture
def acme(site: Site, idp: TestIdP) -> str:
    site.add_workspace("acme", idp)
    trust_sp(site, idp)
    return "acme"


@pytest.fixture
def attacker(tmp_path: Path, idp: TestIdP, attacker_keys: KeyPair) -> TestIdP:
    """The IdP's entity ID and endpoints, with someone else's key (not served)."""
    return TestIdP(idp.url, tmp_path / "attacker", keys=attacker_keys)


# -- the SP's side of the set-up -----------------------------------------------------------------


def test_sp_metadata_offers_single_logout_by_redirect_and_post(site: Site, acme: str):
    root = etree.fromstring(requests.get(site.entity_id("acme")).content)
    services = root.findall(f".//{{{MD}}}SPSSODescriptor/{{{MD}}}SingleLogoutService")
    assert {(s.get("Binding"), s.get("Location")) for s in services} == {
        (BINDING_HTTP_REDIRECT, slo(site)),
        (BINDING_HTTP_POST, slo(site)),
    }


def test_a_sign_in_keeps_the_subject_single_logout_names(site: Site, idp: TestIdP, acme: str):
    signed_in(site)
    [row] = sessions_of(site)
    assert row.saml_name_id == EMAIL
    assert row.saml_name_id_format == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
    assert row.saml_session_index and row.saml_session_index.startswith("id-")


# -- IdP-initiated ---------------------------------------------------------------------------------


def test_idp_logout_by_redirect_ends_the_session_and_answers_signed(
    site: Site, idp: TestIdP, acme: str
):
    browser = signed_in(site)
    old_cookie = copy_of(browser)
    url = idp.logout_redirect(destination=slo(site), name_id=EMAIL, relay_state="back-to-idp")
    sent_id = etree.fromstring(
        zlib.decompress(base64.b64decode(parse_qs(urlsplit(url).query)["SAMLRequest"][0]), -15)
    ).get("ID")

    answer = browser.get(url, allow_redirects=False)

    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(idp.slo_url + "?")
    assert parse_qs(urlsplit(location).query)["RelayState"] == ["back-to-idp"]
    seen = idp.read_logout_response(location)  # pysaml2 verifies the query signature
    assert seen.signature_verified
    assert (seen.status, seen.in_response_to, seen.issuer) == (
        SUCCESS,
        sent_id,
        site.entity_id("acme"),
    )
    assert seen.destination == idp.slo_url
    assert answer.headers["Set-Cookie"].startswith("webwork_sso_session=;")  # this browser's
    assert whoami(browser, site).startswith("user=;")
    assert whoami(old_cookie, site).startswith("user=;")  # and the old one no longer works
    [row] = sessions_of(site)
    assert row.ended_at is not None


def test_idp_logout_by_post_ends_the_session(site: Site, idp: TestIdP, acme: str):
    browser = signed_in(site)
    old_cookie = copy_of(browser)
    fields = idp.logout_form(destination=slo(site), name_id=EMAIL)

    # A cross-site POST: the Lax session cookie stays behind, the session ends all the same.
    answer = requests.post(slo(site), data=fields, allow_redirects=False)

    assert answer.status_code == 302, answer.text
    assert idp.read_logout_response(answer.headers["Location"]).status == SUCCESS
    assert whoami(old_cookie, site).startswith("user=;")


def test_the_answer_is_a_signed_post_form_when_the_idp_offers_only_post(
    site: Site, idp: TestIdP, acme: str
):
    root = etree.fromstring(idp.metadata_xml().encode())
    for service in root.iter(f"{{{MD}}}SingleLogoutService"):
        if service.get("Binding") == BINDING_HTTP_REDIRECT:
            service.getparent().remove(service)
    site.workspaces.set_idp("acme", metadata_xml=etree.tostring(root).decode())
    browser = signed_in(site)

    answer = browser.get(idp.logout_redirect(destination=slo(site), name_id=EMAIL))

    assert answer.status_code == 200, answer.text
    action, fields = autopost_form(answer.text)
    assert action == idp.slo_url
    assert "<button" in answer.text  # works without JavaScript
    csp = answer.headers["Content-Security-Policy"]
    assert f"form-action {urlsplit(idp.url).scheme}://{urlsplit(idp.url).netloc}" in csp
    seen = idp.read_logout_response(fields)  # the enveloped signature, by pysaml2
    assert seen.signature_verified and seen.status == SUCCESS
    assert whoami(browser, site).startswith("user=;")


def test_session_index_restricts_which_sessions_end(site: Site, idp: TestIdP, acme: str):
    first, second = signed_in(site), signed_in(site)
    rows = sessions_of(site)
    assert len(rows) == 2 and rows[0].saml_session_index != rows[1].saml_session_index

    url = idp.logout_redirect(
        destination=slo(site), name_id=EMAIL, session_indexes=[rows[0].saml_session_index]
    )
    assert requests.get(url, allow_redirects=False).status_code == 302

    assert whoami(first, site).startswith("user=;")
    assert whoami(second, site).startswith(f"user={EMAIL};")
    # Sent from the browser that holds the other session: not its cookie to clear.
    url = idp.logout_redirect(
        destination=slo(site), name_id=EMAIL, session_indexes=["no-such-index"]
    )
    untouched = second.get(url, allow_redirects=False)
    assert untouched.status_code == 302 and "Set-Cookie" not in untouched.headers
    assert whoami(second, site).startswith(f"user={EMAIL};")


def test_a_logout_for_nobody_signed_in_still_succeeds(site: Site, idp: TestIdP, acme: str):
    answer = requests.get(
        idp.logout_redirect(destination=slo(site), name_id="nobody@acme.test"),
        allow_redirects=False,
    )
    assert idp.read_logout_response(answer.headers["Location"]).status == SUCCESS


def test_another_workspaces_idp_cannot_end_sessions_here(
    site: Site, idp: TestIdP, second_idp: TestIdP, acme: str
):
    site.add_workspace("beta", second_idp, verify_domain=False)
    trust_sp(site, second_idp, "beta")
    browser = signed_in(site)

    # Beta's IdP names acme's member at beta's own endpoint: beta has no such session.
    at_beta = requests.get(
        second_idp.logout_redirect(destination=slo(site, "beta"), name_id=EMAIL),
        allow_redirects=False,
    )
    assert at_beta.status_code == 302
    # At acme's endpoint it is not acme's IdP.
    at_acme = requests.get(
        second_idp.logout_redirect(destination=slo(site), name_id=EMAIL), allow_redirects=False
    )
    assert_refused(at_acme, "slo_signature_invalid")
    assert whoami(browser, site).startswith(f"user={EMAIL};")


# -- refused LogoutRequests end nothing ------------------------------------------------------------


def wrapped_request(site: Site, idp: TestIdP) -> str:
    """XSW: a forged LogoutRequest for someone else around the genuine signed one."""
    genuine = etree.fromstring(
        idp.logout_request_xml(destination=slo(site), name_id="bob@acme.test").encode()
    )
    forged = etree.fromstring(
        idp.logout_request_xml(destination=slo(site), name_id=EMAIL, sign=False).encode()
    )
    extensions = etree.SubElement(forged, f"{{{SAMLP}}}Extensions")
    extensions.append(genuine)
    forged.insert(1, extensions)
    return etree.tostring(forged).decode()


def second_name_id(site: Site, idp: TestIdP) -> str:
    """A signed request with a second NameID smuggled in after signing."""
    root = etree.fromstring(
        idp.logout_request_xml(destination=slo(site), name_id="bob@acme.test").encode()
    )
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    etree.SubElement(extensions, f"{{{SAML}}}NameID").text = EMAIL
    root.insert(2, extensions)
    return etree.tostring(root).decode()


def renamed(site: Site, idp: TestIdP) -> str:
    """The signed request's NameID rewritten after signing."""
    xml = idp.logout_request_xml(destination=slo(site), name_id="bob@acme.test")
    return xml.replace("bob@acme.test", EMAIL)


POST_CASES = {
    "unsigned": (
        lambda site, idp, _: idp.logout_request_xml(
            destination=slo(site), name_id=EMAIL, sign=False
        ),
        "slo_unsigned",
    ),
    "attacker_key": (
        lambda site, _, attacker: attacker.logout_request_xml(destination=slo(site), name_id=EMAIL),
        "slo_signature_invalid",
    ),
    "wrong_destination": (
        lambda site, idp, _: idp.logout_request_xml(
            destination=f"{site.url}/saml/beta/slo", name_id=EMAIL
        ),
        "slo_destination_mismatch",
    ),
    "expired": (
        lambda site, idp, _: idp.logout_request_xml(
            destination=slo(site), name_id=EMAIL, expires_offset=-300, issued_offset=-400
        ),
        "slo_expired",
    ),
    "too_old": (
        lambda site, idp, _: idp.logout_request_xml(
            destination=slo(site), name_id=EMAIL, expires_offset=None, issued_offset=-3600
        ),
        "slo_expired",
    ),
    "from_the_future": (
        lambda site, idp, _: idp.logout_request_xml(
            destination=slo(site), name_id=EMAIL, issued_offset=3600
        ),
        "slo_not_yet_valid",
    ),
    "wrong_issuer": (
        lambda site, idp, _: idp.logout_request_xml(
            destination=slo(site), name_id=EMAIL, issuer="https://evil.test/idp"
        ),
        "slo_issuer_mismatch",
    ),
    "xsw_wrapped_request": (lambda site, idp, _: wrapped_request(site, idp), "slo_wrapped"),
    "xsw_second_name_id": (lambda site, idp, _: second_name_id(site, idp), "slo_wrapped"),
    "name_id_rewritten": (lambda site, idp, _: renamed(site, idp), "slo_signature_invalid"),
    "dtd": (
        lambda site, idp, _: (
            '<!DOCTYPE x [<!ENTITY e "alice@acme.test">]>'
            + idp.logout_request_xml(destination=slo(site), name_id="&e;")
        ),
        "slo_dtd_forbidden",
    ),
    "malformed": (lambda *_: "<samlp:LogoutRequest", "slo_malformed"),
    "too_many_session_indexes": (
        lambda site, idp, _: idp.logout_request_xml(
            destination=slo(site), name_id=EMAIL, session_indexes=[f"s{n}" for n in range(65)]
        ),
        "slo_malformed",
    ),
    "not_a_request": (
        lambda site, idp, _: protocol.sign_message(
            idp.server,
            idp.server._status_response(
                samlp.LogoutResponse, idp.server._issuer(), None, sign=False
            ),
        ),
        "slo_not_a_request",
    ),
}


@pytest.mark.parametrize("case", sorted(POST_CASES))
def test_refused_post_logout_requests_end_nothing(
    site: Site, idp: TestIdP, attacker: TestIdP, acme: str, case: str
):
    build, reason = POST_CASES[case]
    browser = signed_in(site)
    fields = idp.logout_form(destination="", name_id="", xml=build(site, idp, attacker))

    assert_refused(browser.post(slo(site), data=fields, allow_redirects=False), reason)

    assert whoami(browser, site).startswith(f"user={EMAIL};")
    assert all(row.ended_at is None for row in sessions_of(site))


REDIRECT_CASES = {
    "unsigned": (lambda site, idp, _: idp.logout_redirect(
        destination=slo(site), name_id=EMAIL, sign=False
    ), "slo_unsigned"),
    "attacker_key": (lambda site, _, attacker: attacker.logout_redirect(
        destination=slo(site), name_id=EMAIL
    ), "slo_signature_invalid"),
    "wrong_destination": (lambda site, idp, _: idp.logout_redirect(
        destination=slo(site), name_id=EMAIL, xml=idp.logout_request_xml(
            destination="https://elsewhere.test/slo", name_id=EMAIL, sign=False
        )
    ), "slo_destination_mismatch"),
    "relay_state_changed": (lambda site, idp, _: idp.logout_redirect(
        destination=slo(site), name_id=EMAIL, relay_state="a"
    ).replace("RelayState=a", "RelayState=b"), "slo_signature_invalid"),
    "sha1_is_fine_but_md5_is_not": (lambda site, idp, _: idp.logout_redirect(
        destination=slo(site), name_id=EMAIL
    ).replace("rsa-sha256", "rsa-md5"), "slo_signature_invalid"),
    "no_message": (lambda site, *_: slo(site) + "?RelayState=x", "slo_missing_message"),
    "not_base64": (lambda site, *_: slo(site) + "?SAMLRequest=%%%", "slo_bad_encoding"),
    "not_deflated": (lambda site, *_: slo(site) + "?" + urlencode(
        {"SAMLRequest": base64.b64encode(b"<x/>").decode()}
    ), "slo_bad_encoding"),
    "twice": (lambda site, idp, _: idp.logout_redirect(
        destination=slo(site), name_id=EMAIL
    ) + "&SAMLRequest=x", "slo_malformed"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REDIRECT_CASES))
def test_refused_redirect_logout_requests_end_nothing(
    site: Site, idp: TestIdP, attacker: TestIdP, acme: str, case: str
):
    build, reason = REDIRECT_CASES[case]
    browser = signed_in(site)

    assert_refused(browser.get(build(site, idp, attacker), allow_redirects=False), reason)

    assert whoami(browser, site).startswith(f"user={EMAIL};")


def test_a_deflate_bomb_is_refused(site: Site, acme: str):
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = bomb.compress(b"<" + b"a" * (4 * 1024 * 1024)) + bomb.flush()
    answer = requests.get(
        slo(site), params={"SAMLRequest": base64.b64encode(data).decode()}, allow_redirects=False
    )
    assert_refused(answer, "slo_too_large")


def test_a_replayed_logout_request_is_refused_and_ends_nothing_new(
    site: Site, idp: TestIdP, acme: str
):
    url = idp.logout_redirect(destination=slo(site), name_id=EMAIL)
    assert requests.get(url, allow_redirects=False).status_code == 302
    browser = signed_in(site)  # signed in again after the IdP's logout

    assert_refused(browser.get(url, allow_redirects=False), "slo_replayed")
    assert whoami(browser, site).startswith(f"user={EMAIL};")
    with transaction(site.middleware.database) as unit:
        kept = unit.session.scalars(select(SeenAssertion.assertion_id)).all()
    assert any(key.startswith("logout-request:") for key in kept)


def test_sha1_query_signatures_are_accepted_like_the_acs_accepts_them(
    site: Site, idp: TestIdP, acme: str
):
    browser = signed_in(site)
    xml = str(protocol.logout_request(idp.server, destination=slo(site), name_id=EMAIL))
    info = idp.server.apply_binding(
        BINDING_HTTP_REDIRECT,
        xml,
        destination=slo(site),
        sign=True,
        sigalg="http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    )
    answer = browser.get(dict(info["headers"])["Location"], allow_redirects=False)
    assert answer.status_code == 302, answer.text
    assert whoami(browser, site).startswith("user=;")


def test_logout_at_a_workspace_without_sso_is_refused_alike(site: Site, idp: TestIdP, acme: str):
    url = idp.logout_redirect(destination=slo(site, "nowhere"), name_id=EMAIL)
    assert_refused(requests.get(url, allow_redirects=False), "sso_unavailable", 404)


def signed_response_with_index(site: Site, idp: TestIdP, index: str | None) -> str:
    """A sign-in response whose AuthnStatement's SessionIndex is ``index`` (None: none)."""
    xml = idp.response_xml(
        sp_entity_id=site.entity_id("acme"),
        acs_url=site.acs("acme"),
        email=EMAIL,
        sign_assertion=False,
    )
    root = etree.fromstring(xml.encode())
    statement = root.find(f".//{{{SAML}}}AuthnStatement")
    if index is None:
        statement.attrib.pop("SessionIndex", None)
    else:
        statement.set("SessionIndex", index)
    key = types.SimpleNamespace(
        private_key_pem=idp.keys.key_pem, certificate_base64=idp.keys.cert_base64
    )
    signed = sign_enveloped(etree.tostring(root), f"{SAMLP}:Response", key)
    return base64.b64encode(signed).decode()


@pytest.mark.parametrize("index", ["_" + "a" * 299, None], ids=["300 characters", "none"])
def test_a_session_index_never_keeps_a_session_alive(
    site: Site, idp: TestIdP, acme: str, index: str | None
):
    """A long SessionIndex is kept (it was dropped once, and the IdP's logout naming it was
    answered Success while the session lived on); a sign-in that named none ends by NameID."""
    browser = requests.Session()
    signed = site.post_response(browser, "acme", signed_response_with_index(site, idp, index))
    assert signed.status_code == 303, signed.text
    [row] = sessions_of(site)
    assert row.saml_session_index == index
    answer = requests.get(
        idp.logout_redirect(
            destination=slo(site), name_id=EMAIL, session_indexes=[index or "_elsewhere"]
        ),
        allow_redirects=False,
    )
    assert idp.read_logout_response(answer.headers["Location"]).status == SUCCESS
    assert whoami(browser, site).startswith("user=;")


def test_an_unreadable_slo_url_stored_before_the_check_is_no_500(
    site: Site, idp: TestIdP, acme: str
):
    """set-idp refuses it now (tests/idp_metadata); a record stored before is skipped, and the
    IdP's logout still ends the session, with a page instead of an answer to nowhere."""
    root = etree.fromstring(idp.metadata_xml().encode())
    for service in root.iter(f"{{{MD}}}SingleLogoutService"):
        service.set("Location", "https://[idp.example/slo")
    with transaction(site.middleware.database) as unit:
        unit.session.execute(
            update(IdentityProvider).values(metadata_xml=etree.tostring(root).decode())
        )
    browser = signed_in(site)
    answer = browser.get(
        idp.logout_redirect(destination=slo(site), name_id=EMAIL), allow_redirects=False
    )
    assert answer.status_code < 500, answer.text
    assert whoami(browser, site).startswith("user=;")


def test_a_logout_response_tells_a_stranger_nothing_of_a_workspace(
    site: Site, idp: TestIdP, acme: str
):
    """Unknown, no IdP, free plan with an IdP: the same answer to a LogoutResponse, as to a
    LogoutRequest (a workspace's plan, switches and IdP are the owner's business)."""
    site.workspaces.create("ghost", name="Ghost", plan="free", owner_email="o@ghost.test")
    site.workspaces.set_idp("ghost", metadata_xml=idp.metadata_xml())
    site.workspaces.create("bare", name="Bare", plan="plus", owner_email="o@bare.test")
    message = base64.b64encode(
        zlib.compress(b'<samlp:LogoutResponse xmlns:samlp="' + SAMLP.encode() + b'"/>')[2:-4]
    ).decode()
    answers = set()
    for slug in ("nosuch", "bare", "ghost"):
        answer = requests.get(f"{slo(site, slug)}?{urlencode({'SAMLResponse': message})}")
        answers.add((answer.status_code, answer.text.replace(slug, "X")))
    assert len(answers) == 1
    assert "sso_unavailable" in answers.pop()[1]


def test_head_neither_acts_on_nor_uses_up_a_logout_request(site: Site, idp: TestIdP, acme: str):
    browser = signed_in(site)
    url = idp.logout_redirect(destination=slo(site), name_id=EMAIL)
    head = requests.head(url, allow_redirects=False)
    assert head.status_code == 405 and head.headers["Allow"] == "GET, POST"
    assert whoami(browser, site).startswith(f"user={EMAIL};")
    assert browser.get(url, allow_redirects=False).status_code == 302  # not used up
    assert whoami(browser, site).startswith("user=;")


# -- SP-initiated ---------------------------------------------------------------------------------


def sign_out(site: Site, browser: requests.Session, next_path: str = "/") -> requests.Response:
    form = browser.get(f"{site.url}/saml/logout")
    token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return browser.post(
        f"{site.url}/saml/logout",
        data={"csrf_token": token, "next": next_path},
        allow_redirects=False,
    )


def test_sp_logout_ends_the_session_then_tells_the_idp(site: Site, idp: TestIdP, acme: str):
    browser = signed_in(site)
    old_cookie = copy_of(browser)
    [row] = sessions_of(site)

    to_idp = sign_out(site, browser, "/reports")

    assert to_idp.status_code == 302 and to_idp.headers["Location"].startswith(idp.slo_url + "?")
    assert whoami(old_cookie, site).startswith("user=;")  # ended before the IdP heard anything
    back = browser.get(to_idp.headers["Location"], allow_redirects=False)  # the IdP answers
    seen = idp.logout_requests[-1]
    assert seen.signature_verified  # our query signature, verified by pysaml2
    assert (seen.name_id, seen.session_indexes, seen.issuer) == (
        EMAIL,
        (row.saml_session_index,),
        site.entity_id("acme"),
    )
    assert seen.name_id_format == row.saml_name_id_format and seen.destination == idp.slo_url
    assert back.status_code == 302 and back.headers["Location"].startswith(slo(site) + "?")

    done = browser.get(back.headers["Location"], allow_redirects=False)

    assert done.status_code == 200, done.text
    assert "signed out of this site and of your identity provider" in done.text
    assert 'href="/reports"' in done.text
    assert "webwork_sso_logout=;" in done.headers["Set-Cookie"]  # the request is used up
    again = browser.get(back.headers["Location"], allow_redirects=False)
    assert_refused(again, "slo_unknown_in_response_to")


def test_sp_logout_by_post_when_the_idp_offers_only_post(site: Site, idp: TestIdP, acme: str):
    root = etree.fromstring(idp.metadata_xml().encode())
    for service in root.iter(f"{{{MD}}}SingleLogoutService"):
        if service.get("Binding") == BINDING_HTTP_REDIRECT:
            service.getparent().remove(service)
    site.workspaces.set_idp("acme", metadata_xml=etree.tostring(root).decode())
    browser = signed_in(site)

    to_idp = sign_out(site, browser)

    assert to_idp.status_code == 200, to_idp.text
    action, fields = autopost_form(to_idp.text)
    assert action == idp.slo_url
    at_idp = browser.post(action, data=fields)
    assert idp.logout_requests[-1].signature_verified  # our enveloped signature
    action, fields = autopost_form(at_idp.text)  # the IdP answers by POST, signed
    done = browser.post(action, data=fields)
    assert done.status_code == 200 and "and of your identity provider" in done.text


def test_an_idp_that_never_answers_keeps_nobody_signed_in(site: Site, idp: TestIdP, acme: str):
    idp.slo_silent = True
    browser = signed_in(site)
    to_idp = sign_out(site, browser)
    browser.get(to_idp.headers["Location"])
    assert whoami(browser, site).startswith("user=;")
    assert whoami(copy_of(browser), site).startswith("user=;")
    assert all(row.ended_at is not None for row in sessions_of(site))


def test_an_idp_that_refuses_keeps_nobody_signed_in(site: Site, idp: TestIdP, acme: str):
    idp.slo_status = RESPONDER
    browser = signed_in(site)
    to_idp = sign_out(site, browser)

    done = browser.get(to_idp.headers["Location"])

    assert done.status_code == 200
    assert "did not confirm" in done.text
    assert whoami(browser, site).startswith("user=;")


def idp_logout_response(
    idp: TestIdP, site: Site, in_response_to: str, signer: TestIdP | None = None
) -> str:
    signer = signer or idp
    message = signer.server._status_response(
        samlp.LogoutResponse,
        signer.server._issuer(),
        None,
        sign=False,
        in_response_to=in_response_to,
        destination=slo(site),
    )
    return f"{slo(site)}?" + protocol.redirect_query(signer.server, "SAMLResponse", str(message))


def test_a_logout_response_to_an_unknown_request_is_refused(site: Site, idp: TestIdP, acme: str):
    browser = signed_in(site)
    sign_out(site, browser)  # a pending request, but not this one
    answer = browser.get(idp_logout_response(idp, site, "_not-ours"), allow_redirects=False)
    assert_refused(answer, "slo_unknown_in_response_to")


def test_a_logout_response_signed_by_another_key_is_refused(
    site: Site, idp: TestIdP, attacker: TestIdP, acme: str
):
    browser = signed_in(site)
    to_idp = sign_out(site, browser)
    request_id = idp.read_logout_response(to_idp.headers["Location"]).id
    forged = idp_logout_response(idp, site, request_id, signer=attacker)
    assert_refused(browser.get(forged, allow_redirects=False), "slo_signature_invalid")


def test_sp_logout_without_idp_slo_just_signs_out(site: Site, idp: TestIdP, acme: str):
    root = etree.fromstring(idp.metadata_xml().encode())
    for service in list(root.iter(f"{{{MD}}}SingleLogoutService")):
        service.getparent().remove(service)
    site.workspaces.set_idp("acme", metadata_xml=etree.tostring(root).decode())
    browser = signed_in(site)

    answer = sign_out(site, browser, "/bye")

    assert answer.status_code == 303 and answer.headers["Location"] == "/bye"
    assert whoami(browser, site).startswith("user=;")


def test_logout_request_carries_the_subject_as_signed_in(site: Site, idp: TestIdP, acme: str):
    browser = signed_in(site)
    to_idp = sign_out(site, browser)
    query = parse_qs(urlsplit(to_idp.headers["Location"]).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    root = etree.fromstring(xml)
    assert root.get("Destination") == idp.slo_url
    not_on_or_after = dt.datetime.fromisoformat(root.get("NotOnOrAfter"))
    assert not_on_or_after > dt.datetime.now(dt.UTC)
    assert root.find(f"{{{SAML}}}NameID").text == EMAIL
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
