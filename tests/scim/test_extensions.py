"""Extension attributes kept as sent (scim/extensions.py), over real HTTP: custom extension
schemas (Entra's and Okta's) and the Enterprise extension's undescribed attributes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from sqlalchemy import text

from webwork_sso_middleware import SSOMiddleware

from ..constants import PATCH_OP, SCIM_HEADERS

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# Entra's custom extension attributes, as its attribute-mapping page names them.
ENTRA = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
# Okta's "External namespace" of a custom app attribute may be any URN (Okta's own example).
OKTA = "urn:ietf:params:scim:schemas:custom:Space"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


class Client:
    """requests against the middleware served over HTTP, one workspace's token."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self.base: str = session.base  # type: ignore[attr-defined]

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
        return self.session.request(
            method,
            self.base + path,
            json=body,
            params=params or None,
            headers=SCIM_HEADERS if body is not None else None,
        )

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        response = self.call(method, path, body, **params)
        assert response.status_code in (200, 201), response.text
        data: dict[str, Any] = response.json()
        return data

    def patch(self, user_id: str, *operations: dict[str, Any]) -> dict[str, Any]:
        return self.ok(
            "PATCH", f"/Users/{user_id}", {"schemas": [PATCH_OP], "Operations": list(operations)}
        )


@pytest.fixture
def client(live: requests.Session) -> Client:
    return Client(live)


def entra_user(user_name: str = "bjensen@acme.test") -> dict[str, Any]:
    """Entra's create body with the Enterprise extension and a custom extension attribute."""
    return {
        "schemas": [CORE, ENTERPRISE, ENTRA],
        "externalId": "bjensen",
        "userName": user_name,
        "active": True,
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        ENTERPRISE: {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"},
        },
        ENTRA: {"CustomAttribute": "701984"},
    }


def rejected(response: requests.Response, scim_type: str = "invalidValue") -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["schemas"] == [ERROR] and body["scimType"] == scim_type
    detail: str = body["detail"]
    return detail


# -- round trips --------------------------------------------------------------------------------


def test_entra_custom_extension_round_trip(client: Client):
    created = client.ok("POST", "/Users", entra_user())
    assert created["schemas"] == [CORE, ENTERPRISE, ENTRA]
    assert created[ENTRA] == {"CustomAttribute": "701984"}
    assert created[ENTERPRISE]["department"] == "Tour Operations"
    user_id = created["id"]
    assert client.ok("GET", f"/Users/{user_id}")[ENTRA] == {"CustomAttribute": "701984"}
    listed = client.ok("GET", "/Users", filter='userName eq "bjensen@acme.test"')["Resources"]
    assert listed[0][ENTRA] == {"CustomAttribute": "701984"} and ENTRA in listed[0]["schemas"]
    general = client.ok("GET", "/Users", filter='displayName sw "Babs"')["Resources"]
    assert general[0][ENTRA] == {"CustomAttribute": "701984"}
    # Entra's updates: one operation per attribute, capitalised, the path URN-qualified.
    patched = client.patch(
        user_id,
        {"op": "Replace", "path": f"{ENTRA}:CustomAttribute", "value": "701985"},
        {"op": "Add", "path": f"{ENTRA}:costCode", "value": "CC-7"},
        {"op": "Add", "path": f"{ENTERPRISE}:badgeColour", "value": "green"},
    )
    assert patched[ENTRA] == {"CustomAttribute": "701985", "costCode": "CC-7"}
    assert patched[ENTERPRISE]["badgeColour"] == "green"
    assert patched[ENTERPRISE]["employeeNumber"] == "701984"
    # Entra removes an attribute by replacing it with nothing, or with a remove.
    patched = client.patch(
        user_id,
        {"op": "Remove", "path": f"{ENTRA}:costCode"},
        {"op": "Replace", "path": f"{ENTRA}:CustomAttribute", "value": None},
    )
    assert ENTRA not in patched and ENTRA not in patched["schemas"]
    assert client.ok("GET", f"/Users/{user_id}") == patched


