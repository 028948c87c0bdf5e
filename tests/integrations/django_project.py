"""The one Django project of the test process: settings, a ``/whoami`` view, and helpers.

Django's settings can be configured once per process, and both tests/integrations/test_django.py
and the cross-tenant matrix (tests/security/test_identity_matrix.py) drive Django, so the
configuration lives here and ``configure()`` is idempotent: whichever module asks first
configures, the other reuses it. Per-test values (the store's URL, the server's port) go in
through ``override_settings``. The examples/django_site smoke test runs in a subprocess.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import path

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.integrations.django import sso_wsgi_application
from webwork_sso_middleware.integrations.django_metrics import metrics_view

BACKEND = "webwork_sso_middleware.integrations.django.WebworkSSOBackend"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.RemoteUserMiddleware",
]
SECRET = "s3cret-padded-to-thirty-two-bytes-at-least"

_configured_here = False


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.user
    return HttpResponse(
        user.get_username() if user.is_authenticated else "anonymous", content_type="text/plain"
    )


def roles(request: HttpRequest) -> HttpResponse:
    """The member's roles, as a host guards a page by them (the WSGI environ is request.META)."""
    member = request.META.get("webwork_sso.member")
    if member is None or "admin" not in member.roles:
        return HttpResponse("forbidden", status=403, content_type="text/plain")
    return HttpResponse(",".join(member.roles), content_type="text/plain")


def password_login(request: HttpRequest) -> HttpResponse:
    """A host's own password form, as the AUTHENTICATION_BACKENDS decide it."""
    from django.contrib.auth import authenticate, login

    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return HttpResponse("refused", status=401, content_type="text/plain")
    login(request, user)
    return HttpResponse(user.get_username(), content_type="text/plain")


urlpatterns = [  # this module is the project's ROOT_URLCONF
    path("whoami", whoami),
    path("metrics", metrics_view),
    path("password-login", password_login),
    path("admin-only", roles),
]


def configure(directory: Path) -> None:
    """Configure Django and create its tables (a SQLite file in ``directory``), once."""
    global _configured_here
    if _configured_here:
        return
    if settings.configured:
        pytest.fail(
            "Django was configured elsewhere in this process; run Django tests in a "
            "subprocess (see tests/examples/test_django_site.py)"
        )
    settings.configure(
        SECRET_KEY="django-test-key",
        ALLOWED_HOSTS=["127.0.0.1", "testserver"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(directory / "django.db"),
            }
        },
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
        ],
        MIDDLEWARE=MIDDLEWARE,
        AUTHENTICATION_BACKENDS=[BACKEND],
        ROOT_URLCONF=__name__,
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    _configured_here = True


def empty_tables() -> None:
    """No Django users and no Django sessions."""
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()
    User.objects.all().delete()


def builder(database_url: str, **options: Any) -> Callable[[str], tuple[Any, SSOMiddleware]]:
    """A ``FrameworkSite`` build function: the project wrapped by ``sso_wsgi_application()``,
    ``settings.WEBWORK_SSO`` holding these options."""

    def build(base_url: str) -> tuple[Any, SSOMiddleware]:
        sso = {
            "database_url": database_url,
            "secret_key": SECRET,
            "base_url": base_url,
            "session_recheck_seconds": 0,
            **options,
        }
        with override_settings(WEBWORK_SSO=sso):
            application = sso_wsgi_application()
        return application, application

    return build


def django_user(username: str) -> Any:
    from django.contrib.auth.models import User

    return User.objects.get(username=username)


def signed_in_sessions() -> list[str]:
    """The user ids that Django sessions in the database still carry."""
    from django.contrib.sessions.models import Session

    return [
        s.get_decoded()["_auth_user_id"]
        for s in Session.objects.all()
        if "_auth_user_id" in s.get_decoded()
    ]
