"""Django: wrap the WSGI application, and turn the signed-in member into a Django user.

``wsgi.py``::

    import os
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

    from webwork_sso_middleware.integrations.django import sso_wsgi_application
    application = sso_wsgi_application()   # get_wsgi_application(), wrapped

``settings.py``::

    WEBWORK_SSO = {                        # SSOMiddleware keyword options
        "base_url": "https://tracker.example.com",
        "database_url": os.environ.get("WEBWORK_SSO_DATABASE_URL"),   # None: the environment
    }
    MIDDLEWARE = [
        ...,
        "django.contrib.sessions.middleware.SessionMiddleware",
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.auth.middleware.RemoteUserMiddleware",      # after AuthenticationMiddleware
        ...,
    ]
    AUTHENTICATION_BACKENDS = [
        "webwork_sso_middleware.integrations.django.WebworkSSOBackend",
        "django.contrib.auth.backends.ModelBackend",                 # if you keep password logins
    ]

Use ``RemoteUserMiddleware``, not ``PersistentRemoteUserMiddleware``: the middleware removes
``REMOTE_USER`` once a member is deactivated or signs out, and only ``RemoteUserMiddleware``
then logs the Django session out too. The persistent variant would keep a deactivated person
signed in to Django for as long as the Django session lasts.

``SSOMiddleware`` is WSGI middleware: serve Django through WSGI (gunicorn, waitress, uWSGI,
``runserver``). Under ASGI nothing sets the member, so this backend signs nobody in.

Who is which Django user: the backend keys users by ``REMOTE_USER``, the member's identity.
That is the member's email only when the member's own workspace verified the email's domain,
else ``"<workspace>:<member id>"``; no other workspace can produce either, so one customer's IdP
or SCIM token can never sign in as another customer's user. The backend creates its users with
an unusable password that marks them as SSO users, and never signs in as a user the host made
another way: the operator's ``createsuperuser`` account ``ceo@acme.example`` stays out of reach
of the SSO member ``ceo@acme.example`` until the host links them on purpose, which also ends
that account's password login::

    from webwork_sso_middleware.integrations.django import link_user
    link_user(User.objects.get(username="ceo@acme.example"))

Nothing the member, its IdP or its SCIM says makes a Django user staff or superuser; grant
those in Django. ``user.email`` is copied from the member and is verified only when it equals
the username: never look users up by it.

SSO enforcement: where the host keeps password logins, put ``SSOEnforcingModelBackend`` in
place of ``ModelBackend``; it refuses the password of anyone for whom the workspace that verified
their email's domain requires SSO (``webwork-sso workspace require-sso SLUG on``), except the
owner during a break-glass window::

    AUTHENTICATION_BACKENDS = [
        "webwork_sso_middleware.integrations.django.WebworkSSOBackend",
        "webwork_sso_middleware.integrations.django.SSOEnforcingModelBackend",
    ]

Users that earlier versions of the backend made (keyed by userName, with Django's plain
unusable password) carry no mark and are refused: link those you trust with ``link_user``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from ..config import check_known
from ..errors import ConfigurationError
from ..middleware import SSOMiddleware
from . import django_enforcement, django_metrics, django_signals

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .django_auth import SSOEnforcingModelBackend, WebworkSSOBackend, link_user

__all__ = ["SSOEnforcingModelBackend", "WebworkSSOBackend", "link_user", "sso_wsgi_application"]

SETTINGS_NAME = "WEBWORK_SSO"


def sso_wsgi_application(django_app: WSGIApplication | None = None) -> SSOMiddleware:
    """Django's WSGI application (or ``django_app``) wrapped by ``SSOMiddleware``, configured
    from ``settings.WEBWORK_SSO``; a ``None`` value falls back to ``WEBWORK_SSO_<OPTION>``."""
    if django_app is None:
        django_app = get_wsgi_application()  # also runs django.setup()
    options = getattr(settings, SETTINGS_NAME, {})
    if not isinstance(options, Mapping):
        raise ConfigurationError(SETTINGS_NAME, "must be a dict of SSOMiddleware options")
    check_known(options, where=f"settings.{SETTINGS_NAME}")
    middleware = SSOMiddleware(django_app, **options)
    # SSOEnforcingModelBackend asks this middleware whether a password sign-in is allowed.
    django_enforcement.register(middleware.sso_required)
    # Lifecycle events reach the host as django_signals.lifecycle_event.
    django_signals.connect(middleware)
    # django_metrics.metrics_view serves its metrics, when the metrics option is on.
    django_metrics.register(middleware.metrics)
    return middleware


def __getattr__(name: str) -> Any:
    # WebworkSSOBackend subclasses RemoteUserBackend, whose module imports Django's models, and
    # those need the app registry ready. wsgi.py imports this module before django.setup(), so
    # the backend (and link_user beside it) is imported only when asked for (by
    # AUTHENTICATION_BACKENDS, or by host code, after setup).
    if name in ("WebworkSSOBackend", "SSOEnforcingModelBackend", "link_user"):
        from . import django_auth

        return getattr(django_auth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
