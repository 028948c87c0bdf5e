"""The settings page's "Attribute mapping" and "Roles" sections (admin/roles_section.py) and
their POST actions over real HTTP: owner only, CSRF-checked, audited, bad input refused with
nothing changed, and a hostile owner of another workspace who reaches none of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from ..saml.conftest import Site
from ..saml.idp import TestIdP
from ..test_roles import make_site, signed_in, whoami
from .conftest import ACCESS_DENIED, csrf_token, open_with_link, post_action, settings_url

ROLES = ["admin", "member", "viewer"]


@pytest.fixture
def site(serve: Callable[[Any], Any], database_url: str) -> Iterator[Site]:
    made = make_site(serve, database_url, roles=ROLES, default_role="viewer")
    yield made
    made.middleware.close()


def test_the_sections_show_mappings_and_the_declared_roles(site: Site, acme: str) -> None:
    site.workspaces.map_role("acme", "Admins", "admin", declared=ROLES, actor="t")
    site.workspaces.map_role("acme", "Old", "retired", declared=None, actor="t")
    page = open_with_link(requests.Session(), site)
    assert page.status_code == 200
    assert 'id="attributes"' in page.text and 'id="attr-groups"' in page.text
    assert 'id="roles"' in page.text and "<strong>viewer</strong>" in page.text
    assert "<strong>Admins</strong> → admin" in page.text
    assert "retired <em>(not a role this site declares: ignored)</em>" in page.text
    for role in ROLES:
        assert f'<option value="{role}">' in page.text


def test_the_owner_maps_and_unmaps_a_group_and_members_follow(
    site: Site, acme: str, idp: TestIdP
) -> None:
    member = signed_in(site, idp, "alice@acme.test", groups=["Admins"])
    assert whoami(member, site.url)["roles"] == ["viewer"]
    owner = requests.Session()
    page = open_with_link(owner, site)
    mapped = post_action(owner, site, page, "map_role", group="admins", role="admin")
    assert mapped.status_code == 200 and "get the role admin" in mapped.text
    assert site.workspaces.get("acme").role_map == {"admins": "admin"}
    assert whoami(member, site.url)["roles"] == ["admin"]  # this worker: at once
    removed = post_action(owner, site, mapped, "unmap_role", group="ADMINS")
    assert removed.status_code == 200 and "Removed the mapping" in removed.text
    assert whoami(member, site.url)["roles"] == ["viewer"]
    assert [(e.actor, e.changes) for e in site.audit("role_mapped")] == [
        ("settings:link", {"group": "admins", "role": "admin"})
    ]
    assert len(site.audit("role_unmapped")) == 1


def test_bad_role_input_is_refused_and_changes_nothing(site: Site, acme: str) -> None:
    owner = requests.Session()
    page = open_with_link(owner, site)
    for fields in (
        {"group": "Admins", "role": "superuser"},  # not declared by the host
        {"group": "   ", "role": "admin"},
        {"group": "x" * 300, "role": "admin"},
        {"group": "Admins"},
    ):
        refused = post_action(owner, site, page, "map_role", **fields)
        assert refused.status_code == 400, fields
        assert "Nothing was changed" in refused.text
    missing = post_action(owner, site, page, "unmap_role", group="Nobody")
    assert missing.status_code == 400
    assert site.workspaces.get("acme").role_map == {}
    assert site.audit("role_mapped") == []


def test_the_owner_sets_and_resets_the_attribute_mapping(
    site: Site, acme: str, idp: TestIdP
) -> None:
    owner = requests.Session()
    page = open_with_link(owner, site)
    saved = post_action(
        owner, site, page, "set_attributes",
        email="", given_name="first", family_name="", display_name="", groups="memberOf",
    )  # fmt: skip
    assert saved.status_code == 200 and "Saved the attribute mapping" in saved.text
    assert 'value="memberOf"' in saved.text
    assert site.workspaces.get("acme").attribute_map == {
        "given_name": "first",
        "groups": "memberOf",
    }
    browser = signed_in(site, idp, "bob@acme.test", memberOf=["Ops"], groups=["NotRead"])
    assert whoami(browser, site.url)["groups"] == ["Ops"]
    bad = post_action(owner, site, saved, "set_attributes", groups="a\u200bb")
    assert bad.status_code == 400 and "Nothing was changed" in bad.text
    assert site.workspaces.get("acme").attribute_map["groups"] == "memberOf"
    reset = post_action(owner, site, saved, "set_attributes")  # every field empty
    assert reset.status_code == 200 and site.workspaces.get("acme").attribute_map == {}
    assert [e.actor for e in site.audit("attribute_map_changed")] == ["settings:link"] * 2


def test_forged_posts_change_nothing(site: Site, acme: str) -> None:
    browser = requests.Session()
    open_with_link(browser, site)
    for data in (
        {"action": "map_role", "group": "Admins", "role": "admin"},
        {"action": "map_role", "group": "Admins", "role": "admin", "csrf_token": "forged"},
        {"action": "set_attributes", "groups": "x", "csrf_token": "forged"},
    ):
        response = browser.post(settings_url(site), data=data)
        assert response.status_code == 403 and "nothing was changed" in response.text
    info = site.workspaces.get("acme")
    assert (info.role_map, info.attribute_map) == ({}, {})


def test_a_member_who_is_not_the_owner_gets_no_access(site: Site, acme: str, idp: TestIdP) -> None:
    member = signed_in(site, idp, "alice@acme.test")
    page = member.get(settings_url(site))
    assert page.status_code == 403 and ACCESS_DENIED in page.text
    posted = member.post(
        settings_url(site), data={"action": "map_role", "group": "A", "role": "admin"}
    )
    assert posted.status_code == 403
    assert site.workspaces.get("acme").role_map == {}


def test_a_hostile_owner_cannot_map_another_workspace(
    site: Site, acme: str, second_idp: TestIdP
) -> None:
    site.add_workspace("evil", second_idp)
    mallory = requests.Session()
    token = csrf_token(open_with_link(mallory, site, "evil").text)
    for data in (
        {"action": "map_role", "group": "Staff", "role": "admin"},
        {"action": "set_attributes", "email": "attacker"},
    ):
        forged = mallory.post(settings_url(site, "acme"), data={"csrf_token": token, **data})
        assert forged.status_code == 403 and ACCESS_DENIED in forged.text, data
        own = mallory.post(
            settings_url(site, "evil"), data={"csrf_token": token, "slug": "acme", **data}
        )
        assert own.status_code == 200, own.text
    acme_info = site.workspaces.get("acme")
    assert (acme_info.role_map, acme_info.attribute_map) == ({}, {})
    evil = site.workspaces.get("evil")
    assert evil.role_map == {"Staff": "admin"} and evil.attribute_map == {"email": "attacker"}
    assert {e.workspace_id for e in site.audit("role_mapped")} == {evil.id}
