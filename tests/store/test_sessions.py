"""The session rows (store/sessions.py), on the backend under test; what a row means is
tests/sessions'."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import sessions as store
from webwork_sso_middleware.store.db import SESSIONS_ENDED
from webwork_sso_middleware.store.models import Group, MemberSession, Membership, Workspace
from webwork_sso_middleware.store.models import Member as MemberRow

from ..sessions.test_manager import add_member, create_workspace
from ..store_helpers import EndedSessions, transaction

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def workspace_id(database: Database) -> int:
    return create_workspace(database)


@pytest.fixture
def ada(database: Database, workspace_id: int) -> str:
    return add_member(database, workspace_id, "ada@acme.test", groups=("Staff", "Admins"))


def insert(
    database: Database,
    id_hash: str,
    member_id: str,
    workspace_id: int,
    expires_at: dt.datetime = NOW + HOUR,
    saml_subject: dict[str, str | None] | None = None,
) -> None:
    database.run(
        lambda unit: store.insert_session(
            unit,
            id_hash=id_hash,
            member_id=member_id,
            workspace_id=workspace_id,
            generation=0,
            created_at=NOW,
            expires_at=expires_at,
            saml_subject=saml_subject,
        )
    )


def rows(database: Database, id_hash: str) -> list:
    return list(database.run(lambda unit: store.session_rows(unit, id_hash), write=False))


def ended(database: Database) -> dict[str, dt.datetime | None]:
    with transaction(database) as unit:
        return dict(
            unit.session.execute(select(MemberSession.id_hash, MemberSession.ended_at)).all()
        )


def test_a_session_reads_back_with_its_member_once_per_group(database, workspace_id, ada):
    insert(database, "h1", ada, workspace_id)

    found = rows(database, "h1")
    assert [row.group_name for row in found] == ["Admins", "Staff"]
    assert {row.member_id for row in found} == {ada}
    assert found[0].user_name == "ada@acme.test" and found[0].ended_at is None
    assert found[0].slug == "acme" and found[0].domain_verified
    assert rows(database, "no-such-hash") == []


def test_profile_reads_the_extensions_json_from_one_row_only(database, workspace_id):
    extensions = {"urn:ietf:params:scim:schemas:extension:acme:2.0:User": {"cost": "x" * 100}}
    member = add_member(
        database,
        workspace_id,
        "bo@acme.test",
        groups=("A", "B", "C"),
        title="Engineer",
        department="Research",
        manager_id="m-1",
        extensions=extensions,
    )
    insert(database, "h2", member, workspace_id)
    found = rows(database, "h2")
    assert [row.group_name for row in found] == ["A", "B", "C"]
    # The JSON (up to 16 KiB) is not repeated on every group's row.
    assert [row.extensions for row in found if row.extensions is not None] == [extensions]
    assert store.profile(found) == {
        "title": "Engineer",
        "department": "Research",
        "manager": {"value": "m-1", "displayName": None},
        **extensions,
    }


def test_the_groups_and_role_map_json_come_on_one_row_only(database, workspace_id):
    """The member's asserted groups and the workspace's role mapping (up to 150 and 500
    names) are sent, and decoded, once per session check, not once per SCIM group: with
    300 SCIM groups that was 300 decodes of each per request."""
    asserted = [f"asserted-{n:03d}-" + "x" * 200 for n in range(150)]
    role_map = {f"mapped-{n:03d}-" + "z" * 200: "admin" for n in range(500)}
    member = add_member(
        database,
        workspace_id,
        "cy@acme.test",
        groups=tuple(f"scim-{n:03d}" for n in range(300)),
        sign_in_groups=asserted,
    )

    def set_map(unit):
        unit.session.get(Workspace, workspace_id).role_map = role_map

    database.run(set_map)
    insert(database, "h3", member, workspace_id)
    found = rows(database, "h3")
    assert len(found) == 300
    assert [row.sign_in_groups for row in found if row.sign_in_groups is not None] == [asserted]
    assert [row.role_map for row in found if row.role_map is not None] == [role_map]
    assert store.first_value(found, "sign_in_groups") == asserted
    assert store.first_value(found, "role_map") == role_map


def test_a_membership_in_another_workspaces_group_names_no_group(database, workspace_id, ada):
    """Memberships are written within one workspace; should one ever point across, the
    session check still reads only groups of the session's workspace."""
    other = create_workspace(database, "evil")

    def cross(unit):
        group = Group(workspace_id=other, display_name="Owners", display_name_key="owners")
        unit.session.add(group)
        unit.session.flush()
        unit.session.add(Membership(group_id=group.id, member_id=ada))

    database.run(cross)
    insert(database, "h4", ada, workspace_id)
    assert [row.group_name for row in rows(database, "h4") if row.group_name] == [
        "Admins",
        "Staff",
    ]


def test_active_generation_is_only_for_an_active_member_of_the_workspace(
    database, workspace_id, ada
):
    def generation(member_id: str, in_workspace: int) -> int | None:
        return database.run(lambda unit: store.active_generation(unit, member_id, in_workspace))

    assert generation(ada, workspace_id) == 0
    assert generation(ada, workspace_id + 1) is None
    with transaction(database, write=True) as unit:
        unit.session.get(MemberRow, ada).active = False
    assert generation(ada, workspace_id) is None


