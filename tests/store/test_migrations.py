"""Upgrading a database that holds data: 0005 turns domains into unverified claims and rekeys
member names (the identity contract of issue 9), on the backend under test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.workspaces import Workspaces

from ..conftest import POSTGRES_URL, scratch_postgres_database
from .migration_rows import (
    NOW,
    domain_row,
    downgrade,
    email_row,
    group_row,
    insert,
    member_row,
    rows_at,
    workspace_row,
)


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own with no tables: a file, or a new PostgreSQL database."""
    if not POSTGRES_URL:
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with scratch_postgres_database("webwork_sso_migrate") as url:
        yield url


def test_0005_keeps_domains_as_unverified_claims_and_rekeys_members(empty_database_url: str):
    with rows_at(empty_database_url, "0004") as conn:
        insert(conn, "workspaces", workspace_row("0004"))
        insert(
            conn,
            "workspace_domains",
            domain_row("0004", "acme.test"),
            domain_row("0004", "eu.acme.test"),
        )
        for member_id, name, key in (
            ("m1", "Dave@Acme.test", "dave@acme.test"),  # rekeyed to the same key
            ("m2", "\uff45ve@acme.test", "\uff45ve@acme.test"),  # full-width: becomes eve@
            ("m3", "eve@acme.test", "eve@acme.test"),  # ... which m3 holds: m2 keeps its key
            ("m4", "FRANK@acme.test", "FRANK@acme.test"),  # an old key, now case-folded
        ):
            insert(conn, "members", member_row(member_id, name, user_name_key=key, email_key=key))

    database = Database(empty_database_url)  # auto_migrate: upgrades to head
    try:
        info = Workspaces(database).get("acme")
        assert info.domains == ("acme.test", "eu.acme.test")
        assert info.verified_domains == ()  # a claim until verified
        tokens = {claim.record.value for claim in info.domain_claims}
        assert len(tokens) == 2 and all(len(t) > 30 for t in tokens)
        with database.engine.connect() as conn:
            keys = dict(conn.execute(text("SELECT id, user_name_key FROM members")).all())
        assert keys == {
            "m1": "dave@acme.test",
            "m2": "\uff45ve@acme.test",
            "m3": "eve@acme.test",
            "m4": "frank@acme.test",
        }
        # The owner verifies, and the claim becomes what decides sign-in.
        Workspaces(database).verify_domain("acme", "acme.test", by_operator=True)
        assert Workspaces(database).get("acme").verified_domains == ("acme.test",)
    finally:
        database.dispose()


def test_0007_drops_the_saml_requests_table_nothing_writes(empty_database_url: str):
    # Pending AuthnRequests live in a signed cookie; the table and its model were left over.
    old = Database(empty_database_url, auto_migrate=False)
    old.upgrade("0006")
    assert "saml_requests" in old.table_names()
    old.dispose()

    database = Database(empty_database_url)  # auto_migrate: upgrades to head
    try:
        assert "saml_requests" not in database.table_names()
        assert "saml_requests" not in database.table_names()
    finally:
        database.dispose()


def test_0008_adds_sp_keys_and_keeps_every_row(empty_database_url: str):
    """The new workspace columns are added in place: no workspace, domain or member row lost
    (a batch copy of ``workspaces`` on SQLite would cascade its drop to them)."""
    with rows_at(empty_database_url, "0007") as conn:
        insert(conn, "workspaces", workspace_row("0007"))
        insert(conn, "workspace_domains", domain_row("0007", "acme.test"))

    database = Database(empty_database_url)
    try:
        assert database.current_revision() >= "0008"  # head: later revisions keep it
        assert "sp_keys" in database.table_names()
        info = Workspaces(database).get("acme")
        assert info.domains == ("acme.test",)
        with database.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT sign_authn_requests, require_encrypted_assertions, sp_version"
                    " FROM workspaces"
                )
            ).one()
        assert (bool(row[0]), bool(row[1]), row[2]) == (False, False, 0)
    finally:
        database.dispose()


def test_0009_adds_require_sso_in_place_and_keeps_every_row(empty_database_url: str):
    """require_sso and break_glass_until are added with plain ADD COLUMN: no workspace, domain,
    member or token row is lost (a batch copy of ``workspaces`` on SQLite would cascade)."""
    with rows_at(empty_database_url, "0008") as conn:
        insert(conn, "workspaces", workspace_row("0008"))
        insert(
            conn,
            "workspace_domains",
            domain_row("0008", "acme.test", verified_at=NOW, verified_by="operator"),
        )
        insert(conn, "members", member_row())
        insert(
            conn,
            "scim_tokens",
            {"id": 1, "workspace_id": 1, "token_hash": "h", "hint": "wwsso_x", "created_at": NOW},
        )

    database = Database(empty_database_url, auto_migrate=False)
    try:
        database.upgrade("0009")
        assert database.current_revision() == "0009"
        with database.engine.connect() as conn:
            counts = [
                conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                for table in ("workspaces", "workspace_domains", "members", "scim_tokens")
            ]
            row = conn.execute(text("SELECT require_sso, break_glass_until FROM workspaces")).one()
        assert counts == [1, 1, 1, 1]
        assert (bool(row[0]), row[1]) == (False, None)
        database.upgrade()  # the models are head's: later revisions add columns they read
        info = Workspaces(database).get("acme")
        assert info.verified_domains == ("acme.test",) and not info.require_sso
    finally:
        database.dispose()


