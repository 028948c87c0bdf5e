"""drop saml_requests

A pending AuthnRequest lives in a signed cookie of the browser that started it
(saml/login_state.py), so nothing has written this table since; its model goes, and so does
the table. A downgrade brings it back empty, as 0002 made it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("saml_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_saml_requests_expires")

    op.drop_table("saml_requests")


def downgrade() -> None:
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
