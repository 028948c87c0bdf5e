"""SCIM filters compiled to SQL (scim/filter_query.py over store/scim_filters.py) on real
rows: what each filter finds, every attribute path the server publishes, the 1,024-character
value keys, the agreement with the Python matcher, and what a filter must never reach.

Members and groups are written as SCIM writes them (scim/writes.py) and searched through
the store's own pages (store/members.page, store/groups.page), which add workspace scoping.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from webwork_sso_middleware.scim.errors import ScimError
from webwork_sso_middleware.scim.filter_query import compile_filter
from webwork_sso_middleware.scim.filters import (
    MAX_DEPTH,
    Comparison,
    Node,
    Present,
    ValuePath,
    parse_filter,
)
from webwork_sso_middleware.scim.matching import matches
from webwork_sso_middleware.scim.schemas import (
    COMMON_ATTRIBUTES,
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    USER,
    USER_RESOURCE,
    Attribute,
    ResourceType,
)
from webwork_sso_middleware.scim.writes import write_group_fields, write_user
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import groups as group_store
from webwork_sso_middleware.store import members as member_store
from webwork_sso_middleware.store.models import Group, Member, Membership, MemberValue, Workspace

from ..scim.test_filters import CORE_USER, ENTERPRISE, logic, to_text
from ..scim.test_matching import match
from ..store_helpers import transaction

# -- compile_filter: SQL on real rows ----------------------------------------------------------


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


LONG_CERT = "MII" + "A" * 1200 + "Tail"


def _member(member_id: str, user_name: str, created: str, **fields: Any) -> Member:
    values = fields.pop("values", [])
    member = Member(
        id=member_id,
        workspace_id=1,
        user_name=user_name,
        user_name_key=user_name.lower(),
        created_at=at(created),
        modified_at=at(created),
        **fields,
    )
    member.values = [
        MemberValue(
            attribute=attribute,
            position=position,
            value=value,
            value_key=value.lower()[:1024] if value is not None else None,
            **extra,
        )
        for position, (attribute, value, extra) in enumerate(values)
    ]
    return member


@pytest.fixture
def people(database: Database) -> Database:
    """Five visible members, one deleted, three groups; see the cases below for who is who."""
    with transaction(database, write=True) as unit:
        unit.session.add(
            Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example")
        )
        unit.session.flush()
        alice = _member(
            "alice",
            "Alice@Example.com",
            "2024-01-01T10:00:00.250+00:00",
            external_id="EXT-Alice",
            given_name="Alice",
            family_name="Liddell",
            display_name="Alice Liddell",
            title="Engineer",
            active=True,
            employee_number="100",
            department="R&D",
            manager_id="bob",
            manager_display_name="Bob Builder",
            values=[
                ("emails", "alice@work.example", {"type": "work", "primary": True}),
                ("emails", "alice@home.example", {"type": "home", "primary": False}),
                ("phoneNumbers", "+1 555 0100", {"type": "work"}),
                ("addresses", None, {"type": "work", "locality": "Oxford", "postal_code": "OX1"}),
            ],
        )
        alice.modified_at = at("2024-06-01T00:00:00+00:00")
        bob = _member(
            "bob",
            "bob",
            "2024-02-01T00:00:00+00:00",
            external_id="ext-bob",
            title="50% off_sale",
            active=False,
            department="Sales",
            values=[
                ("emails", "Bob@WORK.example", {"type": "work"}),
                ("emails", "B@x.y", {"type": "other", "display": "Bee"}),
                ("roles", "admin", {}),
            ],
        )
        carol = _member(
            "carol",
            "carol_x",
            "2024-03-01T00:00:00+00:00",
            title="",
            display_name="",
            active=True,
            department="r&d",
            values=[
                ("emails", "carol@home.example", {"type": "home"}),
                ("emails", "shared@work.example", {"type": "work"}),
                ("x509Certificates", LONG_CERT, {}),
            ],
        )
        dave = _member("dave", "dave%", "2024-03-15T00:00:00+00:00", title="engineer", active=True)
        frank = _member("frank", "Frank", "2024-04-01T00:00:00+00:00", active=True)
        erin = _member(
            "erin",
            "erin",
            "2024-01-05T00:00:00+00:00",
            active=True,
            title="Engineer",
            deleted_at=at("2024-05-01T00:00:00+00:00"),
        )
        unit.session.add_all([alice, bob, carol, dave, frank, erin])
        unit.session.flush()
        groups = [
            Group(
                id="g-admins",
                workspace_id=1,
                display_name="Admins",
                display_name_key="admins",
                external_id="AD-1",
                created_at=at("2024-01-01T00:00:00+00:00"),
            ),
            Group(
                id="g-staff",
                workspace_id=1,
                display_name="Staff 100%",
                display_name_key="staff 100%",
                created_at=at("2024-02-01T00:00:00+00:00"),
            ),
            Group(
                id="g-empty",
                workspace_id=1,
                display_name="Empty_Group",
                display_name_key="empty_group",
                created_at=at("2024-03-01T00:00:00+00:00"),
            ),
        ]
        unit.session.add_all(groups)
        unit.session.flush()
        unit.session.add_all(
            [
                Membership(group_id=g, member_id=m)
                for g, m in [
                    ("g-admins", "alice"),
                    ("g-staff", "alice"),
                    ("g-staff", "bob"),
                    ("g-staff", "erin"),
                ]
            ]
        )
    return database


def user_ids(database: Database, text: str) -> set[str]:
    where = compile_filter(parse_filter(text), USER_RESOURCE)
    with transaction(database) as unit:
        return set(
            unit.session.scalars(select(Member.id).where(Member.deleted_at.is_(None), where))
        )


def group_ids(database: Database, text: str) -> set[str]:
    where = compile_filter(parse_filter(text), GROUP_RESOURCE)
    with transaction(database) as unit:
        return set(unit.session.scalars(select(Group.id).where(where)))


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
    ("userName eq null", set()),
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
    ("externalId pr", {"alice", "bob"}),
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
    # Only a primary written false is false: one left out is unassigned (scim/writes.py).
    ("emails.primary eq false", {"alice"}),
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
    ("addresses[formatted eq null and locality pr]", {"alice"}),
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
    ("emails[primary ne true]", {"alice"}),
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
    ("members.display eq null", {"g-empty"}),
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
    (
        'displayName eq "admins" or displayName eq "staff 100%" and members.value eq "erin"',
        {"g-admins"},
    ),
    (
        'displayName eq "staff 100%" or displayName eq "admins" and members.value eq "bob"',
        {"g-staff"},
    ),
]


@pytest.mark.parametrize("text, expected", GROUP_CASES, ids=[case[0] for case in GROUP_CASES])
def test_groups_where(people: Database, text: str, expected: set[str]) -> None:
    assert group_ids(people, text) == expected


def test_keys_fold_non_ascii_case_on_every_backend(database: Database) -> None:
    """The *_key columns are lowered by Python, so É and é are one even where SQL lower() is ASCII."""
    with transaction(database, write=True) as unit:
        unit.session.add(
            Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example")
        )
        unit.session.flush()
        zoe = _member(
            "zoe",
            "ZOË@Example.com",
            "2024-01-01T00:00:00+00:00",
            values=[("emails", "Élise.Ünal@Work.example", {"type": "work"})],
        )
        unit.session.add(zoe)
        unit.session.add(
            Group(id="g-eq", workspace_id=1, display_name="Équipe", display_name_key="équipe")
        )
        unit.session.flush()
        unit.session.add(Membership(group_id="g-eq", member_id="zoe"))
    assert user_ids(database, 'userName eq "zoë@example.com"') == {"zoe"}
    assert user_ids(database, 'emails eq "ÉLISE.ÜNAL@WORK.EXAMPLE"') == {"zoe"}
    assert user_ids(database, 'emails[type eq "work" and value sw "élise"]') == {"zoe"}
    assert user_ids(database, 'groups.display eq "ÉQUIPE"') == {"zoe"}
    assert group_ids(database, 'displayName eq "équipe"') == {"g-eq"}


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
    mixed = "not (title pr and (emails pr or (" * 6 + 'userName eq "bob"' + ")))" * 6
    # f(0) = bob; f(k+1) = not (title pr and (emails pr or f(k))): {carol, frank} for even k >= 2
    assert user_ids(people, mixed) == {"carol", "frank"}


# Each adds exactly one level of nesting around ``{}``, with SQL as deep as we could find.
OUTER_LEVELS = [
    "not ({})",
    "title pr and ({})",
    'emails[type eq "work"] or ({})',
    'x509Certificates co "a_%" and ({})',
    "userName eq null or ({})",
    'groups.display co "x" and ({})',
    "name pr or ({})",
    '({}) and meta.created gt "2024-01-01T00:00:00Z"',
    'emails.value ew "x" or ({})',
]
INNER_LEVELS = [
    "not ({})",
    "type pr and ({})",
    'value co "%" or ({})',
    "display eq null or ({})",
    "primary eq true and ({})",
    '({}) or value ew "x"',
]


def test_filters_at_the_depth_limit_run_on_the_database(people: Database) -> None:
    """SQLite's parser has a small stack; every filter we accept must still run."""

    @settings(database=None, deadline=None, max_examples=60)
    @given(
        st.lists(st.sampled_from(OUTER_LEVELS), max_size=MAX_DEPTH - 1),
        st.lists(st.sampled_from(INNER_LEVELS), max_size=MAX_DEPTH - 1),
    )
    def runs(outer: list[str], inner: list[str]) -> None:
        leaf = "emails[{}]".format(_wrap(inner[: MAX_DEPTH - 1 - len(outer)], 'value ew "x"'))
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
            {
                "value": f"{rng.choice(['ann', 'Bob', 'x_y', 'p%q'])}{index % 3}"
                f"@{rng.choice(['w', 'H'])}.example",
                "type": rng.choice(["work", "home", "Work", None]),
                "display": rng.choice(words),
                "primary": rng.random() < 0.3,
            }
            for _ in range(rng.randrange(3))
        ]
        users.append(
            {
                "id": f"u{index:02}",
                "userName": f"{rng.choice(['ann', 'Bob', 'c_d', 'e%f', 'zed'])}{index}",
                "title": rng.choice(words),
                "displayName": rng.choice(words),
                "nickName": rng.choice(words),
                "active": rng.random() < 0.6,
                "name": {"givenName": rng.choice(words)},
                "emails": emails,
                "groups": [
                    {"value": gid, "display": name} for gid, name in GROUPS if rng.random() < 0.4
                ],
                ENTERPRISE_USER_SCHEMA: {"department": rng.choice(words)},
            }
        )
    return users


