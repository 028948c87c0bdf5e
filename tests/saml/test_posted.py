"""The posted SAMLResponse before any check (saml/posted.py): decoded strictly, parsed without
a DTD, and the email it claims read for the owner's diagnostics only."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from lxml import etree

from webwork_sso_middleware.saml.encryption import decrypt_assertion
from webwork_sso_middleware.saml.posted import SAML, claimed_email, decode, email_attribute, peek
from webwork_sso_middleware.saml.rejection import Rejection

from .conftest import ACS, SP_ID
from .idp import Encryption, TestIdP, make_key_pair

# -- what a refused response claimed, for the owner's diagnostics ---------------------------------


def with_name_id(idp: TestIdP, name_id: str) -> bytes:
    root = etree.fromstring(
        idp.response_xml(
            sp_entity_id=SP_ID, acs_url=ACS, email="alice@acme.test", sign_assertion=False
        ).encode()
    )
    root.find(f"{{{SAML}}}Assertion/{{{SAML}}}Subject/{{{SAML}}}NameID").text = name_id
    return etree.tostring(root)


@pytest.mark.parametrize(
    "name_id, claimed",
    [
        ("alice@acme.test", "alice@acme.test"),
        (" alice@acme.test ", "alice@acme.test"),
        ("a" * 310 + "@acme.test", "a" * 310 + "@acme.test"),  # 320 characters
        ("a" * 311 + "@acme.test", None),
        ("alice", None),
        ("", None),
    ],
)
def test_the_claimed_email_is_a_plausible_address_or_nothing(
    test_idp: TestIdP, name_id: str, claimed: str | None
):
    assert claimed_email(peek(with_name_id(test_idp, name_id))) == claimed


def test_no_response_or_no_name_id_claims_nothing(test_idp: TestIdP):
    assert claimed_email(None) is None
    root = etree.fromstring(with_name_id(test_idp, "alice@acme.test"))
    name_id = root.find(f"{{{SAML}}}Assertion/{{{SAML}}}Subject/{{{SAML}}}NameID")
    name_id.append(etree.Comment("injected"))
    assert claimed_email(peek(etree.tostring(root))) is None
    name_id.getparent().remove(name_id)
    assert claimed_email(peek(etree.tostring(root))) is None


def test_an_encrypted_assertion_claims_nothing_until_decrypted(test_idp: TestIdP):
    """The NameID is cipher text until the consumer decrypts it (acs.py sets ``decrypted``)."""
    keys = make_key_pair("acme SAML SP")
    xml = test_idp.response_xml(
        sp_entity_id=SP_ID,
        acs_url=ACS,
        email="alice@acme.test",
        encryption=Encryption(keys.cert_pem),
    )
    seen = peek(xml.encode())
    assert claimed_email(seen) is None
    seen.decrypted = decrypt_assertion(
        seen.root.find(f"{{{SAML}}}EncryptedAssertion"), [keys.key_pem]
    )
    assert claimed_email(seen) == "alice@acme.test"


@pytest.mark.parametrize(
    "make, code, detail",
    [
        (lambda idp: decode(None), "missing_response", "no SAMLResponse"),
        (lambda idp: decode(""), "missing_response", "no SAMLResponse"),
        (lambda idp: decode(" \r\n\t"), "missing_response", "no SAMLResponse"),
        (lambda idp: decode("PH\u2028I+"), "bad_encoding", "not valid base64"),  # not ASCII space
        (lambda idp: decode("PHI+\u3000"), "bad_encoding", "not valid base64"),
        (lambda idp: decode("PH\x1cI+"), "bad_encoding", "not valid base64"),
        (lambda idp: decode("PHNhbWxwOlJlc3BvbnNlLz4=!"), "bad_encoding", "not valid base64"),
        (
            lambda idp: decode("PHNhbWxwOlJlc3BvbnNlLz4"),
            "bad_encoding",
            "not valid base64",
        ),  # padding
        (lambda idp: peek(b"<!DOCTYPE r><r/>"), "dtd_forbidden", "DTD"),
        (lambda idp: peek(b"<r"), "malformed_xml", "not well-formed"),
        (
            lambda idp: peek(b"<r xmlns='urn:oasis:names:tc:SAML:2.0:assertion'/>"),
            "not_a_response",
            "not a SAML Response",
        ),
    ],
    ids=[
        "none",
        "empty",
        "blank",
        "line separator",
        "ideographic space",
        "file separator",
        "junk",
        "unpadded",
        "dtd",
        "malformed",
        "assertion",
    ],
)
def test_what_is_refused_before_the_consumer_says_why(
    test_idp: TestIdP, make: Any, code: str, detail: str
):
    with pytest.raises(Rejection) as refused:
        make(test_idp)
    assert refused.value.code == code and re.search(detail, refused.value.detail)


def test_base64_wrapped_in_lines_is_read():
    """Some IdPs wrap the base64 at 76 characters (MIME style): whitespace is not an error."""
    document = b"<samlp:Response xmlns:samlp='urn:oasis:names:tc:SAML:2.0:protocol'/>" * 3
    encoded = base64.b64encode(document).decode("ascii")
    wrapped = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + "\n"
    assert decode(wrapped) == document == decode(f"  {encoded}  ")


@pytest.mark.parametrize("wrapping", [" ", "\t", "\r", "\n"], ids=["space", "tab", "cr", "lf"])
def test_each_wrapping_character_alone_is_skipped(wrapping: str):
    """decode looks for each of them before it strips them: one alone must be seen too."""
    document = b"<samlp:Response xmlns:samlp='urn:oasis:names:tc:SAML:2.0:protocol'/>"
    encoded = base64.b64encode(document).decode("ascii")
    assert decode(encoded[:8] + wrapping + encoded[8:]) == document


# -- an empty InResponseTo, refused before anything is checked -----------------------------------


def with_in_response_to(
    idp: TestIdP, on_response: str | None, on_confirmation: str | None
) -> bytes:
    root = etree.fromstring(
        idp.response_xml(
            sp_entity_id=SP_ID, acs_url=ACS, email="alice@acme.test", sign_assertion=False
        ).encode()
    )
    confirmation = root.find(
        f"{{{SAML}}}Assertion/{{{SAML}}}Subject/{{{SAML}}}SubjectConfirmation/"
        f"{{{SAML}}}SubjectConfirmationData"
    )
    for element, value in ((root, on_response), (confirmation, on_confirmation)):
        element.attrib.pop("InResponseTo", None)
        if value is not None:
            element.set("InResponseTo", value)
    return etree.tostring(root)


@pytest.mark.parametrize(
    "on_response, on_confirmation",
    [("", ""), ("", None), (None, ""), ("id-1", "")],
    ids=["both", "response", "confirmation", "confirmation only empty"],
)
def test_an_empty_in_response_to_is_refused_with_its_own_code(
    test_idp: TestIdP, on_response: str | None, on_confirmation: str | None
):
    with pytest.raises(Rejection) as refused:
        peek(with_in_response_to(test_idp, on_response, on_confirmation))
    assert refused.value.code == "empty_in_response_to"
    assert 'InResponseTo=""' in refused.value.detail and "leave the attribute out" in (
        refused.value.detail
    )


@pytest.mark.parametrize(
    "on_response, on_confirmation, seen",
    [(None, None, None), ("id-1", "id-1", "id-1"), ("id-1", None, "id-1")],
)
def test_an_absent_or_named_in_response_to_is_peeked(
    test_idp: TestIdP, on_response: str | None, on_confirmation: str | None, seen: str | None
):
    assert peek(with_in_response_to(test_idp, on_response, on_confirmation)).in_response_to == seen


# -- the email a transient or persistent NameID's response claims --------------------------------

PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"


@pytest.mark.parametrize(
    "name_id_format, attributes, claimed",
    [
        (PERSISTENT, {"email": "bob@acme.test"}, "bob@acme.test"),
        (TRANSIENT, {"User.Email": "bob@acme.test"}, "bob@acme.test"),
        (PERSISTENT, {"firstName": "Bob"}, None),
        (PERSISTENT, {"email": "bob"}, None),
        (
            "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            {"email": "bob@acme.test"},
            "alice@acme.test",
        ),
        (
            "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            {"email": "bob@acme.test"},
            "alice@acme.test",
        ),
    ],  # fmt: skip
    ids=["persistent", "transient", "no attribute", "no address", "emailAddress", "unspecified"],
)
def test_an_opaque_name_id_claims_the_email_attribute(
    test_idp: TestIdP, name_id_format: str, attributes: dict[str, str], claimed: str | None
):
    """Unverified, as the NameID's: for the owner's diagnostics and the ACS's first lookup."""
    document = test_idp.response_xml(
        sp_entity_id=SP_ID,
        acs_url=ACS,
        email="alice@acme.test",
        attributes=attributes,
        name_id_format=name_id_format,
        sign_assertion=False,
    ).encode()
    assert claimed_email(peek(document)) == claimed


