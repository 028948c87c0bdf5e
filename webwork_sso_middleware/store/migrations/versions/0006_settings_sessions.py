"""settings sessions

Owner-settings sessions (opened by a settings link) move from a signed cookie alone to a row per
session, so "Close settings" ends every copy of the cookie on every worker at once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settings_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_settings_sessions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_settings_sessions")),
    )
    with op.batch_alter_table("settings_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_settings_sessions_expires", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("settings_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_settings_sessions_expires")

    op.drop_table("settings_sessions")