def test_ending_sessions_marks_only_those_not_ended(database, workspace_id, ada):
    for id_hash in ("h1", "h2", "h3"):
        insert(database, id_hash, ada, workspace_id)
    database.run(lambda unit: store.end_sessions(unit, ["h1"], NOW))
    database.run(lambda unit: store.end_sessions(unit, ["h1", "h2"], NOW + HOUR))

    marks = ended(database)
    assert marks["h1"] == NOW and marks["h2"] == NOW + HOUR and marks["h3"] is None


def test_ending_a_members_sessions_bumps_the_generation_and_names_the_member(
    database, workspace_id, ada
):
    insert(database, "h1", ada, workspace_id)
    heard = EndedSessions(database)

    def work(unit) -> int | None:
        workspace = store.end_member_sessions(unit, ada, NOW)
        assert unit.connection.info[SESSIONS_ENDED] == {ada}  # told at commit, not before
        assert heard == []
        return workspace

    assert database.run(work) == workspace_id
    assert heard == [frozenset({ada})]
    assert ended(database)["h1"] is not None
    assert rows(database, "h1")[0].session_generation == 1
    assert database.run(lambda unit: store.end_member_sessions(unit, "no-such-member", NOW)) is None


def test_purge_deletes_a_batch_of_expired_rows(database, workspace_id, ada):
    for index in range(5):
        insert(database, f"old{index}", ada, workspace_id, expires_at=NOW - HOUR)
    insert(database, "live", ada, workspace_id)

    assert database.run(lambda unit: store.purge_expired(unit, NOW, 3)) == 3
    assert database.run(lambda unit: store.purge_expired(unit, NOW, 3)) == 2
    assert set(ended(database)) == {"live"}


def subject(name_id: str, session_index: str | None) -> dict[str, str | None]:
    return {
        "saml_name_id": name_id,
        "saml_name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "saml_name_qualifier": "https://idp.test",
        "saml_sp_name_qualifier": None,
        "saml_session_index": session_index,
    }


def test_a_session_keeps_its_saml_subject(database, workspace_id, ada):
    insert(database, "h1", ada, workspace_id, saml_subject=subject("ada@acme.test", "s1"))
    insert(database, "h2", ada, workspace_id)

    kept = database.run(lambda unit: store.saml_subject(unit, "h1"), write=False)
    assert (kept.slug, kept.workspace_id, kept.ended_at) == ("acme", workspace_id, None)
    assert (kept.saml_name_id, kept.saml_session_index) == ("ada@acme.test", "s1")
    assert kept.saml_name_qualifier == "https://idp.test" and kept.saml_sp_name_qualifier is None
    assert (
        database.run(lambda unit: store.saml_subject(unit, "h2"), write=False).saml_name_id is None
    )
    assert database.run(lambda unit: store.saml_subject(unit, "nope"), write=False) is None


def test_an_idps_logout_ends_the_subjects_live_sessions_of_its_workspace_only(
    database, workspace_id, ada
):
    other_workspace = create_workspace(database, "globex")
    grace = add_member(database, other_workspace, "ada@acme.test")
    insert(database, "s1", ada, workspace_id, saml_subject=subject("ada@acme.test", "i1"))
    insert(database, "s2", ada, workspace_id, saml_subject=subject("ada@acme.test", "i2"))
    insert(database, "s3", ada, workspace_id, saml_subject=subject("other@acme.test", "i1"))
    insert(database, "g1", grace, other_workspace, saml_subject=subject("ada@acme.test", "i1"))
    heard = EndedSessions(database)

    def end(indexes: list[str]) -> list[str]:
        return database.run(
            lambda unit: store.end_saml_sessions(
                unit,
                workspace_id=workspace_id,
                name_id="ada@acme.test",
                session_indexes=indexes,
                now=NOW,
            )
        )

    assert end(["i1", "nope"]) == ["s1"]
    assert heard == [frozenset({ada})]  # this process's caches hear of it at commit
    assert sorted(end([])) == ["s2"]  # no index: every live session of the subject
    assert end([]) == []  # nothing left: nothing noted
    assert heard == [frozenset({ada})] * 2
    marks = ended(database)
    assert marks["s1"] == marks["s2"] == NOW
    assert marks["s3"] is None and marks["g1"] is None


def test_a_subject_value_wider_than_its_column_is_not_kept(database, workspace_id, ada):
    wide = {**subject("ada@acme.test", "s" * 600), "saml_name_id_format": "f" * 300}
    insert(database, "h1", ada, workspace_id, saml_subject=wide)  # PostgreSQL would refuse it

    kept = database.run(lambda unit: store.saml_subject(unit, "h1"), write=False)
    assert (kept.saml_name_id, kept.saml_session_index, kept.saml_name_id_format) == (
        "ada@acme.test",
        None,
        None,
    )
