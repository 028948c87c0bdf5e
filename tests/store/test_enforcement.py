"""SSO enforcement (store/enforcement.py, asked through SSOMiddleware.sso_required): the truth
table, and the tenant rule that only the workspace that VERIFIED a domain can require SSO for
it. Real database, real IdP metadata; a hostile second workspace tries every way in."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from sqlalchemy import text

from webwork_sso_middleware.errors import ConfigurationError, DomainError, PlanError

from ..admin.conftest import sign_in
from ..saml.conftest import Site
from ..saml.idp import TestIdP
from ..store_helpers import transaction


@pytest.fixture
def acme(site: Site, idp: TestIdP) -> str:
    """acme: Plus, SSO on, acme.test verified, IdP set; owner owner@acme.test; SSO required."""
    site.add_workspace("acme", idp)
    site.workspaces.set_require_sso("acme", True, actor="test")
    return "acme"


def sql(site: Site, statement: str, **params: object) -> None:
    with transaction(site.middleware.database, write=True) as unit:
        unit.connection.execute(text(statement), params)


def test_required_for_every_address_at_the_verified_domain_only(site: Site, acme: str) -> None:
    required = site.middleware.sso_required
    assert required("dave@acme.test")
    assert required("  Dave@ACME.test ")  # the one normalisation of names
    assert required("owner@acme.test")  # the owner too, until break-glass
    assert not required("dave@sub.acme.test")  # verification is per exact domain
    assert not required("dave@other.test")
    assert not required("not-an-address")
    assert not required("")


def test_off_by_default_and_switched_back_off(site: Site, idp: TestIdP) -> None:
    site.add_workspace("acme", idp)
    assert not site.middleware.sso_required("dave@acme.test")
    site.workspaces.set_require_sso("acme", True, actor="test")
    assert site.middleware.sso_required("dave@acme.test")
    site.workspaces.set_require_sso("acme", False, actor="test")
    assert not site.middleware.sso_required("dave@acme.test")
    changes = [event.changes for event in site.audit("require_sso_changed")]
    assert changes == [{"require_sso": True}, {"require_sso": False}]


def test_sso_must_be_usable_or_nobody_is_locked_out(site: Site, acme: str) -> None:
    required = site.middleware.sso_required
    site.workspaces.disable("acme", sso=True)
    assert not required("dave@acme.test")  # SSO off
    site.workspaces.enable("acme", sso=True)
    assert required("dave@acme.test")
    # A plan without SSO (a row as an older version could leave it: SSO still on).
    sql(site, "UPDATE workspaces SET plan = 'free' WHERE slug = 'acme'")
    assert not required("dave@acme.test")
    sql(site, "UPDATE workspaces SET plan = 'premium' WHERE slug = 'acme'")
    assert required("dave@acme.test")
    sql(site, "DELETE FROM identity_providers")  # no IdP: nobody could sign in at all
    assert not required("dave@acme.test")


def test_the_switch_is_refused_on_the_free_plan(site: Site) -> None:
    site.workspaces.create("tiny", name="Tiny", plan="free", owner_email="o@tiny.test")
    with pytest.raises(PlanError):
        site.workspaces.set_require_sso("tiny", True, actor="test")
    assert not site.workspaces.get("tiny").require_sso
    site.workspaces.set_require_sso("tiny", False, actor="test")  # off is always allowed


def test_a_hostile_workspace_can_never_require_sso_for_another_organisation(
    site: Site, acme: str, second_idp: TestIdP
) -> None:
    """evil claims acme.test (it cannot verify it), provisions a SCIM member there, has an
    owner at acme.test, requires SSO, and opens break-glass: none of it reaches acme.test."""
    site.workspaces.set_require_sso("acme", False, actor="test")
    token = site.add_workspace("evil", second_idp)
    sql(site, "UPDATE workspaces SET owner_email = 'ceo@acme.test' WHERE slug = 'evil'")
    site.workspaces.claim_domain("evil", "acme.test")
    with pytest.raises(DomainError):
        site.workspaces.verify_domain("evil", "acme.test", by_operator=True)
    created = requests.post(
        f"{site.url}/scim/v2/Users",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "victim",  # an address at acme.test is refused; an email is not
            "emails": [{"value": "victim@acme.test", "primary": True}],
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    site.workspaces.set_require_sso("evil", True, actor="test")
    site.workspaces.open_break_glass("evil", actor="test")

    required = site.middleware.sso_required
    assert required("someone@evil.test")  # its own verified domain: yes
    for address in ("victim@acme.test", "ceo@acme.test", "dave@acme.test"):
        assert not required(address)
    # And when acme itself requires SSO, evil's break-glass exempts nobody at acme.test.
    site.workspaces.set_require_sso("acme", True, actor="test")
    assert required("ceo@acme.test") and required("victim@acme.test")


def test_break_glass_exempts_the_owner_only_until_it_closes(site: Site, acme: str) -> None:
    required = site.middleware.sso_required
    info = site.workspaces.open_break_glass("acme", actor="cli", duration=dt.timedelta(minutes=5))
    assert info.break_glass_open
    assert not required("owner@acme.test")
    assert not required("OWNER@Acme.Test")
    assert required("dave@acme.test")  # nobody else
    assert required("owner+x@acme.test")

    site.workspaces.close_break_glass("acme", actor="cli")
    assert required("owner@acme.test")
    (opened,) = site.audit("break_glass_opened")
    assert opened.actor == "cli"
    assert opened.changes["owner_email"] == "owner@acme.test"
    until = dt.datetime.fromisoformat(opened.changes["until"])
    assert dt.timedelta(minutes=4) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=5)
    assert [event.actor for event in site.audit("break_glass_closed")] == ["cli"]


def test_break_glass_expires_by_itself(site: Site, acme: str) -> None:
    site.workspaces.open_break_glass("acme", actor="test")
    assert not site.middleware.sso_required("owner@acme.test")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    sql(site, "UPDATE workspaces SET break_glass_until = :t", t=past.replace(tzinfo=None))
    assert site.middleware.sso_required("owner@acme.test")
    assert not site.workspaces.get("acme").break_glass_open


@pytest.mark.parametrize("minutes", [0, 241, -5])
def test_break_glass_length_is_bounded(site: Site, acme: str, minutes: int) -> None:
    with pytest.raises(ConfigurationError):
        site.workspaces.open_break_glass(
            "acme", actor="test", duration=dt.timedelta(minutes=minutes)
        )
    assert site.audit("break_glass_opened") == []


def test_the_signed_in_member_carries_sso_required(site: Site, acme: str, idp: TestIdP) -> None:
    """member.sso_required: computed in the one session-check query, for the member's identity."""

    def member_of(email: str, slug: str = "acme") -> object:
        browser = requests.Session()
        assert sign_in(browser, site, idp, email, slug=slug).status_code == 303
        cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
        found = site.middleware.sessions.identify({"HTTP_COOKIE": cookie})
        assert found is not None
        return found[0]

    dave = member_of("dave@acme.test")
    assert dave.sso_required and dave.identity == "dave@acme.test"  # type: ignore[attr-defined]
    site.workspaces.open_break_glass("acme", actor="test")
    assert member_of("owner@acme.test").sso_required is False  # type: ignore[attr-defined]
    assert member_of("erin@acme.test").sso_required is True  # type: ignore[attr-defined]
    site.workspaces.set_require_sso("acme", False, actor="test")
    assert member_of("frank@acme.test").sso_required is False  # type: ignore[attr-defined]
