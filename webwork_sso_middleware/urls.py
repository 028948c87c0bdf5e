"""Every public URL of the site, built in one place: ``public_urls(environ, base_url)``.

``base_url`` is the public URL of the point where SSOMiddleware is mounted: what a browser, an
IdP or a SCIM client puts before ``/saml/...`` and ``/scim/v2/...``. It may carry a path: with
``https://x.example/tracker`` the ACS of ``acme`` is ``https://x.example/tracker/saml/acme/acs``,
the path exactly once. When it is set it wins: the request's host and ``SCRIPT_NAME`` are not
consulted (a proxy may strip or add a prefix the middleware never sees, and an entity ID must not
change with the Host header). Without it, the mount point is the request's host URL followed by
the middleware's own ``SCRIPT_NAME`` (what the WSGI server or a ``DispatcherMiddleware`` gave it).

The middleware mounts its sub-apps the way ``werkzeug.middleware.dispatcher.DispatcherMiddleware``
does, moving ``/saml`` or ``/scim/v2`` from ``PATH_INFO`` to ``SCRIPT_NAME``; it records its own
``SCRIPT_NAME`` first (MOUNT_ROOT_KEY), so a sub-app finds the mount point without knowing its
own prefix.

Two kinds of URL come out: absolute ones (entity IDs, ACS URLs, SCIM locations, what the CLI
prints) and site paths for links inside our own pages, redirects and cookie paths (``link``):
the path of the same public URL, so a browser stays on the origin it came to.

Paths handed around as ``next`` (``/reports``, ``/saml/acme/settings``) are relative to the
mount point, like ``PATH_INFO``: ``link`` puts the mount's path in front.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from werkzeug.wsgi import get_current_url

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# Where the middleware mounts its sub-apps, relative to its own mount point.
SCIM_PREFIX = "/scim/v2"
SAML_PREFIX = "/saml"
SIGN_IN_PATH = SAML_PREFIX + "/login"
LOGOUT_PATH = SAML_PREFIX + "/logout"
# The middleware's own SCRIPT_NAME, kept in the environ of a request it hands to a sub-app.
MOUNT_ROOT_KEY = "webwork_sso.mount_root"
# Characters SCRIPT_NAME may keep in a URL; PEP 3333 hands it over decoded, as latin-1.
PATH_SAFE = "/:@!$&'()*+,;=-._~"


def workspace_path(slug: str, endpoint: str) -> str:
    """A workspace's page below the mount point: ``/saml/<slug>/<endpoint>``."""
    return f"{SAML_PREFIX}/{slug}/{endpoint}"


@dataclasses.dataclass(frozen=True)
class PublicUrls:
    """The site's public URLs, from the public URL of the middleware's mount point."""

    base_url: str  # absolute, without a trailing slash

    @property
    def root(self) -> str:
        """The mount point's path ("" at the top of the site, else "/tracker")."""
        return urlsplit(self.base_url).path

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (relative to the mount point)."""
        return self.base_url + path

    def link(self, path: str) -> str:
        """The site path of ``path`` (relative to the mount point), for links and redirects."""
        return self.root + path

    @property
    def scim_base_url(self) -> str:
        # One SCIM base for the site: the bearer token names the workspace.
        return self.url(SCIM_PREFIX)

    def workspace(self, slug: str) -> WorkspaceUrls:
        return WorkspaceUrls(self.base_url, slug)


def public_urls(environ: WSGIEnvironment | None, base_url: str | None) -> PublicUrls:
    """The site's public URLs for a request (``environ``) or, with ``base_url``, for anyone.

    ``base_url`` wins over the request (see the module doc); the CLI, which has no request,
    passes None for ``environ`` and always has a ``base_url``.
    """
    if base_url:
        return PublicUrls(base_url.rstrip("/"))
    if environ is None:
        raise ValueError("a base URL is needed outside a request")
    host = get_current_url(environ, host_only=True).rstrip("/")
    return PublicUrls(host + mount_root(environ))


def mount_root(environ: WSGIEnvironment) -> str:
    """The middleware's own ``SCRIPT_NAME``, percent-encoded, without a trailing slash.

    A sub-app the middleware mounted finds it under MOUNT_ROOT_KEY (its own ``SCRIPT_NAME``
    then ends in its prefix); an app used on its own reads ``SCRIPT_NAME``."""
    key = MOUNT_ROOT_KEY if MOUNT_ROOT_KEY in environ else "SCRIPT_NAME"
    script_name = str(environ.get(key, ""))
    return quote(script_name.encode("latin-1"), safe=PATH_SAFE + "%").rstrip("/")


@dataclasses.dataclass(frozen=True)
class WorkspaceUrls:
    """One workspace's public URLs, as the settings page and the CLI show them."""

    base_url: str
    slug: str

    @property
    def scim_base_url(self) -> str:
        return PublicUrls(self.base_url).scim_base_url

    @property
    def sp_entity_id(self) -> str:
        return self.base_url + workspace_path(self.slug, "metadata")

    @property
    def sp_metadata_url(self) -> str:
        return self.sp_entity_id

    @property
    def acs_url(self) -> str:
        return self.base_url + workspace_path(self.slug, "acs")

    @property
    def slo_url(self) -> str:
        """Single logout (SAML 2.0 SLO), HTTP-Redirect and HTTP-POST: saml/single_logout.py."""
        return self.base_url + workspace_path(self.slug, "slo")

    @property
    def login_url(self) -> str:
        return self.base_url + workspace_path(self.slug, "login")

    @property
    def continue_url(self) -> str:
        return self.base_url + workspace_path(self.slug, "continue")

    @property
    def settings_url(self) -> str:
        return self.base_url + workspace_path(self.slug, "settings")

    def as_dict(self) -> dict[str, Any]:
        return {
            "scim_base_url": self.scim_base_url,
            "sp_entity_id": self.sp_entity_id,
            "acs_url": self.acs_url,
            "sp_metadata_url": self.sp_metadata_url,
            "login_url": self.login_url,
            "settings_url": self.settings_url,
        }
