"""The cross-tenant matrix (issue 9): a hostile workspace against every adapter, over real HTTP.

Two customers share the site. ``acme`` verified ``acme.test``; its CEO is ``ceo@acme.test``.
``evil`` owns its own IdP (a real pysaml2 IdP with keys of its own) and its own SCIM token, so
it can assert any address and provision any userName. Each case runs through every adapter a
host app may use, each served over HTTP behind the middleware:

- ``wsgi``: a plain WSGI app that shows ``REMOTE_USER``;
- ``timetracker``: the example time tracker (examples/timetracker), whose entries are keyed by
  ``REMOTE_USER``: the attacker must neither read nor write the CEO's entries;
- ``django``: the Django project of tests/integrations, with the operator's own superuser
  ``ceo@acme.test`` made by ``createsuperuser`` in its database;
- ``flask``: a Flask app that shows ``current_identity()``.

Whatever evil does, no host app may see acme's CEO (or anyone of acme's) signed in through it,
and evil's own members get identities no other workspace can produce. Each case failed on main
before the identity work (184cf98): evil's IdP then made ``ceo@acme.test`` a member of evil,
the host app got ``REMOTE_USER=ceo@acme.test``, and Django handed over the superuser.
"""

from __future__ import annotations

import dataclasses
import html
import re
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
import requests
from sqlalchemy import select

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.devserver import load_timetracker_factory
from webwork_sso_middleware.integrations.flask import WebworkSSO, current_identity
from webwork_sso_middleware.store.models import MemberSession, Workspace

from ..integrations import django_project
from ..integrations.conftest import FrameworkSite
from ..saml.conftest import host_app
from ..saml.idp import TestIdP, autopost_form
from ..scim.conftest import okta_user
from ..store_helpers import transaction

ADAPTERS = ("wsgi", "timetracker", "django", "flask")
SECRET = "s3cret-padded-to-thirty-two-bytes-at-least"
CEO = "ceo@acme.test"
CONTRACTOR = "contractor@unverified.test"  # a domain nobody verified
# Spellings evil's IdP may try instead of CEO. ceo@acme.test itself has no NFD form, so the NFD
# case is another acme.test address with an accent, decomposed.
LOOK_ALIKES = (
    "CEO@ACME.TEST",  # upper case
    "ceo@acme.test ",  # trailing space
    "\uff43eo@acme.test",  # full-width c
    "ceo@\uff41cme.test",  # full-width a, in the domain
    unicodedata.normalize("NFD", "andré@acme.test"),  # NFD
    "ceo\u200b@acme.test",  # zero-width space
)


