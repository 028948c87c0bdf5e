"""SCIM fidelity: what a client writes is what it reads back

- ``member_values.primary`` becomes nullable: NULL is "not given", so ``primary: false`` and an
  absent ``primary`` read back as written. Existing ``false`` rows become NULL: they were read
  back without ``primary`` before, and still are.
- ``members.active_assigned``: whether the User's ``active`` is assigned. PATCH ``remove`` of
  ``active`` unassigns it (a POST or PUT without it does not); ``members.active`` stays what sign-in
  reads (an unassigned ``active`` counts as active: scim/writes.py). Existing rows: true.
- ``memberships.display``, ``type``, ``ref`` and ``as_sent``: a Group's ``members`` sub-attributes
  as the client sent them. Existing rows get ``as_sent`` false and are read back as before
  (display, type and $ref computed), until a write of the group gives their sub-attributes.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # member_values is referenced by no table, so the batch copy SQLite needs to drop NOT NULL
    # cascades nowhere. members and memberships get plain ADD COLUMN (see 0012 for why).
    with op.batch_alter_table("member_values") as batch:
        batch.alter_column("primary", existing_type=sa.Boolean(), nullable=True)
    op.execute(sa.text('UPDATE member_values SET "primary" = NULL WHERE "primary" = false'))
    op.add_column(
        "members",
        sa.Column("active_assigned", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column("memberships", sa.Column("display", sa.String(512), nullable=True))
    op.add_column("memberships", sa.Column("type", sa.String(16), nullable=True))
    op.add_column("memberships", sa.Column("ref", sa.String(1024), nullable=True))
    op.add_column(
        "memberships",
        sa.Column("as_sent", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("memberships", "as_sent")
    op.drop_column("memberships", "ref")
    op.drop_column("memberships", "type")
    op.drop_column("memberships", "display")
    op.drop_column("members", "active_assigned")
    op.execute(sa.text('UPDATE member_values SET "primary" = false WHERE "primary" IS NULL'))
    with op.batch_alter_table("member_values") as batch:
        batch.alter_column("primary", existing_type=sa.Boolean(), nullable=False)
