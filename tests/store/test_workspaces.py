"""The workspace Python API: plans, switches, domains and SCIM tokens."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from webwork_sso_middleware.errors import ConfigurationError, Conflict, NotFound, PlanError
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import ScimToken
from webwork_sso_middleware.store.workspaces import (
    Workspaces,
    find_credential,
    hash_token,
)


@pytest.fixture
def workspaces(database: Database) -> Workspaces:
    return Workspaces(database)


def test_create_returns_the_token_once_and_stores_only_its_hash(workspaces, database):
    info, token = workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    assert info.slug == "acme" and info.plan == "plus"
    assert not info.scim_enabled and not info.sso_enabled
    assert token.startswith("wwsso_") and len(token) > 40
    with database.transaction() as session:
        rows = session.scalars(select(ScimToken)).all()
        assert [row.token_hash for row in rows] == [hash_token(token)]
        assert token not in {row.token_hash for row in rows}
        credential = find_credential(session.connection(), token)
        assert credential.workspace_slug == "acme" and credential.token_hint == token[:10]
        assert find_credential(session.connection(), token + "x") is None


def test_rotation_revokes_every_earlier_token(workspaces, database):
    _, first = workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    second = workspaces.rotate_token("acme")
    third = workspaces.rotate_token("acme")
    with database.transaction() as session:
        assert find_credential(session.connection(), first) is None
        assert find_credential(session.connection(), second) is None
        assert find_credential(session.connection(), third) is not None


def test_enable_needs_plus_or_premium(workspaces):
    workspaces.create("free", name="Free", plan="free", owner_email="o@free.test")
    with pytest.raises(PlanError) as caught:
        workspaces.enable("free", scim=True)
    assert caught.value.plan == "free" and "Plus or Premium" in str(caught.value)
    assert workspaces.get("free").scim_enabled is False
    workspaces.set_plan("free", "premium")
    assert workspaces.enable("free", scim=True, sso=True).sso_enabled is True


def test_moving_to_free_switches_scim_and_sso_off(workspaces):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    workspaces.enable("acme", scim=True, sso=True)
    info = workspaces.set_plan("acme", "free")
    assert (info.plan, info.scim_enabled, info.sso_enabled) == ("free", False, False)


def test_disable_one_switch_keeps_the_other(workspaces):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    workspaces.enable("acme", scim=True, sso=True)
    info = workspaces.disable("acme", sso=True)
    assert info.scim_enabled and not info.sso_enabled


def test_domains_are_validated_normalised_and_replaced(workspaces):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    info = workspaces.set_domains("acme", ["Acme.TEST", "@eu.acme.test", "acme.test"])
    assert info.domains == ("acme.test", "eu.acme.test")
    assert workspaces.set_domains("acme", ["other.test"]).domains == ("other.test",)
    with pytest.raises(ConfigurationError):
        workspaces.set_domains("acme", ["not a domain"])
    assert workspaces.get("acme").domains == ("other.test",)


@pytest.mark.parametrize("slug", ["", "Has Space", "-dash", "x" * 64, "login", "a/b"])
def test_bad_slugs_are_refused(workspaces, slug):
    with pytest.raises(ConfigurationError):
        workspaces.create(slug, name="X", plan="plus", owner_email="o@x.test")


def test_bad_plan_and_owner_are_refused(workspaces):
    with pytest.raises(ConfigurationError):
        workspaces.create("a", name="A", plan="gold", owner_email="o@x.test")
    with pytest.raises(ConfigurationError):
        workspaces.create("a", name="A", plan="plus", owner_email="nobody")


def test_duplicate_slug_is_a_conflict(workspaces):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    with pytest.raises(Conflict):
        workspaces.create("ACME", name="Other", plan="plus", owner_email="o@acme.test")


def test_unknown_workspace_is_not_found(workspaces):
    with pytest.raises(NotFound):
        workspaces.get("nope")
    with pytest.raises(NotFound):
        workspaces.rotate_token("nope")
