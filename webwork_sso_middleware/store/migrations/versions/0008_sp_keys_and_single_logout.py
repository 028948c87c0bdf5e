"""SP keys, the owner's SAML choices, and what single logout needs of a session

- ``sp_keys``: each workspace's SP key pairs (next, current, previous), the private key
  encrypted at rest (sp_keys/vault.py).
- ``workspaces``: ``sign_authn_requests`` and ``require_encrypted_assertions`` (the owner's
  choices), and ``sp_version``, bumped by any change to either or to the keys.
- ``member_sessions``: the NameID and SessionIndex of the sign-in that started the session,
  so an IdP's LogoutRequest finds it.

Existing rows get false, 0 and NULL: no workspace changes behaviour by upgrading.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SESSION_COLUMNS = (
    ("saml_name_id", 1024),
    ("saml_name_id_format", 256),
    ("saml_name_qualifier", 1024),
    ("saml_sp_name_qualifier", 1024),
    ("saml_session_index", 512),  # subject.MAX_SESSION_INDEX
)


def upgrade() -> None:
    op.create_table(
        "sp_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("encrypted_private_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_sp_keys_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sp_keys")),
    )
    with op.batch_alter_table("sp_keys", schema=None) as batch_op:
        batch_op.create_index("uq_sp_keys_workspace_state", ["workspace_id", "state"], unique=True)

    # Plain ADD COLUMN, never a batch copy of the table: on SQLite a batch operation drops and
    # re-creates the table, and dropping ``workspaces`` would cascade to every row that
    # references it (domains, members, tokens).
    op.add_column(
        "workspaces",
        sa.Column("sign_authn_requests", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "workspaces",
        sa.Column(
            "require_encrypted_assertions", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )
    op.add_column(
        "workspaces", sa.Column("sp_version", sa.Integer(), nullable=False, server_default="0")
    )
    for name, length in _SESSION_COLUMNS:
        op.add_column("member_sessions", sa.Column(name, sa.String(length=length), nullable=True))
    op.create_index(
        "ix_member_sessions_workspace_name_id",
        "member_sessions",
        ["workspace_id", "saml_name_id"],
        unique=False,
    )


def downgrade() -> None:
    # DROP COLUMN in place (SQLite 3.35 and later), for the reason upgrade() gives.
    op.drop_index("ix_member_sessions_workspace_name_id", table_name="member_sessions")
    for name, _ in reversed(_SESSION_COLUMNS):
        op.drop_column("member_sessions", name)
    for name in ("sp_version", "require_encrypted_assertions", "sign_authn_requests"):
        op.drop_column("workspaces", name)

    with op.batch_alter_table("sp_keys", schema=None) as batch_op:
        batch_op.drop_index("uq_sp_keys_workspace_state")

    op.drop_table("sp_keys")
