"""/Bulk (RFC 7644 section 3.7): operations one by one through the real endpoints, bulkId
references, failOnErrors, the announced limits, and a hostile second workspace."""

from __future__ import annotations

import json
import logging
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from webwork_sso_middleware.scim.bulk import BulkLimits
from webwork_sso_middleware.store.models import AuditEvent, Group, Member, ScimAuthFailure

from ..constants import PATCH_OP
from ..store_helpers import transaction
from .conftest import ScimClient, okta_user
from .test_app import assert_scim_error

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
BASE = "https://tracker.example.com/scim/v2"


def bulk(*operations: Any, **extra: Any) -> dict[str, Any]:
    return {"schemas": [BULK_REQUEST], "Operations": list(operations), **extra}


def post_user(bulk_id: str, email: str, **extra: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/Users",
        "bulkId": bulk_id,
        "data": okta_user(email, **extra),
    }


def post_group(bulk_id: str, name: str, *member_values: str) -> dict[str, Any]:
    data = {"displayName": name, "members": [{"value": v} for v in member_values]}
    return {"method": "POST", "path": "/Groups", "bulkId": bulk_id, "data": data}


def patch(path: str, *operations: dict[str, Any], **extra: Any) -> dict[str, Any]:
    data = {"schemas": [PATCH_OP], "Operations": list(operations)}
    return {"method": "PATCH", "path": path, "data": data, **extra}


def run(scim: ScimClient, body: Any, status: int = 200) -> Any:
    response = scim.post("/Bulk", body, status=status)
    if status == 200:
        assert response.json["schemas"] == [BULK_RESPONSE]
        return response.json["Operations"]
    return response


def statuses(operations: list[dict[str, Any]]) -> list[str]:
    return [op["status"] for op in operations]


def count(middleware: Any, model: Any) -> int:
    with transaction(middleware.database) as unit:
        return int(unit.session.scalar(select(func.count()).select_from(model)) or 0)


def test_announced_in_service_provider_config(scim: ScimClient, middleware):
    config = scim.get("/ServiceProviderConfig").json["bulk"]
    assert config == {
        "supported": True,
        "maxOperations": 1000,
        "maxPayloadSize": middleware.settings.max_body_bytes,
    }


def test_rfc_style_job_with_bulk_id_references_in_paths_and_values(scim: ScimClient, middleware):
    ops = run(
        scim,
        bulk(
            post_user("qwerty", "ada@acme.test"),
            post_group("ytrewq", "Tour Guides", "bulkId:qwerty"),
            patch(
                "/Users/bulkId:qwerty",
                {"op": "replace", "path": "title", "value": "Guide"},
            ),
            post_user("u2", "bob@acme.test"),
            patch(
                "/Groups/bulkId:ytrewq",
                {"op": "add", "path": "members", "value": [{"value": "bulkId:u2"}]},
            ),
        ),
    )
    assert statuses(ops) == ["201", "201", "200", "201", "200"]
    assert [op["method"] for op in ops] == ["POST", "POST", "PATCH", "POST", "PATCH"]
    assert [op.get("bulkId") for op in ops] == ["qwerty", "ytrewq", None, "u2", None]
    assert all("response" not in op for op in ops)  # successes omit it (RFC: MAY)
    ada_id = ops[0]["location"].rsplit("/", 1)[1]
    group_id = ops[1]["location"].rsplit("/", 1)[1]
    assert ops[0]["location"] == f"{BASE}/Users/{ada_id}"
    assert ops[2]["location"] == f"{BASE}/Users/{ada_id}"
    assert ops[4]["location"] == f"{BASE}/Groups/{group_id}"
    # Each version is the resource's ETag as the operation left it.
    ada = scim.get(f"/Users/{ada_id}").json
    assert ada["title"] == "Guide" and ada["meta"]["version"] == ops[2]["version"]
    group = scim.get(f"/Groups/{group_id}").json
    assert group["meta"]["version"] == ops[4]["version"]
    bob_id = ops[3]["location"].rsplit("/", 1)[1]
    assert sorted(m["value"] for m in group["members"]) == sorted([ada_id, bob_id])
    # Audit records and lifecycle events exactly as single requests make them.
    with transaction(middleware.database) as unit:
        audited = list(
            unit.session.execute(
                select(AuditEvent.target_id, AuditEvent.action).order_by(AuditEvent.id)
            )
        )
    assert [tuple(row) for row in audited] == [
        (ada_id, "created"),
        (group_id, "created"),
        (ada_id, "updated"),
        (bob_id, "created"),
        (group_id, "updated"),
    ]
    kinds = [event.kind for event in middleware.events.since(workspace="acme")]
    assert kinds == [
        "member.created",
        "group.created",
        "group.member_added",
        "member.updated",
        "member.created",
        "group.member_added",
    ]