GROUPS = [("ga", "Alpha Team"), ("gb", "beta_team"), ("gc", "Gamma 50%")]
POPULATION = _population()
STRING_PATHS = [
    "userName",
    "title",
    "displayName",
    "nickName",
    "name.givenName",
    "emails.value",
    "emails.type",
    "emails.display",
    "groups.display",
    f"{ENTERPRISE}department",
]
OPERANDS = sorted(
    {
        piece
        for user in POPULATION
        for text in [
            user["userName"],
            user["title"],
            user["nickName"],
            *(e["value"] for e in user["emails"]),
        ]
        if text
        for piece in (text, text.upper(), text[:2], text[-3:], text[1:4])
    }
    | {"", "%", "_", "a", "Z", "@w.example", "work", "Alpha team", "TEAM", "50%", "b_b", "c%d"}
)


def _sub_terms() -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(
            Comparison,
            st.sampled_from(["value", "type", "display"]),
            st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "le"]),
            st.sampled_from(OPERANDS),
        ),
        st.builds(
            Comparison,
            st.just("primary"),
            st.sampled_from(["eq", "ne"]),
            st.sampled_from([True, False, "True", "false"]),
        ),
        st.builds(
            Comparison,
            st.sampled_from(["type", "display"]),
            st.sampled_from(["eq", "ne"]),
            st.none(),
        ),
        st.builds(Present, st.sampled_from(["value", "type", "display"])),
    )


DIFFERENTIAL_TERMS = st.one_of(
    st.builds(
        Comparison,
        st.sampled_from(STRING_PATHS),
        st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]),
        st.sampled_from(OPERANDS),
    ),
    st.builds(Comparison, st.sampled_from(STRING_PATHS), st.sampled_from(["eq", "ne"]), st.none()),
    st.builds(
        Comparison,
        st.just("active"),
        st.sampled_from(["eq", "ne"]),
        st.sampled_from([True, False, "true", "FALSE"]),
    ),
    st.builds(Present, st.sampled_from(STRING_PATHS + ["emails", "groups", "name"])),
    st.builds(ValuePath, st.just("emails"), logic(_sub_terms())),
)


