"""OneLogin's SCIM provisioner replayed (contrib/idp/onelogin.md): the user body is the app's
SCIM JSON Template as OneLogin renders it, so a parameter a person has no value for arrives
as an empty string; groups are the app's own, read with "Refresh Entitlements" and filled by
OneLogin's rules.

Sources: https://onelogin.service-now.com/kb?id=kb_article_view&sysparm_article=KB0013904
(SCIM custom connectors, the Enterprise template's parameters),
https://developers.onelogin.com/scim/create-app and /scim/test-your-scim (the connector's
fields, and Delete / Suspend / Do Nothing when a user is removed).
"""

from __future__ import annotations

from typing import Any

from webwork_sso_middleware.store.models import Member

from ..constants import PATCH_OP
from ..store_helpers import transaction
from .conftest import ScimClient

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def rendered_template(
    email: str, *, given: str = "Ada", family: str = "Lovelace", **parameters: str
) -> dict[str, Any]:
    """The "SCIM Provisioner with SAML (SCIM v2 Enterprise)" template, rendered for one
    person: every ``{$parameters.x}`` / ``{$user.x}`` the person lacks is ``""``."""
    p = {
        "title": "",
        "userType": "",
        "timezone": "",
        "city": "",
        "state": "",
        "country": "",
        "organization": "",
        "division": "",
        "department": "",
        "external_manager_id": "",
        "manager_name": " ",  # "{$user.manager_firstname} {$user.manager_lastname}"
        **parameters,
    }
    return {
        "schemas": [CORE, ENTERPRISE],
        "userName": email,  # {$parameters.scimusername}, set to Email
        "name": {"familyName": family, "givenName": given},
        "title": p["title"],
        "userType": p["userType"],
        "timezone": p["timezone"],
        "emails": [{"value": email, "type": "work", "primary": True}],
        "addresses": [{"locality": p["city"], "region": p["state"], "country": p["country"]}],
        ENTERPRISE: {
            "organization": p["organization"],
            "division": p["division"],
            "department": p["department"],
            "manager": {"value": p["external_manager_id"], "displayName": p["manager_name"]},
        },
    }


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def stored(middleware, member_id: str) -> Member:
    with transaction(middleware.database) as unit:
        member = unit.session.get(Member, member_id)
        assert member is not None
        unit.session.expunge_all()
        return member


def test_onelogin_user_lifecycle(scim: ScimClient, middleware):
    # "Enable" on the Configuration tab: OneLogin first reaches the base URL with the token.
    assert scim.get("/Users").json["totalResults"] == 0
    # Create: the template as rendered for someone with no title, address or manager.
    user = scim.post("/Users", rendered_template("ada@acme.test")).json
    uid = user["id"]
    assert user["userName"] == "ada@acme.test" and user["active"] is True
    assert user["emails"] == [{"value": "ada@acme.test", "type": "work", "primary": True}]
    # Empty strings are unassigned values (RFC 7643 2.5): no "", and no empty address object.
    for absent in ("title", "userType", "timezone", "addresses", ENTERPRISE):
        assert absent not in user, absent
    assert scim.get(f"/Users/{uid}").json == user
    # Linking an account that already exists: the look-up by userName, in any case.
    found = scim.get("/Users", filter='userName eq "ADA@acme.test"').json
    assert [r["id"] for r in found["Resources"]] == [uid]
    # Update: the template rendered again, now with the parameters filled in.
    updated = scim.put(
        f"/Users/{uid}",
        rendered_template(
            "ada@acme.test",
            family="King",
            title="Countess",
            city="London",
            country="GB",
            department="Analytical Engines",
            external_manager_id="mgr-7",
            manager_name="Charles Babbage",
        ),
    ).json
    assert updated["name"] == {"familyName": "King", "givenName": "Ada"}
    assert updated["title"] == "Countess"
    assert updated["addresses"] == [{"locality": "London", "country": "GB"}]
    assert updated[ENTERPRISE]["department"] == "Analytical Engines"
    assert updated[ENTERPRISE]["manager"]["value"] == "mgr-7"
    # The parameter is cleared in OneLogin: the next render sends "" and the value goes.
    cleared = scim.put(f"/Users/{uid}", rendered_template("ada@acme.test", family="King")).json
    for absent in ("title", "addresses", ENTERPRISE):
        assert absent not in cleared, absent
    # "When users are deleted in OneLogin": Suspend deactivates, and every session ends.
    off = scim.patch(
        f"/Users/{uid}", patch_body({"op": "replace", "path": "active", "value": False})
    ).json
    assert off["active"] is False and off["name"]["familyName"] == "King"
    member = stored(middleware, uid)
    assert member.active is False and member.session_generation == 1
    on = scim.patch(f"/Users/{uid}", patch_body({"op": "replace", "value": {"active": True}}))
    assert on.json["active"] is True
    # ... or Delete: gone from SCIM; assigning the person again creates them afresh.
    scim.delete(f"/Users/{uid}")
    scim.get(f"/Users/{uid}", status=404)
    assert scim.get("/Users", filter='userName eq "ada@acme.test"').json["totalResults"] == 0
    again = scim.post("/Users", rendered_template("ada@acme.test")).json
    assert again["id"] != uid and again["active"] is True


def test_onelogin_fills_the_apps_own_groups(scim: ScimClient, middleware):
    # The groups exist in the app already (OneLogin reads them; it does not create them).
    engineering = scim.post("/Groups", {"displayName": "Engineering"}).json["id"]
    scim.post("/Groups", {"displayName": "Sales"})
    ada = scim.post("/Users", rendered_template("ada@acme.test")).json["id"]
    bob = scim.post("/Users", rendered_template("bob@acme.test", given="Bob")).json["id"]
    # "Refresh Entitlements": OneLogin lists the app's groups, page by page.
    first = scim.get("/Groups", startIndex="1", count="1").json
    second = scim.get("/Groups", startIndex="2", count="1").json
    assert first["totalResults"] == 2 and first["itemsPerPage"] == 1
    names = {first["Resources"][0]["displayName"], second["Resources"][0]["displayName"]}
    assert names == {"Engineering", "Sales"}
    # A rule puts people in a group, and a later change takes one out.
    added = scim.patch(
        f"/Groups/{engineering}",
        patch_body({"op": "add", "path": "members", "value": [{"value": ada}, {"value": bob}]}),
    ).json
    assert sorted(m["value"] for m in added["members"]) == sorted([ada, bob])
    removed = scim.patch(
        f"/Groups/{engineering}",
        patch_body({"op": "remove", "path": f'members[value eq "{bob}"]'}),
    ).json
    assert [m["value"] for m in removed["members"]] == [ada]
    assert [g["display"] for g in scim.get(f"/Users/{ada}").json["groups"]] == ["Engineering"]
    assert "groups" not in scim.get(f"/Users/{bob}").json
