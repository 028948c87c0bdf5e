"""The ACS's store functions: one read of the workspace with the claimed member, one login
record; each the same answer the separate look-ups give (the replay cache's one write:
test_replay_cache.py)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Connection, event, select, update

from webwork_sso_middleware.idp_metadata.workspaces import Workspaces
from webwork_sso_middleware.members import lifecycle
from webwork_sso_middleware.store import Database, sign_in, sign_in_target
from webwork_sso_middleware.store import domains as domain_store
from webwork_sso_middleware.store.models import AuditEvent, LifecycleEvent, Member, utcnow

from ..idp_metadata.metadata_samples import OKTA_ENTITY_ID, certificate, okta_metadata
from ..store_helpers import transaction

EXPIRES = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def workspaces(database: Database) -> Workspaces:
    """acme (Plus, SSO on, acme.test verified, an IdP) with members alice and (deactivated)
    bob; globex, which verified globex.test."""
    workspaces = Workspaces(database)
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    workspaces.enable("acme", sso=True)
    workspaces.verify_domain("acme", "acme.test", by_operator=True)
    workspaces.set_idp("acme", metadata_xml=okta_metadata(certificate()))
    workspaces.create("globex", name="Globex", plan="plus", owner_email="o@globex.test")
    workspaces.verify_domain("globex", "globex.test", by_operator=True)
    with transaction(database, write=True) as unit:
        for address in ("alice@acme.test", "bob@acme.test"):
            lifecycle.sign_in(
                unit, workspace_id("acme", database), address, lifecycle.Profile("A", "Person")
            )
        unit.connection.execute(
            Member.__table__.update()
            .where(Member.__table__.c.user_name_key == "bob@acme.test")
            .values(active=False)
        )
    return workspaces


def workspace_id(slug: str, database: Database) -> int:
    with transaction(database) as unit:
        target = sign_in_target.sign_in_target(unit, slug)
    assert target is not None
    return target.workspace_id


def lookup(
    database: Database, slug: str, address: str | None
) -> tuple[sign_in_target.SignInTarget | None, sign_in.LoginLookup | None]:
    with transaction(database, write=True) as unit:
        return sign_in.sign_in_lookup(unit, slug, claimed=lifecycle.lookup_key(address))


def count_statements(connection: Connection) -> list[str]:
    statements: list[str] = []
    event.listen(
        connection,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement),
    )
    return statements


def test_lookup_reads_the_target_member_and_verifier_in_one_statement(workspaces, database):
    with transaction(database, write=True) as unit:
        # On the driver's cursor (store/driver.py), as in a sign-in ...
        target, known = sign_in.sign_in_lookup(
            unit, " ACME ", claimed=lifecycle.lookup_key("Alice@ACME.test")
        )
        # ... and through SQLAlchemy, where it is counted: the same answer, in one statement.
        statements = count_statements(unit.connection)
        assert sign_in.sign_in_lookup(
            unit, "acme", claimed=lifecycle.lookup_key("alice@acme.test")
        ) == (target, known)
        assert len(statements) == 1
        # The same answers as the separate look-ups it replaces.
        assert target == sign_in_target.sign_in_target(unit, "acme", lock=True)
        assert known is not None and known.key == "alice@acme.test"
        assert known.member == sign_in.login_member(unit, target.workspace_id, "alice@acme.test")
        assert known.member is not None and known.member.active
        assert known.verifier == target.workspace_id == domain_store.verifier_of(unit, "acme.test")
    assert target.idp_entity_id == OKTA_ENTITY_ID and target.idp_version is not None


def test_lookup_of_unknown_names_deactivated_members_and_other_domains(workspaces, database):
    acme = workspace_id("acme", database)
    _, bob = lookup(database, "acme", "bob@acme.test")
    assert bob is not None and bob.member is not None and not bob.member.active
    _, nobody = lookup(database, "acme", "nobody@acme.test")
    assert nobody == sign_in.LoginLookup("nobody@acme.test", acme, None)
    _, elsewhere = lookup(database, "acme", "carol@globex.test")
    assert elsewhere == sign_in.LoginLookup(
        "carol@globex.test", workspace_id("globex", database), None
    )
    _, unverified = lookup(database, "acme", "dave@initech.test")
    assert unverified == sign_in.LoginLookup("dave@initech.test", None, None)
    # A member is looked up in the slug's workspace only.
    _, other_workspace = lookup(database, "globex", "alice@acme.test")
    assert other_workspace is not None and other_workspace.member is None


def test_lookup_without_a_claimed_address_or_workspace(workspaces, database):
    target, known = lookup(database, "acme", None)
    assert target is not None and known is None
    assert lookup(database, "nope", "alice@acme.test") == (None, None)
    target, _ = lookup(database, "globex", "alice@acme.test")
    assert target is not None and target.idp_entity_id is None and target.idp_version is None


def test_sign_in_uses_the_lookup_only_for_the_same_key(workspaces, database):
    acme = workspace_id("acme", database)
    with transaction(database, write=True) as unit:
        _, known = sign_in.sign_in_lookup(
            unit, "acme", claimed=lifecycle.lookup_key("alice@acme.test")
        )
        statements = count_statements(unit.connection)
        admitted = lifecycle.sign_in(
            unit, acme, "alice@acme.test", lifecycle.Profile("A", "Person"), known=known
        )
        assert admitted is not None and not admitted.created
        # Read already: on SQLite only the login record (three statements: the stamp, its
        # audit row, its member.signed_in event); on PostgreSQL the member's row lock, now that
        # the address is verified, and the login record (one).
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        if database.is_sqlite:
            assert selects == [] and len(statements) == 3
        else:
            assert len(selects) == 1 and "FOR UPDATE" in selects[0] and len(statements) == 2
        # A lookup made for another address is not trusted for this one: asked again.
        statements.clear()
        with pytest.raises(lifecycle.SignInRefused) as refused:
            lifecycle.sign_in(unit, acme, "carol@globex.test", lifecycle.Profile(), known=known)
        assert refused.value.code == "domain_verified_elsewhere"
        assert any(s.lstrip().upper().startswith("SELECT") for s in statements)


def test_record_login_event_stamps_the_member_and_audits_the_changes(workspaces, database):
    acme = workspace_id("acme", database)
    now = utcnow()
    for profile in ({}, {"given_name": "Alicia", "display_name": "Alicia Person"}):
        with transaction(database, write=True) as unit:
            member = sign_in.login_member(unit, acme, "alice@acme.test")
            assert member is not None
            if profile:  # through SQLAlchemy (a listener), where parameters could become SETs
                count_statements(unit.connection)
            sign_in.record_login_event(
                unit, workspace_id=acme, member_id=member.id, now=now, profile=profile
            )
    with transaction(database) as unit:
        alice = unit.session.scalars(
            select(Member).where(Member.user_name_key == "alice@acme.test")
        ).one()
        assert alice.last_login_at == now
        assert (alice.given_name, alice.display_name) == ("Alicia", "Alicia Person")
        assert alice.version == 2  # one profile change; a bare stamp changes nothing SCIM sees
        events = unit.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "signed_in").order_by(AuditEvent.id)
        ).all()
        assert [(e.workspace_id, e.actor, e.target_id, e.changes) for e in events] == [
            (acme, "saml", alice.id, {}),
            (acme, "saml", alice.id, {"given_name": "Alicia", "display_name": "Alicia Person"}),
        ]
        # Each login also records its member.signed_in event for the host (store/events.py).
        signed_in = unit.session.scalars(
            select(LifecycleEvent).order_by(LifecycleEvent.pk.desc()).limit(2)
        ).all()
        assert [(e.workspace_id, e.kind, e.source, e.member_id, e.seq) for e in signed_in] == [
            (acme, "member.signed_in", "saml", alice.id, None),
        ] * 2


def test_lookup_holds_the_workspace_row_until_the_sign_in_commits(workspaces, database):
    """As sign_in_target(lock=True): switching SSO off waits for a sign-in in flight."""
    holding = threading.Event()
    switched_at: list[float] = []

    def switch_off() -> None:
        holding.wait(10)
        workspaces.disable("acme", sso=True)
        switched_at.append(time.monotonic())

    switcher = threading.Thread(target=switch_off)
    switcher.start()
    with transaction(database, write=True) as unit:
        target, _ = sign_in.sign_in_lookup(
            unit, "acme", claimed=lifecycle.lookup_key("alice@acme.test")
        )
        assert target is not None and target.sso_enabled
        holding.set()
        time.sleep(0.5)
        committed_at = time.monotonic()
    switcher.join(30)
    assert switched_at and switched_at[0] >= committed_at
    assert not workspaces.get("acme").sso_enabled


def test_a_verified_sign_in_holds_the_member_until_it_ends(workspaces, database):
    """A deactivation (SCIM) waits for a sign-in that verified its response, or the sign-in
    waits for it and sees the member deactivated: on PostgreSQL verified_member() locks the row
    FOR UPDATE until the sign-in ends (the lookup by the claim did not); on SQLite the
    sign-in's write transaction keeps every other writer out."""
    from sqlalchemy.exc import OperationalError

    members = Member.__table__

    def try_to_change(other: Any, member_id: str) -> None:
        if database.is_sqlite:
            other.exec_driver_sql("PRAGMA busy_timeout=0")  # fail at once instead of waiting
            try:
                other.execute(update(members).where(members.c.id == member_id).values(active=False))
            finally:
                other.rollback()
                other.exec_driver_sql(f"PRAGMA busy_timeout={int(database.busy_timeout * 1000)}")
        else:
            other.execute(
                select(members.c.id).where(members.c.id == member_id).with_for_update(nowait=True)
            )
            other.rollback()

    key = lifecycle.lookup_key("alice@acme.test")
    with transaction(database, write=True) as unit:
        _, known = sign_in.sign_in_lookup(unit, "acme", claimed=key)
        assert known is not None and known.member is not None
        member_id = known.member.id
        if not database.is_sqlite:
            # The claim alone (an unverified response) locks nothing: anyone could otherwise
            # hold a chosen member's row, or time the wait to learn who is a member.
            with database.engine.connect() as other:
                try_to_change(other, member_id)
        workspace_id = workspaces.get("acme").id
        locked = sign_in.verified_member(unit, workspace_id, key[0], known.member)
        assert locked == known.member  # the same member, read again under its lock
        with database.engine.connect() as other, pytest.raises(OperationalError):
            try_to_change(other, member_id)
    with database.engine.connect() as other:  # released with the sign-in's transaction
        if database.is_sqlite:
            other.execute(update(members).where(members.c.id == member_id).values(active=True))
            other.rollback()
        else:
            try_to_change(other, member_id)
