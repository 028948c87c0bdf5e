"""The example time tracker as ``webwork-sso serve`` runs it: behind SSOMiddleware (with the
demo's roles declared), following its lifecycle events, the dev IdP beside it, and a hostile
second workspace ``evil`` in the same database, with a SCIM token of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.devidp import DevIdP
from webwork_sso_middleware.devserver import (
    DEMO_SLUG,
    DEMO_USERS,
    create_demo_workspace,
    load_timetracker_factory,
    tracker_options,
    wire_demo_workspace,
)

from ..constants import SCIM_HEADERS, SECRET

EVIL = "evil"


class Scim:
    """A workspace's SCIM client over real HTTP."""

    def __init__(self, base_url: str, token: str) -> None:
        self.url = f"{base_url}/scim/v2"
        self.headers = {**SCIM_HEADERS, "Authorization": f"Bearer {token}"}

    def create_user(self, user_name: str, *, active: bool = True) -> str:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "active": active,
            "emails": [{"value": user_name, "primary": True}],
        }
        return self._send("POST", "/Users", body, 201)["id"]  # type: ignore[no-any-return]

    def set_active(self, member_id: str, active: bool) -> None:
        body = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": active}}],
        }
        self._send("PATCH", f"/Users/{member_id}", body, 200)

    def delete_user(self, member_id: str) -> None:
        self._send("DELETE", f"/Users/{member_id}", None, 204)

    def create_group(self, name: str, member_ids: list[str]) -> str:
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": [{"value": member_id} for member_id in member_ids],
        }
        return self._send("POST", "/Groups", body, 201)["id"]  # type: ignore[no-any-return]

    def _send(self, method: str, path: str, body: Any, status: int) -> Any:
        response = requests.request(
            method, self.url + path, json=body, headers=self.headers, timeout=10
        )
        assert response.status_code == status, response.text
        return response.json() if response.content else None


class TrackerSite:
    """The tracker behind SSOMiddleware on a loopback port, the dev IdP on another, the demo
    workspace wired to it as ``serve`` wires it; ``restart()`` builds a new middleware and
    tracker on the same files, as a restarted server would."""

    def __init__(self, serve: Callable[[Any], Any], database_url: str, tmp_path: Path) -> None:
        self.database_url = database_url
        self.tracker_path = str(tmp_path / "timetracker.db")
        self.middleware: SSOMiddleware
        self.tracker: Any
        self.idp: DevIdP
        # Served before they exist: each URL is known only once its server listens.
        self.url = serve(lambda environ, start: self.middleware(environ, start)).url
        idp_url = serve(lambda environ, start: self.idp.wsgi_app(environ, start)).url
        self.start()
        self.idp = DevIdP(idp_url, key_dir=tmp_path / "keys", users=DEMO_USERS)
        workspaces = self.middleware.workspaces
        demo_token = create_demo_workspace(workspaces)
        assert demo_token is not None
        wire_demo_workspace(workspaces, self.idp)
        self.idp.register_sp(
            f"{self.url}/saml/{DEMO_SLUG}/metadata", f"{self.url}/saml/{DEMO_SLUG}/acs"
        )
        self.demo = Scim(self.url, demo_token)
        _, evil_token = workspaces.create(
            EVIL, name="Evil Corp", plan="plus", owner_email="boss@evil.test"
        )
        workspaces.enable(EVIL, scim=True)
        self.evil = Scim(self.url, evil_token)

    def start(self) -> None:
        self.tracker = self.new_tracker()
        self.middleware = SSOMiddleware(
            self.tracker,
            database_url=self.database_url,
            secret_key=SECRET,
            base_url=self.url,
            metadata_allowed_hosts="127.0.0.1",
            **tracker_options(),
        )
        self.tracker.follow(self.middleware)

    def new_tracker(self) -> Any:
        return load_timetracker_factory()(self.tracker_path)

    def restart(self) -> None:
        self.middleware.close()
        self.start()

    def seats(self, slug: str = DEMO_SLUG) -> int:
        count: int = self.tracker.directory.seat_count(slug)
        return count


@pytest.fixture
def tracker_site(
    serve: Callable[[Any], Any], database_url: str, tmp_path: Path
) -> Iterator[TrackerSite]:
    site = TrackerSite(serve, database_url, tmp_path)
    yield site
    site.middleware.close()