def test_0012_adds_member_extensions_in_place_and_keeps_every_row(empty_database_url: str):
    """members.extensions is added with plain ADD COLUMN (a batch copy of ``members`` on SQLite
    would cascade to its sessions, values and memberships); existing members get NULL, and
    the downgrade drops it again in place."""
    with rows_at(empty_database_url, "0009") as conn:
        insert(conn, "workspaces", workspace_row("0009"))
        insert(conn, "members", member_row())
        insert(conn, "member_values", email_row(1, 0, "dave@acme.test", primary=True))

    database = Database(empty_database_url, auto_migrate=False)
    try:
        database.upgrade("0012")
        assert database.current_revision() == "0012"
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT id, extensions FROM members")).all() == [("m1", None)]
            assert conn.execute(text("SELECT COUNT(*) FROM member_values")).scalar_one() == 1
        downgrade(database, "0009")
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM members")).scalar_one() == 1
            assert conn.execute(text("SELECT COUNT(*) FROM member_values")).scalar_one() == 1
    finally:
        database.dispose()


def test_0011_adds_groups_and_mappings_in_place_and_keeps_every_row(empty_database_url: str):
    """sign_in_groups, attribute_map and role_map are added with plain ADD COLUMN, NULL for
    existing rows: no workspace or member is lost, none changes behaviour."""
    with rows_at(empty_database_url, "0009") as conn:
        insert(conn, "workspaces", workspace_row("0009"))
        insert(conn, "members", member_row())
    database = Database(empty_database_url, auto_migrate=False)
    try:
        database.upgrade("0011")
        with database.engine.connect() as conn:
            workspace = conn.execute(text("SELECT attribute_map, role_map FROM workspaces")).one()
            member = conn.execute(text("SELECT sign_in_groups FROM members")).one()
        assert tuple(workspace) == (None, None) and tuple(member) == (None,)
    finally:
        database.dispose()


def test_0013_counts_existing_members_and_groups_and_then_keeps_counting(
    empty_database_url: str,
):
    """scim_totals is backfilled per workspace (deleted members not counted), its triggers
    count later writes, and the downgrade removes table, triggers and functions."""
    with rows_at(empty_database_url, "0012") as conn:
        for wid, slug in ((1, "acme"), (2, "hostile"), (3, "empty")):
            insert(conn, "workspaces", workspace_row("0012", id=wid, slug=slug, name="W"))
        for mid, wid, deleted in (
            ("m1", 1, False),
            ("m2", 1, True),
            ("m3", 1, False),
            ("m4", 2, False),
        ):
            insert(
                conn,
                "members",
                member_row(
                    mid, mid, workspace_id=wid, email_key=None, deleted_at=NOW if deleted else None
                ),
            )
        insert(conn, "groups", group_row(workspace_id=2))

    totals = text(
        "SELECT workspace_id, SUM(members), SUM(groups) FROM scim_totals"
        " GROUP BY workspace_id ORDER BY workspace_id"
    )
    database = Database(empty_database_url, auto_migrate=False)
    try:
        database.upgrade("0013")
        with database.engine.begin() as conn:
            assert conn.execute(totals).all() == [(1, 2, 0), (2, 1, 1), (3, 0, 0)]
            conn.execute(text("UPDATE members SET deleted_at = CURRENT_TIMESTAMP WHERE id = 'm1'"))
            conn.execute(text("DELETE FROM groups WHERE id = 'g1'"))
        with database.engine.connect() as conn:
            assert conn.execute(totals).all() == [(1, 1, 0), (2, 1, 0), (3, 0, 0)]
        downgrade(database, "0012")
        with database.engine.begin() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM members")).scalar_one() == 4
            conn.execute(text("DELETE FROM members"))  # no trigger left to fail on
        assert "scim_totals" not in database.table_names()
    finally:
        database.dispose()