def test_put_and_delete_with_version_preconditions(scim: ScimClient):
    user = scim.post("/Users", okta_user("ada@acme.test")).json
    path = f"/Users/{user['id']}"
    stale = 'W/"999"'
    ops = run(
        scim,
        bulk(
            {"method": "PUT", "path": path, "version": stale, "data": okta_user("ada@acme.test")},
            {
                "method": "put",  # methods in any case
                "path": path,
                "version": user["meta"]["version"],
                "data": okta_user("ada@acme.test", title="Boss"),
            },
            {"method": "DELETE", "path": path, "version": user["meta"]["version"]},
        ),
    )
    assert statuses(ops) == ["412", "200", "412"]  # the PUT made a new version
    assert ops[0]["response"]["status"] == "412" and ops[0]["location"] == BASE + path
    assert scim.get(path).json["title"] == "Boss"
    assert statuses(run(scim, bulk({"method": "DELETE", "path": path}))) == ["204"]
    scim.get(path, status=404)


def test_forward_reference_waits_for_the_later_post(scim: ScimClient):
    ops = run(
        scim,
        bulk(post_group("g", "Early", "bulkId:later"), post_user("later", "ada@acme.test")),
    )
    assert statuses(ops) == ["201", "201"]
    group = scim.get(ops[0]["location"][len(BASE) :]).json
    assert [m["value"] for m in group["members"]] == [ops[1]["location"].rsplit("/", 1)[1]]


def test_unresolvable_and_circular_references_fail_alone_with_409(scim: ScimClient, middleware):
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

    def managed_by(bulk_id: str, email: str, manager: str) -> dict[str, Any]:
        return post_user(bulk_id, email, **{enterprise: {"manager": {"value": manager}}})

    ops = run(
        scim,
        bulk(
            post_group("dangling", "Dangling", "bulkId:missing"),
            managed_by("a", "a@acme.test", "bulkId:b"),
            managed_by("b", "b@acme.test", "bulkId:a"),
            managed_by("self", "self@acme.test", "bulkId:self"),
            post_user("fine", "fine@acme.test"),
            post_user("dup", "fine@acme.test"),  # fails: userName taken
            post_group("after", "After", "bulkId:dup"),
        ),
    )
    assert statuses(ops) == ["409", "409", "409", "409", "201", "409", "409"]
    details = [op.get("response", {}).get("detail", "") for op in ops]
    assert "bulkId:missing" in details[0] and "no POST" in details[0]
    assert "circular" in details[1]
    assert "failed" in details[2]  # its partner failed first: b cannot be resolved
    assert "own bulkId:self" in details[3]
    assert ops[5]["response"]["scimType"] == "uniqueness"
    assert "bulkId:dup" in details[6] and "failed" in details[6]
    for op in (ops[0], ops[1], ops[6]):
        assert op["response"]["scimType"] == "invalidValue"
    assert count(middleware, Member) == 1 and count(middleware, Group) == 0


def test_each_operation_is_its_own_transaction(scim: ScimClient, middleware):
    ops = run(
        scim,
        bulk(
            post_user("a", "ada@acme.test"),
            # Fails inside the endpoint after the group row was written: rolled back alone.
            post_group("g", "Partial", "no-such-user"),
            post_user("b", "bob@acme.test"),
        ),
    )
    assert statuses(ops) == ["201", "400", "201"]
    assert ops[1]["response"]["scimType"] == "invalidValue"
    assert "location" not in ops[1]
    assert scim.get("/Groups").json["totalResults"] == 0
    assert scim.get("/Users").json["totalResults"] == 2


def test_fail_on_errors_stops_after_that_many_errors(scim: ScimClient, middleware):
    missing = "/Users/00000000-0000-0000-0000-000000000000"
    ops = run(
        scim,
        bulk(
            {"method": "DELETE", "path": missing},
            post_user("a", "ada@acme.test"),
            {"method": "DELETE", "path": missing},
            post_user("b", "bob@acme.test"),
            failOnErrors=2,
        ),
    )
    assert statuses(ops) == ["404", "201", "404"]  # stopped: "b" never ran
    assert ops[0]["response"]["detail"].startswith("User ")
    assert count(middleware, Member) == 1
    ops = run(
        scim,
        bulk({"method": "DELETE", "path": missing}, post_user("c", "c@acme.test"), failOnErrors=1),
    )
    assert statuses(ops) == ["404"]
    assert count(middleware, Member) == 1


