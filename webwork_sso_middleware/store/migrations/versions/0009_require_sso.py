"""SSO enforcement: the owner's "require SSO" switch and the owner's break-glass window

- ``workspaces.require_sso``: password sign-in is refused (by a host that asks
  ``sso_required``) for addresses in the workspace's verified domains.
- ``workspaces.break_glass_until``: until then the owner's own address is exempt.

Existing rows get false and NULL: no workspace changes behaviour by upgrading.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch copy of the table: on SQLite a batch operation drops and
    # re-creates ``workspaces``, and the DROP would cascade to every row that references it.
    op.add_column(
        "workspaces",
        sa.Column("require_sso", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "workspaces",
        sa.Column("break_glass_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    # DROP COLUMN in place (SQLite 3.35 and later), for the reason upgrade() gives.
    op.drop_column("workspaces", "break_glass_until")
    op.drop_column("workspaces", "require_sso")
