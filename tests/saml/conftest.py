"""SAML fixtures: real IdPs (pysaml2 ``Server`` on our in-process crypto) served over real HTTP.

The crypto and entities tests share an unserved IdP (``test_idp``) and a pysaml2 SP (``sp``) that
knows it as ``SP_ID`` with ``ACS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from saml2.client import Saml2Client
from sqlalchemy import select

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.saml.entities import make_client
from webwork_sso_middleware.store.models import AuditEvent, Member

from ..store_helpers import transaction
from .idp import KeyPair, TestIdP, make_key_pair, pysaml2_sp_config

SP_ID = "http://sp.test/saml/acme/metadata"
ACS = "http://sp.test/saml/acme/acs"


@pytest.fixture
def idp(serve: Callable[[Any], Any], tmp_path: Path) -> TestIdP:
    """An IdP at ``idp.url`` (entity ID ``idp.entity_id``), signing as ``idp.next_user``."""
    return TestIdP.start(serve, tmp_path / "idp", name="Test IdP")


@pytest.fixture
def second_idp(serve: Callable[[Any], Any], tmp_path: Path) -> TestIdP:
    """Another IdP on its own port, with its own keys: for cross-IdP (wrong issuer, wrong key) tests."""
    return TestIdP.start(serve, tmp_path / "second_idp", name="Second IdP")


@pytest.fixture(scope="session")
def idp_keys() -> KeyPair:
    return make_key_pair("Test IdP")


@pytest.fixture(scope="session")
def attacker_keys() -> KeyPair:
    return make_key_pair("Mallory")


@pytest.fixture
def test_idp(tmp_path: Path, idp_keys: KeyPair) -> TestIdP:
    return TestIdP("http://idp.test", tmp_path / "idp", keys=idp_keys)  # not served: no HTTP needed


@pytest.fixture
def sp(test_idp: TestIdP) -> Saml2Client:
    return make_client(pysaml2_sp_config(SP_ID, ACS, [test_idp.metadata_xml()]))


def host_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    user = environ.get("REMOTE_USER", "")
    member = environ.get("webwork_sso.member")
    groups = ",".join(member.groups) if member else ""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"user={user};groups={groups};path={environ['PATH_INFO']}".encode()]


class Site:
    """The host app behind SSOMiddleware, served over HTTP, with workspace helpers."""

    def __init__(self, serve: Callable[[Any], Any], database_url: str, **options: Any) -> None:
        dispatch: list[Any] = []
        live = serve(lambda environ, start_response: dispatch[0](environ, start_response))
        self.url = live.url
        self.middleware = SSOMiddleware(
            host_app,
            database_url=database_url,
            secret_key="s3cret-padded-to-thirty-two-bytes-at-least",
            base_url=self.url,
            **options,
        )
        dispatch.append(self.middleware)
        self.workspaces = self.middleware.workspaces

    def add_workspace(
        self, slug: str, idp: TestIdP, *, verify_domain: bool = True, **idp_options: Any
    ) -> str:
        """A Plus workspace with SCIM and SSO on and ``idp`` as its IdP. Its domain
        ``<slug>.test`` is verified (by the operator) unless ``verify_domain=False``: only then
        may its IdP sign in ``<anyone>@<slug>.test``."""
        _, token = self.workspaces.create(
            slug, name=slug.title(), plan="plus", owner_email=f"owner@{slug}.test"
        )
        self.workspaces.enable(slug, scim=True, sso=True)
        if verify_domain:
            self.workspaces.verify_domain(slug, f"{slug}.test", by_operator=True)
        self.workspaces.set_idp(slug, metadata_xml=idp.metadata_xml(), **idp_options)
        idp.sp_config(self.entity_id(slug), self.acs(slug))
        return token

    def entity_id(self, slug: str) -> str:
        return f"{self.url}/saml/{slug}/metadata"

    def acs(self, slug: str) -> str:
        return f"{self.url}/saml/{slug}/acs"

    def post_response(
        self,
        browser: requests.Session,
        slug: str,
        saml_response: str,
        relay_state: str | None = None,
    ) -> requests.Response:
        data = {"SAMLResponse": saml_response}
        if relay_state is not None:
            data["RelayState"] = relay_state
        return browser.post(self.acs(slug), data=data, allow_redirects=False)

    def members(self) -> list[Member]:
        with transaction(self.middleware.database) as unit:
            rows = list(unit.session.scalars(select(Member).order_by(Member.created_at)))
            unit.session.expunge_all()
            return rows

    def audit(self, action: str) -> list[AuditEvent]:
        with transaction(self.middleware.database) as unit:
            rows = list(
                unit.session.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                )
            )
            unit.session.expunge_all()
            return rows


@pytest.fixture
def site(serve: Callable[[Any], Any], database_url: str) -> Iterator[Site]:
    site = Site(serve, database_url)
    yield site
    site.middleware.close()


@pytest.fixture
def acme(site: Site, idp: TestIdP) -> str:
    return site.add_workspace("acme", idp)
