"""SCIM filters (RFC 7644 section 3.4.2.2): parsed once, then compiled to SQL or matched in Python.

CONTRACT (used by scim/patch.py, scim/app.py and the store):

    parse_filter(text: str) -> Node
        Raises ScimError 400 scimType invalidFilter naming the problem (position, token).
        Positions count characters from 0. Nothing but ScimError escapes, for any input.
    matches(node: Node, element: Mapping[str, Any], *, attribute: Attribute | None = None) -> bool
        Evaluates a value filter (the part inside ``emails[...]``) against one complex value,
        sub-attribute names compared case-insensitively. Used by PATCH paths. Strings compare
        case-insensitively unless ``attribute`` (the schema attribute ``element`` is a value
        of, e.g. Group ``members``) marks the sub-attribute caseExact; ``attribute`` also gives
        sub-attribute types (boolean, dateTime) and makes unknown sub-attributes an error.
    compile_filter(node: Node, resource: ResourceType) -> sqlalchemy ColumnElement[bool]
        An SQL expression over store.models (Member / Group and their child tables) that the
        store runs; never loads rows into Python to filter them. Lives in scim/filter_sql.py.

Semantics shared by both evaluators (RFC 7643 section 2.5: null, "" and [] mean unassigned):
``attr eq null`` is ``not (attr pr)`` and ``attr ne null`` is ``attr pr``; any other operator
with null is invalidFilter. A comparison on an unassigned attribute is false (``ne`` too), so
``not (title eq "x")`` is the way to include members without a title. A multi-valued
attribute matches when any one of its values does. Booleans also accept the strings
"true"/"false" (Entra sends those). A dateTime operand stands for the whole unit of its last
digit: ``meta.created eq "2024-05-01T10:00:00Z"`` matches anything within that second.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Union

from .errors import invalid_filter

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from .schemas import Attribute, ResourceType

Scalar = Union[str, int, float, bool, None]

COMPARISON_OPERATORS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le")
ORDERING_OPERATORS = ("gt", "ge", "lt", "le")
SUBSTRING_OPERATORS = ("co", "sw", "ew")

MAX_FILTER_LENGTH = 4096
# Parentheses, not (...) and [...] together. IdPs send two or three; SQLite's parser stack
# overflows on the SQL of filters some 32 levels deep, so stay well below that.
MAX_DEPTH = 20


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``path op value``; ``path`` as written (maybe URN-qualified, maybe ``name.givenName``)."""

    path: str
    op: str  # one of COMPARISON_OPERATORS, lower case
    value: Scalar


@dataclasses.dataclass(frozen=True)
class Present:
    """``path pr``."""

    path: str


@dataclasses.dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclasses.dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclasses.dataclass(frozen=True)
class Not:
    node: Node


@dataclasses.dataclass(frozen=True)
class ValuePath:
    """``emails[type eq "work" and value co "@example.com"]``: one value satisfies ``filter``.

    Paths inside ``filter`` are sub-attribute names of ``path``. Entra's
    ``emails[type eq "work"].value eq "x"`` parses to
    ``ValuePath("emails", And(Comparison("type","eq","work"), Comparison("value","eq","x")))``.
    """

    path: str
    filter: Node


Node = Union[Comparison, Present, And, Or, Not, ValuePath]


# -- tokenizer ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str  # ( ) [ ] string number word subattr end
    text: str
    pos: int
    value: Scalar = None


_WORD = re.compile(r"[A-Za-z_$][\w$:.\-]*", re.ASCII)
_SUBATTR = re.compile(r"\.[A-Za-z_$][\w$\-]*", re.ASCII)
_NUMBER_RUN = re.compile(r"-?[0-9][\w.+\-]*", re.ASCII)
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)
# An attribute path: optional schema URN prefix, a name, an optional ".subAttribute".
_NAME = r"[A-Za-z$][\w$\-]*"
_PATH = re.compile(rf"(?:urn:[\w.\-:]*:)?{_NAME}(?:\.{_NAME})?", re.ASCII | re.IGNORECASE)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)  # a JSON string; json.loads reads it


def _describe(token: _Token) -> str:
    return "end of filter" if token.kind == "end" else f"{token.text!r} at position {token.pos}"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, length = 0, len(text)
    while pos < length:
        char = text[pos]
        if char.isspace():
            pos += 1
        elif char in "()[]":
            tokens.append(_Token(char, char, pos))
            pos += 1
        elif char == '"':
            if (match := _STRING.match(text, pos)) is None:
                raise invalid_filter(f"unterminated string starting at position {pos}")
            tokens.append(_Token("string", match.group(), pos, _read_string(match.group(), pos)))
            pos = match.end()
        elif match := _NUMBER_RUN.match(text, pos):
            tokens.append(_Token("number", match.group(), pos, _read_number(match.group(), pos)))
            pos = match.end()
        elif match := _WORD.match(text, pos):
            tokens.append(_Token("word", match.group(), pos))
            pos = match.end()
        elif (match := _SUBATTR.match(text, pos)) and tokens and tokens[-1].kind == "]":
            tokens.append(_Token("subattr", match.group(), pos))
            pos = match.end()
        elif char == "'":
            raise invalid_filter(f"unexpected \"'\" at position {pos}: strings use double quotes")
        else:
            raise invalid_filter(f"unexpected character {char!r} at position {pos}")
    tokens.append(_Token("end", "", length))
    return tokens


