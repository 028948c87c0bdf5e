"""The public URLs of a workspace, built from the site's base URL (INTERFACE.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

SCIM_PREFIX = "/scim/v2"
SAML_PREFIX = "/saml"


@dataclasses.dataclass(frozen=True)
class WorkspaceUrls:
    base_url: str
    slug: str

    @property
    def scim_base_url(self) -> str:
        # One SCIM base for the site: the bearer token names the workspace.
        return f"{self.base_url}{SCIM_PREFIX}"

    @property
    def sp_entity_id(self) -> str:
        return f"{self.base_url}{SAML_PREFIX}/{self.slug}/metadata"

    @property
    def sp_metadata_url(self) -> str:
        return self.sp_entity_id

    @property
    def acs_url(self) -> str:
        return f"{self.base_url}{SAML_PREFIX}/{self.slug}/acs"

    @property
    def login_url(self) -> str:
        return f"{self.base_url}{SAML_PREFIX}/{self.slug}/login"

    @property
    def settings_url(self) -> str:
        return f"{self.base_url}{SAML_PREFIX}/{self.slug}/settings"

    def as_dict(self) -> dict[str, Any]:
        return {
            "scim_base_url": self.scim_base_url,
            "sp_entity_id": self.sp_entity_id,
            "acs_url": self.acs_url,
            "sp_metadata_url": self.sp_metadata_url,
            "login_url": self.login_url,
            "settings_url": self.settings_url,
        }
