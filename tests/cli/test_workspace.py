"""``webwork-sso workspace require-sso`` and ``break-glass`` (cli/workspace.py), through
main(argv) against a real database; what they change is read back through the middleware."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ..saml.conftest import Site
from ..saml.idp import TestIdP
from ..test_cli import Cli, assert_one_line_failure
from ..test_cli import _no_webwork_environment as _no_webwork_environment
from ..test_cli import cli as cli


def audit_rows(database_url: str) -> list[tuple[str, str, Any]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [
                (row[0], row[1], row[2])
                for row in connection.execute(
                    text(
                        "SELECT actor, action, changes FROM audit_events WHERE action IN"
                        " ('require_sso_changed', 'break_glass_opened', 'break_glass_closed')"
                        " ORDER BY id"
                    )
                )
            ]
    finally:
        engine.dispose()


@pytest.fixture
def site(serve: Callable[[Any], Any], database_url: str, idp: TestIdP) -> Iterator[Site]:
    """The site over the CLI's database, with ``acme`` (Plus, SSO on, acme.test verified,
    an IdP; owner owner@acme.test)."""
    made = Site(serve, database_url)
    made.add_workspace("acme", idp)
    yield made
    made.middleware.close()


def test_require_sso_on_and_off(cli: Cli, site: Site) -> None:
    assert not site.middleware.sso_required("dave@acme.test")
    document = cli.json("workspace", "require-sso", "acme", "on")
    assert document["require_sso"] is True
    assert site.middleware.sso_required("dave@acme.test")
    code, out, err = cli("workspace", "require-sso", "acme", "off")
    assert (code, err) == (0, "") and "no longer required" in out
    assert not site.middleware.sso_required("dave@acme.test")
    assert [(a, action) for a, action, _ in audit_rows(cli.database_url)] == [
        ("cli", "require_sso_changed"),
        ("cli", "require_sso_changed"),
    ]


def test_require_sso_is_refused_on_the_free_plan(cli: Cli) -> None:
    cli.create("tiny", plan="free")
    assert_one_line_failure(
        cli("workspace", "require-sso", "tiny", "on"), "'tiny'", "free plan", "Plus or Premium"
    )
    assert cli.json("workspace", "show", "tiny")["require_sso"] is False


def test_require_sso_bad_state_and_unknown_workspace_are_one_line_errors(cli: Cli) -> None:
    assert_one_line_failure(
        cli("workspace", "require-sso", "acme", "maybe"), "invalid choice", code=2
    )
    assert_one_line_failure(cli("workspace", "require-sso", "nobody", "on"), "nobody")


def test_break_glass_opens_for_the_owner_only_and_closes(cli: Cli, site: Site) -> None:
    cli.json("workspace", "require-sso", "acme", "on")
    document = cli.json("workspace", "break-glass", "acme", "--minutes", "30")
    until = dt.datetime.fromisoformat(document["break_glass_until"])
    assert dt.timedelta(minutes=29) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=30)
    assert not site.middleware.sso_required("owner@acme.test")
    assert site.middleware.sso_required("dave@acme.test")

    code, out, err = cli("workspace", "break-glass", "acme", "--close")
    assert (code, err) == (0, "") and "Closed" in out
    assert site.middleware.sso_required("owner@acme.test")
    assert cli.json("workspace", "show", "acme")["break_glass_until"] is None
    rows = audit_rows(cli.database_url)
    assert [(actor, action) for actor, action, _ in rows][-2:] == [
        ("cli", "break_glass_opened"),
        ("cli", "break_glass_closed"),
    ]
    assert "owner@acme.test" in str(rows[-2][2])  # JSON: text on SQLite, a dict on PostgreSQL


def test_break_glass_defaults_to_an_hour(cli: Cli, site: Site) -> None:
    code, out, err = cli("workspace", "break-glass", "acme")
    assert (code, err) == (0, "") and "owner@acme.test" in out and "nobody else" in out
    until = site.workspaces.get("acme").break_glass_until
    assert until is not None
    left = until - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=59) < left <= dt.timedelta(minutes=60)


@pytest.mark.parametrize("minutes", ["0", "241", "ten"])
def test_break_glass_minutes_out_of_bounds_are_usage_errors(cli: Cli, minutes: str) -> None:
    cli.create()
    result = cli("workspace", "break-glass", "acme", "--minutes", minutes)
    assert_one_line_failure(result, "--minutes", code=2)
    assert audit_rows(cli.database_url) == []
