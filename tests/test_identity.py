"""identity.py's Member as the host app gets it: ``member.attributes`` over real HTTP (SCIM
provisions, the dev IdP signs in, the host app reads), and read-only all the way down."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import requests

from webwork_sso_middleware.identity import Member, frozen_attributes

from .constants import PATCH_OP
from .saml import conftest as saml_fixtures
from .saml.conftest import Site
from .saml.idp import TestIdP

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ENTRA = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
RECHECK = 0.3


def plain(value: Any) -> Any:
    """The attributes as JSON can carry them (mappings -> objects, tuples -> arrays)."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    return value


def host_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Shows the member's attributes; on /mutate first tries to change them every way it can."""
    member: Member | None = environ.get("webwork_sso.member")
    attributes = member.attributes if member is not None else None
    refused = []
    if attributes is not None and environ["PATH_INFO"] == "/mutate":
        attempts: list[Callable[[], Any]] = [
            lambda: attributes.__setitem__("department", "Hacked"),  # type: ignore[attr-defined]
            lambda: attributes[ENTRA].__setitem__("CustomAttribute", "x"),
            lambda: attributes[ENTRA]["tags"].append("x"),
            lambda: attributes["manager"].pop("value"),
            lambda: setattr(member, "attributes", {}),
        ]
        for attempt in attempts:
            try:
                attempt()
            except (TypeError, AttributeError):
                refused.append(True)
            else:
                refused.append(False)
        # Forced past the frozen dataclass: the host's own copy of the member, nobody else's.
        object.__setattr__(member, "attributes", {})
    body: dict[str, Any] = {
        "user": environ.get("REMOTE_USER"),
        "attributes": plain(attributes),
        "refused": refused,
    }
    if member is not None and member.groups:
        body["groups"] = member.groups
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


