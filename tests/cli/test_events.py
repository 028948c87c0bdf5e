"""``webwork-sso events list`` (cli/events.py), through main(argv) against the database a
served site writes its events to (SCIM over real HTTP)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ..saml.conftest import Site
from ..test_cli import Cli, assert_one_line_failure
from ..test_cli import _no_webwork_environment as _no_webwork_environment
from ..test_cli import cli as cli


def lines(cli: Cli, *argv: str) -> list[dict[str, Any]]:
    code, out, err = cli("events", "list", "--json", *argv)
    assert (code, err) == (0, "")
    return [json.loads(line) for line in out.splitlines()]


def test_json_lines_with_cursors_continue_where_they_stopped(
    cli: Cli, site_with_members: Site
) -> None:
    first = lines(cli, "--limit", "2")
    assert [(e["kind"], e["identity"], e["workspace"]) for e in first] == [
        ("member.created", "ada@acme.test", "acme"),
        ("member.created", "cyd@beta.test", "beta"),
    ]
    assert set(first[0]) >= {"id", "cursor", "source", "occurred_at", "changes", "member_id"}
    rest = lines(cli, "--since", first[-1]["cursor"])
    assert [e["identity"] for e in rest] == ["bob@acme.test"]
    assert lines(cli, "--since", rest[-1]["cursor"]) == []
    # The same events the host reads through the API, same ids and cursors.
    api = site_with_members.middleware.events.since()
    assert [(e.id, e.cursor) for e in api] == [(e["id"], e["cursor"]) for e in first + rest]


def test_one_workspace_only(cli: Cli, site_with_members: Site) -> None:
    assert [e["identity"] for e in lines(cli, "--workspace", "beta")] == ["cyd@beta.test"]
    assert lines(cli, "--workspace", "BETA") == lines(cli, "--workspace", "beta")


def test_text_lines_name_cursor_workspace_kind_and_member(
    cli: Cli, site_with_members: Site
) -> None:
    code, out, err = cli("events", "list", "--workspace", "acme")
    assert (code, err) == (0, "")
    rows = [line.split("\t") for line in out.splitlines()]
    assert [(r[2], r[3], r[4], r[5].split(" ")[0]) for r in rows] == [
        ("acme", "member.created", "scim", "ada@acme.test"),
        ("acme", "member.created", "scim", "bob@acme.test"),
    ]


@pytest.mark.parametrize(
    ("argv", "fragment", "code"),
    [
        (("--since", "not-a-cursor"), "not a cursor", 1),
        (("--since", "-5"), "not a cursor", 1),
        (("--since", str(2**63)), "not a cursor", 1),  # beyond the column: not a DataError
        (("--since", str(2**31)), "past the newest event", 1),
        # A typo'd slug would otherwise list nothing for ever, as a quiet workspace does.
        (("--workspace", "nobody"), "no workspace 'nobody'", 1),
        (("--limit", "0"), "must be from 1 to 1000", 2),
        (("--limit", "many"), "not a whole number", 2),
    ],
)
def test_bad_input_is_one_line(
    cli: Cli, site_with_members: Site, argv: tuple[str, ...], fragment: str, code: int
) -> None:
    assert_one_line_failure(cli("events", "list", *argv), fragment, code=code)