def _read_string(literal: str, pos: int) -> str:
    try:
        value: str = json.loads(literal, strict=False)  # raw control characters are fine
    except json.JSONDecodeError as exc:
        raise invalid_filter(f"{exc.msg[0].lower()}{exc.msg[1:]} in string at position "
                             f"{pos + exc.pos}") from None
    bad = next((c for c in value if c == "\0" or "\ud800" <= c <= "\udfff"), None)
    if bad is not None:
        raise invalid_filter(f"the string at position {pos} holds {bad!r}, which no value can hold")
    return value


def _read_number(text: str, pos: int) -> int | float:
    match = _JSON_NUMBER.fullmatch(text)
    if match is None:
        raise invalid_filter(f"invalid number {text!r} at position {pos}")
    if not (match.group(1) or match.group(2)):
        return int(text)
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise invalid_filter(f"number {text!r} at position {pos} is out of range")
    return number


# -- parser ------------------------------------------------------------------------------------

def parse_filter(text: str) -> Node:
    """Parse a SCIM filter: ``or`` binds loosest, then ``and``, then ``not``; both group left."""
    if not isinstance(text, str):
        raise invalid_filter("filter must be a string")
    if len(text) > MAX_FILTER_LENGTH:
        raise invalid_filter(
            f"filter is too long ({len(text)} characters; at most {MAX_FILTER_LENGTH})"
        )
    # PostgreSQL refuses NUL in text and UTF-8 has no lone surrogates: no value holds either.
    bad = next((i for i, c in enumerate(text) if c == "\0" or "\ud800" <= c <= "\udfff"), None)
    if bad is not None:
        raise invalid_filter(f"invalid character at position {bad}")
    tokens = _tokenize(text)
    if tokens[0].kind == "end":
        raise invalid_filter("empty filter")
    return _Parser(tokens).parse()


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        self.index += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.lower() in words

    def parse(self) -> Node:
        node = self.or_expression(0, False)
        token = self.peek()
        if token.kind == ")":
            raise invalid_filter(f"unexpected ')' at position {token.pos}")
        if token.kind != "end":
            raise invalid_filter(f"unexpected token {token.text!r} at position {token.pos}")
        return node

    def or_expression(self, depth: int, inside: bool) -> Node:
        node = self.and_expression(depth, inside)
        while self.keyword("or"):
            self.advance()
            node = Or(node, self.and_expression(depth, inside))
        return node

    def and_expression(self, depth: int, inside: bool) -> Node:
        node = self.term(depth, inside)
        while self.keyword("and"):
            self.advance()
            node = And(node, self.term(depth, inside))
        return node

    @staticmethod
    def nested(depth: int, opener: _Token) -> None:
        if depth >= MAX_DEPTH:
            raise invalid_filter(
                f"filter nested too deeply (more than {MAX_DEPTH} levels) at position {opener.pos}"
            )

    def group(self, depth: int, inside: bool) -> Node:
        """``( filter )``, the current token being the ``(``."""
        opener = self.advance()
        self.nested(depth, opener)
        node = self.or_expression(depth + 1, inside)
        closer = self.peek()
        if closer.kind != ")":
            where = "at end of filter" if closer.kind == "end" else f"at position {closer.pos}"
            raise invalid_filter(f"missing ')' {where} (opened at position {opener.pos})")
        self.advance()
        return node

    def term(self, depth: int, inside: bool) -> Node:
        token = self.peek()
        if token.kind == "(":
            return self.group(depth, inside)
        if self.keyword("not"):
            self.advance()
            if self.peek().kind != "(":
                raise invalid_filter(f"expected '(' after 'not' at position {token.pos}")
            return Not(self.group(depth, inside))
        if token.kind != "word" or self.keyword("and", "or"):
            raise invalid_filter(f"expected an attribute path, found {_describe(token)}")
        return self.attribute_expression(depth, inside)

    def attribute_expression(self, depth: int, inside: bool) -> Node:
        path = self.advance()
        if not _PATH.fullmatch(path.text):
            raise invalid_filter(f"invalid attribute path {path.text!r} at position {path.pos}")
        if self.peek().kind != "[":
            return self.operation(path.text)
        opener = self.advance()
        if inside:
            raise invalid_filter(f"unexpected '[' at position {opener.pos}: value filters do not nest")
        self.nested(depth, opener)
        node = self.or_expression(depth + 1, True)
        closer = self.peek()
        if closer.kind != "]":
            where = "at end of filter" if closer.kind == "end" else f"at position {closer.pos}"
            raise invalid_filter(f"missing ']' {where} (opened at position {opener.pos})")
        self.advance()
        if self.peek().kind == "subattr":
            # Entra: emails[type eq "work"].value eq "x" means one email satisfying both.
            node = And(node, self.operation(self.advance().text[1:]))
        return ValuePath(path.text, node)

    def operation(self, path: str) -> Node:
        token = self.advance()
        if token.kind != "word":
            raise invalid_filter(f"expected an operator after {path!r}, found {_describe(token)}")
        op = token.text.lower()
        if op == "pr":
            return Present(path)
        if op not in COMPARISON_OPERATORS:
            raise invalid_filter(f"unknown operator {token.text!r} at position {token.pos}")
        return Comparison(path, op, self.value(op))

    def value(self, op: str) -> Scalar:
        token = self.advance()
        if token.kind in ("string", "number"):
            return token.value
        literals: dict[str, Scalar] = {"true": True, "false": False, "null": None}
        if token.kind == "word" and token.text.lower() in literals:
            return literals[token.text.lower()]
        if token.kind == "end":
            raise invalid_filter(f"expected a value after {op!r} at end of filter")
        raise invalid_filter(
            f"unexpected token {token.text!r} at position {token.pos}: expected a value"
            " (a double-quoted string, a number, true, false or null)"
        )


