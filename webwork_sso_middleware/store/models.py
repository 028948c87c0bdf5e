"""The tables. Every piece of shared state lives here, so any number of workers behave as one."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

PLANS = ("free", "plus", "premium")
SSO_PLANS = frozenset({"plus", "premium"})

# Stable constraint names, so migrations can address them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ExactJSON(JSON):
    """JSON whose change is a change of its JSON: Python's == has true equal to 1 (and 1.0),
    so a value changed from one to the other would never be written (the ORM compares with
    compare_values to decide what an UPDATE sets)."""

    def compare_values(self, x: Any, y: Any) -> bool:
        return bool(_exact(x) == _exact(y))


def _exact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on the way out, on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    plan: Mapped[str] = mapped_column(String(16), default="free")
    owner_email: Mapped[str] = mapped_column(String(320))
    scim_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    sso_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The owner's SAML choices: sign every AuthnRequest (also when the IdP's metadata does not
    # ask for it), and refuse any assertion that does not arrive encrypted.
    sign_authn_requests: Mapped[bool] = mapped_column(Boolean, default=False)
    require_encrypted_assertions: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped by every change to the SP's keys or the SAML choices above: each worker keeps the
    # workspace's SP built (saml/sp.py) until its version changes.
    sp_version: Mapped[int] = mapped_column(Integer, default=0)
    # SSO enforcement (store/enforcement.py): hosts refuse password sign-in for addresses in the
    # workspace's verified domains; until break_glass_until the owner's own address is exempt.
    require_sso: Mapped[bool] = mapped_column(Boolean, default=False)
    break_glass_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The owner's choices (store/roles.py): which assertion attribute holds each of
    # attribute_map.KEYS (absent: the built-in names), and group name -> role name.
    attribute_map: Mapped[dict[str, str] | None] = mapped_column(JSON)
    role_map: Mapped[dict[str, str] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    domains: Mapped[list[WorkspaceDomain]] = relationship(
        back_populates="workspace", cascade="all, delete-orphan", order_by="WorkspaceDomain.domain"
    )

    @property
    def sso_available(self) -> bool:
        return self.plan in SSO_PLANS


class WorkspaceDomain(Base):
    """An email domain a workspace claims. A claim counts only once verified (a DNS TXT record,
    or the site operator's word): then the workspace's IdP may sign in, and create, members at
    that domain, and their REMOTE_USER is their email. Any number of workspaces may claim a
    domain; at most one has it verified (the partial unique index)."""

    __tablename__ = "workspace_domains"
    __table_args__ = (
        Index(
            "uq_workspace_domains_verified_domain",
            "domain",
            unique=True,
            sqlite_where=text("verified_at IS NOT NULL"),
            postgresql_where=text("verified_at IS NOT NULL"),
        ),
    )

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    domain: Mapped[str] = mapped_column(String(253), primary_key=True, index=True)
    # The value of the TXT record that proves control of the domain: random per claim, so a
    # record published for one workspace never verifies another.
    verification_token: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    verified_by: Mapped[str | None] = mapped_column(String(16))  # "dns" or "operator"
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    workspace: Mapped[Workspace] = relationship(back_populates="domains")


class ScimToken(Base):
    """A SCIM API token, kept only as its SHA-256: the token itself is shown once."""

    __tablename__ = "scim_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Member(Base):
    """A person in a workspace, provisioned by SCIM or created at their first SSO login."""

    __tablename__ = "members"
    __table_args__ = (
        # userName is unique per workspace, case-insensitively, among members SCIM still sees;
        # a deleted member keeps its data without blocking the name.
        Index(
            "uq_members_workspace_user_name",
            "workspace_id",
            "user_name_key",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_members_workspace_email", "workspace_id", "email_key"),
        Index("ix_members_workspace_external_id", "workspace_id", "external_id"),
        Index("ix_members_workspace_created", "workspace_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(String(255))
    user_name_key: Mapped[str] = mapped_column(String(255))
    email_key: Mapped[str | None] = mapped_column(String(320))
    external_id: Mapped[str | None] = mapped_column(String(255))
    formatted_name: Mapped[str | None] = mapped_column(String(512))
    family_name: Mapped[str | None] = mapped_column(String(255))
    given_name: Mapped[str | None] = mapped_column(String(255))
    middle_name: Mapped[str | None] = mapped_column(String(255))
    honorific_prefix: Mapped[str | None] = mapped_column(String(64))
    honorific_suffix: Mapped[str | None] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(512))
    nick_name: Mapped[str | None] = mapped_column(String(255))
    profile_url: Mapped[str | None] = mapped_column(String(1024))
    title: Mapped[str | None] = mapped_column(String(255))
    user_type: Mapped[str | None] = mapped_column(String(64))
    preferred_language: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(64))
    timezone: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Whether SCIM's ``active`` is assigned; when it is not, ``active`` above stays true (an
    # unassigned ``active`` counts as active for sign-in: scim/writes.py).
    active_assigned: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Enterprise User extension (RFC 7643 section 4.3)
    employee_number: Mapped[str | None] = mapped_column(String(255))
    cost_center: Mapped[str | None] = mapped_column(String(255))
    organization: Mapped[str | None] = mapped_column(String(255))
    division: Mapped[str | None] = mapped_column(String(255))
    department: Mapped[str | None] = mapped_column(String(255))
    manager_id: Mapped[str | None] = mapped_column(String(255))
    manager_display_name: Mapped[str | None] = mapped_column(String(512))
    # Extension attributes without a column, as sent: {schema URN: {attribute: value}}. Custom
    # extension schemas, and undescribed Enterprise attributes (scim/extensions.py bounds them).
    extensions: Mapped[dict[str, Any] | None] = mapped_column(ExactJSON(none_as_null=True))

    source: Mapped[str] = mapped_column(String(8), default="scim")  # "scim" or "sso"
    # Bumped to end every live session of the member (deactivation, deletion, sign out everywhere).
    session_generation: Mapped[int] = mapped_column(Integer, default=0)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The group names the last SAML sign-in asserted (roles.clean_asserted_groups), replaced at
    # each sign-in; never SCIM Group resources. NULL: none asserted yet.
    sign_in_groups: Mapped[list[str] | None] = mapped_column(JSON)
    deactivated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    values: Mapped[list[MemberValue]] = relationship(
        back_populates="member",
        cascade="all, delete-orphan",
        order_by="(MemberValue.attribute, MemberValue.position)",
        lazy="selectin",
    )
    memberships: Mapped[list[Membership]] = relationship(
        back_populates="member", cascade="all, delete-orphan", lazy="selectin"
    )

    __mapper_args__ = {"version_id_col": version}


class MemberValue(Base):
    """One value of a multi-valued User attribute (emails, phoneNumbers, addresses, ...).

    Kept as rows rather than JSON so filters such as ``emails[type eq "work"].value``
    run in SQL on every backend.
    """

    __tablename__ = "member_values"
    __table_args__ = (Index("ix_member_values_attribute_value", "attribute", "value_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    attribute: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=0)
    value: Mapped[str | None] = mapped_column(Text)
    value_key: Mapped[str | None] = mapped_column(String(1024))
    display: Mapped[str | None] = mapped_column(String(512))
    type: Mapped[str | None] = mapped_column(String(64))
    primary: Mapped[bool | None] = mapped_column(Boolean)  # None: not given (false is kept)
    # addresses only
    formatted: Mapped[str | None] = mapped_column(String(1024))
    street_address: Mapped[str | None] = mapped_column(String(512))
    locality: Mapped[str | None] = mapped_column(String(255))
    region: Mapped[str | None] = mapped_column(String(255))
    postal_code: Mapped[str | None] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(64))

    member: Mapped[Member] = relationship(back_populates="values")


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (
        Index("uq_groups_workspace_display_name", "workspace_id", "display_name_key", unique=True),
        Index("ix_groups_workspace_external_id", "workspace_id", "external_id"),
        Index("ix_groups_workspace_created", "workspace_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(255))
    display_name_key: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="group", cascade="all, delete-orphan", passive_deletes=True
    )

    __mapper_args__ = {"version_id_col": version}


class ScimTotal(Base):
    """A workspace's visible members and groups, in a few slot rows to SUM: SCIM's
    totalResults without a COUNT per page. Only triggers write it (migration 0013), in the
    transaction of the member or group write; nothing in Python does."""

    __tablename__ = "scim_totals"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    members: Mapped[int] = mapped_column(Integer)
    groups: Mapped[int] = mapped_column(Integer)


class Membership(Base):
    __tablename__ = "memberships"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[str] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The ``members`` sub-attributes as the client sent them (None: not sent). Rows written
    # before they were kept have ``as_sent`` false and read back computed ones.
    display: Mapped[str | None] = mapped_column(String(512))
    type: Mapped[str | None] = mapped_column(String(16))
    ref: Mapped[str | None] = mapped_column(String(1024))
    as_sent: Mapped[bool] = mapped_column(Boolean, default=True, server_default=false())

    group: Mapped[Group] = relationship(back_populates="memberships", lazy="joined")
    member: Mapped[Member] = relationship(back_populates="memberships")


class AuditEvent(Base):
    """A provisioning event: who did what to whom, when, and what changed."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_workspace_time", "workspace_id", "occurred_at"),
        # The diagnostics' "latest refused sign-ins" among every audited sign-in (0004).
        Index("ix_audit_events_workspace_action_time", "workspace_id", "action", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str | None] = mapped_column(String(36))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# The pk and seq of lifecycle events (BIGINT; SQLite's rowid spelling there).
