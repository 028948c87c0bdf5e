"""The cross-tenant matrix: with one workspace's token, every endpoint and verb aimed at
another workspace's ids, names and references reveals nothing and changes nothing.

The victim's resources are read with its own token before and after, and must come back
byte for byte the same; its rows in the store and its audit log must not move; and no
answer to the attacker may carry a victim's name or address that the attacker did not send.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.scim.schemas import ENTERPRISE_USER_SCHEMA, PATCH_OP, SEARCH_REQUEST

from .scim_support import Tenant, check_answer, full_user

ENT = ENTERPRISE_USER_SCHEMA


class Side:
    """One workspace's data, as its own token sees it."""

    def __init__(self, middleware: SSOMiddleware, slug: str) -> None:
        self.tenant = Tenant(middleware, slug)
        self.users = [
            self.tenant.create(
                "Users",
                full_user(
                    f"{name}@{slug}.test",
                    externalId=f"{slug}-ext-{i}",
                    displayName=f"{name.title()} of {slug}",
                ),
            )
            for i, name in enumerate(("first", "second", "third"))
        ]
        ids = [u["id"] for u in self.users]
        self.groups = [
            self.tenant.create(
                "Groups",
                {
                    "displayName": f"{slug} admins",
                    "externalId": f"{slug}-group-0",
                    "members": [{"value": i} for i in ids[:2]],
                },
            ),
            self.tenant.create(
                "Groups",
                {"displayName": f"{slug} everyone", "members": [{"value": i} for i in ids]},
            ),
        ]

    @property
    def secrets(self) -> list[str]:
        """What another tenant must never be told."""
        values = []
        for user in self.users:
            values += [user["userName"], user["externalId"], user["displayName"]]
        for group in self.groups:
            values += [group["displayName"]]
        return values

    def snapshot(self) -> dict[str, bytes]:
        """Every resource of this side, as its own token reads it: raw answer bytes."""
        reads = {"/Users": "/Users?count=200", "/Groups": "/Groups?count=200"}
        reads.update({f"/Users/{u['id']}": f"/Users/{u['id']}" for u in self.users})
        reads.update({f"/Groups/{g['id']}": f"/Groups/{g['id']}" for g in self.groups})
        out = {}
        for key, path in reads.items():
            response = self.tenant.app.get("/scim/v2" + path, headers=self.tenant.headers)
            out[key] = response.body + response.headers.get("ETag", "").encode()
        return out


def store_rows(sql: Any, workspace_id: int) -> list[Any]:
    """The victim's rows, straight from the store."""
    return (
        sql("SELECT * FROM members WHERE workspace_id = :w ORDER BY id", w=workspace_id)
        + sql(
            "SELECT v.* FROM member_values v JOIN members m ON m.id = v.member_id"
            " WHERE m.workspace_id = :w ORDER BY v.id",
            w=workspace_id,
        )
        + sql("SELECT * FROM groups WHERE workspace_id = :w ORDER BY id", w=workspace_id)
        + sql(
            "SELECT ms.group_id, ms.member_id FROM memberships ms JOIN groups g"
            " ON g.id = ms.group_id WHERE g.workspace_id = :w"
            " ORDER BY ms.group_id, ms.member_id",
            w=workspace_id,
        )
        + sql("SELECT * FROM audit_events WHERE workspace_id = :w ORDER BY id", w=workspace_id)
    )


class Attack:
    """Requests with the attacker's token; every answer is checked and remembered."""

    def __init__(self, attacker: Side, victim: Side) -> None:
        self.attacker = attacker
        self.victim = victim
        self.exchanges: list[tuple[str, Any]] = []

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        allowed: dict[int, set[str | None]],
        headers: dict[str, str] | None = None,
    ) -> Any:
        sent = f"{method} {path} {json.dumps(body) if body is not None else ''}"
        response = self.attacker.tenant.request(method, path, body, headers=headers)
        check_answer(response, allowed)
        self.exchanges.append((sent, response))
        return response

    def assert_nothing_revealed(self) -> None:
        for sent, response in self.exchanges:
            for secret in self.victim.secrets:
                if secret.lower() not in sent.lower():
                    assert secret.lower() not in response.text.lower(), (sent, secret)


NOT_FOUND = {404: {None}}
FOREIGN_MEMBER = {400: {"invalidValue"}}


