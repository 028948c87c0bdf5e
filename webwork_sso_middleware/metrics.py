"""Prometheus metrics, when the ``metrics`` option turns them on (prometheus_client, an extra).

Off by default, and then nothing here imports prometheus_client: the protocol code holds a
:class:`Metrics` whose methods do nothing, so a hot path (the session check of every request to
the host app) pays one call to an empty method. On, :class:`PrometheusMetrics` counts:

=====================================================  =====================================
``webwork_sso_sign_ins_total{result,reason}``          ACS outcomes (result: SIGN_IN_RESULTS;
                                                       reason: the refusal's code, else none)
``webwork_sso_acs_duration_seconds``                   time to answer an ACS POST (histogram)
``webwork_sso_scim_requests_total{method,resource,     SCIM requests (resource: SCIM_RESOURCES)
status}``
``webwork_sso_scim_request_duration_seconds{method,    time to answer a SCIM request
resource}``
``webwork_sso_session_checks_total{source}``           "is this session live?" answered from
                                                       this worker's cache or the database
``webwork_sso_idp_metadata_refreshes_total{result}``   IdP metadata refreshes from a URL
``webwork_sso_scim_clients_blocked_total``             client addresses the SCIM throttle
                                                       started refusing (429)
=====================================================  =====================================

Every label value comes from a fixed set, checked here once more (:func:`bounded`): anything
else is counted as ``other``. No label names a workspace, a member, an address, a token or a
path: metrics are the site's, for its operator, and a workspace label would make the series
grow with the customers and tell any reader of the scrape who they are.

Where they go (the option's value): ``True`` makes a ``CollectorRegistry`` of this middleware's
own, exposed by ``SSOMiddleware.metrics_app()``; a registry (``prometheus_client.REGISTRY``, for
a host that already exposes one) receives them instead. Middlewares given one registry share its
series (their counts add up) instead of failing on the duplicate names.
"""

from __future__ import annotations

import re
import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from prometheus_client import CollectorRegistry

PREFIX = "webwork_sso"
OTHER = "other"
NONE = "none"  # the reason of an outcome that was not a refusal

SIGN_IN_RESULTS = frozenset(
    {
        "success",  # signed in, session started
        "pending",  # an unsolicited response verified; finished on a same-site GET (continue)
        "test",  # the owner's test sign-in passed (no session)
        "rejected",  # refused: reason is the refusal's code (saml/rejection.py)
        "error",  # our side failed: store_unavailable, internal_error
    }
)
# The first path segment below /scim/v2 (RFC 7644 section 3.2); any other is "other", so a
# client cannot mint a series per path it invents.
SCIM_RESOURCES = frozenset(
    {"Users", "Groups", "Schemas", "ResourceTypes", "ServiceProviderConfig", "Bulk", "Me"}
)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SESSION_SOURCES = frozenset({"cache", "database"})
REFRESH_RESULTS = frozenset({"success", "failure"})
# The shape of every code-like label value: no email (@ .), id (digits, -), token or path fits.
CODE = re.compile(r"[a-z_]{1,48}\Z")
# Seconds: a sign-in verifies a signature and writes a few rows; a SCIM list may page 200.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@runtime_checkable
class MetricsRegistry(Protocol):
    """What the ``metrics`` option accepts besides a bool: a ``prometheus_client``
    ``CollectorRegistry`` (named by shape, so this module never imports the library)."""

    def register(self, collector: Any) -> None: ...

    def unregister(self, collector: Any) -> None: ...


def bounded(value: str, allowed: frozenset[str] | None = None) -> str:
    """``value`` when it is one of ``allowed`` (or, without a set, shaped like a code), else
    ``other``."""
    if allowed is not None:
        return value if value in allowed else OTHER
    return value if CODE.match(value) else OTHER


class Metrics:
    """Metrics off: every method does nothing. The protocol code calls these unconditionally."""

    enabled = False

    def sign_in(self, result: str, reason: str = NONE) -> None:
        pass

    def acs_seconds(self, seconds: float) -> None:
        pass

    def scim_request(self, method: str, resource: str, status: int, seconds: float) -> None:
        pass

    def session_check(self, source: str) -> None:
        pass

    def metadata_refresh(self, result: str) -> None:
        pass

    def scim_client_blocked(self) -> None:
        pass

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape's body and Content-Type, in the format ``accept`` asks for."""
        raise ConfigurationError("metrics", "are off: pass metrics=True (or a registry)")

    def wsgi_app(self) -> WSGIApplication:
        raise ConfigurationError("metrics", "are off: pass metrics=True (or a registry)")


NO_METRICS = Metrics()


