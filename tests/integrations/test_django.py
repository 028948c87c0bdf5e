"""The Django adapter with real Django: a project configured in this process, wrapped by
``sso_wsgi_application``, served over HTTP and signed into through the real test IdP.

Django's settings can be configured once per process, so this module is the only one that
configures Django in the test process (the django_site example's smoke test runs in a
subprocess). Per-test values (the store's URL, the server's port) go in through
``override_settings``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import django
import pytest
import requests
import webtest
from django.conf import settings
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import path

from webwork_sso_middleware import Member
from webwork_sso_middleware.errors import ConfigurationError
from webwork_sso_middleware.integrations import django as django_integration
from webwork_sso_middleware.integrations.django import sso_wsgi_application

from ..saml.idp import TestIdP
from .conftest import FrameworkSite

BACKEND = "webwork_sso_middleware.integrations.django.WebworkSSOBackend"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.RemoteUserMiddleware",
]
ALICE = "alice.smith@acme.test"


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.user
    return HttpResponse(user.get_username() if user.is_authenticated else "anonymous",
                        content_type="text/plain")


urlpatterns = [path("whoami", whoami)]  # this module is the project's ROOT_URLCONF


@pytest.fixture(scope="module", autouse=True)
def django_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if settings.configured:
        pytest.fail("Django was configured elsewhere in this process; run Django tests in a "
                    "subprocess (see tests/examples/test_django_site.py)")
    settings.configure(
        SECRET_KEY="django-test-key",
        ALLOWED_HOSTS=["127.0.0.1", "testserver"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": str(tmp_path_factory.mktemp("django") / "django.db")}},
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                        "django.contrib.sessions"],
        MIDDLEWARE=MIDDLEWARE,
        AUTHENTICATION_BACKENDS=[BACKEND],
        ROOT_URLCONF=__name__,
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    yield
    from django.db import connections
    connections.close_all()


@pytest.fixture(autouse=True)
def empty_django_tables(django_project: None) -> None:
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session
    Session.objects.all().delete()
    User.objects.all().delete()


@pytest.fixture
def make_site(serve: Callable[[Any], Any],
              database_url: str) -> Iterator[Callable[..., FrameworkSite]]:
    """``make_site(**sso_options)``: the Django project, wrapped by ``sso_wsgi_application()``
    with ``settings.WEBWORK_SSO`` holding those options, served over HTTP."""
    sites: list[FrameworkSite] = []

    def make(**options: Any) -> FrameworkSite:
        def build(base_url: str) -> tuple[Any, Any]:
            sso = {"database_url": database_url, "secret_key": "s3cret-padded-to-thirty-two-bytes-at-least", "base_url": base_url,
                   "session_recheck_seconds": 0, **options}
            with override_settings(WEBWORK_SSO=sso):
                application = sso_wsgi_application()
            return application, application

        site = FrameworkSite(serve, build)
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.middleware.close()


def page(browser: requests.Session, site: FrameworkSite) -> str:
    response = browser.get(f"{site.url}/whoami", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def django_user(username: str) -> Any:
    from django.contrib.auth.models import User
    return User.objects.get(username=username)


def signed_in_sessions() -> list[str]:
    """The user ids that Django sessions in the database still carry."""
    from django.contrib.sessions.models import Session
    return [s.get_decoded()["_auth_user_id"] for s in Session.objects.all()
            if "_auth_user_id" in s.get_decoded()]


# -- over HTTP, through the real IdP --------------------------------------------------------------


def test_sign_in_creates_the_django_user_and_deactivation_logs_it_out(
        make_site: Callable[..., FrameworkSite], idp: TestIdP) -> None:
    site = make_site()
    token = site.add_workspace("acme", idp)
    browser = requests.Session()
    assert page(browser, site) == "anonymous"

    site.sign_in(browser, idp, "acme", ALICE, next_path="/whoami")

    assert page(browser, site) == ALICE
    user = django_user(ALICE)
    assert (user.email, user.first_name, user.last_name) == (ALICE, "Alice", "Smith")
    assert user.is_active and not user.has_usable_password()
    assert signed_in_sessions() == [str(user.pk)]  # RemoteUserMiddleware logged them in

    site.set_active(token, site.members()[0].id, False)

    assert page(browser, site) == "anonymous"
    assert signed_in_sessions() == []  # ... and out, once REMOTE_USER was gone
    assert django_user(ALICE).is_active  # the Django user is kept, with whatever it owns


def test_a_reactivated_member_signs_in_again_as_the_same_django_user(
        make_site: Callable[..., FrameworkSite], idp: TestIdP) -> None:
    site = make_site()
    token = site.add_workspace("acme", idp)
    browser = requests.Session()
    site.sign_in(browser, idp, "acme", ALICE)
    assert page(browser, site) == ALICE  # the first request to Django creates the Django user
    first_pk = django_user(ALICE).pk
    member_id = site.members()[0].id
    site.set_active(token, member_id, False)
    site.set_active(token, member_id, True)
    assert page(browser, site) == "anonymous"  # old sessions stay ended

    site.sign_in(browser, idp, "acme", ALICE)

    assert page(browser, site) == ALICE
    assert django_user(ALICE).pk == first_pk


def test_names_are_refreshed_from_the_member_at_each_sign_in(
        make_site: Callable[..., FrameworkSite], idp: TestIdP) -> None:
    site = make_site()
    site.add_workspace("acme", idp)
    first, second = requests.Session(), requests.Session()
    site.sign_in(first, idp, "acme", ALICE)
    assert page(first, site) == ALICE
    idp.users[ALICE] = {"email": [ALICE], "firstName": ["Alicia"], "lastName": ["Smith-Jones"]}

    site.sign_in(second, idp, "acme", ALICE)
    assert page(second, site) == ALICE

    user = django_user(ALICE)
    assert (user.first_name, user.last_name) == ("Alicia", "Smith-Jones")


def test_persistent_remote_user_middleware_would_keep_a_deactivated_member(
        make_site: Callable[..., FrameworkSite], idp: TestIdP) -> None:
    """Why the docs say RemoteUserMiddleware: the persistent variant keeps the Django session."""
    persistent = [*MIDDLEWARE[:-1], "django.contrib.auth.middleware.PersistentRemoteUserMiddleware"]
    with override_settings(MIDDLEWARE=persistent):  # read when the WSGI handler is built
        site = make_site()
    token = site.add_workspace("acme", idp)
    browser = requests.Session()
    site.sign_in(browser, idp, "acme", ALICE)
    assert page(browser, site) == ALICE

    site.set_active(token, site.members()[0].id, False)

    assert page(browser, site) == ALICE  # still signed in to Django, though deactivated


# -- the backend and the settings, directly -------------------------------------------------


def member(**changes: Any) -> Member:
    values: dict[str, Any] = dict(
        id="m1", workspace="acme", user_name=ALICE, email=ALICE, given_name="Alice",
        family_name="Smith", display_name="Alice Smith", active=True, groups=[])
    values.update(changes)
    return Member(**values)


@pytest.mark.parametrize("meta", [
    {"REMOTE_USER": ALICE},  # an upstream's REMOTE_USER without the member beside it
    {"REMOTE_USER": ALICE, "webwork_sso.member": member(active=False)},
    {"REMOTE_USER": ALICE, "webwork_sso.member": member(user_name="bob@acme.test")},
    {"REMOTE_USER": ALICE, "webwork_sso.member": "alice"},
])
def test_the_backend_refuses_remote_user_without_its_active_member(meta: dict[str, Any]) -> None:
    request = RequestFactory().get("/", **meta)
    backend = django_integration.WebworkSSOBackend()  # importable once Django is set up

    assert backend.authenticate(request, remote_user=ALICE) is None
    assert asyncio.run(backend.aauthenticate(request, remote_user=ALICE)) is None
    assert backend.authenticate(None, remote_user=ALICE) is None
    from django.contrib.auth.models import User
    assert not User.objects.exists()


def test_the_backend_refuses_a_user_name_too_long_for_the_username_column() -> None:
    long_name = "x" * 200 + "@acme.test"
    request = RequestFactory().get("/", REMOTE_USER=long_name,
                                   **{"webwork_sso.member": member(user_name=long_name)})
    backend = django_integration.WebworkSSOBackend()
    assert backend.authenticate(request, remote_user=long_name) is None


def test_a_remote_user_set_by_a_client_or_upstream_never_reaches_django(
        database_url: str) -> None:
    with override_settings(WEBWORK_SSO={"database_url": database_url, "secret_key": "k-padded-to-thirty-two-bytes-at-least"}):
        application = sso_wsgi_application()
    try:
        app = webtest.TestApp(application, extra_environ={"REMOTE_USER": ALICE})
        assert app.get("/whoami", headers={"Remote-User": ALICE}).text == "anonymous"
    finally:
        application.close()


@pytest.mark.parametrize("options, named", [
    ({"secret_key": "k-padded-to-thirty-two-bytes-at-least", "databse_url": "sqlite://"}, "databse_url"),
    ({"secret_key": "k-padded-to-thirty-two-bytes-at-least", "base_url": "ftp://example.com"}, "base_url"),
    ({"secret_key": "k-padded-to-thirty-two-bytes-at-least", "scim_max_results": "many"}, "scim_max_results"),
    (["secret_key"], "WEBWORK_SSO"),
])
def test_bad_webwork_sso_settings_raise_configuration_error_naming_the_key(
        options: Any, named: str) -> None:
    with override_settings(WEBWORK_SSO=options), pytest.raises(ConfigurationError) as raised:
        sso_wsgi_application()
    assert raised.value.option == named
    assert named in str(raised.value)
