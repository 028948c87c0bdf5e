"""SCIM under bad input: property tests through the whole middleware, on the real store.

Hypothesis generates filters (grammar-aware, then mutated, plus plain junk), PATCH bodies
(operations in any case, paths with filters and URNs, values of every JSON type), resource
bodies and list parameters, and sends them through WebTest to one middleware per test (one
database per hypothesis run, populated by :class:`~.scim_support.World`). For every answer:

* never a 500, never a traceback, never an error in the log;
* every error is the SCIM Error message, ``status`` a string, and a 400 carries the RFC 7644
  scimType its cause calls for (invalidFilter for a filter, whatever the endpoint);
* a rejected write leaves the resource exactly as it was (GET before == GET after), an
  accepted one is stored as answered, raises ``meta.version`` and writes one audit event
  exactly when the document changed;
* the store's invariants hold after every example (:meth:`World.check_invariants`): userName
  unique per workspace ignoring case, memberships only between live rows of one workspace.

Oversized bodies get 413, with Content-Length, with a lying one, and chunked over real HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.scim.schemas import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_SCHEMA,
    LIST_RESPONSE,
    PATCH_OP,
    SEARCH_REQUEST,
    USER_SCHEMA,
)

from .scim_support import (
    ErrorLog,
    World,
    check_answer,
    error_log,
    full_user,
    new_middleware,
    version_of,
    without_meta,
)

# Hypothesis prints nested strategies when it retries a draw; the prints are long, not wrong.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

ENT = ENTERPRISE_USER_SCHEMA
# A longer campaign: WEBWORK_SSO_FUZZ_EXAMPLES=5000 (each test then takes minutes).
EXAMPLES = int(os.environ.get("WEBWORK_SSO_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 200,
    deadline=None,
    database=None,
    # One middleware and database serve a whole run: that is the point, not an accident.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
READS = settings(FUZZ, max_examples=EXAMPLES or 300)  # one read per example: cheap


@pytest.fixture
def world(middleware: SSOMiddleware) -> World:
    return World(middleware)


@pytest.fixture
def errors() -> Iterator[ErrorLog]:
    yield from error_log()


# -- strategies: text and JSON --------------------------------------------------------------


def mix(*weighted: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``one_of`` with weights. (``one_of`` drops a strategy listed twice: no weighting.)"""
    options = [strategy for weight, strategy in weighted for _ in range(weight)]
    # deferred: a short repr (hypothesis prints strategies, and these nest deeply)
    return st.deferred(lambda: st.sampled_from(range(len(options))).flatmap(options.__getitem__))


NASTY = st.sampled_from(
    [
        "\x00",
        "\ud800",
        "\udfff",
        "\u0130",
        "\u00df",
        "\n",
        '"',
        "\\",
        "[",
        "]",
        "(",
        ")",
        "%",
        "_",
        "'",
        "\u202e",
        "\U0001f600",
        " ",
        ".",
        ":",
        "\ufeff",
    ]
)
# Not st.text(one_of(...)): hypothesis then favours plain ASCII and the rest almost never comes.
CHARS = mix((6, st.characters()), (1, st.characters(categories=["Cs"])), (2, NASTY))
TEXT = st.lists(CHARS, max_size=12).map("".join)  # anything, also what no store can hold
NICE = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20)
KNOWN = st.sampled_from(
    [
        "ada@acme.test",
        "ADA@ACME.TEST",
        "bob@acme.test",
        "carol@Acme.Test",
        "Engineering",
        "engineering",
        "SALES",
        "{{u0}}",
        "{{u1}}",
        "{{u3}}",
        "{{g0}}",
        "{{deleted_user}}",
        "{{beta_user}}",
        "{{beta_group}}",
        "{{unknown}}",
        "work",
        "home",
        "WORK",
        "True",
        "false",
        "2024-05-01T10:00:00Z",
        "User",
        "direct",
        "ext-0",
        "",
        " ",
        "m-1",
        "Engineer",
        "R&D",
    ]
)
LONG = st.sampled_from([("x", 255), ("x", 256), ("\u0130", 200), ("a", 1025), ("y", 70_000)]).map(
    lambda spec: spec[0] * spec[1]
)  # built, not listed: hypothesis prints strategies
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, 1e300, -0.0, 0.5]),
)
STRINGS = mix((4, NICE), (3, KNOWN), (2, TEXT), (1, LONG))
SCALARS = mix((1, st.none()), (1, st.booleans()), (1, NUMBERS), (6, STRINGS))


def mangle(name: str, bits: int) -> str:
    """``name`` with the case of some letters flipped (SCIM names ignore case)."""
    return "".join(c.swapcase() if bits >> (i % 32) & 1 else c for i, c in enumerate(name))


def any_case(names: list[str]) -> st.SearchStrategy[str]:
    plain = st.sampled_from(names)
    return mix((2, plain), (1, st.builds(mangle, plain, st.integers(0, 2**32 - 1))))


USER_ATTRIBUTES = [
    "userName",
    "name",
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "active",
    "password",
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "groups",
    "entitlements",
    "roles",
    "x509Certificates",
    "externalId",
    "id",
    "meta",
    "schemas",
]
USER_STRING_PATHS = [
    "userName",
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "locale",
    "preferredLanguage",
    "timezone",
    "externalId",
    "name.givenName",
    "name.familyName",
    "name.formatted",
    "name.honorificPrefix",
    f"{USER_SCHEMA}:title",
    f"{USER_SCHEMA}:name.givenName",
]
USER_SUB_PATHS = [
    "name.givenName",
    "name.familyName",
    "name.formatted",
    "name.honorificPrefix",
    "emails.value",
    "emails.type",
    "emails.primary",
    "emails.display",
    "phoneNumbers.value",
    "addresses.locality",
    "addresses.postalCode",
    "addresses.primary",
    "groups.value",
    "meta.version",
    "meta.created",
    "meta.lastModified",
    "meta.resourceType",
    "name.nosuch",
    "emails.nosuch",
    "manager.value",
    "userName.x",
]
ENTERPRISE_STRINGS = ["employeeNumber", "costCenter", "organization", "division", "department"]
ENTERPRISE_ATTRIBUTES = ENTERPRISE_STRINGS + [
    "manager",
    "manager.value",
    "manager.displayName",
    "manager.$ref",
]
MULTI_VALUED = [
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "entitlements",
    "roles",
    "x509Certificates",
]
VALUE_SUBS = ["value", "type", "primary", "display", "$ref", "locality", "nosuch"]
GROUP_ATTRIBUTES = [
    "displayName",
    "members",
    "externalId",
    "id",
    "meta",
    "schemas",
    "members.value",
    "members.display",
    "members.type",
    "members.$ref",
    "meta.version",
]

