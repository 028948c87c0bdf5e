"""PingOne's SCIM Outbound provisioning connection replayed (contrib/idp/pingone.md): users are
matched by a configurable filter (``userName eq "%s"`` by default, ``emails eq`` for the
workEmail identifier, or the admin's own expression); updates are PATCHes (or PUTs when
"supports PATCH" is off); the remove action disables or deletes; disabled users may be
provisioned as such; groups are created, renamed, filled, overwritten and deleted.

Sources: https://docs.pingidentity.com/pingone/integrations/p1_scim_provisioning_features.html,
https://docs.pingidentity.com/pingone/integrations/p1_scim_filter_expressions.html,
https://docs.pingidentity.com/r/en-us/pingone/p1_create_scim_connection,
https://docs.pingidentity.com/integrations/scim/setup/pf_scim_connector_scim_connector_settings_reference.html
and https://docs.pingidentity.com/integrations/scim/pf_scim_connector_user_and_group_management.html.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests

from webwork_sso_middleware.store.models import Member

from ..constants import PATCH_OP
from ..store_helpers import transaction
from .conftest import ScimClient

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# PingOne's requests carry plain JSON media types.
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def pingone_user(user_name: str, email: str, *, active: bool = True) -> dict[str, Any]:
    return {
        "schemas": [CORE, ENTERPRISE],
        "userName": user_name,
        "name": {"givenName": "Janet", "familyName": "Smith", "formatted": "Janet Smith"},
        "displayName": "Janet Smith",
        "emails": [{"value": email, "type": "work", "primary": True}],
        "active": active,
        ENTERPRISE: {"employeeNumber": "4711", "department": "Finance"},
    }


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def stored(middleware, member_id: str) -> Member:
    with transaction(middleware.database) as unit:
        member = unit.session.get(Member, member_id)
        assert member is not None
        unit.session.expunge_all()
        return member


def test_pingone_over_http_with_a_base_url_ending_in_a_slash(live: requests.Session):
    # PingOne's example SCIM base URL ends in "/", and the Users resource is "/Users".
    base = live.base + "/"  # type: ignore[attr-defined]
    match = 'userName eq "jsmith"'
    assert live.get(base + "/Users", params={"filter": match}).json()["totalResults"] == 0
    created = live.post(
        base + "/Users", json=pingone_user("jsmith", "janet@acme.test"), headers=JSON_HEADERS
    )
    assert created.status_code == 201
    assert created.headers["Location"].startswith("https://tracker.example.com/scim/v2/Users/")
    found = live.get(base + "/Users", params={"filter": match}, headers=JSON_HEADERS)
    assert found.headers["Content-Type"].startswith("application/scim+json")
    assert [r["id"] for r in found.json()["Resources"]] == [created.json()["id"]]


@pytest.mark.parametrize(
    "expression",
    [
        'userName eq "%s"',  # User Identifier userName (the default)
        'username Eq "%s"',  # the documentation's own example, as written
        'emails eq "%s"',  # User Identifier workEmail
        'emails co "%s"',
    ],
)
def test_pingone_user_filter_expressions(scim: ScimClient, expression: str):
    janet = scim.post("/Users", pingone_user("janet@acme.test", "janet@acme.test")).json
    scim.post("/Users", pingone_user("john@acme.test", "john@acme.test"))
    found = scim.get("/Users", filter=expression % "janet@acme.test").json
    assert [r["id"] for r in found["Resources"]] == [janet["id"]]


def test_an_expression_on_an_attribute_scim_lacks_is_a_clear_400(scim: ScimClient):
    # The documentation's other example, 'email Co "%s"': User has "emails", not "email".
    refused = scim.get("/Users", filter='email Co "janet@acme.test"', status=400).json
    assert refused["scimType"] == "invalidFilter" and "'email'" in refused["detail"]


def test_pingone_user_lifecycle(scim: ScimClient, middleware):
    user = scim.post("/Users", pingone_user("jsmith", "janet@acme.test"), headers=JSON_HEADERS).json
    uid = user["id"]
    assert user[ENTERPRISE] == {"employeeNumber": "4711", "department": "Finance"}
    # "SCIM SP supports PATCH updates": the changed attributes, by path.
    patched = scim.patch(
        f"/Users/{uid}",
        patch_body(
            {"op": "replace", "path": "name.familyName", "value": "Jones"},
            {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Audit"},
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "jj@acme.test"},
        ),
        headers=JSON_HEADERS,
    ).json
    assert patched["name"]["familyName"] == "Jones"
    assert patched[ENTERPRISE]["department"] == "Audit"
    assert patched["emails"] == [{"value": "jj@acme.test", "type": "work", "primary": True}]
    assert stored(middleware, uid).email_key == "jj@acme.test"
    # Without PATCH support: the whole user by PUT.
    whole = pingone_user("jsmith", "jj@acme.test")
    whole["title"] = "Controller"
    put = scim.put(f"/Users/{uid}", whole, headers=JSON_HEADERS).json
    assert put["title"] == "Controller" and put["name"]["familyName"] == "Smith"
    # Remove Action "Disable", then the user is back in scope.
    off = scim.patch(
        f"/Users/{uid}", patch_body({"op": "replace", "path": "active", "value": False})
    ).json
    assert off["active"] is False and stored(middleware, uid).session_generation == 1
    on = scim.patch(f"/Users/{uid}", patch_body({"op": "replace", "path": "active", "value": True}))
    assert on.json["active"] is True
    # Remove Action "Delete".
    scim.delete(f"/Users/{uid}")
    assert scim.get("/Users", filter='userName eq "jsmith"').json["totalResults"] == 0


def test_pingone_provisions_disabled_users_disabled(scim: ScimClient, middleware):
    created = scim.post("/Users", pingone_user("dora", "dora@acme.test", active=False)).json
    assert created["active"] is False
    member = stored(middleware, created["id"])
    assert member.active is False


def test_pingone_group_provisioning(scim: ScimClient):
    ada, bob, cy = (
        scim.post("/Users", pingone_user(n, f"{n}@acme.test")).json["id"]
        for n in ("ada", "bob", "cy")
    )
    assert scim.get("/Groups", filter='displayName eq "Finance"').json["totalResults"] == 0
    group = scim.post(
        "/Groups",
        {"schemas": [GROUP], "displayName": "Finance", "members": [{"value": ada}]},
        headers=JSON_HEADERS,
    ).json
    gid = group["id"]
    # Membership changes: added and removed members.
    changed = scim.patch(
        f"/Groups/{gid}",
        patch_body(
            {"op": "add", "path": "members", "value": [{"value": bob}, {"value": cy}]},
            {"op": "remove", "path": f'members[value eq "{ada}"]'},
        ),
    ).json
    assert sorted(m["value"] for m in changed["members"]) == sorted([bob, cy])
    # Membership handling "overwrite": the whole list replaced.
    overwritten = scim.patch(
        f"/Groups/{gid}",
        patch_body({"op": "replace", "path": "members", "value": [{"value": ada}]}),
    ).json
    assert [m["value"] for m in overwritten["members"]] == [ada]
    # Group name update.
    renamed = scim.patch(
        f"/Groups/{gid}", patch_body({"op": "replace", "path": "displayName", "value": "Treasury"})
    ).json
    assert renamed["displayName"] == "Treasury"
    assert [g["display"] for g in scim.get(f"/Users/{ada}").json["groups"]] == ["Treasury"]
    # Group deletion.
    scim.delete(f"/Groups/{gid}")
    scim.get(f"/Groups/{gid}", status=404)


def test_basic_authentication_is_refused_with_a_scim_error(scim: ScimClient, token: str):
    # Choose "OAuth 2 Bearer Token": Basic credentials are never read as a token, even when
    # the password is the token itself.
    basic = base64.b64encode(f"pingone:{token}".encode()).decode()
    refused = scim.get("/Users", status=401, headers={"Authorization": f"Basic {basic}"})
    assert refused.json["status"] == "401" and refused.headers["WWW-Authenticate"].startswith(
        "Bearer"
    )
