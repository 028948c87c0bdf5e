"""Groups and roles: the groups a member's last sign-in asserted, the owner's attribute
mapping and group-to-role mapping.

- ``members.sign_in_groups``: the group names the last SAML assertion carried (a JSON list,
  replaced at each sign-in); NULL: none asserted yet.
- ``workspaces.attribute_map``: which assertion attribute holds email, names and groups
  (a JSON object; a missing key is the built-in default); NULL: every default.
- ``workspaces.role_map``: group name -> role name (a JSON object); NULL: no mapping.

Existing rows get NULL: no workspace changes behaviour by upgrading.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch copy: on SQLite a batch operation re-creates the table,
    # and the DROP would cascade to every row that references it.
    op.add_column("members", sa.Column("sign_in_groups", sa.JSON(), nullable=True))
    op.add_column("workspaces", sa.Column("attribute_map", sa.JSON(), nullable=True))
    op.add_column("workspaces", sa.Column("role_map", sa.JSON(), nullable=True))


def downgrade() -> None:
    # DROP COLUMN in place (SQLite 3.35 and later), for the reason upgrade() gives.
    op.drop_column("workspaces", "role_map")
    op.drop_column("workspaces", "attribute_map")
    op.drop_column("members", "sign_in_groups")