USER_KEYS = mix(
    (4, any_case(USER_ATTRIBUTES)),
    (1, any_case(USER_SUB_PATHS)),
    (
        1,
        st.sampled_from(
            [f"{ENT}:{a}" for a in ENTERPRISE_ATTRIBUTES]
            + [f"{USER_SCHEMA}:{a}" for a in USER_ATTRIBUTES[:6]]
            + [ENT, ENT.upper(), "urn:example:custom:1.0:User"]
        ),
    ),
    (1, TEXT),
)
GROUP_KEYS = mix(
    (4, any_case(GROUP_ATTRIBUTES)), (1, st.just(f"{GROUP_SCHEMA}:displayName")), (1, TEXT)
)


def json_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Any JSON value; a quarter are lists or objects (of 1.5 values on average: finite)."""
    value: st.SearchStrategy[Any] = st.deferred(
        lambda: mix(
            (6, SCALARS),
            (1, st.lists(value, max_size=3)),
            (1, st.dictionaries(keys, value, max_size=3)),
        )
    )
    return value


USER_JSON = json_values(USER_KEYS)
GROUP_JSON = json_values(GROUP_KEYS)

VALUE_TYPES = mix(
    (4, st.sampled_from(["work", "home", "other", "mobile"])),
    (1, any_case(["WORK", "Home"])),
    (1, TEXT),
    (1, SCALARS),
)
MULTI_VALUE = st.fixed_dictionaries(
    {"value": mix((4, NICE), (2, KNOWN), (1, SCALARS))},
    optional={
        "type": VALUE_TYPES,
        "primary": mix((4, st.booleans()), (1, st.sampled_from(["true", "False", None, 1]))),
        "display": mix((3, NICE), (1, SCALARS)),
        "Value": KNOWN,
    },
)
MULTI_VALUES = mix(
    (5, st.lists(MULTI_VALUE, max_size=3)), (1, MULTI_VALUE), (1, st.lists(SCALARS, max_size=2))
)
ADDRESS = st.fixed_dictionaries(
    {},
    optional={
        "streetAddress": NICE,
        "locality": mix((3, NICE), (1, SCALARS)),
        "postalCode": NICE,
        "country": mix((3, st.sampled_from(["US", "GB", "DE"])), (1, TEXT)),
        "type": VALUE_TYPES,
        "primary": st.booleans(),
        "formatted": STRINGS,
    },
)
NAME = st.fixed_dictionaries(
    {},
    optional={
        "givenName": STRINGS,
        "familyName": STRINGS,
        "formatted": STRINGS,
        "middleName": SCALARS,
        "nosuch": SCALARS,
    },
)
MANAGER = mix(
    (
        2,
        st.fixed_dictionaries(
            {"value": st.sampled_from(["{{u1}}", "{{beta_user}}"])},
            optional={"displayName": NICE, "$ref": NICE},
        ),
    ),
    (1, st.sampled_from(["{{u1}}", "m-2"])),
    (1, SCALARS),
)
ENTERPRISE_OBJECT = st.fixed_dictionaries(
    {}, optional={**{name: STRINGS for name in ENTERPRISE_STRINGS}, "manager": MANAGER}
)
ACTIVE = mix((3, st.booleans()), (1, st.sampled_from(["True", "false", "TRUE", "yes", 1, None])))
USER_NAMES = mix(
    (3, st.builds(lambda s: f"{s}@acme.test", st.uuids().map(lambda u: u.hex[:10]))),
    (2, KNOWN),
    (1, STRINGS),
)

# (path, value) pairs that make sense together: most of these should be accepted.
USER_PAIR_PARTS = (
    (6, st.tuples(any_case(USER_STRING_PATHS), STRINGS)),
    (2, st.tuples(st.just("userName"), USER_NAMES)),
    (2, st.tuples(any_case(["active"]), ACTIVE)),
    (3, st.tuples(any_case(MULTI_VALUED), MULTI_VALUES)),
    (1, st.tuples(any_case(["addresses"]), st.lists(ADDRESS, max_size=2))),
    (
        2,
        st.tuples(
            st.builds(
                '{}[type eq "{}"].value'.format,
                st.sampled_from(MULTI_VALUED),
                st.sampled_from(["work", "home", "WORK", "fax"]),
            ),
            STRINGS,
        ),
    ),
    (
        1,
        st.tuples(
            st.builds(
                '{}[value eq "{}"]'.format,
                st.sampled_from(MULTI_VALUED),
                mix((1, KNOWN), (1, NICE)),
            ),
            MULTI_VALUE,
        ),
    ),
    (1, st.tuples(st.sampled_from(['emails[type eq "work"].primary', "emails.primary"]), ACTIVE)),
    (2, st.tuples(any_case(["name"]), NAME)),
    (3, st.tuples(st.sampled_from([f"{ENT}:{a}" for a in ENTERPRISE_STRINGS]), STRINGS)),
    (1, st.tuples(st.sampled_from([f"{ENT}:manager", f"{ENT}:manager.value"]), MANAGER)),
    (1, st.tuples(st.sampled_from([ENT, ENT.lower()]), ENTERPRISE_OBJECT)),
    (
        1,
        st.tuples(
            st.sampled_from(["id", "meta.version", "groups", "meta", "password", "schemas"]),
            SCALARS,
        ),
    ),
)
USER_PAIRS = mix(*USER_PAIR_PARTS)
USER_OBJECTS = st.dictionaries(  # pathless values: objects of attributes
    mix(
        (4, any_case(USER_STRING_PATHS[:10])),
        (1, st.sampled_from(["active", "name", "emails", ENT, "password", "id"])),
        (1, USER_KEYS),
    ),
    mix((4, STRINGS), (1, NAME), (1, ENTERPRISE_OBJECT), (1, MULTI_VALUES), (1, USER_JSON)),
    min_size=1,
    max_size=3,
)


# -- strategies: filters --------------------------------------------------------------------

COMPARISON_OPERATORS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
ORDERING = ["eq", "ne", "gt", "ge", "lt", "le"]
OPERATORS = mix(
    (6, any_case(COMPARISON_OPERATORS)), (1, st.sampled_from(["=", "==", "like", "pr", "in", ""]))
)
DATES = st.sampled_from(
    [
        "2024-05-01",
        "2024-05-01T10:00",
        "2024-05-01T10:00:00Z",
        "2030-01-01T00:00:00.123+02:00",
        "1970-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00+01:00",
        "garbage",
    ]
)
FILTER_STRINGS = mix(
    (3, KNOWN),
    (3, NICE),
    (1, TEXT),
    (1, st.sampled_from(["%", "_", "a%b", "@acme", ".test", "\\"])),
)


def quoted(strings: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return mix(
        (3, st.builds(json.dumps, strings)),
        (1, st.builds(lambda s: json.dumps(s, ensure_ascii=False), strings)),
    )


LITERALS = mix(
    (4, quoted(FILTER_STRINGS)),
    (1, st.builds(str, NUMBERS)),
    (1, any_case(["true", "false", "null"])),
    (
        1,
        st.sampled_from(
            [
                "1e999",
                "01",
                "-",
                "1.",
                "0x10",
                "'ada'",
                '"unterminated',
                "ada",
                "[]",
                '"\\ud800"',
                '"\\u0000"',
                '"\\x"',
            ]
        ),
    ),
)
FILTER_ATTRIBUTES = {
    "Users": {
        "string": [
            "userName",
            "name.givenName",
            "name.familyName",
            "displayName",
            "title",
            "externalId",
            "id",
            "emails",
            "emails.value",
            "emails.type",
            "phoneNumbers.value",
            "addresses.locality",
            "groups",
            "groups.value",
            "groups.display",
            f"{ENT}:department",
            f"{ENT}:manager.value",
            f"{ENT}:employeeNumber",
            f"{USER_SCHEMA}:userName",
            "meta.resourceType",
            "x509Certificates.value",
            "roles.value",
        ],
        "boolean": ["active", "emails.primary", "addresses.primary"],
        "multi": MULTI_VALUED + ["groups"],
        "wrong": [
            "members",
            "members.value",
            "password",
            "meta",
            "name",
            "meta.version",
            "nosuch",
            "emails.nosuch",
            "a.b.c",
            f"{ENT}:manager",
            "urn:x:y:title",
            f"{GROUP_SCHEMA}:displayName",
        ],
    },
    "Groups": {
        "string": [
            "displayName",
            "externalId",
            "id",
            "members",
            "members.value",
            "members.display",
            "members.type",
            f"{GROUP_SCHEMA}:displayName",
            "meta.resourceType",
        ],
        "boolean": [],
        "multi": ["members"],
        "wrong": [
            "userName",
            "emails",
            "active",
            "meta",
            "nosuch",
            "members.nosuch",
            "meta.version",
            "groups",
            f"{USER_SCHEMA}:userName",
        ],
    },
}


def _sub_terms() -> st.SearchStrategy[str]:
    """Terms inside ``attr[...]``: sub-attribute names."""
    return mix(
        (
            4,
            st.builds(
                "{} {} {}".format,
                any_case(["value", "display", "type"]),
                any_case(COMPARISON_OPERATORS),
                quoted(FILTER_STRINGS),
            ),
        ),
        (1, st.builds("primary {} {}".format, any_case(["eq", "ne"]), ACTIVE.map(json.dumps))),
        (2, st.builds("{} pr".format, any_case(["value", "display", "type", "primary"]))),
        (1, st.builds("{} {} {}".format, any_case(VALUE_SUBS), OPERATORS, LITERALS)),
    )


def _logic(terms: st.SearchStrategy[str], leaves: int = 5) -> st.SearchStrategy[str]:
    return st.recursive(
        terms,
        lambda inner: mix(
            (2, st.builds("{} and {}".format, inner, inner)),
            (2, st.builds("{} or {}".format, inner, inner)),
            (1, st.builds("{} {} {}".format, inner, any_case(["and", "or"]), inner)),
            (2, st.builds("not ({})".format, inner)),
            (2, st.builds("({})".format, inner)),
        ),
        max_leaves=leaves,
    )


VALUE_FILTERS = _logic(_sub_terms(), 3)


def _terms(resource: str) -> st.SearchStrategy[str]:
    names = FILTER_ATTRIBUTES[resource]
    strings = any_case(names["string"])
    terms = [
        (
            6,
            st.builds(
                "{} {} {}".format, strings, any_case(COMPARISON_OPERATORS), quoted(FILTER_STRINGS)
            ),
        ),
        (2, st.builds("{} pr".format, any_case(names["string"] + names["boolean"]))),
        (
            2,
            st.builds(
                "{} {} {}".format,
                any_case(["meta.created", "meta.lastModified"]),
                any_case(ORDERING),
                quoted(DATES),
            ),
        ),
        (2, st.builds("{}[{}]".format, any_case(names["multi"]), VALUE_FILTERS)),
        (
            1,
            st.builds(
                "{}[{}].{} {} {}".format,
                st.sampled_from(names["multi"]),
                VALUE_FILTERS,
                any_case(VALUE_SUBS),
                OPERATORS,
                LITERALS,
            ),
        ),
        (1, st.builds("{} {} {}".format, any_case(names["wrong"]), OPERATORS, LITERALS)),
        (
            2,
            st.builds(
                "{} {} {}".format, any_case(names["string"] + names["boolean"]), OPERATORS, LITERALS
            ),
        ),
    ]
    if names["boolean"]:
        terms.append(
            (
                2,
                st.builds(
                    "{} {} {}".format,
                    any_case(names["boolean"]),
                    any_case(["eq", "ne"]),
                    ACTIVE.map(json.dumps),
                ),
            )
        )
    return mix(*terms)


FILTER_SOUP = st.sampled_from(
    [
        "(",
        ")",
        "[",
        "]",
        "not",
        "and",
        "or",
        "pr",
        "eq",
        '"x"',
        '"',
        "\\",
        ".",
        ":",
        "'",
        "userName",
        "emails",
        "type",
        "value",
        "true",
        "null",
        "5",
        " ",
        "  ",
        "\t",
        "\x00",
        "\ud800",
        "]]",
        "[[",
        "((",
        "))",
    ]
)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A filter with a few random characters inserted, deleted or the end cut off."""
    text = draw(base)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "cut"]))
        if kind == "insert":
            text = text[:at] + draw(FILTER_SOUP) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 4)) :]
        else:
            text = text[:at]
    return text


