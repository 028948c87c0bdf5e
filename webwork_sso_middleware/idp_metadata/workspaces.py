"""Workspaces with their IdP: the store's Workspaces, plus configuring the IdP from metadata.

``Workspaces`` is the Python API behind the CLI, the settings page and ``SSOMiddleware.workspaces``.
Setting the IdP fetches (with the SSRF rules) and parses metadata, which the store must not do,
so those two methods live here, one floor up, and hand the store values it only persists.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import domains as domain_rules
from ..errors import ConfigurationError, MetadataError, NotFound
from ..store import identity_providers
from ..store import workspaces as workspace_store
from ..store.db import Database, UnitOfWork
from ..store.models import Workspace, utcnow
from . import addresses
from . import parsing as metadata
from .fetching import Fetch
from .fetching import fetch as fetch_metadata
from .identity_providers import IdPInfo, copy_of, stored_summary


class Workspaces(workspace_store.Workspaces):
    """Create and configure workspaces and their IdP. Every method is one transaction."""

    def __init__(
        self,
        database: Database,
        *,
        fetch: Fetch = fetch_metadata,
        resolver: domain_rules.TxtResolver | None = None,
        credentials_changed: Callable[[], None] = lambda: None,
        domains_changed: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(
            database,
            resolver=resolver,
            credentials_changed=credentials_changed,
            domains_changed=domains_changed,
        )
        self.fetch = fetch  # how set_idp gets metadata from a URL (replaceable in tests)

    # -- the IdP ---------------------------------------------------------------------------------

    def set_idp(
        self,
        slug: str,
        *,
        metadata_url: str | None = None,
        metadata_xml: str | None = None,
        allow_idp_initiated: bool | None = None,
        actor: str = "api",
    ) -> IdPInfo:
        """Configure the workspace's SAML IdP from its metadata URL or pasted metadata XML.

        A URL is fetched now, and both must parse as the metadata of one IdP, else
        :class:`MetadataError` and nothing changes. With neither, only ``allow_idp_initiated``
        of an IdP already set is changed.
        """
        if metadata_url is not None and metadata_xml is not None:
            raise ConfigurationError("idp", "give a metadata URL or metadata XML, not both")
        if metadata_url is None and metadata_xml is None:
            if allow_idp_initiated is None:
                raise ConfigurationError("idp", "give a metadata URL or metadata XML")
            return self._set_allow_idp_initiated(slug, allow_idp_initiated, actor)
        workspace = self.get(slug)  # an unknown slug fails before any network traffic
        fetched_at = utcnow()
        if metadata_url is not None:
            metadata_url = metadata_url.strip()
            if len(metadata_url) > identity_providers.MAX_METADATA_URL:
                raise MetadataError(
                    f"the URL is longer than {identity_providers.MAX_METADATA_URL} characters"
                )
            addresses.check_url(metadata_url)  # the rule holds whatever fetch does
            # Outside any transaction. The site's fetcher refuses internal addresses unless the
            # operator allowed the host (MetadataFetcher, settings.metadata_allowed_hosts).
            metadata_xml = self.fetch(metadata_url)
            fetched_at = utcnow()
        assert metadata_xml is not None
        # What the site fetched is never quoted back: the URL may point anywhere.
        parsed = metadata.parse(metadata_xml, echo=metadata_url is None)
        if parsed.expired(fetched_at):
            assert parsed.valid_until is not None
            if metadata_url is not None:
                raise MetadataError(
                    "the metadata at that URL has expired (its validUntil is in"
                    " the past); the IdP must publish a current copy"
                )
            raise MetadataError(
                f"the metadata expired at {parsed.valid_until:%Y-%m-%d %H:%M} UTC (validUntil);"
                " get a current copy from the IdP"
            )

        def work(unit: UnitOfWork) -> IdPInfo:
            current = _load(unit, slug)
            if current.id != workspace.id:  # deleted and re-created meanwhile
                raise NotFound("workspace", slug)
            before = stored_summary(identity_providers.find(unit, current.id, for_update=True))
            # Pasted metadata has nowhere to be refreshed from.
            refresh_after = metadata.next_refresh(parsed, fetched_at) if metadata_url else None
            row = identity_providers.configure(
                unit, current.id, copy_of(parsed), before=before, metadata_url=metadata_url,
                fetched_at=fetched_at, refresh_after=refresh_after,
                allow_idp_initiated=allow_idp_initiated, actor=actor,
            )  # fmt: skip
            return IdPInfo.of(row, parsed)

        return self.database.run(work)

    def _set_allow_idp_initiated(self, slug: str, allow: bool, actor: str) -> IdPInfo:
        def work(unit: UnitOfWork) -> IdPInfo:
            workspace = _load(unit, slug)
            row = identity_providers.set_allow_idp_initiated(unit, workspace.id, allow, actor=actor)
            if row is None:
                raise ConfigurationError(
                    "idp", f"workspace {workspace.slug!r} has no IdP yet; give its metadata first"
                )
            return IdPInfo.of(row)

        return self.database.run(work)

    def idp(self, slug: str) -> IdPInfo | None:
        """The workspace's IdP, or None when none is set."""

        def work(unit: UnitOfWork) -> IdPInfo | None:
            row = identity_providers.find(unit, _load(unit, slug).id)
            return IdPInfo.of(row) if row is not None else None

        return self.database.run(work, write=False)


def _load(unit: UnitOfWork, slug: str) -> Workspace:
    workspace = workspace_store.find_by_slug(unit, slug)
    if workspace is None:
        raise NotFound("workspace", slug)
    return workspace
