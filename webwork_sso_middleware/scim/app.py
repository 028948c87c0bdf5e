"""The SCIM 2.0 service provider (RFC 7644) as a plain WSGI app, mounted at ``/scim/v2``
(middleware.py moves the prefix to SCRIPT_NAME: the routes here are relative).

Routing, authentication and error rendering live here; the Users and Groups endpoints live
in users.py and groups.py, the root search in root_search.py, /Bulk in bulk.py. Each request
is one database transaction: a failure anywhere rolls the whole write back (a /Bulk request
is one transaction per operation, each taking the very path a single request takes). Failed
token checks are counted per client address, and an address with too many gets 429 for its
wrong tokens for a while, while a right token still works from it (throttle.py).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from ..errors import NotFound, StoreUnavailable
from ..logs import note_workspace, package_logger
from ..metrics import NO_METRICS, Metrics
from ..store.db import Database, UnitOfWork
from ..store.models import SSO_PLANS
from ..urls import public_urls
from . import bulk, discovery, groups, root_search, users
from .context import Reply, ScimContext
from .credentials import CredentialCache
from .errors import ScimError
from .replies import JsonReply, json_reply
from .throttle import AUTH_FAILURE_LIMIT, AUTH_FAILURE_WINDOW, AuthThrottle, source_of
from .verified_domains import VerifiedDomains

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = package_logger(__name__)

MAX_TOKEN_LENGTH = 512
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")  # a POST .search is logged too: rare


Endpoint = Callable[..., Reply]

# endpoint name -> (handler, writes?)
# How an endpoint's work meets the database (perform()): reads need no transaction; a
# create's one write is one statement on PostgreSQL (users.create_user), so it needs none
# either (Database.run, together=False); other writes run in a transaction.
READS, ONE_WRITE, WRITES = "reads", "one write", "writes"
ENDPOINTS: dict[str, tuple[Endpoint, str]] = {
    "list_users": (users.list_users, READS),
    "search_users": (users.search_users, READS),
    "create_user": (users.create_user, ONE_WRITE),
    "get_user": (users.get_user, READS),
    "replace_user": (users.replace_user, WRITES),
    "patch_user": (users.patch_user, WRITES),
    "delete_user": (users.delete_user, WRITES),
    "list_groups": (groups.list_groups, READS),
    "search_groups": (groups.search_groups, READS),
    "create_group": (groups.create_group, WRITES),
    "get_group": (groups.get_group, READS),
    "replace_group": (groups.replace_group, WRITES),
    "patch_group": (groups.patch_group, WRITES),
    "delete_group": (groups.delete_group, WRITES),
    "search_resources": (root_search.search_resources, READS),
}


def _resource_rules(endpoint: str, singular: str, plural: str) -> list[Rule]:
    base = f"/{endpoint}"
    return [
        Rule(base, endpoint=f"list_{plural}", methods=["GET"]),
        Rule(base, endpoint=f"create_{singular}", methods=["POST"]),
        Rule(f"{base}/.search", endpoint=f"search_{plural}", methods=["POST"]),
        Rule(f"{base}/<resource_id>", endpoint=f"get_{singular}", methods=["GET"]),
        Rule(f"{base}/<resource_id>", endpoint=f"replace_{singular}", methods=["PUT"]),
        Rule(f"{base}/<resource_id>", endpoint=f"patch_{singular}", methods=["PATCH"]),
        Rule(f"{base}/<resource_id>", endpoint=f"delete_{singular}", methods=["DELETE"]),
    ]


URL_MAP = Map(
    [
        Rule("/ServiceProviderConfig", endpoint="service_provider_config", methods=["GET"]),
        Rule("/ResourceTypes", endpoint="resource_types", methods=["GET"]),
        Rule("/ResourceTypes/<name>", endpoint="resource_type", methods=["GET"]),
        Rule("/Schemas", endpoint="schemas", methods=["GET"]),
        Rule("/Schemas/<name>", endpoint="schema", methods=["GET"]),
        Rule("/Bulk", endpoint="bulk", methods=["POST"]),
        Rule("/Me", endpoint="not_implemented"),
        Rule("/.search", endpoint="search_resources", methods=["POST"]),
        *_resource_rules("Users", "user", "users"),
        *_resource_rules("Groups", "group", "groups"),
    ],
    strict_slashes=False,
    merge_slashes=False,
)


# Bound once: matching a path and method given outright reads the adapter and changes nothing,
# so every request and thread shares it (binding one per request cost 2% of a create).
_ADAPTER = URL_MAP.bind("scim")


class ScimApplication:
    def __init__(
        self,
        database: Database,
        *,
        base_url: str | None,
        max_results: int,
        max_body_bytes: int,
        auth_failure_limit: int = AUTH_FAILURE_LIMIT,
        auth_failure_window: dt.timedelta = AUTH_FAILURE_WINDOW,
        bulk_max_operations: int = bulk.MAX_OPERATIONS,
        metrics: Metrics = NO_METRICS,
        recheck: dt.timedelta = dt.timedelta(0),
    ) -> None:
        self.database = database
        # What a burst of requests would each ask, kept for ``recheck`` (0: asked every time):
        # which workspace a token opens, and which workspace verified a created member's domain.
        self.credentials = CredentialCache(recheck=recheck)
        self.verified_domains = VerifiedDomains(recheck=recheck)
        self.metrics = metrics
        self.base_url = base_url
        self.max_results = max_results
        self.max_body_bytes = max_body_bytes
        # maxPayloadSize is the site's body limit: a bulk body is a request body like any.
        self.bulk_limits = bulk.BulkLimits(
            max_operations=bulk_max_operations, max_payload_size=max_body_bytes
        )
        self.throttle = AuthThrottle(
            database, limit=auth_failure_limit, window=auth_failure_window, metrics=metrics
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Exception as exc:  # noqa: BLE001 - error_for logs what is not a SCIM answer
            response = self.error_response(self.error_for(exc, request))
        # By resource type, never by path: ids and whatever a client invents stay out.
        self.metrics.scim_request(
            request.method,
            _resource_type(environ.get("PATH_INFO", "")),
            response.status_code,
            time.perf_counter() - started,
        )
        return response(environ, start_response)

    @staticmethod
    def error_for(exc: Exception, request: Request) -> ScimError:
        """The SCIM error a failure is answered with: for a request, or for one operation of
        a /Bulk request (its ``request`` then being that operation's)."""
        if isinstance(exc, ScimError):
            if request.method in WRITE_METHODS and exc.status not in (401, 429):
                log.info(
                    "SCIM %s %s refused: %d %s",
                    request.method,
                    request.path,
                    exc.status,
                    exc.detail,
                    extra={
                        "event": "scim.write_refused",
                        "reason": exc.scim_type or str(exc.status),
                    },
                )
            return exc
        if isinstance(exc, NotFound):
            kind = {"member": "User", "group": "Group"}.get(exc.kind, exc.kind)
            return ScimError(404, f"{kind} {exc.key} not found")
        if isinstance(exc, StaleDataError):
            return ScimError(409, "the resource was changed concurrently; retry the request")
        if isinstance(exc, (StoreUnavailable, OperationalError)):
            log.warning("SCIM request failed: database unavailable", exc_info=exc)
            return ScimError(
                503,
                "the member store is unavailable; try again shortly",
                headers={"Retry-After": "5"},
            )
        # A bug of ours: logged in full, answered without internals.
        log.error("unexpected error in SCIM %s %s", request.method, request.path, exc_info=exc)
        return ScimError(500, "internal error")

    def scim_base(self, request: Request) -> str:
        return public_urls(request.environ, self.base_url).scim_base_url

    def dispatch(self, request: Request) -> JsonReply | Response:
        try:
            endpoint, args = _ADAPTER.match(request.path, method=request.method)
        except MethodNotAllowed as exc:
            allowed = ", ".join(exc.valid_methods or ())
            raise ScimError(
                405,
                f"{request.method} is not allowed here (allowed: {allowed})",
                headers={"Allow": allowed},
            ) from None
        except RouteNotFound:
            raise ScimError(404, f"no SCIM endpoint at {_public_path(request)}") from None
        except HTTPException as exc:  # e.g. a redirect werkzeug would suggest
            raise ScimError(exc.code or 400, exc.description or "bad request") from None
        if endpoint in ENDPOINTS:
            status, body, headers = self.guarded(
                request, lambda: self.perform(request, endpoint, args)
            )
        elif endpoint == "bulk":
            status, body, headers = self.guarded(request, lambda: self.bulk(request))
        else:
            status, body, headers = self.discovery(request, endpoint, args)
        return self.json_response(status, body, headers)

    def perform(self, request: Request, endpoint: str, args: Mapping[str, str]) -> Reply:
        """One endpoint's work in one transaction of its own: the token is checked, then the
        handler runs. A single request and each operation of a /Bulk request come here."""
        handler, access = ENDPOINTS[endpoint]

        def work(unit: UnitOfWork) -> Reply:
            context = self.authenticate(request, unit)
            if "\x00" in args.get("resource_id", ""):
                # No id holds NUL, and PostgreSQL would refuse the lookup: not found.
                raise NotFound(
                    "member" if endpoint.endswith("_user") else "group", args["resource_id"]
                )
            return handler(context, **args)

        # A read (a lookup, a page and its totals) needs no transaction around its statements,
        # nor does a create: on PostgreSQL that spares the BEGIN and COMMIT round trips.
        return self.database.run(work, write=access != READS, together=access == WRITES)

    def guarded(self, request: Request, call: Callable[[], Reply]) -> Reply:
        """``call`` behind the token-guessing throttle (throttle.py): a blocked source without
        a right token gets 429 before anything runs, and an invalid token is counted."""
        throttle = self.throttle
        # Empty unless some source is blocked: the usual request pays one truth test.
        if throttle.blocked:
            wait = throttle.retry_after(source_of(request.remote_addr))
            # A blocked source costs one read, never a write: only a right token goes on.
            if wait is not None and not self.holds_live_token(request):
                raise _too_many_failures(wait)
        try:
            return call()
        except InvalidToken:
            source = source_of(request.remote_addr)
            failures, wait = throttle.failed(source)
            log.info(
                "SCIM: invalid token from %s (%d failures in the window)",
                source,
                failures,
                extra={"event": "scim.token_refused", "reason": "invalid_token"},
            )
            if wait is not None and failures > throttle.limit:
                raise _too_many_failures(wait) from None
            raise

    def bulk(self, request: Request) -> Reply:
        """/Bulk: the token is checked once (a wrong one is one failure, as for any request),
        then each operation runs through :meth:`perform` (bulk.py)."""
        self.database.run(lambda unit: self.authenticate(request, unit), write=False)
        if self.bulk_limits.max_operations < 1:  # switched off, and announced so
            raise ScimError(501, "/Bulk is not supported by this service provider")
        return bulk.process(request, self, self.bulk_limits)

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        """The endpoint and arguments of ``method`` on ``path`` (relative to the SCIM base),
        as a request would be routed; 404 / 405 SCIM errors as for a request."""
        try:
            endpoint, args = _ADAPTER.match(path, method=method)
        except MethodNotAllowed as exc:
            allowed = ", ".join(exc.valid_methods or ())
            raise ScimError(
                405, f"{method} is not allowed on {path} (allowed: {allowed})"
            ) from None
        except HTTPException:
            raise ScimError(404, f"no SCIM endpoint at {path}") from None
        return str(endpoint), dict(args)

    def holds_live_token(self, request: Request) -> bool:
        """Whether the request's token is a live one, in a read-only transaction of its own
        (for a request from a blocked source, before anything else is done for it)."""
        token = _presented_token(request)
        return token is not None and self.database.run(
            lambda unit: self.credentials.find(unit, token) is not None, write=False
        )

    def authenticate(self, request: Request, unit: UnitOfWork) -> ScimContext:
        token = _presented_token(request)
        if token is None:
            raise _unauthorized("missing SCIM API token (send 'Authorization: Bearer <token>')")
        credential = self.credentials.find(unit, token)
        if credential is None:
            raise InvalidToken()
        if credential.plan not in SSO_PLANS:
            raise ScimError(403, "SCIM provisioning needs the Plus or Premium plan")
        if not credential.scim_enabled:
            raise ScimError(403, "SCIM provisioning is switched off for this workspace")
        note_workspace(credential.workspace_slug)  # this request's later records name it
        return ScimContext(
            self, request, unit, credential.workspace_id, f"scim:{credential.token_hint}"
        )

    def discovery(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Reply:
        base = self.scim_base(request)
        if endpoint == "service_provider_config":
            config = discovery.service_provider_config(
                base,
                max_results=self.max_results,
                bulk_max_operations=self.bulk_limits.max_operations,
                bulk_max_payload_size=self.bulk_limits.max_payload_size,
            )
            return 200, config, {}
        if endpoint == "resource_types":
            return 200, discovery.list_response(discovery.resource_types(base)), {}
        if endpoint == "resource_type":
            found = [rt for rt in discovery.resource_types(base) if rt["id"] == args["name"]]
            if not found:
                raise ScimError(404, f"no resource type {args['name']!r}")
            return 200, found[0], {}
        if endpoint == "schemas":
            return 200, discovery.list_response(discovery.schemas(base)), {}
        if endpoint == "schema":
            found = [s for s in discovery.schemas(base) if s["id"] == args["name"]]
            if not found:
                raise ScimError(404, f"no schema {args['name']!r}")
            return 200, found[0], {}
        raise ScimError(501, f"{_public_path(request)} is not supported by this service provider")

    @staticmethod
    def json_response(status: int, body: Any, headers: dict[str, str]) -> JsonReply | Response:
        return json_reply(status, body, headers)

    def error_response(self, error: ScimError) -> JsonReply | Response:
        return self.json_response(error.status, error.to_scim(), error.headers)


def _presented_token(request: Request) -> str | None:
    """The token the request presents: "Bearer <token>", or Okta's header mode where the
    header is the token itself; None without one, or with one longer than any token."""
    header = request.headers.get("Authorization", "").strip()
    scheme, _, rest = header.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header
    return token if token and len(token) <= MAX_TOKEN_LENGTH else None


def _resource_type(path: str) -> str:
    """The first segment below the SCIM base (``Users`` of ``/Users/<id>``): metrics.py keeps
    only the endpoints' own names and counts any other as ``other``."""
    return path.lstrip("/").partition("/")[0]


def _public_path(request: Request) -> str:
    """The path as the client sent it (the mount's prefix included), for error messages."""
    return request.script_root + request.path


def _unauthorized(detail: str) -> ScimError:
    return ScimError(401, detail, headers={"WWW-Authenticate": 'Bearer realm="SCIM"'})


class InvalidToken(ScimError):
    """A token was presented and matches no live token: counted by the throttle."""

    def __init__(self) -> None:
        super().__init__(
            401, "invalid SCIM API token", headers={"WWW-Authenticate": 'Bearer realm="SCIM"'}
        )


def _too_many_failures(wait: int) -> ScimError:
    return ScimError(
        429,
        f"too many failed authentications from this address; retry after {wait} seconds",
        headers={"Retry-After": str(wait)},
    )
