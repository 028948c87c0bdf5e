"""ServiceProviderConfig, ResourceTypes and Schemas (RFC 7644 section 4)."""

from __future__ import annotations

from .conftest import ScimClient


def test_service_provider_config_advertises_what_we_do(scim: ScimClient, middleware):
    config = scim.get("/ServiceProviderConfig").json
    assert config["patch"]["supported"] is True
    assert config["bulk"] == {
        "supported": True,
        "maxOperations": 1000,
        "maxPayloadSize": middleware.settings.max_body_bytes,
    }
    assert config["filter"] == {
        "supported": True,
        "maxResults": middleware.settings.scim_max_results,
    }
    assert config["etag"]["supported"] is True
    assert config["sort"]["supported"] is True
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    assert config["meta"]["location"] == "https://tracker.example.com/scim/v2/ServiceProviderConfig"


def test_resource_types_list_and_single(scim: ScimClient):
    listing = scim.get("/ResourceTypes").json
    assert listing["totalResults"] == 2
    by_id = {rt["id"]: rt for rt in listing["Resources"]}
    assert by_id["User"]["endpoint"] == "/Users"
    assert by_id["User"]["schemaExtensions"] == [
        {"schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "required": False}
    ]
    assert scim.get("/ResourceTypes/Group").json["schema"] == (
        "urn:ietf:params:scim:schemas:core:2.0:Group"
    )
    assert scim.get("/ResourceTypes/Nope", status=404).json["status"] == "404"


def test_schemas_describe_user_enterprise_and_group(scim: ScimClient):
    listing = scim.get("/Schemas").json
    ids = {s["id"] for s in listing["Resources"]}
    assert ids == {
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "urn:ietf:params:scim:schemas:core:2.0:Group",
    }
    user = scim.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").json
    attrs = {a["name"]: a for a in user["attributes"]}
    assert attrs["userName"]["uniqueness"] == "server" and attrs["userName"]["required"] is True
    assert attrs["password"]["returned"] == "never"
    assert attrs["groups"]["mutability"] == "readOnly"
    emails = {s["name"] for s in attrs["emails"]["subAttributes"]}
    assert emails == {"value", "display", "type", "primary"}


def test_discovery_writes_are_405(scim: ScimClient):
    for path in ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert scim.send(method, path, {}, status=405).json["status"] == "405"
