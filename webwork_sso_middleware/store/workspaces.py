"""Workspaces and their SCIM tokens: the Python API behind the CLI and the settings page."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ConfigurationError, Conflict, MetadataError, NotFound, PlanError
from ..saml import metadata
from . import identity_providers
from .db import Database
from .identity_providers import IdPInfo
from .models import PLANS, ScimToken, Workspace, WorkspaceDomain, utcnow

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Slugs that would read as a page of their own under /saml/.
RESERVED_SLUGS = frozenset({"login", "logout", "static", "metadata", "acs", "settings"})
DOMAIN_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
TOKEN_PREFIX = "wwsso_"


@dataclasses.dataclass(frozen=True)
class WorkspaceInfo:
    """A snapshot of a workspace's settings, safe to hand outside a transaction."""

    id: int
    slug: str
    name: str
    plan: str
    owner_email: str
    scim_enabled: bool
    sso_enabled: bool
    domains: tuple[str, ...]

    @classmethod
    def of(cls, workspace: Workspace) -> WorkspaceInfo:
        return cls(
            id=workspace.id,
            slug=workspace.slug,
            name=workspace.name,
            plan=workspace.plan,
            owner_email=workspace.owner_email,
            scim_enabled=workspace.scim_enabled,
            sso_enabled=workspace.sso_enabled,
            domains=tuple(d.domain for d in workspace.domains),
        )


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class ScimCredential:
    """What a live SCIM token says about its bearer."""

    workspace_id: int
    workspace_slug: str
    plan: str
    scim_enabled: bool
    token_hint: str


_CREDENTIAL_QUERY = (
    select(
        ScimToken.token_hash,
        ScimToken.hint,
        Workspace.id,
        Workspace.slug,
        Workspace.plan,
        Workspace.scim_enabled,
    )
    .join(Workspace, Workspace.id == ScimToken.workspace_id)
    .where(ScimToken.token_hash == bindparam("digest"), ScimToken.revoked_at.is_(None))
)


def find_credential(connection: Connection, token: str) -> ScimCredential | None:
    """The workspace a live SCIM token belongs to, or None. Runs on every SCIM request."""
    digest = hash_token(token)
    row = connection.execute(_CREDENTIAL_QUERY, {"digest": digest}).first()
    # The index finds the row by a hash an attacker cannot steer; the comparison that
    # decides is still constant-time.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return ScimCredential(row.id, row.slug, row.plan, row.scim_enabled, row.hint)


