"""SCIM filters: the parser, the Python matcher and the SQL compiler, on real databases."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from webwork_sso_middleware.scim.errors import ScimError
from webwork_sso_middleware.scim.filters import (
    And,
    Comparison,
    Node,
    Not,
    Or,
    Present,
    ValuePath,
    MAX_DEPTH,
    compile_filter,
    matches,
    parse_filter,
)
from webwork_sso_middleware.scim.resources import write_user
from webwork_sso_middleware.scim.schemas import (
    ENTERPRISE_USER_SCHEMA,
    GROUP,
    GROUP_RESOURCE,
    USER,
    USER_RESOURCE,
    ResourceType,
)
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import Group, Member, Membership, MemberValue, Workspace

ENTERPRISE = ENTERPRISE_USER_SCHEMA + ":"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User:"
QUICK = settings(database=None, deadline=None, max_examples=300)


def C(path: str, op: str, value: Any) -> Comparison:
    return Comparison(path, op, value)


def P(path: str) -> Present:
    return Present(path)


def invalid(text: str) -> ScimError:
    """The error parse_filter raises for ``text`` (failing the test if it raises none)."""
    with pytest.raises(ScimError) as caught:
        parse_filter(text)
    assert caught.value.status == 400
    assert caught.value.scim_type == "invalidFilter"
    return caught.value


# -- parser: what it builds --------------------------------------------------------------------

@pytest.mark.parametrize("op", ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
def test_every_comparison_operator(op: str) -> None:
    assert parse_filter(f'title {op} "x"') == C("title", op, "x")
    assert parse_filter(f'title {op.upper()} "x"') == C("title", op, "x")


@pytest.mark.parametrize("text, expected", [
    ("title pr", P("title")),
    ("title PR", P("title")),
    ("active eq true", C("active", "eq", True)),
    ("active eq FALSE", C("active", "eq", False)),
    ("title eq null", C("title", "eq", None)),
    ("n eq 42", C("n", "eq", 42)),
    ("n eq -7", C("n", "eq", -7)),
    ("n eq 0", C("n", "eq", 0)),
    ("n eq 1.5", C("n", "eq", 1.5)),
    ("n eq 2e3", C("n", "eq", 2000.0)),
    ("n eq -2.5E-1", C("n", "eq", -0.25)),
    ('title eq ""', C("title", "eq", "")),
    ('title eq "a\\"b"', C("title", "eq", 'a"b')),
    ('title eq "back\\\\slash"', C("title", "eq", "back\\slash")),
    ('title eq "\\u00e9t\\u00C9"', C("title", "eq", "étÉ")),
    ('title eq "\\/\\n\\t\\r\\b\\f"', C("title", "eq", "/\n\t\r\b\f")),
    ('title eq "\\ud83d\\ude00"', C("title", "eq", "\U0001F600")),
    ('title eq "raw é ✓ \U0001F600"', C("title", "eq", "raw é ✓ \U0001F600")),
    ('title eq "a ] [ ) ( and or"', C("title", "eq", "a ] [ ) ( and or")),
    ('name.givenName eq "x"', C("name.givenName", "eq", "x")),
    ("members.$ref pr", P("members.$ref")),
    ('\t title \n eq   "x"  ', C("title", "eq", "x")),
    (f'{ENTERPRISE}manager.value eq "m1"', C(f"{ENTERPRISE}manager.value", "eq", "m1")),
    (f'{CORE_USER}userName sw "j"', C(f"{CORE_USER}userName", "sw", "j")),
    (f"{ENTERPRISE}department pr", P(f"{ENTERPRISE}department")),
])
def test_terms_and_values(text: str, expected: Node) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text, expected", [
    # not binds tighter than and, and tighter than or; both associate to the left.
    ("a pr or b pr and c pr", Or(P("a"), And(P("b"), P("c")))),
    ("a pr and b pr or c pr", Or(And(P("a"), P("b")), P("c"))),
    ("a pr and b pr and c pr", And(And(P("a"), P("b")), P("c"))),
    ("a pr or b pr or c pr", Or(Or(P("a"), P("b")), P("c"))),
    ("(a pr or b pr) and c pr", And(Or(P("a"), P("b")), P("c"))),
    ("a pr and (b pr or c pr)", And(P("a"), Or(P("b"), P("c")))),
    ("not (a pr) and b pr", And(Not(P("a")), P("b"))),
    ("not (a pr and b pr)", Not(And(P("a"), P("b")))),
    ("a pr or not (b pr) and c pr", Or(P("a"), And(Not(P("b")), P("c")))),
    ("not (not (a pr))", Not(Not(P("a")))),
    ("((a pr))", P("a")),
    ("(a pr)and(b pr)", And(P("a"), P("b"))),
    ("a pr AND b pr Or NOT (c pr)", Or(And(P("a"), P("b")), Not(P("c")))),
    ('userName eq "x" and title eq "y" or displayName pr',
     Or(And(C("userName", "eq", "x"), C("title", "eq", "y")), P("displayName"))),
])
def test_precedence_and_parentheses(text: str, expected: Node) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text, expected", [
    ('emails[type eq "work"]', ValuePath("emails", C("type", "eq", "work"))),
    ('emails[type eq "work" and value co "@x"]',
     ValuePath("emails", And(C("type", "eq", "work"), C("value", "co", "@x")))),
    ('emails[not (type eq "work") or primary eq true]',
     ValuePath("emails", Or(Not(C("type", "eq", "work")), C("primary", "eq", True)))),
    ('emails[(type eq "work")]', ValuePath("emails", C("type", "eq", "work"))),
    ('emails[type eq "work"].value eq "x"',
     ValuePath("emails", And(C("type", "eq", "work"), C("value", "eq", "x")))),
    ('emails[type eq "work"].value pr', ValuePath("emails", And(C("type", "eq", "work"), P("value")))),
    ('emails[type eq "work" or type eq "home"].display co "a"',
     ValuePath("emails", And(Or(C("type", "eq", "work"), C("type", "eq", "home")), C("display", "co", "a")))),
    (f'{CORE_USER}emails[type eq "work"]', ValuePath(f"{CORE_USER}emails", C("type", "eq", "work"))),
    ('userName eq "a" and emails[type eq "work"] or groups pr',
     Or(And(C("userName", "eq", "a"), ValuePath("emails", C("type", "eq", "work"))), P("groups"))),
    ('not (emails[value ew "]"])', Not(ValuePath("emails", C("value", "ew", "]")))),
])
def test_value_paths(text: str, expected: Node) -> None:
    assert parse_filter(text) == expected


# -- parser: what it refuses -------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("", "empty filter"),
    ("   \t", "empty filter"),
    ("userName", "expected an operator after 'userName', found end of filter"),
    ('userName foo "x"', "unknown operator 'foo' at position 9"),
    ('userName equals "x"', "unknown operator 'equals' at position 9"),
    ("userName eq", "expected a value after 'eq' at end of filter"),
    ("userName eq bjensen", "unexpected token 'bjensen' at position 12"),
    ('userName eq "bjensen" foo', "unexpected token 'foo' at position 22"),
    ('userName eq "a" "b"', "unexpected token '\"b\"' at position 16"),
    ('userName eq "x" ]', "unexpected token ']' at position 16"),
    ("(userName pr", "missing ')' at end of filter (opened at position 0)"),
    ("((a pr) or b pr", "missing ')' at end of filter (opened at position 0)"),
    ("userName pr)", "unexpected ')' at position 11"),
    ("()", "expected an attribute path, found ')' at position 1"),
    ('emails[type eq "work"', "missing ']' at end of filter (opened at position 6)"),
    ('emails[type eq "work")', "missing ']' at position 21 (opened at position 6)"),
    ('userName eq "abc', "unterminated string starting at position 12"),
    ('userName eq "abc\\', "unterminated string starting at position 12"),
    ('userName eq "\\x"', "invalid \\escape in string at position 13"),
    ('userName eq "\\u12"', "invalid \\uXXXX escape in string at position 14"),
    ('userName eq "\\u12zz"', "invalid \\uXXXX escape in string at position 14"),
    ('userName eq "\\ud800"', "the string at position 12 holds '\\ud800', which no value can hold"),
    ('userName eq "\\udc00\\ud800"', "holds '\\udc00'"),
    ('userName eq "\\ud800\\u0041"', "holds '\\ud800'"),
    ('userName eq "a\\u0000"', "the string at position 12 holds '\\x00'"),
    ("userName eq 'x'", "unexpected \"'\" at position 12: strings use double quotes"),
    ("n eq 01", "invalid number '01' at position 5"),
    ("n eq 1.", "invalid number '1.' at position 5"),
    ("n eq 1e", "invalid number '1e' at position 5"),
    ("n eq 5abc", "invalid number '5abc' at position 5"),
    ("n eq 1e400", "number '1e400' at position 5 is out of range"),
    ("n eq +1", "unexpected character '+' at position 5"),
    ("not userName pr", "expected '(' after 'not' at position 0"),
    ("and userName pr", "expected an attribute path, found 'and' at position 0"),
    ("userName pr and", "expected an attribute path, found end of filter"),
    ("userName pr or or title pr", "expected an attribute path, found 'or' at position 15"),
    ("userName pr title pr", "unexpected token 'title' at position 12"),
    ('emails[type[value pr]]', "unexpected '[' at position 11: value filters do not nest"),
    ("user..name pr", "invalid attribute path 'user..name' at position 0"),
    ("name.givenName.x pr", "invalid attribute path 'name.givenName.x' at position 0"),
    ("userName: pr", "invalid attribute path 'userName:' at position 0"),
    ('userName @ "x"', "unexpected character '@' at position 9"),
    ('emails[type eq "work"].', "unexpected character '.' at position 22"),
    ('emails[type eq "work"].value', "expected an operator after 'value', found end of filter"),
    ('userName eq "x".value pr', "unexpected character '.' at position 15"),
    ("userName eq (", "unexpected token '(' at position 12"),
    ("title eq \x00", "invalid character at position 9"),
    ('title eq "\ud800"', "invalid character at position 10"),
])
def test_malformed_filters_name_the_problem(text: str, message: str) -> None:
    assert message in invalid(text).detail


def test_limits_length() -> None:
    assert "too long (5000 characters; at most 4096)" in invalid("a" * 5000).detail
    text = "title pr or " * 340 + "title pr"
    assert len(text) <= 4096
    assert isinstance(parse_filter(text), Or)


@pytest.mark.parametrize("opener, closer", [("(", ")"), ("not (", ")")])
def test_limits_nesting_depth(opener: str, closer: str) -> None:
    assert parse_filter(opener * MAX_DEPTH + "a pr" + closer * MAX_DEPTH) is not None
    error = invalid(opener * (MAX_DEPTH + 1) + "a pr" + closer * (MAX_DEPTH + 1))
    assert f"nested too deeply (more than {MAX_DEPTH} levels) at position" in error.detail
    assert "nested too deeply" in invalid(opener * 800 + "a pr").detail


def test_value_filter_brackets_count_towards_depth() -> None:
    inside = MAX_DEPTH - 1
    parse_filter("(" * inside + "emails[type pr]" + ")" * inside)
    assert "nested too deeply" in invalid("(" * MAX_DEPTH + "emails[type pr]" + ")" * MAX_DEPTH).detail


def test_refuses_non_strings() -> None:
    with pytest.raises(ScimError):
        parse_filter(None)  # type: ignore[arg-type]
    with pytest.raises(ScimError):
        parse_filter(b'userName eq "x"')  # type: ignore[arg-type]


@QUICK
@given(st.text(max_size=300))
def test_any_text_gives_a_node_or_invalid_filter(text: str) -> None:
    try:
        parse_filter(text)
    except ScimError as exc:
        assert exc.scim_type == "invalidFilter"


SOUP = [
    "(", ")", "[", "]", "not", "and", "or", "pr", "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt",
    "le", "EQ", "Not", '"x"', '"a\\"b"', '"\\u00e9"', '"\\ud83d"', '"', "\\", "true", "null",
    "False", "5", "-1.5e2", "01", "userName", "title", "active", "emails", "emails.type",
    "name.givenName", "name", "type", "value", "primary", ".value", "groups", "members",
    "meta.created", '"2024-01-01T00:00:00Z"', f"{ENTERPRISE}manager.value", "password", "foo",
    "meta.version", "x509Certificates", "addresses", "$ref", ":", ".", "'", "urn:",
]


@QUICK
@given(st.lists(st.sampled_from(SOUP), max_size=25), st.sampled_from([" ", ""]))
def test_token_soup_only_ever_raises_invalid_filter(tokens: list[str], glue: str) -> None:
    """Parse, compile for both resources and match: nothing but ScimError may come out."""
    try:
        node = parse_filter(glue.join(tokens))
    except ScimError as exc:
        assert exc.scim_type == "invalidFilter"
        return
    for resource in (USER_RESOURCE, GROUP_RESOURCE):
        try:
            compile_filter(node, resource)
        except ScimError as exc:
            assert exc.scim_type == "invalidFilter"
    emails = USER.attribute("emails")
    for element, attribute in (({"type": "work", "value": "x", "primary": "True"}, None),
                               ({"type": "work", "value": "x", "primary": True}, emails)):
        try:
            assert matches(node, element, attribute=attribute) in (True, False)
        except ScimError as exc:
            assert exc.scim_type == "invalidFilter"


# A printer, to check that parse_filter reads back any tree it could have produced.
def to_text(node: Node) -> str:
    if isinstance(node, Comparison):
        return f"{node.path} {node.op} {json.dumps(node.value, ensure_ascii=len(node.path) % 2 == 0)}"
    if isinstance(node, Present):
        return f"{node.path} pr"
    if isinstance(node, (And, Or)):
        word = "and" if isinstance(node, And) else "or"
        return f"({to_text(node.left)}) {word} ({to_text(node.right)})"
    if isinstance(node, Not):
        return f"not ({to_text(node.node)})"
    return f"{node.path}[{to_text(node.filter)}]"


def depth(node: Node) -> int:
    if isinstance(node, (And, Or)):
        return 1 + max(depth(node.left), depth(node.right))
    if isinstance(node, Not):
        return 1 + depth(node.node)
    if isinstance(node, ValuePath):
        return 1 + depth(node.filter)
    return 0


def logic(terms: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.recursive(terms, lambda inner: st.one_of(
        st.builds(And, inner, inner), st.builds(Or, inner, inner), st.builds(Not, inner)
    ), max_leaves=8)


STRINGS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
SCALARS = st.one_of(STRINGS, st.booleans(), st.none(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=False, allow_infinity=False))
SUB_TERMS = st.one_of(
    st.builds(Comparison, st.sampled_from(["type", "value", "Primary", "$ref"]),
              st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]), SCALARS),
    st.builds(Present, st.sampled_from(["display", "value"])),
)
TERMS = st.one_of(
    st.builds(Comparison, st.sampled_from(["userName", "name.givenName", f"{ENTERPRISE}manager.value",
                                           "x-y_z", "a1", "URN:X:title"]),
              st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]), SCALARS),
    st.builds(Present, st.sampled_from(["title", "emails.value", "members.$ref"])),
    st.builds(ValuePath, st.sampled_from(["emails", f"{CORE_USER}addresses"]), logic(SUB_TERMS)),
)


@QUICK
@given(logic(TERMS))
def test_parse_reads_back_printed_trees(node: Node) -> None:
    text = to_text(node)
    assume(depth(node) < 48 and len(text) <= 4096)
    assert parse_filter(text) == node


# -- matches: one complex value in Python ------------------------------------------------------

EMAILS = USER.attribute("emails")
MEMBERS = GROUP.attribute("members")


def match(text: str, element: dict[str, Any], **kwargs: Any) -> bool:
    return matches(parse_filter(text), element, **kwargs)


@pytest.mark.parametrize("text, element, expected", [
    ('type eq "work"', {"type": "work"}, True),
    ('type eq "work"', {"type": "Work"}, True),  # caseExact false
    ('TYPE eq "work"', {"Type": "work"}, True),  # names ignore case
    ('type eq "work"', {"type": "home"}, False),
    ('type ne "work"', {"type": "home"}, True),
    ('type ne "work"', {"type": "WORK"}, False),
    ('type ne "work"', {}, False),  # comparisons need a value ...
    ('not (type eq "work")', {}, True),  # ... and not() includes the unassigned
    ('type eq null', {}, True),
    ('type eq null', {"type": None}, True),
    ('type eq null', {"type": ""}, True),
    ('type eq null', {"type": "work"}, False),
    ('type ne null', {"type": "work"}, True),
    ('type ne null', {"type": ""}, False),
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
])
def test_matches_one_value(text: str, element: dict[str, Any], expected: bool) -> None:
    assert matches(parse_filter(text), element) is expected


def test_matches_honours_case_exact_when_given_the_attribute() -> None:
    assert match('value eq "ABC"', {"value": "abc"})
    assert not match('value eq "ABC"', {"value": "abc"}, attribute=MEMBERS)  # members.value: caseExact
    assert match('value eq "abc"', {"value": "abc"}, attribute=MEMBERS)
    assert match('value eq "ABC"', {"value": "abc"}, attribute=EMAILS)  # emails.value: not caseExact
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


@pytest.mark.parametrize("text, message", [
    ("value co 5", "'co' needs a string value"),
    ("value sw null", "'sw null' is not allowed"),
    ("value gt null", "'gt null' is not allowed"),
    ("primary gt true", "'gt' cannot compare booleans"),
])
def test_matches_refuses_operands_no_value_can_satisfy(text: str, message: str) -> None:
    with pytest.raises(ScimError) as caught:
        match(text, {"value": "x", "primary": True})
    assert message in caught.value.detail


def test_matches_walks_whole_resources() -> None:
    user = {
        "schemas": [USER.id, ENTERPRISE_USER_SCHEMA],
        "userName": "bjensen",
        "name": {"givenName": "Barbara"},
        "emails": [{"type": "work", "value": "a@w.example"}, {"type": "home", "value": "b@h.example"}],
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
    created = {"created": dt.datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=dt.timezone.utc)}
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


# -- compile_filter: SQL on real rows ----------------------------------------------------------

def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


LONG_CERT = "MII" + "A" * 1200 + "Tail"


def _member(member_id: str, user_name: str, created: str, **fields: Any) -> Member:
    values = fields.pop("values", [])
    member = Member(id=member_id, workspace_id=1, user_name=user_name, user_name_key=user_name.lower(),
                    created_at=at(created), modified_at=at(created), **fields)
    member.values = [
        MemberValue(attribute=attribute, position=position, value=value,
                    value_key=value.lower()[:1024] if value is not None else None, **extra)
        for position, (attribute, value, extra) in enumerate(values)
    ]
    return member


@pytest.fixture
def people(database: Database) -> Database:
    """Five visible members, one deleted, three groups; see the cases below for who is who."""
    with database.transaction(write=True) as session:
        session.add(Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example"))
        session.flush()
        alice = _member(
            "alice", "Alice@Example.com", "2024-01-01T10:00:00.250+00:00",
            external_id="EXT-Alice", given_name="Alice", family_name="Liddell",
            display_name="Alice Liddell", title="Engineer", active=True, employee_number="100",
            department="R&D", manager_id="bob", manager_display_name="Bob Builder",
            values=[
                ("emails", "alice@work.example", {"type": "work", "primary": True}),
                ("emails", "alice@home.example", {"type": "home"}),
                ("phoneNumbers", "+1 555 0100", {"type": "work"}),
                ("addresses", None, {"type": "work", "locality": "Oxford", "postal_code": "OX1"}),
            ],
        )
        alice.modified_at = at("2024-06-01T00:00:00+00:00")
        bob = _member(
            "bob", "bob", "2024-02-01T00:00:00+00:00", external_id="ext-bob",
            title="50% off_sale", active=False, department="Sales",
            values=[
                ("emails", "Bob@WORK.example", {"type": "work"}),
                ("emails", "B@x.y", {"type": "other", "display": "Bee"}),
                ("roles", "admin", {}),
            ],
        )
        carol = _member(
            "carol", "carol_x", "2024-03-01T00:00:00+00:00", title="", display_name="",
            active=True, department="r&d",
            values=[
                ("emails", "carol@home.example", {"type": "home"}),
                ("emails", "shared@work.example", {"type": "work"}),
                ("x509Certificates", LONG_CERT, {}),
            ],
        )
        dave = _member("dave", "dave%", "2024-03-15T00:00:00+00:00", title="engineer", active=True)
        frank = _member("frank", "Frank", "2024-04-01T00:00:00+00:00", active=True)
        erin = _member("erin", "erin", "2024-01-05T00:00:00+00:00", active=True, title="Engineer",
                       deleted_at=at("2024-05-01T00:00:00+00:00"))
        session.add_all([alice, bob, carol, dave, frank, erin])
        session.flush()
        groups = [
            Group(id="g-admins", workspace_id=1, display_name="Admins", display_name_key="admins",
                  external_id="AD-1", created_at=at("2024-01-01T00:00:00+00:00")),
            Group(id="g-staff", workspace_id=1, display_name="Staff 100%", display_name_key="staff 100%",
                  created_at=at("2024-02-01T00:00:00+00:00")),
            Group(id="g-empty", workspace_id=1, display_name="Empty_Group", display_name_key="empty_group",
                  created_at=at("2024-03-01T00:00:00+00:00")),
        ]
        session.add_all(groups)
        session.flush()
        session.add_all([Membership(group_id=g, member_id=m) for g, m in [
            ("g-admins", "alice"), ("g-staff", "alice"), ("g-staff", "bob"), ("g-staff", "erin"),
        ]])
    return database


def user_ids(database: Database, text: str) -> set[str]:
    where = compile_filter(parse_filter(text), USER_RESOURCE)
    with database.transaction() as session:
        return set(session.scalars(select(Member.id).where(Member.deleted_at.is_(None), where)))


def group_ids(database: Database, text: str) -> set[str]:
    where = compile_filter(parse_filter(text), GROUP_RESOURCE)
    with database.transaction() as session:
        return set(session.scalars(select(Group.id).where(where)))


EVERYONE = {"alice", "bob", "carol", "dave", "frank"}
E = ENTERPRISE

USER_CASES = [
    # userName: the lower-cased key, whatever the case asked for
    ('userName eq "alice@example.com"', {"alice"}),
    ('userName eq "ALICE@EXAMPLE.COM"', {"alice"}),
    ('userName ne "BOB"', EVERYONE - {"bob"}),
    ('userName co "EXAMPLE"', {"alice"}),
    ('userName sw "B"', {"bob"}),
    ('userName ew ".COM"', {"alice"}),
    ('userName gt "bob"', {"carol", "dave", "frank"}),
    ('userName ge "BOB"', {"bob", "carol", "dave", "frank"}),
    ('userName lt "bob"', {"alice"}),
    ('userName le "bob"', {"alice", "bob"}),
    ("userName pr", EVERYONE),
    ('userName eq null', set()),
    # LIKE wildcards in values are literal
    ('userName co "_"', {"carol"}),
    ('userName sw "carol_"', {"carol"}),
    ('userName co "%"', {"dave"}),
    ('userName ew "%"', {"dave"}),
    ('userName co "/"', set()),
    ('title co "0% off_"', {"bob"}),
    ('title sw "50%"', {"bob"}),
    ('title co "o_f"', set()),
    # caseExact attributes
    ('externalId eq "EXT-Alice"', {"alice"}),
    ('externalId eq "ext-alice"', set()),
    ('externalId co "Alice"', {"alice"}),
    ('externalId co "alice"', set()),
    ('externalId sw "ext-"', {"bob"}),
    ('externalId pr', {"alice", "bob"}),
    ('id eq "alice"', {"alice"}),
    ('id eq "ALICE"', set()),
    ('id ne "alice"', EVERYONE - {"alice"}),
    # caseExact=false columns without a key
    ('title eq "ENGINEER"', {"alice", "dave"}),
    ('title ne "engineer"', {"bob"}),
    ('not (title eq "engineer")', {"bob", "carol", "frank"}),
    ("title pr", {"alice", "bob", "dave"}),
    ("title eq null", {"carol", "frank"}),  # "" counts as unassigned
    ("title ne null", {"alice", "bob", "dave"}),
    ('title gt ""', {"alice", "bob", "dave"}),
    ('title co ""', {"alice", "bob", "dave"}),
    ('not (title co "")', {"carol", "frank"}),
    ('title lt "f"', {"bob", "alice", "dave"}),
    ('name.givenName eq "ALICE"', {"alice"}),
    ('name.familyName sw "lid"', {"alice"}),
    ("name pr", {"alice"}),
    ('name[givenName eq "alice" and familyName ew "dell"]', {"alice"}),
    ('displayName co "liddell"', {"alice"}),
    ("displayName pr", {"alice"}),
    ("displayName eq null", {"bob", "carol", "dave", "frank"}),
    # booleans, including Entra's strings
    ("active eq true", EVERYONE - {"bob"}),
    ("active eq false", {"bob"}),
    ('active eq "False"', {"bob"}),
    ('active eq "TRUE"', EVERYONE - {"bob"}),
    ("active ne true", {"bob"}),
    ("not (active eq true)", {"bob"}),
    ("active pr", EVERYONE),
    # dateTimes: the operand covers the unit of its last digit
    ('meta.created eq "2024-01-01T10:00:00Z"', {"alice"}),
    ('meta.created eq "2024-01-01T10:00:00.250Z"', {"alice"}),
    ('meta.created eq "2024-01-01T10:00:00.251Z"', set()),
    ('meta.created ne "2024-01-01T10:00:00Z"', EVERYONE - {"alice"}),
    ('meta.created gt "2024-01-01T10:00:00Z"', EVERYONE - {"alice"}),
    ('meta.created gt "2024-01-01T10:00:00.249Z"', EVERYONE),
    ('meta.created ge "2024-02-01T00:00:00Z"', {"bob", "carol", "dave", "frank"}),
    ('meta.created gt "2024-02-01T01:00:00+01:00"', {"carol", "dave", "frank"}),
    ('meta.created lt "2024-02-01T00:00:00Z"', {"alice"}),
    ('meta.created le "2024-02-01T00:00:00Z"', {"alice", "bob"}),
    ('meta.created eq "2024-03-01"', {"carol"}),
    ('meta.created lt "2024-03-01T00:00:00"', {"alice", "bob"}),  # no offset: UTC
    ('meta.lastModified gt "2024-05-01T00:00:00Z"', {"alice"}),
    ("meta.created pr", EVERYONE),
    ('meta.resourceType eq "User"', EVERYONE),
    ('meta.resourceType eq "Group"', set()),
    ('not (meta.resourceType eq "Group")', EVERYONE),
    # the Enterprise extension, URN-qualified or not, any case
    (f'{E}department eq "R&D"', {"alice", "carol"}),
    (f'{E.lower()}department eq "sales"', {"bob"}),
    (f'{E.upper()}DEPARTMENT eq "sales"', {"bob"}),
    (f'{E}manager.value eq "bob"', {"alice"}),
    (f"{E}manager.value pr", {"alice"}),
    (f"{E}manager pr", {"alice"}),
    (f'{E}manager.displayName co "BUILDER"', {"alice"}),
    (f'{E}employeeNumber eq "100"', {"alice"}),
    (f'{CORE_USER}userName eq "bob"', {"bob"}),
    # multi-valued attributes: EXISTS over member_values
    ('emails eq "alice@work.example"', {"alice"}),
    ('emails eq "BOB@work.EXAMPLE"', {"bob"}),
    ('emails.value eq "bob@work.example"', {"bob"}),
    ('emails.value co "@WORK"', {"alice", "bob", "carol"}),
    ('emails.value sw "b@"', {"bob"}),
    ('emails.type eq "home"', {"alice", "carol"}),
    ('emails.display eq "bee"', {"bob"}),
    ("emails pr", {"alice", "bob", "carol"}),
    ("emails.display pr", {"bob"}),
    ("not (emails pr)", {"dave", "frank"}),
    ('emails ne "alice@work.example"', {"alice", "bob", "carol"}),  # any value differs
    ('not (emails eq "alice@work.example")', EVERYONE - {"alice"}),
    ('emails[type eq "work" and value co "alice"]', {"alice"}),
    ('emails[type eq "work" and value eq "alice@home.example"]', set()),  # one row must do
    ('emails.type eq "work" and emails.value eq "alice@home.example"', {"alice"}),
    ('emails[type eq "work"].value eq "bob@work.example"', {"bob"}),
    ('emails[type eq "work"].value ew "@work.example"', {"alice", "bob", "carol"}),
    ('emails[type eq "home"].value pr', {"alice", "carol"}),
    ('emails[type eq "home"].display pr', set()),
    ('not (emails[type eq "work"])', {"dave", "frank"}),
    ('emails[not (type eq "work")]', {"alice", "bob", "carol"}),
    ('emails[type eq "other" or primary eq true]', {"alice", "bob"}),
    ("emails[primary eq true]", {"alice"}),
    ('emails[primary eq "True"]', {"alice"}),
    ("emails.primary eq false", {"alice", "bob", "carol"}),
    ('emails[display eq null and type eq "other"]', set()),
    ('emails[display eq null and type eq "home"]', {"alice", "carol"}),
    ('phoneNumbers[type eq "work" and value sw "+1 555"]', {"alice"}),
    ('addresses.locality eq "oxford"', {"alice"}),
    ('addresses[type eq "work" and postalCode eq "ox1"]', {"alice"}),
    ('addresses[type eq "home" and postalCode eq "ox1"]', set()),
    ('roles eq "ADMIN"', {"bob"}),
    ("roles pr", {"bob"}),
    ("entitlements pr", set()),
    # a value longer than its 1024-character key
    ('x509Certificates.value ew "aaatail"', {"carol"}),
    ('x509Certificates co "AAAAT"', {"carol"}),
    ('x509Certificates sw "mii"', {"carol"}),
    (f'x509Certificates eq "{LONG_CERT.lower()}"', {"carol"}),
    (f'x509Certificates eq "{LONG_CERT[:-1]}"', set()),
    (f'x509Certificates ne "{LONG_CERT}"', set()),
    (f'x509Certificates sw "{LONG_CERT[:1100]}"', {"carol"}),
    # groups of a member (deleted members' memberships are still there, but not visible)
    ('groups eq "g-admins"', {"alice"}),
    ('groups.value eq "g-staff"', {"alice", "bob"}),
    ('groups.value eq "G-STAFF"', set()),  # ids are caseExact
    ('groups.display eq "ADMINS"', {"alice"}),
    ('groups.display co "100%"', {"alice", "bob"}),
    ('groups.display co "_"', set()),
    ("groups pr", {"alice", "bob"}),
    ("not (groups pr)", {"carol", "dave", "frank"}),
    ('groups[value eq "g-admins" and display eq "Staff 100%"]', set()),
    ('groups[value eq "g-staff" and display eq "Staff 100%"]', {"alice", "bob"}),
    ('groups[display sw "staff"]', {"alice", "bob"}),
    ('groups.type eq "direct"', {"alice", "bob"}),
    ('groups.type eq "indirect"', set()),
    # and / or / not together
    ('title eq "engineer" and not (groups pr)', {"dave"}),
    ('userName eq "bob" or emails.type eq "home"', {"alice", "bob", "carol"}),
    ('not (userName eq "bob" or emails pr)', {"dave", "frank"}),
    ('not (not (userName eq "bob"))', {"bob"}),
    ('userName eq "bob" or userName eq "frank" and active eq false', {"bob"}),
    ('(userName eq "bob" or userName eq "frank") and active eq true', {"frank"}),
    ('emails[type eq "work"] and not (emails[type eq "home"])', {"bob"}),
    ('groups.value eq "g-staff" and not (groups.value eq "g-admins")', {"bob"}),
    # and binds tighter than or: each of these reads differently with the other grouping
    ('userName eq "bob" or userName eq "frank" and active eq true', {"bob", "frank"}),
    ('active eq false and userName eq "frank" or userName eq "carol_x"', {"carol"}),
    ('userName eq "bob" or not (active eq true) and userName eq "frank"', {"bob"}),
    ('not (userName eq "bob") and active eq false or title eq "engineer"', {"alice", "dave"}),
    ('(active eq false and userName eq "frank") or userName eq "carol_x"', {"carol"}),
    ('active eq false and (userName eq "frank" or userName eq "carol_x")', set()),
    # pr on what every row has, what no row has, and what a constant says
    ("meta.resourceType pr", EVERYONE),
    ("not (meta.resourceType pr)", set()),
    ("id pr", EVERYONE),
    ('id ne "nobody"', EVERYONE),
    ("groups.type pr", {"alice", "bob"}),
    ("not (groups.type pr)", {"carol", "dave", "frank"}),
    ("groups.value pr", {"alice", "bob"}),
    ("groups.display pr", {"alice", "bob"}),
    ('groups[type eq "direct" and display eq "admins"]', {"alice"}),
    ('groups[type ne "direct"]', set()),
    ("x509Certificates.value pr", {"carol"}),
    ("addresses pr", {"alice"}),
    ("addresses.postalCode pr", {"alice"}),
    ("addresses.region pr", set()),
    ('addresses[formatted eq null and locality pr]', {"alice"}),
    ("emails.value eq null", {"dave", "frank"}),  # null: no value at all, as unassigned
    ("emails[value pr and display eq null]", {"alice", "bob", "carol"}),
    ("name.givenName pr", {"alice"}),
    ("name.givenName eq null", EVERYONE - {"alice"}),
    # empty strings are unassigned: no comparison reaches them, not even with ""
    ('title eq ""', set()),
    ('title ne ""', {"alice", "bob", "dave"}),
    ('title sw ""', {"alice", "bob", "dave"}),
    ('title ew ""', {"alice", "bob", "dave"}),
    ('title le "zzz"', {"alice", "bob", "dave"}),
    ('not (title lt "zzz")', {"carol", "frank"}),
    ('displayName ne "x"', {"alice"}),
    # booleans the other way round
    ("active ne false", EVERYONE - {"bob"}),
    ('emails[primary ne true]', {"alice", "bob", "carol"}),
    ('emails[primary eq true and type eq "home"]', set()),
]


@pytest.mark.parametrize("text, expected", USER_CASES, ids=[case[0][:70] for case in USER_CASES])
def test_users_where(people: Database, text: str, expected: set[str]) -> None:
    assert user_ids(people, text) == expected


GROUP_CASES = [
    ('displayName eq "admins"', {"g-admins"}),
    ('displayName eq "ADMINS"', {"g-admins"}),
    ('displayName co "100%"', {"g-staff"}),
    ('displayName co "_"', {"g-empty"}),
    ('displayName sw "STAFF"', {"g-staff"}),
    ('displayName gt "b"', {"g-staff", "g-empty"}),
    ('urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Admins"', {"g-admins"}),
    ('externalId eq "AD-1"', {"g-admins"}),
    ('externalId eq "ad-1"', set()),
    ("externalId eq null", {"g-staff", "g-empty"}),
    ('id eq "g-empty"', {"g-empty"}),
    ('meta.created ge "2024-02-01T00:00:00Z"', {"g-staff", "g-empty"}),
    ('meta.resourceType eq "Group"', {"g-admins", "g-staff", "g-empty"}),
    ('members eq "alice"', {"g-admins", "g-staff"}),
    ('members.value eq "bob"', {"g-staff"}),
    ('members.value eq "BOB"', set()),  # caseExact
    ('members.value eq "erin"', set()),  # deleted
    ("members pr", {"g-admins", "g-staff"}),
    ("not (members pr)", {"g-empty"}),
    ('members.display eq "alice liddell"', {"g-admins", "g-staff"}),
    ('members.display eq "BOB"', {"g-staff"}),  # no displayName: the userName
    ('members.display eq "erin"', set()),
    ('members[value eq "bob" and display co "bo"]', {"g-staff"}),
    ('members[value eq "alice" and display eq "bob"]', set()),
    ('members.type eq "User"', {"g-admins", "g-staff"}),
    ('displayName sw "a" or members.value eq "bob"', {"g-admins", "g-staff"}),
    ('not (members.value eq "alice") and displayName pr', {"g-empty"}),
    # filters on groups' members
    ('members ne "alice"', {"g-staff"}),  # a member other than alice (erin is deleted)
    ('members.value gt "b"', {"g-staff"}),
    ('members.value lt "b"', {"g-admins", "g-staff"}),
    ('members.value sw "ERIN"', set()),
    ('members[value eq "alice" or value eq "bob"]', {"g-admins", "g-staff"}),
    ('members[value eq "alice"] and members[value eq "bob"]', {"g-staff"}),
    ('members[value eq "alice" and value eq "bob"]', set()),  # one member must be both
    ('members[type eq "User" and value eq "bob"]', {"g-staff"}),
    ('members[type eq "Group"]', set()),
    ("members.type pr", {"g-admins", "g-staff"}),
    ("members.value pr", {"g-admins", "g-staff"}),
    ("members.display pr", {"g-admins", "g-staff"}),
    ('members.display co "LIDDELL"', {"g-admins", "g-staff"}),
    ('members.display sw "bo"', {"g-staff"}),
    ('members.display ew "ob"', {"g-staff"}),
    ('not (members.display eq "bob")', {"g-admins", "g-empty"}),
    ('members.display eq null', {"g-empty"}),
    ("members eq null", {"g-empty"}),
    ('members[display eq "alice liddell"] and not (members[display eq "bob"])', {"g-admins"}),
    # the other columns of a group, and precedence
    ("meta.resourceType pr", {"g-admins", "g-staff", "g-empty"}),
    ('meta.resourceType eq "User"', set()),
    ("displayName pr", {"g-admins", "g-staff", "g-empty"}),
    ('displayName lt "b"', {"g-admins"}),
    ('displayName ne "ADMINS"', {"g-staff", "g-empty"}),
    ('displayName ew "_GROUP"', {"g-empty"}),
    ("externalId pr", {"g-admins"}),
    ('externalId co "D-"', {"g-admins"}),
    ('id ne "g-empty"', {"g-admins", "g-staff"}),
    ('meta.created lt "2024-02-01T00:00:00Z"', {"g-admins"}),
    ('displayName eq "admins" or displayName eq "staff 100%" and members.value eq "erin"', {"g-admins"}),
    ('displayName eq "staff 100%" or displayName eq "admins" and members.value eq "bob"', {"g-staff"}),
]


@pytest.mark.parametrize("text, expected", GROUP_CASES, ids=[case[0] for case in GROUP_CASES])
def test_groups_where(people: Database, text: str, expected: set[str]) -> None:
    assert group_ids(people, text) == expected


def test_keys_fold_non_ascii_case_on_every_backend(database: Database) -> None:
    """The *_key columns are lowered by Python, so É and é are one even where SQL lower() is ASCII."""
    with database.transaction(write=True) as session:
        session.add(Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example"))
        session.flush()
        zoe = _member("zoe", "ZOË@Example.com", "2024-01-01T00:00:00+00:00",
                      values=[("emails", "Élise.Ünal@Work.example", {"type": "work"})])
        session.add(zoe)
        session.add(Group(id="g-eq", workspace_id=1, display_name="Équipe", display_name_key="équipe"))
        session.flush()
        session.add(Membership(group_id="g-eq", member_id="zoe"))
    assert user_ids(database, 'userName eq "zoë@example.com"') == {"zoe"}
    assert user_ids(database, 'emails eq "ÉLISE.ÜNAL@WORK.EXAMPLE"') == {"zoe"}
    assert user_ids(database, 'emails[type eq "work" and value sw "élise"]') == {"zoe"}
    assert user_ids(database, 'groups.display eq "ÉQUIPE"') == {"zoe"}
    assert group_ids(database, 'displayName eq "équipe"') == {"g-eq"}


COMPILE_ERRORS = [
    (USER_RESOURCE, 'foo eq "x"', "unknown attribute 'foo' (for User resources)"),
    (USER_RESOURCE, 'name.foo eq "x"', "unknown attribute 'name.foo'"),
    (USER_RESOURCE, 'userName.value eq "x"', "unknown attribute 'userName.value'"),
    (USER_RESOURCE, 'members eq "x"', "unknown attribute 'members' (for User resources)"),
    (GROUP_RESOURCE, 'userName eq "x"', "unknown attribute 'userName' (for Group resources)"),
    (GROUP_RESOURCE, f'{E}department eq "x"', "unknown attribute"),
    (USER_RESOURCE, 'emails[foo eq "x"]', "unknown attribute 'foo' in a filter on emails"),
    (USER_RESOURCE, 'emails[type eq "work"].foo pr', "unknown attribute 'foo' in a filter on emails"),
    (USER_RESOURCE, 'emails.foo eq "x"', "unknown attribute 'emails.foo'"),
    (USER_RESOURCE, 'password eq "x"', "password cannot be used in filters"),
    (USER_RESOURCE, "password pr", "password cannot be used in filters"),
    (USER_RESOURCE, "active eq 5", "active is a boolean"),
    (USER_RESOURCE, 'active eq "yes"', "active is a boolean"),
    (USER_RESOURCE, "active gt true", "'gt' cannot compare booleans"),
    (USER_RESOURCE, 'active ge "true"', "'ge' cannot be used with the boolean attribute active"),
    (USER_RESOURCE, 'active co "t"', "'co' cannot be used with the boolean attribute active"),
    (USER_RESOURCE, "emails[primary eq 1]", "emails.primary is a boolean"),
    (USER_RESOURCE, "userName eq 5", "userName is a string"),
    (USER_RESOURCE, "userName eq true", "userName is a string"),
    (USER_RESOURCE, "userName co 5", "'co' needs a string value"),
    (USER_RESOURCE, "userName gt null", "'gt null' is not allowed"),
    (USER_RESOURCE, 'meta.created gt "yesterday"', "'yesterday' is not an ISO 8601 dateTime"),
    (USER_RESOURCE, 'meta.created co "2024"', "'co' cannot be used with the dateTime attribute"),
    (USER_RESOURCE, "meta.created eq 5", "meta.created is a dateTime"),
    (USER_RESOURCE, 'meta.created eq "9999-12-31T23:59:59.999999"', "not an ISO 8601 dateTime"),
    (USER_RESOURCE, 'name eq "x"', "name is complex; filter on a sub-attribute"),
    (USER_RESOURCE, 'meta eq "x"', "meta is complex"),
    (USER_RESOURCE, 'meta.location eq "x"', "meta.location cannot be used in filters"),
    (USER_RESOURCE, 'meta.version eq "W/\\"1\\""', "meta.version cannot be used in filters"),
    (USER_RESOURCE, f"{E}manager.$ref pr", "manager.$ref cannot be used in filters"),
    (USER_RESOURCE, 'groups.$ref eq "x"', "groups.$ref cannot be used in filters"),
    (USER_RESOURCE, 'addresses eq "x"', "filter on a sub-attribute of addresses"),
    (USER_RESOURCE, 'userName[value eq "x"]', "'userName' is not a complex attribute"),
    (USER_RESOURCE, 'emails.value[type eq "x"]', "'emails.value' is not a complex attribute"),
    (GROUP_RESOURCE, "members.$ref pr", "members.$ref cannot be used in filters"),
    (GROUP_RESOURCE, "members[value eq 5]", "members.value is a string"),
]


@pytest.mark.parametrize("resource, text, message", COMPILE_ERRORS,
                         ids=[case[1] for case in COMPILE_ERRORS])
def test_compile_refuses_with_invalid_filter(resource: ResourceType, text: str, message: str) -> None:
    with pytest.raises(ScimError) as caught:
        compile_filter(parse_filter(text), resource)
    assert caught.value.scim_type == "invalidFilter"
    assert message in caught.value.detail


def test_compile_refuses_nested_value_filters_built_by_hand() -> None:
    node = ValuePath("emails", ValuePath("type", P("value")))
    with pytest.raises(ScimError, match="value filters do not nest"):
        compile_filter(node, USER_RESOURCE)


def test_long_chains_and_deep_nesting_run(people: Database) -> None:
    """Neither the compiler, the matcher nor the databases recurse once per term."""
    chain = " or ".join(f'emails.value eq "n{i}@x"' for i in range(130)) + ' or userName eq "bob"'
    assert len(chain) <= 4096
    assert user_ids(people, chain) == {"bob"}
    assert matches(parse_filter(chain.replace("emails.value", "value")), {"userName": "bob"})
    ands = " and ".join(["title pr"] * 300)
    assert len(ands) <= 4096 and user_ids(people, ands) == {"alice", "bob", "dave"}
    deep = "not (" * 19 + 'userName eq "bob"' + ")" * 19  # odd: not bob
    assert user_ids(people, deep) == EVERYONE - {"bob"}
    assert matches(parse_filter(deep), {"userName": "alice"})
    mixed = 'not (title pr and (emails pr or (' * 6 + 'userName eq "bob"' + ")))" * 6
    # f(0) = bob; f(k+1) = not (title pr and (emails pr or f(k))): {carol, frank} for even k >= 2
    assert user_ids(people, mixed) == {"carol", "frank"}


# Each adds exactly one level of nesting around ``{}``, with SQL as deep as we could find.
OUTER_LEVELS = ["not ({})", "title pr and ({})", 'emails[type eq "work"] or ({})',
                'x509Certificates co "a_%" and ({})', "userName eq null or ({})",
                'groups.display co "x" and ({})', "name pr or ({})",
                '({}) and meta.created gt "2024-01-01T00:00:00Z"', 'emails.value ew "x" or ({})']
INNER_LEVELS = ["not ({})", "type pr and ({})", 'value co "%" or ({})', "display eq null or ({})",
                "primary eq true and ({})", '({}) or value ew "x"']


def test_filters_at_the_depth_limit_run_on_the_database(people: Database) -> None:
    """SQLite's parser has a small stack; every filter we accept must still run."""

    @settings(database=None, deadline=None, max_examples=60)
    @given(st.lists(st.sampled_from(OUTER_LEVELS), max_size=MAX_DEPTH - 1),
           st.lists(st.sampled_from(INNER_LEVELS), max_size=MAX_DEPTH - 1))
    def runs(outer: list[str], inner: list[str]) -> None:
        leaf = "emails[{}]".format(_wrap(inner[:MAX_DEPTH - 1 - len(outer)], 'value ew "x"'))
        text = _wrap(outer, leaf)
        assert user_ids(people, text) <= EVERYONE

    runs()
    for level in OUTER_LEVELS:
        user_ids(people, _wrap([level] * (MAX_DEPTH - 1), 'emails[value co "%"]'))
    for level in INNER_LEVELS:
        user_ids(people, "emails[{}]".format(_wrap([level] * (MAX_DEPTH - 1), "type pr")))


