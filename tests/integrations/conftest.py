"""A real framework app behind the middleware, served over HTTP, signed into through the real
test IdP: the SAML tests' ``Site`` and ``idp``, around a Django or Flask app instead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from webwork_sso_middleware import SSOMiddleware

from ..saml.conftest import Site, idp  # noqa: F401  (the ``idp`` fixture, re-exported)
from ..saml.idp import TestIdP, autopost_form


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
