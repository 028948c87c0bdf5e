"""Fixtures of the IdP metadata tests: a workspace whose IdP metadata comes from a FakeIdP."""

from __future__ import annotations

import pytest

from webwork_sso_middleware.idp_metadata.workspaces import Workspaces
from webwork_sso_middleware.store import Database

from .metadata_samples import certificate, okta_metadata
from .support import FakeIdP


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP(okta_metadata(certificate("old")))


@pytest.fixture
def workspaces(database: Database, idp: FakeIdP) -> Workspaces:
    workspaces = Workspaces(database, fetch=idp)
    workspaces.create("acme", name="Acme", plan="plus", owner_email="it@acme.example")
    return workspaces
