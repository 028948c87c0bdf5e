"""SSOMiddleware: decides by path on the way in; never inspects the host app's response."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .config import Settings
from .scim.app import ScimApplication
from .store import Database
from .store.workspaces import Workspaces
from .urls import SCIM_PREFIX

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Keys that only the middleware may set; whatever a client or upstream put there is removed.
IDENTITY_KEYS = ("REMOTE_USER", "webwork_sso.member")


class SSOMiddleware:
    """Wrap a WSGI app with SCIM 2.0 provisioning at ``/scim/v2/`` (SAML sign-in at ``/saml/``).

    Every option is keyword-only and may also come from ``WEBWORK_SSO_<OPTION>``; an explicit
    argument wins.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        database_url: str | None = None,
        secret_key: str | list[str] | tuple[str, ...] | None = None,
        base_url: str | None = None,
        scim_max_results: int | None = None,
        max_body_bytes: int | None = None,
        auto_migrate: bool | None = None,
    ) -> None:
        self.app = app
        self.settings = Settings.from_options(
            {
                "database_url": database_url,
                "secret_key": [secret_key] if isinstance(secret_key, str) else secret_key,
                "base_url": base_url,
                "scim_max_results": scim_max_results,
                "max_body_bytes": max_body_bytes,
                "auto_migrate": auto_migrate,
            }
        )
        self.database = Database(self.settings.database_url, auto_migrate=self.settings.auto_migrate)
        self.workspaces = Workspaces(self.database)
        self.scim = ScimApplication(
            self.database,
            base_url=self.settings.base_url,
            max_results=self.settings.scim_max_results,
            max_body_bytes=self.settings.max_body_bytes,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if path == SCIM_PREFIX or path.startswith(SCIM_PREFIX + "/"):
            return self.scim(environ, start_response)
        for key in IDENTITY_KEYS:
            environ.pop(key, None)
        return self.app(environ, start_response)

    def close(self) -> None:
        """Release database connections (for tests and orderly shutdown)."""
        self.database.dispose()