def test_okta_custom_namespace_and_enterprise_custom_names(client: Client):
    body = {
        "schemas": [CORE, ENTERPRISE],
        "userName": "ada@acme.test",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": True, "value": "ada@acme.test", "type": "work"}],
        "active": True,
        ENTERPRISE: {"department": "Engines", "costCentre": "CC-1", "badgeColour": "blue"},
        OKTA: {"custom1": "x", "skills": ["analysis", "poetry"], "level": 3, "remote": True},
    }
    created = client.ok("POST", "/Users", body)
    assert created[ENTERPRISE] == {
        "department": "Engines",
        "costCentre": "CC-1",
        "badgeColour": "blue",
    }
    assert created[OKTA] == body[OKTA] and OKTA in created["schemas"]  # not declared: kept
    # Okta's update is a PUT of the whole profile: what it leaves out goes.
    body[ENTERPRISE] = {"department": "Engines", "costCentre": "CC-2"}
    body[OKTA] = {"custom1": "y"}
    replaced = client.ok("PUT", f"/Users/{created['id']}", body)
    assert replaced[ENTERPRISE] == {"department": "Engines", "costCentre": "CC-2"}
    assert replaced[OKTA] == {"custom1": "y"}
    del body[OKTA]
    replaced = client.ok("PUT", f"/Users/{created['id']}", body)
    assert OKTA not in replaced and OKTA not in replaced["schemas"]


def test_patch_operations_with_and_without_paths(client: Client):
    user_id = client.ok("POST", "/Users", entra_user())["id"]
    acme = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
    # Without a path: values keyed by URN, or by URN-qualified names.
    doc = client.patch(user_id, {"op": "add", "value": {acme: {"costCode": "A1", "tags": ["a"]}}})
    assert doc[acme] == {"costCode": "A1", "tags": ["a"]}
    doc = client.patch(user_id, {"op": "replace", "value": {f"{acme}:costCode": "A2"}})
    assert doc[acme] == {"costCode": "A2", "tags": ["a"]}
    # add to a list appends (values already there once); add to anything else sets it.
    doc = client.patch(user_id, {"op": "add", "path": f"{acme}:tags", "value": ["b", "a"]})
    assert doc[acme]["tags"] == ["a", "b"]
    doc = client.patch(user_id, {"op": "replace", "path": f"{acme}:tags", "value": ["z"]})
    assert doc[acme]["tags"] == ["z"]
    # Names are case-insensitive: the attribute is replaced, not doubled.
    doc = client.patch(
        user_id, {"op": "replace", "path": f"{acme.upper()}:COSTCODE", "value": "A3"}
    )
    assert [k for k in doc if k.lower() == acme.lower()] and doc[
        next(k for k in doc if k.lower() == acme.lower())
    ] == {"COSTCODE": "A3", "tags": ["z"]}
    # A path naming the extension: replace sets its attributes given, remove drops it whole.
    doc = client.patch(user_id, {"op": "replace", "path": acme, "value": {"costCode": "B"}})
    assert doc[next(k for k in doc if k.lower() == acme.lower())]["costCode"] == "B"
    doc = client.patch(user_id, {"op": "remove", "path": acme})
    assert all(k.lower() != acme.lower() for k in doc) and acme not in doc["schemas"]
    # Okta's namespace doesn't end in :User: a path naming it with an object is the extension.
    doc = client.patch(user_id, {"op": "add", "path": OKTA, "value": {"custom1": "v"}})
    assert doc[OKTA] == {"custom1": "v"}
    doc = client.patch(user_id, {"op": "remove", "path": OKTA})
    assert OKTA not in doc
    doc = client.patch(user_id, {"op": "remove", "path": f"{ENTERPRISE}:department"})
    assert "department" not in doc[ENTERPRISE] and doc[ENTRA] == {"CustomAttribute": "701984"}