def filters(resource: str) -> st.SearchStrategy[str]:
    terms = _terms(resource)
    expressions = _logic(terms)
    return mix(
        (12, expressions),
        (3, mutated(expressions)),
        (1, st.builds(lambda e, n: "(" * n + e + ")" * n, terms, st.integers(15, 30))),
        (1, st.builds(lambda e, n: " or ".join([e] * n), terms, st.integers(2, 400))),
        (1, st.lists(CHARS, max_size=60).map("".join)),
        (1, st.builds("".join, st.lists(FILTER_SOUP, max_size=20))),
    )


FILTERS = {"Users": filters("Users"), "Groups": filters("Groups")}


# -- strategies: PATCH --------------------------------------------------------------------

JUNK_PATHS = mix(
    (2, TEXT),
    (
        3,
        st.sampled_from(
            [
                "",
                " ",
                "emails[",
                'emails[type eq "work"',
                "emails]",
                'emails[type eq "work"]]',
                'emails[type eq "work"].nosuch',
                'name[givenName eq "x"]',
                "emails..value",
                ".",
                "urn:",
                f"{ENT}:",
                f"{ENT}:nosuch",
                USER_SCHEMA,
                GROUP_SCHEMA,
                ENT,
                'members[value eq "{{u0}}"]',
                'emails[value eq "a"][type eq "b"]',
                "emails[not(type pr)]",
                'emails[type eq "work"].value.x',
                "userName.x",
                "name.givenName.x",
                "meta.version",
                'emails[value eq "\\u0000"]',
            ]
        ),
    ),
    (2, st.builds("{}[{}]".format, any_case(MULTI_VALUED + ["members", "name"]), VALUE_FILTERS)),
)
OPS = mix(
    (19, any_case(["add", "replace", "remove"])),
    (1, st.sampled_from(["move", "", "delete", None, 1, ["add"]])),
)