@pytest.mark.parametrize("direction", ["acme attacks beta", "beta attacks acme"])
def test_one_tenant_reaches_nothing_of_another(middleware: SSOMiddleware, direction: str) -> None:
    acme, beta = Side(middleware, "acme"), Side(middleware, "beta")
    attacker, victim = (acme, beta) if direction.startswith("acme") else (beta, acme)

    def sql(statement: str, **params: Any) -> list[Any]:
        with middleware.database.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(statement), params)]

    victim_before, rows_before = victim.snapshot(), store_rows(sql, victim.tenant.workspace_id)
    attacker_groups = {g["id"]: g for g in attacker.groups}
    attack = Attack(attacker, victim)
    user = victim.users[0]
    group = victim.groups[0]
    if_match = {"If-Match": user["meta"]["version"]}

    # -- the victim's resources by id, every verb, also at the other endpoint -------------
    for victim_user in victim.users:
        path = f"/Users/{victim_user['id']}"
        attack.send("GET", path, allowed=NOT_FOUND)
        attack.send("GET", path + "?attributes=userName", allowed=NOT_FOUND)
        attack.send("PUT", path, full_user("stolen@evil.test"), allowed=NOT_FOUND)
        attack.send("PUT", path, full_user("stolen@evil.test"), allowed=NOT_FOUND, headers=if_match)
        attack.send(
            "PATCH",
            path,
            {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "active", "value": False}],
            },
            allowed=NOT_FOUND,
        )
        attack.send(
            "PATCH",
            path,
            {"Operations": [{"op": "replace", "path": "userName", "value": "x@evil.test"}]},
            allowed=NOT_FOUND,
            headers=if_match,
        )
        attack.send("DELETE", path, allowed=NOT_FOUND)
        attack.send("DELETE", path, allowed=NOT_FOUND, headers=if_match)
        attack.send("GET", f"/Groups/{victim_user['id']}", allowed=NOT_FOUND)
    for victim_group in victim.groups:
        path = f"/Groups/{victim_group['id']}"
        attack.send("GET", path, allowed=NOT_FOUND)
        attack.send("GET", path + "?excludedAttributes=members", allowed=NOT_FOUND)
        attack.send("PUT", path, {"displayName": "stolen", "members": []}, allowed=NOT_FOUND)
        attack.send(
            "PATCH",
            path,
            {
                "Operations": [
                    {
                        "op": "add",
                        "path": "members",
                        "value": [{"value": u["id"]} for u in attacker.users],
                    },
                    {"op": "remove", "path": f'members[value eq "{victim.users[0]["id"]}"]'},
                ]
            },
            allowed=NOT_FOUND,
        )
        attack.send(
            "PATCH",
            path,
            {"Operations": [{"op": "replace", "path": "displayName", "value": "stolen"}]},
            allowed=NOT_FOUND,
        )
        attack.send("DELETE", path, allowed=NOT_FOUND)
        attack.send("GET", f"/Users/{victim_group['id']}", allowed=NOT_FOUND)

    # -- the victim's users as members of the attacker's groups ---------------------------
    own = attacker.users[0]["id"]
    groups_before = len(attacker.tenant.request("GET", "/Groups").json["Resources"])
    for victim_user in victim.users:
        members = [{"value": own}, {"value": victim_user["id"]}]
        attack.send(
            "POST",
            "/Groups",
            {"displayName": "with a stranger", "members": members},
            allowed=FOREIGN_MEMBER,
        )
        target = attacker.groups[0]
        path = f"/Groups/{target['id']}"
        attack.send(
            "PUT",
            path,
            {"displayName": target["displayName"], "members": members},
            allowed=FOREIGN_MEMBER,
        )
        attack.send(
            "PATCH",
            path,
            {
                "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": victim_user["id"]}]}
                ]
            },
            allowed=FOREIGN_MEMBER,
        )
        attack.send(
            "PATCH",
            path,
            {
                "Operations": [
                    {"op": "replace", "path": "members", "value": [{"value": victim_user["id"]}]}
                ]
            },
            allowed=FOREIGN_MEMBER,
        )
        attack.send(
            "PATCH",
            path,
            {
                "Operations": [
                    {
                        "op": "add",
                        "value": {"members": [{"value": victim_user["id"], "type": "User"}]},
                    }
                ]
            },
            allowed=FOREIGN_MEMBER,
        )
        # Removing someone who is not a member changes nothing (and says nothing).
        response = attack.send(
            "PATCH",
            path,
            {"Operations": [{"op": "remove", "path": f'members[value eq "{victim_user["id"]}"]'}]},
            allowed={200: {None}},
        )
        assert response.json == attacker.tenant.get("Groups", target["id"])
        assert response.json["meta"]["version"] == attacker_groups[target["id"]]["meta"]["version"]
    assert len(attacker.tenant.request("GET", "/Groups").json["Resources"]) == groups_before

    # -- filters naming the victim's rows: empty lists, also through /.search --------------
    user_filters = [
        f'userName eq "{user["userName"]}"',
        f'userName eq "{user["userName"].upper()}"',
        f'id eq "{user["id"]}"',
        f'externalId eq "{user["externalId"]}"',
        f'emails.value eq "{user["userName"]}"',
        f'emails[value sw "{user["userName"].split(".")[0]}"]',
        f'displayName eq "{user["displayName"]}"',
        f'groups.value eq "{group["id"]}"',
        f'groups.display eq "{group["displayName"]}"',
        f'groups[value eq "{group["id"]}"]',
        f'userName ew "@{victim.tenant.slug}.test"',
        f'{ENT}:manager.value eq "m-1" and userName co "{victim.tenant.slug}"',
        f'id eq "{user["id"]}" or id eq "{victim.users[1]["id"]}"',
    ]
    group_filters = [
        f'displayName eq "{group["displayName"]}"',
        f'id eq "{group["id"]}"',
        f'externalId eq "{group["externalId"]}"',
        f'members.value eq "{user["id"]}"',
        f'members[value eq "{user["id"]}"]',
        f'members.display eq "{user["displayName"]}"',
        f'displayName sw "{victim.tenant.slug}"',
    ]
    for endpoint, filters in (("Users", user_filters), ("Groups", group_filters)):
        for condition in filters:
            for response in (
                attack.send("GET", f"/{endpoint}?filter={quote(condition)}", allowed={200: {None}}),
                attack.send(
                    "POST",
                    f"/{endpoint}/.search",
                    {"schemas": [SEARCH_REQUEST], "filter": condition, "count": 200},
                    allowed={200: {None}},
                ),
            ):
                assert response.json["totalResults"] == 0, (endpoint, condition)
                assert response.json["Resources"] == []
    # Unfiltered lists and their totals count the attacker's own rows only.
    listed = attack.send("GET", "/Users?count=200&sortBy=userName", allowed={200: {None}}).json
    assert {r["id"] for r in listed["Resources"]} == {u["id"] for u in attacker.users}
    assert listed["totalResults"] == len(attacker.users)
    listed = attack.send("GET", "/Groups?startIndex=1&count=1", allowed={200: {None}}).json
    assert listed["totalResults"] == len(attacker.groups)

    # -- the victim's names are free in the attacker's workspace: no 409 tells they exist --
    twin = attack.send(
        "POST",
        "/Users",
        full_user(user["userName"].upper(), externalId=user["externalId"]),
        allowed={201: {None}},
    ).json
    assert twin["id"] != user["id"]
    renamed = attack.send(
        "PATCH",
        f"/Users/{attacker.users[1]['id']}",
        {
            "Operations": [
                {"op": "replace", "path": "userName", "value": victim.users[1]["userName"]}
            ]
        },
        allowed={200: {None}},
    ).json
    assert renamed["userName"] == victim.users[1]["userName"]
    attack.send(
        "POST",
        "/Groups",
        {"displayName": group["displayName"], "externalId": group["externalId"]},
        allowed={201: {None}},
    )
    # A manager is an opaque reference: stored as sent, nothing of the victim looked up.
    managed = attack.send(
        "PATCH",
        f"/Users/{attacker.users[2]['id']}",
        {"Operations": [{"op": "add", "path": f"{ENT}:manager", "value": {"value": user["id"]}}]},
        allowed={200: {None}},
    ).json
    assert managed[ENT]["manager"] == {"value": user["id"], "$ref": managed[ENT]["manager"]["$ref"]}

    # -- afterwards: the victim is exactly as it was ---------------------------------------
    attack.assert_nothing_revealed()
    assert victim.snapshot() == victim_before
    assert store_rows(sql, victim.tenant.workspace_id) == rows_before
    victim_ids = {u["id"] for u in victim.users} | {g["id"] for g in victim.groups}
    foreign_events = sql(
        "SELECT workspace_id, action, target_id FROM audit_events WHERE workspace_id <> :w",
        w=victim.tenant.workspace_id,
    )
    assert not [e for e in foreign_events if e[2] in victim_ids], foreign_events
    # The attacker's own store holds no membership of the victim's users.
    assert sql(
        "SELECT count(*) FROM memberships ms JOIN groups g ON g.id = ms.group_id"
        " JOIN members m ON m.id = ms.member_id"
        " WHERE g.workspace_id <> m.workspace_id"
    ) == [(0,)]


