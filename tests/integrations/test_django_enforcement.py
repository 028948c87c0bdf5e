"""SSO enforcement in the Django adapter (integrations/django_auth.SSOEnforcingModelBackend,
integrations/django_enforcement.py) with real Django: a host's password form, served over HTTP
behind ``sso_wsgi_application``, refuses the password of people whose verified-domain workspace
requires SSO, lets the owner in during break-glass, and no hostile workspace can lock anyone
else out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.test import override_settings

from webwork_sso_middleware.integrations import django as django_integration
from webwork_sso_middleware.integrations import django_enforcement

from ..saml.idp import TestIdP
from . import django_project
from .conftest import FrameworkSite

ENFORCING = "webwork_sso_middleware.integrations.django.SSOEnforcingModelBackend"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module", autouse=True)
def django_project_ready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    django_project.configure(tmp_path_factory.mktemp("django"))
    with override_settings(AUTHENTICATION_BACKENDS=[django_project.BACKEND, ENFORCING]):
        yield
    from django.db import connections

    connections.close_all()


@pytest.fixture(autouse=True)
def fresh_state(django_project_ready: None) -> Iterator[None]:
    django_project.empty_tables()
    yield
    django_enforcement.register(None)  # no site of one test answers for the next


@pytest.fixture
def site(serve: Callable[[Any], Any], database_url: str, idp: TestIdP) -> Iterator[FrameworkSite]:
    """The Django project behind sso_wsgi_application over HTTP; workspace acme (Plus, SSO on,
    acme.test verified, an IdP; owner owner@acme.test) requires SSO."""
    made = FrameworkSite(serve, django_project.builder(database_url))
    made.add_workspace("acme", idp)
    made.workspaces.set_require_sso("acme", True, actor="test")
    yield made
    made.middleware.close()


def make_user(username: str, email: str = "") -> None:
    from django.contrib.auth.models import User

    User.objects.create_user(username=username, email=email, password=PASSWORD)


def password_login(site: FrameworkSite, username: str, password: str = PASSWORD) -> str:
    response = requests.post(
        f"{site.url}/password-login",
        data={"username": username, "password": password},
        timeout=10,
    )
    assert response.status_code in (200, 401), response.text
    return response.text


def test_password_sign_in_is_refused_where_sso_is_required(site: FrameworkSite) -> None:
    make_user("dave@acme.test", "dave@acme.test")
    make_user("bob@other.test", "bob@other.test")
    make_user("dave", "Dave@ACME.test")  # username not an address: the user's email counts
    assert password_login(site, "dave@acme.test") == "refused"
    assert password_login(site, "dave") == "refused"
    assert password_login(site, "bob@other.test") == "bob@other.test"
    assert password_login(site, "bob@other.test", "wrong") == "refused"

    site.workspaces.set_require_sso("acme", False, actor="test")
    assert password_login(site, "dave@acme.test") == "dave@acme.test"
    assert password_login(site, "dave") == "dave"


def test_break_glass_lets_the_owner_in_and_nobody_else(site: FrameworkSite) -> None:
    make_user("owner@acme.test", "owner@acme.test")
    make_user("dave@acme.test", "dave@acme.test")
    assert password_login(site, "owner@acme.test") == "refused"
    site.workspaces.open_break_glass("acme", actor="cli")
    assert password_login(site, "owner@acme.test") == "owner@acme.test"
    assert password_login(site, "dave@acme.test") == "refused"
    site.workspaces.close_break_glass("acme", actor="cli")
    assert password_login(site, "owner@acme.test") == "refused"


def test_a_hostile_workspace_locks_nobody_of_another_organisation_out(
    site: FrameworkSite, second_idp: TestIdP
) -> None:
    """evil requires SSO, claims other.test (unverifiable by it: no record) and acme.test
    (verified by acme), with SSO on and an IdP: bob@other.test keeps his password, and acme's
    people are governed by acme's switch alone."""
    make_user("bob@other.test", "bob@other.test")
    make_user("dave@acme.test", "dave@acme.test")
    site.add_workspace("evil", second_idp)
    site.workspaces.set_require_sso("evil", True, actor="mallory")
    site.workspaces.claim_domain("evil", "other.test")
    site.workspaces.claim_domain("evil", "acme.test")
    site.workspaces.set_require_sso("acme", False, actor="test")

    assert password_login(site, "bob@other.test") == "bob@other.test"
    assert password_login(site, "dave@acme.test") == "dave@acme.test"


def test_the_async_path_refuses_too(site: FrameworkSite) -> None:
    make_user("dave@acme.test", "dave@acme.test")
    backend = django_integration.SSOEnforcingModelBackend()
    refused = asyncio.run(backend.aauthenticate(None, username="dave@acme.test", password=PASSWORD))
    assert refused is None
    site.workspaces.set_require_sso("acme", False, actor="test")
    allowed = asyncio.run(backend.aauthenticate(None, username="dave@acme.test", password=PASSWORD))
    assert allowed is not None and allowed.get_username() == "dave@acme.test"


def test_without_a_served_middleware_it_asks_the_configured_store(
    site: FrameworkSite, database_url: str
) -> None:
    """manage.py, the test client: no sso_wsgi_application in the process. The backend opens
    the store that settings.WEBWORK_SSO names."""
    make_user("dave@acme.test", "dave@acme.test")
    make_user("bob@other.test", "bob@other.test")
    django_enforcement.register(None)
    from django.contrib.auth import authenticate

    with override_settings(WEBWORK_SSO={"database_url": database_url}):
        assert authenticate(None, username="dave@acme.test", password=PASSWORD) is None
        bob = authenticate(None, username="bob@other.test", password=PASSWORD)
        assert bob is not None
    django_enforcement.register(None)


def test_an_unreachable_store_refuses_the_password(tmp_path: Path) -> None:
    """Fail closed: a broken SSO store must not switch enforcement off."""
    make_user("dave@acme.test", "dave@acme.test")
    from django.contrib.auth import authenticate

    missing = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    with override_settings(WEBWORK_SSO={"database_url": missing}):
        django_enforcement.register(None)
        assert authenticate(None, username="dave@acme.test", password=PASSWORD) is None
    django_enforcement.register(None)