@st.composite
def operations(
    draw: st.DrawFn,
    pairs: st.SearchStrategy[tuple[str, Any]],
    paths: st.SearchStrategy[str],
    values: st.SearchStrategy[Any],
    objects: st.SearchStrategy[Any],
) -> Any:
    """One operation: mostly a sensible (path, value) pair under any op, else mixed up."""
    if draw(st.sampled_from(range(40))) == 0:
        return draw(SCALARS)  # not an object at all
    op = draw(OPS)
    shape = draw(
        st.sampled_from(["pair"] * 6 + ["pathless"] * 2 + ["mixed", "junk path", "no value"])
    )
    operation: dict[str, Any] = {draw(any_case(["op"])): op}
    path_key, value_key = draw(any_case(["path"])), draw(any_case(["value"]))
    if shape == "pair":
        path, value = draw(pairs)
    elif shape == "pathless":
        path, value = None, draw(objects)
    elif shape == "mixed":
        path, value = draw(paths), draw(values)
    elif shape == "junk path":
        path, value = draw(mix((3, JUNK_PATHS), (1, SCALARS))), draw(values)
    else:
        path, value = draw(paths), None
    if path is not None:
        operation[path_key] = path
    if shape != "no value" and not (
        isinstance(op, str) and op.lower() == "remove" and draw(st.booleans())
    ):
        operation[value_key] = value
    return operation


