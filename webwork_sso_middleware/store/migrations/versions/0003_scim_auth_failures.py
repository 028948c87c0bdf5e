"""scim auth failures

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scim_auth_failures",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "window_start", name=op.f("pk_scim_auth_failures")),
    )
    with op.batch_alter_table("scim_auth_failures", schema=None) as batch_op:
        batch_op.create_index("ix_scim_auth_failures_window_start", ["window_start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scim_auth_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_scim_auth_failures_window_start")

    op.drop_table("scim_auth_failures")
