"""/Groups: Okta's group push and Entra's dialect, memberships and cross-workspace isolation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from webwork_sso_middleware.store.models import AuditEvent

from ..constants import PATCH_OP
from ..store_helpers import transaction
from .conftest import ScimClient, okta_user


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def member_values(group: dict[str, Any]) -> list[str]:
    return sorted(m["value"] for m in group.get("members", []))


def users(scim: ScimClient, *names: str) -> list[str]:
    return [scim.post("/Users", okta_user(f"{n}@acme.test")).json["id"] for n in names]


def test_okta_group_push_sequence(scim: ScimClient, middleware):
    ada, bob = users(scim, "ada", "bob")
    # Okta looks the group up by name, then creates it.
    absent = scim.get("/Groups", filter='displayName eq "Engineering"').json
    assert absent["totalResults"] == 0
    group = scim.post(
        "/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering",
            "members": [],
        },
    ).json
    assert group["displayName"] == "Engineering" and "members" not in group
    gid = group["id"]
    assert scim.get("/Groups", filter='displayName eq "engineering"').json["totalResults"] == 1
    # Push members.
    added = scim.patch(
        f"/Groups/{gid}",
        patch_body(
            {
                "op": "add",
                "path": "members",
                "value": [
                    {"value": ada, "display": "ada@acme.test"},
                    {"value": bob, "display": "bob@acme.test"},
                ],
            }
        ),
    )
    assert member_values(added.json) == sorted([ada, bob])
    # Rename: pathless replace with id and displayName.
    renamed = scim.patch(
        f"/Groups/{gid}",
        patch_body({"op": "replace", "value": {"id": gid, "displayName": "Engineering Team"}}),
    ).json
    assert renamed["displayName"] == "Engineering Team"
    assert member_values(renamed) == sorted([ada, bob])
    # Remove one member by value filter.
    removed = scim.patch(
        f"/Groups/{gid}", patch_body({"op": "remove", "path": f'members[value eq "{ada}"]'})
    ).json
    assert member_values(removed) == [bob]
    # The user sees the group.
    assert scim.get(f"/Users/{bob}").json["groups"] == [
        {
            "value": gid,
            "$ref": f"https://tracker.example.com/scim/v2/Groups/{gid}",
            "display": "Engineering Team",
            "type": "direct",
        }
    ]
    scim.delete(f"/Groups/{gid}")
    scim.get(f"/Groups/{gid}", status=404)
    assert "groups" not in scim.get(f"/Users/{bob}").json
    with transaction(middleware.database) as unit:
        actions = list(
            unit.session.scalars(
                select(AuditEvent.action).where(AuditEvent.target_id == gid).order_by(AuditEvent.id)
            )
        )
    assert actions == ["created", "updated", "updated", "updated", "deleted"]


def test_entra_group_dialect(scim: ScimClient):
    ada, bob, cy = users(scim, "ada", "bob", "cy")
    group = scim.post(
        "/Groups",
        {
            "displayName": "Ops",
            "externalId": "e-1",
            "members": [{"value": ada}, {"value": bob}, {"value": cy}],
        },
    ).json
    listing = scim.get("/Groups", excludedAttributes="members", filter='externalId eq "e-1"').json
    assert listing["totalResults"] == 1 and "members" not in listing["Resources"][0]
    # Remove with a value list removes only those members.
    after = scim.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "Remove", "path": "members", "value": [{"value": bob}]}),
    ).json
    assert member_values(after) == sorted([ada, cy])
    after = scim.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "Add", "path": "members", "value": [{"value": bob}]}),
    ).json
    assert member_values(after) == sorted([ada, bob, cy])
    renamed = scim.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "Replace", "path": "displayName", "value": "Operations"}),
    ).json
    assert renamed["displayName"] == "Operations"


def test_filters_on_members(scim: ScimClient):
    ada, bob = users(scim, "ada", "bob")
    first = scim.post("/Groups", {"displayName": "One", "members": [{"value": ada}]}).json
    scim.post("/Groups", {"displayName": "Two", "members": [{"value": bob}]})
    found = scim.get("/Groups", filter=f'members[value eq "{ada}"]').json
    assert [g["id"] for g in found["Resources"]] == [first["id"]]
    by_group = scim.get("/Users", filter=f'groups.value eq "{first["id"]}"').json
    assert [u["id"] for u in by_group["Resources"]] == [ada]


def test_duplicate_group_name_is_409(scim: ScimClient):
    scim.post("/Groups", {"displayName": "Same"})
    assert (
        scim.post("/Groups", {"displayName": "SAME"}, status=409).json["scimType"] == "uniqueness"
    )
    other = scim.post("/Groups", {"displayName": "Other"}).json
    clash = scim.patch(
        f"/Groups/{other['id']}",
        patch_body({"op": "replace", "path": "displayName", "value": "same"}),
        status=409,
    )
    assert clash.json["scimType"] == "uniqueness"


def test_unknown_member_id_is_400_and_writes_nothing(scim: ScimClient):
    (ada,) = users(scim, "ada")
    response = scim.post(
        "/Groups",
        {"displayName": "G", "members": [{"value": ada}, {"value": "no-such-user"}]},
        status=400,
    )
    assert response.json["scimType"] == "invalidValue" and "no-such-user" in response.json["detail"]
    assert scim.get("/Groups").json["totalResults"] == 0


def test_put_replaces_memberships(scim: ScimClient):
    ada, bob = users(scim, "ada", "bob")
    group = scim.post("/Groups", {"displayName": "G", "members": [{"value": ada}]}).json
    replaced = scim.put(
        f"/Groups/{group['id']}", {"displayName": "G", "members": [{"value": bob}]}
    ).json
    assert member_values(replaced) == [bob]
    assert (
        scim.put(f"/Groups/{group['id']}", {"members": []}, status=400).json["scimType"]
        == "invalidValue"
    )


def test_rename_with_a_different_id_is_refused(scim: ScimClient):
    group = scim.post("/Groups", {"displayName": "G"}).json
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch_body({"op": "replace", "value": {"id": "other", "displayName": "H"}}),
        status=400,
    )
    assert response.json["scimType"] == "mutability"
    assert scim.get(f"/Groups/{group['id']}").json["displayName"] == "G"


def test_another_workspace_sees_and_changes_nothing(scim: ScimClient, middleware):
    (ada,) = users(scim, "ada")
    group = scim.post("/Groups", {"displayName": "Secret", "members": [{"value": ada}]}).json
    _, other_token = middleware.workspaces.create(
        "globex", name="Globex", plan="premium", owner_email="o@globex.test"
    )
    middleware.workspaces.enable("globex", scim=True)
    other = ScimClient(middleware, other_token)
    assert other.get("/Users").json["totalResults"] == 0
    assert other.get("/Groups").json["totalResults"] == 0
    assert other.get("/Users", filter='userName eq "ada@acme.test"').json["totalResults"] == 0
    other.get(f"/Users/{ada}", status=404)
    other.get(f"/Groups/{group['id']}", status=404)
    other.patch(
        f"/Users/{ada}", patch_body({"op": "replace", "value": {"active": False}}), status=404
    )
    other.delete(f"/Groups/{group['id']}", status=404)
    other.delete(f"/Users/{ada}", status=404)
    # Its own group cannot take our member either.
    response = other.post(
        "/Groups", {"displayName": "Steal", "members": [{"value": ada}]}, status=400
    )
    assert response.json["scimType"] == "invalidValue"
    # And the same userName is free in the other workspace.
    other.post("/Users", okta_user("ada@acme.test"))
    assert scim.get(f"/Users/{ada}").json["active"] is True
    assert member_values(scim.get(f"/Groups/{group['id']}").json) == [ada]


def test_members_read_back_with_the_sub_attributes_written(scim: ScimClient):
    ada = scim.post("/Users", {"userName": "ada@acme.test"}).json["id"]
    bob = scim.post("/Users", {"userName": "bob@acme.test"}).json["id"]
    cy = scim.post("/Users", {"userName": "cy@acme.test"}).json["id"]
    ref = f"https://tracker.example.com/scim/v2/Users/{ada}"
    written = [{"value": ada, "display": "Ada L.", "type": "User", "$ref": ref}, {"value": bob}]
    group = scim.post("/Groups", {"displayName": "Fid", "members": written}).json
    assert group["members"] == written
    gid = group["id"]
    added = {"value": cy, "display": "Cy", "$ref": "../Users/" + cy}
    patched = scim.patch(
        f"/Groups/{gid}",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "add", "path": "members", "value": [added]},
                {"op": "replace", "path": f'members[value eq "{bob}"].display', "value": "Bob"},
            ],
        },
    ).json
    expected = [written[0], {"value": bob, "display": "Bob"}, added]
    assert patched["members"] == expected
    assert scim.get(f"/Groups/{gid}").json["members"] == expected
    # A PUT writes them anew, the version moving with them.
    put = scim.put(
        f"/Groups/{gid}", {"displayName": "Fid", "members": [{"value": ada, "display": "A"}]}
    ).json
    assert put["members"] == [{"value": ada, "display": "A"}]
    assert put["meta"]["version"] != patched["meta"]["version"]


def test_memberships_kept_before_sub_attributes_read_back_computed_ones(
    scim: ScimClient, middleware
):
    """Rows from before migration 0013 (as_sent false) read back as they always did, and take
    the sub-attributes on the group's next write, without a new version for that alone."""
    from sqlalchemy import update

    from webwork_sso_middleware.store.models import Membership

    ada = scim.post("/Users", okta_user("ada@acme.test")).json["id"]
    gid = scim.post("/Groups", {"displayName": "Old", "members": [{"value": ada}]}).json["id"]
    with transaction(middleware.database, write=True) as unit:
        unit.session.execute(update(Membership).values(as_sent=False))
    computed = {
        "value": ada,
        "$ref": f"https://tracker.example.com/scim/v2/Users/{ada}",
        "display": "Ada Lovelace",
        "type": "User",
    }
    before = scim.get(f"/Groups/{gid}").json
    assert before["members"] == [computed]
    same = scim.patch(
        f"/Groups/{gid}", patch_body({"op": "replace", "path": "displayName", "value": "Old"})
    ).json
    assert same["members"] == [computed] and same["meta"]["version"] == before["meta"]["version"]
    with transaction(middleware.database) as unit:
        assert unit.session.scalars(select(Membership.as_sent)).all() == [True]