def _wrap(levels: list[str], leaf: str) -> str:
    text = leaf
    for level in levels:
        text = level.format(text)
    return text


# -- the two evaluators agree ------------------------------------------------------------------

def _population() -> list[dict[str, Any]]:
    """Users as SCIM documents; the rows below are made from them. ASCII only (SQLite lower())."""
    rng = random.Random(7)
    words = ["Ann", "ann", "BOB", "b_b", "c%d", "", None, "zed", "Ann Lee", "a"]
    users = []
    for index in range(14):
        emails = [
            {"value": f"{rng.choice(['ann', 'Bob', 'x_y', 'p%q'])}{index % 3}@{rng.choice(['w', 'H'])}.example",
             "type": rng.choice(["work", "home", "Work", None]), "display": rng.choice(words),
             "primary": rng.random() < 0.3}
            for _ in range(rng.randrange(3))
        ]
        users.append({
            "id": f"u{index:02}",
            "userName": f"{rng.choice(['ann', 'Bob', 'c_d', 'e%f', 'zed'])}{index}",
            "title": rng.choice(words),
            "displayName": rng.choice(words),
            "nickName": rng.choice(words),
            "active": rng.random() < 0.6,
            "name": {"givenName": rng.choice(words)},
            "emails": emails,
            "groups": [{"value": gid, "display": name} for gid, name in GROUPS if rng.random() < 0.4],
            ENTERPRISE_USER_SCHEMA: {"department": rng.choice(words)},
        })
    return users


