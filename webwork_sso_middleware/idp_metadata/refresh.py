"""A workspace's SAML IdP: its metadata, the last good copy of it, and keeping that fresh.

Metadata configured by URL is refreshed by :func:`refresh_if_due`, which the SP calls before it
uses the metadata. The network fetch happens outside any transaction; a short write transaction
first *claims* the refresh (moves ``refresh_after`` forward), so of many workers that find the
metadata due at once, only one fetches.

A failed refresh keeps the last good copy, records the error on the row and in the audit log,
and is retried after :data:`RETRY_AFTER_FAILURE`. That holds even when the stored copy is past
its ``validUntil``: refusing every sign-in because the IdP's metadata endpoint is down would be
a worse outage than trusting keys the IdP itself published, over https, a little longer. The
expiry is stated in the recorded error, so the owner sees it in the settings diagnostics.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ..errors import MetadataError
from ..logs import package_logger
from ..saml import metadata
from . import audit
from .db import Database
from .models import IdentityProvider, utcnow

log = package_logger(__name__)

# How long a claimed refresh is left to its worker before another may try: well above a
# fetch's worst case (two timeouts), so a worker that died only delays the refresh.
REFRESH_CLAIM = dt.timedelta(minutes=5)
# After a failure, wait this long before fetching again: a dead IdP is not fetched per login.
RETRY_AFTER_FAILURE = dt.timedelta(minutes=15)
REFRESH_ACTOR = "system:metadata-refresh"
MAX_METADATA_URL = 2048  # the identity_providers.metadata_url column

Fetch = Callable[[str], str]


# -- the refresh, across transactions ---------------------------------------------------------


def refresh_if_due(database: Database, workspace_id: int, *, now: dt.datetime | None = None,
                   fetch: Fetch = metadata.fetch) -> None:
    """Refresh the workspace's metadata from its URL when due; never raises for the IdP's faults.

    Cheap when not due (one read). The SP calls this before it uses the metadata.
    """
    now = now or utcnow()
    if not database.run(lambda session: is_due(session, workspace_id, now), write=False):
        return
    claim = database.run(lambda session: claim_refresh(session, workspace_id, now))
    if claim is None:
        return  # another worker is on it, or was just before us
    try:
        # No transaction open meanwhile; nothing of what was fetched is quoted in the reason.
        parsed = metadata.parse(fetch(claim.metadata_url), echo=False)
        if parsed.expired(now):
            raise MetadataError(
                "the IdP serves metadata that has expired (its validUntil has passed)")
    except MetadataError as error:
        reason = error.reason
    except Exception as error:  # a bug or an odd failure must not break sign-in either
        log.exception("refreshing the IdP metadata of workspace %s failed", workspace_id)
        reason = f"{type(error).__name__}: {error}"
    else:
        database.run(lambda session: store_refreshed(session, claim, parsed, now))
        return
    log.warning("IdP metadata refresh of workspace %s from %r failed: %r",
                workspace_id, claim.metadata_url, reason)  # %r: no line breaks in the log
    database.run(lambda session: record_refresh_failure(session, claim, reason, now))

