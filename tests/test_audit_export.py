"""audit_export: keyset batches over a real database, the --since forms, and the CSV guard."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert

from webwork_sso_middleware import audit_export
from webwork_sso_middleware.errors import UnknownWorkspace
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import AuditEvent
from webwork_sso_middleware.store.workspaces import Workspaces


@pytest.fixture
def beta(database: Database) -> int:
    Workspaces(database).create("beta", name="Beta", plan="plus", owner_email="owner@beta.test")
    workspace_id, slug = audit_export.find_workspace(database, " BETA ")
    assert slug == "beta"
    return workspace_id


def test_batches_walk_every_row_once_through_equal_times(database: Database, beta: int) -> None:
    """Keyset pagination: rows that share one occurred_at are neither lost nor repeated at a
    batch's edge, and each batch is a bounded read."""
    workspace_id = beta
    moment = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    database.run(
        lambda unit: unit.connection.execute(
            insert(AuditEvent),
            [
                {
                    "workspace_id": workspace_id,
                    "occurred_at": moment + dt.timedelta(seconds=n // 3),
                    "actor": "test",
                    "action": "created",
                    "target_type": "member",
                    "target_id": f"m{n}",
                    "changes": {},
                }
                for n in range(11)
            ],
        )
    )
    since = moment - dt.timedelta(seconds=1)
    batches = list(audit_export.events(database, workspace_id, since=since, batch=2))
    assert all(len(batch) <= 2 for batch in batches)
    assert [row.target_id for batch in batches for row in batch] == [f"m{n}" for n in range(11)]
    chunks = list(audit_export.export(database, workspace_id, "beta", since=since, batch=4))
    assert len(chunks) == 3  # written as each batch comes, not all at the end
    assert b"".join(chunks).count(b"\n") == 11


def test_an_unknown_slug_is_refused(database: Database) -> None:
    with pytest.raises(UnknownWorkspace, match="no workspace 'nobody'"):
        audit_export.find_workspace(database, "nobody")


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-12-01", dt.datetime(2026, 12, 1, tzinfo=dt.UTC)),
        ("2026-12-01T09:30", dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)),
        ("2026-12-01T09:30:15Z", dt.datetime(2026, 12, 1, 9, 30, 15, tzinfo=dt.UTC)),
        ("2026-12-01T09:30+02:00", dt.datetime(2026, 12, 1, 7, 30, tzinfo=dt.UTC)),
        (" 2026-12-01 ", dt.datetime(2026, 12, 1, tzinfo=dt.UTC)),
    ],
)
def test_since_is_a_date_or_an_iso_moment_in_utc(text: str, moment: dt.datetime) -> None:
    assert audit_export.parse_since(text) == moment


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2026-13-01",
        "01/12/2026",
        "1733040000",
        "0001-01-01T00:00+01:00",  # before the calendar's first moment in UTC
        "9999-12-31T23:59-05:00",  # after its last
    ],
)
def test_anything_else_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a date"):
        audit_export.parse_since(text)


def test_the_csv_guard_quotes_formula_starts_only() -> None:
    for risky in ("=1+1", "+1", "-1", "@A1", "\tx", "\rx", " =1+1", "\n=1+1", "\u200b=cmd"):
        assert audit_export.csv_cell(risky) == "'" + risky
    for risky in ("\uff1d1+1", "|calc"):  # a fullwidth "=", a DDE pipe
        assert audit_export.csv_cell(risky) == "'" + risky
    for safe in ("ada@acme.test", "scim:abcd", "{}", "", "1-2", None, 7):
        assert audit_export.csv_cell(safe) == safe


def test_an_unknown_format_is_refused_before_anything_is_read(database: Database) -> None:
    with pytest.raises(ValueError, match="jsonl, csv"):
        next(audit_export.export(database, 1, "x", format="xml"))