@pytest.fixture
def population(database: Database) -> Iterator[Database]:
    with transaction(database, write=True) as unit:
        unit.session.add(
            Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example")
        )
        unit.session.flush()
        unit.session.add_all(
            Group(id=gid, workspace_id=1, display_name=name, display_name_key=name.lower())
            for gid, name in GROUPS
        )
        unit.session.flush()
        for user in POPULATION:
            member = Member(
                id=user["id"],
                workspace_id=1,
                user_name=user["userName"],
                user_name_key=user["userName"].lower(),
                title=user["title"],
                display_name=user["displayName"],
                nick_name=user["nickName"],
                active=user["active"],
                given_name=user["name"]["givenName"],
                department=user[ENTERPRISE_USER_SCHEMA]["department"],
            )
            member.values = [
                MemberValue(
                    attribute="emails",
                    position=i,
                    value=e["value"],
                    value_key=e["value"].lower(),
                    type=e["type"],
                    display=e["display"],
                    primary=e["primary"],
                )
                for i, e in enumerate(user["emails"])
            ]
            unit.session.add(member)
            unit.session.flush()
            unit.session.add_all(
                Membership(group_id=g["value"], member_id=user["id"]) for g in user["groups"]
            )
    yield database


def test_sql_and_python_agree(population: Database) -> None:
    """Random filters: the SQL on both backends selects exactly the users ``matches`` accepts."""

    @settings(database=None, deadline=None, max_examples=250)
    @given(logic(DIFFERENTIAL_TERMS))
    def agree(node: Node) -> None:
        expected = {user["id"] for user in POPULATION if matches(node, user)}
        where = compile_filter(node, USER_RESOURCE)
        with transaction(population) as unit:
            found = set(unit.session.scalars(select(Member.id).where(where)))
        assert found == expected, to_text(node)

    agree()


# -- dateTime operands: the exact edges of the unit they stand for -----------------------------
#
# An operand stands for the whole unit of its last digit ("10:00:00Z" is the second
# [10:00:00, 10:00:01), ".250Z" the millisecond [.250, .251)): eq holds inside that window, gt
# after it, lt before it. Each case gives the window by hand, in UTC; the rows sit on both edges
# and one microsecond either side, so a ``<`` that became ``<=`` (or a window one unit off) fails.


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


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
    for index, when in enumerate(
        sorted(
            {
                utc(edge) + shift
                for _, start, end in DATETIME_WINDOWS
                for edge in (start, end)
                for shift in (-MICROSECOND, dt.timedelta(0), MICROSECOND)
            }
        )
    )
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
    with transaction(database, write=True) as unit:
        unit.session.add(
            Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example")
        )
        unit.session.flush()
        for name, when in INSTANTS.items():
            unit.session.add(
                Member(
                    id=name,
                    workspace_id=1,
                    user_name=name,
                    user_name_key=name,
                    created_at=when,
                    modified_at=when + dt.timedelta(days=400),
                )
            )
            unit.session.add(
                Group(
                    id=name,
                    workspace_id=1,
                    display_name=name,
                    display_name_key=name,
                    created_at=when,
                    modified_at=when,
                )
            )
    return database


