"""Workspaces and their SCIM tokens: the Python API behind the CLI and the settings page."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from .. import domains as domain_rules
from ..errors import (
    ConfigurationError,
    Conflict,
    DomainError,
    DomainNotVerified,
    NotFound,
    PlanError,
)
from ..names import canonical_domain
from . import audit, enforcement
from . import domains as domain_store
from . import roles as role_store
from .db import Database, UnitOfWork, note_sessions_ended
from .domains import DomainClaim
from .driver import DriverStatement
from .models import (
    PLANS,
    Member,
    MemberSession,
    ScimToken,
    Workspace,
    utcnow,
)
from .sessions import record_signed_out

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Slugs that would read as a page of their own under /saml/.
RESERVED_SLUGS = frozenset({"login", "logout", "static", "metadata", "acs", "settings"})
DOMAIN_PATTERN = domain_rules.DOMAIN_PATTERN
TOKEN_PREFIX = "wwsso_"

_MEMBER_SESSIONS = cast(Table, MemberSession.__table__)
T = TypeVar("T")


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
    domains: tuple[str, ...]  # claimed, verified or not
    verified_domains: tuple[str, ...] = ()
    domain_claims: tuple[DomainClaim, ...] = ()
    require_sso: bool = False
    break_glass_until: dt.datetime | None = None  # the owner's window, open or past
    # The owner's mappings (store/roles.py): {key: attribute name}, {group: role}.
    attribute_map: Mapping[str, str] = dataclasses.field(default_factory=dict)
    role_map: Mapping[str, str] = dataclasses.field(default_factory=dict)

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
            verified_domains=tuple(d.domain for d in workspace.domains if d.verified_at),
            domain_claims=tuple(domain_store.claim_of(d) for d in workspace.domains),
            require_sso=bool(workspace.require_sso),
            break_glass_until=workspace.break_glass_until,
            attribute_map=role_store.attribute_mapping(workspace),
            role_map=role_store.role_mappings(workspace),
        )

    @property
    def break_glass_open(self) -> bool:
        return self.break_glass_until is not None and self.break_glass_until > utcnow()


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


# Every SCIM request asks this: built once, run on the driver's cursor.
_CREDENTIAL_QUERY = DriverStatement(
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


def find_credential(unit: UnitOfWork, token: str) -> ScimCredential | None:
    """The workspace a live SCIM token belongs to, or None. Runs on every SCIM request."""
    return find_credential_by_digest(unit, hash_token(token))


def find_credential_by_digest(unit: UnitOfWork, digest: str) -> ScimCredential | None:
    """:func:`find_credential` for a token already hashed by :func:`hash_token`."""
    row = _CREDENTIAL_QUERY.first(unit.connection, {"digest": digest})
    if row is None:
        return None
    token_hash, hint, workspace_id, slug, plan, scim_enabled = row
    # The index finds the row by a hash an attacker cannot steer; the comparison that
    # decides is still constant-time.
    if not hmac.compare_digest(token_hash, digest):
        return None
    return ScimCredential(workspace_id, slug, plan, bool(scim_enabled), hint)


class Workspaces:
    """Create and configure workspaces. Every method is one transaction.

    The IdP is configured one floor up (idp_metadata/workspaces.py adds ``set_idp`` and
    ``idp``): that needs fetching and parsing metadata, which the store does not do.
    """

    def __init__(
        self,
        database: Database,
        *,
        resolver: domain_rules.TxtResolver | None = None,
        credentials_changed: Callable[[], None] = lambda: None,
        domains_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.database = database
        self.resolver = resolver or domain_rules.TxtResolver()  # how verify_domain asks DNS
        # Called once a change has ended, committed or not, so that what this process's SCIM
        # remembers is forgotten at once: a change to what a SCIM token opens (a new token,
        # SCIM or the plan; scim/credentials.py), or to which workspace verified a domain
        # (scim/verified_domains.py).
        self.credentials_changed = credentials_changed
        self.domains_changed = domains_changed

    def _changing_credentials(self, work: Callable[[UnitOfWork], T]) -> T:
        return self._changing(work, self.credentials_changed)

    def _changing_domains(self, work: Callable[[UnitOfWork], T]) -> T:
        return self._changing(work, self.domains_changed)

    def _changing(self, work: Callable[[UnitOfWork], T], changed: Callable[[], None]) -> T:
        """Run ``work`` and call ``changed`` however it ends: a commit whose answer was lost
        (the connection dropped as it went out) raises, yet may have committed."""
        try:
            return self.database.run(work)
        finally:
            changed()

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

        def work(unit: UnitOfWork) -> tuple[WorkspaceInfo, str]:
            workspace = Workspace(slug=slug, name=name.strip(), plan=plan, owner_email=owner_email)
            unit.session.add(workspace)
            try:
                unit.session.flush()
            except IntegrityError:
                raise Conflict("workspace", "slug", slug) from None
            token = _issue_token(unit, workspace)
            return WorkspaceInfo.of(workspace), token

        return self.database.run(work)

    def get(self, slug: str) -> WorkspaceInfo:
        return self.database.run(lambda unit: WorkspaceInfo.of(_load(unit, slug)), write=False)

    def list_workspaces(self) -> list[WorkspaceInfo]:
        def work(unit: UnitOfWork) -> list[WorkspaceInfo]:
            rows = unit.session.scalars(select(Workspace).order_by(Workspace.slug))
            return [WorkspaceInfo.of(w) for w in rows]

        return self.database.run(work, write=False)

    def rotate_token(self, slug: str) -> str:
        """Issue a new SCIM token; every earlier token is revoked at once. A worker that
        remembers one (scim/credentials.py) forgets it within its bound; this object's own
        process at once, through ``credentials_changed``."""

        def work(unit: UnitOfWork) -> str:
            workspace = _load(unit, slug)
            now = utcnow()
            for token in unit.session.scalars(
                select(ScimToken).where(
                    ScimToken.workspace_id == workspace.id, ScimToken.revoked_at.is_(None)
                )
            ):
                token.revoked_at = now
            return _issue_token(unit, workspace)

        return self._changing_credentials(work)

    def enable(self, slug: str, *, scim: bool = False, sso: bool = False) -> WorkspaceInfo:
        def work(unit: UnitOfWork) -> WorkspaceInfo:
            workspace = _load(unit, slug)
            if (scim or sso) and not workspace.sso_available:
                raise PlanError(workspace.slug, workspace.plan, "SSO and SCIM")
            workspace.scim_enabled = workspace.scim_enabled or scim
            workspace.sso_enabled = workspace.sso_enabled or sso
            return WorkspaceInfo.of(workspace)

        return self._changing_credentials(work)

    def disable(
        self, slug: str, *, scim: bool = False, sso: bool = False, source: str = "cli"
    ) -> WorkspaceInfo:
        """Switch SCIM and/or SSO off. SSO off ends every member's session in the workspace,
        for good: switching it back on later revives none of them; each member signed out has
        a member.signed_out event from ``source`` (the settings page says "settings").

        SCIM off ends none: it stops the IdP's provisioning, not its say on who signed in, and
        sessions stay bound to the member's state as it was last provisioned.
        """

        def work(unit: UnitOfWork) -> WorkspaceInfo:
            workspace = _load(unit, slug)
            workspace.scim_enabled = workspace.scim_enabled and not scim
            workspace.sso_enabled = workspace.sso_enabled and not sso
            if sso:
                unit.session.flush()  # the switch first: it waits for sign-ins holding the row
                end_member_sessions(unit, workspace.id, source=source)
            return WorkspaceInfo.of(workspace)

        return self._changing_credentials(work)

    def set_plan(self, slug: str, plan: str, *, source: str = "cli") -> WorkspaceInfo:
        """Change the plan; moving to free switches SCIM and SSO off and ends every member's
        session in the workspace for good (as :meth:`disable` does, with its events)."""
        _check_plan(plan)

        def work(unit: UnitOfWork) -> WorkspaceInfo:
            workspace = _load(unit, slug)
            workspace.plan = plan
            if not workspace.sso_available:
                workspace.scim_enabled = workspace.sso_enabled = False
                unit.session.flush()  # the switch first: it waits for sign-ins holding the row
                end_member_sessions(unit, workspace.id, source=source)
            return WorkspaceInfo.of(workspace)

        return self._changing_credentials(work)

    def set_domains(self, slug: str, domains: Iterable[str]) -> WorkspaceInfo:
        """Claim exactly these email domains. A claim kept keeps its verification; a new one
        is unverified until :meth:`verify_domain`. DomainError for a public mail provider, a
        disposable domain or a malformed name (and nothing changes)."""
        cleaned = sorted({domain_rules.clean(d) for d in domains})

        def work(unit: UnitOfWork) -> WorkspaceInfo:
            workspace = _load(unit, slug)
            domain_store.replace_claims(unit, workspace.id, cleaned)
            unit.session.expire(workspace, ["domains"])
            return WorkspaceInfo.of(workspace)

        return self._changing_domains(work)

    def claim_domain(self, slug: str, domain: str) -> DomainClaim:
        """Add one (unverified) claim; the record to publish comes back with it."""
        cleaned = domain_rules.clean(domain)

        def work(unit: UnitOfWork) -> DomainClaim:
            workspace_id = _load(unit, slug).id
            domain_store.claim(unit, workspace_id, cleaned)
            return _claim_of(unit, workspace_id, cleaned)

        return self.database.run(work)

    def release_domain(self, slug: str, domain: str) -> None:
        """Drop a claim (and its verification). NotFound when the workspace has no such claim."""
        cleaned = canonical_domain(domain.strip().lstrip("@")) or domain

        def work(unit: UnitOfWork) -> None:
            if not domain_store.release(unit, _load(unit, slug).id, cleaned):
                raise NotFound("domain claim", cleaned)

        self._changing_domains(work)

    def domain_claims(self, slug: str) -> list[DomainClaim]:
        return self.database.run(
            lambda unit: domain_store.claims(unit, _load(unit, slug).id), write=False
        )

    def verify_domain(self, slug: str, domain: str, *, by_operator: bool = False) -> DomainClaim:
        """Verify the workspace's claim on ``domain`` (claiming it first if need be).

        By DNS: the TXT record of the claim must be published at ``_webwork-sso.<domain>``,
        else DomainNotVerified, which carries the record to publish. ``by_operator`` records the
        site operator's word instead (the CLI's ``--by-operator``). Either way DomainError when
        another workspace verified the domain: a domain is verified by at most one workspace.
        """
        cleaned = domain_rules.clean(domain)
        claim = self.claim_domain(slug, cleaned)
        if claim.verified:
            return claim
        if self.database.run(lambda unit: domain_store.verifier_of(unit, cleaned), write=False):
            # Before any DNS look-up: the answer could not change this.
            raise DomainError(cleaned, "is already verified by another workspace")
        if not by_operator:
            published = self.resolver.txt(claim.record.name)  # outside any transaction
            if claim.record.value not in (value.strip() for value in published):
                raise DomainNotVerified(
                    cleaned,
                    f"no TXT record {claim.record.value!r} at {claim.record.name} yet; "
                    "publish it, wait for the DNS to serve it, and try again",
                    record_name=claim.record.name,
                    record_value=claim.record.value,
                )

        def work(unit: UnitOfWork) -> DomainClaim:
            workspace_id = _load(unit, slug).id
            if domain_store.verifier_of(unit, cleaned) not in (None, workspace_id):
                raise DomainError(cleaned, "is already verified by another workspace")
            domain_store.claim(unit, workspace_id, cleaned)  # released meanwhile?
            domain_store.mark_verified(
                unit, workspace_id, cleaned, by="operator" if by_operator else "dns"
            )
            return _claim_of(unit, workspace_id, cleaned)

        try:
            return self._changing_domains(work)
        except IntegrityError:  # another workspace's verification won the race
            raise DomainError(cleaned, "is already verified by another workspace") from None

    # -- SSO enforcement (store/enforcement.py) ------------------------------------------------

    def set_require_sso(self, slug: str, on: bool, *, actor: str) -> WorkspaceInfo:
        """Switch "require SSO" on or off (audited). PlanError on the free plan, as enable."""

        def work(unit: UnitOfWork) -> WorkspaceInfo:
            workspace = _load(unit, slug)
            if on and not workspace.sso_available:
                raise PlanError(workspace.slug, workspace.plan, "SSO and SCIM")
            if bool(workspace.require_sso) != on:
                workspace.require_sso = on
                audit.record(
                    unit,
                    workspace_id=workspace.id,
                    actor=actor,
                    action="require_sso_changed",
                    target_type="workspace",
                    target_id=None,
                    changes={"require_sso": on},
                )
            return WorkspaceInfo.of(workspace)

        return self.database.run(work)

    def set_attribute_map(
        self, slug: str, changes: Mapping[str, str], *, actor: str
    ) -> WorkspaceInfo:
        """Change which assertion attribute holds what (attribute_map.KEYS; "" resets one to
        the built-in names); audited. MappingError for an unknown key or unusable name."""

        def work(unit: UnitOfWork) -> WorkspaceInfo:
            workspace = _load(unit, slug)
            role_store.set_attribute_map(unit, workspace, changes, actor=actor)
            return WorkspaceInfo.of(workspace)

        return self.database.run(work)

    def map_role(
        self, slug: str, group: str, role: str, *, declared: Sequence[str] | None, actor: str
    ) -> WorkspaceInfo:
        """Map a group name to a role (store/roles.py map_role); audited."""

        def work(unit: UnitOfWork) -> WorkspaceInfo:
            workspace = _load(unit, slug)
            role_store.map_role(unit, workspace, group, role, declared=declared, actor=actor)
            return WorkspaceInfo.of(workspace)

        return self.database.run(work)

    def unmap_role(self, slug: str, group: str, *, actor: str) -> tuple[WorkspaceInfo, bool]:
        """Remove a group's role mapping; the workspace, and whether there was one."""

        def work(unit: UnitOfWork) -> tuple[WorkspaceInfo, bool]:
            workspace = _load(unit, slug)
            removed = role_store.unmap_role(unit, workspace, group, actor=actor)
            return WorkspaceInfo.of(workspace), removed

        return self.database.run(work)

    def open_break_glass(
        self,
        slug: str,
        *,
        actor: str,
        duration: dt.timedelta = enforcement.BREAK_GLASS_DEFAULT,
    ) -> WorkspaceInfo:
        """Exempt the owner's own address from "require SSO" for ``duration`` (at most
        BREAK_GLASS_MAX), so a broken IdP never locks the owner out. Nobody else is exempt."""
        if not dt.timedelta(minutes=1) <= duration <= enforcement.BREAK_GLASS_MAX:
            limit = int(enforcement.BREAK_GLASS_MAX.total_seconds() // 60)
            raise ConfigurationError("minutes", f"must be from 1 to {limit}")

        def work(unit: UnitOfWork) -> WorkspaceInfo:
            workspace = _load(unit, slug)
            until = utcnow() + duration
            workspace.break_glass_until = until
            audit.record(
                unit,
                workspace_id=workspace.id,
                actor=actor,
                action="break_glass_opened",
                target_type="workspace",
                target_id=None,
                changes={
                    "owner_email": workspace.owner_email,
                    "until": until.isoformat(timespec="seconds"),
                },
            )
            return WorkspaceInfo.of(workspace)

        return self.database.run(work)

    def close_break_glass(self, slug: str, *, actor: str) -> WorkspaceInfo:
        """End the owner's break-glass window now (audited when one was open)."""

        def work(unit: UnitOfWork) -> WorkspaceInfo:
            workspace = _load(unit, slug)
            until = workspace.break_glass_until
            if until is not None and until > utcnow():
                audit.record(
                    unit,
                    workspace_id=workspace.id,
                    actor=actor,
                    action="break_glass_closed",
                    target_type="workspace",
                    target_id=None,
                    changes={"owner_email": workspace.owner_email},
                )
            workspace.break_glass_until = None
            return WorkspaceInfo.of(workspace)

        return self.database.run(work)

    def sso_required(self, email: str) -> bool:
        """Whether a host app must refuse ``email``'s password sign-in (store/enforcement.py)."""
        return self.database.run(lambda unit: enforcement.sso_required(unit, email), write=False)


@dataclasses.dataclass(frozen=True)
class TokenSummary:
    """What may be shown of the live SCIM token after it was issued: never the token."""

    hint: str  # its first characters, to tell which token an IdP holds
    created_at: dt.datetime


def live_token(unit: UnitOfWork, workspace_id: int) -> TokenSummary | None:
    row = unit.session.execute(
        select(ScimToken.hint, ScimToken.created_at)
        .where(ScimToken.workspace_id == workspace_id, ScimToken.revoked_at.is_(None))
        .order_by(ScimToken.created_at.desc(), ScimToken.id.desc())
        .limit(1)
    ).first()
    return TokenSummary(row.hint, row.created_at) if row is not None else None


def end_member_sessions(unit: UnitOfWork, workspace_id: int, *, source: str) -> int:
    """End every live session of the workspace's members in the caller's transaction; how many.
    Each member signed out gets one member.signed_out event from ``source``.

    Until now a session was merely not honoured while SSO was off, and came back with it.
    Ended here, it stays ended. This process's cached session checks are evicted at commit.

    Call it after the workspace row's own UPDATE has run (flush first): a sign-in holds that
    row FOR SHARE until it commits (store/sign_in.py), so the UPDATE waits for a sign-in in
    flight, and this statement then sees (and ends) the session it started. A sign-in that
    comes after the UPDATE waits for this transaction and finds SSO off.
    """
    members_here = select(Member.id).where(Member.workspace_id == workspace_id)
    ended = (
        unit.connection.execute(
            update(_MEMBER_SESSIONS)
            .where(
                # Through the member index: the sessions table has none by workspace.
                _MEMBER_SESSIONS.c.member_id.in_(members_here),
                _MEMBER_SESSIONS.c.workspace_id == workspace_id,
                _MEMBER_SESSIONS.c.ended_at.is_(None),
            )
            .values(ended_at=utcnow())
            .returning(_MEMBER_SESSIONS.c.member_id)
        )
        .scalars()
        .all()
    )
    note_sessions_ended(unit.connection, ended)
    record_signed_out(unit, [(workspace_id, member_id) for member_id in sorted(set(ended))], source)
    return len(ended)


def find_by_slug(unit: UnitOfWork, slug: str) -> Workspace | None:
    return unit.session.scalar(select(Workspace).where(Workspace.slug == slug.strip().lower()))


def _load(unit: UnitOfWork, slug: str) -> Workspace:
    workspace = unit.session.scalar(select(Workspace).where(Workspace.slug == slug.strip().lower()))
    if workspace is None:
        raise NotFound("workspace", slug)
    return workspace


def _issue_token(unit: UnitOfWork, workspace: Workspace) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    unit.session.add(
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


def _claim_of(unit: UnitOfWork, workspace_id: int, domain: str) -> DomainClaim:
    return next(c for c in domain_store.claims(unit, workspace_id) if c.domain == domain)
