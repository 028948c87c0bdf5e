"""SSOMiddleware: decides by path on the way in; never inspects the host app's response."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Unpack
from urllib.parse import quote, urlencode

from .admin.links import LINK_LIFETIME, settings_link
from .admin.views import SettingsPage
from .config import Options, Settings
from .domains import TxtResolver
from .events import EventFeed
from .idp_metadata.fetching import MetadataFetcher
from .idp_metadata.workspaces import Workspaces
from .logs import JsonLines, begin_request, end_request
from .metrics import metrics_for
from .protected_paths import is_protected
from .saml.app import SamlApplication
from .scim.app import ScimApplication
from .sessions import SessionManager
from .signing import Signing
from .store import Database, audit
from .urls import MOUNT_ROOT_KEY, SAML_PREFIX, SCIM_PREFIX, SIGN_IN_PATH, public_urls

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Keys that only the middleware may set; whatever a client or upstream put there is removed.
IDENTITY_KEYS = ("REMOTE_USER", "webwork_sso.member")
MEMBER_KEY = "webwork_sso.member"
# Below SAML_PREFIX, the settings page (admin/views.py); every other path there is the SAML app's.
SETTINGS_PAGE = re.compile(r"/[^/]+/settings/?\Z")
# Characters a path may keep when it travels as ``next``; everything else is percent-encoded.
PATH_SAFE = "/:@!$&'()*+,;=-._~"


class SSOMiddleware:
    """Wrap a WSGI app with SCIM 2.0 provisioning at ``/scim/v2/`` and SAML sign-in at ``/saml/``.

    Every option is keyword-only and may also come from the environment variable
    ``WEBWORK_SSO_<OPTION>`` (``WEBWORK_SSO_DATABASE_URL``, ...); an argument that is given (not
    ``None``) wins over the environment. In the environment, an option that takes several values
    separates them by commas.

    .. code-block:: python

        from webwork_sso_middleware import SSOMiddleware

        app = SSOMiddleware(
            app,
            base_url="https://tracker.example.com",
            database_url="postgresql+psycopg://sso@db.internal/webwork_sso",
            protect=["/reports", "/admin"],
        )  # secret_key from WEBWORK_SSO_SECRET_KEY

    :param app: the WSGI application to wrap; it sees ``REMOTE_USER`` and
        ``environ["webwork_sso.member"]`` for a signed-in member.
    :param database_url: the member store, a SQLAlchemy URL. Default ``"sqlite:///webwork_sso.db"``.
    :param secret_key: signs cookies and links; a list rotates keys, newest last (it signs, every
        key verifies). Each at least 32 bytes. Required.
    :param base_url: the public ``http(s)://host[:port][/prefix]`` the SAML and SCIM URLs are
        built from. Default ``None``: from each request.
    :param scim_max_results: the most SCIM resources one page returns. Default ``200``.
    :param max_body_bytes: larger request bodies are refused with 413 before they are read
        (at least 1024). Default ``1048576``.
    :param auto_migrate: apply the packaged schema migrations at start-up. Default ``True``.
    :param session_absolute_lifetime: seconds a session lasts from sign-in, however busy (at
        least ``session_idle_lifetime``). Default ``43200``.
    :param session_idle_lifetime: seconds without a request after which a session ends (at
        least 60). Default ``7200``.
    :param session_recheck_seconds: how long a worker trusts its cached check of a session or
        of a SCIM token, and which workspace verified a domain SCIM creates a member in: the
        most time a deactivation, a logout, a new SCIM token, SCIM switched off or a domain
        verified in another process takes to reach every worker (0 to 300; 0 asks the
        database on every request). Default ``2.0``.
    :param session_cookie_name: the session cookie's name. Default ``"webwork_sso_session"``.
    :param protect: path prefixes that require a session, or ``True`` for every path except
        ``/saml/`` and ``/scim/``; matched case-insensitively on normalised paths. Default ``()``:
        nothing.
    :param clock_skew_seconds: how far the IdP's clock may be off when SAML validity windows are
        checked (0 to 600). Default ``180``.
    :param database_busy_timeout: seconds a request waits for a database lock or connection
        before it fails with 503 (0 to 600). Default ``30.0``.
    :param audit_retention_days: days the audit log keeps an event; 0 keeps them for ever.
        Default ``0``.
    :param dns_nameservers: DNS servers (``host``, ``host:port``, ``[v6]:port``) that domain
        verification asks. Default ``()``: the system's resolver.
    :param metadata_allowed_hosts: hosts whose IdP metadata may be fetched although they resolve
        to an internal address. Default ``()``: public addresses only.
    :param metadata_fetch_timeout: the most seconds one fetch of IdP metadata may take (0.1 to
        120). Default ``10.0``.
    :param roles: the role names the host app declares, in the order ``member.roles`` lists
        them; workspace owners map their groups to these. Default ``()`` (no roles).
    :param default_role: the role of a member none of whose groups maps to one; one of
        ``roles``. Default ``None``.
    :param metrics: Prometheus metrics (prometheus_client, the ``metrics`` extra): ``True``
        counts into a registry of this middleware's own, which :meth:`metrics_app` exposes; a
        ``prometheus_client`` registry (``REGISTRY``, say) receives them instead. No label
        names a workspace, a member, a token or a path. Default ``False``: off, and
        prometheus_client is never imported.
    :param log_format: ``"text"`` leaves logging to the host (the package's records carry
        ``event``, ``workspace``, ``reason`` and ``request_id`` attributes);
        ``"json"`` makes the package's logger write one JSON object per line to stderr
        instead (logs.JsonLines). Default ``"text"``.
    :raises UnknownOption: for a keyword that is not an option (a ``TypeError`` too).
    :raises ConfigurationError: for a missing ``secret_key`` or a value that is not valid.
    """

    def __init__(self, app: WSGIApplication, **options: Unpack[Options]) -> None:
        self.app = app
        # Options are declared once, as the fields of Settings: it checks the names, converts
        # and validates the values, and reads the environment for the rest.
        self.settings = Settings.from_options(options)
        settings = self.settings
        # Off: a recorder whose methods do nothing, and prometheus_client is never imported.
        self.metrics = metrics_for(settings.metrics)
        self.database = Database(
            settings.database_url,
            auto_migrate=settings.auto_migrate,
            busy_timeout=settings.database_busy_timeout,
        )
        fetch_metadata = MetadataFetcher.from_settings(settings)
        self.workspaces = Workspaces(
            self.database,
            resolver=TxtResolver(settings.dns_nameservers),
            fetch=fetch_metadata,
            # A change made through this object reaches this worker's SCIM at once.
            credentials_changed=self._forget_credentials,
            domains_changed=self._forget_verified_domains,
        )
        self.scim = ScimApplication(
            self.database,
            base_url=settings.base_url,
            max_results=settings.scim_max_results,
            max_body_bytes=settings.max_body_bytes,
            metrics=self.metrics,
            recheck=dt.timedelta(seconds=settings.session_recheck_seconds),
        )
        self.sessions = SessionManager(
            self.database,
            signing=Signing(settings.secret_key),  # built once: each purpose's keys derived once
            secure=settings.secure_cookies,
            cookie_name=settings.session_cookie_name,
            absolute_lifetime=dt.timedelta(seconds=settings.session_absolute_lifetime),
            idle_lifetime=dt.timedelta(seconds=settings.session_idle_lifetime),
            recheck_interval=dt.timedelta(seconds=settings.session_recheck_seconds),
            roles=settings.roles,
            default_role=settings.default_role,
            metrics=self.metrics,
        )
        self.saml = SamlApplication(
            self.database, settings=settings, sessions=self.sessions, metrics=self.metrics
        )
        self.settings_page = SettingsPage(
            self.database,
            settings=settings,
            sessions=self.sessions,
            fetch=fetch_metadata,
            credentials_changed=self._forget_credentials,
            domains_changed=self._forget_verified_domains,
        )
        # Lifecycle events: subscribe(handler) here, since(cursor) from anywhere (events/).
        self.events = EventFeed(self.database)
        self.audit_retention = (
            audit.Retention(self.database, days=settings.audit_retention_days)
            if settings.audit_retention_days
            else None
        )
        # Last: a constructor that failed above leaves the host's logging untouched.
        self.json_lines = JsonLines() if settings.log_format == "json" else None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # Every request gets an id (environ["webwork_sso.request_id"], and in our log records).
        token = begin_request(environ)
        try:
            return self.dispatch(environ, start_response)
        finally:
            end_request(token)

    def dispatch(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        for key in IDENTITY_KEYS:
            environ.pop(key, None)
        path: str = environ.get("PATH_INFO", "")
        if _under(path, SCIM_PREFIX):
            self._keep_audit_retention()
            return self.scim(_mount(environ, SCIM_PREFIX), start_response)
        if _under(path, SAML_PREFIX):
            self._keep_audit_retention()
            below = path[len(SAML_PREFIX) :]
            app = self.settings_page if SETTINGS_PAGE.match(below) else self.saml
            return app(_mount(environ, SAML_PREFIX), start_response)
        found = self.sessions.identify(environ)
        if found is None:
            if self._protects(path):
                return _challenge(environ, start_response, self.settings.base_url)
            return self.app(environ, start_response)
        member, refreshed_cookie = found
        environ["REMOTE_USER"] = member.identity  # tenant-safe: identity.py
        environ[MEMBER_KEY] = member
        if refreshed_cookie is not None:
            start_response = _adding_cookie(start_response, refreshed_cookie)
        return self.app(environ, start_response)

    def _forget_credentials(self) -> None:
        self.scim.credentials.forget()

    def _forget_verified_domains(self) -> None:
        self.scim.verified_domains.forget()

    def _keep_audit_retention(self) -> None:
        # On the paths that write the log (SCIM, sign-in), never on the host app's own traffic.
        if self.audit_retention is not None:
            self.audit_retention.maybe_purge()

    def _protects(self, path: str) -> bool:
        """Matched on normalised forms of the path, case-insensitively (protected_paths.py):
        a host app or a front server may resolve ``/Reports`` or ``/x/../reports`` to the
        protected page, and protecting more than it means is the safe side."""
        protect = self.settings.protect
        if protect is True:
            return True  # /saml/ and /scim/ never get here
        return is_protected(path, protect or ())

    def settings_link(self, slug: str, *, lifetime: dt.timedelta = LINK_LIFETIME) -> str:
        """A one-time link (15 minutes at most) that opens the workspace's settings page.

        Call it only after the host app's own check that the person is the workspace owner,
        then redirect them to it, as to an admin portal. Without base_url it is a path relative
        to the middleware's mount point (a host app under /tracker puts that in front; urls.py).
        Raises NotFound for an unknown workspace.
        """
        info = self.workspaces.get(slug)
        return settings_link(
            info.slug,
            base_url=self.settings.base_url or "",
            signing=self.sessions.signing,
            lifetime=lifetime,
        )

    def sso_required(self, email: str) -> bool:
        """Whether the host app must refuse ``email``'s password sign-in: its domain is
        verified by a workspace that requires SSO and has SSO usable (a Plus or Premium plan,
        SSO on, an IdP set), unless that workspace's owner opened a break-glass window and
        ``email`` is the owner's. Only the workspace that verified a domain can require SSO
        for it. One indexed query; a signed-in member carries the same answer as
        ``member.sso_required``.
        """
        return self.workspaces.sso_required(email)

    def metrics_app(self) -> WSGIApplication:
        """The Prometheus exposition of this middleware's metrics, as a WSGI app to mount
        where the host wants it (and behind what protects it: the counts are the site's)::

            from werkzeug.middleware.dispatcher import DispatcherMiddleware
            sso = SSOMiddleware(app, metrics=True)
            application = DispatcherMiddleware(sso, {"/metrics": sso.metrics_app()})

        Raises ConfigurationError when the ``metrics`` option is off.
        """
        return self.metrics.wsgi_app()

    def close(self) -> None:
        """Release database connections (for tests and orderly shutdown), and the JSON log
        handler when this middleware installed the last one."""
        self.database.dispose()
        if self.json_lines is not None:
            self.json_lines.release()


def _under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or below it, segment-wise (/reports is not under /rep)."""
    return path == prefix or path.startswith(prefix + "/")


def _mount(environ: WSGIEnvironment, prefix: str) -> WSGIEnvironment:
    """Hand the request to the app mounted at ``prefix``, as werkzeug's DispatcherMiddleware
    does: the prefix moves from PATH_INFO to SCRIPT_NAME, so the app's routes are relative.
    The middleware's own SCRIPT_NAME is kept for the public URLs (urls.py)."""
    script_name = environ.get("SCRIPT_NAME", "")
    environ[MOUNT_ROOT_KEY] = script_name
    environ["SCRIPT_NAME"] = script_name + prefix
    environ["PATH_INFO"] = environ.get("PATH_INFO", "")[len(prefix) :]
    return environ


def _is_browser(environ: WSGIEnvironment) -> bool:
    return "text/html" in environ.get("HTTP_ACCEPT", "")


def _challenge(
    environ: WSGIEnvironment, start_response: StartResponse, base_url: str | None
) -> list[bytes]:
    """A protected path without a session: browsers go to sign in, other clients get 401."""
    headers = [("Cache-Control", "no-store"), ("Vary", "Accept, Cookie")]
    if _is_browser(environ):
        # PATH_INFO arrives decoded as latin-1 (PEP 3333): encode it back before quoting.
        target = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe=PATH_SAFE)
        if environ.get("QUERY_STRING"):
            # Existing escapes stay as they are; only raw bytes a client slipped in get encoded.
            target += "?" + quote(environ["QUERY_STRING"].encode("latin-1"), safe=PATH_SAFE + "%?")
        # ``next`` is relative to the mount point, like PATH_INFO; the page's own path is public.
        sign_in = public_urls(environ, base_url).link(SIGN_IN_PATH)
        location = f"{sign_in}?{urlencode({'next': target})}"
        start_response(
            "302 Found",
            [*headers, ("Location", location), ("Content-Type", "text/plain; charset=utf-8")],
        )
        return [b"Sign in required: " + location.encode("latin-1")]
    body = b"Sign in required.\n"
    start_response(
        "401 Unauthorized",
        [
            *headers,
            ("WWW-Authenticate", 'SSO realm="webwork"'),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def _adding_cookie(start_response: StartResponse, cookie: str) -> StartResponse:
    """start_response that adds the refreshed session cookie to the host app's headers."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if not _shared_cacheable(headers):
            headers = [*headers, ("Set-Cookie", cookie)]
        return start_response(status, headers, exc_info)

    return start


def _shared_cacheable(headers: list[tuple[str, str]]) -> bool:
    """The host app let shared caches keep this response: a session cookie must not ride on
    it, or the cache would hand it to others. The refresh waits for the next response."""
    for name, value in headers:
        if name.lower() == "cache-control":
            directives = {part.strip().split("=")[0].lower() for part in value.split(",")}
            if directives & {"public", "s-maxage"} and not directives & {"private", "no-store"}:
                return True
    return False
