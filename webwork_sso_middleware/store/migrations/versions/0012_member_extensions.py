"""Profile attributes: extension attributes that have no column, kept as sent

- ``members.extensions``: JSON, {schema URN: {attribute: value}}: an IdP's custom extension
  schemas (Entra's ``urn:ietf:params:scim:schemas:extension:<Name>:2.0:User``, Okta's
  "External namespace") and undescribed attributes of the Enterprise User extension.

Existing rows get NULL: nothing was kept for them before (such attributes were ignored).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch copy of the table: on SQLite a batch operation drops and
    # re-creates ``members``, and the DROP would cascade to every row that references it.
    op.add_column("members", sa.Column("extensions", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    # DROP COLUMN in place (SQLite 3.35 and later), for the reason upgrade() gives.
    op.drop_column("members", "extensions")
