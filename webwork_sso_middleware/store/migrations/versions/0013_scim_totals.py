"""SCIM totals: each workspace's count of visible members and of groups, kept by triggers

- ``scim_totals`` (workspace_id, slot, members, groups): a SCIM list's ``totalResults``
  (RFC 7644 3.4.2, REQUIRED) is the SUM over a workspace's few slot rows, so an unfiltered page
  never COUNTs the whole workspace (at 100,000 members a COUNT per page costs more than the page).
- Triggers on ``members`` and ``groups`` keep the rows in the same transaction as the write,
  whatever writes it (SCIM, sign-in's first login, bulk, a host's own SQL): no code path can
  forget to. A member counts while ``deleted_at`` is NULL (store/members.py ``visible``).
- PostgreSQL: each connection adds to slot ``mod(pg_backend_pid(), 16)``, so concurrent creates in
  one workspace do not queue on one counter row until commit. A hard delete subtracts from
  slot 0, which always exists (made with the workspace; a delete trigger may not insert, or a
  workspace's cascading delete would re-create the row it is deleting). SQLite: one writer at a
  time anyway, slot 0 only.
- Existing workspaces get their slot 0 with the counts as of the migration.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SLOTS = 16

_PG_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION scim_totals_add(ws integer, d_members integer, d_groups integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO scim_totals (workspace_id, slot, members, groups)
    VALUES (ws, mod(pg_backend_pid(), {SLOTS}), d_members, d_groups)
    ON CONFLICT (workspace_id, slot) DO UPDATE
    SET members = scim_totals.members + EXCLUDED.members,
        groups = scim_totals.groups + EXCLUDED.groups
$$;
CREATE OR REPLACE FUNCTION scim_totals_workspace_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO scim_totals (workspace_id, slot, members, groups) VALUES (NEW.id, 0, 0, 0)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION scim_totals_member_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.deleted_at IS NULL THEN
            UPDATE scim_totals SET members = members - 1
            WHERE workspace_id = OLD.workspace_id AND slot = 0;
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL THEN
        PERFORM scim_totals_add(OLD.workspace_id, -1, 0);
    END IF;
    IF NEW.deleted_at IS NULL THEN
        PERFORM scim_totals_add(NEW.workspace_id, 1, 0);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION scim_totals_group_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE scim_totals SET groups = groups - 1
        WHERE workspace_id = OLD.workspace_id AND slot = 0;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        PERFORM scim_totals_add(OLD.workspace_id, 0, -1);
    END IF;
    PERFORM scim_totals_add(NEW.workspace_id, 0, 1);
    RETURN NULL;
END $$;
CREATE TRIGGER scim_totals_workspace_created AFTER INSERT ON workspaces
    FOR EACH ROW EXECUTE FUNCTION scim_totals_workspace_created();
CREATE TRIGGER scim_totals_member_inserted AFTER INSERT ON members
    FOR EACH ROW EXECUTE FUNCTION scim_totals_member_changed();
CREATE TRIGGER scim_totals_member_updated AFTER UPDATE OF deleted_at, workspace_id ON members
    FOR EACH ROW WHEN (OLD.deleted_at IS DISTINCT FROM NEW.deleted_at
                       OR OLD.workspace_id IS DISTINCT FROM NEW.workspace_id)
    EXECUTE FUNCTION scim_totals_member_changed();
CREATE TRIGGER scim_totals_member_deleted AFTER DELETE ON members
    FOR EACH ROW EXECUTE FUNCTION scim_totals_member_changed();
CREATE TRIGGER scim_totals_group_inserted AFTER INSERT ON groups
    FOR EACH ROW EXECUTE FUNCTION scim_totals_group_changed();
CREATE TRIGGER scim_totals_group_moved AFTER UPDATE OF workspace_id ON groups
    FOR EACH ROW WHEN (OLD.workspace_id IS DISTINCT FROM NEW.workspace_id)
    EXECUTE FUNCTION scim_totals_group_changed();
CREATE TRIGGER scim_totals_group_deleted AFTER DELETE ON groups
    FOR EACH ROW EXECUTE FUNCTION scim_totals_group_changed();
"""