def test_malformed_operations_fail_alone(scim: ScimClient, middleware):
    ops = run(
        scim,
        bulk(
            "not an object",
            {"method": "GET", "path": "/Users"},
            {"method": "POST", "path": "Users", "bulkId": "x", "data": {}},
            {"method": "POST", "path": "/Users", "data": okta_user("no-bulk-id@acme.test")},
            {"method": "POST", "path": "/Users/.search", "bulkId": "s", "data": {}},
            {"method": "POST", "path": "/Bulk", "bulkId": "n", "data": bulk()},
            {"method": "POST", "path": "/Schemas", "bulkId": "sc", "data": {}},
            {"method": "PATCH", "path": "/Users/x"},
            {"method": "PUT", "path": "/Users/x", "version": 3, "data": {}},
            {"method": "DELETE", "path": "/Nowhere/1"},
            {"method": "DELETE", "path": "/Users/a%00b"},
            {"method": "POST", "path": "/Users", "bulkId": "ok", "data": okta_user("ok@acme.test")},
        ),
    )
    assert statuses(ops) == [
        "400", "400", "400", "400", "400", "400", "405", "400", "400", "404", "404", "201",
    ]  # fmt: skip
    for op in ops[:-1]:
        assert op["response"]["status"] == op["status"] and op["response"]["detail"]
        if op["status"] == "400":
            assert op["response"]["scimType"] in ("invalidSyntax", "invalidValue")
    # Only the one routed to a User names a location (quoted as a URL must be).
    assert [op.get("location") for op in ops[:-1]] == [None] * 10 + [f"{BASE}/Users/a%00b"]
    assert count(middleware, Member) == 1


def test_bad_bulk_requests_are_refused_whole(scim: ScimClient, middleware):
    def refused(body: Any, status: int, scim_type: str | None) -> dict[str, Any]:
        return assert_scim_error(run(scim, body, status), status, scim_type)

    refused(["Operations"], 400, "invalidSyntax")
    refused({"schemas": ["urn:nope"], "Operations": []}, 400, "invalidSyntax")
    refused({"schemas": [BULK_REQUEST]}, 400, "invalidSyntax")
    refused(bulk(post_user("a", "a@acme.test"), failOnErrors=0), 400, "invalidValue")
    refused(bulk(post_user("a", "a@acme.test"), failOnErrors="1"), 400, "invalidValue")
    duplicate = bulk(post_user("a", "a@acme.test"), post_user("a", "b@acme.test"))
    assert "more than one" in refused(duplicate, 400, "invalidValue")["detail"]
    response = scim.app.post(
        "/scim/v2/Bulk", b"{", headers={**scim.headers, "Content-Type": "application/scim+json"},
        status=400,
    )  # fmt: skip
    assert_scim_error(response, 400, "invalidSyntax")
    assert_scim_error(scim.get("/Bulk", status=405), 405)
    assert count(middleware, Member) == 0
    # An empty job is a job: nothing to do.
    assert run(scim, bulk()) == []


def test_limits_are_enforced_with_413(scim: ScimClient, middleware):
    too_many = bulk(*({"method": "DELETE", "path": f"/Users/{i}"} for i in range(1001)))
    body = assert_scim_error(run(scim, too_many, 413), 413)
    assert "maxOperations (1000)" in body["detail"]
    limit = middleware.settings.max_body_bytes
    big = bulk(post_user("a", "a@acme.test", displayName="x" * limit))
    body = assert_scim_error(run(scim, big, 413), 413)
    assert f"maxPayloadSize ({limit} bytes)" in body["detail"]
    assert count(middleware, Member) == 0
    # Exactly maxOperations is fine.
    middleware.scim.bulk_limits = BulkLimits(max_operations=2, max_payload_size=limit)
    assert statuses(
        run(scim, bulk(post_user("a", "a@acme.test"), post_user("b", "b@acme.test")))
    ) == [
        "201",
        "201",
    ]
    run(scim, bulk(*(post_user(c, f"{c}@acme.test") for c in "cde")), 413)
    assert count(middleware, Member) == 2


def test_switched_off_bulk_is_announced_and_501(scim: ScimClient, middleware):
    middleware.scim.bulk_limits = BulkLimits(max_operations=0, max_payload_size=1024)
    assert scim.get("/ServiceProviderConfig").json["bulk"] == {
        "supported": False,
        "maxOperations": 0,
        "maxPayloadSize": 0,
    }
    assert_scim_error(run(scim, bulk(post_user("a", "a@acme.test")), 501), 501)
    assert count(middleware, Member) == 0


