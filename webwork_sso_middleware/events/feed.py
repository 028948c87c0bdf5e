"""The host's view of lifecycle events: :class:`Event`, and :class:`EventFeed` to read
(``since``) or subscribe to them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigurationError, InvalidCursor
from ..identity import host_identity, scoped_identity
from ..logs import package_logger
from ..store import Database
from ..store import events as event_store

log = package_logger(__name__)

KINDS = event_store.KINDS
MAX_LIMIT = 1000
# A cursor is a decimal number of at most this many digits (SQL integers stay below 2**63).
MAX_CURSOR_DIGITS = 18


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to a member or a group of a workspace.

    ``identity`` is the member's ``REMOTE_USER`` as the host sees it on requests (identity.py),
    as of when the event is read; ``changes`` says what changed (never a secret); ``source``
    is ``scim``, ``saml`` (sign-in, sign-out, creation at a first sign-in), ``settings`` (the
    owner's settings page) or ``cli``. ``cursor`` continues :meth:`EventFeed.since` after this
    event; it is None for an event delivered in-process before any reader numbered it.
    """

    id: str
    kind: str
    workspace: str  # the workspace's slug
    source: str
    occurred_at: dt.datetime
    member_id: str | None
    identity: str | None
    group_id: str | None
    group_name: str | None
    changes: dict[str, Any]
    cursor: str | None

    @classmethod
    def of(cls, row: event_store.EventRow) -> Event:
        identity = None
        if row.member_id is not None:
            identity = (
                host_identity(row.workspace, row.member_id, row.user_name_key, row.domain_verified)
                if row.user_name_key is not None
                else scoped_identity(row.workspace, row.member_id)
            )
        return cls(
            id=row.id,
            kind=row.kind,
            workspace=row.workspace,
            source=row.source,
            occurred_at=row.occurred_at,
            member_id=row.member_id,
            identity=identity,
            group_id=row.group_id,
            group_name=row.group_name,
            changes=row.changes,
            cursor=str(row.seq) if row.seq is not None else None,
        )

    def as_json(self) -> dict[str, Any]:
        """The event as JSON-ready values (the CLI's ``--json`` lines)."""
        fields = dataclasses.asdict(self)
        fields["occurred_at"] = self.occurred_at.isoformat()
        return fields


EventHandler = Callable[[Event], object]


class EventFeed:
    """The lifecycle events of one database: ``since`` reads the durable feed; ``subscribe``
    hears this process's changes after they commit."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._handlers: list[tuple[EventHandler, frozenset[str] | None]] = []
        self._lock = threading.Lock()
        database.on_events_committed(self._committed)  # held weakly: the feed's owner keeps it

    # -- the durable feed -------------------------------------------------------------------------

    def since(
        self, cursor: str | None = None, *, limit: int = 100, workspace: str | None = None
    ) -> list[Event]:
        """Up to ``limit`` events after ``cursor`` (None: from the oldest kept), in commit
        order; of the workspace with slug ``workspace`` only, when given. Continue with the
        last event's ``cursor`` (the same cursor again when the list is empty).

        At-least-once: a reader that stores its cursor only after handling the events may
        see an event again after a crash, never miss one (events older than
        ``audit_retention_days`` are purged). Raises InvalidCursor for a cursor that no
        ``since`` of this database handed out, ConfigurationError for a ``limit`` outside
        1..1000.
        """
        after = parse_cursor(cursor)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ConfigurationError("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
        self.sequence()
        rows = self.database.run(
            lambda unit: event_store.read(unit, after=after, limit=limit, workspace=workspace),
            write=False,
        )
        if not rows and after and after > self.database.run(event_store.newest, write=False):
            # Numbers never go back (retention keeps the newest): this cursor is from another
            # database, and waiting on it would hide every event to come.
            raise InvalidCursor(str(cursor), "is past the newest event of this database")
        return [Event.of(row) for row in rows]

    def sequence(self) -> int:
        """Number the committed events no reader numbered yet (store/events.py); how many.
        A cheap read first, so an idle poller never takes SQLite's write lock."""
        total = 0
        while self.database.run(event_store.unsequenced, write=False):
            numbered = self.database.run(event_store.sequence)
            total += numbered
            if numbered < event_store.SEQUENCE_BATCH:
                break
        return total

    # -- in-process subscribers -------------------------------------------------------------------

    def subscribe(self, handler: EventHandler, kinds: Iterable[str] | None = None) -> EventHandler:
        """Call ``handler(event)`` after each change in this process commits (``kinds``: only
        for these kinds). Returns the handler, so this works as a decorator's body too."""
        wanted = None if kinds is None else frozenset([kinds] if isinstance(kinds, str) else kinds)
        if wanted is not None and (unknown := sorted(wanted - KINDS)):
            raise ConfigurationError("kinds", f"unknown event kind {unknown[0]!r}")
        with self._lock:
            self._handlers = [*self._handlers, (handler, wanted)]
        return handler

    def unsubscribe(self, handler: EventHandler) -> None:
        """Stop calling ``handler`` (every subscription of it); nothing if it had none."""
        with self._lock:
            self._handlers = [(h, k) for h, k in self._handlers if h != handler]

    def _committed(self, event_ids: tuple[str, ...]) -> None:
        handlers = self._handlers  # replaced, never changed in place: no lock to read it
        if not handlers:
            return  # nobody listens: not even a read
        try:
            rows = self.database.run(lambda unit: event_store.by_ids(unit, event_ids), write=False)
        except Exception:  # kept in the database all the same: since() still has them
            log.exception("could not read %d committed lifecycle event(s)", len(event_ids))
            return
        for row in rows:
            event = Event.of(row)
            for handler, kinds in handlers:
                if kinds is not None and event.kind not in kinds:
                    continue
                try:
                    handler(event)
                except Exception:
                    log.exception("lifecycle event handler %r failed on %s", handler, event.kind)


def parse_cursor(cursor: str | None) -> int:
    """The position a cursor names; 0 for None (before every event)."""
    if cursor is None:
        return 0
    if (
        not isinstance(cursor, str)
        or not cursor.isascii()
        or not cursor.isdigit()
        or len(cursor) > MAX_CURSOR_DIGITS
    ):
        raise InvalidCursor(str(cursor), "is not a cursor that events.since() gave")
    return int(cursor)