def patch_bodies(
    ops: st.SearchStrategy[Any], junk: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    proper = st.builds(
        lambda schemas, key, listed: {**schemas, key: listed},
        mix(
            (6, st.just({"schemas": [PATCH_OP]})),
            (2, st.just({})),
            (1, st.just({"schemas": "junk"})),
        ),
        any_case(["Operations"]),
        mix((38, st.lists(ops, min_size=1, max_size=3)), (1, SCALARS), (1, st.just([]))),
    )
    return mix((19, proper), (1, junk))


USER_PATHS = mix(
    (4, st.builds(lambda pair: pair[0], USER_PAIRS)),
    (1, any_case(USER_ATTRIBUTES)),
    (1, any_case(USER_SUB_PATHS)),
    (1, JUNK_PATHS),
)
USER_VALUES = mix(
    (4, st.builds(lambda pair: pair[1], USER_PAIRS)), (1, USER_JSON), (1, USER_OBJECTS)
)
USER_PATCHES = patch_bodies(
    operations(USER_PAIRS, USER_PATHS, USER_VALUES, USER_OBJECTS), USER_JSON
)

MEMBER_IDS = mix(
    (8, st.sampled_from(["{{u0}}", "{{u1}}", "{{u2}}", "{{u3}}"])),
    (2, st.sampled_from(["{{deleted_user}}", "{{beta_user}}", "{{g0}}", "{{unknown}}", "{{U0}}"])),
    (1, TEXT),
    (1, SCALARS),
)
MEMBER = st.fixed_dictionaries(
    {"value": MEMBER_IDS},
    optional={
        "type": mix((4, st.just("User")), (1, st.sampled_from(["user", "Group", "direct", None]))),
        "display": mix((3, NICE), (1, SCALARS)),
        "$ref": NICE,
        "VALUE": MEMBER_IDS,
    },
)
MEMBER_LISTS = mix(
    (8, st.lists(MEMBER, max_size=3)), (1, st.lists(GROUP_JSON, max_size=2)), (1, MEMBER)
)
GROUP_NAMES = mix(
    (4, st.uuids().map(lambda u: f"G-{u.hex[:10]}")),
    (2, st.sampled_from(["Sales", "SALES", "engineering", "Everyone "])),
    (2, STRINGS),
)
GROUP_PAIR_PARTS = (
    (6, st.tuples(any_case(["members", f"{GROUP_SCHEMA}:members"]), MEMBER_LISTS)),
    (
        4,
        st.tuples(
            st.builds(
                'members[value eq "{}"]'.format, MEMBER_IDS.filter(lambda v: isinstance(v, str))
            ),
            mix((3, st.none()), (1, MEMBER)),
        ),
    ),
    (
        1,
        st.tuples(st.builds("members[{}]".format, VALUE_FILTERS), mix((3, st.none()), (1, MEMBER))),
    ),
    (3, st.tuples(any_case(["displayName", f"{GROUP_SCHEMA}:displayName"]), GROUP_NAMES)),
    (2, st.tuples(any_case(["externalId"]), STRINGS)),
    (
        1,
        st.tuples(
            st.sampled_from(
                [
                    'members[value eq "{{u0}}"].display',
                    "members.value",
                    "id",
                    "meta",
                    "schemas",
                    "meta.version",
                ]
            ),
            SCALARS,
        ),
    ),
)
GROUP_PAIRS = mix(*GROUP_PAIR_PARTS)
GROUP_OBJECTS = st.dictionaries(
    mix((3, any_case(["displayName", "members", "externalId"])), (1, GROUP_KEYS)),
    mix((3, GROUP_NAMES), (3, MEMBER_LISTS), (1, GROUP_JSON)),
    min_size=1,
    max_size=3,
)
GROUP_PATHS = mix(
    (4, st.builds(lambda pair: pair[0], GROUP_PAIRS)),
    (1, any_case(GROUP_ATTRIBUTES)),
    (1, JUNK_PATHS),
)
GROUP_VALUES = mix((4, st.builds(lambda pair: pair[1], GROUP_PAIRS)), (1, GROUP_JSON))
GROUP_PATCHES = patch_bodies(
    operations(GROUP_PAIRS, GROUP_PATHS, GROUP_VALUES, GROUP_OBJECTS), GROUP_JSON
)


# -- strategies: whole resources --------------------------------------------------------------


def edited(
    pairs: st.SearchStrategy[tuple[str, Any]],
    keys: st.SearchStrategy[str],
    values: st.SearchStrategy[Any],
) -> st.SearchStrategy[list[tuple[str, str, Any]]]:
    """Edits to apply to a valid body: set a key (mostly to a sensible value), drop one, or
    write into the Enterprise extension object."""
    edit = mix(
        (6, st.builds(lambda pair: ("set", *pair), pairs)),
        (2, st.tuples(st.just("set"), keys, values)),
        (2, st.tuples(st.just("drop"), keys, st.none())),
        (1, st.tuples(st.just("extension"), st.sampled_from(ENTERPRISE_ATTRIBUTES), values)),
    )
    return st.lists(edit, max_size=4)


def apply_edits(body: dict[str, Any], edits: list[tuple[str, str, Any]]) -> dict[str, Any]:
    for kind, key, value in edits:
        if kind == "set":
            body[key] = value
        elif kind == "drop":
            for existing in [k for k in body if k.lower() == key.lower()]:
                del body[existing]
        else:
            extension = body.get(ENT)
            if isinstance(extension, dict):
                extension[key] = value
            else:
                body[ENT] = {key: value}
    return body


# Whole-body keys are attribute names, without PATCH's value filters (the pairs whose
# strategies build their paths with format() are the filtered ones).
USER_EDITS = edited(
    mix(*[p for p in USER_PAIR_PARTS if "format" not in repr(p[1])]), USER_KEYS, USER_VALUES
)
GROUP_EDITS = edited(
    mix(*[p for p in GROUP_PAIR_PARTS if "format" not in repr(p[1])]), GROUP_KEYS, GROUP_VALUES
)

# RFC 7644 Table 9: the scimTypes each kind of request may answer with.
PATCH_ALLOWED = {
    200: {None},
    400: {
        "invalidSyntax",
        "invalidPath",
        "invalidValue",
        "invalidFilter",
        "noTarget",
        "mutability",
    },
    409: {"uniqueness"},
}
# mutability on POST: a client-chosen ``id`` is refused rather than ignored (resources.check_id).
CREATE_ALLOWED = {
    201: {None},
    400: {"invalidSyntax", "invalidValue", "mutability"},
    409: {"uniqueness"},
}
REPLACE_ALLOWED = {
    200: {None},
    400: {"invalidSyntax", "invalidValue", "mutability"},
    409: {"uniqueness"},
}
FILTER_ALLOWED = {200: {None}, 400: {"invalidFilter"}}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- filters --------------------------------------------------------------------------------

ENDPOINTS = st.sampled_from(
    [("GET", "Users"), ("GET", "Groups"), ("POST", "Users"), ("POST", "Groups")]
)
FILTER_CASES = ENDPOINTS.flatmap(lambda e: st.tuples(st.just(e), FILTERS[e[1]]))


@READS
@given(case=FILTER_CASES)
@example(case=(("POST", "Users"), 'userName eq "\\u0000"'))
@example(case=(("POST", "Users"), 'title eq "\\ud800"'))
@example(case=(("GET", "Users"), 'meta.created gt "9999-12-31T23:59:59Z"'))
@example(case=(("GET", "Users"), 'emails[value eq "x"] or ' * 200 + "title pr"))
@example(case=(("GET", "Groups"), "(" * 30 + "displayName pr" + ")" * 30))
@example(case=(("GET", "Users"), 'id eq "{{beta_user}}" or userName eq "ada@acme.test"'))
@example(case=(("POST", "Groups"), 'members[value eq "{{beta_user}}"] or displayName pr'))
def test_any_filter_is_a_list_or_invalid_filter(
    world: World, errors: ErrorLog, case: tuple[tuple[str, str], str]
) -> None:
    (method, resource), text = case
    text = world.fill(text)
    if method == "GET":
        response = world.acme.request("GET", f"/{resource}", query={"filter": text})
    else:
        response = world.acme.request(
            "POST",
            f"/{resource}/.search",
            raw=json.dumps({"schemas": [SEARCH_REQUEST], "filter": text}).encode(),
        )
    body = check_answer(response, FILTER_ALLOWED, errors)
    if response.status_int == 200:
        assert body is not None and body["schemas"] == [LIST_RESPONSE]
        found = [r["id"] for r in body["Resources"]]
        assert body["totalResults"] >= len(found)
        # Only acme's own rows, whatever the filter names (beta has the same names and ids).
        own = {r["id"] for r in (world.users if resource == "Users" else world.groups)}
        assert set(found) <= own, "a filter reached another workspace's rows"
        if found:
            event("found some")


SORTABLE = [
    "userName",
    "displayName",
    "emails",
    "emails.value",
    "meta.created",
    "id",
    "name.familyName",
    f"{ENT}:department",
    "title",
    "members",
    "nosuch",
    "emails.type",
]
INDEXES = mix(
    (4, st.integers(-3, 300)),
    (1, st.integers()),
    (1, st.sampled_from([10**30, 1e300, -(2**63), 2**63, 1.5])),
    (1, st.sampled_from(["1e3", " 3 ", "abc", "99999999999999999999999", ""])),
    (1, SCALARS),
)
LIST_PARAMETERS = {
    "filter": mix((3, FILTERS["Users"]), (1, FILTERS["Groups"]), (1, SCALARS)),
    "sortBy": mix((4, any_case(SORTABLE)), (1, SCALARS)),
    "sortOrder": mix((4, any_case(["ascending", "descending"])), (1, SCALARS)),
    "startIndex": INDEXES,
    "count": INDEXES,
    "attributes": mix(
        (3, st.lists(mix((3, any_case(SORTABLE)), (1, TEXT)), max_size=3).map(",".join)),
        (1, st.lists(SCALARS, max_size=2)),
        (1, SCALARS),
    ),
    "excludedAttributes": mix(
        (3, st.lists(any_case(SORTABLE + ["members", "groups"]), max_size=3).map(",".join)),
        (1, SCALARS),
    ),
}


@st.composite
def list_parameters(draw: st.DrawFn) -> dict[str, Any]:
    """Some of the list parameters, names in any case, values mostly of the right kind."""
    names = draw(st.lists(st.sampled_from(sorted(LIST_PARAMETERS)), unique=True, max_size=5))
    return {draw(any_case([name])): draw(LIST_PARAMETERS[name]) for name in names}


@READS
@given(params=list_parameters(), endpoint=ENDPOINTS)
@example(params={"startIndex": 10**30}, endpoint=("POST", "Users"))
@example(params={"startIndex": "100000000000000000000000"}, endpoint=("GET", "Users"))
@example(params={"startIndex": 1e300}, endpoint=("POST", "Groups"))
@example(params={"startIndex": 2**63, "count": 2**63}, endpoint=("POST", "Groups"))
def test_any_list_parameters_are_a_list_or_a_scim_error(
    world: World, errors: ErrorLog, params: dict[str, Any], endpoint: tuple[str, str]
) -> None:
    method, resource = endpoint
    if method == "GET":
        query = {
            k: world.fill(v if isinstance(v, str) else json.dumps(v)) for k, v in params.items()
        }
        response = world.acme.request("GET", f"/{resource}", query=query)
    else:
        response = world.acme.request("POST", f"/{resource}/.search", raw=world.fill_body(params))
    check_answer(
        response,
        {
            200: {None},
            400: {"invalidFilter", "invalidValue", "invalidPath", "invalidSyntax", "tooMany"},
        },
        errors,
    )


# -- PATCH ----------------------------------------------------------------------------------


def _check_write(
    world: World,
    errors: ErrorLog,
    endpoint: str,
    before: dict[str, Any],
    events_before: int,
    response: Any,
    allowed: dict[int, set[str | None]],
) -> None:
    """The resource after a write: as answered, with a new version and one audit event
    when accepted and changed; untouched, same version and no event otherwise."""
    check_answer(response, allowed, errors)
    stored = world.acme.get(endpoint, before["id"])
    changed = False
    if response.status_int == 200:
        after = response.json
        assert stored == after, "the answer is not what was stored"
        changed = without_meta(after) != without_meta(before)
        if changed:
            assert version_of(after) > version_of(before), "changed without a new version"
            assert after["meta"]["lastModified"] >= before["meta"]["lastModified"]
        else:
            assert version_of(after) == version_of(before), "a new version for no change"
            assert after["meta"] == before["meta"]
    else:
        assert stored == before, "a refused write changed the resource"
    assert world.audit_events(before["id"]) == events_before + changed
    world.check_invariants()


IF_MATCH = mix(
    (8, st.none()),
    (1, st.sampled_from(["*", "current", 'W/"1"', 'W/"0", *', ""])),
    (1, st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)),
)


