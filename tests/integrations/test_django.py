"""The Django adapter with real Django: the project of tests/integrations/django_project.py,
wrapped by ``sso_wsgi_application``, served over HTTP and signed into through the real test IdP.

The cross-tenant cases (another workspace's IdP asserting a local superuser's address) are in
tests/security/test_identity_matrix.py, which drives every adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import requests
import webtest
from django.test import RequestFactory, override_settings

from webwork_sso_middleware import Member
from webwork_sso_middleware.errors import ConfigurationError
from webwork_sso_middleware.integrations import django as django_integration
from webwork_sso_middleware.integrations.django import sso_wsgi_application

from ..saml.idp import TestIdP
from .conftest import FrameworkSite
from .django_project import MIDDLEWARE, django_user, signed_in_sessions

ALICE = "alice.smith@acme.test"


pytestmark = pytest.mark.usefixtures("empty_django_tables")


def page(browser: requests.Session, site: FrameworkSite) -> str:
    response = browser.get(f"{site.url}/whoami", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


# -- over HTTP, through the real IdP --------------------------------------------------------------


def test_sign_in_creates_the_django_user_and_deactivation_logs_it_out(
    make_django_site: Callable[..., FrameworkSite], idp: TestIdP
) -> None:
    site = make_django_site()
    token = site.add_workspace("acme", idp)
    browser = requests.Session()
    assert page(browser, site) == "anonymous"

    site.sign_in(browser, idp, "acme", ALICE, next_path="/whoami")

    assert page(browser, site) == ALICE
    user = django_user(ALICE)
    assert (user.email, user.first_name, user.last_name) == (ALICE, "Alice", "Smith")
    assert user.is_active and not user.has_usable_password()
    assert not user.is_staff and not user.is_superuser  # nothing about a member grants those
    assert signed_in_sessions() == [str(user.pk)]  # RemoteUserMiddleware logged them in

    site.set_active(token, site.members()[0].id, False)

    assert page(browser, site) == "anonymous"
    assert signed_in_sessions() == []  # ... and out, once REMOTE_USER was gone
    assert django_user(ALICE).is_active  # the Django user is kept, with whatever it owns


def test_a_view_guards_a_page_by_member_roles(
    make_django_site: Callable[..., FrameworkSite], idp: TestIdP
) -> None:
    site = make_django_site(roles=["admin", "member"], default_role="member")
    site.add_workspace("acme", idp)
    site.middleware.workspaces.map_role("acme", "Admins", "admin", declared=None, actor="test")
    bob = "bob@acme.test"
    idp.users[ALICE] = {"email": [ALICE], "groups": ["ADMINS", "Sales"]}
    idp.users[bob] = {"email": [bob], "groups": ["Sales"]}
    alice_browser, bob_browser = requests.Session(), requests.Session()
    site.sign_in(alice_browser, idp, "acme", ALICE, next_path="/whoami")
    site.sign_in(bob_browser, idp, "acme", bob, next_path="/whoami")
    allowed = alice_browser.get(f"{site.url}/admin-only", timeout=10)
    assert (allowed.status_code, allowed.text) == (200, "admin")
    assert bob_browser.get(f"{site.url}/admin-only", timeout=10).status_code == 403


def test_a_reactivated_member_signs_in_again_as_the_same_django_user(
    make_django_site: Callable[..., FrameworkSite], idp: TestIdP
) -> None:
    site = make_django_site()
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
    make_django_site: Callable[..., FrameworkSite], idp: TestIdP
) -> None:
    site = make_django_site()
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
    make_django_site: Callable[..., FrameworkSite], idp: TestIdP
) -> None:
    """Why the docs say RemoteUserMiddleware: the persistent variant keeps the Django session."""
    persistent = [*MIDDLEWARE[:-1], "django.contrib.auth.middleware.PersistentRemoteUserMiddleware"]
    with override_settings(MIDDLEWARE=persistent):  # read when the WSGI handler is built
        site = make_django_site()
    token = site.add_workspace("acme", idp)
    browser = requests.Session()
    site.sign_in(browser, idp, "acme", ALICE)
    assert page(browser, site) == ALICE

    site.set_active(token, site.members()[0].id, False)

    assert page(browser, site) == ALICE  # still signed in to Django, though deactivated


# -- the backend and the settings, directly -------------------------------------------------


def member(**changes: Any) -> Member:
    """Alice, a member of acme, which verified acme.test: her identity is her email."""
    values: dict[str, Any] = dict(
        id="m1",
        workspace="acme",
        user_name=ALICE,
        email=ALICE,
        given_name="Alice",
        family_name="Smith",
        display_name="Alice Smith",
        active=True,
        groups=[],
        identity=ALICE,
    )
    values.update(changes)
    return Member(**values)


def authenticate(identity: str, backend: Any = None, **changes: Any) -> Any:
    """What the backend makes of a request the middleware let through for ``member(...)``."""
    request = RequestFactory().get(
        "/", REMOTE_USER=identity, **{"webwork_sso.member": member(identity=identity, **changes)}
    )
    backend = backend or django_integration.WebworkSSOBackend()
    return backend.authenticate(request, remote_user=identity)


@pytest.mark.parametrize(
    "meta",
    [
        {"REMOTE_USER": ALICE},  # an upstream's REMOTE_USER without the member beside it
        {"REMOTE_USER": ALICE, "webwork_sso.member": member(active=False)},
        {"REMOTE_USER": ALICE, "webwork_sso.member": member(identity="bob@acme.test")},
        # A member whose userName is Alice's address, but whose workspace did not verify acme.test:
        # her identity is scoped, so a REMOTE_USER equal to the userName is not hers.
        {"REMOTE_USER": ALICE, "webwork_sso.member": member(workspace="evil", identity="evil:m1")},
        {"REMOTE_USER": ALICE, "webwork_sso.member": "alice"},
    ],
)
def test_the_backend_refuses_remote_user_without_its_active_member(meta: dict[str, Any]) -> None:
    request = RequestFactory().get("/", **meta)
    backend = django_integration.WebworkSSOBackend()  # importable once Django is set up

    assert backend.authenticate(request, remote_user=ALICE) is None
    assert asyncio.run(backend.aauthenticate(request, remote_user=ALICE)) is None
    assert backend.authenticate(None, remote_user=ALICE) is None
    from django.contrib.auth.models import User

    assert not User.objects.exists()


def test_the_backend_refuses_an_identity_too_long_for_the_username_column() -> None:
    long_name = "x" * 200 + "@acme.test"
    assert authenticate(long_name, user_name=long_name) is None
    from django.contrib.auth.models import User

    assert not User.objects.exists()


def test_the_backend_keys_users_by_identity_and_marks_them_as_its_own() -> None:
    scoped = authenticate(
        "acme:m1", user_name="alice@contractor.test", email="alice@contractor.test"
    )

    assert scoped.username == "acme:m1"  # the identity, not the userName or the email
    assert scoped.email == "alice@contractor.test"
    assert scoped.password.startswith("!webwork-sso!") and not scoped.has_usable_password()
    assert not scoped.is_staff and not scoped.is_superuser
    assert authenticate("acme:m1").pk == scoped.pk  # and found again by it


def test_a_host_user_with_the_same_username_is_never_signed_in_nor_touched() -> None:
    from django.contrib.auth.models import User

    User.objects.create_superuser(ALICE, "alice@home.example", "pw-of-the-operator")
    before = User.objects.values().get(username=ALICE)

    assert authenticate(ALICE) is None
    lazy = type(
        "NoCreate", (django_integration.WebworkSSOBackend,), {"create_unknown_user": False}
    )()
    assert authenticate(ALICE, backend=lazy) is None

    assert User.objects.values().get(username=ALICE) == before  # names, email, password kept
    assert User.objects.count() == 1


def test_link_user_lets_sso_sign_in_as_a_host_user_on_purpose_and_set_password_undoes_it() -> None:
    from django.contrib.auth.models import User

    operator = User.objects.create_superuser(ALICE, "alice@home.example", "pw-of-the-operator")

    django_integration.link_user(operator)

    user = authenticate(ALICE)
    assert user is not None and user.pk == operator.pk
    assert user.is_superuser and user.is_staff  # linking keeps the host's own flags
    assert user.email == ALICE and not user.check_password("pw-of-the-operator")  # SSO only now
    backend = django_integration.WebworkSSOBackend()
    assert backend.get_user(user.pk) is not None  # its Django session holds

    user.set_password("a-password-again")  # unlinked: the session this backend began ends
    user.save()
    assert backend.get_user(user.pk) is None
    assert authenticate(ALICE) is None


def test_create_unknown_user_false_admits_only_existing_sso_users() -> None:
    lazy = type(
        "NoCreate", (django_integration.WebworkSSOBackend,), {"create_unknown_user": False}
    )()
    from django.contrib.auth.models import User

    assert authenticate(ALICE, backend=lazy) is None
    assert not User.objects.exists()
    assert authenticate(ALICE) is not None  # the default backend creates the user ...
    assert authenticate(ALICE, backend=lazy).username == ALICE  # ... which then gets in


def test_a_remote_user_set_by_a_client_or_upstream_never_reaches_django(database_url: str) -> None:
    with override_settings(
        WEBWORK_SSO={
            "database_url": database_url,
            "secret_key": "k-padded-to-thirty-two-bytes-at-least",
        }
    ):
        application = sso_wsgi_application()
    try:
        app = webtest.TestApp(application, extra_environ={"REMOTE_USER": ALICE})
        assert app.get("/whoami", headers={"Remote-User": ALICE}).text == "anonymous"
    finally:
        application.close()


@pytest.mark.parametrize(
    "options, named",
    [
        (
            {"secret_key": "k-padded-to-thirty-two-bytes-at-least", "databse_url": "sqlite://"},
            "databse_url",
        ),
        (
            {
                "secret_key": "k-padded-to-thirty-two-bytes-at-least",
                "base_url": "ftp://example.com",
            },
            "base_url",
        ),
        (
            {"secret_key": "k-padded-to-thirty-two-bytes-at-least", "scim_max_results": "many"},
            "scim_max_results",
        ),
        (["secret_key"], "WEBWORK_SSO"),
    ],
)
def test_bad_webwork_sso_settings_raise_configuration_error_naming_the_key(
    options: Any, named: str
) -> None:
    with override_settings(WEBWORK_SSO=options), pytest.raises(ConfigurationError) as raised:
        sso_wsgi_application()
    assert raised.value.option == named
    assert named in str(raised.value)