class PrometheusMetrics(Metrics):
    """Metrics on, counted into ``registry``."""

    enabled = True

    def __init__(self, registry: MetricsRegistry) -> None:
        self.registry = registry
        families = _families_of(registry)
        self._sign_ins = families["sign_ins"]
        self._acs = families["acs"]
        self._scim_requests = families["scim_requests"]
        self._scim_latency = families["scim_latency"]
        self._blocked = families["blocked"]
        self._refreshes = families["refreshes"]
        # The hot path's two series, looked up once.
        checks = families["session_checks"]
        self._session = {source: checks.labels(source) for source in SESSION_SOURCES}

    def sign_in(self, result: str, reason: str = NONE) -> None:
        self._sign_ins.labels(bounded(result, SIGN_IN_RESULTS), bounded(reason)).inc()

    def acs_seconds(self, seconds: float) -> None:
        self._acs.observe(seconds)

    def scim_request(self, method: str, resource: str, status: int, seconds: float) -> None:
        method = bounded(method, HTTP_METHODS)
        resource = bounded(resource, SCIM_RESOURCES)
        code = str(status) if 100 <= status <= 599 else OTHER
        self._scim_requests.labels(method, resource, code).inc()
        self._scim_latency.labels(method, resource).observe(seconds)

    def session_check(self, source: str) -> None:
        counter = self._session.get(source)
        if counter is not None:
            counter.inc()

    def metadata_refresh(self, result: str) -> None:
        self._refreshes.labels(bounded(result, REFRESH_RESULTS)).inc()

    def scim_client_blocked(self) -> None:
        self._blocked.inc()

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type  # type: ignore[arg-type]

    def wsgi_app(self) -> WSGIApplication:
        from prometheus_client import make_wsgi_app

        app: WSGIApplication = make_wsgi_app(self.registry)  # type: ignore[arg-type]
        return app


def metrics_for(option: bool | MetricsRegistry) -> Metrics:
    """The recorder the option asks for: :data:`NO_METRICS`, or counting into a registry."""
    if option is False:
        return NO_METRICS
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError(
            "metrics", "need prometheus_client: pip install 'webwork-sso-middleware[metrics]'"
        ) from None
    registry = prometheus_client.CollectorRegistry() if option is True else option
    return PrometheusMetrics(registry)


# -- one set of metric families per registry ------------------------------------------------------

# Registry -> its families, so a second middleware on the same registry reuses them (prometheus
# refuses a name twice). Held weakly: a registry that goes away takes its entry with it.
_families: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _families_of(registry: MetricsRegistry) -> dict[str, Any]:
    with _lock:
        found = _families.get(registry)
        if found is None:
            try:
                found = _families[registry] = _register(registry)
            except ValueError as error:  # prometheus_client: "Duplicated timeseries"
                raise ConfigurationError(
                    "metrics", f"the registry already holds these metrics' names ({error})"
                ) from None
        return found


def _register(registry: MetricsRegistry) -> dict[str, Any]:
    from prometheus_client import Counter, Histogram

    into: CollectorRegistry = registry  # type: ignore[assignment]
    made: list[Any] = []

    def add(family: Any) -> Any:
        made.append(family)
        return family

    try:
        families = {
            "sign_ins": add(
                Counter(
                    f"{PREFIX}_sign_ins",
                    "SAML responses at the ACS, by result and the refusal's reason code",
                    ["result", "reason"],
                    registry=into,
                )
            ),
            "acs": add(
                Histogram(
                    f"{PREFIX}_acs_duration_seconds",
                    "Seconds to answer a POST to the ACS",
                    buckets=LATENCY_BUCKETS,
                    registry=into,
                )
            ),
            "scim_requests": add(
                Counter(
                    f"{PREFIX}_scim_requests",
                    "SCIM requests, by method, resource type and HTTP status",
                    ["method", "resource", "status"],
                    registry=into,
                )
            ),
            "scim_latency": add(
                Histogram(
                    f"{PREFIX}_scim_request_duration_seconds",
                    "Seconds to answer a SCIM request, by method and resource type",
                    ["method", "resource"],
                    buckets=LATENCY_BUCKETS,
                    registry=into,
                )
            ),
            "session_checks": add(
                Counter(
                    f"{PREFIX}_session_checks",
                    "Session checks, answered from this worker's cache or the database",
                    ["source"],
                    registry=into,
                )
            ),
            "refreshes": add(
                Counter(
                    f"{PREFIX}_idp_metadata_refreshes",
                    "Refreshes of IdP metadata from its URL, by result",
                    ["result"],
                    registry=into,
                )
            ),
            "blocked": add(
                Counter(
                    f"{PREFIX}_scim_clients_blocked",
                    "Client addresses the SCIM token throttle started refusing (429)",
                    registry=into,
                )
            ),
        }
    except ValueError:
        for family in made:  # all or nothing: no half-registered set is left behind
            into.unregister(family)
        raise
    # Series that exist from the start, so a rate() has a zero to begin from.
    for result in REFRESH_RESULTS:
        families["refreshes"].labels(result)
    for source in SESSION_SOURCES:
        families["session_checks"].labels(source)
    return families
