"""SCIM filters (RFC 7644 section 3.4.2.2): the grammar, parsed once into a tree of nodes.

CONTRACT (used by scim/paths.py, scim/users.py, scim/parameters.py and the store):

    parse_filter(text: str) -> Node
        Raises ScimError 400 scimType invalidFilter naming the problem (position, token).
        Positions count characters from 0. Nothing but ScimError escapes, for any input.

The tree is evaluated in two places that share their semantics (scim/comparisons.py):
    matches (scim/matching.py)
        a value filter (the part inside ``emails[...]``) against one complex value, for PATCH.
    compile_filter (scim/filter_query.py, with store/scim_filters.py for the SQL)
        the condition of a list or search over the store's tables.
This module imports neither: the tree sits below both evaluators.
"""

from __future__ import annotations

import dataclasses
import json
import re

from .errors import invalid_filter
from .schemas import UNSTORABLE

Scalar = str | int | float | bool | None

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


Node = Comparison | Present | And | Or | Not | ValuePath


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
            raise invalid_filter(f'unexpected "\'" at position {pos}: strings use double quotes')
        else:
            raise invalid_filter(f"unexpected character {char!r} at position {pos}")
    tokens.append(_Token("end", "", length))
    return tokens


def _read_string(literal: str, pos: int) -> str:
    try:
        value: str = json.loads(literal, strict=False)  # raw control characters are fine
    except json.JSONDecodeError as exc:
        raise invalid_filter(
            f"{exc.msg[0].lower()}{exc.msg[1:]} in string at position {pos + exc.pos}"
        ) from None
    bad = UNSTORABLE.search(value)
    if bad is not None:
        raise invalid_filter(
            f"the string at position {pos} holds {bad.group()!r}, which no value can hold"
        )
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
    bad = UNSTORABLE.search(text)
    if bad is not None:
        raise invalid_filter(f"invalid character at position {bad.start()}")
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
            raise invalid_filter(
                f"unexpected '[' at position {opener.pos}: value filters do not nest"
            )
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


# -- walking the tree -------------------------------------------------------------------------


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
