"""Keeping a workspace's IdP metadata fresh from its URL, and the last good copy on failure.

Metadata configured by URL is refreshed by :func:`refresh_if_due`, which the SP calls before it
uses the metadata. The network fetch happens outside any transaction; a short write transaction
first *claims* the refresh (store/identity_providers.py), so of many workers that find the
metadata due at once, only one fetches.

A failed refresh keeps the last good copy, records the error on the row and in the audit log,
and is retried after ``RETRY_AFTER_FAILURE``. That holds even when the stored copy is past
its ``validUntil``: refusing every sign-in because the IdP's metadata endpoint is down would be
a worse outage than trusting keys the IdP itself published, over https, a little longer. The
expiry is stated in the recorded error, so the owner sees it in the settings diagnostics.
"""

from __future__ import annotations

import datetime as dt

from ..errors import MetadataError
from ..logs import package_logger
from ..metrics import NO_METRICS, Metrics
from ..store.db import Database, UnitOfWork
from ..store.identity_providers import (
    RefreshClaim,
    claim_refresh,
    find,
    is_due,
    record_refresh_failure,
    still_current,
    store_refreshed,
)
from ..store.models import utcnow
from . import parsing as metadata
from .fetching import Fetch
from .fetching import fetch as fetch_metadata
from .identity_providers import IdPInfo, copy_of, stored_summary

log = package_logger(__name__)


def refresh_if_due(
    database: Database,
    workspace_id: int,
    *,
    now: dt.datetime | None = None,
    fetch: Fetch = fetch_metadata,
    metrics: Metrics = NO_METRICS,
) -> None:
    """Refresh the workspace's metadata from its URL when due; never raises for the IdP's faults.

    Cheap when not due (one read). The SP calls this before it uses the metadata. ``metrics``
    counts each refresh this worker made, by result.
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
                "the IdP serves metadata that has expired (its validUntil has passed)"
            )
    except MetadataError as error:
        reason = error.reason
    except Exception as error:  # a bug or an odd failure must not break sign-in either
        log.exception(
            "refreshing the IdP metadata of workspace %s failed",
            workspace_id,
            extra={"event": "metadata.refresh_failed", "reason": "error"},
        )
        reason = f"{type(error).__name__}: {error}"
    else:
        database.run(lambda session: _keep(session, claim, parsed, now))
        metrics.metadata_refresh("success")
        log.info(
            "IdP metadata of workspace %s refreshed from %r",
            workspace_id,
            claim.metadata_url,
            extra={"event": "metadata.refreshed"},
        )
        return
    metrics.metadata_refresh("failure")
    log.warning(
        "IdP metadata refresh of workspace %s from %r failed: %r",
        workspace_id,
        claim.metadata_url,
        reason,
        extra={"event": "metadata.refresh_failed", "reason": "unusable_metadata"},
    )  # %r: no line breaks in the log
    database.run(lambda session: record_refresh_failure(session, claim, reason, now))


def _keep(
    unit: UnitOfWork, claim: RefreshClaim, parsed: metadata.IdPMetadata, now: dt.datetime
) -> bool:
    before = stored_summary(still_current(unit, claim))
    return store_refreshed(
        unit,
        claim,
        copy_of(parsed),
        now,
        refresh_after=metadata.next_refresh(parsed, now),
        before=before,
    )


class IdentityProviders:
    """The IdP of each workspace, by workspace id: what the SP uses. A call, a transaction."""

    def __init__(self, database: Database, *, fetch: Fetch = fetch_metadata) -> None:
        self.database = database
        self.fetch = fetch

    def get(self, workspace_id: int) -> IdPInfo | None:
        def work(unit: UnitOfWork) -> IdPInfo | None:
            row = find(unit, workspace_id)
            return IdPInfo.of(row) if row is not None else None

        return self.database.run(work, write=False)

    def refresh_if_due(self, workspace_id: int, *, now: dt.datetime | None = None) -> None:
        refresh_if_due(self.database, workspace_id, now=now, fetch=self.fetch)

    def current(self, workspace_id: int, *, now: dt.datetime | None = None) -> IdPInfo | None:
        """The metadata to use now: refreshed first when due (a failure keeps the last good)."""
        self.refresh_if_due(workspace_id, now=now)
        return self.get(workspace_id)
