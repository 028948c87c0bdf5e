"""saml sign-in and sessions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_providers",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.String(length=1024), nullable=False),
        sa.Column("metadata_url", sa.String(length=2048), nullable=True),
        sa.Column("metadata_xml", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_refresh_error", sa.Text(), nullable=True),
        sa.Column("last_refresh_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("allow_idp_initiated", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_identity_providers_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_identity_providers")),
    )
    op.create_table(
        "saml_requests",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("relay_state", sa.String(length=64), nullable=False),
        sa.Column("next_path", sa.String(length=2048), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_saml_requests_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_requests")),
        sa.UniqueConstraint("relay_state", name=op.f("uq_saml_requests_relay_state")),
    )
    with op.batch_alter_table("saml_requests", schema=None) as batch_op:
        batch_op.create_index("ix_saml_requests_expires", ["expires_at"], unique=False)

    op.create_table(
        "saml_seen_assertions",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("assertion_id", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_saml_seen_assertions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workspace_id", "assertion_id", name=op.f("pk_saml_seen_assertions")
        ),
    )
    with op.batch_alter_table("saml_seen_assertions", schema=None) as batch_op:
        batch_op.create_index("ix_saml_seen_assertions_expires", ["expires_at"], unique=False)

    op.create_table(
        "member_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_member_sessions_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_member_sessions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_member_sessions")),
    )
    with op.batch_alter_table("member_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_member_sessions_member", ["member_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("member_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_member_sessions_member")

    op.drop_table("member_sessions")
    with op.batch_alter_table("saml_seen_assertions", schema=None) as batch_op:
        batch_op.drop_index("ix_saml_seen_assertions_expires")

    op.drop_table("saml_seen_assertions")
    with op.batch_alter_table("saml_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_saml_requests_expires")

    op.drop_table("saml_requests")
    op.drop_table("identity_providers")
