"""SCIM fixtures: a middleware on a fresh database, a workspace with SCIM on, and clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from webtest import TestApp

from webwork_sso_middleware import SSOMiddleware

from ..constants import SCIM_JSON


def host_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"host app"]


@pytest.fixture
def middleware(database_url: str) -> Iterator[SSOMiddleware]:
    app = SSOMiddleware(
        host_app,
        database_url=database_url,
        secret_key="test-secret-padded-to-thirty-two-bytes-at-least",
        base_url="https://tracker.example.com",
    )
    yield app
    app.close()


@pytest.fixture
def token(middleware: SSOMiddleware) -> str:
    """The SCIM token of workspace ``acme`` (Plus plan, SCIM on)."""
    _, token = middleware.workspaces.create(
        "acme", name="Acme", plan="plus", owner_email="owner@acme.test"
    )
    middleware.workspaces.enable("acme", scim=True)
    return token


class ScimClient:
    """WebTest with the token and SCIM content type on every request."""

    def __init__(self, app: SSOMiddleware, token: str) -> None:
        self.app = TestApp(app)
        self.headers = {"Authorization": f"Bearer {token}"}

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {**self.headers, **(extra or {})}

    def get(
        self,
        path: str,
        status: int | str = 200,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> Any:
        return self.app.get(
            "/scim/v2" + path, params=params or None, status=status, headers=self._headers(headers)
        )

    def send(
        self,
        method: str,
        path: str,
        body: Any,
        status: int | str = 200,
        headers: dict[str, str] | None = None,
    ) -> Any:
        import json

        return self.app.request(
            "/scim/v2" + path,
            method=method,
            body=json.dumps(body).encode(),
            headers={"Content-Type": SCIM_JSON, **self._headers(headers)},
            status=status,
        )

    def post(self, path: str, body: Any, status: int | str = 201, **kw: Any) -> Any:
        return self.send("POST", path, body, status, **kw)

    def put(self, path: str, body: Any, status: int | str = 200, **kw: Any) -> Any:
        return self.send("PUT", path, body, status, **kw)

    def patch(self, path: str, body: Any, status: int | str = 200, **kw: Any) -> Any:
        return self.send("PATCH", path, body, status, **kw)

    def delete(self, path: str, status: int | str = 204, **kw: Any) -> Any:
        return self.app.delete(
            "/scim/v2" + path, status=status, headers=self._headers(kw.get("headers"))
        )


@pytest.fixture
def scim(middleware: SSOMiddleware, token: str) -> ScimClient:
    return ScimClient(middleware, token)


@pytest.fixture
def live(middleware: SSOMiddleware, token: str, serve: Any) -> Iterator[requests.Session]:
    """A requests session against the middleware served over real HTTP, token set."""
    server = serve(middleware)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    session.base = server.url + "/scim/v2"  # type: ignore[attr-defined]
    yield session
    session.close()


def okta_user(
    email: str, given: str = "Ada", family: str = "Lovelace", **extra: Any
) -> dict[str, Any]:
    """The body Okta POSTs to create a user (Okta SCIM 2.0 reference)."""
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": f"{given} {family}",
        "locale": "en-US",
        "externalId": "00u" + email.split("@")[0],
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }
    body.update(extra)
    return body