def test_a_token_never_selects_another_workspace_by_slug_or_header(
    middleware: SSOMiddleware,
) -> None:
    """Nothing in the request but the token chooses the workspace: not a slug in the path,
    not a header, not a query parameter."""
    acme, beta = Side(middleware, "acme"), Side(middleware, "beta")
    for path in ("/Users", "/Users?workspace=beta", "/Users?slug=beta"):
        response = acme.tenant.request(
            "GET",
            path,
            headers={
                "X-Workspace": "beta",
                "X-Tenant": str(beta.tenant.workspace_id),
                "Host": "beta.test",
            },
        )
        check_answer(response, {200: {None}})
        assert {r["id"] for r in response.json["Resources"]} == {u["id"] for u in acme.users}


def test_no_tenant_provisions_into_a_domain_another_verified(middleware: SSOMiddleware) -> None:
    """evil's SCIM token can neither create nor rename a member into acme's verified domain,
    in any spelling, by POST, PUT or PATCH; its own and unverified domains stay open to it."""
    acme, evil = Tenant(middleware, "acme"), Tenant(middleware, "evil")
    middleware.workspaces.verify_domain("acme", "acme.test", by_operator=True)
    acme.create("Users", full_user("ceo@acme.test"))
    contractor = evil.create("Users", full_user("dev@evil.test"))

    for spelling in ("ceo@acme.test", "CEO@Acme.Test ", "\uff43eo@acme.test", "new@acme.test"):
        refused = evil.request("POST", "/Users", full_user(spelling))
        assert refused.status_int == 400 and refused.json["scimType"] == "invalidValue"
        assert "another workspace" in refused.json["detail"]
    renamed = evil.request("PUT", f"/Users/{contractor['id']}", full_user("ceo@acme.test"))
    assert renamed.status_int == 400
    patched = evil.request(
        "PATCH",
        f"/Users/{contractor['id']}",
        {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "userName", "value": "cfo@acme.test"}],
        },
    )
    assert patched.status_int == 400
    assert evil.get("Users", contractor["id"])["userName"] == "dev@evil.test"
    listed = evil.request("GET", "/Users", query={"filter": 'userName ew "acme.test"'}).json
    assert listed["totalResults"] == 0
    # A contractor at an unverified domain, and acme's own SCIM in its own domain, still work.
    assert evil.request("POST", "/Users", full_user("someone@unclaimed.test")).status_int == 201
    assert acme.request("POST", "/Users", full_user("new@acme.test")).status_int == 201


def test_a_member_named_before_the_domain_was_verified_keeps_working(
    middleware: SSOMiddleware,
) -> None:
    # evil provisioned x@acme.test while nobody had verified acme.test: updates that keep the
    # name go through (Okta pushes them), a rename back into the domain does not.
    evil = Tenant(middleware, "evil")
    early = evil.create("Users", full_user("x@acme.test"))
    Tenant(middleware, "acme")
    middleware.workspaces.verify_domain("acme", "acme.test", by_operator=True)
    updated = evil.request(
        "PUT", f"/Users/{early['id']}", {**full_user("x@acme.test"), "title": "Contractor"}
    )
    assert updated.status_int == 200 and updated.json["title"] == "Contractor"
    evil.request("PUT", f"/Users/{early['id']}", full_user("x@evil.test"))
    back = evil.request("PUT", f"/Users/{early['id']}", full_user("x@acme.test"))
    assert back.status_int == 400
