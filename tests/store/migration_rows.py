"""Rows as an old revision's schema holds them, for tests/store/test_migrations.py.

The models are head's, so an older schema is written to in plain SQL. Each builder returns one
row with the columns its table has at that revision and the usual values: workspace ``acme``
(id 1, Plus, SCIM and SSO on), its member ``m1`` (dave@acme.test), group ``g1``. A test passes
only what differs; ``insert`` writes the rows, ``NOW`` standing for ``CURRENT_TIMESTAMP``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, text

from webwork_sso_middleware.store import Database


class _Now:
    def __repr__(self) -> str:
        return "NOW"


NOW: Any = _Now()  # written as the database's CURRENT_TIMESTAMP, not bound


@contextlib.contextmanager
def rows_at(database_url: str, revision: str) -> Iterator[Connection]:
    """One transaction on the database upgraded to ``revision`` only, disposed of after it."""
    old = Database(database_url, auto_migrate=False)
    old.upgrade(revision)
    try:
        with old.engine.begin() as conn:
            yield conn
    finally:
        old.dispose()


def insert(conn: Connection, table: str, *rows: Mapping[str, Any]) -> None:
    """One INSERT a row; every value bound but ``NOW``."""
    for row in rows:
        columns = ", ".join(f'"{name}"' for name in row)
        values = ", ".join(
            "CURRENT_TIMESTAMP" if value is NOW else f":{name}" for name, value in row.items()
        )
        conn.execute(
            text(f"INSERT INTO {table} ({columns}) VALUES ({values})"),
            {name: value for name, value in row.items() if value is not NOW},
        )


def downgrade(database: Database, revision: str) -> None:
    """Alembic's downgrade to ``revision`` (``Database`` only upgrades)."""
    from alembic import command

    from webwork_sso_middleware.store.db import alembic_config

    config = alembic_config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def workspace_row(revision: str, **changes: Any) -> dict[str, Any]:
    """Workspace ``acme`` with the columns ``workspaces`` has at ``revision``: 0008 added the SP
    settings, 0009 require_sso."""
    row: dict[str, Any] = {
        "id": 1,
        "slug": "acme",
        "name": "Acme",
        "plan": "plus",
        "owner_email": "o@acme.test",
        "scim_enabled": True,
        "sso_enabled": True,
    }
    if revision >= "0008":
        row |= {
            "sign_authn_requests": False,
            "require_encrypted_assertions": False,
            "sp_version": 0,
        }
    if revision >= "0009":
        row["require_sso"] = False
    return row | {"created_at": NOW, "modified_at": NOW} | changes


def domain_row(revision: str, name: str, **changes: Any) -> dict[str, Any]:
    """Domain ``name`` of workspace 1; from 0005 on, a claim with a token."""
    row: dict[str, Any] = {"workspace_id": 1, "domain": name}
    if revision >= "0005":
        row |= {"verification_token": "token", "created_at": NOW}
    return row | changes


def member_row(
    member_id: str = "m1", user_name: str = "dave@acme.test", **changes: Any
) -> dict[str, Any]:
    """An active SCIM member of workspace 1, keyed (name and email) by ``user_name`` as given."""
    return {
        "id": member_id,
        "workspace_id": 1,
        "user_name": user_name,
        "user_name_key": user_name,
        "email_key": user_name,
        "active": True,
        "source": "scim",
        "session_generation": 0,
        "created_at": NOW,
        "modified_at": NOW,
        "version": 1,
    } | changes


def email_row(value_id: int, position: int, value: str, primary: bool) -> dict[str, Any]:
    """An email of member m1."""
    return {
        "id": value_id,
        "member_id": "m1",
        "attribute": "emails",
        "position": position,
        "value": value,
        "primary": primary,
    }


def group_row(**changes: Any) -> dict[str, Any]:
    """Group ``g1`` (G) of workspace 1."""
    return {
        "id": "g1",
        "workspace_id": 1,
        "display_name": "G",
        "display_name_key": "g",
        "created_at": NOW,
        "modified_at": NOW,
        "version": 1,
    } | changes
