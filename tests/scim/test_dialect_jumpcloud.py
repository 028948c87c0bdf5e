"""JumpCloud's Custom SCIM Identity Management integration replayed (contrib/idp/jumpcloud.md):
"Test Connection" creates and deletes a test user and a test group; userName is JumpCloud's
username (not always an email); groups are created with their members (JumpCloud creates no
empty group), taken over by name when one exists, renamed, and deleted; a group taken away
from the app deactivates its members.

Sources: https://jumpcloud.com/support/provision-and-manage-users-and-groups-in-apps-using-custom-scim-identity-management-integration
(test user and group, SCIM 2.0, Bearer token; group management considerations) and
JumpCloud's attribute tables for SCIM v2 integrations (username -> userName,
firstname -> name.givenName, lastname -> name.familyName, group name -> displayName).
"""

from __future__ import annotations

from typing import Any

import requests

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.store.models import Member

from ..constants import PATCH_OP
from ..saml.conftest import Site
from ..saml.idp import TestIdP
from ..store_helpers import transaction
from .conftest import ScimClient

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def jumpcloud_user(username: str, email: str, given: str, family: str) -> dict[str, Any]:
    return {
        "schemas": [CORE, ENTERPRISE],
        "userName": username,
        "name": {"givenName": given, "familyName": family},
        "displayName": f"{given} {family}",
        "emails": [{"value": email, "type": "work", "primary": True}],
        "title": "Engineer",
        "active": True,
        ENTERPRISE: {"employeeNumber": "1815", "department": "R&D", "costCenter": ""},
    }


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def member_ids(group: dict[str, Any]) -> list[str]:
    return sorted(m["value"] for m in group.get("members", []))


def stored(middleware: SSOMiddleware, member_id: str) -> Member:
    with transaction(middleware.database) as unit:
        member = unit.session.get(Member, member_id)
        assert member is not None
        unit.session.expunge_all()
        return member


def test_test_connection_can_be_run_again_and_again(scim: ScimClient):
    for _ in range(2):
        user = scim.post("/Users", jumpcloud_user("test@acme.test", "test@acme.test", "T", "U"))
        group = scim.post(
            "/Groups",
            {"schemas": [GROUP], "displayName": "JC Test", "members": [{"value": user.json["id"]}]},
        )
        scim.delete(f"/Groups/{group.json['id']}")
        scim.delete(f"/Users/{user.json['id']}")
        assert scim.get("/Users").json["totalResults"] == 0
        assert scim.get("/Groups").json["totalResults"] == 0


def test_jumpcloud_user_lifecycle(scim: ScimClient, middleware):
    absent = scim.get("/Users", filter='userName eq "ada.lovelace"').json
    assert absent["totalResults"] == 0
    user = scim.post(
        "/Users", jumpcloud_user("ada.lovelace", "ada@acme.test", "Ada", "Lovelace")
    ).json
    uid = user["id"]
    assert user["userName"] == "ada.lovelace"
    assert user["emails"][0]["value"] == "ada@acme.test"
    assert user[ENTERPRISE] == {"employeeNumber": "1815", "department": "R&D"}
    # A username that is not an email: the member's email is still what SSO matches.
    assert stored(middleware, uid).email_key == "ada@acme.test"
    found = scim.get("/Users", filter='userName eq "Ada.Lovelace"').json
    assert [r["id"] for r in found["Resources"]] == [uid]
    # An attribute change in JumpCloud.
    changed = scim.patch(
        f"/Users/{uid}",
        patch_body(
            {"op": "replace", "path": "title", "value": "Countess"},
            {"op": "replace", "path": "name.familyName", "value": "King"},
        ),
    ).json
    assert changed["title"] == "Countess" and changed["name"]["familyName"] == "King"
    # Suspended in JumpCloud, then restored.
    off = scim.patch(f"/Users/{uid}", patch_body({"op": "replace", "value": {"active": False}}))
    assert off.json["active"] is False
    assert stored(middleware, uid).session_generation == 1
    on = scim.patch(f"/Users/{uid}", patch_body({"op": "replace", "value": {"active": True}}))
    assert on.json["active"] is True and on.json["title"] == "Countess"