@dataclasses.dataclass
class World:
    """The site behind one adapter, with acme and evil, each with its IdP and SCIM token."""

    adapter: str
    site: FrameworkSite
    acme_idp: TestIdP
    evil_idp: TestIdP
    acme_token: str
    evil_token: str

    def identity(self, browser: requests.Session) -> str | None:
        """Who the host app says is signed in on this browser (what it keys users by)."""
        if self.adapter == "timetracker":
            page = browser.get(f"{self.site.url}/", timeout=10)
            assert page.status_code == 200, page.text
            shown = re.search(
                r"Signed in as <strong>(.*?)</strong>(?: \((.*?)\))? <button", page.text
            )
            return html.unescape(shown.group(2) or shown.group(1)) if shown else None
        response = browser.get(f"{self.site.url}/whoami", timeout=10)
        assert response.status_code == 200, response.text
        if self.adapter == "wsgi":
            return response.text.split(";")[0].removeprefix("user=") or None
        if self.adapter == "django":
            return None if response.text == "anonymous" else response.text
        identity: str | None = response.json()["identity"]
        return identity

    # -- sign-in, both ways ------------------------------------------------------------------

    def sp_initiated(
        self, browser: requests.Session, idp: TestIdP, slug: str, email: str
    ) -> requests.Response:
        """Our login URL -> the IdP -> its auto-post -> our ACS; the ACS's answer."""
        idp.next_user = email
        start = browser.get(
            f"{self.site.url}/saml/{slug}/login",
            params={"next": "/"},
            allow_redirects=False,
            timeout=10,
        )
        assert start.status_code == 302, start.text
        action, fields = autopost_form(browser.get(start.headers["Location"], timeout=10).text)
        return browser.post(action, data=fields, allow_redirects=False, timeout=10)

    def idp_initiated(
        self, browser: requests.Session, idp: TestIdP, slug: str, email: str
    ) -> requests.Response:
        """An unsolicited response the IdP signed for ``email``, posted to our ACS."""
        saml_response = idp.response(
            sp_entity_id=self.site.entity_id(slug), acs_url=self.site.acs(slug), email=email
        )
        return self.site.post_response(browser, slug, saml_response)

    def signed_in(self, idp: TestIdP, slug: str, email: str) -> requests.Session:
        browser = requests.Session()
        answer = self.sp_initiated(browser, idp, slug, email)
        assert answer.status_code == 303, answer.text
        return browser

    # -- SCIM and the store ------------------------------------------------------------------

    def provision(self, token: str, email: str) -> str:
        """The workspace's IdP creates ``email`` through SCIM; the member's id."""
        created = requests.post(
            f"{self.site.url}/scim/v2/Users",
            json=okta_user(email),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        member_id: str = created.json()["id"]
        return member_id

    def workspace_id(self, slug: str) -> int:
        with transaction(self.site.middleware.database) as unit:
            return unit.session.scalars(select(Workspace.id).where(Workspace.slug == slug)).one()

    def members_of(self, slug: str) -> list[str]:
        return [
            m.user_name for m in self.site.members() if m.workspace_id == self.workspace_id(slug)
        ]

    def sessions_of(self, slug: str) -> int:
        with transaction(self.site.middleware.database) as unit:
            return len(
                unit.session.scalars(
                    select(MemberSession.id_hash).where(
                        MemberSession.workspace_id == self.workspace_id(slug)
                    )
                ).all()
            )

    def refusals_of(self, slug: str) -> list[str]:
        workspace_id = self.workspace_id(slug)
        return [
            event.changes.get("reason")
            for event in self.site.audit("login_failed")
            if event.workspace_id == workspace_id
        ]


# -- the adapters ----------------------------------------------------------------------------


def wrapping(app: Any, database_url: str) -> Callable[[str], Any]:
    """A bare WSGI app wrapped by the middleware: it is what the server serves."""

    def build(base_url: str) -> tuple[Any, SSOMiddleware]:
        middleware = SSOMiddleware(
            app,
            database_url=database_url,
            secret_key=SECRET,
            base_url=base_url,
            session_recheck_seconds=0,
        )
        return middleware, middleware

    return build


def build_wsgi(database_url: str, tmp_path: Path) -> Callable[[str], Any]:
    return wrapping(host_app, database_url)


def build_timetracker(database_url: str, tmp_path: Path) -> Callable[[str], Any]:
    return wrapping(load_timetracker_factory()(str(tmp_path / "timetracker.db")), database_url)


def build_flask(database_url: str, tmp_path: Path) -> Callable[[str], Any]:
    def build(base_url: str) -> tuple[Any, SSOMiddleware]:
        app = flask.Flask("identity_matrix")

        @app.get("/whoami")
        def whoami() -> Any:
            return {"identity": current_identity()}

        WebworkSSO(
            app,
            database_url=database_url,
            secret_key=SECRET,
            base_url=base_url,
            session_recheck_seconds=0,
        )
        return app, app.extensions["webwork_sso"]

    return build


def build_django(database_url: str, tmp_path: Path) -> Callable[[str], Any]:
    return django_project.builder(database_url)


BUILDERS = {
    "wsgi": build_wsgi,
    "timetracker": build_timetracker,
    "django": build_django,
    "flask": build_flask,
}


@pytest.fixture(scope="module")
def django_ready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    django_project.configure(tmp_path_factory.mktemp("django"))
    yield
    from django.db import connections

    connections.close_all()


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    serve: Callable[[Any], Any],
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    adapter: str = request.param
    if adapter == "django":
        request.getfixturevalue("django_ready")
        django_project.empty_tables()
        # The operator's own account, made as `manage.py createsuperuser --noinput` makes it.
        from django.core.management import call_command

        monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "the-operator's-password")
        call_command("createsuperuser", interactive=False, username=CEO, email=CEO, verbosity=0)
    site = FrameworkSite(serve, BUILDERS[adapter](database_url, tmp_path))
    acme_idp = TestIdP.start(serve, tmp_path / "acme-idp", name="Acme IdP")
    evil_idp = TestIdP.start(serve, tmp_path / "evil-idp", name="Evil IdP")
    acme_token = site.add_workspace("acme", acme_idp)  # verifies acme.test
    evil_token = site.add_workspace("evil", evil_idp)  # verifies evil.test, its own
    yield World(adapter, site, acme_idp, evil_idp, acme_token, evil_token)
    site.middleware.close()


