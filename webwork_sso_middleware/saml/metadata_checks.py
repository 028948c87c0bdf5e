"""The IdP metadata a sign-in is about to use, refreshed first when due (idp_metadata/refresh.py),
but asked of the database at most once a minute per workspace and worker: refreshes are due
hours apart, and the sign-in steps (login_flow.py) need not pay for the question each time.
"""

from __future__ import annotations

import time

from ..idp_metadata.fetching import MetadataFetcher
from ..idp_metadata.refresh import refresh_if_due
from ..metrics import NO_METRICS, Metrics
from ..store.db import Database
from ..store.workspaces import find_by_slug

# Metadata refreshes are due hours apart: a worker need not ask on every sign-in.
METADATA_CHECK_INTERVAL = 60.0


class MetadataChecks:
    def __init__(
        self,
        database: Database,
        *,
        fetch_metadata: MetadataFetcher,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.database = database
        self.fetch_metadata = fetch_metadata
        self.metrics = metrics
        self._metadata_checked: dict[str, float] = {}  # slug -> monotonic time of the last check

    def refresh_metadata(self, slug: str) -> None:
        """Refresh the IdP metadata when due; asked of the database at most once a minute."""
        now = time.monotonic()
        if (
            self._metadata_checked.get(slug, -METADATA_CHECK_INTERVAL)
            > now - METADATA_CHECK_INTERVAL
        ):
            return
        workspace_id = self.database.run(
            lambda s: w.id if (w := find_by_slug(s, slug)) else None, write=False
        )
        if workspace_id is not None:
            refresh_if_due(
                self.database, workspace_id, fetch=self.fetch_metadata, metrics=self.metrics
            )
        if len(self._metadata_checked) > 10_000:
            self._metadata_checked.clear()
        self._metadata_checked[slug] = now
