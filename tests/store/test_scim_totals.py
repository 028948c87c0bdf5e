"""SCIM totals kept by triggers (migration 0013) and the backwards walk of a late page
(store/scim_totals.py, used by store/members.py and store/groups.py page)."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, func, select, update

from webwork_sso_middleware.scim.writes import write_group_fields, write_user
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import Group, Member, ScimTotal, Workspace
from webwork_sso_middleware.store.scim_queries import group_page, member_page

from ..store_helpers import Statements, transaction

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
TITLES = ["b", None, "a", "c", None, "a", "b"]  # NULLs and ties: the id decides


def add_members(database: Database, workspace_id: int, count: int, *, first: int = 0) -> None:
    with transaction(database, write=True) as unit:
        for i in range(first, first + count):
            when = START + dt.timedelta(hours=i % 5)  # ties on created_at too
            member = Member(
                id=f"w{workspace_id}-m{i:03d}", workspace_id=workspace_id, created_at=when
            )
            doc = {"userName": f"u{i:03d}@w{workspace_id}.example"}
            if TITLES[i % len(TITLES)] is not None:
                doc["title"] = TITLES[i % len(TITLES)]
            write_user(member, doc)
            unit.session.add(member)


@pytest.fixture
def two_workspaces(database: Database) -> Iterator[Database]:
    with transaction(database, write=True) as unit:
        for wid, slug in ((1, "acme"), (2, "hostile")):
            unit.session.add(
                Workspace(
                    id=wid, slug=slug, name=slug, plan="plus", owner_email=f"o@{slug}.example"
                )
            )
    add_members(database, 1, 7)
    add_members(database, 2, 11)  # the hostile workspace: bigger, never counted in acme's
    yield database


def totals(database: Database, workspace_id: int) -> tuple[int, int]:
    with transaction(database) as unit:
        members, _ = member_page(
            unit, workspace_id, where=None, sort_by=None, descending=False, offset=0, limit=0
        )
        groups, _ = group_page(
            unit, workspace_id, where=None, sort_by=None, descending=False, offset=0, limit=0
        )
        return members, groups


def counted(database: Database, workspace_id: int) -> tuple[int, int]:
    """The same totals by COUNT, as the triggers must keep them."""
    with transaction(database) as unit:
        members = unit.session.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.workspace_id == workspace_id, Member.deleted_at.is_(None))
        )
        groups = unit.session.scalar(
            select(func.count()).select_from(Group).where(Group.workspace_id == workspace_id)
        )
        return members or 0, groups or 0


def test_totals_follow_creates_deletes_and_stay_per_workspace(two_workspaces: Database) -> None:
    db = two_workspaces
    assert totals(db, 1) == (7, 0) and totals(db, 2) == (11, 0)
    with transaction(db, write=True) as unit:  # SCIM's delete: deleted_at set, row kept
        unit.session.execute(update(Member).where(Member.id == "w1-m001").values(deleted_at=START))
        unit.session.execute(delete(Member).where(Member.id == "w1-m002"))  # a hard delete
        unit.session.execute(delete(Member).where(Member.id == "w1-m003"))
        unit.session.execute(  # a deleted member's hard delete changes nothing more
            delete(Member).where(Member.id == "w1-m001")
        )
        for i, name in enumerate(("Alpha", "Beta", "Gamma")):
            group = Group(id=f"g{i}", workspace_id=1)
            write_group_fields(group, {"displayName": name})
            unit.session.add(group)
    assert totals(db, 1) == (4, 3) == counted(db, 1)
    with transaction(db, write=True) as unit:
        unit.session.execute(delete(Group).where(Group.id == "g1"))
        unit.session.execute(update(Member).where(Member.id == "w1-m004").values(deleted_at=START))
        unit.session.execute(update(Member).where(Member.id == "w1-m004").values(deleted_at=None))
    assert totals(db, 1) == (4, 2) == counted(db, 1)
    assert totals(db, 2) == (11, 0) == counted(db, 2)  # the hostile one's untouched, and vice versa


def test_a_failed_transaction_leaves_the_total(two_workspaces: Database) -> None:
    with pytest.raises(RuntimeError), transaction(two_workspaces, write=True) as unit:
        unit.session.add(Member(id="x", workspace_id=1, user_name="x", user_name_key="x"))
        unit.session.flush()
        raise RuntimeError("rolled back")
    assert totals(two_workspaces, 1) == (7, 0)


def test_a_deleted_workspace_takes_its_totals(two_workspaces: Database) -> None:
    with transaction(two_workspaces, write=True) as unit:
        unit.session.execute(delete(Workspace).where(Workspace.id == 2))
    with transaction(two_workspaces) as unit:
        assert set(unit.session.scalars(select(ScimTotal.workspace_id))) == {1}
    assert totals(two_workspaces, 1) == (7, 0)


def test_concurrent_creates_in_one_workspace_are_all_counted(two_workspaces: Database) -> None:
    def create(batch: int) -> None:
        add_members(two_workspaces, 1, 5, first=100 + 5 * batch)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(create, range(8)))
    assert totals(two_workspaces, 1) == (47, 0) == counted(two_workspaces, 1)
    assert totals(two_workspaces, 2) == (11, 0)


def page_ids(
    database: Database, sort_by: str | None, descending: bool, offset: int, limit: int
) -> tuple[int, list[str]]:
    with transaction(database) as unit:
        total, records = member_page(
            unit, 1, where=None, sort_by=sort_by, descending=descending, offset=offset, limit=limit
        )
        return total, [record.row.id for record in records]


@pytest.mark.parametrize("sort_by", [None, "title", "userName", "meta.created"])
@pytest.mark.parametrize("descending", [False, True])
def test_every_page_read_backwards_is_the_forward_pages_slice(
    two_workspaces: Database, sort_by: str | None, descending: bool
) -> None:
    """Each window of every size, at every offset: the same ids in the same order as the slice
    of the whole list (one page of all), whichever way it was walked; never the hostile
    workspace's members."""
    total, everyone = page_ids(two_workspaces, sort_by, descending, 0, 100)
    assert total == 7 and sorted(everyone) == [f"w1-m{i:03d}" for i in range(7)]
    for limit in (1, 2, 3, 6, 7, 8):
        for offset in range(0, 9):
            assert page_ids(two_workspaces, sort_by, descending, offset, limit) == (
                7,
                everyone[offset : offset + limit],
            ), (limit, offset)