def test_projection_of_extension_attributes(client: Client):
    user_id = client.ok("POST", "/Users", entra_user())["id"]
    client.patch(user_id, {"op": "add", "path": f"{ENTERPRISE}:badgeColour", "value": "red"})
    only = client.ok("GET", f"/Users/{user_id}", attributes=f"{ENTRA}:customattribute")
    assert set(only) == {"schemas", "id", ENTRA} and only[ENTRA] == {"CustomAttribute": "701984"}
    whole = client.ok("GET", f"/Users/{user_id}", attributes=f"userName,{ENTRA.lower()}")
    assert set(whole) == {"schemas", "id", "userName", ENTRA}
    badge = client.ok("GET", "/Users", attributes=f"{ENTERPRISE}:badgeColour")["Resources"][0]
    assert badge[ENTERPRISE] == {"badgeColour": "red"}
    without = client.ok(
        "GET", f"/Users/{user_id}", excludedAttributes=f"{ENTRA},{ENTERPRISE}:badgeColour"
    )
    assert ENTRA not in without and "badgeColour" not in without[ENTERPRISE]
    assert without[ENTERPRISE]["department"] == "Tour Operations"


def test_filters_on_extension_attributes_are_refused_not_failed(client: Client):
    client.ok("POST", "/Users", entra_user())
    # An extension's "userName" is not the core one, to filters, lookups or sorting.
    for expression in (
        f'{ENTRA}:CustomAttribute eq "701984"',
        f"{ENTERPRISE}:badgeColour pr",
        f'{ENTRA}:userName eq "bjensen@acme.test"',
    ):
        response = client.call("GET", "/Users", filter=expression)
        assert "filters" in rejected(response, "invalidFilter")
    response = client.call("GET", "/Users", sortBy=f"{ENTRA}:userName")
    assert "cannot sort" in rejected(response, "invalidPath")


def test_reserved_namespaces_and_unknown_core_attributes_are_ignored(client: Client):
    body = entra_user()
    body["urn:ietf:params:scim:api:messages:2.0:PatchOp"] = {"x": 1}
    body["urn:ietf:params:scim:schemas:core:2.0:Group"] = {"x": 1}
    body["shoeSize"] = 44
    created = client.ok("POST", "/Users", body)
    assert [k for k in created if k.startswith("urn:")] == [ENTERPRISE, ENTRA]
    assert "shoeSize" not in created


def test_an_unchanged_document_is_no_new_version(client: Client):
    created = client.ok("POST", "/Users", entra_user())
    again = client.ok("PUT", f"/Users/{created['id']}", entra_user())
    assert again["meta"]["version"] == created["meta"]["version"]


# -- bounds: refused whole, nothing written -----------------------------------------------------


@pytest.mark.parametrize(
    ("extension", "complaint"),
    [
        ({"blob": "x" * 17_000}, "at most 16384"),
        ({f"a{i}": "y" * 100 for i in range(200)}, "at most 16384"),
        ({"deep": {"a": {"b": {"c": {"d": 1}}}}}, "nests"),
        ({"deep": [[[["x"]]]]}, "nests"),
        ({"bad name": 1}, "not an attribute name"),
        ({"nul": "a\u0000b"}, "NUL"),
        ({"big": 2**70}, "too large"),
        ({"obj": {"": 1}}, "member name"),
    ],
)
def test_unkeepable_extensions_are_refused_with_nothing_written(
    client: Client, extension: dict[str, Any], complaint: str
):
    body = entra_user()
    body[ENTRA] = extension
    assert complaint in rejected(client.call("POST", "/Users", body))
    assert client.ok("GET", "/Users")["totalResults"] == 0
    user = client.ok("POST", "/Users", entra_user())
    operation = {"op": "replace", "path": ENTRA, "value": extension}
    response = client.call(
        "PATCH", f"/Users/{user['id']}", {"schemas": [PATCH_OP], "Operations": [operation]}
    )
    # In a PATCH, a name that can't be an attribute's is a path that names none.
    expected = "invalidPath" if complaint == "not an attribute name" else "invalidValue"
    assert rejected(response, expected)
    put = entra_user()
    put[ENTRA] = extension
    assert complaint in rejected(client.call("PUT", f"/Users/{user['id']}", put))
    assert client.ok("GET", f"/Users/{user['id']}") == user  # same version, same attributes