EVENT_NUMBER = BigInteger().with_variant(Integer(), "sqlite")


class LifecycleEventSequence(Base):
    """The highest ``seq`` ever given to a lifecycle event: one row, never deleted. Readers
    number from it (store/events.py), so deleting events (retention, a workspace's cascade)
    never makes a number come round again, which a reader's cursor would skip."""

    __tablename__ = "lifecycle_event_sequence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    last: Mapped[int] = mapped_column(BigInteger)


class LifecycleEvent(Base):
    """What happened to a member or a group, for the host app (events/): kept in order, read
    with a cursor. Inserted in the change's own transaction with ``seq`` NULL; a reader numbers
    committed rows later (store/events.py ``sequence``), so ``seq`` follows commit order, which
    an id allocated at insert does not (PostgreSQL hands out ids before commit)."""

    __tablename__ = "lifecycle_events"
    __table_args__ = (
        Index("ix_lifecycle_events_seq", "seq", unique=True),
        Index("ix_lifecycle_events_workspace_seq", "workspace_id", "seq"),
        Index("ix_lifecycle_events_occurred_at", "occurred_at"),
        # The rows still to number: a small index, empty between readers' visits.
        Index(
            "ix_lifecycle_events_unsequenced",
            "pk",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
    )

    # 64-bit: a membership PATCH spends one pk per member, and cursors are handed out for
    # ever. SQLite: its INTEGER PRIMARY KEY is already 64-bit, and only that spelling is the
    # rowid (BIGINT would not number itself).
    pk: Mapped[int] = mapped_column(EVENT_NUMBER, primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)  # the stable id
    seq: Mapped[int | None] = mapped_column(BigInteger)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[str | None] = mapped_column(String(36))
    group_id: Mapped[str | None] = mapped_column(String(36))
    # The group's name when the event happened (a deleted group's row is gone).
    group_name: Mapped[str | None] = mapped_column(String(255))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class IdentityProvider(Base):
    """A workspace's SAML IdP: its metadata (fetched from a URL or pasted) and how fresh it is."""

    __tablename__ = "identity_providers"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    entity_id: Mapped[str] = mapped_column(String(1024))
    metadata_url: Mapped[str | None] = mapped_column(String(2048))
    # The last metadata that parsed and validated: kept when a refresh fails.
    metadata_xml: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    refresh_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_refresh_error: Mapped[str | None] = mapped_column(Text)
    last_refresh_error_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # IdP-initiated (unsolicited) responses: on by default, as Okta's dashboard tiles need.
    allow_idp_initiated: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SpKey(Base):
    """One key pair of a workspace's SP, for signing (AuthnRequests, logout messages) and for
    decrypting assertions. The private key is encrypted with a key derived from the site's
    secret key (sp_keys/vault.py), so a database dump alone does not reveal it.

    ``state``: ``next`` (published in the SP metadata, not yet signing), ``current`` (signs and
    decrypts) or ``previous`` (still decrypts, until retired, when its row is deleted). At most
    one of each per workspace (the unique index)."""

    __tablename__ = "sp_keys"
    __table_args__ = (Index("uq_sp_keys_workspace_state", "workspace_id", "state", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(8))
    certificate_pem: Mapped[str] = mapped_column(Text)
    encrypted_private_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SeenAssertion(Base):
    """The replay cache: an assertion ID is accepted once, until the assertion expires."""

    __tablename__ = "saml_seen_assertions"
    __table_args__ = (Index("ix_saml_seen_assertions_expires", "expires_at"),)

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    assertion_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class MemberSession(Base):
    """A signed-in browser. The cookie names it; ending it here ends it on every worker."""

    __tablename__ = "member_sessions"
    __table_args__ = (
        Index("ix_member_sessions_member", "member_id"),
        # An IdP's LogoutRequest names the subject (and maybe the session): found by this.
        Index("ix_member_sessions_workspace_name_id", "workspace_id", "saml_name_id"),
    )

    # SHA-256 of the random session id the cookie carries: a leaked table grants nothing.
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer)  # the member's session_generation then
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The SAML sign-in that started it, as single logout (SAML 2.0 SLO) names it: the
    # assertion's NameID (with its format and qualifiers) and the AuthnStatement's SessionIndex.
    saml_name_id: Mapped[str | None] = mapped_column(String(1024))
    saml_name_id_format: Mapped[str | None] = mapped_column(String(256))
    saml_name_qualifier: Mapped[str | None] = mapped_column(String(1024))
    saml_sp_name_qualifier: Mapped[str | None] = mapped_column(String(1024))
    saml_session_index: Mapped[str | None] = mapped_column(String(512))


class ScimAuthFailure(Base):
    """Failed SCIM token checks per client address and minute: the token-guessing throttle
    (scim/throttle.py). Shared by every worker; rows older than the window are purged."""

    __tablename__ = "scim_auth_failures"
    __table_args__ = (Index("ix_scim_auth_failures_window_start", "window_start"),)

    # The client address (an IPv6 client's /64), as scim/throttle.source_of gives it.
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)  # a minute
    failures: Mapped[int] = mapped_column(Integer, default=0)


class SettingsSession(Base):
    """An owner-settings session, started by redeeming a settings link (admin/links.py). Kept
    here, not only in the cookie, so "Close settings" ends every copy of it on every worker."""

    __tablename__ = "settings_sessions"
    __table_args__ = (Index("ix_settings_sessions_expires", "expires_at"),)

    # SHA-256 of the random id the cookie carries: a leaked table opens no page.
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
