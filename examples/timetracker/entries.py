"""The time tracker's own data: time entries per person, in its SQLite file (standard library
``sqlite3``; a connection per call, so threads share none), and the form values they come from."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from werkzeug.exceptions import BadRequest

MAX_DESCRIPTION_LENGTH = 500
MAX_MINUTES = 24 * 60
EARLIEST_DATE = dt.date(2000, 1, 1)

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    user_name TEXT NOT NULL,
    description TEXT NOT NULL,
    minutes INTEGER NOT NULL CHECK (minutes > 0),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_entries_user_name ON entries (user_name, id);
"""


@dataclasses.dataclass(frozen=True)
class Entry:
    description: str
    minutes: int
    day: dt.date

    @property
    def week(self) -> dt.date:
        """The Monday of the entry's ISO week."""
        return self.day - dt.timedelta(days=self.day.weekday())


@contextlib.contextmanager
def connect(path: str) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, timeout=30)
    try:
        with connection:  # commits on success, rolls back on error
            yield connection
    finally:
        connection.close()


class EntryStore:
    """Time entries per person, keyed by REMOTE_USER."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with connect(self.path) as connection:
            connection.executescript(SCHEMA)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(entries)")}
            if "work_date" not in columns:
                # Files from before entries had a date: those rows fall back to when they were
                # recorded (see for_user), so nothing needs rewriting.
                connection.execute("ALTER TABLE entries ADD COLUMN work_date TEXT")

    def add(self, user_name: str, description: str, minutes: int, day: dt.date) -> None:
        created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with connect(self.path) as connection:
            connection.execute(
                "INSERT INTO entries (user_name, description, minutes, created_at, work_date)"
                " VALUES (?, ?, ?, ?, ?)",
                (user_name, description, minutes, created_at, day.isoformat()),
            )

    def for_user(self, user_name: str) -> list[Entry]:
        """The person's entries, the latest day first (and the latest recorded first within it)."""
        with connect(self.path) as connection:
            rows = connection.execute(
                "SELECT description, minutes, COALESCE(work_date, substr(created_at, 1, 10)) AS day"
                " FROM entries WHERE user_name = ? ORDER BY day DESC, id DESC",
                (user_name,),
            )
            return [Entry(str(d), int(m), dt.date.fromisoformat(str(day))) for d, m, day in rows]


def parse_description(raw: str) -> str:
    description = raw.strip()
    if not description or len(description) > MAX_DESCRIPTION_LENGTH:
        raise BadRequest(f"Describe the work in 1 to {MAX_DESCRIPTION_LENGTH} characters.")
    return description


def parse_minutes(raw: str) -> int:
    try:
        minutes = int(raw.strip())
    except ValueError:
        raise BadRequest("Minutes must be a whole number.") from None
    if not 1 <= minutes <= MAX_MINUTES:
        raise BadRequest(f"Minutes must be between 1 and {MAX_MINUTES}.")
    return minutes


def parse_day(raw: str, today: dt.date) -> dt.date:
    """The day worked: YYYY-MM-DD, today when left empty, never in the future."""
    if not raw.strip():
        return today
    try:
        day = dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise BadRequest("The date must look like 2024-05-31.") from None
    # A day of slack: the browser's "today" may already be tomorrow where the person is.
    if not EARLIEST_DATE <= day <= today + dt.timedelta(days=1):
        raise BadRequest(f"The date must be between {EARLIEST_DATE} and today.")
    return day