def test_the_cap_counts_every_extension_together(client: Client):
    body = entra_user()
    body[ENTRA] = {"a": "x" * 9000}
    body[OKTA] = {"b": "y" * 9000}
    assert "at most 16384" in rejected(client.call("POST", "/Users", body))
    body[OKTA] = {"b": "y" * 7000}
    assert client.ok("POST", "/Users", body)[OKTA] == {"b": "y" * 7000}


@pytest.mark.parametrize("char", ["\U0001f600", "\u00e9", '"'])
def test_the_cap_holds_for_what_the_database_stores(
    client: Client, middleware: SSOMiddleware, char: str
):
    """The cap is measured on the text the JSON column holds (compact, characters as they
    are), so what is accepted takes at most MAX_EXTENSION_BYTES in the database too."""
    width = len(json.dumps(char, ensure_ascii=False).encode()) - 2
    fits = (16384 - len(f'{{"{ENTRA}":{{"s":""}}}}')) // width
    body = entra_user()
    body[ENTRA] = {"s": char * fits}
    user = client.ok("POST", "/Users", body)
    with middleware.database.engine.connect() as connection:
        stored = connection.execute(
            text("SELECT CAST(extensions AS TEXT) FROM members WHERE id = :id"),
            {"id": user["id"]},
        ).scalar_one()
    assert 16384 - width < len(stored.encode()) <= 16384
    body[ENTRA] = {"s": char * (fits + 1)}
    assert "at most 16384" in rejected(client.call("PUT", f"/Users/{user['id']}", body))


def test_an_extension_that_is_not_an_object_is_refused(client: Client):
    body = entra_user()
    body[ENTRA] = "701984"
    assert "must be an object" in rejected(client.call("POST", "/Users", body))


# -- workspaces ---------------------------------------------------------------------------------


def test_another_workspace_cannot_read_or_write_them(
    client: Client, middleware: SSOMiddleware, serve: Any
):
    user = client.ok("POST", "/Users", entra_user())
    _, globex_token = middleware.workspaces.create(
        "globex", name="Globex", plan="plus", owner_email="owner@globex.test"
    )
    middleware.workspaces.enable("globex", scim=True)
    hostile = requests.Session()
    hostile.headers["Authorization"] = f"Bearer {globex_token}"
    hostile.base = client.base  # type: ignore[attr-defined]
    other = Client(hostile)
    path = f"/Users/{user['id']}"
    assert other.call("GET", path).status_code == 404
    assert other.call("GET", path, attributes=ENTRA).status_code == 404
    operation = {"op": "replace", "path": f"{ENTRA}:CustomAttribute", "value": "stolen"}
    patch = {"schemas": [PATCH_OP], "Operations": [operation]}
    assert other.call("PATCH", path, patch).status_code == 404
    assert other.call("PUT", path, entra_user()).status_code == 404
    assert other.call("DELETE", path).status_code == 404
    assert other.ok("GET", "/Users")["totalResults"] == 0
    assert other.ok("POST", "/Users", {"schemas": [CORE, ENTRA], "userName": "bjensen@acme.test"})
    assert client.ok("GET", path) == user
    hostile.close()


# -- cost: refused before the work, not after it ------------------------------------------------

ACME = "urn:acme:2.0:User"


def _patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


