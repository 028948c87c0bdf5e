"""SCIM totals: the PostgreSQL triggers add to their slot row with a plan they keep

Migration 0013's trigger functions called ``scim_totals_add``, a SQL-language function, through
PERFORM. PostgreSQL plans a SQL function's statement again on every such call (its plan lives
only as long as the calling query), so each member or group created paid for parsing and
planning an INSERT ... ON CONFLICT. The trigger functions now run that statement themselves:
PL/pgSQL prepares each of its statements once per connection and keeps the plan.

Measured with pgbench on a SCIM create's own statement (4 clients): PostgreSQL's CPU per create
fell from 0.50 to 0.44 ms and from 0.51 to 0.43 ms in two interleaved rounds. What the triggers
count, and where, is unchanged; SQLite's triggers are plain SQL already and are not touched.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Callable

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

SLOTS = 16  # as in 0013: each connection adds to slot mod(pg_backend_pid(), SLOTS)


def _upsert(workspace: str, members: int, groups: int) -> str:
    """0015: the statement itself, in the trigger function (PL/pgSQL keeps its plan)."""
    return f"""
        INSERT INTO scim_totals (workspace_id, slot, members, groups)
        VALUES ({workspace}, mod(pg_backend_pid(), {SLOTS}), {members}, {groups})
        ON CONFLICT (workspace_id, slot) DO UPDATE
        SET members = scim_totals.members + EXCLUDED.members,
            groups = scim_totals.groups + EXCLUDED.groups;"""


def _perform(workspace: str, members: int, groups: int) -> str:
    """0013: a call of scim_totals_add (planned again on every call)."""
    return f"""
        PERFORM scim_totals_add({workspace}, {members}, {groups});"""


def _trigger_functions(add: Callable[[str, int, int], str]) -> str:
    """The member and group trigger functions, adding to a slot with ``add``."""
    return f"""
CREATE OR REPLACE FUNCTION scim_totals_member_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.deleted_at IS NULL THEN
            UPDATE scim_totals SET members = members - 1
            WHERE workspace_id = OLD.workspace_id AND slot = 0;
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL THEN{add("OLD.workspace_id", -1, 0)}
    END IF;
    IF NEW.deleted_at IS NULL THEN{add("NEW.workspace_id", 1, 0)}
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
    IF TG_OP = 'UPDATE' THEN{add("OLD.workspace_id", 0, -1)}
    END IF;{add("NEW.workspace_id", 0, 1)}
    RETURN NULL;
END $$;
"""


# 0013's helper, which the downgrade's functions call again.
_ADD_FUNCTION_0013 = f"""
CREATE OR REPLACE FUNCTION scim_totals_add(ws integer, d_members integer, d_groups integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO scim_totals (workspace_id, slot, members, groups)
    VALUES (ws, mod(pg_backend_pid(), {SLOTS}), d_members, d_groups)
    ON CONFLICT (workspace_id, slot) DO UPDATE
    SET members = scim_totals.members + EXCLUDED.members,
        groups = scim_totals.groups + EXCLUDED.groups
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_trigger_functions(_upsert))
        op.execute("DROP FUNCTION scim_totals_add(integer, integer, integer)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_ADD_FUNCTION_0013)
        op.execute(_trigger_functions(_perform))
