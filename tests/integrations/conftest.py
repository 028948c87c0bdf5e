"""A real framework app behind the middleware, served over HTTP, signed into through the real
test IdP: the SAML tests' ``Site`` and ``idp``, around a Django or Flask app instead."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from webwork_sso_middleware import SSOMiddleware

from ..saml.conftest import Site, idp  # noqa: F401  (the ``idp`` fixture, re-exported)
from ..saml.idp import TestIdP, autopost_form
from . import django_project


class FrameworkSite(Site):
    """``Site`` whose middleware an adapter builds: ``build(base_url)`` returns the WSGI app to
    serve and the ``SSOMiddleware`` inside it (Site's helpers only need the latter)."""

    def __init__(  # no super().__init__(): it would build a middleware of its own
        self,
        serve: Callable[[Any], Any],
        build: Callable[[str], tuple[Callable[..., Any], SSOMiddleware]],
    ) -> None:
        dispatch: list[Any] = []
        live = serve(lambda environ, start_response: dispatch[0](environ, start_response))
        self.url = live.url
        served, self.middleware = build(self.url)
        dispatch.append(served)
        self.workspaces = self.middleware.workspaces

    def sign_in(
        self,
        browser: requests.Session,
        provider: TestIdP,
        slug: str,
        email: str,
        next_path: str = "/",
    ) -> requests.Response:
        """SP-initiated, as a browser does it: our login URL -> the IdP -> auto-post -> our ACS."""
        provider.next_user = email
        start = browser.get(
            f"{self.url}/saml/{slug}/login", params={"next": next_path}, allow_redirects=False
        )
        assert start.status_code == 302, start.text
        at_idp = browser.get(start.headers["Location"])
        assert at_idp.status_code == 200, at_idp.text
        action, fields = autopost_form(at_idp.text)
        response = browser.post(action, data=fields, allow_redirects=False)
        assert response.status_code == 303, response.text
        return response

    def set_active(self, token: str, member_id: str, active: bool) -> None:
        """What the IdP does on Deactivate / Reactivate: a SCIM PATCH of ``active``."""
        response = requests.patch(
            f"{self.url}/scim/v2/Users/{member_id}",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"active": active}}],
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text


# -- the Django project (django_project.py), for the modules that drive it -----------------------


@pytest.fixture(scope="module")
def django_project_ready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Django configured (once a process) with its tables; its connections closed after the
    module. A Django module uses it, or ``empty_django_tables``, for every test
    (test_django_enforcement.py has its own: the same, with its backends in the settings)."""
    django_project.configure(tmp_path_factory.mktemp("django"))
    yield
    from django.db import connections

    connections.close_all()


@pytest.fixture
def empty_django_tables(django_project_ready: None) -> None:
    django_project.empty_tables()


@pytest.fixture
def make_django_site(
    serve: Callable[[Any], Any], database_url: str
) -> Iterator[Callable[..., FrameworkSite]]:
    """``make_django_site(**sso_options)``: the Django project, wrapped by
    ``sso_wsgi_application()`` with ``settings.WEBWORK_SSO`` holding those options, served over
    HTTP."""
    sites: list[FrameworkSite] = []

    def make(**options: Any) -> FrameworkSite:
        site = FrameworkSite(serve, django_project.builder(database_url, **options))
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.middleware.close()