class Workspaces:
    """Create and configure workspaces. Every method is one transaction."""

    def __init__(
        self, database: Database, *, fetch: identity_providers.Fetch = metadata.fetch
    ) -> None:
        self.database = database
        self.fetch = fetch  # how set_idp gets metadata from a URL (replaceable in tests)

    def create(
        self, slug: str, *, name: str, plan: str = "free", owner_email: str
    ) -> tuple[WorkspaceInfo, str]:
        """Create a workspace and its first SCIM token; the token is returned only here."""
        slug = slug.strip().lower()
        if not SLUG_PATTERN.match(slug) or slug in RESERVED_SLUGS:
            raise ConfigurationError(
                "slug", f"{slug!r} is not a valid slug (lower-case letters, digits and dashes)"
            )
        _check_plan(plan)
        owner_email = _check_email(owner_email)
        if not name.strip():
            raise ConfigurationError("name", "must not be empty")

        def work(session: Session) -> tuple[WorkspaceInfo, str]:
            workspace = Workspace(slug=slug, name=name.strip(), plan=plan, owner_email=owner_email)
            session.add(workspace)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict("workspace", "slug", slug) from None
            token = _issue_token(session, workspace)
            return WorkspaceInfo.of(workspace), token

        return self.database.run(work)

    def get(self, slug: str) -> WorkspaceInfo:
        return self.database.run(lambda s: WorkspaceInfo.of(_load(s, slug)), write=False)

    def list_workspaces(self) -> list[WorkspaceInfo]:
        def work(session: Session) -> list[WorkspaceInfo]:
            rows = session.scalars(select(Workspace).order_by(Workspace.slug))
            return [WorkspaceInfo.of(w) for w in rows]

        return self.database.run(work, write=False)

    def rotate_token(self, slug: str) -> str:
        """Issue a new SCIM token; every earlier token stops working at once."""

        def work(session: Session) -> str:
            workspace = _load(session, slug)
            now = utcnow()
            for token in session.scalars(
                select(ScimToken).where(
                    ScimToken.workspace_id == workspace.id, ScimToken.revoked_at.is_(None)
                )
            ):
                token.revoked_at = now
            return _issue_token(session, workspace)

        return self.database.run(work)

    def enable(self, slug: str, *, scim: bool = False, sso: bool = False) -> WorkspaceInfo:
        def work(session: Session) -> WorkspaceInfo:
            workspace = _load(session, slug)
            if (scim or sso) and not workspace.sso_available:
                raise PlanError(workspace.slug, workspace.plan, "SSO and SCIM")
            workspace.scim_enabled = workspace.scim_enabled or scim
            workspace.sso_enabled = workspace.sso_enabled or sso
            return WorkspaceInfo.of(workspace)

        return self.database.run(work)

    def disable(self, slug: str, *, scim: bool = False, sso: bool = False) -> WorkspaceInfo:
        def work(session: Session) -> WorkspaceInfo:
            workspace = _load(session, slug)
            workspace.scim_enabled = workspace.scim_enabled and not scim
            workspace.sso_enabled = workspace.sso_enabled and not sso
            return WorkspaceInfo.of(workspace)

        return self.database.run(work)

    def set_plan(self, slug: str, plan: str) -> WorkspaceInfo:
        """Change the plan; moving to free switches SCIM and SSO off."""
        _check_plan(plan)

        def work(session: Session) -> WorkspaceInfo:
            workspace = _load(session, slug)
            workspace.plan = plan
            if not workspace.sso_available:
                workspace.scim_enabled = workspace.sso_enabled = False
            return WorkspaceInfo.of(workspace)

        return self.database.run(work)

    def set_domains(self, slug: str, domains: Iterable[str]) -> WorkspaceInfo:
        """Replace the email domains whose first-time users sign in through this workspace."""
        cleaned = sorted({_check_domain(d) for d in domains})

        def work(session: Session) -> WorkspaceInfo:
            workspace = _load(session, slug)
            workspace.domains = [WorkspaceDomain(domain=d) for d in cleaned]
            session.flush()
            return WorkspaceInfo.of(workspace)

        return self.database.run(work)

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
            metadata.check_url(metadata_url)  # the rule holds whatever fetch does
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
                raise MetadataError("the metadata at that URL has expired (its validUntil is in"
                                    " the past); the IdP must publish a current copy")
            raise MetadataError(
                f"the metadata expired at {parsed.valid_until:%Y-%m-%d %H:%M} UTC (validUntil);"
                " get a current copy from the IdP"
            )

        def work(session: Session) -> IdPInfo:
            current = _load(session, slug)
            if current.id != workspace.id:  # deleted and re-created meanwhile
                raise NotFound("workspace", slug)
            row = identity_providers.configure(
                session, current.id, parsed, metadata_url=metadata_url, fetched_at=fetched_at,
                allow_idp_initiated=allow_idp_initiated, actor=actor,
            )  # fmt: skip
            return IdPInfo.of(row, parsed)

        return self.database.run(work)

    def _set_allow_idp_initiated(self, slug: str, allow: bool, actor: str) -> IdPInfo:
        def work(session: Session) -> IdPInfo:
            workspace = _load(session, slug)
            row = identity_providers.set_allow_idp_initiated(
                session, workspace.id, allow, actor=actor
            )
            if row is None:
                raise ConfigurationError(
                    "idp", f"workspace {workspace.slug!r} has no IdP yet; give its metadata first"
                )
            return IdPInfo.of(row)

        return self.database.run(work)

    def idp(self, slug: str) -> IdPInfo | None:
        """The workspace's IdP, or None when none is set."""

        def work(session: Session) -> IdPInfo | None:
            row = identity_providers.find(session, _load(session, slug).id)
            return IdPInfo.of(row) if row is not None else None

        return self.database.run(work, write=False)


@dataclasses.dataclass(frozen=True)
class TokenSummary:
    """What may be shown of the live SCIM token after it was issued: never the token."""

    hint: str  # its first characters, to tell which token an IdP holds
    created_at: dt.datetime


def live_token(session: Session, workspace_id: int) -> TokenSummary | None:
    row = session.execute(
        select(ScimToken.hint, ScimToken.created_at)
        .where(ScimToken.workspace_id == workspace_id, ScimToken.revoked_at.is_(None))
        .order_by(ScimToken.created_at.desc(), ScimToken.id.desc())
        .limit(1)
    ).first()
    return TokenSummary(row.hint, row.created_at) if row is not None else None


def find_by_slug(session: Session, slug: str) -> Workspace | None:
    return session.scalar(select(Workspace).where(Workspace.slug == slug.strip().lower()))


def _load(session: Session, slug: str) -> Workspace:
    workspace = session.scalar(select(Workspace).where(Workspace.slug == slug.strip().lower()))
    if workspace is None:
        raise NotFound("workspace", slug)
    return workspace


def _issue_token(session: Session, workspace: Workspace) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ScimToken(workspace_id=workspace.id, token_hash=hash_token(token), hint=token[:10])
    )
    return token


def _check_plan(plan: str) -> None:
    if plan not in PLANS:
        raise ConfigurationError("plan", f"{plan!r} is not one of {', '.join(PLANS)}")


def _check_email(email: str) -> str:
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or not DOMAIN_PATTERN.match(domain.lower()):
        raise ConfigurationError("owner_email", f"{email!r} is not an email address")
    return email


def _check_domain(domain: str) -> str:
    cleaned = domain.strip().lower().lstrip("@")
    if not DOMAIN_PATTERN.match(cleaned):
        raise ConfigurationError("domains", f"{domain!r} is not a domain name")
    return cleaned