# SQLite: every change goes to slot 0, made by the workspace's own insert (or the backfill).
_SQLITE_TRIGGERS = [
    """CREATE TRIGGER scim_totals_workspace_created AFTER INSERT ON workspaces BEGIN
        INSERT OR IGNORE INTO scim_totals (workspace_id, slot, members, groups)
        VALUES (NEW.id, 0, 0, 0);
    END""",
    """CREATE TRIGGER scim_totals_member_inserted AFTER INSERT ON members
    WHEN NEW.deleted_at IS NULL BEGIN
        UPDATE scim_totals SET members = members + 1
        WHERE workspace_id = NEW.workspace_id AND slot = 0;
    END""",
    """CREATE TRIGGER scim_totals_member_updated AFTER UPDATE OF deleted_at, workspace_id
    ON members WHEN OLD.deleted_at IS NOT NEW.deleted_at
                 OR OLD.workspace_id IS NOT NEW.workspace_id BEGIN
        UPDATE scim_totals SET members = members - 1
        WHERE workspace_id = OLD.workspace_id AND slot = 0 AND OLD.deleted_at IS NULL;
        UPDATE scim_totals SET members = members + 1
        WHERE workspace_id = NEW.workspace_id AND slot = 0 AND NEW.deleted_at IS NULL;
    END""",
    """CREATE TRIGGER scim_totals_member_deleted AFTER DELETE ON members
    WHEN OLD.deleted_at IS NULL BEGIN
        UPDATE scim_totals SET members = members - 1
        WHERE workspace_id = OLD.workspace_id AND slot = 0;
    END""",
    """CREATE TRIGGER scim_totals_group_inserted AFTER INSERT ON groups BEGIN
        UPDATE scim_totals SET groups = groups + 1
        WHERE workspace_id = NEW.workspace_id AND slot = 0;
    END""",
    """CREATE TRIGGER scim_totals_group_moved AFTER UPDATE OF workspace_id ON groups
    WHEN OLD.workspace_id IS NOT NEW.workspace_id BEGIN
        UPDATE scim_totals SET groups = groups - 1 WHERE workspace_id = OLD.workspace_id AND slot = 0;
        UPDATE scim_totals SET groups = groups + 1 WHERE workspace_id = NEW.workspace_id AND slot = 0;
    END""",
    """CREATE TRIGGER scim_totals_group_deleted AFTER DELETE ON groups BEGIN
        UPDATE scim_totals SET groups = groups - 1
        WHERE workspace_id = OLD.workspace_id AND slot = 0;
    END""",
]
_TRIGGERS = [
    ("workspaces", "scim_totals_workspace_created"),
    ("members", "scim_totals_member_inserted"),
    ("members", "scim_totals_member_updated"),
    ("members", "scim_totals_member_deleted"),
    ("groups", "scim_totals_group_inserted"),
    ("groups", "scim_totals_group_moved"),
    ("groups", "scim_totals_group_deleted"),
]

_BACKFILL = """
INSERT INTO scim_totals (workspace_id, slot, members, groups)
SELECT w.id, 0,
    (SELECT COUNT(*) FROM members m WHERE m.workspace_id = w.id AND m.deleted_at IS NULL),
    (SELECT COUNT(*) FROM groups g WHERE g.workspace_id = w.id)
FROM workspaces w
"""


def upgrade() -> None:
    op.create_table(
        "scim_totals",
        sa.Column(
            "workspace_id",
            sa.Integer(),
            sa.ForeignKey(
                "workspaces.id",
                ondelete="CASCADE",
                name="fk_scim_totals_workspace_id_workspaces",
            ),
            nullable=False,
        ),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("groups", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "slot", name="pk_scim_totals"),
    )
    bind = op.get_bind()
    # Counted and triggered in one transaction (Alembic's), so no write falls between the two.
    if bind.dialect.name == "postgresql":
        op.execute("LOCK TABLE members, groups IN SHARE MODE")
        op.execute(_BACKFILL)
        op.execute(_PG_FUNCTIONS)
    else:
        op.execute(_BACKFILL)
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    for table, trigger in _TRIGGERS:
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    if bind.dialect.name == "postgresql":
        for function in (
            "scim_totals_workspace_created()",
            "scim_totals_member_changed()",
            "scim_totals_group_changed()",
            "scim_totals_add(integer, integer, integer)",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_table("scim_totals")
