"""The dev IdP's fixtures: the time tracker behind the middleware and a DevIdP beside it, each on
a loopback port of its own, wired as ``webwork-sso serve`` wires them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.devidp import DevIdP
from webwork_sso_middleware.devserver import (
    DEMO_SLUG,
    create_demo_workspace,
    load_timetracker_factory,
    wire_demo_workspace,
)
from webwork_sso_middleware.store.models import Member

from ..constants import SECRET
from ..store_helpers import transaction


class Site:
    """The time tracker behind SSOMiddleware, and a DevIdP, each on its own loopback port; the
    demo workspace wired to the IdP as ``webwork-sso serve`` wires it."""

    def __init__(self, serve: Callable[[Any], Any], database_url: str, tmp_path: Path) -> None:
        self.middleware: SSOMiddleware
        self.idp: DevIdP
        # Served before they exist: each URL is known only once its server listens.
        self.url = serve(lambda environ, start: self.middleware(environ, start)).url
        idp_url = serve(lambda environ, start: self.idp.wsgi_app(environ, start)).url
        tracker = load_timetracker_factory()(str(tmp_path / "timetracker.db"))
        # The DevIdP's metadata URL is on 127.0.0.1: allowed on purpose, as for a dev setup.
        self.middleware = SSOMiddleware(
            tracker,
            database_url=database_url,
            secret_key=SECRET,
            base_url=self.url,
            metadata_allowed_hosts="127.0.0.1",
        )
        self.idp = DevIdP(idp_url, key_dir=tmp_path / "keys")
        workspaces = self.middleware.workspaces
        create_demo_workspace(workspaces)
        wire_demo_workspace(workspaces, self.idp)
        self.sp_entity_id = f"{self.url}/saml/{DEMO_SLUG}/metadata"
        self.acs_url = f"{self.url}/saml/{DEMO_SLUG}/acs"
        self.idp.register_sp(self.sp_entity_id, self.acs_url)

    def member(self, email: str) -> Member:
        with transaction(self.middleware.database) as unit:
            member = unit.session.scalars(select(Member).where(Member.user_name == email)).one()
            unit.session.expunge(member)
            return member


@pytest.fixture
def site(serve: Callable[[Any], Any], database_url: str, tmp_path: Path) -> Iterator[Site]:
    site = Site(serve, database_url, tmp_path)
    yield site
    site.middleware.close()