def test_wrong_token_is_one_failure_and_runs_nothing(scim: ScimClient, middleware):
    ops = bulk(*(post_user(str(i), f"u{i}@acme.test") for i in range(5)))
    response = scim.app.post(
        "/scim/v2/Bulk",
        json.dumps(ops),
        headers={"Authorization": "Bearer wrong", "Content-Type": "application/scim+json"},
        status=401,
    )
    assert_scim_error(response, 401)
    with transaction(middleware.database) as unit:
        failures = unit.session.scalar(select(func.sum(ScimAuthFailure.failures)))
    assert failures == 1
    assert count(middleware, Member) == 0


def test_token_revoked_mid_job_stops_what_follows(scim: ScimClient, middleware):
    """Each operation commits, and checks the token, on its own: the first one's event is
    delivered before the second runs, and a rotation made then refuses the second."""
    heard: list[str] = []

    def rotate_once(event: Any) -> None:
        heard.append(event.kind)
        if len(heard) == 1:
            middleware.workspaces.rotate_token("acme")

    middleware.events.subscribe(rotate_once, ["member.created"])
    ops = run(scim, bulk(post_user("a", "a@acme.test"), post_user("b", "b@acme.test")))
    assert statuses(ops) == ["201", "401"]
    assert ops[1]["response"]["detail"] == "invalid SCIM API token"
    assert heard == ["member.created"] and count(middleware, Member) == 1


def test_hostile_workspace_cannot_reach_another_through_bulk(scim: ScimClient, middleware):
    ada = scim.post("/Users", okta_user("ada@acme.test")).json
    group = scim.post("/Groups", {"displayName": "Acme Staff", "members": [{"value": ada["id"]}]})
    gid = group.json["id"]
    middleware.workspaces.verify_domain("acme", "acme.test", by_operator=True)
    _, evil_token = middleware.workspaces.create(
        "evil", name="Evil", plan="plus", owner_email="owner@evil.test"
    )
    middleware.workspaces.enable("evil", scim=True)
    evil = ScimClient(middleware, evil_token)
    ops = run(
        evil,
        bulk(
            {"method": "PUT", "path": f"/Users/{ada['id']}", "data": okta_user("ada@evil.test")},
            patch(f"/Users/{ada['id']}", {"op": "replace", "path": "active", "value": False}),
            {"method": "DELETE", "path": f"/Users/{ada['id']}"},
            patch(f"/Groups/{gid}", {"op": "remove", "path": "members"}),
            {"method": "DELETE", "path": f"/Groups/{gid}"},
            post_group("steal", "Stolen", ada["id"]),
            post_user("sneak", "ceo@acme.test"),  # acme verified acme.test
            post_user("own", "dev@evil.test"),
        ),
    )
    assert statuses(ops) == ["404", "404", "404", "404", "404", "400", "400", "201"]
    assert ops[5]["response"]["scimType"] == "invalidValue"
    assert ops[6]["response"]["scimType"] == "invalidValue"
    after = scim.get(f"/Users/{ada['id']}").json
    assert after["active"] is True and after["meta"]["version"] == ada["meta"]["version"]
    assert [m["value"] for m in scim.get(f"/Groups/{gid}").json["members"]] == [ada["id"]]
    assert scim.get("/Users").json["totalResults"] == 1
    assert evil.get("/Users").json["totalResults"] == 1
    assert [e.kind for e in middleware.events.since(workspace="evil")] == ["member.created"]


def test_deeply_nested_data_fails_alone_without_a_500(scim: ScimClient, middleware):
    for depth in (900, 5000):
        data = json.dumps(okta_user("a@acme.test"))[:-1] + ', "nickName": ' + "[" * depth
        data += '"x"' + "]" * depth + "}"
        raw = '{"Operations": [{"method": "POST", "path": "/Users", "bulkId": "a", "data": '
        raw += data + "}]}"
        response = scim.app.post(
            "/scim/v2/Bulk",
            raw.encode(),
            headers={**scim.headers, "Content-Type": "application/scim+json"},
            expect_errors=True,
        )
        if response.status_int == 200:  # parsed: the operation is refused alone
            (op,) = response.json["Operations"]
            assert op["status"] == "400" and op["response"]["scimType"] in (
                "invalidValue",
                "invalidSyntax",
            )
        else:  # too deep to parse at all
            assert_scim_error(response, 400, "invalidSyntax")
    assert count(middleware, Member) == 0


