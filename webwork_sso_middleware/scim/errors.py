"""SCIM errors (RFC 7644 section 3.12): raised anywhere in the SCIM app, rendered in one place."""

from __future__ import annotations

from typing import Any

from ..errors import WebworkSSOError
from .schemas import ERROR


class ScimError(WebworkSSOError):
    """An error answered to the SCIM client as ``urn:...:Error`` JSON.

    ``scim_type`` is one of RFC 7644's: invalidFilter, tooMany, uniqueness, mutability,
    invalidSyntax, invalidPath, noTarget, invalidValue, invalidVers, sensitive.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}

    def to_scim(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schemas": [ERROR],
            "status": str(self.status),
            "detail": self.detail,
        }
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def invalid_filter(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidFilter")


def invalid_path(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidPath")


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def invalid_syntax(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidSyntax")


def no_target(detail: str) -> ScimError:
    return ScimError(400, detail, "noTarget")


def mutability(detail: str) -> ScimError:
    return ScimError(400, detail, "mutability")


def uniqueness(detail: str) -> ScimError:
    return ScimError(409, detail, "uniqueness")