def test_the_last_page_is_read_backwards_and_counted_by_no_count(two_workspaces: Database) -> None:
    with Statements(two_workspaces) as statements:
        assert page_ids(two_workspaces, None, False, 5, 2)[0] == 7
    pages = statements.matching("FROM members")
    assert not [s for s, _ in statements.seen if "count(" in s.lower()]
    assert any("ORDER BY members.created_at DESC" in s for s, _ in pages)


def test_groups_page_backwards_too(two_workspaces: Database) -> None:
    with transaction(two_workspaces, write=True) as unit:
        for i in range(5):
            group = Group(id=f"g{i}", workspace_id=1, created_at=START + dt.timedelta(hours=i % 2))
            write_group_fields(group, {"displayName": f"G{4 - i}"})
            unit.session.add(group)
    for sort_by in (None, "displayName"):
        with transaction(two_workspaces) as unit:
            _, rows = group_page(
                unit, 1, where=None, sort_by=sort_by, descending=False, offset=0, limit=10
            )
            everyone = [g.id for g in rows]
            for offset in range(6):
                total, rows = group_page(
                    unit, 1, where=None, sort_by=sort_by, descending=False, offset=offset, limit=2
                )
                assert (total, [g.id for g in rows]) == (5, everyone[offset : offset + 2])
