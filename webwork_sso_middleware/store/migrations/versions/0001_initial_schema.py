"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("plan", sa.String(length=16), nullable=False),
        sa.Column("owner_email", sa.String(length=320), nullable=False),
        sa.Column("scim_enabled", sa.Boolean(), nullable=False),
        sa.Column("sso_enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint("slug", name=op.f("uq_workspaces_slug")),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_audit_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_events_workspace_time", ["workspace_id", "occurred_at"], unique=False
        )

    op.create_table(
        "groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("display_name_key", sa.String(length=255), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_groups_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
    )
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_groups_workspace_created", ["workspace_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_groups_workspace_external_id", ["workspace_id", "external_id"], unique=False
        )
        batch_op.create_index(
            "uq_groups_workspace_display_name", ["workspace_id", "display_name_key"], unique=True
        )

    op.create_table(
        "members",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("user_name_key", sa.String(length=255), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("formatted_name", sa.String(length=512), nullable=True),
        sa.Column("family_name", sa.String(length=255), nullable=True),
        sa.Column("given_name", sa.String(length=255), nullable=True),
        sa.Column("middle_name", sa.String(length=255), nullable=True),
        sa.Column("honorific_prefix", sa.String(length=64), nullable=True),
        sa.Column("honorific_suffix", sa.String(length=64), nullable=True),
        sa.Column("display_name", sa.String(length=512), nullable=True),
        sa.Column("nick_name", sa.String(length=255), nullable=True),
        sa.Column("profile_url", sa.String(length=1024), nullable=True),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("user_type", sa.String(length=64), nullable=True),
        sa.Column("preferred_language", sa.String(length=64), nullable=True),
        sa.Column("locale", sa.String(length=64), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("employee_number", sa.String(length=255), nullable=True),
        sa.Column("cost_center", sa.String(length=255), nullable=True),
        sa.Column("organization", sa.String(length=255), nullable=True),
        sa.Column("division", sa.String(length=255), nullable=True),
        sa.Column("department", sa.String(length=255), nullable=True),
        sa.Column("manager_id", sa.String(length=255), nullable=True),
        sa.Column("manager_display_name", sa.String(length=512), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("session_generation", sa.Integer(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_members_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
    )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_members_workspace_created", ["workspace_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_members_workspace_email", ["workspace_id", "email_key"], unique=False
        )
        batch_op.create_index(
            "ix_members_workspace_external_id", ["workspace_id", "external_id"], unique=False
        )
        batch_op.create_index(
            "uq_members_workspace_user_name",
            ["workspace_id", "user_name_key"],
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )

    op.create_table(
        "scim_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_scim_tokens_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_scim_tokens_token_hash")),
    )
    with op.batch_alter_table("scim_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scim_tokens_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "workspace_domains",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_domains_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "domain", name=op.f("pk_workspace_domains")),
    )
    with op.batch_alter_table("workspace_domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workspace_domains_domain"), ["domain"], unique=False)

    op.create_table(
        "member_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("attribute", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("value_key", sa.String(length=1024), nullable=True),
        sa.Column("display", sa.String(length=512), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=True),
        sa.Column("primary", sa.Boolean(), nullable=False),
        sa.Column("formatted", sa.String(length=1024), nullable=True),
        sa.Column("street_address", sa.String(length=512), nullable=True),
        sa.Column("locality", sa.String(length=255), nullable=True),
        sa.Column("region", sa.String(length=255), nullable=True),
        sa.Column("postal_code", sa.String(length=64), nullable=True),
        sa.Column("country", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_member_values_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_values")),
    )
    with op.batch_alter_table("member_values", schema=None) as batch_op:
        batch_op.create_index(
            "ix_member_values_attribute_value", ["attribute", "value_key"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_member_values_member_id"), ["member_id"], unique=False)

    op.create_table(
        "memberships",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_memberships_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_memberships_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "member_id", name=op.f("pk_memberships")),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_memberships_member_id"), ["member_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_memberships_member_id"))

    op.drop_table("memberships")
    with op.batch_alter_table("member_values", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_values_member_id"))
        batch_op.drop_index("ix_member_values_attribute_value")

    op.drop_table("member_values")
    with op.batch_alter_table("workspace_domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workspace_domains_domain"))

    op.drop_table("workspace_domains")
    with op.batch_alter_table("scim_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scim_tokens_workspace_id"))

    op.drop_table("scim_tokens")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_members_workspace_user_name",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index("ix_members_workspace_external_id")
        batch_op.drop_index("ix_members_workspace_email")
        batch_op.drop_index("ix_members_workspace_created")

    op.drop_table("members")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_index("uq_groups_workspace_display_name")
        batch_op.drop_index("ix_groups_workspace_external_id")
        batch_op.drop_index("ix_groups_workspace_created")

    op.drop_table("groups")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_workspace_time")

    op.drop_table("audit_events")
    op.drop_table("workspaces")