@FUZZ
@given(body=USER_PATCHES, if_match=IF_MATCH)
@example(
    body={"Operations": [{"op": "replace", "path": "displayName", "value": "a\x00b"}]},
    if_match=None,
)
@example(
    body={"Operations": [{"op": "replace", "path": "title", "value": "\udc00"}]}, if_match=None
)
@example(
    body={"Operations": [{"op": "add", "path": "emails", "value": [{"value": "\x00"}]}]},
    if_match=None,
)
@example(
    body={"Operations": [{"op": "replace", "path": "userName", "value": "\u0130" * 200}]},
    if_match=None,
)
@example(
    body={"Operations": [{"op": "replace", "path": "userName", "value": "ADA@acme.test"}]},
    if_match="current",
)
@example(
    body={
        "Operations": [
            {"op": "replace", "value": {"userName": "x@acme.test", "title": ["not", "a", "string"]}}
        ]
    },
    if_match=None,
)
@example(
    body={
        "Operations": [
            {"op": "replace", "path": "title", "value": "Same"},
            {"op": "replace", "path": "title", "value": "Engineer"},
        ]
    },
    if_match=None,
)
@example(
    body={"Operations": [{"op": "replace", "path": "title", "value": "New"}]}, if_match='W/"0"'
)
def test_any_user_patch_is_applied_whole_or_not_at_all(
    world: World, errors: ErrorLog, body: Any, if_match: str | None
) -> None:
    user = world.acme.create("Users", full_user(f"{_unique('p')}@acme.test"))
    events = world.audit_events(user["id"])
    headers = (
        {}
        if if_match is None
        else {"If-Match": user["meta"]["version"] if if_match == "current" else if_match}
    )
    try:
        response = world.acme.request(
            "PATCH", f"/Users/{user['id']}", raw=world.fill_body(body), headers=headers
        )
        _check_write(world, errors, "Users", user, events, response, {**PATCH_ALLOWED, 412: {None}})
    finally:
        world.acme.request("DELETE", f"/Users/{user['id']}")


@FUZZ
@given(body=GROUP_PATCHES)
@example(
    body={"Operations": [{"op": "add", "path": "members", "value": [{"value": "{{beta_user}}"}]}]}
)
@example(
    body={
        "Operations": [
            {"op": "add", "path": "members", "value": [{"value": "{{u2}}"}, {"value": "\x00"}]}
        ]
    }
)
@example(body={"Operations": [{"op": "replace", "path": "displayName", "value": "SALES"}]})
@example(body={"Operations": [{"op": "replace", "path": "displayName", "value": "\u0130" * 200}]})
@example(
    body={
        "Operations": [
            {"op": "add", "path": "members", "value": [{"value": "{{u2}}"}]},
            {"op": "replace", "path": "displayName", "value": "Sales"},
        ]
    }
)
@example(
    body={
        "Operations": [
            {"op": "remove", "path": 'members[value eq "{{u0}}"]'},
            {"op": "add", "path": "members", "value": [{"value": "{{u0}}"}]},
        ]
    }
)
def test_any_group_patch_is_applied_whole_or_not_at_all(
    world: World, errors: ErrorLog, body: Any
) -> None:
    members = [{"value": world.users[0]["id"]}, {"value": world.users[1]["id"]}]
    group = world.acme.create("Groups", {"displayName": _unique("g"), "members": members})
    events = world.audit_events(group["id"])
    try:
        response = world.acme.request("PATCH", f"/Groups/{group['id']}", raw=world.fill_body(body))
        _check_write(world, errors, "Groups", group, events, response, PATCH_ALLOWED)
    finally:
        world.acme.request("DELETE", f"/Groups/{group['id']}")


# -- POST and PUT ---------------------------------------------------------------------------


@FUZZ
@given(edits=USER_EDITS, replace=st.booleans())
@example(edits=[("set", "userName", "\u0130" * 200)], replace=False)
@example(edits=[("set", "displayName", "\x00")], replace=True)
@example(edits=[("set", "userName", "bob@ACME.test")], replace=True)
@example(edits=[("extension", "manager", "\ud800")], replace=False)
def test_any_user_body_is_stored_whole_or_refused(
    world: World, errors: ErrorLog, edits: list[tuple[str, str, Any]], replace: bool
) -> None:
    name = f"{_unique('b')}@acme.test"
    body = apply_edits(full_user(name), edits)
    raw = world.fill_body(body)
    if not replace:
        count = world.live_members(world.acme.workspace_id)
        response = world.acme.request("POST", "/Users", raw=raw)
        check_answer(response, CREATE_ALLOWED, errors)
        if response.status_int == 201:
            created = response.json
            assert world.acme.get("Users", created["id"]) == created
            assert version_of(created) == 1 and world.audit_events(created["id"]) == 1
            world.acme.request("DELETE", f"/Users/{created['id']}")
        else:
            assert world.live_members(world.acme.workspace_id) == count
        world.check_invariants()
        return
    user = world.acme.create("Users", full_user(name))
    events = world.audit_events(user["id"])
    try:
        response = world.acme.request("PUT", f"/Users/{user['id']}", raw=raw)
        _check_write(world, errors, "Users", user, events, response, REPLACE_ALLOWED)
    finally:
        world.acme.request("DELETE", f"/Users/{user['id']}")


