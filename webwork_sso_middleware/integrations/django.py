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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from ..errors import ConfigurationError
from ..middleware import SSOMiddleware
from .options import check_known

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .django_auth import WebworkSSOBackend

__all__ = ["WebworkSSOBackend", "sso_wsgi_application"]

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
    return SSOMiddleware(django_app, **options)


def __getattr__(name: str) -> Any:
    # WebworkSSOBackend subclasses RemoteUserBackend, whose module imports Django's models, and
    # those need the app registry ready. wsgi.py imports this module before django.setup(), so
    # the backend is imported only when asked for (by AUTHENTICATION_BACKENDS, after setup).
    if name == "WebworkSSOBackend":
        from .django_auth import WebworkSSOBackend

        return WebworkSSOBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
