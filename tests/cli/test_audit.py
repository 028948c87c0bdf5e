"""``webwork-sso audit export`` (cli/audit.py, audit_export.py), through main(argv) against the
database a served site writes its audit log to (SCIM over real HTTP)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest

from webwork_sso_middleware import audit_export
from webwork_sso_middleware.store import Database, audit

from ..saml.conftest import Site
from ..test_cli import (
    Cli,
    assert_one_line_failure,
    run_script_into_a_closed_pipe,
)
from ..test_cli import _no_webwork_environment as _no_webwork_environment
from ..test_cli import cli as cli

HOSTILE_CELLS = ['=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(1)", "\tx", "\rx"]


def jsonl(cli: Cli, *argv: str) -> list[dict[str, Any]]:
    code, out, err = cli("audit", "export", *argv)
    assert (code, err) == (0, "")
    assert out.endswith("\n") or out == ""
    return [json.loads(line) for line in out.splitlines()]


def test_jsonl_is_the_workspaces_own_events_oldest_first(cli: Cli, site_with_members: Site) -> None:
    rows = jsonl(cli, "acme", "--since", "2000-01-01")
    created = [r for r in rows if r["action"] == "created"]
    assert len(created) == 2 and all(r["workspace"] == "acme" for r in rows)
    assert set(rows[0]) == set(audit_export.COLUMNS)
    assert [r["occurred_at"] for r in rows] == sorted(r["occurred_at"] for r in rows)
    assert all(r["occurred_at"].endswith("Z") for r in rows)
    # beta's member never appears in acme's export, and the other way round.
    assert "cyd@beta.test" not in json.dumps(rows)
    beta = jsonl(cli, "beta", "--since", "2000-01-01", "--format", "jsonl")
    assert beta and "ada@acme.test" not in json.dumps(beta) and "cyd@beta.test" in json.dumps(beta)


def test_since_a_date_or_a_moment(cli: Cli, site_with_members: Site) -> None:
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    assert jsonl(cli, "acme", "--since", tomorrow) == []
    everything = jsonl(cli, "acme", "--since", "2000-01-01")
    last = everything[-1]["occurred_at"]
    assert jsonl(cli, "acme", "--since", last) == [everything[-1]]
    # The same moment named in another offset.
    moment = dt.datetime.fromisoformat(last).astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert jsonl(cli, "acme", "--since", moment.isoformat()) == [everything[-1]]


def test_csv_has_a_header_quotes_and_no_formulas(
    cli: Cli, site_with_members: Site, database: Database
) -> None:
    workspace_id, _ = audit_export.find_workspace(database, "acme")
    for value in HOSTILE_CELLS:
        database.run(
            lambda unit, value=value: audit.record(
                unit,
                workspace_id=workspace_id,
                actor=value,
                action="created",
                target_type="member",
                target_id=value,
                changes={"displayName": value, "note": 'a "quoted", two\nlines'},
            )
        )
    code, out, err = cli("audit", "export", "acme", "--since", "2000-01-01", "--format", "csv")
    assert (code, err) == (0, "")
    assert out.startswith('"id","occurred_at","workspace","actor",')
    table = list(csv.reader(io.StringIO(out, newline="")))
    header, body = table[0], table[1:]
    assert tuple(header) == audit_export.COLUMNS
    hostile = [dict(zip(header, row, strict=True)) for row in body][-len(HOSTILE_CELLS) :]
    assert [row["actor"] for row in hostile] == ["'" + value for value in HOSTILE_CELLS]
    assert [row["target_id"] for row in hostile] == ["'" + value for value in HOSTILE_CELLS]
    for row in body:
        assert not row[3].startswith(audit_export.FORMULA_STARTS)  # every cell, every column
    # The JSON column keeps the values as they are (it starts with "{": no formula).
    changes = json.loads(hostile[0]["changes"])
    assert changes == {"displayName": HOSTILE_CELLS[0], "note": 'a "quoted", two\nlines'}
    # JSON Lines carry the same values exactly, each on one line.
    rows = jsonl(cli, "acme", "--since", "2000-01-01")
    assert [r["actor"] for r in rows[-len(HOSTILE_CELLS) :]] == HOSTILE_CELLS


@pytest.mark.parametrize(
    ("argv", "fragment", "code"),
    [
        (("nobody", "--since", "2026-01-01"), "no workspace 'nobody'", 1),
        (("acme", "--since", "yesterday"), "is not a date (YYYY-MM-DD)", 2),
        (("acme", "--since", "2026-13-01"), "is not a date", 2),
        (("acme",), "required: --since", 2),
        (("acme", "--since", "2026-01-01", "--format", "xml"), "invalid choice: 'xml'", 2),
    ],
)
def test_bad_input_is_one_line(
    cli: Cli, site_with_members: Site, argv: tuple[str, ...], fragment: str, code: int
) -> None:
    assert_one_line_failure(cli("audit", "export", *argv), fragment, code=code)


def test_help_describes_the_command_and_each_option(cli: Cli) -> None:
    code, out, _ = cli("audit", "export", "--help")
    assert code == 0
    for words in ("oldest first", "--since DATE", "midnight UTC", "jsonl (JSON Lines) or csv"):
        assert words in " ".join(out.split())


def test_into_a_closed_pipe_it_ends_quietly_with_sigpipes_status(
    site_with_members: Site, database_url: str
) -> None:
    """`webwork-sso audit export ... | head -1`: no traceback, exit 141."""
    exported = run_script_into_a_closed_pipe(
        "--database-url", database_url, "audit", "export", "acme", "--since", "2000-01-01"
    )
    assert (exported.returncode, exported.stderr) == (141, "")
