"""Each check of the Assertion Consumer Service failing alone: rejected, no session, no member,
and the reason recorded. Responses come from a real IdP; tampering happens after signing."""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

import pytest
import requests
from lxml import etree

from webwork_sso_middleware.saml.acs import DS, SAML, SAMLP

from .conftest import Site
from .idp import TestIdP
from .test_app import whoami


def encode(xml: str) -> str:
    return base64.b64encode(xml.encode("utf-8")).decode("ascii")


def honest(site: Site, idp: TestIdP, **overrides: Any) -> dict[str, Any]:
    return {"sp_entity_id": site.entity_id("acme"), "acs_url": site.acs("acme"),
            "email": "alice@acme.test", **overrides}


def assert_rejected(site: Site, response: requests.Response, reason: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert "Set-Cookie" not in response.headers
    assert whoami(response.browser, site).startswith("user=;")  # type: ignore[attr-defined]
    assert f'<span class="reason">{reason}</span>' in response.text
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
    response = post(site, idp.response(**honest(site, idp), sign_assertion=False, sign_response=True))
    assert response.status_code == 303


@pytest.mark.parametrize("field, value, reason", [
    ("audience", "https://other.test/saml/acme/metadata", "audience_mismatch"),
    ("recipient", "https://other.test/saml/acme/acs", "recipient_mismatch"),
    ("destination", "https://other.test/saml/acme/acs", "destination_mismatch"),
    ("issuer", "https://impostor.test/idp", "issuer_mismatch"),
    ("not_on_or_after_offset", -400, "expired"),
    ("not_before_offset", 400, "not_yet_valid"),
    ("in_response_to", "id-never-issued", "request_not_bound"),
])
def test_each_check_failing_alone(site: Site, idp: TestIdP, acme: str, field: str, value: Any,
                                  reason: str):
    assert_rejected(site, post(site, idp.response(**honest(site, idp, **{field: value}))), reason)
    if isinstance(value, str) and "://" in value:
        # The owner's record keeps what was sent and what this workspace expects.
        detail = site.audit("login_failed")[-1].changes["detail"]
        assert value in detail and ("expects" in detail or "ACS is" in detail)


def test_the_page_names_no_configured_idp(site: Site, idp: TestIdP, second_idp: TestIdP,
                                          acme: str):
    """The finding: "the response was issued by X, not Y" told anyone the configured IdP."""
    forged = second_idp.response(**honest(site, idp))
    response = post(site, forged)
    assert_rejected(site, response, "issuer_mismatch")
    assert idp.entity_id not in response.text and second_idp.entity_id not in response.text
    detail = site.audit("login_failed")[-1].changes["detail"]
    assert idp.entity_id in detail and second_idp.entity_id in detail


def test_clock_skew_within_the_allowance_passes(site: Site, idp: TestIdP, acme: str):
    # Expired 100 s ago, and valid from 100 s ahead: both within the default 180 s skew.
    assert post(site, idp.response(**honest(site, idp), not_on_or_after_offset=-100)).status_code == 303
    assert post(site, idp.response(**honest(site, idp, email="b@acme.test"),
                                   not_before_offset=100)).status_code == 303


def test_unsigned_assertion_in_unsigned_response(site: Site, idp: TestIdP, acme: str):
    response = post(site, idp.response(**honest(site, idp), sign_assertion=False))
    assert_rejected(site, response, "unsigned")


def test_content_tampered_after_signing(site: Site, idp: TestIdP, acme: str):
    xml = idp.response_xml(**honest(site, idp))
    tampered = xml.replace("alice@acme.test", "admin@acme.test")
    assert_rejected(site, post(site, encode(tampered)), "signature_invalid")


def test_signature_by_a_key_not_in_metadata(site: Site, idp: TestIdP, second_idp: TestIdP,
                                            acme: str):
    forged = second_idp.response(**honest(site, idp), issuer=idp.entity_id)
    assert_rejected(site, post(site, forged), "signature_invalid")


def test_replay_is_refused(site: Site, idp: TestIdP, acme: str):
    saml_response = idp.response(**honest(site, idp))
    assert post(site, saml_response).status_code == 303
    again = requests.Session()
    response = site.post_response(again, "acme", saml_response)
    assert response.status_code == 400 and "replayed" in response.text
    assert "Set-Cookie" not in response.headers

def test_replays_and_unverified_refusals_are_counted_not_listed(site: Site, idp: TestIdP,
                                                                acme: str):
    """Both can be repeated at will without the IdP signing anything new: one row per reason
    (and hour) with a count, whereas a refusal after a fresh valid signature has its own row."""
    saml_response = idp.response(**honest(site, idp))
    assert post(site, saml_response).status_code == 303
    for _ in range(3):
        assert post(site, saml_response).status_code == 400
        assert post(site, idp.response(**honest(site, idp), audience="https://x.test/sp"),
                    ).status_code == 400
    assert post(site, idp.response(**honest(site, idp, email="no-email"))).status_code == 400
    assert post(site, idp.response(**honest(site, idp, email="still-no-email"))).status_code == 400
    counted: dict[str, int] = {}
    single = []
    for event in site.audit("login_failed"):
        if event.target_type == "counted":
            counted[event.changes["reason"]] = (counted.get(event.changes["reason"], 0)
                                                + event.changes["count"])
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
    response = requests.post(site.acs("acme"), data={"SAMLResponse": "A" * 2_000_000},
                             allow_redirects=False)
    assert response.status_code == 413 and "Set-Cookie" not in response.headers


def test_no_bearer_subject_confirmation(site: Site, idp: TestIdP, acme: str):
    xml = idp.response_xml(**honest(site, idp))
    changed = xml.replace("urn:oasis:names:tc:SAML:2.0:cm:bearer",
                          "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key")
    assert changed != xml
    assert_rejected(site, post(site, encode(changed)), "no_bearer_confirmation")


def test_signature_wrapping_with_the_signed_assertion_hidden_in_extensions(
        site: Site, idp: TestIdP, acme: str):
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


def raised_rejections() -> list[tuple[str, str, str]]:
    """(module, owner code, public code) of every Rejection the ACS and the SAML app raise."""
    import ast
    import inspect

    from webwork_sso_middleware.saml import acs, app

    found = []
    for module in (acs, app):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("Rejection", "_unavailable")):
                continue
            if not (node.args and isinstance(node.args[0], ast.Constant)):
                continue  # the class's own signature, not a refusal
            code = node.args[0].value
            public = {k.arg: k.value.value for k in node.keywords
                      if k.arg == "public_code" and isinstance(k.value, ast.Constant)}
            found.append((module.__name__, code, "sso_unavailable" if node.func.id ==
                          "_unavailable" else public.get("public_code", code)))
    return found


def test_every_refusal_has_a_fixed_public_sentence():
    """Audit of every Rejection raised: what a stranger reads is a constant per public code
    (no value from the response or the configuration can reach it), while the owner's code
    stays the specific one."""
    from webwork_sso_middleware.saml.acs import PUBLIC_REASONS

    found = raised_rejections()
    assert len(found) > 25
    for module, code, public in found:
        assert public in PUBLIC_REASONS, (module, code)
        assert public == code or public == "sso_unavailable", (module, code)
    for sentence in PUBLIC_REASONS.values():
        assert "{" not in sentence and "://" not in sentence
    hidden = {code for _, code, public in found if public != code}
    assert hidden == {"unknown_workspace", "plan", "sso_disabled", "idp_not_configured"}
