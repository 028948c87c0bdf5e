"""Fixtures shared by the CLI modules that read what a served site wrote."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..events.test_feed import Scim
from ..saml.conftest import Site
from ..saml.idp import TestIdP


@pytest.fixture
def site_with_members(
    serve: Callable[[Any], Any], database_url: str, idp: TestIdP, second_idp: TestIdP
) -> Iterator[Site]:
    """acme and beta, each with members its SCIM created: ada, bob (acme), cyd (beta)."""
    made = Site(serve, database_url)
    acme = Scim(made, made.add_workspace("acme", idp))
    beta = Scim(made, made.add_workspace("beta", second_idp))
    acme.create_user("ada@acme.test")
    beta.create_user("cyd@beta.test")
    acme.create_user("bob@acme.test")
    yield made
    made.middleware.close()
