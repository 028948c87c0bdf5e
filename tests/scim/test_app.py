"""Routing, authentication, the error format and request limits of the SCIM app."""

from __future__ import annotations

import json

import pytest
from webtest import TestApp

from webwork_sso_middleware import SSOMiddleware

from .conftest import ScimClient, okta_user

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def assert_scim_error(response, status: int, scim_type: str | None = None) -> dict:
    assert response.status_int == status
    assert response.content_type == "application/scim+json"
    body = response.json
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)  # a string, as RFC 7644 section 3.12 says
    assert body["detail"]
    assert body.get("scimType") == scim_type
    assert "Traceback" not in response.text
    return body


def test_bearer_token_and_okta_header_mode_both_authenticate(middleware, token):
    app = TestApp(middleware)
    bearer = app.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})
    okta_mode = app.get("/scim/v2/Users", headers={"Authorization": token})
    assert bearer.json["totalResults"] == okta_mode.json["totalResults"] == 0


@pytest.mark.parametrize(
    "header", [None, "", "Bearer ", "Bearer wrong", "Basic dXNlcjpwYXNz", "x" * 600]
)
def test_missing_or_wrong_token_is_401(middleware, token, header):
    app = TestApp(middleware)
    headers = {"Authorization": header} if header is not None else {}
    response = app.get("/scim/v2/Users", headers=headers, status=401)
    assert_scim_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_rotated_token_stops_working_at_once(middleware, token):
    app = TestApp(middleware)
    new_token = middleware.workspaces.rotate_token("acme")
    app.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}, status=401)
    app.get("/scim/v2/Users", headers={"Authorization": f"Bearer {new_token}"}, status=200)


def test_free_plan_and_switched_off_scim_are_403(middleware, token):
    app = TestApp(middleware)
    headers = {"Authorization": f"Bearer {token}"}
    middleware.workspaces.disable("acme", scim=True)
    body = assert_scim_error(app.get("/scim/v2/Users", headers=headers, status=403), 403)
    assert "switched off" in body["detail"]
    middleware.workspaces.enable("acme", scim=True)
    middleware.workspaces.set_plan("acme", "free")
    body = assert_scim_error(app.get("/scim/v2/Users", headers=headers, status=403), 403)
    assert "Plus or Premium" in body["detail"]


def test_free_workspace_token_never_reaches_data(middleware):
    _, token = middleware.workspaces.create(
        "freebie", name="Free", plan="free", owner_email="o@free.test"
    )
    app = TestApp(middleware)
    app.post(
        "/scim/v2/Users",
        json.dumps(okta_user("a@free.test")),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        status=403,
    )


def test_unknown_path_is_404_and_wrong_method_is_405(scim: ScimClient):
    assert_scim_error(scim.get("/Nope", status=404), 404)
    response = scim.send("DELETE", "/ServiceProviderConfig", {}, status=405)
    assert_scim_error(response, 405)
    assert "GET" in response.headers["Allow"]
    assert_scim_error(scim.send("POST", "/Schemas", {}, status=405), 405)
    assert_scim_error(scim.send("PUT", "/Users", {}, status=405), 405)


def test_me_is_not_implemented(scim: ScimClient):
    assert_scim_error(scim.get("/Me", status=501), 501)


@pytest.mark.parametrize("raw", [b"", b"not json", b"{", b'{"userName": NaN}', b"[" * 100000])
def test_bad_json_is_400_invalid_syntax(scim: ScimClient, raw: bytes):
    response = scim.app.post(
        "/scim/v2/Users",
        raw,
        headers={**scim.headers, "Content-Type": "application/scim+json"},
        expect_errors=True,
    )
    assert_scim_error(response, 400, "invalidSyntax")


def test_body_that_is_not_an_object_is_400(scim: ScimClient):
    assert_scim_error(scim.post("/Users", ["a"], status=400), 400, "invalidSyntax")


def test_oversized_body_is_413_and_writes_nothing(scim: ScimClient):
    huge = okta_user("big@acme.test", displayName="x" * 2_000_000)
    assert_scim_error(scim.post("/Users", huge, status=413), 413)
    assert scim.get("/Users").json["totalResults"] == 0


def test_plain_application_json_is_accepted_and_scim_json_answered(scim: ScimClient):
    response = scim.app.post(
        "/scim/v2/Users",
        json.dumps(okta_user("j@acme.test")),
        headers={**scim.headers, "Content-Type": "application/json"},
        status=201,
    )
    assert response.content_type == "application/scim+json"


def test_passthrough_does_not_touch_scim_and_strips_forged_identity(middleware):
    seen = {}

    def host(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = SSOMiddleware(
        host,
        database_url=middleware.settings.database_url,
        secret_key="k-padded-to-thirty-two-bytes-at-least",
    )
    try:
        TestApp(wrapped).get(
            "/anything",
            extra_environ={"REMOTE_USER": "mallory@evil.test", "webwork_sso.member": object()},
        )
    finally:
        wrapped.close()
    assert seen["PATH_INFO"] == "/anything"
    assert "REMOTE_USER" not in seen and "webwork_sso.member" not in seen


def test_scim_prefix_lookalike_goes_to_host(middleware):
    assert TestApp(middleware).get("/scim/v2x/Users").text == "host app"