GROUPS = [("ga", "Alpha Team"), ("gb", "beta_team"), ("gc", "Gamma 50%")]
POPULATION = _population()
STRING_PATHS = ["userName", "title", "displayName", "nickName", "name.givenName", "emails.value",
                "emails.type", "emails.display", "groups.display", f"{ENTERPRISE}department"]
OPERANDS = sorted({
    piece
    for user in POPULATION
    for text in [user["userName"], user["title"], user["nickName"], *(e["value"] for e in user["emails"])]
    if text
    for piece in (text, text.upper(), text[:2], text[-3:], text[1:4])
} | {"", "%", "_", "a", "Z", "@w.example", "work", "Alpha team", "TEAM", "50%", "b_b", "c%d"})


def _sub_terms() -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(Comparison, st.sampled_from(["value", "type", "display"]),
                  st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "le"]), st.sampled_from(OPERANDS)),
        st.builds(Comparison, st.just("primary"), st.sampled_from(["eq", "ne"]),
                  st.sampled_from([True, False, "True", "false"])),
        st.builds(Comparison, st.sampled_from(["type", "display"]), st.sampled_from(["eq", "ne"]),
                  st.none()),
        st.builds(Present, st.sampled_from(["value", "type", "display"])),
    )


DIFFERENTIAL_TERMS = st.one_of(
    st.builds(Comparison, st.sampled_from(STRING_PATHS),
              st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]),
              st.sampled_from(OPERANDS)),
    st.builds(Comparison, st.sampled_from(STRING_PATHS), st.sampled_from(["eq", "ne"]), st.none()),
    st.builds(Comparison, st.just("active"), st.sampled_from(["eq", "ne"]),
              st.sampled_from([True, False, "true", "FALSE"])),
    st.builds(Present, st.sampled_from(STRING_PATHS + ["emails", "groups", "name"])),
    st.builds(ValuePath, st.just("emails"), logic(_sub_terms())),
)


