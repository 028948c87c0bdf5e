"""A page of SCIM Users or Groups (store/scim_queries.py): a filter's condition, the sort
column of each sortable attribute, both directions, and the page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from webwork_sso_middleware.scim.filter_query import compile_filter
from webwork_sso_middleware.scim.filters import parse_filter
from webwork_sso_middleware.scim.schemas import USER, USER_RESOURCE
from webwork_sso_middleware.scim.writes import write_group_fields, write_user
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import Group, Member, Workspace
from webwork_sso_middleware.store.scim_queries import SORTABLE, group_page, member_page

from ..store_helpers import transaction

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
# (id, userName, givenName, work email), created a day apart in this order.
PEOPLE = [
    ("m1", "carol@acme.example", "Carol", "zed@acme.example"),
    ("m2", "alice@acme.example", "Alice", "yan@acme.example"),
    ("m3", "bob@acme.example", "Bob", "xia@acme.example"),
]
TEAMS = [("g1", "Beta"), ("g2", "alpha"), ("g3", "Gamma")]


@pytest.fixture
def directory(database: Database) -> Iterator[Database]:
    with transaction(database, write=True) as unit:
        unit.session.add(
            Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example")
        )
        unit.session.flush()
        for day, (member_id, user_name, given, email) in enumerate(PEOPLE):
            when = START + dt.timedelta(days=day)
            member = Member(id=member_id, workspace_id=1, created_at=when, modified_at=when)
            write_user(
                member,
                {
                    "schemas": [USER.id],
                    "userName": user_name,
                    "name": {"givenName": given},
                    "emails": [{"value": email, "type": "work"}],
                },
            )
            unit.session.add(member)
        for day, (group_id, name) in enumerate(TEAMS):
            when = START + dt.timedelta(days=day)
            group = Group(id=group_id, workspace_id=1, created_at=when, modified_at=when)
            write_group_fields(group, {"displayName": name})
            unit.session.add(group)
    yield database


def members(
    database: Database,
    text: str | None,
    sort_by: str | None,
    descending: bool = False,
    offset: int = 0,
    limit: int = 10,
) -> tuple[int, list[str]]:
    where = None if text is None else compile_filter(parse_filter(text), USER_RESOURCE)
    with transaction(database) as unit:
        total, records = member_page(
            unit, 1, where=where, sort_by=sort_by, descending=descending, offset=offset, limit=limit
        )
        return total, [record.row.id for record in records]


def groups(database: Database, sort_by: str | None, descending: bool = False) -> list[str]:
    with transaction(database) as unit:
        _, rows = group_page(
            unit, 1, where=None, sort_by=sort_by, descending=descending, offset=0, limit=10
        )
        return [group.id for group in rows]


def test_members_come_by_creation_without_a_sort(directory: Database) -> None:
    assert members(directory, None, None) == (3, ["m1", "m2", "m3"])


@pytest.mark.parametrize(
    "sort_by, ascending",
    [
        ("userName", ["m2", "m3", "m1"]),
        ("name.givenName", ["m2", "m3", "m1"]),
        ("emails", ["m3", "m2", "m1"]),  # by the primary (here the work) email
        ("emails.value", ["m3", "m2", "m1"]),
        ("meta.created", ["m1", "m2", "m3"]),
    ],
)
def test_members_sort_both_ways(directory: Database, sort_by: str, ascending: list[str]) -> None:
    assert members(directory, None, sort_by) == (3, ascending)
    assert members(directory, None, sort_by, descending=True) == (3, ascending[::-1])


def test_the_filter_and_the_page_apply_with_the_sort(directory: Database) -> None:
    assert members(directory, 'name.givenName ne "Bob"', "userName") == (2, ["m2", "m1"])
    assert members(directory, None, "userName", offset=1, limit=1) == (3, ["m3"])


def test_groups_sort_by_name_ignoring_case(directory: Database) -> None:
    assert groups(directory, None) == ["g1", "g2", "g3"]
    assert groups(directory, "displayName") == ["g2", "g1", "g3"]
    assert groups(directory, "displayName", descending=True) == ["g3", "g1", "g2"]


@pytest.mark.parametrize(
    "resource, name",
    [(resource, name) for resource in sorted(SORTABLE) for name in sorted(SORTABLE[resource])],
)
def test_every_sortable_attribute_runs(directory: Database, resource: str, name: str) -> None:
    if resource == "User":
        assert members(directory, None, name)[0] == 3
    else:
        assert sorted(groups(directory, name)) == ["g1", "g2", "g3"]
