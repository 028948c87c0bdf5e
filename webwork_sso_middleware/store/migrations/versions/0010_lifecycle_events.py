"""Lifecycle events: what happened to members and groups, kept for the host app's cursor

- ``lifecycle_events``: one row per event, ``seq`` numbered by readers in commit order
  (store/events.py); ``id`` is the event's stable id. ``pk`` and ``seq`` are 64-bit (a
  membership PATCH spends one pk per member; cursors are never reused).
- ``lifecycle_event_sequence``: one row, the highest ``seq`` given so far, numbered from by
  readers; a workspace's cascade or retention deletes events, never this.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lifecycle_events",
        # SQLite: only INTEGER PRIMARY KEY is the (64-bit) rowid that numbers itself.
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column(
            "workspace_id",
            sa.Integer(),
            sa.ForeignKey(
                "workspaces.id",
                ondelete="CASCADE",
                name="fk_lifecycle_events_workspace_id_workspaces",
            ),
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("member_id", sa.String(36), nullable=True),
        sa.Column("group_id", sa.String(36), nullable=True),
        sa.Column("group_name", sa.String(255), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_lifecycle_events"),
        sa.UniqueConstraint("id", name="uq_lifecycle_events_id"),
    )
    op.create_index("ix_lifecycle_events_seq", "lifecycle_events", ["seq"], unique=True)
    op.create_index(
        "ix_lifecycle_events_workspace_seq", "lifecycle_events", ["workspace_id", "seq"]
    )
    op.create_index("ix_lifecycle_events_occurred_at", "lifecycle_events", ["occurred_at"])
    op.create_index(
        "ix_lifecycle_events_unsequenced",
        "lifecycle_events",
        ["pk"],
        postgresql_where=sa.text("seq IS NULL"),
        sqlite_where=sa.text("seq IS NULL"),
    )
    sequence = op.create_table(
        "lifecycle_event_sequence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lifecycle_event_sequence"),
    )
    op.bulk_insert(sequence, [{"id": 1, "last": 0}])


def downgrade() -> None:
    op.drop_table("lifecycle_event_sequence")
    op.drop_table("lifecycle_events")
