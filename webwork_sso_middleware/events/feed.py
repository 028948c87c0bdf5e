"""The host's view of lifecycle events: :class:`Event`, and :class:`EventFeed` to read
(``since``) or subscribe to them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigurationError, InvalidCursor, UnknownWorkspace
from ..identity import host_identity, scoped_identity
from ..logs import package_logger
from ..store import Database
from ..store import events as event_store

log = package_logger(__name__)

KINDS = event_store.KINDS
MAX_LIMIT = 1000
# A cursor is a decimal number within the range of ``seq`` (BIGINT): anything beyond it would
# fail in the database, not as a cursor this feed could have given.
MAX_CURSOR = 2**63 - 1
MAX_CURSOR_DIGITS = len(str(MAX_CURSOR))
# Batches of SEQUENCE_BATCH one since() numbers at most: its work stays bounded whatever the
# backlog of all workspaces, and since a reader reads only numbered events, the rest just
# waits (numbered higher) for the next calls.
SINCE_BATCHES = 2


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


@dataclasses.dataclass(eq=False, slots=True)
class _Subscription:
    handler: EventHandler
    kinds: frozenset[str] | None
    listening: Callable[[], bool] | None


class EventFeed:
    """The lifecycle events of one database: ``since`` reads the durable feed; ``subscribe``
    hears this process's changes after they commit."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._subscriptions: list[_Subscription] = []
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
        ``audit_retention_days`` are purged). An empty list means caught up with what
        committed before the call (another reader numbering is waited for), except after a
        burst of more than SINCE_BATCHES * SEQUENCE_BATCH events: each call numbers that
        many, so a list of one workspace may be empty while its events wait: poll again.
        Raises InvalidCursor for a cursor that no ``since`` of this database handed out (or
        not a str), UnknownWorkspace for a slug no workspace has, ConfigurationError for a
        ``limit`` outside 1..1000.
        """
        after = parse_cursor(cursor)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ConfigurationError("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
        workspace_id = None
        if workspace is not None:
            # Looked up first, and given to the read as a plain value (store/events.py read()).
            workspace_id = self.database.run(
                lambda unit: event_store.workspace_id(unit, workspace), write=False
            )
            if workspace_id is None:
                raise UnknownWorkspace(workspace)
        self.sequence(max_batches=SINCE_BATCHES)
        rows = self.database.run(
            lambda unit: event_store.read(
                unit, after=after, limit=limit, workspace_id=workspace_id
            ),
            write=False,
        )
        if not rows and after and after > self.database.run(event_store.newest, write=False):
            # Numbers never go back (the high-water mark outlives every event): this cursor is
            # from another database, and waiting on it would hide every event to come.
            raise InvalidCursor(str(cursor), "is past the newest event of this database")
        return [Event.of(row) for row in rows]

    def sequence(self, *, max_batches: int | None = None) -> int:
        """Number the committed events no reader numbered yet (store/events.py), all of them
        or ``max_batches`` batches at most; how many. A cheap read first, so an idle poller
        never takes SQLite's write lock. Another reader numbering at the same time (on
        PostgreSQL) ends this at once: it numbers them."""
        total = 0
        batches = 0
        while self.database.run(event_store.unsequenced, write=False):
            numbered = self.database.run(event_store.sequence)
            total += numbered
            batches += 1
            if numbered < event_store.SEQUENCE_BATCH or (
                max_batches is not None and batches >= max_batches
            ):
                break
        return total

    # -- in-process subscribers -------------------------------------------------------------------

    def subscribe(
        self,
        handler: EventHandler,
        kinds: Iterable[str] | None = None,
        *,
        listening: Callable[[], bool] | None = None,
    ) -> EventHandler:
        """Call ``handler(event)`` after each change in this process commits (``kinds``: only
        for these kinds). Returns the handler, so this works as a decorator's body too.

        ``listening``: asked at each commit, before anything is read; when it returns False
        the handler is skipped for that commit (an adapter whose signal has no receivers
        costs a commit nothing). A handler that raises an Exception is logged and the others
        still hear the event; a BaseException that is not an Exception (KeyboardInterrupt,
        SystemExit) is not caught: it stops the process's work, as it would anywhere.
        """
        wanted = None if kinds is None else frozenset([kinds] if isinstance(kinds, str) else kinds)
        if wanted is not None and (unknown := sorted(wanted - KINDS)):
            raise ConfigurationError("kinds", f"unknown event kind {unknown[0]!r}")
        with self._lock:
            self._subscriptions = [
                *self._subscriptions,
                _Subscription(handler, wanted, listening),
            ]
        return handler

    def unsubscribe(self, handler: EventHandler) -> None:
        """Stop calling ``handler`` (every subscription of it), at once: even for the rest of
        the events being delivered now; nothing if it had none."""
        with self._lock:
            self._subscriptions = [s for s in self._subscriptions if s.handler != handler]

    def _committed(self, event_ids: tuple[str, ...]) -> None:
        # Replaced, never changed in place: no lock to read it.
        subscriptions = [s for s in self._subscriptions if _listening(s)]
        if not subscriptions:
            return  # nobody listens: not even a read
        try:
            rows = self.database.run(lambda unit: event_store.by_ids(unit, event_ids), write=False)
        except Exception:  # kept in the database all the same: since() still has them
            log.exception("could not read %d committed lifecycle event(s)", len(event_ids))
            return
        for row in rows:
            event = Event.of(row)
            for subscription in subscriptions:
                if subscription.kinds is not None and event.kind not in subscription.kinds:
                    continue
                if subscription not in self._subscriptions:
                    continue  # unsubscribed while this commit's events were being delivered
                try:
                    subscription.handler(event)
                except Exception:
                    log.exception(
                        "lifecycle event handler %r failed on %s", subscription.handler, event.kind
                    )


def _listening(subscription: _Subscription) -> bool:
    if subscription.listening is None:
        return True
    try:
        return bool(subscription.listening())
    except Exception:  # deliver rather than lose the event over a broken check
        log.exception("could not ask %r whether it listens", subscription.listening)
        return True


def parse_cursor(cursor: str | None) -> int:
    """The position a cursor names; 0 for None (before every event)."""
    if cursor is None:
        return 0
    if not isinstance(cursor, str):
        raise InvalidCursor(
            repr(cursor),
            f"is a {type(cursor).__name__}: a cursor is the str an event's .cursor gave"
            " (e.g. '42'), or None for the oldest kept",
        )
    if (
        not cursor.isascii()
        or not cursor.isdigit()
        or len(cursor) > MAX_CURSOR_DIGITS
        or int(cursor) > MAX_CURSOR
    ):
        raise InvalidCursor(cursor, "is not a cursor that events.since() gave")
    return int(cursor)