@pytest.fixture
def site(
    serve: Callable[[Any], Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Site]:
    monkeypatch.setattr(saml_fixtures, "host_app", host_app)  # Site serves this host app
    site = Site(serve, database_url, session_recheck_seconds=RECHECK)
    yield site
    site.middleware.close()


def provision(site: Site, token: str, email: str) -> str:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, ENTRA],
        "userName": email,
        "title": "Tour Guide",
        "emails": [{"primary": True, "type": "work", "value": email}],
        ENTERPRISE: {
            "employeeNumber": 701984,
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
            "manager": {"value": "mgr-1", "displayName": "John Smith"},
            "badgeColour": "green",
        },
        ENTRA: {"CustomAttribute": "701984", "tags": ["a", "b"]},
    }
    response = requests.post(
        f"{site.url}/scim/v2/Users", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text
    member_id: str = response.json()["id"]
    return member_id


def sign_in(site: Site, idp: TestIdP, slug: str, email: str) -> requests.Session:
    browser = requests.Session()
    response = site.post_response(
        browser,
        slug,
        idp.response(sp_entity_id=site.entity_id(slug), acs_url=site.acs(slug), email=email),
    )
    assert response.status_code in (302, 303), response.text
    return browser


def seen(browser: requests.Session, site: Site, path: str = "/") -> dict[str, Any]:
    data: dict[str, Any] = browser.get(site.url + path).json()
    return data


EXPECTED = {
    "title": "Tour Guide",
    "employeeNumber": "701984",
    "costCenter": "4130",
    "organization": "Universal Studios",
    "division": "Theme Park",
    "department": "Tour Operations",
    "manager": {"value": "mgr-1", "displayName": "John Smith"},
    ENTERPRISE: {"badgeColour": "green"},
    ENTRA: {"CustomAttribute": "701984", "tags": ["a", "b"]},
}


def test_attributes_reach_the_host_and_follow_scim_within_the_recheck(site: Site, idp: TestIdP):
    token = site.add_workspace("acme", idp)
    member_id = provision(site, token, "bjensen@acme.test")
    # Groups: the session query returns a row per group; the attributes come whole all the same.
    for name in ("Zebras", "Aardvarks", "Moles"):
        group = requests.post(
            f"{site.url}/scim/v2/Groups",
            json={"displayName": name, "members": [{"value": member_id}]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert group.status_code == 201, group.text
    browser = sign_in(site, idp, "acme", "bjensen@acme.test")
    assert seen(browser, site) == {
        "user": "bjensen@acme.test",
        "attributes": EXPECTED,
        "refused": [],
        "groups": ["Aardvarks", "Moles", "Zebras"],
    }
    operations = [
        {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Finance"},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:custom:Space", "value": {"c": 1}},
        {"op": "remove", "path": f"{ENTRA}:tags"},
        {"op": "remove", "path": f"{ENTERPRISE}:manager"},
    ]
    response = requests.patch(
        f"{site.url}/scim/v2/Users/{member_id}",
        json={"schemas": [PATCH_OP], "Operations": operations},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    time.sleep(RECHECK + 0.3)
    attributes = seen(browser, site)["attributes"]
    expected = {k: v for k, v in EXPECTED.items() if k != "manager"}
    expected["department"] = "Finance"
    expected[ENTRA] = {"CustomAttribute": "701984"}
    expected["urn:ietf:params:scim:schemas:custom:Space"] = {"c": 1}
    assert attributes == expected


def test_the_host_cannot_change_them_for_the_next_request(site: Site, idp: TestIdP):
    token = site.add_workspace("acme", idp)
    provision(site, token, "bjensen@acme.test")
    browser = sign_in(site, idp, "acme", "bjensen@acme.test")
    mutated = seen(browser, site, "/mutate")
    assert mutated["refused"] == [True] * 5
    assert mutated["attributes"] == EXPECTED
    assert seen(browser, site)["attributes"] == EXPECTED  # from the cached check: unchanged


def test_a_member_without_profile_attributes_gets_an_empty_mapping(site: Site, idp: TestIdP):
    site.add_workspace("acme", idp)
    browser = sign_in(site, idp, "acme", "new@acme.test")  # created at sign-in
    assert seen(browser, site) == {"user": "new@acme.test", "attributes": {}, "refused": []}


def test_another_workspace_never_sees_or_sets_them(site: Site, idp: TestIdP, second_idp: TestIdP):
    token = site.add_workspace("acme", idp)
    member_id = provision(site, token, "bjensen@acme.test")
    globex = site.add_workspace("globex", second_idp)
    response = requests.patch(
        f"{site.url}/scim/v2/Users/{member_id}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "value": {ENTRA: {"CustomAttribute": "stolen"}}}],
        },
        headers={"Authorization": f"Bearer {globex}"},
    )
    assert response.status_code == 404
    # globex's IdP signs in its own bjensen: a member of its own, without acme's attributes.
    other = sign_in(site, second_idp, "globex", "bjensen@globex.test")
    assert seen(other, site)["attributes"] == {}
    browser = sign_in(site, idp, "acme", "bjensen@acme.test")
    assert seen(browser, site)["attributes"] == EXPECTED


def test_frozen_attributes_are_read_only_all_the_way_down():
    source = {"a": {"b": [1, {"c": 2}]}, "d": "x"}
    frozen = frozen_attributes(source)
    assert plain(frozen) == source
    with pytest.raises(TypeError):
        frozen["d"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        frozen["a"]["b"][1]["c"] = 3
    source["a"]["b"][1]["c"] = 99  # the copy shares nothing with what it was made from
    assert frozen["a"]["b"][1]["c"] == 2
    member = Member("id", "acme", "u", None, None, None, None, True, [], attributes=frozen)
    assert member.copy().attributes is frozen  # shared, not copied, on every request
    assert Member("id", "acme", "u", None, None, None, None, True, []).attributes == {}


def test_frozen_attributes_serialise_copy_and_pickle_as_dicts_do():
    """Host apps cache members, log them as JSON, and copy them: all of that still works."""
    frozen = frozen_attributes({"a": {"b": [1, {"c": 2}]}})
    member = Member("id", "acme", "u", None, None, None, None, True, [], attributes=frozen)
    as_json = json.loads(json.dumps(dataclasses.asdict(member)))
    assert as_json["attributes"] == {"a": {"b": [1, {"c": 2}]}}
    assert copy.deepcopy(member).attributes is frozen  # nothing to copy: it can't change
    again = pickle.loads(pickle.dumps(member))
    assert again.attributes == frozen
    with pytest.raises(TypeError):
        again.attributes["a"]["x"] = 1  # type: ignore[index]
    for change in (
        lambda: frozen.update(x=1),  # type: ignore[attr-defined]
        lambda: frozen.__init__(x=1),  # type: ignore[misc]
        lambda: frozen.setdefault("x", 1),  # type: ignore[attr-defined]
        lambda: frozen["a"].clear(),
    ):
        with pytest.raises(TypeError):
            change()
    assert frozen == {"a": {"b": (1, {"c": 2})}}


def test_no_two_members_share_attributes_a_host_could_change():
    """dict's own methods, called unbound, get past FrozenDict's refusal (it is a dict): so an
    empty one is never shared either, and such a host spoils only the member it changed."""
    spoiled = Member("id", "acme", "u", None, None, None, None, True, [])
    dict.update(spoiled.attributes, {"leak": 1})  # type: ignore[arg-type]
    assert Member("id2", "acme", "v", None, None, None, None, True, []).attributes == {}
    empty = frozen_attributes({})
    dict.__setitem__(empty, "leak", 1)  # type: ignore[arg-type]
    assert frozen_attributes({}) == {} and frozen_attributes({}) is not frozen_attributes({})
