"""Flask: an extension that wraps ``app.wsgi_app``, and ``current_identity()`` and
``current_member()`` for views.

::

    from webwork_sso_middleware.integrations.flask import (
        WebworkSSO, current_identity, current_member)

    app = Flask(__name__)
    app.config["WEBWORK_SSO_BASE_URL"] = "https://tracker.example.com"
    WebworkSSO(app)                        # or sso = WebworkSSO(); sso.init_app(app)

    @app.get("/")
    def index():
        identity = current_identity()      # the key of the signed-in person, or None
        member = current_member()          # their profile (names, workspace, groups), or None

Key your users (rows, files, anything a person owns) by ``current_identity()``, or by
``(member.workspace, member.id)``, and never by ``member.email`` or ``member.user_name``. The
identity is ``REMOTE_USER``: the member's email only when the member's own workspace verified
the email's domain, else ``"<workspace>:<member id>"``. No other workspace's IdP or SCIM token
can produce either value; any workspace can give its members any email or userName, another
customer's CEO's included.

Each ``WEBWORK_SSO_<OPTION>`` key of ``app.config`` becomes the option ``<option>`` (e.g.
``WEBWORK_SSO_DATABASE_URL`` -> ``database_url``); keyword arguments to ``WebworkSSO(...)`` win
over ``app.config``, and an option set in neither falls back to the process environment, as
``SSOMiddleware`` always does. Without the extension, ``app.wsgi_app =
SSOMiddleware(app.wsgi_app, ...)`` works the same way, and so do ``current_identity()`` and
``current_member()``.

Prometheus metrics (the option ``WEBWORK_SSO_METRICS = True``): serve them from a route the host
guards as it likes, or keeps internal::

    from webwork_sso_middleware.integrations.flask import metrics_response

    @app.get("/metrics")
    def metrics():
        return metrics_response()

Lifecycle events (members created, deactivated, signed in, groups changed: events/) arrive as
the blinker signal ``lifecycle_event``, sent by the app with ``event`` and ``kind``, after the
change commits, with the app's context pushed::

    from webwork_sso_middleware.integrations.flask import lifecycle_event

    @lifecycle_event.connect_via(app)
    def on_sso_event(sender, event, kind):
        if kind == "member.deactivated":
            ...  # event.identity is the member's current_identity()

A receiver that raises is logged and never fails the SCIM request or the sign-in. Another
process reads the durable feed: ``app.extensions["webwork_sso"].events.since(cursor)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from blinker import Namespace
from flask import Response, current_app, has_request_context, request

from ..config import ENV_PREFIX, check_known, env_name
from ..events import Event
from ..identity import Member
from ..logs import package_logger
from ..middleware import MEMBER_KEY, SSOMiddleware

if TYPE_CHECKING:
    from flask import Flask

EXTENSION_NAME = "webwork_sso"  # app.extensions["webwork_sso"] is the app's SSOMiddleware

log = package_logger(__name__)

# Lifecycle events (events/) as a blinker signal, as Flask's own signals are: one signal for
# every kind, sent with ``sender`` the app, ``event`` and ``kind``, after the change commits.
signals = Namespace()
lifecycle_event = signals.signal("webwork-sso-lifecycle-event")


class WebworkSSO:
    """Wraps ``app.wsgi_app`` with ``SSOMiddleware`` configured from ``app.config``."""

    def __init__(self, app: Flask | None = None, **overrides: Any) -> None:
        check_known(overrides, where="WebworkSSO()")
        self.overrides = overrides
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> SSOMiddleware:
        """Wrap ``app.wsgi_app``; the middleware is also ``app.extensions["webwork_sso"]``."""
        if EXTENSION_NAME in app.extensions:
            # A second wrap would run every request through two middlewares, two stores.
            raise RuntimeError(f"WebworkSSO is already set up on {app.name!r}")
        options = {**options_from_config(app.config), **self.overrides}
        middleware = SSOMiddleware(app.wsgi_app, **options)
        app.wsgi_app = middleware  # type: ignore[method-assign]
        app.extensions[EXTENSION_NAME] = middleware
        # Asked at each commit: with no receiver connected, a commit reads and builds nothing.
        middleware.events.subscribe(
            partial(_send_signal, app), listening=partial(_has_receivers, app)
        )
        return middleware


def options_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``SSOMiddleware`` options from the ``WEBWORK_SSO_*`` keys of a Flask config."""
    # The keys are the environment variables' names, so a key reads the same in app.config
    # and in os.environ.
    options = {
        key[len(ENV_PREFIX) :].lower(): value
        for key, value in config.items()
        if key.startswith(ENV_PREFIX)
    }
    check_known(options, where="app.config", spell=env_name)
    return options


def metrics_response() -> Response:
    """The current app's SSO metrics as a Prometheus scrape (in the format the scraper's
    Accept asks for); 404 while the metrics option is off. The counts are the whole site's:
    serve them only where the Prometheus server can reach them, or behind a guard."""
    middleware: SSOMiddleware = current_app.extensions[EXTENSION_NAME]
    if not middleware.metrics.enabled:
        return current_app.response_class(
            "Metrics are off (WEBWORK_SSO_METRICS).", status=404, content_type="text/plain"
        )
    body, content_type = middleware.metrics.exposition(request.headers.get("Accept"))
    return current_app.response_class(
        body, content_type=content_type, headers={"Cache-Control": "no-store"}
    )


def current_identity() -> str | None:
    """What to key the signed-in person by (``REMOTE_USER``, ``Member.identity``); ``None``
    when nobody is signed in, or outside a request."""
    member = current_member()
    return member.identity if member is not None else None


def current_member() -> Member | None:
    """The member signed in on the current request; ``None`` when nobody is, or outside a
    request (a CLI command, a background job)."""
    if not has_request_context():
        return None
    member = request.environ.get(MEMBER_KEY)
    return member if isinstance(member, Member) else None


def _has_receivers(app: Flask) -> bool:
    """Whether any receiver hears ``lifecycle_event`` from ``app`` (or from any sender)."""
    return any(True for _ in lifecycle_event.receivers_for(app))


def _send_signal(app: Flask, event: Event) -> None:
    """Send ``lifecycle_event`` from ``app``; each receiver is called on its own, so one that
    raises (logged) does not keep the others from the event."""
    # Sent from the middleware, outside Flask's request handling: receivers get the app's
    # context, as they would inside a request.
    with app.app_context():
        for receiver in lifecycle_event.receivers_for(app):
            try:
                receiver(app, event=event, kind=event.kind)
            except Exception:
                log.exception("lifecycle_event receiver %r failed on %s", receiver, event.kind)