@pytest.fixture
def population(database: Database) -> Iterator[Database]:
    with database.transaction(write=True) as session:
        session.add(Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example"))
        session.flush()
        session.add_all(Group(id=gid, workspace_id=1, display_name=name, display_name_key=name.lower())
                        for gid, name in GROUPS)
        session.flush()
        for user in POPULATION:
            member = Member(
                id=user["id"], workspace_id=1, user_name=user["userName"],
                user_name_key=user["userName"].lower(), title=user["title"],
                display_name=user["displayName"], nick_name=user["nickName"], active=user["active"],
                given_name=user["name"]["givenName"],
                department=user[ENTERPRISE_USER_SCHEMA]["department"],
            )
            member.values = [
                MemberValue(attribute="emails", position=i, value=e["value"], value_key=e["value"].lower(),
                            type=e["type"], display=e["display"], primary=e["primary"])
                for i, e in enumerate(user["emails"])
            ]
            session.add(member)
            session.flush()
            session.add_all(Membership(group_id=g["value"], member_id=user["id"]) for g in user["groups"])
    yield database


def test_sql_and_python_agree(population: Database) -> None:
    """Random filters: the SQL on both backends selects exactly the users ``matches`` accepts."""

    @settings(database=None, deadline=None, max_examples=250)
    @given(logic(DIFFERENTIAL_TERMS))
    def agree(node: Node) -> None:
        expected = {user["id"] for user in POPULATION if matches(node, user)}
        where = compile_filter(node, USER_RESOURCE)
        with population.transaction() as session:
            found = set(session.scalars(select(Member.id).where(where)))
        assert found == expected, to_text(node)

    agree()


# -- dateTime operands: the exact edges of the unit they stand for -----------------------------
#
# An operand stands for the whole unit of its last digit ("10:00:00Z" is the second
# [10:00:00, 10:00:01), ".250Z" the millisecond [.250, .251)): eq holds inside that window, gt
# after it, lt before it. Each case gives the window by hand, in UTC; the rows sit on both edges
# and one microsecond either side, so a ``<`` that became ``<=`` (or a window one unit off) fails.

def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


MICROSECOND = dt.timedelta(microseconds=1)
DATETIME_WINDOWS = [
    # (operand, first instant it stands for, first instant after it)
    ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00", "2024-05-01T10:00:01"),
    ("2024-05-01T10:00:00", "2024-05-01T10:00:00", "2024-05-01T10:00:01"),  # no offset: UTC
    ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00", "2024-05-01T10:00:01"),
    ("2024-05-01T01:00:00+02:00", "2024-04-30T23:00:00", "2024-04-30T23:00:01"),  # the day before
    ("2024-05-01 10:00:00Z", "2024-05-01T10:00:00", "2024-05-01T10:00:01"),
    ("20240501T100000Z", "2024-05-01T10:00:00", "2024-05-01T10:00:01"),  # basic format
    ("2024-05-01T10:00:00.250Z", "2024-05-01T10:00:00.250", "2024-05-01T10:00:00.251"),
    ("2024-05-01T10:00:00,250Z", "2024-05-01T10:00:00.250", "2024-05-01T10:00:00.251"),
    ("2024-05-01T10:00:00.250000Z", "2024-05-01T10:00:00.250000", "2024-05-01T10:00:00.250001"),
    ("2024-05-01T10:00:00.2Z", "2024-05-01T10:00:00.200", "2024-05-01T10:00:00.300"),
    ("2024-05-01T05:30:00.5-04:30", "2024-05-01T10:00:00.500", "2024-05-01T10:00:00.600"),
    ("2024-05-01T10:00Z", "2024-05-01T10:00:00", "2024-05-01T10:01:00"),  # a minute
    ("2024-05-01T11:00+01:00", "2024-05-01T10:00:00", "2024-05-01T10:01:00"),
    ("2024-05-01T10Z", "2024-05-01T10:00:00", "2024-05-01T11:00:00"),  # an hour
    ("2024-05-01", "2024-05-01T00:00:00", "2024-05-02T00:00:00"),  # a day
    ("2024-12-31T23:59:59.999Z", "2024-12-31T23:59:59.999", "2025-01-01T00:00:00"),  # next year
    ("2024-12-31T23:59:59.999999Z", "2024-12-31T23:59:59.999999", "2025-01-01T00:00:00"),
]
# Every edge and one microsecond either side; a row per instant, named by its position.
INSTANTS = {
    f"t{index:03}": when
    for index, when in enumerate(sorted({
        utc(edge) + shift
        for _, start, end in DATETIME_WINDOWS for edge in (start, end)
        for shift in (-MICROSECOND, dt.timedelta(0), MICROSECOND)
    }))
}
# What each operator means for an instant t and the operand's window [start, end).
DATETIME_SEMANTICS: dict[str, Any] = {
    "eq": lambda t, start, end: start <= t < end,
    "ne": lambda t, start, end: not start <= t < end,
    "gt": lambda t, start, end: t >= end,
    "ge": lambda t, start, end: t >= start,
    "lt": lambda t, start, end: t < start,
    "le": lambda t, start, end: t < end,
}


@pytest.fixture
def instants(database: Database) -> Database:
    """One member created at each instant of INSTANTS (and a group at each, for Groups)."""
    with database.transaction(write=True) as session:
        session.add(Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example"))
        session.flush()
        for name, when in INSTANTS.items():
            session.add(Member(id=name, workspace_id=1, user_name=name, user_name_key=name,
                               created_at=when, modified_at=when + dt.timedelta(days=400)))
            session.add(Group(id=name, workspace_id=1, display_name=name, display_name_key=name,
                              created_at=when, modified_at=when))
    return database


@pytest.mark.parametrize("operand, start, end", DATETIME_WINDOWS, ids=[w[0] for w in DATETIME_WINDOWS])
def test_datetime_operators_at_the_edges_of_the_operand(instants: Database, operand: str,
                                                        start: str, end: str) -> None:
    first, after = utc(start), utc(end)
    inside = {name for name, when in INSTANTS.items() if first <= when < after}
    # The rows really are on the edges: the window's first and last microsecond, and its neighbours.
    assert {INSTANTS[name] for name in inside} >= {first, after - MICROSECOND}
    assert {first - MICROSECOND, after} <= set(INSTANTS.values()) - {INSTANTS[n] for n in inside}
    for op, holds in DATETIME_SEMANTICS.items():
        expected = {name for name, when in INSTANTS.items() if holds(when, first, after)}
        assert user_ids(instants, f'meta.created {op} "{operand}"') == expected, op
        assert group_ids(instants, f'meta.created {op} "{operand}"') == expected, op
        assert user_ids(instants, f'not (meta.created {op} "{operand}")') == set(INSTANTS) - expected, op
        # The Python evaluator (PATCH paths, value filters) draws the same edges.
        assert {name for name, when in INSTANTS.items()
                if match(f'created {op} "{operand}"', {"created": when})} == expected, op


def test_last_modified_is_its_own_column(instants: Database) -> None:
    """meta.lastModified compares members.modified_at (400 days after created_at here)."""
    first = utc("2024-05-01T10:00:00")
    assert user_ids(instants, 'meta.lastModified eq "2025-06-05T10:00:00Z"') == {
        name for name, when in INSTANTS.items() if first <= when < first + dt.timedelta(seconds=1)
    }
    assert user_ids(instants, 'meta.lastModified lt "2025-01-01"') == set()
    assert user_ids(instants, 'meta.created lt "2025-01-01"') == set(INSTANTS) - {
        name for name, when in INSTANTS.items() if when >= utc("2025-01-01T00:00:00")
    }


# -- values around the 1,024 characters of member_values.value_key -----------------------------
#
# value_key holds value.lower()[:1024]: a key as long as that may be cut, and only the whole value
# can say whether a longer operand matches. "Mid-Seam" straddles the cut (characters 1018-1025).

SEAMED = "Qz" * 509 + "Mid-Seam" + "Tail" * 25
LENGTHS = (1000, 1023, 1024, 1025, 1026, len(SEAMED))
# Operands written in another case than the values, so every comparison goes through lowering.
PREFIX_OPERANDS = [SEAMED[:n].upper() for n in (1, 1000, 1022, 1023, 1024, 1025, 1026, 1100, len(SEAMED))]
FRAGMENT_OPERANDS = [
    "MID-SEAM", "mid-sea", "MID-SE", "qzmid-", "d-seamtail", "TAIL", "SEAM" + "TAIL" * 25,
    SEAMED[1000:1030].lower(), SEAMED[2:1100].upper(), SEAMED[-1030:].upper(), SEAMED.upper() + "X",
    "qz" * 509 + "mid-seam", "Qz" * 510, "",
]
STRING_SEMANTICS: dict[str, Any] = {
    "eq": lambda value, operand: value == operand,
    "ne": lambda value, operand: value != operand,
    "co": lambda value, operand: operand in value,
    "sw": lambda value, operand: value.startswith(operand),
    "ew": lambda value, operand: value.endswith(operand),
    "gt": lambda value, operand: value > operand,
    "ge": lambda value, operand: value >= operand,
    "lt": lambda value, operand: value < operand,
    "le": lambda value, operand: value <= operand,
}


def _written_user(session: Any, member_id: str, doc: dict[str, Any]) -> Member:
    """A member written as SCIM writes one (scim/resources.write_user: its keys, its cuts)."""
    member = Member(id=member_id, workspace_id=1, created_at=at("2024-01-01T00:00:00+00:00"),
                    modified_at=at("2024-01-01T00:00:00+00:00"))
    write_user(member, {"schemas": [USER.id], **doc})
    session.add(member)
    return member


@pytest.fixture
def long_values(database: Database) -> Database:
    """Members ``len<n>`` with one certificate each: the first n characters of SEAMED."""
    with database.transaction(write=True) as session:
        session.add(Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example"))
        session.flush()
        for length in LENGTHS:
            member = _written_user(session, f"len{length}", {
                "userName": f"len{length}@acme.test",
                "x509Certificates": [{"value": SEAMED[:length]}],
            })
            # The premise: keys are cut at 1024 and hold the rest of the value no more.
            assert len(member.values[0].value_key) == min(length, 1024)
    return database


@pytest.mark.parametrize("op", list(STRING_SEMANTICS))
def test_values_longer_than_their_key(long_values: Database, op: str) -> None:
    holds = STRING_SEMANTICS[op]
    operands = PREFIX_OPERANDS + ([] if op in ("gt", "ge", "lt", "le") else FRAGMENT_OPERANDS)
    for operand in operands:
        expected = {f"len{n}" for n in LENGTHS if holds(SEAMED[:n].lower(), operand.lower())}
        label = f"{op} {operand[:12]!r}... ({len(operand)} characters)"
        assert user_ids(long_values, f'x509Certificates {op} "{operand}"') == expected, label
        assert user_ids(long_values, f'x509Certificates[value {op} "{operand}"]') == expected, label


def test_long_values_at_each_length_are_told_apart(long_values: Database) -> None:
    """The cases the brief names, spelled out: eq and ne at 1,023, 1,024, 1,025 and more."""
    everyone = {f"len{n}" for n in LENGTHS}
    for length in LENGTHS:
        operand = SEAMED[:length].upper()
        assert user_ids(long_values, f'x509Certificates eq "{operand}"') == {f"len{length}"}
        assert user_ids(long_values, f'x509Certificates ne "{operand}"') == everyone - {f"len{length}"}
        assert user_ids(long_values, f'x509Certificates sw "{operand}"') == {
            f"len{n}" for n in LENGTHS if n >= length}
    # The 1,024 characters a cut key holds, asked for whole: only the value of exactly 1,024 is it.
    assert user_ids(long_values, f'x509Certificates eq "{SEAMED[:1024]}"') == {"len1024"}
    assert user_ids(long_values, f'not (x509Certificates eq "{SEAMED[:1024]}")') == everyone - {"len1024"}
    # Found only past the cut.
    assert user_ids(long_values, 'x509Certificates co "mid-seam"') == {"len1026", f"len{len(SEAMED)}"}
    assert user_ids(long_values, 'x509Certificates ew "MID-SEA"') == {"len1025"}
    assert user_ids(long_values, f'x509Certificates gt "{SEAMED[:1025]}"') == {"len1026", f"len{len(SEAMED)}"}
    assert user_ids(long_values, f'x509Certificates lt "{SEAMED[:1025]}"') == {"len1000", "len1023", "len1024"}


# -- case through the lowered keys: userName by names.key, values and group names by lower() -----

@pytest.fixture
def directory(database: Database) -> Database:
    """Members written as SCIM writes them, with names whose case folds beyond ASCII."""
    with database.transaction(write=True) as session:
        session.add(Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example"))
        session.flush()
        _written_user(session, "strasse", {
            "userName": "Straße@acme.test",
            "emails": [{"value": "no-at-sign", "type": "work"}, {"value": "s@home.test", "type": "home"}],
        })
        _written_user(session, "fullwidth", {
            "userName": "ＦＵＬＬ@acme.test",
            "emails": [{"value": "Full@Acme.TEST", "type": "Work"}],
        })
        _written_user(session, "sisyphus", {
            "userName": "Σίσυφος@acme.test",
            "emails": [{"value": "Σίσυφος@acme.test", "type": "home"}],
        })
        _written_user(session, "dave", {"userName": "Dave@Bücher.test"})
        _written_user(session, "annabel", {"userName": "annabel@acme.test"})
    return database


NAMED = {"strasse", "fullwidth", "sisyphus", "dave", "annabel"}
NAME_CASES = [
    # userName compares its key, names.key: NFKC, case-folded, the domain as its A-label.
    ('userName eq "straße@acme.test"', {"strasse"}),  # casefold: ß is ss; lower() keeps ß
    ('userName eq "STRASSE@ACME.TEST"', {"strasse"}),
    ('userName eq "Straße@acme.test "', {"strasse"}),  # trimmed, as the name was
    ('userName ne "straße@acme.test"', NAMED - {"strasse"}),
    ('not (userName eq "straße@acme.test")', NAMED - {"strasse"}),
    ('userName sw "straße"', {"strasse"}),
    ('userName eq "full@acme.test"', {"fullwidth"}),  # NFKC: full-width letters are letters
    ('userName eq "ｆｕｌｌ@ＡＣＭＥ.test"', {"fullwidth"}),
    ('userName co "ＵＬＬ@"', {"fullwidth"}),
    ('userName eq "ΣΊΣΥΦΟΣ@ACME.TEST"', {"sisyphus"}),
    ('userName eq "σίσυφος@acme.test"', {"sisyphus"}),  # casefold: final sigma is sigma
    ('userName eq "dave@BÜCHER.test"', {"dave"}),
    ('userName eq "DAVE@xn--bcher-kva.test"', {"dave"}),
    ('userName ew "@ACME.TEST"', NAMED - {"dave"}),
    ('userName ge "dave@"', NAMED - {"annabel"}),
    ('userName lt "DAVE@"', {"annabel"}),
    # emails.value compares value_key, value.lower() as SCIM writes it: lower(), not casefold.
    ('emails eq "ΣΊΣΥΦΟΣ@ACME.TEST"', {"sisyphus"}),
    ('emails.value eq "FULL@ACME.TEST"', {"fullwidth"}),
    ('emails.value sw "S@HOME"', {"strasse"}),
    # the complex filter of the brief: one email must be both
    ('emails[type eq "work" and value co "@"]', {"fullwidth"}),
    ('emails[type eq "WORK" and value co "@"]', {"fullwidth"}),  # type: caseExact false
    ('emails.type eq "work" and emails.value co "@"', {"strasse", "fullwidth"}),  # any two
    ('emails[type eq "work"].value co "@"', {"fullwidth"}),
    ('emails[type eq "work" and not (value co "@")]', {"strasse"}),
    ('not (emails[type eq "work" and value co "@"])', NAMED - {"fullwidth"}),
    ('emails[type eq "home" or value co "ACME"]', {"strasse", "fullwidth", "sisyphus"}),
    ('emails[type ne "work"]', {"strasse", "sisyphus"}),
    ('emails[not (type eq "work")] and emails[type eq "work"]', {"strasse"}),
]


@pytest.mark.parametrize("text, expected", NAME_CASES, ids=[case[0] for case in NAME_CASES])
def test_names_compare_by_their_keys(directory: Database, text: str, expected: set[str]) -> None:
    assert user_ids(directory, text) == expected


# A fragment of a userName (co/sw/ew) is folded like a name (NFKC, case-folded) but neither
# trimmed nor read as a domain: it is a piece of a name, not one. (Keys keep an internationalised
# domain as its A-label, so a fragment spelling one in Unicode finds nothing past the "@".)
@pytest.mark.parametrize("text, expected", [
    ('userName co " "', set()),  # no userName holds a space; a trimmed "" would match all
    ('userName ew " acme.test"', set()),
    ('userName sw "annabel@acme.test "', set()),
    ('userName sw "DAVE@"', {"dave"}),
    ('userName ew "@XN--BCHER-KVA.TEST"', {"dave"}),
])
def test_username_fragments_are_not_whole_names(directory: Database, text: str,
                                                expected: set[str]) -> None:
    assert user_ids(directory, text) == expected


def test_compile_refuses_a_resource_type_without_tables() -> None:
    """Only Users and Groups have tables; another resource type is a programming error."""
    device = dataclasses.replace(USER_RESOURCE, name="Device")
    with pytest.raises(ValueError, match="no SQL mapping for the resource type 'Device'"):
        compile_filter(P("userName"), device)