# -- evaluation helpers shared with the SQL compiler ------------------------------------------

def flatten(node: And | Or) -> list[Node]:
    """The operands of a chain of the same operator, without recursing (chains can be long)."""
    kind = type(node)
    operands: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (And, Or)) and type(current) is kind:
            stack.extend((current.right, current.left))
        else:
            operands.append(current)
    return operands


def as_boolean(value: Any) -> bool | None:
    """A SCIM boolean, or its string form as Entra sends it; None when it is neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


_TIME_PRECISION = re.compile(r"T\d\d(:?\d\d(:?\d\d(?:[.,](\d+))?)?)?", re.IGNORECASE)


def datetime_window(value: Any, label: str) -> tuple[dt.datetime, dt.datetime]:
    """The aware UTC instants [start, end) an ISO 8601 operand stands for, to its precision."""
    if not isinstance(value, str):
        raise invalid_filter(f"{label} is a dateTime; compare it with an ISO 8601 string")
    try:
        start = dt.datetime.fromisoformat(value.strip())
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.timezone.utc)
        start = start.astimezone(dt.timezone.utc)
        match = _TIME_PRECISION.search(value.replace(" ", "T", 1))
        if match is None:  # a date
            step = dt.timedelta(days=1)
        elif match[3]:  # fractional seconds
            step = dt.timedelta(microseconds=10 ** max(0, 6 - len(match[3])))
        else:  # hours, minutes or seconds: as many as the groups matched
            unit = (match[1] is not None) + (match[2] is not None)
            step = dt.timedelta(seconds=(3600, 60, 1)[unit])
        return start, start + step
    except (ValueError, OverflowError):
        raise invalid_filter(f"{value!r} is not an ISO 8601 dateTime (for {label})") from None


def check_operand(op: str, value: Scalar, type_: str | None, label: str) -> None:
    """Reject operator/value pairs no attribute can satisfy, and mismatches with ``type_``."""
    if value is None and op not in ("eq", "ne"):
        raise invalid_filter(f"'{op} null' is not allowed (for {label}); use 'pr' or 'eq null'")
    if op in SUBSTRING_OPERATORS and not isinstance(value, str):
        raise invalid_filter(f"'{op}' needs a string value (for {label})")
    if op in ORDERING_OPERATORS and isinstance(value, bool):
        raise invalid_filter(f"'{op}' cannot compare booleans (for {label})")
    if value is None or type_ is None:
        return
    if type_ == "boolean":
        if op not in ("eq", "ne"):
            raise invalid_filter(f"'{op}' cannot be used with the boolean attribute {label}")
        if as_boolean(value) is None:
            raise invalid_filter(f"{label} is a boolean; compare it with true or false, not {value!r}")
    elif type_ == "dateTime":
        if op in SUBSTRING_OPERATORS:
            raise invalid_filter(f"'{op}' cannot be used with the dateTime attribute {label}")
        datetime_window(value, label)
    elif type_ == "complex":
        raise invalid_filter(f"{label} is complex; filter on one of its sub-attributes")
    elif type_ in ("integer", "decimal"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid_filter(f"{label} is a number; compare it with a number, not {value!r}")
    elif not isinstance(value, str):
        raise invalid_filter(f"{label} is a string; compare it with a quoted string, not {value!r}")


_OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "co": operator.contains, "sw": str.startswith,
    "ew": str.endswith, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
}


def compare(op: str, actual: Any, operand: Scalar, *, case_exact: bool = False,
            type_: str | None = None, label: str = "attribute") -> bool:
    """One assigned value against the operand; values of unrelated types are simply unequal."""
    if type_ == "boolean" or isinstance(actual, bool) or isinstance(operand, bool):
        left, right = as_boolean(actual), as_boolean(operand)
        equal = left is not None and left == right
        return equal if op == "eq" else (not equal if op == "ne" else False)
    if type_ == "dateTime" or isinstance(actual, dt.datetime):
        return _compare_datetime(op, actual, operand, label)
    if isinstance(actual, str) and isinstance(operand, str):
        if not case_exact:
            actual, operand = actual.lower(), operand.lower()
    elif not (isinstance(actual, (int, float)) and isinstance(operand, (int, float))
              and op not in SUBSTRING_OPERATORS):
        return op == "ne"
    return bool(_OPERATIONS[op](actual, operand))


def _compare_datetime(op: str, actual: Any, operand: Scalar, label: str) -> bool:
    start, end = datetime_window(operand, label)
    try:
        when = actual if isinstance(actual, dt.datetime) else dt.datetime.fromisoformat(str(actual))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        when = when.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        return op == "ne"
    inside = start <= when < end
    return {"eq": inside, "ne": not inside, "gt": when >= end, "ge": when >= start,
            "lt": when < start, "le": when < end}.get(op, False)


def is_assigned(value: Any) -> bool:
    """RFC 7643 2.5: null, "" and [] are unassigned, as is a complex value holding only those."""
    if isinstance(value, Mapping):
        return any(_has_value(part) for part in value.values())
    return _has_value(value)


def _has_value(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


# -- Python evaluation -------------------------------------------------------------------------

def matches(node: Node, element: Mapping[str, Any], *, attribute: Attribute | None = None) -> bool:
    """Whether ``element`` (one complex value, e.g. an email) satisfies the filter ``node``."""
    if isinstance(node, (And, Or)):
        results = (matches(part, element, attribute=attribute) for part in flatten(node))
        return all(results) if isinstance(node, And) else any(results)
    if isinstance(node, Not):
        return not matches(node.node, element, attribute=attribute)
    sub = _sub_attribute(attribute, node.path)
    values = [value for value in _lookup(element, node.path) if is_assigned(value)]
    if isinstance(node, ValuePath):
        return any(matches(node.filter, value, attribute=sub)
                   for value in values if isinstance(value, Mapping))
    if isinstance(node, Present):
        return bool(values)
    label = node.path if attribute is None else f"{attribute.name}.{node.path}"
    type_ = sub.type if sub is not None else None
    check_operand(node.op, node.value, type_, label)
    if node.value is None:
        return bool(values) == (node.op == "ne")
    case_exact = sub is not None and sub.case_exact
    return any(compare(node.op, value, node.value, case_exact=case_exact, type_=type_, label=label)
               for value in values)


def _sub_attribute(attribute: Attribute | None, path: str) -> Attribute | None:
    if attribute is None:
        return None
    sub = attribute.sub_attribute(path)
    if sub is None:
        raise invalid_filter(f"unknown attribute {path!r} in a filter on {attribute.name}")
    return sub


def _lookup(element: Any, path: str) -> list[Any]:
    """The values at ``path`` (keys ignore case; dots and schema URNs walk down; lists spread)."""
    found: list[Any] = []
    pending = [(element, path.lower())]
    while pending:
        current, rest = pending.pop()
        if isinstance(current, list):
            pending.extend((item, rest) for item in current)
            continue
        if not isinstance(current, Mapping):
            continue
        schemas = current.get("schemas")
        for schema in schemas if isinstance(schemas, list) else ():
            # A whole resource: its own schema URN may prefix core attribute names.
            prefix = str(schema).lower() + ":"
            if rest.startswith(prefix):
                pending.append((current, rest[len(prefix):]))
        for key, value in current.items():
            name = str(key).lower()
            if name == rest:
                found.extend(value if isinstance(value, list) else [value])
            elif rest.startswith(name) and rest[len(name):len(name) + 1] in (".", ":"):
                pending.append((value, rest[len(name) + 1:]))
    return found


def compile_filter(node: Node, resource: ResourceType) -> ColumnElement[bool]:
    """An SQLAlchemy boolean expression for ``node`` over the store's tables (see filter_sql)."""
    from .filter_sql import compile_filter as compile_sql  # the ORM is only needed here

    return compile_sql(node, resource)
