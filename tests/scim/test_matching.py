"""A value filter matched in Python against one complex value (scim/matching.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from webwork_sso_middleware.scim.errors import ScimError
from webwork_sso_middleware.scim.filters import parse_filter
from webwork_sso_middleware.scim.matching import matches
from webwork_sso_middleware.scim.schemas import ENTERPRISE_USER_SCHEMA, GROUP, USER

from .test_filters import CORE_USER, ENTERPRISE

# -- matches: one complex value in Python ------------------------------------------------------

EMAILS = USER.attribute("emails")
MEMBERS = GROUP.attribute("members")


def match(text: str, element: dict[str, Any], **kwargs: Any) -> bool:
    return matches(parse_filter(text), element, **kwargs)


@pytest.mark.parametrize(
    "text, element, expected",
    [
        ('type eq "work"', {"type": "work"}, True),
        ('type eq "work"', {"type": "Work"}, True),  # caseExact false
        ('TYPE eq "work"', {"Type": "work"}, True),  # names ignore case
        ('type eq "work"', {"type": "home"}, False),
        ('type ne "work"', {"type": "home"}, True),
        ('type ne "work"', {"type": "WORK"}, False),
        ('type ne "work"', {}, False),  # comparisons need a value ...
        ('not (type eq "work")', {}, True),  # ... and not() includes the unassigned
        ("type eq null", {}, True),
        ("type eq null", {"type": None}, True),
        ("type eq null", {"type": ""}, True),
        ("type eq null", {"type": "work"}, False),
        ("type ne null", {"type": "work"}, True),
        ("type ne null", {"type": ""}, False),
        ("type pr", {"type": "x"}, True),
        ("type pr", {"type": ""}, False),
        ("type pr", {"type": None}, False),
        ("type pr", {}, False),
        ('value co "EXAMPLE"', {"value": "a@example.com"}, True),
        ('value co "%"', {"value": "a@example.com"}, False),
        ('value sw "A@"', {"value": "a@example.com"}, True),
        ('value sw "example"', {"value": "a@example.com"}, False),
        ('value ew ".COM"', {"value": "a@example.com"}, True),
        ('value ew "a@"', {"value": "a@example.com"}, False),
        ('value gt "A"', {"value": "b"}, True),
        ('value gt "B"', {"value": "b"}, False),
        ('value ge "B"', {"value": "b"}, True),
        ('value lt "c"', {"value": "B"}, True),
        ('value le "b"', {"value": "B"}, True),
        ('value lt "b"', {"value": "B"}, False),
        ("primary eq true", {"primary": True}, True),
        ("primary eq true", {"primary": "True"}, True),  # Entra's string booleans
        ("primary eq true", {"primary": "false"}, False),
        ("primary eq false", {"primary": "FALSE"}, True),
        ('primary eq "true"', {"primary": True}, True),
        ("primary ne true", {"primary": False}, True),
        ("primary eq true", {"primary": "yes"}, False),
        ("primary pr", {"primary": False}, True),
        ("n gt 3", {"n": 5}, True),
        ("n le 4.5", {"n": 5}, False),
        ("n eq 5", {"n": 5.0}, True),
        ('n eq "5"', {"n": 5}, False),  # a number is not a string
        ('n ne "5"', {"n": 5}, True),
        ('type eq "work" and value co "@x"', {"type": "work", "value": "a@x"}, True),
        ('type eq "work" and value co "@x"', {"type": "home", "value": "a@x"}, False),
        ('type eq "work" or value co "@x"', {"type": "home", "value": "a@x"}, True),
        ('not (type eq "work" or value co "@x")', {"type": "home", "value": "a@y"}, True),
        ('type eq "a" or type eq "b" and value eq "v"', {"type": "a", "value": "w"}, True),
        ('(type eq "a" or type eq "b") and value eq "v"', {"type": "a", "value": "w"}, False),
    ],
)
def test_matches_one_value(text: str, element: dict[str, Any], expected: bool) -> None:
    assert matches(parse_filter(text), element) is expected


def test_matches_honours_case_exact_when_given_the_attribute() -> None:
    assert match('value eq "ABC"', {"value": "abc"})
    assert not match(
        'value eq "ABC"', {"value": "abc"}, attribute=MEMBERS
    )  # members.value: caseExact
    assert match('value eq "abc"', {"value": "abc"}, attribute=MEMBERS)
    assert match(
        'value eq "ABC"', {"value": "abc"}, attribute=EMAILS
    )  # emails.value: not caseExact
    assert match('display eq "ANN"', {"display": "ann"}, attribute=MEMBERS)


def test_matches_checks_names_and_types_when_given_the_attribute() -> None:
    assert not match('foo eq "x"', {"foo": "y"})
    for text, message in [
        ('foo eq "x"', "unknown attribute 'foo' in a filter on emails"),
        ("foo pr", "unknown attribute 'foo'"),
        ("primary eq 5", "emails.primary is a boolean"),
        ('primary eq "maybe"', "emails.primary is a boolean"),
        ('primary co "t"', "'co' cannot be used with the boolean attribute emails.primary"),
        ("value eq 5", "emails.value is a string"),
        ("value eq true", "emails.value is a string"),
    ]:
        with pytest.raises(ScimError) as caught:
            match(text, {}, attribute=EMAILS)
        assert message in caught.value.detail
        assert caught.value.scim_type == "invalidFilter"


@pytest.mark.parametrize(
    "text, message",
    [
        ("value co 5", "'co' needs a string value"),
        ("value sw null", "'sw null' is not allowed"),
        ("value gt null", "'gt null' is not allowed"),
        ("primary gt true", "'gt' cannot compare booleans"),
    ],
)
def test_matches_refuses_operands_no_value_can_satisfy(text: str, message: str) -> None:
    with pytest.raises(ScimError) as caught:
        match(text, {"value": "x", "primary": True})
    assert message in caught.value.detail


def test_matches_walks_whole_resources() -> None:
    user = {
        "schemas": [USER.id, ENTERPRISE_USER_SCHEMA],
        "userName": "bjensen",
        "name": {"givenName": "Barbara"},
        "emails": [
            {"type": "work", "value": "a@w.example"},
            {"type": "home", "value": "b@h.example"},
        ],
        ENTERPRISE_USER_SCHEMA: {"department": "R&D", "manager": {"value": "m1"}},
    }
    assert match('name.givenName eq "barbara"', user)
    assert match('emails.value ew "@h.example"', user)  # any one of the values
    assert not match('emails.value ew "@x.example"', user)
    assert match(f'{ENTERPRISE}department eq "r&d"', user)
    assert match(f'{ENTERPRISE}manager.value eq "m1"', user)
    assert match(f'{CORE_USER}userName eq "BJENSEN"', user)
    assert match('emails[type eq "work" and value co "@w."]', user)
    assert not match('emails[type eq "work" and value eq "b@h.example"]', user)  # same value
    assert match('emails.type eq "work" and emails.value eq "b@h.example"', user)
    assert match('emails[type eq "home"].value sw "b@"', user)
    assert not match('emails[type eq "home"].value sw "a@"', user)


def test_matches_datetimes_to_the_precision_written() -> None:
    created = {"created": dt.datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=dt.UTC)}
    assert match('created eq "2024-05-01T10:00:00Z"', created)
    assert match('created eq "2024-05-01T12:00:00.25+02:00"', created)
    assert not match('created eq "2024-05-01T10:00:00.251Z"', created)
    assert not match('created gt "2024-05-01T10:00:00Z"', created)
    assert match('created gt "2024-05-01T09:59:59Z"', created)
    assert match('created le "2024-05-01T10:00:00Z"', created)
    assert match('created lt "2024-05-01T10:00:00.251Z"', created)
    assert match('created eq "2024-05-01"', created)
    with pytest.raises(ScimError, match="not an ISO 8601 dateTime"):
        match('created gt "yesterday"', created)
