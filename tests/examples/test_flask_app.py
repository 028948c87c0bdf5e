"""examples/flask_app: ``create_app()`` loaded from its file, one request through WebTest."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import webtest

from ..integrations.conftest import FrameworkSite
from ..saml.idp import TestIdP
from ..scim.conftest import okta_user

APP_FILE = Path(__file__).resolve().parents[2] / "examples" / "flask_app" / "app.py"


@pytest.fixture(scope="module")
def create_app() -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location("flask_app_example", APP_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.create_app


@pytest.fixture
def client(create_app: Callable[..., Any], database_url: str) -> Iterator[webtest.TestApp]:
    app = create_app(
        {
            "WEBWORK_SSO_DATABASE_URL": database_url,
            "WEBWORK_SSO_SECRET_KEY": "example-test-key-padded-to-thirty-two-bytes-at-least",
        }
    )
    yield webtest.TestApp(app)
    app.extensions["webwork_sso"].close()


def test_an_anonymous_visitor_sees_a_sign_in_link(client: webtest.TestApp) -> None:
    page = client.get("/")

    assert page.status_int == 200
    assert '<a href="/saml/login">Sign in with SSO</a>' in page.text


def test_the_account_page_sends_a_browser_to_sign_in(client: webtest.TestApp) -> None:
    response = client.get("/account", headers={"Accept": "text/html"}, status=302)

    assert response.headers["Location"] == "/saml/login?next=%2Faccount"


def test_the_account_page_shows_the_identity_to_key_users_by(
    create_app: Callable[..., Any], serve: Callable[[Any], Any], database_url: str, idp: TestIdP
) -> None:
    def build(base_url: str) -> tuple[Any, Any]:
        app = create_app(
            {
                "WEBWORK_SSO_DATABASE_URL": database_url,
                "WEBWORK_SSO_BASE_URL": base_url,
                "WEBWORK_SSO_SECRET_KEY": "example-test-key-padded-to-thirty-two-bytes-at-least",
            }
        )
        return app, app.extensions["webwork_sso"]

    site = FrameworkSite(serve, build)
    try:
        token = site.add_workspace("acme", idp)
        created = requests.post(
            f"{site.url}/scim/v2/Users",
            json=okta_user("kim@contractor.test"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        verified, contractor = requests.Session(), requests.Session()
        site.sign_in(verified, idp, "acme", "ada@acme.test")
        site.sign_in(contractor, idp, "acme", "kim@contractor.test")

        assert verified.get(f"{site.url}/account", timeout=10).json()["identity"] == "ada@acme.test"
        account = contractor.get(f"{site.url}/account", timeout=10).json()
        assert account["identity"] == f"acme:{created.json()['id']}"
        assert account["email"] == "kim@contractor.test"  # shown, but not what to key by
        assert "<code>acme:" in contractor.get(f"{site.url}/", timeout=10).text
    finally:
        site.middleware.close()