def test_0014_keeps_every_row_and_reads_old_ones_as_before(empty_database_url: str):
    """primary false becomes NULL (it was read back absent, and still is), every existing
    member's active stays assigned, every existing membership is marked not as sent (read back
    with computed sub-attributes); the downgrade restores the old shape with every row."""
    with rows_at(empty_database_url, "0013") as conn:
        insert(conn, "workspaces", workspace_row("0013"))
        insert(conn, "members", member_row(active=False))
        insert(
            conn,
            "member_values",
            email_row(1, 0, "dave@acme.test", primary=True),
            email_row(2, 1, "d@home.test", primary=False),
        )
        insert(conn, "groups", group_row())
        insert(conn, "memberships", {"group_id": "g1", "member_id": "m1", "created_at": NOW})

    database = Database(empty_database_url, auto_migrate=False)
    try:
        database.upgrade("0014")
        with database.engine.connect() as conn:
            primaries = conn.execute(text('SELECT id, "primary" FROM member_values ORDER BY id'))
            assert [(i, None if p is None else bool(p)) for i, p in primaries] == [
                (1, True),
                (2, None),
            ]
            member = conn.execute(text("SELECT active, active_assigned FROM members")).one()
            assert (bool(member[0]), bool(member[1])) == (False, True)
            membership = conn.execute(
                text("SELECT member_id, display, type, ref, as_sent FROM memberships")
            ).one()
            assert tuple(membership[:4]) == ("m1", None, None, None) and not membership[4]
        downgrade(database, "0013")
        with database.engine.connect() as conn:
            primaries = conn.execute(text('SELECT "primary" FROM member_values ORDER BY id'))
            assert [bool(p) for (p,) in primaries] == [True, False]
            assert conn.execute(text("SELECT COUNT(*) FROM memberships")).scalar_one() == 1
    finally:
        database.dispose()


def test_0015_totals_keep_counting_through_upgrade_and_downgrade(empty_database_url: str):
    """The PostgreSQL trigger functions add to their slot themselves (0015); the counts stay
    exact through the upgrade and the downgrade, per workspace, on either backend."""
    with rows_at(empty_database_url, "0014") as conn:
        for wid, slug in ((1, "acme"), (2, "hostile")):
            insert(conn, "workspaces", workspace_row("0014", id=wid, slug=slug, name="W"))
        insert(conn, "members", member_row("m1", "m1", workspace_id=1, email_key=None))

    totals = text(
        "SELECT workspace_id, SUM(members), SUM(groups) FROM scim_totals"
        " GROUP BY workspace_id ORDER BY workspace_id"
    )
    helper = text(
        "SELECT COUNT(*) FROM pg_proc"
        " WHERE proname = 'scim_totals_add' AND pronamespace = current_schema()::regnamespace"
    )
    # PostgreSQL: each connection adds to its own slot, so concurrent creates never queue on
    # one row; this one's adds (a1, b1 and g1 end up in workspace 1) are in its slot.
    own_slot = text(
        "SELECT members, groups FROM scim_totals"
        " WHERE workspace_id = 1 AND slot = mod(pg_backend_pid(), 16)"
    )

    def write(conn: Connection, n: int) -> None:
        """Each trigger path once: insert, soft delete, undelete, move, group create/move."""
        insert(conn, "members", member_row(f"a{n}", f"a{n}", workspace_id=1, email_key=None))
        insert(conn, "members", member_row(f"b{n}", f"b{n}", workspace_id=2, email_key=None))
        conn.execute(text(f"UPDATE members SET deleted_at = CURRENT_TIMESTAMP WHERE id = 'a{n}'"))
        conn.execute(text(f"UPDATE members SET deleted_at = NULL WHERE id = 'a{n}'"))
        conn.execute(text(f"UPDATE members SET workspace_id = 1 WHERE id = 'b{n}'"))
        insert(
            conn,
            "groups",
            group_row(id=f"g{n}", workspace_id=2, display_name=f"G{n}", display_name_key=f"g{n}"),
        )
        conn.execute(text(f"UPDATE groups SET workspace_id = 1 WHERE id = 'g{n}'"))

    database = Database(empty_database_url, auto_migrate=False)
    try:
        database.upgrade("0015")
        with database.engine.begin() as conn:
            if not database.is_sqlite:
                assert conn.execute(helper).scalar_one() == 0
            assert conn.execute(totals).all() == [(1, 1, 0), (2, 0, 0)]
            write(conn, 1)
            if not database.is_sqlite:
                # Unless this connection's slot is 0, where 0014's backfill counted m1.
                assert tuple(conn.execute(own_slot).one()) in ((2, 1), (3, 1))
        with database.engine.connect() as conn:
            assert conn.execute(totals).all() == [(1, 3, 1), (2, 0, 0)]
        downgrade(database, "0014")
        with database.engine.begin() as conn:
            if not database.is_sqlite:
                assert conn.execute(helper).scalar_one() == 1
            write(conn, 2)
            conn.execute(text("DELETE FROM members WHERE id = 'a1'"))
        with database.engine.connect() as conn:
            assert conn.execute(totals).all() == [(1, 4, 2), (2, 0, 0)]
    finally:
        database.dispose()