@pytest.mark.parametrize(
    "shape",
    ["POST 20,000 attributes", "POST 20,000 URNs", "PATCH 20,000 URNs", "PATCH two long lists"],
)
def test_requests_giving_more_values_than_could_be_kept_are_refused_up_front(
    client: Client, shape: str
):
    """Each of these took from 37 s to minutes of CPU (names looked up by scanning every name)
    before the 400: now they are counted before any per-name work, and refused."""
    user = client.ok("POST", "/Users", entra_user())
    path = f"/Users/{user['id']}"
    if shape == "POST 20,000 attributes":
        body = entra_user("z@acme.test")
        body[ACME] = {f"a{i}": 1 for i in range(20_000)}
        method, target = "POST", "/Users"
    elif shape == "POST 20,000 URNs":
        body = {**entra_user("z@acme.test"), **{f"urn:a:{i}:User": {"a": 1} for i in range(20_000)}}
        method, target = "POST", "/Users"
    elif shape == "PATCH 20,000 URNs":
        urns = {f"urn:a:{i}:User": {"a": 1} for i in range(20_000)}
        body = _patch_body({"op": "add", "value": urns})
        method, target = "PATCH", path
    else:
        body = _patch_body(
            {"op": "add", "path": f"{ACME}:x", "value": list(range(70_000))},
            {"op": "add", "path": f"{ACME}:x", "value": list(range(70_000, 140_000))},
        )
        method, target = "PATCH", path
    started = time.monotonic()
    detail = rejected(client.call(method, target, body))
    elapsed = time.monotonic() - started
    assert "more than" in detail and "JSON values and names" in detail  # the up-front count
    assert elapsed < 5, elapsed  # loose: the fix takes well under a second, the flaw minutes
    assert client.ok("GET", "/Users")["totalResults"] == 1
    assert client.ok("GET", path) == user


def test_many_names_within_the_cap_are_kept_case_insensitively(client: Client):
    """Large but keepable: every name kept once, a case variant replacing its name."""
    body = entra_user()
    body[ACME] = {f"a{i}": i for i in range(700)}
    user = client.ok("POST", "/Users", body)
    assert user[ACME] == body[ACME]
    urns = {f"urn:a:{i}:User": {"b": i} for i in range(200)}
    renamed = {f"A{i}": -i for i in range(700)}
    doc = client.patch(user["id"], {"op": "add", "value": {**urns, ACME: renamed}})
    assert doc[ACME] == renamed and all(doc[urn] == value for urn, value in urns.items())
    assert doc["schemas"] == [CORE, ENTERPRISE, ENTRA, ACME, *urns]
    assert client.ok("GET", f"/Users/{user['id']}") == doc


def test_adds_that_look_through_long_lists_count_against_the_request(client: Client):
    body = entra_user()
    body[ACME] = {"tags": list(range(3000))}  # about 14 KB: keepable
    user = client.ok("POST", "/Users", body)
    adding = [{"op": "add", "path": f"{ACME}:tags", "value": [-i]} for i in range(1, 20)]
    detail = rejected(client.call("PATCH", f"/Users/{user['id']}", _patch_body(*adding)))
    assert "JSON values and names" in detail
    assert client.ok("GET", f"/Users/{user['id']}") == user
    doc = client.patch(user["id"], *adding[:3])
    assert doc[ACME]["tags"] == [*range(3000), -1, -2, -3]


# -- values compared as JSON ----------------------------------------------------------------------


def test_true_replacing_1_is_a_change(client: Client):
    """Python has True == 1: the change was answered 200 and never written (no new version)."""
    body = entra_user()
    body[ACME] = {"flag": 1, "zero": 0, "list": [1, 0]}
    user = client.ok("POST", "/Users", body)
    doc = client.patch(user["id"], {"op": "replace", "path": f"{ACME}:flag", "value": True})
    assert doc[ACME]["flag"] is True and doc["meta"]["version"] != user["meta"]["version"]
    assert client.ok("GET", f"/Users/{user['id']}")[ACME]["flag"] is True
    body[ACME] = {"flag": True, "zero": False, "list": [1, 0]}
    put = client.ok("PUT", f"/Users/{user['id']}", body)
    assert put[ACME]["zero"] is False and put["meta"]["version"] != doc["meta"]["version"]
    doc = client.patch(user["id"], {"op": "add", "path": f"{ACME}:list", "value": [True, 0]})
    assert doc[ACME]["list"] == [1, 0, True]  # true is not there yet; 0 is
    assert client.ok("GET", f"/Users/{user['id']}")[ACME]["list"] == [1, 0, True]