@pytest.mark.parametrize(
    "operand, start, end", DATETIME_WINDOWS, ids=[w[0] for w in DATETIME_WINDOWS]
)
def test_datetime_operators_at_the_edges_of_the_operand(
    instants: Database, operand: str, start: str, end: str
) -> None:
    first, after = utc(start), utc(end)
    inside = {name for name, when in INSTANTS.items() if first <= when < after}
    # The rows really are on the edges: the window's first and last microsecond, and its neighbours.
    assert {INSTANTS[name] for name in inside} >= {first, after - MICROSECOND}
    assert {first - MICROSECOND, after} <= set(INSTANTS.values()) - {INSTANTS[n] for n in inside}
    for op, holds in DATETIME_SEMANTICS.items():
        expected = {name for name, when in INSTANTS.items() if holds(when, first, after)}
        assert user_ids(instants, f'meta.created {op} "{operand}"') == expected, op
        assert group_ids(instants, f'meta.created {op} "{operand}"') == expected, op
        assert (
            user_ids(instants, f'not (meta.created {op} "{operand}")') == set(INSTANTS) - expected
        ), op
        # The Python evaluator (PATCH paths, value filters) draws the same edges.
        assert {
            name
            for name, when in INSTANTS.items()
            if match(f'created {op} "{operand}"', {"created": when})
        } == expected, op


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
PREFIX_OPERANDS = [
    SEAMED[:n].upper() for n in (1, 1000, 1022, 1023, 1024, 1025, 1026, 1100, len(SEAMED))
]
FRAGMENT_OPERANDS = [
    "MID-SEAM",
    "mid-sea",
    "MID-SE",
    "qzmid-",
    "d-seamtail",
    "TAIL",
    "SEAM" + "TAIL" * 25,
    SEAMED[1000:1030].lower(),
    SEAMED[2:1100].upper(),
    SEAMED[-1030:].upper(),
    SEAMED.upper() + "X",
    "qz" * 509 + "mid-seam",
    "Qz" * 510,
    "",
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
    """A member written as SCIM writes one (scim/writes.write_user: its keys, its cuts)."""
    member = Member(
        id=member_id,
        workspace_id=1,
        created_at=at("2024-01-01T00:00:00+00:00"),
        modified_at=at("2024-01-01T00:00:00+00:00"),
    )
    write_user(member, {"schemas": [USER.id], **doc})
    session.add(member)
    return member


@pytest.fixture
def long_values(database: Database) -> Database:
    """Members ``len<n>`` with one certificate each: the first n characters of SEAMED."""
    with transaction(database, write=True) as unit:
        unit.session.add(
            Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example")
        )
        unit.session.flush()
        for length in LENGTHS:
            member = _written_user(
                unit.session,
                f"len{length}",
                {
                    "userName": f"len{length}@acme.test",
                    "x509Certificates": [{"value": SEAMED[:length]}],
                },
            )
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
        assert user_ids(long_values, f'x509Certificates ne "{operand}"') == everyone - {
            f"len{length}"
        }
        assert user_ids(long_values, f'x509Certificates sw "{operand}"') == {
            f"len{n}" for n in LENGTHS if n >= length
        }
    # The 1,024 characters a cut key holds, asked for whole: only the value of exactly 1,024 is it.
    assert user_ids(long_values, f'x509Certificates eq "{SEAMED[:1024]}"') == {"len1024"}
    assert user_ids(long_values, f'not (x509Certificates eq "{SEAMED[:1024]}")') == everyone - {
        "len1024"
    }
    # Found only past the cut.
    assert user_ids(long_values, 'x509Certificates co "mid-seam"') == {
        "len1026",
        f"len{len(SEAMED)}",
    }
    assert user_ids(long_values, 'x509Certificates ew "MID-SEA"') == {"len1025"}
    assert user_ids(long_values, f'x509Certificates gt "{SEAMED[:1025]}"') == {
        "len1026",
        f"len{len(SEAMED)}",
    }
    assert user_ids(long_values, f'x509Certificates lt "{SEAMED[:1025]}"') == {
        "len1000",
        "len1023",
        "len1024",
    }


# -- case through the lowered keys: userName by names.key, values and group names by lower() -----


@pytest.fixture
def directory(database: Database) -> Database:
    """Members written as SCIM writes them, with names whose case folds beyond ASCII."""
    with transaction(database, write=True) as unit:
        unit.session.add(
            Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example")
        )
        unit.session.flush()
        _written_user(
            unit.session,
            "strasse",
            {
                "userName": "Straße@acme.test",
                "emails": [
                    {"value": "no-at-sign", "type": "work"},
                    {"value": "s@home.test", "type": "home"},
                ],
            },
        )
        _written_user(
            unit.session,
            "fullwidth",
            {
                "userName": "ＦＵＬＬ@acme.test",
                "emails": [{"value": "Full@Acme.TEST", "type": "Work"}],
            },
        )
        _written_user(
            unit.session,
            "sisyphus",
            {
                "userName": "Σίσυφος@acme.test",
                "emails": [{"value": "Σίσυφος@acme.test", "type": "home"}],
            },
        )
        _written_user(unit.session, "dave", {"userName": "Dave@Bücher.test"})
        _written_user(unit.session, "annabel", {"userName": "annabel@acme.test"})
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
@pytest.mark.parametrize(
    "text, expected",
    [
        ('userName co " "', set()),  # no userName holds a space; a trimmed "" would match all
        ('userName ew " acme.test"', set()),
        ('userName sw "annabel@acme.test "', set()),
        ('userName sw "DAVE@"', {"dave"}),
        ('userName ew "@XN--BCHER-KVA.TEST"', {"dave"}),
    ],
)
def test_username_fragments_are_not_whole_names(
    directory: Database, text: str, expected: set[str]
) -> None:
    assert user_ids(directory, text) == expected


ACME, OTHER = 1, 2  # the workspace searched, and one whose rows must never be found
EARLY = at("2024-01-01T00:00:00+00:00")
LATE = "2031-02-03T04:05:06Z"  # the instant the holder of a meta.* path was created/modified


# -- the attribute paths the server publishes --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FilterPath:
    """One leaf attribute as a client writes it in a filter."""

    text: str  # URN-qualified for the enterprise extension, whose names the core does not resolve
    canonical: str  # AttributePath.canonical: "name.givenName", "emails.value", "employeeNumber"
    attribute: Attribute  # the leaf
    parent: Attribute | None  # the complex attribute holding it, if any


def filter_paths(resource: ResourceType) -> list[FilterPath]:
    """Every leaf path of ``resource``'s schemas a filter may name (not the returned=never ones)."""
    paths: list[FilterPath] = []
    for schema in resource.schemas:
        urn = "" if schema is resource.schema else schema.id + ":"
        attributes = schema.attributes + (COMMON_ATTRIBUTES if schema is resource.schema else ())
        for attribute in attributes:
            if attribute.returned == "never":
                continue
            if attribute.type != "complex":
                paths.append(FilterPath(urn + attribute.name, attribute.name, attribute, None))
                continue
            for sub in attribute.sub_attributes:
                canonical = f"{attribute.name}.{sub.name}"
                paths.append(FilterPath(urn + canonical, canonical, sub, attribute))
    return paths


USER_PATHS = filter_paths(USER_RESOURCE)
GROUP_PATHS = filter_paths(GROUP_RESOURCE)
# Paths no column holds: filtering on them is refused (invalidFilter), never silently empty.
UNFILTERABLE = {"meta.location", "meta.version", "groups.$ref", "manager.$ref", "members.$ref"}
# Paths whose value is the same on every row (filter_sql.Constant).
CONSTANT = {"meta.resourceType", "groups.type", "members.type"}


def test_the_paths_are_those_the_server_publishes() -> None:
    """The lists the tests below walk hold what they should, so those tests cannot pass empty."""
    user = {path.canonical for path in USER_PATHS}
    assert user >= {
        "id",
        "externalId",
        "userName",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "meta.created",
        "meta.lastModified",
        "meta.resourceType",
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
        "manager.value",
        "manager.displayName",
        "groups.value",
        "groups.display",
        "groups.type",
        "addresses.streetAddress",
        "addresses.country",
        "addresses.primary",
        *(
            f"name.{sub}"
            for sub in (
                "formatted",
                "familyName",
                "givenName",
                "middleName",
                "honorificPrefix",
                "honorificSuffix",
            )
        ),
        *(
            f"{multi}.{sub}"
            for multi in (
                "emails",
                "phoneNumbers",
                "ims",
                "photos",
                "entitlements",
                "roles",
                "x509Certificates",
            )
            for sub in ("value", "display", "type", "primary")
        ),
    }
    assert "password" not in user
    assert {path.canonical for path in GROUP_PATHS} >= {
        "id",
        "externalId",
        "displayName",
        "meta.created",
        "meta.lastModified",
        "meta.resourceType",
        "members.value",
        "members.display",
        "members.type",
    }


# -- helpers -----------------------------------------------------------------------------------


def held(index: int) -> str:
    """The value the holder of path ``index`` has there: mixed case, found nowhere else."""
    return f"Vq{index:02d}-Xy"


def other(index: int) -> str:
    """The bystander's value at path ``index``: assigned, but not the one asked for."""
    return f"Nb{index:02d}-Zz"


def users_found(database: Database, text: str) -> set[str]:
    """The ids of workspace ACME's visible members that ``text`` selects, as the store pages them."""
    where = compile_filter(parse_filter(text), USER_RESOURCE)
    with transaction(database) as unit:
        _, records = member_store.page(unit, ACME, where=where, order_by=[], offset=0, limit=1000)
    return {record.row.id for record in records}


def groups_found(database: Database, text: str) -> set[str]:
    """The ids of workspace ACME's groups that ``text`` selects, as the store pages them."""
    where = compile_filter(parse_filter(text), GROUP_RESOURCE)
    with transaction(database) as unit:
        _, groups = group_store.page(unit, ACME, where=where, order_by=[], offset=0, limit=1000)
        return {group.id for group in groups}


def string_cases(
    path: FilterPath, value: str, holder: str, assigned: set[str], everyone: set[str]
) -> list[tuple[str, set[str]]]:
    """(filter, expected ids) for a string path where ``holder`` alone has ``value``;
    ``assigned``: who has the path assigned at all."""
    p = path.text
    # groups.value is a group id: compared exactly, as ids are (test_filters: "ids are caseExact").
    exact = path.attribute.case_exact or path.canonical == "groups.value"
    cases = [
        (f'{p} eq "{value}"', {holder}),
        (f'{p} eq "{value.swapcase()}"', set() if exact else {holder}),
        (f'{p} co "{value[1:6]}"', {holder}),
        (f'{p} co "{value[1:6].swapcase()}"', set() if exact else {holder}),
        (f'{p} sw "{value[:4].swapcase()}"', set() if exact else {holder}),
        (f'{p} ew "{value[-5:].swapcase()}"', set() if exact else {holder}),
        (f'{p} sw "{value[:4]}"', {holder}),
        (f'{p} ew "{value[-5:]}"', {holder}),
        (f'{p} ne "{value}"', assigned - {holder}),
        (f'not ({p} eq "{value}")', everyone - {holder}),
        (f"{p} pr", assigned),
        (f"not ({p} pr)", everyone - assigned),
        (f"{p} eq null", everyone - assigned),
        (f"{p} ne null", assigned),
        # LIKE's wildcards are characters like any other in an operand.
        (f'{p} co "%"', set()),
        (f'{p} sw "_"', set()),
        (f'{p} ew "%"', set()),
    ]
    if path.parent is not None and path.parent.multi_valued:
        cases.append((f'{path.parent.name}[{path.attribute.name} eq "{value}"]', {holder}))
    return cases


def datetime_cases(p: str, holder: str, everyone: set[str]) -> list[tuple[str, set[str]]]:
    """(filter, expected ids) for a dateTime path where ``holder`` alone is at LATE, the others
    years before; an operand to the second stands for that whole second."""
    return [
        (f'{p} eq "{LATE}"', {holder}),
        (f'{p} ne "{LATE}"', everyone - {holder}),
        (f'{p} gt "{LATE}"', set()),
        (f'{p} ge "{LATE}"', {holder}),
        (f'{p} lt "{LATE}"', everyone - {holder}),
        (f'{p} le "{LATE}"', everyone),
        (f'{p} gt "2030-01-01T00:00:00Z"', {holder}),
        (f'{p} le "2030-01-01T00:00:00Z"', everyone - {holder}),
        (f"{p} pr", everyone),
        (f"not ({p} pr)", set()),
    ]


def check(found: Callable[[str], set[str]], cases: list[tuple[str, set[str]]]) -> None:
    """Run every case; report all the wrong ones at once (a path left out shows as one line)."""
    wrong = []
    for text, expected in cases:
        try:
            got = found(text)
        except ScimError as error:
            wrong.append(f"{text}: refused ({error})")
            continue
        if got != expected:
            wrong.append(f"{text}: found {sorted(got)}, expected {sorted(expected)}")
    assert not wrong, "\n".join(wrong)


# -- Users: every path ---------------------------------------------------------------------------


def _doc_with(path: FilterPath, value: Any) -> dict[str, Any]:
    """The part of a SCIM User document that puts ``value`` at ``path`` (client-writable paths)."""
    leaf = path.attribute.name
    if path.parent is None:
        part: dict[str, Any] = {leaf: value}
    elif path.parent.multi_valued:
        part = {path.parent.name: [{leaf: value}]}
    else:
        part = {path.parent.name: {leaf: value}}
    return {ENTERPRISE_USER_SCHEMA: part} if path.text.startswith(ENTERPRISE_USER_SCHEMA) else part


def _merged(*parts: dict[str, Any]) -> dict[str, Any]:
    """Documents merged the way one member holds all of them (lists and objects joined)."""
    doc: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                doc[key] = _merged(doc.get(key, {}), value)
            elif isinstance(value, list):
                doc[key] = [{**(doc.get(key) or [{}])[0], **value[0]}]
            else:
                doc[key] = value
    return doc


SERVER_SET = {"id", "meta.created", "meta.lastModified", "groups.value", "groups.display"}


def _user_kind(path: FilterPath) -> str:
    if path.canonical in UNFILTERABLE:
        return "unfilterable"
    if path.canonical in CONSTANT:
        return "constant"
    if path.canonical in SERVER_SET:
        return "server"
    return path.attribute.type


@pytest.fixture
def user_holders(database: Database) -> Iterator[Database]:
    """In ACME: for each path i, a member ``h<i>`` holding held(i) there and nothing else, and a
    bystander ``by`` holding other(i) at every path. In OTHER: a twin of each holder, and a member
    holding every held(i) at once. Plus a deleted ACME member holding every held(i) too."""
    with transaction(database, write=True) as unit:
        for workspace, slug in ((ACME, "acme"), (OTHER, "other")):
            unit.session.add(
                Workspace(
                    id=workspace, slug=slug, name=slug, plan="plus", owner_email=f"o@{slug}.example"
                )
            )
        unit.session.flush()
        bystander_parts, holder_parts = [], []
        made: list[tuple[int, str, Member]] = []
        for index, path in enumerate(USER_PATHS):
            kind = _user_kind(path)
            if kind in ("unfilterable", "constant"):
                continue
            value: Any = held(index) if kind != "boolean" else not _default(path)
            doc = {"userName": f"h{index:02d}@acme.test"}
            # Server-set values (id, timestamps, groups) are set by _server_set, below.
            if path.canonical == "userName":
                doc = {"userName": held(index)}
                bystander_parts.append({"userName": "by@acme.test"})
            elif kind != "server":
                doc = _merged(doc, _doc_with(path, value))
                bystander_parts.append(
                    _doc_with(path, other(index) if kind != "boolean" else _default(path))
                )
                holder_parts.append(_doc_with(path, value))
            for workspace, member_id in ((ACME, f"h{index:02d}"), (OTHER, f"twin{index:02d}")):
                if path.canonical == "id":
                    member_id = held(index) if workspace == ACME else member_id
                member = _written_user(unit.session, member_id, doc)
                member.workspace_id = workspace
                made.append((index, path.canonical, member))
        bystander = _written_user(
            unit.session, "by", _merged({"userName": "by@acme.test"}, *bystander_parts)
        )
        everything = _merged({"userName": "all@acme.test"}, *holder_parts)
        deleted = _written_user(unit.session, "deleted", everything)
        deleted.deleted_at = EARLY
        elsewhere = _written_user(unit.session, "elsewhere", everything)
        elsewhere.workspace_id = OTHER
        unit.session.flush()
        _server_set(unit.session, made, bystander, [deleted, elsewhere])
    yield database


def _default(path: FilterPath) -> bool:
    """The value of a boolean its holder does not hold (a left-out one is unassigned)."""
    return path.canonical == "active"


def _server_set(
    session: Any, made: list[tuple[int, str, Member]], bystander: Member, everything: list[Member]
) -> None:
    """The values no client writes: timestamps, and groups (through memberships)."""
    for index, canonical, member in made:
        if canonical in ("meta.created", "meta.lastModified"):
            column = "created_at" if canonical == "meta.created" else "modified_at"
            setattr(member, column, at(LATE.replace("Z", "+00:00")))
        if canonical in ("groups.value", "groups.display"):
            group_id = held(index) if canonical == "groups.value" else f"g{member.id}"
            name = held(index) if canonical == "groups.display" else f"group of {member.id}"
            group = Group(
                id=group_id if member.workspace_id == ACME else f"{group_id}-2",
                workspace_id=member.workspace_id,
                display_name=name,
                display_name_key=name.lower(),
                created_at=EARLY,
                modified_at=EARLY,
            )
            session.add(group)
            session.flush()
            session.add(Membership(group_id=group.id, member_id=member.id))
            if member.workspace_id == ACME:
                for someone in everything:
                    session.add(Membership(group_id=group.id, member_id=someone.id))
    for index, path in enumerate(USER_PATHS):
        if path.canonical in ("groups.value", "groups.display"):
            session.add(
                Group(
                    id=other(index),
                    workspace_id=ACME,
                    display_name=other(index),
                    display_name_key=other(index).lower(),
                    created_at=EARLY,
                    modified_at=EARLY,
                )
            )
            session.flush()
            session.add(Membership(group_id=other(index), member_id=bystander.id))


def test_every_user_path_finds_its_holder_only(user_holders: Database) -> None:
    """eq, co, sw, ew, ne, pr and their negations, on each path: the member holding the value,
    never the bystander, another workspace's twin, or a deleted member holding the same."""
    everyone = users_found(user_holders, "id pr")
    assert len(everyone) > 60 and {"by", "h01"} <= everyone
    assert everyone.isdisjoint({"deleted", "elsewhere"}) and not any(
        i.startswith("twin") for i in everyone
    )
    checked = set()
    cases: list[tuple[str, set[str]]] = []
    for index, path in enumerate(USER_PATHS):
        kind = _user_kind(path)
        holder = held(index) if path.canonical == "id" else f"h{index:02d}"
        p = path.text
        if kind in ("unfilterable", "constant"):
            continue
        checked.add(path.canonical)
        if kind == "boolean":
            value = str(not _default(path)).lower()
            # active is on every member (a POST without it makes it active); a primary only
            # where written (the bystander's): one left out is unassigned.
            assigned = everyone if path.parent is None else {"by", holder}
            cases += [
                (f"{p} eq {value}", {holder}),
                (f"not ({p} eq {value})", everyone - {holder}),
                (f"{p} ne {value}", assigned - {holder}),
                (f"{p} pr", assigned),
            ]
            continue
        if path.canonical in ("meta.created", "meta.lastModified"):
            cases += datetime_cases(p, holder, everyone)
            continue
        if path.canonical in ("id", "userName"):
            assigned = everyone
        elif path.canonical in ("groups.value", "groups.display"):
            assigned = {
                holder,
                "by",
                *(
                    f"h{i:02d}"
                    for i, q in enumerate(USER_PATHS)
                    if q.canonical in ("groups.value", "groups.display")
                ),
            }
        else:
            assigned = {holder, "by"}
        cases += string_cases(path, held(index), holder, assigned, everyone)
    assert checked >= {
        "emails.value",
        "addresses.country",
        "groups.display",
        "manager.value",
        "active",
        "meta.created",
        "id",
        "userName",
    }
    # A single-valued complex attribute: present when one of its parts is; [...] on its parts.
    for parent in ("name", f"{ENTERPRISE_USER_SCHEMA}:manager"):
        parts = {
            (f"h{i:02d}", q.attribute.name)
            for i, q in enumerate(USER_PATHS)
            if q.text.startswith(parent + ".") and q.canonical not in UNFILTERABLE
        }
        assert len(parts) >= 2
        holders = {holder for holder, _ in parts}
        cases += [
            (f"{parent} pr", holders | {"by"}),
            (f"not ({parent} pr)", everyone - holders - {"by"}),
        ]
        cases += [
            (f'{parent}[{sub} eq "{held(int(holder[1:]))}"]', {holder}) for holder, sub in parts
        ]
    cases += [("meta pr", everyone), ("not (meta pr)", set())]
    # A multi-valued attribute is present when it has a value, whichever parts that value has.
    for parent in {
        q.parent.name for q in USER_PATHS if q.parent is not None and q.parent.multi_valued
    }:
        with_rows = {
            "by",
            *(
                f"h{i:02d}"
                for i, q in enumerate(USER_PATHS)
                if q.parent is not None
                and q.parent.name == parent
                and _user_kind(q) not in ("unfilterable", "constant")
            ),
        }
        cases += [(f"{parent} pr", with_rows), (f"not ({parent} pr)", everyone - with_rows)]
    # The constants: the same on every row, so a filter on them finds all or nothing.
    in_groups = {
        "by",
        *(
            f"h{i:02d}"
            for i, q in enumerate(USER_PATHS)
            if q.canonical in ("groups.value", "groups.display")
        ),
    }
    cases += [
        ('meta.resourceType eq "User"', everyone),
        ('meta.resourceType eq "user"', set()),  # caseExact
        ('meta.resourceType eq "Group"', set()),
        ('meta.resourceType ne "User"', set()),
        ("meta.resourceType pr", everyone),
        ('groups.type eq "direct"', in_groups),  # groups do not nest
        ('groups.type eq "indirect"', set()),
        ('groups[type eq "direct" and display eq "Nb00-Zz"]', set()),
        ("groups pr", in_groups),
    ]
    check(lambda text: users_found(user_holders, text), cases)


# -- Groups: every path --------------------------------------------------------------------------


def _group(session: Any, group_id: str, name: str, workspace: int = ACME, **fields: Any) -> Group:
    """A group written as SCIM writes one (display name key, external id)."""
    group = Group(id=group_id, workspace_id=workspace, created_at=EARLY, modified_at=EARLY)
    write_group_fields(group, {"displayName": name, **fields})
    session.add(group)
    session.flush()
    return group


def _person(session: Any, member_id: str, *, workspace: int = ACME, **doc: Any) -> Member:
    """A member written as SCIM writes one, userName <id>@acme.test, plus ``doc``."""
    member = _written_user(session, member_id, {"userName": f"{member_id}@acme.test", **doc})
    member.workspace_id = workspace
    session.flush()
    return member


@pytest.fixture
def group_holders(database: Database) -> Iterator[Database]:
    """In ACME: for each path i a group ``g<i>`` holding held(i) there, and a bystander group
    ``gby`` holding other(i); ``g-gone`` whose only member, deleted, holds every members.* value;
    ``g-plain``, whose member has no displayName. In OTHER: twins holding the same values."""
    with transaction(database, write=True) as unit:
        for workspace, slug in ((ACME, "acme"), (OTHER, "other")):
            unit.session.add(
                Workspace(
                    id=workspace, slug=slug, name=slug, plan="plus", owner_email=f"o@{slug}.example"
                )
            )
        unit.session.flush()
        index_of = {path.canonical: index for index, path in enumerate(GROUP_PATHS)}
        by_value, by_display = other(index_of["members.value"]), other(index_of["members.display"])
        bystander = _group(
            unit.session,
            "gby",
            other(index_of["displayName"]),
            externalId=other(index_of["externalId"]),
        )
        unit.session.add(
            Membership(
                group_id=bystander.id,
                member_id=_person(unit.session, by_value, displayName=by_display).id,
            )
        )
        gone = _person(unit.session, "gone", displayName=held(index_of["members.display"]))
        gone.deleted_at = EARLY
        unit.session.add(
            Membership(group_id=_group(unit.session, "g-gone", "Gone").id, member_id=gone.id)
        )
        unit.session.add(
            Membership(
                group_id=_group(unit.session, "g-plain", "Plain").id,
                member_id=_person(unit.session, "Plain", displayName=None).id,
            )
        )
        for index, path in enumerate(GROUP_PATHS):
            value, gid = held(index), f"g{index:02d}"
            for workspace in (ACME, OTHER):
                if workspace == OTHER:
                    gid = f"twin{index:02d}"
                if path.canonical == "id":
                    _group(
                        unit.session, value if workspace == ACME else gid, f"{gid} group", workspace
                    )
                elif path.canonical == "externalId":
                    _group(unit.session, gid, f"{gid} group", workspace, externalId=value)
                elif path.canonical == "displayName":
                    _group(unit.session, gid, value, workspace)
                elif path.canonical in ("meta.created", "meta.lastModified"):
                    group = _group(unit.session, gid, f"{gid} group", workspace)
                    column = "created_at" if path.canonical == "meta.created" else "modified_at"
                    setattr(group, column, at(LATE.replace("Z", "+00:00")))
                elif path.canonical in ("members.value", "members.display"):
                    group = _group(unit.session, gid, f"{gid} group", workspace)
                    member_id = value if workspace == ACME else f"m-{gid}"
                    display = value if path.canonical == "members.display" else None
                    if path.canonical == "members.value" or workspace == OTHER:
                        display = display or f"member of {gid}"
                    unit.session.add(
                        Membership(
                            group_id=group.id,
                            member_id=_person(
                                unit.session,
                                member_id if path.canonical == "members.value" else f"m-{gid}",
                                workspace=workspace,
                                displayName=display,
                            ).id,
                        )
                    )
    yield database


def test_every_group_path_finds_its_holder_only(group_holders: Database) -> None:
    """As for Users: each path finds the group holding the value, not the bystander, another
    workspace's twin, nor a group whose only member holding it is deleted."""
    everyone = groups_found(group_holders, "id pr")
    assert {"gby", "g-gone", "g-plain", "g00"} <= everyone
    assert not any(group.startswith("twin") for group in everyone)
    with_members = {"gby", "g-plain"} | {
        f"g{i:02d}"
        for i, path in enumerate(GROUP_PATHS)
        if path.canonical in ("members.value", "members.display")
    }
    cases: list[tuple[str, set[str]]] = [
        ("members pr", with_members),
        ("not (members pr)", everyone - with_members),
        ('members.display eq "plain@ACME.test"', {"g-plain"}),  # no displayName: the userName
        ('members.value eq "gone"', set()),  # a deleted member is in no group SCIM shows
        ('members.display eq "gone@acme.test"', set()),
    ]
    checked = set()
    for index, path in enumerate(GROUP_PATHS):
        holder = held(index) if path.canonical == "id" else f"g{index:02d}"
        p = path.text
        if path.canonical in UNFILTERABLE | CONSTANT:
            continue
        checked.add(path.canonical)
        if path.canonical in ("meta.created", "meta.lastModified"):
            cases += datetime_cases(p, holder, everyone)
            continue
        if path.canonical in ("id", "displayName"):
            assigned = everyone
        elif path.canonical.startswith("members."):
            assigned = with_members
        else:
            assigned = {holder, "gby"}
        cases += string_cases(path, held(index), holder, assigned, everyone)
    assert checked == {
        "id",
        "externalId",
        "displayName",
        "meta.created",
        "meta.lastModified",
        "members.value",
        "members.display",
    }
    cases += [
        ('meta.resourceType eq "Group"', everyone),
        ('meta.resourceType eq "User"', set()),
        ('members.type eq "User"', with_members),
        ('members.type eq "Group"', set()),
        ('members[type eq "User" and value eq "gone"]', set()),
    ]
    check(lambda text: groups_found(group_holders, text), cases)


# -- values around the 1,024 characters of member_values.value_key, beyond ASCII ---------------
#
# value_key holds value.lower()[:1024], lowered by Python. A value no longer than the key is
# compared through it, so its case folds on every backend (SQLite's lower() folds ASCII only);
# only a value that may have been cut is compared whole. tests/scim/test_filters.py walks
# the lengths around the cut with ASCII values, where both ways give the same answer.

UNICODE = "Éa" * 600
ASCII = "Qz" * 600
KEYED = {
    "c1022": ("x509Certificates", UNICODE[:1022]),
    "c1023": ("x509Certificates", UNICODE[:1023]),
    "r1024": ("roles", UNICODE[:1024]),
    "r1025": ("roles", UNICODE[:1025]),
    "e1024": ("entitlements", ASCII[:1024]),
    "e1025": ("entitlements", ASCII[:1025]),
}


@pytest.fixture
def unicode_values(database: Database) -> Iterator[Database]:
    """Members holding each value of KEYED, as a certificate, role or entitlement."""
    with transaction(database, write=True) as unit:
        unit.session.add(
            Workspace(id=ACME, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example")
        )
        unit.session.flush()
        for member_id, (attribute, value) in KEYED.items():
            values: dict[str, Any] = {attribute: [{"value": value}]}
            member = _person(unit.session, member_id, **values)
            assert len(member.values[0].value_key or "") == min(len(value), 1024)
    yield database


def test_values_the_key_holds_whole_compare_by_the_key(unicode_values: Database) -> None:
    lowered = UNICODE.lower()
    check(
        lambda text: users_found(unicode_values, text),
        [
            (f'x509Certificates eq "{lowered[:1022]}"', {"c1022"}),
            (f'x509Certificates eq "{lowered[:1023]}"', {"c1023"}),
            (f'x509Certificates eq "{UNICODE[:1023]}"', {"c1023"}),
            (f'x509Certificates ne "{lowered[:1023]}"', {"c1022"}),
            (f'x509Certificates sw "{lowered[:1022]}"', {"c1022", "c1023"}),
            (f'x509Certificates sw "{lowered[:1023]}"', {"c1023"}),
            ('x509Certificates co "éaé"', {"c1022", "c1023"}),
            ('x509Certificates ew "aéa"', {"c1022"}),
            ('x509Certificates ew "éaé"', {"c1023"}),
            # 1,024 characters: all a key holds, so an operand that long may only start a value.
            (f'roles sw "{lowered[:1024]}"', {"r1024", "r1025"}),
            # Past the key only the whole value tells (through SQL lower(): ASCII here, see above).
            (f'entitlements eq "{ASCII[:1024].lower()}"', {"e1024"}),
            (f'entitlements ne "{ASCII[:1024]}"', {"e1025"}),
            (f'entitlements sw "{ASCII[:1024]}"', {"e1024", "e1025"}),
            (f'entitlements sw "{ASCII[:1025]}"', {"e1025"}),
            ('entitlements ew "ZQ"', {"e1025"}),  # its last two characters: one past the key
            ('entitlements co "zqzq"', {"e1024", "e1025"}),
        ],
    )


def test_non_strings_are_never_compared_with_the_empty_string() -> None:
    """Only strings can be "" (unassigned): PostgreSQL refuses to compare a boolean or a
    timestamp with '', which SQLite would quietly do."""
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    texts = [
        "active pr",
        "active eq true",
        "not (active ne false)",
        "emails.primary pr",
        "emails[primary eq true]",
        "meta.created pr",
        'meta.lastModified gt "2024-01-01"',
    ]
    for text in texts:
        query = select(Member.id).where(compile_filter(parse_filter(text), USER_RESOURCE))
        sql = str(
            query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        )
        assert "''" not in sql, (text, sql)
    query = select(Member.id).where(compile_filter(parse_filter("title pr"), USER_RESOURCE))
    assert "''" in str(
        query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )  # the premise


def test_the_sql_names_every_table_it_aliases() -> None:
    """The group/member subqueries alias their tables (so they never correlate with an outer
    query over the same table): PostgreSQL refuses a zero-length alias, which SQLite accepts."""
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    for resource, model, text in (
        (USER_RESOURCE, Member, 'groups[display eq "a" and value eq "b"]'),
        (GROUP_RESOURCE, Group, 'members[display eq "a" and value eq "b"]'),
    ):
        query = select(model.id).where(compile_filter(parse_filter(text), resource))
        sql = str(query.compile(dialect=postgresql.dialect()))
        assert " AS " in sql and '""' not in sql, sql


# -- empty strings: unassigned (RFC 7643 2.5), whatever the operator ---------------------------


@pytest.fixture
def blanks(database: Database) -> Iterator[Database]:
    """``blank`` holds empty strings (as rows stored before SCIM wrote "" as NULL did), ``set``
    holds "Mid", ``unset`` holds nothing, in a title and in an email's value and type."""
    with transaction(database, write=True) as unit:
        unit.session.add(
            Workspace(id=ACME, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example")
        )
        unit.session.flush()
        for member_id, text in (("blank", ""), ("set", "Mid"), ("unset", None)):
            member = _person(unit.session, member_id)
            member.title = text
            if text is not None:
                member.values = [
                    MemberValue(
                        attribute="emails",
                        position=0,
                        value=text,
                        value_key=text.lower(),
                        type=text,
                    )
                ]
    yield database


def test_empty_strings_are_unassigned_for_every_operator(blanks: Database) -> None:
    """No comparison holds for "" (not even ne, gt, or co "") and pr does not, so not() of
    any of them holds: on a column, on a multi-valued attribute, and inside a value filter."""
    terms: list[tuple[str, set[str]]] = [
        ("{} pr", {"set"}),
        ('{} eq ""', set()),
        ('{} ne ""', {"set"}),
        ('{} ne "zzz"', {"set"}),
        ('{} co ""', {"set"}),
        ('{} sw ""', {"set"}),
        ('{} ew ""', {"set"}),
        ('{} gt ""', {"set"}),
        ('{} ge ""', {"set"}),
        ('{} lt "zzz"', {"set"}),
        ('{} le "zzz"', {"set"}),
    ]
    cases: list[tuple[str, set[str]]] = []
    for form in ("title", "emails.value", "emails.type", "emails[type]"):
        for term, expected in terms:
            text = f"emails[{term.format('type')}]" if form == "emails[type]" else term.format(form)
            cases += [(text, expected), (f"not ({text})", {"blank", "set", "unset"} - expected)]
    check(lambda text: users_found(blanks, text), cases)


def test_the_shared_attribute_maps_cannot_be_changed_in_place() -> None:
    """The maps are module-level and every request on every thread compiles with them: a
    target assigned to by one compile would change what another's filter means."""
    from webwork_sso_middleware.store import scim_filters as filter_sql

    targets = [
        target
        for table in (filter_sql.USER_COLUMNS, filter_sql.GROUP_COLUMNS)
        for target in table.values()
    ]
    rows = [*filter_sql.USER_ROWS.values(), *filter_sql.GROUP_ROWS.values()]
    targets += [target for row in rows for target in row.columns.values()]
    kinds = {type(target) for target in targets} | {type(row) for row in rows}
    assert kinds == {filter_sql.Stored, filter_sql.Constant, filter_sql.Rows}
    for value in [*targets, *rows]:
        field = dataclasses.fields(value)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, None)
