"""The posted SAMLResponse before any check (saml/posted.py): decoded strictly, parsed without
a DTD, and the email it claims read for the owner's diagnostics only."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from lxml import etree

from webwork_sso_middleware.saml.posted import SAML, claimed_email, decode, peek
from webwork_sso_middleware.saml.rejection import Rejection

from .conftest import ACS, SP_ID
from .idp import TestIdP

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
