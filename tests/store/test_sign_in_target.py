"""The workspace a sign-in uses: its SSO switches and IdP version, its IdP's metadata, and the
SSO page's look-up of the workspace that verified a domain. The row lock it takes for a sign-in
that may start a session: tests/store/test_workspaces.py (switching SSO off waits for it)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from webwork_sso_middleware.idp_metadata.workspaces import Workspaces
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import Workspace
from webwork_sso_middleware.store.sign_in_target import (
    idp_metadata_xml,
    sign_in_target,
    sso_workspace_for_domain,
)

from ..idp_metadata.metadata_samples import OKTA_ENTITY_ID, certificate, okta_metadata
from ..store_helpers import transaction


@pytest.fixture
def workspaces(database: Database) -> Workspaces:
    """acme (Plus, SSO on, acme.test verified, an IdP); globex (Plus, SSO on, globex.test
    verified, no IdP)."""
    workspaces = Workspaces(database)
    for slug in ("acme", "globex"):
        workspaces.create(slug, name=slug.title(), plan="plus", owner_email=f"o@{slug}.test")
        workspaces.enable(slug, sso=True)
        workspaces.verify_domain(slug, f"{slug}.test", by_operator=True)
    workspaces.set_idp("acme", metadata_xml=okta_metadata(certificate()))
    return workspaces


def test_target_gives_the_switches_and_the_idp_by_version(workspaces, database):
    with transaction(database) as unit:
        acme = sign_in_target(unit, " ACME ")  # as a URL may spell it
        globex = sign_in_target(unit, "globex")
        assert sign_in_target(unit, "nope") is None
    assert acme is not None and globex is not None
    assert (acme.slug, acme.plan, acme.sso_enabled) == ("acme", "plus", True)
    assert acme.idp_entity_id == OKTA_ENTITY_ID and acme.idp_version is not None
    assert acme.allow_idp_initiated  # the default
    assert globex.idp_entity_id is None and globex.idp_version is None
    # A changed IdP setting is a new version: a cached service provider is rebuilt.
    workspaces.set_idp("acme", allow_idp_initiated=False)
    with transaction(database) as unit:
        changed = sign_in_target(unit, "acme")
    assert changed is not None and not changed.allow_idp_initiated
    assert changed.idp_version != acme.idp_version


def test_idp_metadata_is_the_stored_xml(workspaces, database):
    with transaction(database) as unit:
        acme = sign_in_target(unit, "acme")
        globex = sign_in_target(unit, "globex")
        assert acme is not None and globex is not None
        xml = idp_metadata_xml(unit, acme.workspace_id)
        assert xml is not None and OKTA_ENTITY_ID in xml
        assert idp_metadata_xml(unit, globex.workspace_id) is None


def test_sso_workspace_for_a_domain_only_where_sso_is_usable(workspaces, database):
    with transaction(database) as unit:
        assert sso_workspace_for_domain(unit, "acme.test") == "acme"
        assert sso_workspace_for_domain(unit, "globex.test") is None  # no IdP
        assert sso_workspace_for_domain(unit, "initech.test") is None  # nobody verified it
    workspaces.disable("acme", sso=True)
    with transaction(database) as unit:
        assert sso_workspace_for_domain(unit, "acme.test") is None
    workspaces.enable("acme", sso=True)
    # A plan without SSO: set_plan switches SSO off as well; the plan alone refuses it too.
    with transaction(database, write=True) as unit:
        assert sso_workspace_for_domain(unit, "acme.test") == "acme"
        unit.connection.execute(
            update(Workspace).where(Workspace.slug == "acme").values(plan="free")
        )
        assert sso_workspace_for_domain(unit, "acme.test") is None