@FUZZ
@given(edits=GROUP_EDITS, members=MEMBER_LISTS, replace=st.booleans())
@example(edits=[], members=[{"value": "{{beta_user}}"}], replace=False)
@example(edits=[], members=[{"value": "{{deleted_user}}"}], replace=True)
@example(edits=[("set", "displayName", "engineering")], members=[], replace=True)
@example(edits=[("set", "displayName", "\x00")], members=[], replace=False)
@example(edits=[], members=[{"value": "\x00"}], replace=False)
def test_any_group_body_is_stored_whole_or_refused(
    world: World,
    errors: ErrorLog,
    edits: list[tuple[str, str, Any]],
    members: list[Any],
    replace: bool,
) -> None:
    body = apply_edits(
        {"schemas": [GROUP_SCHEMA], "displayName": _unique("G"), "members": members}, edits
    )
    raw = world.fill_body(body)
    if not replace:
        count = world.group_count(world.acme.workspace_id)
        response = world.acme.request("POST", "/Groups", raw=raw)
        check_answer(response, CREATE_ALLOWED, errors)
        if response.status_int == 201:
            created = response.json
            assert world.acme.get("Groups", created["id"]) == created
            assert version_of(created) == 1 and world.audit_events(created["id"]) == 1
            world.acme.request("DELETE", f"/Groups/{created['id']}")
        else:
            assert world.group_count(world.acme.workspace_id) == count
        world.check_invariants()
        return
    group = world.acme.create(
        "Groups", {"displayName": _unique("G"), "members": [{"value": world.users[0]["id"]}]}
    )
    events = world.audit_events(group["id"])
    try:
        response = world.acme.request("PUT", f"/Groups/{group['id']}", raw=raw)
        _check_write(world, errors, "Groups", group, events, response, REPLACE_ALLOWED)
    finally:
        world.acme.request("DELETE", f"/Groups/{group['id']}")


# -- ids in the URL -------------------------------------------------------------------------


@FUZZ
@given(
    resource_id=st.one_of(TEXT, KNOWN, LONG).filter(lambda s: s.strip(" /") != ""),
    method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE"]),
    endpoint=st.sampled_from(["Users", "Groups"]),
)
@example(resource_id="\x00", method="GET", endpoint="Users")
@example(resource_id="{{beta_user}}", method="DELETE", endpoint="Users")
@example(resource_id="{{beta_group}}", method="PATCH", endpoint="Groups")
@example(resource_id="{{g0}}", method="GET", endpoint="Users")
def test_unknown_or_foreign_ids_are_404(
    world: World, errors: ErrorLog, resource_id: str, method: str, endpoint: str
) -> None:
    resource_id = world.fill(resource_id)
    if resource_id in {u["id"] for u in world.users} | {g["id"] for g in world.groups}:
        return  # acme's own rows: answered elsewhere
    body = (
        {"Operations": [{"op": "replace", "path": "displayName", "value": "x"}]}
        if method == "PATCH"
        else {"displayName": "x", "userName": "x@acme.test"}
    )
    response = world.acme.request(
        method, f"/{endpoint}/" + quote(resource_id.encode("utf-8", "surrogatepass"), safe=""), body
    )
    check_answer(response, {404: {None}, 405: {None}}, errors)
    world.check_invariants()


# -- what the fuzzing found: each was a 500 (or worse) before its fix ------------------------

UNSTORABLE = ["nul\x00", "lone \ud800 surrogate", "\udfff"]


@pytest.mark.parametrize("value", UNSTORABLE)
def test_strings_no_store_can_hold_are_invalid_values(
    world: World, errors: ErrorLog, value: str
) -> None:
    """NUL (PostgreSQL refuses it in text) and lone surrogates (which JSON's \\ud800 escape
    yields and UTF-8 cannot encode, on either backend) were 500s wherever a string is stored."""
    user = world.acme.get("Users", world.users[0]["id"])
    group = world.acme.get("Groups", world.groups[0]["id"])
    bodies = [
        ("POST", "/Users", full_user("new@acme.test", displayName=value)),
        ("POST", "/Users", {"userName": value}),
        ("POST", "/Users", {"userName": "new@acme.test", "emails": [{"value": value}]}),
        ("POST", "/Users", {"userName": "new@acme.test", ENT: {"department": value}}),
        ("PUT", f"/Users/{user['id']}", {**full_user(user["userName"]), "title": value}),
        (
            "PATCH",
            f"/Users/{user['id']}",
            {"Operations": [{"op": "replace", "path": "name.givenName", "value": value}]},
        ),
        (
            "PATCH",
            f"/Users/{user['id']}",
            {"Operations": [{"op": "add", "path": 'emails[type eq "home"].value', "value": value}]},
        ),
        ("POST", "/Groups", {"displayName": value}),
        ("POST", "/Groups", {"displayName": "ok", "members": [{"value": value}]}),
        (
            "PATCH",
            f"/Groups/{group['id']}",
            {"Operations": [{"op": "add", "path": "members", "value": [{"value": value}]}]},
        ),
    ]
    for method, path, body in bodies:
        response = world.acme.request(method, path, raw=json.dumps(body).encode())
        check_answer(response, {400: {"invalidValue"}}, errors)
    assert world.acme.get("Users", user["id"]) == user
    assert world.acme.get("Groups", group["id"]) == group
    world.check_invariants()


def test_a_nul_in_an_id_is_not_found(world: World, errors: ErrorLog) -> None:
    """PostgreSQL refused the lookup: 500 for any verb on /Users/%00 or /Groups/%00."""
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        for endpoint in ("Users", "Groups"):
            response = world.acme.request(
                method, f"/{endpoint}/a%00b", {"Operations": [], "displayName": "x"}
            )
            check_answer(response, {404: {None}}, errors)


def test_names_longer_than_their_key_once_lower_cased_are_invalid(
    world: World, errors: ErrorLog
) -> None:
    """U+0130 lower-cases to two characters: 200 of them made a 400-character key for a
    255-character column (PostgreSQL: 500; SQLite: stored over-long)."""
    for endpoint, body in (
        ("Users", {"userName": "\u0130" * 200}),
        ("Groups", {"displayName": "\u0130" * 200}),
    ):
        response = world.acme.request("POST", f"/{endpoint}", body)
        body_out = check_answer(response, {400: {"invalidValue"}}, errors)
        assert body_out is not None and "characters once" in body_out["detail"]
    # As long as the key fits, such names are fine.
    created = world.acme.create("Users", {"userName": "\u0130" * 127})
    assert created["userName"] == "\u0130" * 127
    world.check_invariants()