def every_adapter(test: Callable[..., Any]) -> Any:
    return pytest.mark.parametrize("world", ADAPTERS, indirect=True)(test)


def superuser() -> Any:
    from django.contrib.auth.models import User

    return User.objects.get(username=CEO)


def django_sessions_of(user: Any) -> int:
    return django_project.signed_in_sessions().count(str(user.pk))


def add_entry(world: World, browser: requests.Session, description: str) -> int:
    """The time tracker's form, posted as the browser's person; the status."""
    return browser.post(
        f"{world.site.url}/entries",
        data={"description": description, "minutes": "30"},
        allow_redirects=False,
        timeout=10,
    ).status_code


def entries_page(world: World, browser: requests.Session) -> str:
    return browser.get(f"{world.site.url}/", timeout=10).text


# -- the cases -------------------------------------------------------------------------------


@every_adapter
@pytest.mark.parametrize("initiated", ["idp", "sp"])
def test_evils_idp_cannot_sign_in_acmes_ceo(world: World, initiated: str) -> None:
    ceo = world.signed_in(world.acme_idp, "acme", CEO)
    if world.adapter == "timetracker":
        assert add_entry(world, ceo, "Board meeting: merger with Globex") == 303
    attacker = requests.Session()

    sign_in = world.idp_initiated if initiated == "idp" else world.sp_initiated
    answer = sign_in(attacker, world.evil_idp, "evil", CEO)

    assert answer.status_code == 403, answer.text
    assert "Set-Cookie" not in answer.headers
    assert world.refusals_of("evil") == ["domain_verified_elsewhere"]
    assert world.members_of("evil") == [] and world.sessions_of("evil") == 0
    assert world.identity(attacker) is None
    if world.adapter == "timetracker":
        assert "merger" not in entries_page(world, attacker)
        assert add_entry(world, attacker, "Planted by evil") == 403
        assert "Planted" not in entries_page(world, ceo)
    if world.adapter == "django":
        # Neither the attacker nor (unlinked) the CEO is the operator's superuser.
        assert world.identity(ceo) is None and django_sessions_of(superuser()) == 0
        assert superuser().check_password("the-operator's-password")
    else:
        assert world.identity(ceo) == CEO  # acme's CEO is unaffected
    if world.adapter == "timetracker":
        assert "merger" in entries_page(world, ceo)


@every_adapter
def test_evils_idp_cannot_sign_in_an_address_in_a_domain_nobody_verified(world: World) -> None:
    attacker = requests.Session()

    answer = world.sp_initiated(attacker, world.evil_idp, "evil", "someone@unverified.test")

    assert answer.status_code == 403, answer.text
    assert world.refusals_of("evil") == ["domain_not_verified"]
    assert world.members_of("evil") == [] and world.sessions_of("evil") == 0  # no JIT member
    assert world.identity(attacker) is None


@every_adapter
def test_evils_contractor_gets_an_identity_scoped_to_evil(world: World) -> None:
    contractor_id = world.provision(world.evil_token, CONTRACTOR)

    contractor = world.signed_in(world.evil_idp, "evil", CONTRACTOR)

    identity = world.identity(contractor)
    assert identity == f"evil:{contractor_id}" and "@" not in identity
    if world.adapter == "django":
        user = django_project.django_user(identity)
        assert not user.is_staff and not user.is_superuser and not user.has_usable_password()
        assert django_sessions_of(user) == 1
        assert django_sessions_of(superuser()) == 0
        from django.contrib.auth.models import User

        assert not User.objects.filter(username=CONTRACTOR).exists()


@every_adapter
def test_the_same_contractor_in_two_workspaces_is_two_people(world: World) -> None:
    evils = world.provision(world.evil_token, CONTRACTOR)
    acmes = world.provision(world.acme_token, CONTRACTOR)
    for_acme = world.signed_in(world.acme_idp, "acme", CONTRACTOR)
    if world.adapter == "timetracker":
        assert add_entry(world, for_acme, "Acme: pricing sheet for 2027") == 303
    for_evil = world.signed_in(world.evil_idp, "evil", CONTRACTOR)
    if world.adapter == "timetracker":
        assert add_entry(world, for_evil, "Evil: reconnaissance") == 303

    assert world.identity(for_acme) == f"acme:{acmes}"
    assert world.identity(for_evil) == f"evil:{evils}"
    if world.adapter == "timetracker":
        acme_page, evil_page = entries_page(world, for_acme), entries_page(world, for_evil)
        assert "pricing sheet" in acme_page and "reconnaissance" not in acme_page
        assert "reconnaissance" in evil_page and "pricing sheet" not in evil_page
    if world.adapter == "django":
        acme_user = django_project.django_user(f"acme:{acmes}")
        evil_user = django_project.django_user(f"evil:{evils}")
        assert acme_user.pk != evil_user.pk
        assert django_sessions_of(acme_user) == 1 and django_sessions_of(evil_user) == 1


