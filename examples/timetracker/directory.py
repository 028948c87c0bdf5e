"""The tracker's own view of each workspace, kept from the middleware's lifecycle events: who
holds a seat (an active member), and what happened (the Activity page).

It follows the durable feed, ``middleware.events.since(cursor)``, from a cursor it keeps in its
own SQLite file, and catches up whenever the middleware tells it, in-process, that something
happened (``events.subscribe``), and before an admin page is shown (a change made by another
worker or the CLI reaches it then). The feed delivers at least once, so applying an event twice
must change nothing: each event's stable id is recorded in the same transaction that applies it,
and a repeated id is skipped. Events of every workspace land here, each row keyed by its
workspace; the pages only ever read the viewer's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

BATCH = 200  # events read from the feed at a time
FEED = "webwork_sso"  # the cursor's name: one feed followed

SCHEMA = """
CREATE TABLE IF NOT EXISTS seats (
    workspace TEXT NOT NULL,
    member_id TEXT NOT NULL,
    identity TEXT NOT NULL,
    active INTEGER NOT NULL,
    since TEXT NOT NULL,
    PRIMARY KEY (workspace, member_id)
);
CREATE TABLE IF NOT EXISTS activity (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    workspace TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    source TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_activity_workspace ON activity (workspace, seq);
CREATE TABLE IF NOT EXISTS feed_cursors (name TEXT PRIMARY KEY, cursor TEXT);
"""


class EventFeed(Protocol):
    """What the tracker uses of ``SSOMiddleware.events``."""

    def since(
        self, cursor: str | None = None, *, limit: int = 100, workspace: str | None = None
    ) -> Sequence[Any]: ...

    def subscribe(self, handler: Callable[[Any], None], kinds: Any = None) -> Any: ...

    def unsubscribe(self, handler: Callable[[Any], None]) -> None: ...


@dataclasses.dataclass(frozen=True)
class Activity:
    """One lifecycle event, as the Activity page shows it."""

    kind: str
    subject: str  # the member's identity, or the group's name
    source: str
    occurred_at: dt.datetime
    changes: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Seat:
    member_id: str
    identity: str
    active: bool
    since: dt.datetime


def _read(event: Any) -> tuple[str, str, str, str, str, dt.datetime, dict[str, Any]]:
    """(id, workspace, kind, subject, source, occurred at, changes) of a feed event.

    The only place that knows the event's attribute names."""
    changes = dict(getattr(event, "changes", None) or {})
    group_name = getattr(event, "group_name", None)
    if str(event.kind).startswith("group.member_") and group_name:
        changes = {"group": group_name, **changes}  # the subject is the member
    subject = (
        getattr(event, "identity", None)
        or getattr(event, "group_name", None)
        or getattr(event, "member_id", None)
        or getattr(event, "group_id", None)
        or ""
    )
    occurred_at = event.occurred_at
    if occurred_at.tzinfo is None:  # stored as UTC without a zone
        occurred_at = occurred_at.replace(tzinfo=dt.UTC)
    return (
        str(event.id),
        str(event.workspace),
        str(event.kind),
        str(subject),
        str(event.source),
        occurred_at,
        changes,
    )


class Directory:
    """Seats and activity per workspace, and the feed cursor, in the tracker's SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        connection = sqlite3.connect(self.path, timeout=30)
        try:
            connection.executescript(SCHEMA)  # commits by itself
        finally:
            connection.close()

    @contextlib.contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        # A write begins IMMEDIATE: two workers catching up at once take turns, and the second
        # sees the cursor the first stored (apply() checks it) rather than both applying it.
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def cursor(self) -> str | None:
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT cursor FROM feed_cursors WHERE name = ?", (FEED,)
            ).fetchone()
        return None if row is None else row[0]

    def apply(self, events: Sequence[Any], *, read_from: str | None) -> int:
        """Apply a batch read from the feed at ``read_from``; the events newly applied.

        Nothing is applied when the stored cursor moved meanwhile (another worker applied this
        batch): the caller reads again from where it now is."""
        applied = 0
        with self._transaction(write=True) as connection:
            row = connection.execute(
                "SELECT cursor FROM feed_cursors WHERE name = ?", (FEED,)
            ).fetchone()
            if (None if row is None else row[0]) != read_from:
                return 0
            for event in events:
                applied += self._apply_one(connection, event)
            last = getattr(events[-1], "cursor", None) if events else None
            if last is not None:
                connection.execute(
                    "INSERT INTO feed_cursors (name, cursor) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor",
                    (FEED, str(last)),
                )
        return applied

    def _apply_one(self, connection: sqlite3.Connection, event: Any) -> int:
        event_id, workspace, kind, subject, source, occurred_at, changes = _read(event)
        recorded = connection.execute(
            "INSERT INTO activity (event_id, workspace, kind, subject, source, occurred_at,"
            " changes) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            (
                event_id,
                workspace,
                kind,
                subject,
                source,
                occurred_at.isoformat(),
                json.dumps(changes, default=str, sort_keys=True),
            ),
        )
        if recorded.rowcount == 0:
            return 0  # seen before: at-least-once delivery, applied once
        member_id = getattr(event, "member_id", None)
        if kind.startswith("member.") and member_id:
            active = changes.get("active") if kind == "member.created" else None
            self._seat(
                connection,
                kind,
                workspace,
                str(member_id),
                subject,
                occurred_at,
                created_active=active if isinstance(active, bool) else True,
            )
        return 1

    def _seat(
        self,
        connection: sqlite3.Connection,
        kind: str,
        workspace: str,
        member_id: str,
        identity: str,
        occurred_at: dt.datetime,
        *,
        created_active: bool,
    ) -> None:
        if kind == "member.deleted":
            connection.execute(
                "DELETE FROM seats WHERE workspace = ? AND member_id = ?", (workspace, member_id)
            )
            return
        # A sign-in or an update says the member exists; only these say whether it is active
        # (SCIM may create a member inactive).
        active = {
            "member.deactivated": 0,
            "member.reactivated": 1,
            "member.created": int(created_active),
        }.get(kind)
        connection.execute(
            "INSERT INTO seats (workspace, member_id, identity, active, since)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (workspace, member_id) DO UPDATE SET"
            " identity = excluded.identity,"
            " active = CASE WHEN ? IS NULL THEN seats.active ELSE excluded.active END",
            (
                workspace,
                member_id,
                identity,
                1 if active is None else active,
                occurred_at.isoformat(),
                active,
            ),
        )

    def seat_count(self, workspace: str) -> int:
        with self._transaction() as connection:
            (count,) = connection.execute(
                "SELECT COUNT(*) FROM seats WHERE workspace = ? AND active = 1", (workspace,)
            ).fetchone()
        return int(count)

    def roster(self, workspace: str) -> list[Seat]:
        """The workspace's members the tracker knows of, active first, then by identity."""
        with self._transaction() as connection:
            rows = connection.execute(
                "SELECT member_id, identity, active, since FROM seats WHERE workspace = ?"
                " ORDER BY active DESC, identity",
                (workspace,),
            ).fetchall()
        return [Seat(m, i, bool(a), dt.datetime.fromisoformat(s)) for m, i, a, s in rows]

    def activity(self, workspace: str, *, limit: int = 100) -> list[Activity]:
        """The workspace's latest events, newest first (in the feed's order)."""
        with self._transaction() as connection:
            rows = connection.execute(
                "SELECT kind, subject, source, occurred_at, changes FROM activity"
                " WHERE workspace = ? ORDER BY seq DESC LIMIT ?",
                (workspace, limit),
            ).fetchall()
        return [
            Activity(k, s, src, dt.datetime.fromisoformat(at), json.loads(c))
            for k, s, src, at, c in rows
        ]


class Follower:
    """Keeps a Directory up to date from the middleware's event feed."""

    def __init__(self, directory: Directory, events: EventFeed) -> None:
        self.directory = directory
        self.events = events
        self._lock = threading.Lock()  # one catch-up at a time in this process

    def catch_up(self) -> int:
        """Read the feed from the stored cursor to its end; the events newly applied."""
        applied = 0
        with self._lock:
            while True:
                cursor = self.directory.cursor()
                batch = list(self.events.since(cursor, limit=BATCH))
                if not batch:
                    return applied
                applied += self.directory.apply(batch, read_from=cursor)
                if getattr(batch[-1], "cursor", None) in (None, cursor):
                    return applied  # a feed that does not advance: never loop on it

    def on_event(self, event: Any) -> None:
        """The in-process subscriber: whatever the event, read the feed from the cursor (the
        event itself is applied from there, once, in order)."""
        self.catch_up()