@pytest.mark.parametrize("start", [2**63, 10**30, 1e300, "100000000000000000000000"])
def test_a_huge_start_index_is_an_empty_page(world: World, errors: ErrorLog, start: Any) -> None:
    """The OFFSET overflowed SQLite's and PostgreSQL's 64-bit integers: 500."""
    for endpoint in ("Users", "Groups"):
        listed = check_answer(
            world.acme.request("POST", f"/{endpoint}/.search", {"startIndex": start}),
            {200: {None}},
            errors,
        )
        assert listed is not None and listed["Resources"] == []
        assert listed["totalResults"] == len(world.users if endpoint == "Users" else world.groups)
        assert listed["startIndex"] == 2**31 - 1


# -- oversized bodies -----------------------------------------------------------------------

LIMIT = 4096


@pytest.fixture
def small(database_url: str) -> Iterator[tuple[SSOMiddleware, World]]:
    app = new_middleware(database_url, max_body_bytes=LIMIT)
    yield app, World(app)
    app.close()


def _padded(size: int) -> bytes:
    """A JSON user body of exactly ``size`` bytes."""
    head = b'{"userName": "pad@acme.test", "title": "'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


WRITES = [
    ("POST", "/Users"),
    ("POST", "/Groups"),
    ("POST", "/Users/.search"),
    ("POST", "/Groups/.search"),
    ("POST", "/.search"),
    ("POST", "/Bulk"),
    ("PUT", "/Users/{{u0}}"),
    ("PATCH", "/Users/{{u0}}"),
    ("PUT", "/Groups/{{g0}}"),
    ("PATCH", "/Groups/{{g0}}"),
]


def _snapshot(world: World) -> list[Any]:
    return (
        world.sql("SELECT id, version, modified_at FROM members ORDER BY id")
        + world.sql("SELECT id, version, modified_at FROM groups ORDER BY id")
        + world.sql("SELECT count(*) FROM memberships")
        + world.sql("SELECT count(*) FROM audit_events")
    )


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_bodies_past_the_limit_are_413_and_change_nothing(
    small: tuple[SSOMiddleware, World], method: str, path: str
) -> None:
    _, world = small
    path = world.fill(path)
    before = _snapshot(world)
    response = world.acme.request(method, path, raw=_padded(LIMIT + 1))
    check_answer(response, {413: {None}})
    assert _snapshot(world) == before
    # Exactly at the limit the body is read, and judged on its content.
    at_limit = world.acme.request(method, path, raw=_padded(LIMIT))
    assert at_limit.status_int not in (413, 500), at_limit.body[:300]
    world.check_invariants()


def test_a_content_length_past_the_limit_is_413_before_reading(
    small: tuple[SSOMiddleware, World],
) -> None:
    app, world = small
    environ_body = _padded(100)
    response = world.acme.app.request(
        "/scim/v2/Users",
        method="POST",
        body=environ_body,
        expect_errors=True,
        headers={**world.acme.headers, "Content-Length": str(10**12)},
    )
    # WebTest sends the header it is given; the app refuses on the header alone.
    check_answer(response, {413: {None}})
    assert world.live_members(world.acme.workspace_id) == len(world.users)


def _raw_http(url: str, request: bytes) -> tuple[int, dict[str, Any]]:
    """Send ``request`` as it is; the status and JSON body of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        # The server may answer and stop reading: the answer is still there.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        length = int(fields.get("content-length", "0"))
        while len(body) < length:  # read the answer only: the server may keep the socket
            chunk = sock.recv(65536)
            assert chunk, "connection closed in the middle of the answer"
            body += chunk
    return int(lines[0].split(" ", 2)[1]), json.loads(body) if body else {}


def test_chunked_bodies_past_the_limit_are_413_over_http(
    small: tuple[SSOMiddleware, World], serve: Any
) -> None:
    app, world = small
    server = serve(app)

    def chunks() -> Iterator[bytes]:  # requests sends a generator chunked, without a length
        for _ in range(LIMIT // 512 + 4):
            yield b" " * 512

    headers = {**world.acme.headers}
    response = None
    # Some servers reset a connection whose body they did not read.
    with contextlib.suppress(requests.ConnectionError):
        response = requests.post(
            server.url + "/scim/v2/Users", data=chunks(), headers=headers, timeout=10
        )
    if response is not None:
        assert response.status_code == 413, response.text
        assert response.json()["status"] == "413"
    # The same by hand, and a small chunked body still works.
    auth = f"Authorization: Bearer {world.acme.token}\r\n".encode()
    big = b"".join(b"200\r\n" + b" " * 0x200 + b"\r\n" for _ in range(LIMIT // 0x200 + 2))
    status, body = _raw_http(
        server.url,
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n"
        + b"Connection: close\r\n\r\n"
        + big
        + b"0\r\n\r\n",
    )
    assert status == 413 and body["status"] == "413"
    # Valid JSON within the limit and more after it: refused whole, not cut at the limit.
    padded = json.dumps({"userName": "cut@acme.test"}).encode() + b" " * LIMIT
    status, body = _raw_http(
        server.url,
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n"
        + b"Connection: close\r\n\r\n"
        + f"{len(padded):x}\r\n".encode()
        + padded
        + b"\r\n0\r\n\r\n",
    )
    assert status == 413 and body["status"] == "413"
    assert world.live_members(world.acme.workspace_id) == len(world.users)
    user = json.dumps({"userName": "chunked@acme.test"}).encode()
    status, body = _raw_http(
        server.url,
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n"
        + b"Connection: close\r\n\r\n"
        + f"{len(user):x}\r\n".encode()
        + user
        + b"\r\n0\r\n\r\n",
    )
    assert status == 201 and body["userName"] == "chunked@acme.test"
    world.check_invariants()


def test_a_body_without_length_or_chunking_is_not_read(
    small: tuple[SSOMiddleware, World], serve: Any
) -> None:
    """No Content-Length and no chunking: the body cannot be delimited, so it is not read
    (werkzeug's safe fallback) and the request is refused as bodiless, without hanging."""
    app, world = small
    server = serve(app)
    auth = f"Authorization: Bearer {world.acme.token}\r\n".encode()
    status, body = _raw_http(
        server.url,
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n"
        + auth
        + b"Content-Type: application/scim+json\r\nConnection: close\r\n\r\n"
        + b" " * (LIMIT * 4),
    )
    assert status == 400 and body["scimType"] == "invalidSyntax"
    assert world.live_members(world.acme.workspace_id) == len(world.users)