def test_remove_with_a_value_removes_just_those_values(client: Client):
    body = entra_user()
    body[ACME] = {"tags": ["a", "b", {"c": 1}, 1], "level": 3}
    user_id = client.ok("POST", "/Users", body)["id"]
    path = f"{ACME}:tags"
    doc = client.patch(user_id, {"op": "remove", "path": path, "value": ["b", {"c": 1}, True]})
    assert doc[ACME]["tags"] == ["a", 1]
    doc = client.patch(user_id, {"op": "remove", "path": f"{ACME}:level", "value": 4})
    assert doc[ACME]["level"] == 3  # not the value held: nothing removed
    doc = client.patch(
        user_id,
        {"op": "remove", "path": f"{ACME}:level", "value": [3]},
        {"op": "remove", "path": path, "value": "a"},
    )
    assert doc[ACME] == {"tags": [1]}
    doc = client.patch(user_id, {"op": "remove", "path": path, "value": [1]})
    assert ACME not in doc and ACME not in doc["schemas"]  # nothing left: unassigned


# -- names: as POST and PUT take them ------------------------------------------------------------


@pytest.mark.parametrize("name", ["urn:b:c", ACME, "a.b", "\u212aey", "1a"])
def test_a_pathless_patch_takes_only_attribute_names_under_a_schema(client: Client, name: str):
    """``{urn: {"urn:b:c": 1}}`` created extension ``<urn>:urn:b``, a URN never named."""
    user = client.ok("POST", "/Users", entra_user())
    operation = {"op": "add", "value": {ACME: {"ok": 1, name: 1}}}
    detail = rejected(
        client.call("PATCH", f"/Users/{user['id']}", _patch_body(operation)), "invalidPath"
    )
    assert "not an attribute name" in detail
    assert client.ok("GET", f"/Users/{user['id']}") == user
    body = entra_user("z@acme.test")
    body[ACME] = {"ok": 1, name: 1}
    assert "not an attribute name" in rejected(client.call("POST", "/Users", body))


def test_non_ascii_letters_and_long_urns_are_no_names(client: Client):
    """With re.I alone, [a-z] matched KELVIN SIGN and the long s, which lower-case onto other
    names; a URN over 256 characters was read as attribute "User" of a shorter one."""
    body = entra_user()
    body[ACME] = {"\u212aey": 1, "key": 2}
    assert "not an attribute name" in rejected(client.call("POST", "/Users", body))
    long_urn = "urn:a:" + "b" * 251 + ":User"  # 262 characters; "urn:a:bbb..." fits in 256
    for value in ({"a": 1}, 1):
        body = entra_user()
        body[long_urn] = value
        assert "longer than 256" in rejected(client.call("POST", "/Users", body))
    user = client.ok("POST", "/Users", {**entra_user(), "urn:acme:2.0:U\u017fer": {"a": 1}})
    assert [k for k in user if k.startswith("urn:")] == [ENTERPRISE, ENTRA]  # no extension
    patch = _patch_body({"op": "add", "path": long_urn, "value": {"a": 1}})
    detail = rejected(client.call("PATCH", f"/Users/{user['id']}", patch), "invalidPath")
    assert "longer than 256" in detail
    patch = _patch_body({"op": "add", "path": f"{ACME}:\u212aey", "value": 1})
    rejected(client.call("PATCH", f"/Users/{user['id']}", patch), "invalidPath")
    assert client.ok("GET", f"/Users/{user['id']}") == user