def assertion_with(*attributes: tuple[str, str | None, list[str]]) -> Any:
    """An Assertion element holding Attributes of (Name, FriendlyName, values)."""
    assertion = etree.Element(f"{{{SAML}}}Assertion")
    statement = etree.SubElement(assertion, f"{{{SAML}}}AttributeStatement")
    for name, friendly, values in attributes:
        attribute = etree.SubElement(statement, f"{{{SAML}}}Attribute", Name=name)
        if friendly:
            attribute.set("FriendlyName", friendly)
        for value in values:
            etree.SubElement(attribute, f"{{{SAML}}}AttributeValue").text = value
    return assertion


def test_the_email_attribute_is_found_by_friendly_name_in_any_case_and_in_order():
    assert email_attribute(assertion_with(("urn:x", "Mail", [" a@acme.test "]))) == "a@acme.test"
    assert email_attribute(assertion_with(("EMAIL", None, ["a@acme.test"]))) == "a@acme.test"
    # Values that are no address are passed over, in the attribute and across attributes.
    two = assertion_with(("email", None, ["nobody", "b@acme.test"]), ("mail", None, ["c@x.test"]))
    assert email_attribute(two) == "b@acme.test"
    # Not an address in the first place: the 255-character bound, markup, other names.
    long = "x" * 246 + "@acme.test"
    assert email_attribute(assertion_with(("email", None, [long]))) is None
    assert email_attribute(assertion_with(("email", None, [long[1:]]))) == long[1:]
    assert email_attribute(assertion_with(("upn", None, ["a@acme.test"]))) is None
    marked = assertion_with(("email", None, ["a@acme.test"]))
    value = marked.find(f".//{{{SAML}}}AttributeValue")
    etree.SubElement(value, "b")
    assert email_attribute(marked) is None
    assert email_attribute(etree.Element(f"{{{SAML}}}Assertion")) is None
