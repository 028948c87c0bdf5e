"""A workspace's IdP as the site sees it (IdPInfo)."""

from __future__ import annotations

from webwork_sso_middleware.idp_metadata.workspaces import Workspaces

from .metadata_samples import (
    OKTA_ENTITY_ID,
    certificate,
    fingerprint,
)
from .support import URL


def test_the_document_form_is_json_ready(workspaces: Workspaces) -> None:
    info = workspaces.set_idp("acme", metadata_url=URL)

    document = info.as_document()

    assert document["entity_id"] == OKTA_ENTITY_ID and document["metadata_url"] == URL
    assert set(document["sso_urls"]) == {"HTTP-POST", "HTTP-Redirect"}
    assert document["certificates"][0]["sha256_fingerprint"] == fingerprint(certificate("old"))
    assert document["fetched_at"].endswith("Z") and document["refresh_after"].endswith("Z")