_METHODS = st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "delete", "GET", "", 7, None])
_PATHS = st.sampled_from(
    [
        "/Users",
        "/Groups",
        "/Users/bulkId:a",
        "/Groups/bulkId:b",
        "/Users/bulkId:",
        "/Users/{ada}",
        "/Groups/{eng}",
        "/Users/{evil}",
        "/Groups/../Users",
        "Users",
        "/Users/.search",
        "/Bulk",
        "",
        None,
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(["bulkId:a", "bulkId:b", "bulkId:zz", "{ada}", "{evil}"]),
    st.text(max_size=8),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["value", "members", "display", "op", "path"]), inner)
    ),
    max_leaves=8,
)
_DATA = st.one_of(
    _VALUES,
    st.sampled_from(["user", "group", "patch"]),
)
_OPERATIONS = st.lists(
    st.fixed_dictionaries(
        {"method": _METHODS, "path": _PATHS},
        optional={
            "bulkId": st.sampled_from(["a", "b", "c", "", 3]),
            "version": st.sampled_from(['W/"1"', "*", 1]),
            "data": _DATA,
        },
    ),
    max_size=5,
)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=_OPERATIONS, fail_on_errors=st.sampled_from([None, 1, 2]))
def test_any_job_gets_an_answer_per_operation_and_never_reaches_another_workspace(
    scim: ScimClient, middleware: Any, operations: list[dict[str, Any]], fail_on_errors: Any
):
    if not hasattr(middleware, "_bulk_world"):
        ada = scim.post("/Users", okta_user("ada@acme.test")).json["id"]
        eng = scim.post("/Groups", {"displayName": "Eng", "members": [{"value": ada}]}).json["id"]
        _, evil_token = middleware.workspaces.create(
            "evil", name="Evil", plan="plus", owner_email="owner@evil.test"
        )
        middleware.workspaces.enable("evil", scim=True)
        evil = ScimClient(middleware, evil_token).post("/Users", okta_user("x@evil.test")).json
        middleware._bulk_world = {"ada": ada, "eng": eng, "evil": evil["id"]}
    ids = middleware._bulk_world
    bodies = {
        "user": okta_user("new@acme.test"),
        "group": {"displayName": "New", "members": [{"value": "bulkId:a"}]},
        "patch": {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:a"}]}],
        },
    }

    def filled(value: Any) -> Any:
        if isinstance(value, str):
            if value in bodies:
                return bodies[value]
            for name, known in ids.items():
                value = value.replace("{" + name + "}", known)
            return value
        if isinstance(value, list):
            return [filled(v) for v in value]
        if isinstance(value, dict):
            return {k: filled(v) for k, v in value.items()}
        return value

    job = [filled(op) for op in operations]
    extra = {} if fail_on_errors is None else {"failOnErrors": fail_on_errors}
    response = scim.post("/Bulk", bulk(*job, **extra), status="*")
    assert response.status_int in (200, 400), response.text
    if response.status_int == 400:  # only a bulkId declared twice refuses the whole job
        assert_scim_error(response, 400, "invalidValue")
        return
    entries = response.json["Operations"]
    errors = [e for e in entries if int(e["status"]) >= 400]
    assert len(entries) == len(job) or (fail_on_errors and len(errors) == fail_on_errors)
    for entry in entries:
        assert entry["status"] in {"200", "201", "204", "400", "404", "405", "409", "412"}, entry
        if int(entry["status"]) >= 400:
            assert entry["response"]["status"] == entry["status"]
            assert entry["response"]["detail"]
            if entry["status"] == "400":
                assert entry["response"]["scimType"]
    # The other workspace's user is never touched.
    evil_user = ScimClient(middleware, middleware.workspaces.rotate_token("evil")).get(
        f"/Users/{ids['evil']}"
    )
    assert evil_user.json["userName"] == "x@evil.test"
    assert evil_user.json["meta"]["version"] == 'W/"1"'


def test_a_refused_operation_is_logged_as_a_refused_write(scim: ScimClient, caplog):
    scim.post("/Users", okta_user("ada@acme.test"))
    with caplog.at_level(logging.INFO, logger="webwork_sso_middleware"):
        ops = run(scim, bulk(post_user("a", "ada@acme.test"), post_user("b", "bob@acme.test")))
    assert statuses(ops) == ["409", "201"]
    refused = [r for r in caplog.records if getattr(r, "event", None) == "scim.write_refused"]
    assert [(r.getMessage().split(" refused")[0], r.reason, r.workspace) for r in refused] == [
        ("SCIM POST /Users", "uniqueness", "acme")
    ]
