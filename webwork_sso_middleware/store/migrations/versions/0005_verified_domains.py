"""verified domains, and one normalisation of member names

A workspace's email domains become claims that count only once verified (a DNS TXT record, or
the site operator's word); a domain is verified by at most one workspace. Domains that existed
before become unverified claims, each with its own verification token: sign-in through them
waits until the owner (``webwork-sso workspace verify-domain``, or the settings page) verifies.

Member keys are recomputed with the new normalisation (trimmed, NFKC, case-folded). Where two
members of one workspace would now share a key, the later one keeps its old key (and is
reported in the migration's log) rather than failing the upgrade: an operator merges them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import contextlib
import logging
import secrets
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def _key(value: str) -> str:
    # names.key as of this revision (a migration must not change with the code)
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value.strip()).casefold())
    local, at, domain = folded.rpartition("@")
    if not at:
        return folded
    domain = domain.rstrip(".")
    if not domain.isascii():
        with contextlib.suppress(UnicodeError):  # not IDNA-encodable: kept as written
            domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


def upgrade() -> None:
    with op.batch_alter_table("workspace_domains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verification_token", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("verified_by", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("created_at", sa.DateTime(timezone=True), nullable=True))
    bind = op.get_bind()
    domains = sa.table(
        "workspace_domains",
        sa.column("workspace_id", sa.Integer),
        sa.column("domain", sa.String),
        sa.column("verification_token", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    now = sa.func.current_timestamp()
    for workspace_id, domain in bind.execute(
        sa.select(domains.c.workspace_id, domains.c.domain)
    ).all():
        bind.execute(
            domains.update()
            .where(domains.c.workspace_id == workspace_id, domains.c.domain == domain)
            .values(verification_token=secrets.token_urlsafe(24), created_at=now)
        )
    with op.batch_alter_table("workspace_domains", schema=None) as batch_op:
        batch_op.alter_column(
            "verification_token", existing_type=sa.String(length=64), nullable=False
        )
        batch_op.alter_column(
            "created_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.create_index(
            "uq_workspace_domains_verified_domain",
            ["domain"],
            unique=True,
            sqlite_where=sa.text("verified_at IS NOT NULL"),
            postgresql_where=sa.text("verified_at IS NOT NULL"),
        )
    _rekey_members(bind)


def _rekey_members(bind: sa.Connection) -> None:
    members = sa.table(
        "members",
        sa.column("id", sa.String),
        sa.column("workspace_id", sa.Integer),
        sa.column("user_name", sa.String),
        sa.column("user_name_key", sa.String),
        sa.column("email_key", sa.String),
        sa.column("deleted_at", sa.DateTime),
        sa.column("created_at", sa.DateTime),
    )
    rows = bind.execute(
        sa.select(
            members.c.id,
            members.c.workspace_id,
            members.c.user_name,
            members.c.user_name_key,
            members.c.email_key,
            members.c.deleted_at,
        ).order_by(members.c.created_at, members.c.id)
    ).all()
    taken = {(row.workspace_id, row.user_name_key) for row in rows if row.deleted_at is None}
    for row in rows:
        new_key = _key(row.user_name)[:255]
        new_email = _key(row.email_key)[:320] if row.email_key else None
        values = {}
        if new_email != row.email_key:
            values["email_key"] = new_email
        if new_key != row.user_name_key:
            if row.deleted_at is None and (row.workspace_id, new_key) in taken:
                log.warning(
                    "member %s keeps its userName key: another member of its workspace "
                    "already has the normalised name",
                    row.id,
                )
            else:
                if row.deleted_at is None:
                    taken.discard((row.workspace_id, row.user_name_key))
                    taken.add((row.workspace_id, new_key))
                values["user_name_key"] = new_key
        if values:
            bind.execute(members.update().where(members.c.id == row.id).values(**values))


def downgrade() -> None:
    with op.batch_alter_table("workspace_domains", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_workspace_domains_verified_domain",
            sqlite_where=sa.text("verified_at IS NOT NULL"),
            postgresql_where=sa.text("verified_at IS NOT NULL"),
        )
        batch_op.drop_column("created_at")
        batch_op.drop_column("verified_by")
        batch_op.drop_column("verified_at")
        batch_op.drop_column("verification_token")