@pytest.mark.parametrize("world", ["django"], indirect=True)
def test_acmes_ceo_is_not_the_local_superuser_until_the_host_links_them(world: World) -> None:
    from webwork_sso_middleware.integrations.django import link_user

    operator = superuser()
    before = {
        field: getattr(operator, field)
        for field in ("password", "email", "first_name", "last_name", "last_login")
    }

    ceo = world.signed_in(world.acme_idp, "acme", CEO)

    assert world.identity(ceo) is None  # REMOTE_USER=ceo@acme.test, but that user is the host's
    assert {field: getattr(superuser(), field) for field in before} == before  # untouched
    assert django_sessions_of(operator) == 0

    link_user(operator)

    assert world.identity(ceo) == CEO  # the same SSO session, now let in
    assert django_sessions_of(operator) == 1
    linked = superuser()
    assert linked.is_superuser and linked.is_staff  # the host's flags are the host's
    assert not linked.check_password("the-operator's-password")  # SSO only, as documented


@every_adapter
def test_look_alike_spellings_of_acmes_ceo_are_refused(world: World) -> None:
    ceo = world.signed_in(world.acme_idp, "acme", CEO)
    if world.adapter == "timetracker":
        assert add_entry(world, ceo, "Board meeting: merger with Globex") == 303

    for spelling in LOOK_ALIKES:
        attacker = requests.Session()
        answer = world.idp_initiated(attacker, world.evil_idp, "evil", spelling)
        assert 400 <= answer.status_code < 500, (spelling, answer.text)
        assert world.identity(attacker) is None, spelling
        if world.adapter == "timetracker":
            assert "merger" not in entries_page(world, attacker), spelling

    assert world.members_of("evil") == [] and world.sessions_of("evil") == 0
    # Each refused as another workspace's domain, or as no address at all (zero-width space).
    assert len(world.refusals_of("evil")) == len(LOOK_ALIKES)
    assert set(world.refusals_of("evil")) <= {"domain_verified_elsewhere", "invalid_name_id"}
    if world.adapter == "django":
        assert django_sessions_of(superuser()) == 0
        from django.contrib.auth.models import User

        assert list(User.objects.values_list("username", flat=True)) == [CEO]
    else:
        assert world.identity(ceo) == CEO


@pytest.mark.parametrize("world", ["wsgi"], indirect=True)  # the middleware's own pages
def test_evils_settings_page_and_scim_show_nothing_of_acmes_members(world: World) -> None:
    world.signed_in(world.acme_idp, "acme", CEO)
    acme_contractor = world.provision(world.acme_token, CONTRACTOR)
    evil_contractor = world.provision(world.evil_token, CONTRACTOR)
    world.idp_initiated(requests.Session(), world.evil_idp, "evil", CEO)  # refused, as above
    acme_ceo = next(m.id for m in world.site.members() if m.user_name == CEO)
    scim = requests.Session()
    scim.headers["Authorization"] = f"Bearer {world.evil_token}"
    users = f"{world.site.url}/scim/v2/Users"

    listed = scim.get(users, timeout=10).json()
    assert [user["id"] for user in listed["Resources"]] == [evil_contractor]
    assert (
        scim.get(users, params={"filter": f'userName eq "{CEO}"'}, timeout=10).json()[
            "totalResults"
        ]
        == 0
    )
    for acme_id in (acme_ceo, acme_contractor):
        assert scim.get(f"{users}/{acme_id}", timeout=10).status_code == 404

    browser = requests.Session()
    shown = browser.get(world.site.middleware.settings_link("evil"), timeout=10)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', shown.text))
    settings_page = browser.post(shown.url, data=fields, timeout=10)
    assert settings_page.status_code == 200, settings_page.text
    members = re.search(r'<section id="members".*?</section>', settings_page.text, re.S)
    assert members is not None, settings_page.text
    assert "1 member" in members.group(0) and CONTRACTOR in members.group(0)
    assert "acme.test" not in members.group(0)
    assert acme_ceo not in settings_page.text and acme_contractor not in settings_page.text
