"""Fixtures for the SAML attack corpus: tests/saml's real IdP and site, shared by a module.

Every case of the corpus posts one forged response and reads the outcome, so the IdP, the
site and its workspaces are built once per module (each server takes ~0.5 s to stop), and
nothing here is autouse: other modules of this package (SCIM fuzzing) never start them. Those
use ``middleware``: a middleware of their own per test, on tests/conftest.py's fresh database.
A module using ``site`` empties the sign-in state before each test with ``clean_sign_in``
(members, sessions, audit, requests, replay cache), so ``site.members() == []`` and the
audit log hold that test's outcome only. Workspaces and their IdP settings stay as built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import delete

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.store.models import (
    AuditEvent,
    Member,
    MemberSession,
    Membership,
    MemberValue,
    SeenAssertion,
)

from ..conftest import LiveServer, fresh_database
from ..saml.conftest import Site, host_app
from ..saml.idp import TestIdP
from ..store_helpers import transaction
from .scim_support import new_middleware

# Emptied before each test (children first); workspaces, tokens and IdP settings stay.
SIGN_IN_STATE = (MemberSession, Membership, MemberValue, Member, AuditEvent, SeenAssertion)


@pytest.fixture
def middleware(database_url: str) -> Iterator[SSOMiddleware]:
    """The SCIM security modules' middleware: fresh per test, no HTTP server, no IdP."""
    app = new_middleware(database_url)
    yield app
    app.close()


@pytest.fixture(scope="module")
def module_serve() -> Iterator[Callable[[Callable[..., Any]], LiveServer]]:
    """tests/conftest.py's ``serve``, for the whole module."""
    servers: list[LiveServer] = []

    def start(app: Callable[..., Any]) -> LiveServer:
        servers.append(LiveServer(app))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def module_database_url(_migrated_template: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh migrated database for the module (tests/conftest.py's ``database_url``)."""
    # On PostgreSQL this empties the run's database once for the module, as database_url does
    # per test: no test of the SAML modules here may also request ``database_url``.
    return fresh_database(_migrated_template, tmp_path_factory.mktemp("security"))


@pytest.fixture(scope="module")
def idp(module_serve: Callable[[Any], Any], tmp_path_factory: pytest.TempPathFactory) -> TestIdP:
    """The real IdP every workspace of the module trusts (tests/saml's ``idp``)."""
    return TestIdP.start(module_serve, tmp_path_factory.mktemp("idp"), name="Test IdP")


@pytest.fixture(scope="module")
def site(
    module_serve: Callable[[Any], Any], module_database_url: str, idp: TestIdP
) -> Iterator[Site]:
    """tests/saml's ``Site`` with three workspaces, all trusting ``idp``:

    ``acme`` (IdP-initiated sign-in allowed), ``beta`` (the same IdP: cross-workspace cases)
    and ``strict`` (IdP-initiated sign-in switched off).
    """
    site = Site(module_serve, module_database_url)
    site.add_workspace("acme", idp)
    site.add_workspace("beta", idp)
    site.add_workspace("strict", idp, allow_idp_initiated=False)
    site.workspaces.set_domains("acme", ["acme.test"])  # /saml/login routes acme.test here
    yield site
    site.middleware.close()


@pytest.fixture(scope="module")
def other_worker(
    module_serve: Callable[[Any], Any], module_database_url: str, site: Site
) -> Iterator[str]:
    """The URL of another worker: a second SSOMiddleware (its own caches and connection pool)
    on the same database and behind the same public base URL, served on its own port."""
    dispatch: list[Any] = []
    live = module_serve(lambda environ, start_response: dispatch[0](environ, start_response))
    middleware = SSOMiddleware(
        host_app,
        database_url=module_database_url,
        secret_key="s3cret-padded-to-thirty-two-bytes-at-least",
        base_url=site.url,
    )
    dispatch.append(middleware)
    yield live.url
    middleware.close()


def clean_sign_in(site: Site) -> None:
    """Empty the sign-in state; workspaces, tokens and IdP settings stay."""
    with transaction(site.middleware.database, write=True) as unit:
        for model in SIGN_IN_STATE:
            unit.session.execute(delete(model))
