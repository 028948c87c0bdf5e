"""A workspace's audit log as JSON Lines or CSV, streamed, for the customer's SIEM.

Both the CLI (``webwork-sso audit export``) and the settings page's download use it. Rows are
read a batch at a time (keyset pagination, store/audit.export_page), each batch in a short
read-only transaction of its own, and handed on as they come: memory stays bounded whatever
the log's size, and no lock is held while the reader is slow.

- **JSON Lines**: one object per event, keys ``id``, ``occurred_at`` (ISO 8601, UTC),
  ``workspace``, ``actor``, ``action``, ``target_type``, ``target_id``, ``changes`` (an object).
  ``ensure_ascii``: every line is ASCII, so no value can break it (U+2028 included).
- **CSV** (RFC 4180: a header row, every cell quoted, CRLF line ends, UTF-8 without a BOM):
  the same columns, ``changes`` as JSON text. A cell that starts with ``=``, ``+``, ``-``,
  ``@``, tab or carriage return gets a ``'`` in front (OWASP's advice against CSV/formula
  injection), so a spreadsheet shows an IdP-sent display name such as ``=HYPERLINK(...)`` as
  text instead of running it. That changes those values by one leading quote, in CSV only:
  JSON Lines carries every value exactly.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import unicodedata
from collections.abc import Iterator
from functools import partial
from typing import Any

from .errors import UnknownWorkspace
from .store import audit
from .store.db import Database, UnitOfWork
from .store.workspaces import find_by_slug

FORMATS = ("jsonl", "csv")
DEFAULT_FORMAT = "jsonl"
MEDIA_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8; header=present",
}
COLUMNS = (
    "id",
    "occurred_at",
    "workspace",
    "actor",
    "action",
    "target_type",
    "target_id",
    "changes",
)
BATCH = 500
# The start of time for an export without --since (every event the retention kept).
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# What a spreadsheet may read as the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def parse_since(text: str) -> dt.datetime:
    """``2026-12-01`` (midnight UTC) or an ISO 8601 date and time (UTC unless it names its
    offset), as an aware UTC datetime; ValueError saying what is expected otherwise."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC)  # OverflowError at the ends of the calendar
    except (ValueError, OverflowError):
        raise ValueError(
            f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 date and time"
            " (YYYY-MM-DDTHH:MM[:SS][+HH:MM])"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def find_workspace(database: Database, slug: str) -> tuple[int, str]:
    """The id and slug of the workspace ``slug`` names; UnknownWorkspace when none does."""

    def work(unit: UnitOfWork) -> tuple[int, str] | None:
        workspace = find_by_slug(unit, slug)
        return (workspace.id, workspace.slug) if workspace is not None else None

    found = database.run(work, write=False)
    if found is None:
        raise UnknownWorkspace(slug)
    return found


def events(
    database: Database, workspace_id: int, *, since: dt.datetime, batch: int = BATCH
) -> Iterator[list[Any]]:
    """The workspace's events from ``since`` on, oldest first, one batch (a list of rows) at
    a time; each batch is read in a transaction of its own."""
    after: tuple[dt.datetime, int] | None = None
    while True:
        page = database.run(
            partial(
                audit.export_page, workspace_id=workspace_id, since=since, after=after, limit=batch
            ),
            write=False,
        )
        if page:
            yield page
        if len(page) < batch:
            return
        after = (page[-1].occurred_at, page[-1].id)


def document(row: Any, slug: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "occurred_at": row.occurred_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "workspace": slug,
        "actor": row.actor,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "changes": row.changes or {},
    }


def csv_cell(value: Any) -> Any:
    """A cell as a spreadsheet may safely open it: text that could start a formula is
    prefixed with a single quote; numbers and empty cells are left alone."""
    if isinstance(value, str) and _formula_like(value):
        return "'" + value
    return value


def _formula_like(value: str) -> bool:
    # Spreadsheets skip leading blanks and read fullwidth signs (U+FF1D) as their ASCII forms;
    # NFKC folds those, and a leading "|" starts a DDE call in some.
    folded = unicodedata.normalize("NFKC", value).lstrip(" \n\u200b\ufeff")
    return value.startswith(FORMULA_STARTS) or folded.startswith(FORMULA_STARTS + ("|",))


def export(
    database: Database,
    workspace_id: int,
    slug: str,
    *,
    since: dt.datetime = EPOCH,
    format: str = DEFAULT_FORMAT,
    batch: int = BATCH,
) -> Iterator[bytes]:
    """The export as UTF-8 chunks: the CSV header first, then one chunk per batch of rows."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if format == "csv":
        yield _csv_lines([COLUMNS])
    for page in events(database, workspace_id, since=since, batch=batch):
        documents = [document(row, slug) for row in page]
        if format == "jsonl":
            yield "".join(
                json.dumps(d, ensure_ascii=True, sort_keys=False) + "\n" for d in documents
            ).encode("ascii")
        else:
            yield _csv_lines(
                [
                    [
                        csv_cell(
                            json.dumps(d[column], ensure_ascii=False, sort_keys=True)
                            if column == "changes"
                            else d[column]
                        )
                        for column in COLUMNS
                    ]
                    for d in documents
                ]
            )


def _csv_lines(rows: list[Any]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def filename(slug: str, format: str, now: dt.datetime | None = None) -> str:
    """``acme-audit-2026-12-07.jsonl``: the slug is letters, digits and hyphens (store rules)."""
    day = (now or dt.datetime.now(dt.UTC)).date().isoformat()
    return f"{slug}-audit-{day}.{format}"
