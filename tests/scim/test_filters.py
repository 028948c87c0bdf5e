"""SCIM filters: the parser (scim/filters.py), and that no input gets past it or the two
evaluators with anything but invalidFilter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from webwork_sso_middleware.scim.errors import ScimError
from webwork_sso_middleware.scim.filter_query import compile_filter
from webwork_sso_middleware.scim.filters import (
    MAX_DEPTH,
    And,
    Comparison,
    Node,
    Not,
    Or,
    Present,
    ValuePath,
    parse_filter,
)
from webwork_sso_middleware.scim.matching import matches
from webwork_sso_middleware.scim.schemas import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    USER,
    USER_RESOURCE,
)

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


@pytest.mark.parametrize(
    "text, expected",
    [
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
        ('title eq "\\ud83d\\ude00"', C("title", "eq", "\U0001f600")),
        ('title eq "raw é ✓ \U0001f600"', C("title", "eq", "raw é ✓ \U0001f600")),
        ('title eq "a ] [ ) ( and or"', C("title", "eq", "a ] [ ) ( and or")),
        ('name.givenName eq "x"', C("name.givenName", "eq", "x")),
        ("members.$ref pr", P("members.$ref")),
        ('\t title \n eq   "x"  ', C("title", "eq", "x")),
        (f'{ENTERPRISE}manager.value eq "m1"', C(f"{ENTERPRISE}manager.value", "eq", "m1")),
        (f'{CORE_USER}userName sw "j"', C(f"{CORE_USER}userName", "sw", "j")),
        (f"{ENTERPRISE}department pr", P(f"{ENTERPRISE}department")),
    ],
)
def test_terms_and_values(text: str, expected: Node) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
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
        (
            'userName eq "x" and title eq "y" or displayName pr',
            Or(And(C("userName", "eq", "x"), C("title", "eq", "y")), P("displayName")),
        ),
    ],
)
def test_precedence_and_parentheses(text: str, expected: Node) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ('emails[type eq "work"]', ValuePath("emails", C("type", "eq", "work"))),
        (
            'emails[type eq "work" and value co "@x"]',
            ValuePath("emails", And(C("type", "eq", "work"), C("value", "co", "@x"))),
        ),
        (
            'emails[not (type eq "work") or primary eq true]',
            ValuePath("emails", Or(Not(C("type", "eq", "work")), C("primary", "eq", True))),
        ),
        ('emails[(type eq "work")]', ValuePath("emails", C("type", "eq", "work"))),
        (
            'emails[type eq "work"].value eq "x"',
            ValuePath("emails", And(C("type", "eq", "work"), C("value", "eq", "x"))),
        ),
        (
            'emails[type eq "work"].value pr',
            ValuePath("emails", And(C("type", "eq", "work"), P("value"))),
        ),
        (
            'emails[type eq "work" or type eq "home"].display co "a"',
            ValuePath(
                "emails",
                And(Or(C("type", "eq", "work"), C("type", "eq", "home")), C("display", "co", "a")),
            ),
        ),
        (
            f'{CORE_USER}emails[type eq "work"]',
            ValuePath(f"{CORE_USER}emails", C("type", "eq", "work")),
        ),
        (
            'userName eq "a" and emails[type eq "work"] or groups pr',
            Or(
                And(C("userName", "eq", "a"), ValuePath("emails", C("type", "eq", "work"))),
                P("groups"),
            ),
        ),
        ('not (emails[value ew "]"])', Not(ValuePath("emails", C("value", "ew", "]")))),
    ],
)
def test_value_paths(text: str, expected: Node) -> None:
    assert parse_filter(text) == expected


# -- parser: what it refuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
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
        (
            'userName eq "\\ud800"',
            "the string at position 12 holds '\\ud800', which no value can hold",
        ),
        ('userName eq "\\udc00\\ud800"', "holds '\\udc00'"),
        ('userName eq "\\ud800\\u0041"', "holds '\\ud800'"),
        ('userName eq "a\\u0000"', "the string at position 12 holds '\\x00'"),
        ("userName eq 'x'", 'unexpected "\'" at position 12: strings use double quotes'),
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
        ("emails[type[value pr]]", "unexpected '[' at position 11: value filters do not nest"),
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
    ],
)
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
    assert (
        "nested too deeply" in invalid("(" * MAX_DEPTH + "emails[type pr]" + ")" * MAX_DEPTH).detail
    )


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
    "(",
    ")",
    "[",
    "]",
    "not",
    "and",
    "or",
    "pr",
    "eq",
    "ne",
    "co",
    "sw",
    "ew",
    "gt",
    "ge",
    "lt",
    "le",
    "EQ",
    "Not",
    '"x"',
    '"a\\"b"',
    '"\\u00e9"',
    '"\\ud83d"',
    '"',
    "\\",
    "true",
    "null",
    "False",
    "5",
    "-1.5e2",
    "01",
    "userName",
    "title",
    "active",
    "emails",
    "emails.type",
    "name.givenName",
    "name",
    "type",
    "value",
    "primary",
    ".value",
    "groups",
    "members",
    "meta.created",
    '"2024-01-01T00:00:00Z"',
    f"{ENTERPRISE}manager.value",
    "password",
    "foo",
    "meta.version",
    "x509Certificates",
    "addresses",
    "$ref",
    ":",
    ".",
    "'",
    "urn:",
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
    for element, attribute in (
        ({"type": "work", "value": "x", "primary": "True"}, None),
        ({"type": "work", "value": "x", "primary": True}, emails),
    ):
        try:
            assert matches(node, element, attribute=attribute) in (True, False)
        except ScimError as exc:
            assert exc.scim_type == "invalidFilter"


# A printer, to check that parse_filter reads back any tree it could have produced.
def to_text(node: Node) -> str:
    if isinstance(node, Comparison):
        return (
            f"{node.path} {node.op} {json.dumps(node.value, ensure_ascii=len(node.path) % 2 == 0)}"
        )
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
    return st.recursive(
        terms,
        lambda inner: st.one_of(
            st.builds(And, inner, inner), st.builds(Or, inner, inner), st.builds(Not, inner)
        ),
        max_leaves=8,
    )


STRINGS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
SCALARS = st.one_of(
    STRINGS,
    st.booleans(),
    st.none(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
)
SUB_TERMS = st.one_of(
    st.builds(
        Comparison,
        st.sampled_from(["type", "value", "Primary", "$ref"]),
        st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]),
        SCALARS,
    ),
    st.builds(Present, st.sampled_from(["display", "value"])),
)
TERMS = st.one_of(
    st.builds(
        Comparison,
        st.sampled_from(
            [
                "userName",
                "name.givenName",
                f"{ENTERPRISE}manager.value",
                "x-y_z",
                "a1",
                "URN:X:title",
            ]
        ),
        st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]),
        SCALARS,
    ),
    st.builds(Present, st.sampled_from(["title", "emails.value", "members.$ref"])),
    st.builds(ValuePath, st.sampled_from(["emails", f"{CORE_USER}addresses"]), logic(SUB_TERMS)),
)


@QUICK
@given(logic(TERMS))
def test_parse_reads_back_printed_trees(node: Node) -> None:
    text = to_text(node)
    assume(depth(node) < 48 and len(text) <= 4096)
    assert parse_filter(text) == node