def test_jumpcloud_group_management(scim: ScimClient, middleware):
    ada, bob, cy = (
        scim.post("/Users", jumpcloud_user(n, f"{n}@acme.test", n.title(), "X")).json["id"]
        for n in ("ada", "bob", "cy")
    )
    # A hostile workspace has a group of the same name and a member of its own.
    _, other_token = middleware.workspaces.create(
        "rival", name="Rival", plan="plus", owner_email="owner@rival.test"
    )
    middleware.workspaces.enable("rival", scim=True)
    rival = ScimClient(middleware, other_token)
    intruder = rival.post("/Users", jumpcloud_user("eve", "eve@rival.test", "Eve", "R")).json["id"]
    rival_group = rival.post("/Groups", {"displayName": "Engineering", "members": []}).json["id"]
    # The app already has "Engineering": JumpCloud finds it by name and takes it over.
    existing = scim.post("/Groups", {"displayName": "Engineering", "members": [{"value": cy}]})
    gid = existing.json["id"]
    found = scim.get("/Groups", filter='displayName eq "Engineering"').json
    assert [r["id"] for r in found["Resources"]] == [gid]  # never the rival's
    # Membership syncs: a value list, no filter, for adds and removes.
    synced = scim.patch(
        f"/Groups/{gid}",
        patch_body(
            {"op": "add", "path": "members", "value": [{"value": ada}, {"value": bob}]},
            {"op": "remove", "path": "members", "value": [{"value": cy}]},
        ),
    ).json
    assert member_ids(synced) == sorted([ada, bob])
    # Another workspace's member can never be added; the request writes nothing.
    refused = scim.patch(
        f"/Groups/{gid}",
        patch_body({"op": "add", "path": "members", "value": [{"value": intruder}]}),
        status=400,
    )
    assert refused.json["scimType"] == "invalidValue"
    assert member_ids(scim.get(f"/Groups/{gid}").json) == sorted([ada, bob])
    # A new JumpCloud group arrives with its members (JumpCloud creates no empty group).
    ops = scim.post(
        "/Groups", {"schemas": [GROUP], "displayName": "Ops", "members": [{"value": bob}]}
    ).json
    assert member_ids(ops) == [bob]
    # Renamed in JumpCloud.
    renamed = scim.patch(
        f"/Groups/{gid}", patch_body({"op": "replace", "value": {"displayName": "R&D"}})
    ).json
    assert renamed["displayName"] == "R&D" and member_ids(renamed) == sorted([ada, bob])
    # "Ops" taken away from the app: its members are deactivated there, groups kept.
    scim.patch(f"/Users/{bob}", patch_body({"op": "replace", "path": "active", "value": False}))
    assert stored(middleware, bob).active is False
    assert {g["display"] for g in scim.get(f"/Users/{bob}").json["groups"]} == {"R&D", "Ops"}
    # "R&D" deleted in JumpCloud: deleted here; the people stay.
    scim.delete(f"/Groups/{gid}")
    scim.get(f"/Groups/{gid}", status=404)
    assert "groups" not in scim.get(f"/Users/{ada}").json
    # The rival's group was never touched.
    assert rival.get(f"/Groups/{rival_group}").json["displayName"] == "Engineering"
    assert "members" not in rival.get(f"/Groups/{rival_group}").json


def test_a_username_that_is_no_email_signs_in_by_its_email(site: Site, idp: TestIdP):
    # The domain is not verified: only SCIM's provisioning lets this IdP sign the person in.
    token = site.add_workspace("acme", idp, verify_domain=False)
    scim = {"Authorization": f"Bearer {token}"}
    body = jumpcloud_user("ada.lovelace", "ada@acme.test", "Ada", "Lovelace")
    created = requests.post(f"{site.url}/scim/v2/Users", json=body, headers=scim)
    assert created.status_code == 201

    def sign_in() -> requests.Response:
        browser = requests.Session()
        response = idp.response(
            sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="ada@acme.test"
        )
        return site.post_response(browser, "acme", response)

    assert sign_in().status_code == 303
    assert [m.user_name for m in site.members()] == ["ada.lovelace"]  # found, not duplicated
    # Suspended in JumpCloud: refused at sign-in.
    off = patch_body({"op": "replace", "value": {"active": False}})
    requests.patch(f"{site.url}/scim/v2/Users/{created.json()['id']}", json=off, headers=scim)
    refused = sign_in()
    assert refused.status_code == 403 and "deactivated" in refused.text
