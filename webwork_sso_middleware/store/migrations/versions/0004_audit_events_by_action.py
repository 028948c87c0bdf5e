"""audit events by action

The settings page's diagnostics ask for a workspace's latest refused sign-ins. Since every
sign-in is audited, those few rows sit among many: by (workspace, action, time) they are found
directly instead of by walking the workspace's whole log backwards.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_events_workspace_action_time",
            ["workspace_id", "action", "occurred_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_workspace_action_time")
