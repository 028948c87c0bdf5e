"""Discovery documents (RFC 7644 section 4): ServiceProviderConfig, ResourceTypes, Schemas."""

from __future__ import annotations

from typing import Any

from .schemas import LIST_RESPONSE, RESOURCE_TYPES, SCHEMAS, SERVICE_PROVIDER_CONFIG_SCHEMA

DOCUMENTATION_URI = "https://github.com/webwork/webwork-sso-middleware#readme"


def service_provider_config(
    base: str, *, max_results: int, bulk_max_operations: int = 0, bulk_max_payload_size: int = 0
) -> dict[str, Any]:
    """The ServiceProviderConfig; bulk is announced as supported with its limits (both
    positive), else as unsupported."""
    bulk = bulk_max_operations > 0 and bulk_max_payload_size > 0
    return {
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "documentationUri": DOCUMENTATION_URI,
        "patch": {"supported": True},
        "bulk": {
            "supported": bulk,
            "maxOperations": bulk_max_operations if bulk else 0,
            "maxPayloadSize": bulk_max_payload_size if bulk else 0,
        },
        "filter": {"supported": True, "maxResults": max_results},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "The workspace's SCIM API token, as 'Authorization: Bearer <token>'"
                " (or Okta's header mode, 'Authorization: <token>').",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }


def resource_types(base: str) -> list[dict[str, Any]]:
    return [rt.to_scim(f"{base}/ResourceTypes/{rt.name}") for rt in RESOURCE_TYPES]


def schemas(base: str) -> list[dict[str, Any]]:
    return [schema.to_scim(f"{base}/Schemas/{schema.id}") for schema in SCHEMAS]


def list_response(
    resources: list[dict[str, Any]], *, total: int | None = None, start_index: int = 1
) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": len(resources) if total is None else total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }
