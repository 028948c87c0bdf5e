"""POST /.search at the root (RFC 7644 section 3.4.3): Users and Groups in one list, paged
by index, filters that name one type's attributes, projection per type, and isolation."""

from __future__ import annotations

from typing import Any

import pytest

from ..store_helpers import Statements
from .conftest import ScimClient, okta_user
from .test_app import assert_scim_error

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def search(scim: ScimClient, status: int = 200, **params: Any) -> Any:
    response = scim.post("/.search", {"schemas": [SEARCH], **params}, status=status)
    return response.json if status == 200 else response


def kinds(listing: dict[str, Any]) -> list[str]:
    return [r["meta"]["resourceType"] for r in listing["Resources"]]


@pytest.fixture
def directory(scim: ScimClient) -> dict[str, str]:
    """Three users and two groups of acme, by name."""
    ids = {}
    for name, display in (("ada", "Eng Ada"), ("bob", "Bob"), ("cy", "Eng Cy")):
        ids[name] = scim.post("/Users", okta_user(f"{name}@acme.test", displayName=display)).json[
            "id"
        ]
    ids["eng"] = scim.post(
        "/Groups", {"displayName": "Engineering", "members": [{"value": ids["ada"]}]}
    ).json["id"]
    ids["ops"] = scim.post("/Groups", {"displayName": "Ops"}).json["id"]
    return ids


def test_users_then_groups_each_in_its_own_shape(scim: ScimClient, directory):
    listing = search(scim)
    assert listing["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert listing["totalResults"] == 5 and listing["itemsPerPage"] == 5
    assert kinds(listing) == ["User", "User", "User", "Group", "Group"]
    assert [r["id"] for r in listing["Resources"]] == [
        directory[n] for n in ("ada", "bob", "cy", "eng", "ops")
    ]
    user, group = listing["Resources"][0], listing["Resources"][3]
    assert user["schemas"][0] == USER and user["userName"] == "ada@acme.test"
    assert user == scim.get(f"/Users/{directory['ada']}").json
    assert group["schemas"] == [GROUP] and group == scim.get(f"/Groups/{directory['eng']}").json


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_pages_cover_the_list_once_across_the_type_boundary(scim: ScimClient, directory, count):
    whole = [r["id"] for r in search(scim)["Resources"]]
    seen: list[str] = []
    for start in range(1, 7, count):
        page = search(scim, startIndex=start, count=count)
        assert page["totalResults"] == 5 and page["startIndex"] == start
        assert page["itemsPerPage"] == len(page["Resources"]) <= count
        seen.extend(r["id"] for r in page["Resources"])
    assert seen == whole
    empty = search(scim, startIndex=6, count=2)
    assert empty["totalResults"] == 5 and empty["Resources"] == []
    only_total = search(scim, count=0)
    assert only_total["totalResults"] == 5 and only_total["Resources"] == []


def test_filter_terms_a_type_lacks_match_nothing_there(scim: ScimClient, directory):
    def ids(filter_: str) -> list[str]:
        listing = search(scim, filter=filter_)
        assert listing["totalResults"] == len(listing["Resources"])
        return [r["id"] for r in listing["Resources"]]

    d = directory
    assert ids('displayName sw "Eng"') == [d["ada"], d["cy"], d["eng"]]
    assert ids('userName eq "bob@acme.test"') == [d["bob"]]
    assert ids("members pr") == [d["eng"]]
    assert ids(f'members.value eq "{d["ada"]}" or userName eq "cy@acme.test"') == [
        d["cy"],
        d["eng"],
    ]
    assert ids("not (userName pr)") == [d["eng"], d["ops"]]
    assert ids("userName eq null") == [d["eng"], d["ops"]]
    assert ids('meta.resourceType eq "Group" and displayName ew "s"') == [d["ops"]]
    assert ids("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department pr") == []


@pytest.mark.parametrize(
    "filter_",
    ["nosuchattr eq 1", 'userName eq "x" and (', 'active eq "maybe"', 'password eq "x"'],
)
def test_bad_filters_are_invalid_filter(scim: ScimClient, directory, filter_):
    assert_scim_error(search(scim, 400, filter=filter_), 400, "invalidFilter")


def test_a_type_the_filter_rules_out_is_not_queried(scim: ScimClient, middleware, directory):
    def member_queries(statements: Statements) -> list[str]:
        return [s for s, _ in statements.seen if s.startswith("SELECT members.")]

    with Statements(middleware.database) as statements:
        assert search(scim, filter="displayName pr")["totalResults"] == 5
    assert member_queries(statements)  # what the next search must not send
    with Statements(middleware.database) as statements:
        assert search(scim, filter="members pr")["totalResults"] == 1
    assert statements.matching("FROM groups")
    assert not member_queries(statements)


def test_projection_applies_per_type(scim: ScimClient, directory):
    listing = search(scim, attributes=["displayName"])
    for resource in listing["Resources"]:
        assert set(resource) == {"schemas", "id", "displayName"}
    listing = search(scim, attributes="userName,members")
    assert {tuple(sorted(r)) for r in listing["Resources"]} == {
        ("id", "schemas", "userName"),
        ("id", "members", "schemas"),
        ("id", "schemas"),  # Ops has no members
    }
    excluded = search(scim, excludedAttributes=["members", "emails"])
    assert all("members" not in r and "emails" not in r for r in excluded["Resources"])
    assert all("displayName" in r for r in excluded["Resources"])


def test_sort_orders_within_each_type(scim: ScimClient, directory):
    d = directory
    names = search(scim, sortBy="displayName", sortOrder="descending")
    assert [r["id"] for r in names["Resources"]] == [
        d["cy"],
        d["ada"],
        d["bob"],
        d["ops"],
        d["eng"],
    ]
    by_user_name = search(scim, sortBy="userName", sortOrder="descending")
    assert [r["id"] for r in by_user_name["Resources"]] == [
        d["cy"], d["bob"], d["ada"], d["eng"], d["ops"],  # groups: their own (creation) order
    ]  # fmt: skip
    assert_scim_error(search(scim, 400, sortBy="nosuch"), 400, "invalidPath")
    assert_scim_error(search(scim, 400, sortBy="members"), 400, "invalidPath")


def test_bad_requests(scim: ScimClient):
    assert_scim_error(
        scim.post("/.search", {"schemas": ["urn:nope"]}, status=400), 400, "invalidSyntax"
    )
    assert_scim_error(scim.post("/.search", ["x"], status=400), 400, "invalidSyntax")
    assert_scim_error(search(scim, 400, count="many"), 400, "invalidValue")
    assert_scim_error(scim.get("/.search", status=405), 405)
    unauthenticated = scim.app.post("/scim/v2/.search", "{}", status=401)
    assert_scim_error(unauthenticated, 401)


def test_another_workspace_sees_nothing_of_acme(scim: ScimClient, middleware, directory):
    _, evil_token = middleware.workspaces.create(
        "evil", name="Evil", plan="plus", owner_email="owner@evil.test"
    )
    middleware.workspaces.enable("evil", scim=True)
    evil = ScimClient(middleware, evil_token)
    evil.post("/Users", okta_user("dev@evil.test"))
    listing = search(evil)
    assert listing["totalResults"] == 1 and listing["Resources"][0]["userName"] == "dev@evil.test"
    for filter_ in (f'id eq "{directory["ada"]}"', f'members.value eq "{directory["ada"]}"'):
        assert search(evil, filter=filter_)["totalResults"] == 0
