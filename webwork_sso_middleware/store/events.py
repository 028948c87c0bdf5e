"""Lifecycle events for the host app: recorded with the change, numbered in commit order.

Writers insert an event row in the change's own transaction (:func:`record`,
:func:`record_many`), so it commits or rolls back with the change, and note its id on the
UnitOfWork: the Database tells its listeners once that transaction has committed (store/db.py),
never inside it.

Readers follow a cursor, ``seq``. A writer does not number its row (``seq`` NULL): on
PostgreSQL an id is allocated at insert, not at commit, so a reader whose cursor were "the
highest id seen" would skip an event that commits later with a lower id. Instead a reader
first numbers the committed, unnumbered rows (:func:`sequence`), one reader at a time
(PostgreSQL: a transaction-scoped advisory lock; SQLite: its write lock; a reader that finds
another numbering waits for it to commit, so an empty page means caught up), in pk order
after the highest number so far; then it reads ``seq > cursor``. A row still uncommitted is
invisible to the numbering and gets a higher ``seq`` once it commits, so no reader ever
misses it. A reader only reads numbered rows, so numbering a bounded batch per
read is safe: the rest is numbered (higher) by the next reads. Writers pay nothing for this:
one insert, no lock.

The highest number so far lives in ``lifecycle_event_sequence`` (one row, never deleted), not
in the events: retention (:func:`purge`) and a workspace's ON DELETE CASCADE may delete any
event, even the newest, and numbering still never restarts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    Table,
    and_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from .driver import DriverStatement
from .models import (
    LifecycleEvent,
    LifecycleEventSequence,
    Member,
    Workspace,
    WorkspaceDomain,
    new_id,
    utcnow,
)

if TYPE_CHECKING:
    from .db import UnitOfWork

MEMBER_KINDS = (
    "member.created",
    "member.updated",
    "member.deactivated",
    "member.reactivated",
    "member.deleted",
    "member.signed_in",
    "member.signed_out",
)
GROUP_KINDS = (
    "group.created",
    "group.renamed",
    "group.deleted",
    "group.member_added",
    "group.member_removed",
)
KINDS = frozenset(MEMBER_KINDS + GROUP_KINDS)
SOURCES = frozenset({"scim", "saml", "settings", "cli"})

# One sequencer at a time on PostgreSQL (the migration lock in db.py is 742311).
SEQUENCE_LOCK = 742312
# PostgreSQL's SQLSTATE when lock_timeout ends a wait.
LOCK_NOT_AVAILABLE = "55P03"
# The most rows one sequencing transaction numbers: a short write lock, whatever the backlog.
SEQUENCE_BATCH = 5000
# Rows per INSERT of record_many (9 parameters each; SQLAlchemy also keeps each statement
# within the backend's parameter limit): a few round trips for a PATCH of ten thousand members.
INSERT_CHUNK = 1000
# Rows per INSERT on PostgreSQL, where a chunk is nine array parameters (record_many).
PG_INSERT_CHUNK = 5000
# Ids per by_ids() statement, for the same limits.
READ_CHUNK = 900

_SEQUENCE = cast(Table, LifecycleEventSequence.__table__)

_EVENTS = cast(Table, LifecycleEvent.__table__)
_E = _EVENTS.c
_M = cast(Table, Member.__table__).c
_W = cast(Table, Workspace.__table__).c
_D = cast(Table, WorkspaceDomain.__table__).c

_COLUMNS = (
    "id",
    "workspace_id",
    "occurred_at",
    "kind",
    "source",
    "member_id",
    "group_id",
    "group_name",
    "changes",
)
# Built once, run on the driver's cursor (store/driver.py): a sign-in records one.
_INSERT = DriverStatement(insert(_EVENTS), keys=_COLUMNS)


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    """One event to record: a member's (``member_id``), a group's, or both (membership)."""

    kind: str
    source: str
    member_id: str | None = None
    group_id: str | None = None
    group_name: str | None = None
    changes: Mapping[str, Any] | None = None


def record(
    unit: UnitOfWork,
    workspace_id: int,
    kind: str,
    source: str,
    *,
    member_id: str | None = None,
    group_id: str | None = None,
    group_name: str | None = None,
    changes: Mapping[str, Any] | None = None,
) -> str:
    """Insert one event in the caller's transaction; its id."""
    row = _row(workspace_id, NewEvent(kind, source, member_id, group_id, group_name, changes))
    _INSERT.rows(unit.connection, row)
    unit.events.append(row["id"])
    return str(row["id"])


def record_many(unit: UnitOfWork, workspace_id: int, events: Iterable[NewEvent]) -> list[str]:
    """Insert several events, many rows per statement: a PATCH that adds ten thousand members
    to a group writes them in a few round trips, where an executemany is one INSERT per row
    on PostgreSQL. Their ids, in order."""
    rows = [_row(workspace_id, event) for event in events]
    if not rows:
        return []
    connection = unit.connection
    if len(rows) == 1:
        _INSERT.rows(connection, rows[0])
    elif connection.dialect.name == "postgresql":
        # One array per column, unnest()ed: a statement of fixed text and nine parameters
        # whatever the chunk, which the driver neither re-parses nor limits.
        for start in range(0, len(rows), PG_INSERT_CHUNK):
            chunk = rows[start : start + PG_INSERT_CHUNK]
            connection.execute(
                _PG_INSERT_MANY,
                {
                    "workspace_id": workspace_id,
                    "occurred_at": chunk[0]["occurred_at"],
                    **{key: [row[key] for row in chunk] for key in _ARRAY_KEYS},
                    "changes": [json.dumps(row["changes"]) for row in chunk],
                },
            )
    else:
        # With RETURNING, SQLAlchemy sends an executemany as "insertmanyvalues": multi-row
        # VALUES, INSERT_CHUNK rows per statement, compiled once (a .values(list) would
        # compile anew for every chunk, slower than the round trips it saves).
        connection.execute(
            insert(_EVENTS)
            .returning(_E.pk)
            .execution_options(insertmanyvalues_page_size=INSERT_CHUNK),
            rows,
        ).all()
    ids = [str(row["id"]) for row in rows]
    unit.events.extend(ids)
    return ids


_ARRAY_KEYS = ("id", "kind", "source", "member_id", "group_id", "group_name")
_PG_INSERT_MANY = text(
    "INSERT INTO lifecycle_events"
    " (id, workspace_id, occurred_at, kind, source, member_id, group_id, group_name, changes)"
    " SELECT e.id, :workspace_id, :occurred_at, e.kind, e.source, e.member_id, e.group_id,"
    " e.group_name, CAST(e.changes AS json)"
    " FROM unnest(CAST(:id AS text[]), CAST(:kind AS text[]), CAST(:source AS text[]),"
    " CAST(:member_id AS text[]), CAST(:group_id AS text[]), CAST(:group_name AS text[]),"
    " CAST(:changes AS text[]))"
    " AS e(id, kind, source, member_id, group_id, group_name, changes)"
).bindparams(bindparam("occurred_at", type_=_E.occurred_at.type))


def _row(workspace_id: int, event: NewEvent) -> dict[str, Any]:
    if event.kind not in KINDS:
        raise ValueError(f"unknown event kind {event.kind!r}")
    if event.source not in SOURCES:
        raise ValueError(f"unknown event source {event.source!r}")
    return {
        "id": new_id(),
        "workspace_id": workspace_id,
        "occurred_at": utcnow(),
        "kind": event.kind,
        "source": event.source,
        "member_id": event.member_id,
        "group_id": event.group_id,
        "group_name": event.group_name,
        "changes": dict(event.changes or {}),
    }


# -- numbering, reading ---------------------------------------------------------------------------


def sequence(unit: UnitOfWork, *, batch: int | None = None) -> int:
    """Number the committed, unnumbered events after the highest number so far, in pk order
    (at most ``batch``, default SEQUENCE_BATCH), in one statement; how many. Run in a write
    transaction of its own, before a read. On PostgreSQL, when another reader is numbering,
    this waits for it to commit (milliseconds), so that what committed before the call is
    numbered when it returns; 0 when that reader holds on past lock_timeout."""
    batch = batch or SEQUENCE_BATCH
    connection = unit.connection
    # Read committed: every statement after the lock sees the previous sequencer's numbers.
    if connection.dialect.name == "postgresql" and not _numbering_lock(connection):
        return 0
    top = connection.execute(select(_SEQUENCE.c.last).where(_SEQUENCE.c.id == 1)).scalar()
    if top is None:
        # The migration made the row; a table emptied by hand (TRUNCATE) gets it again, from
        # the highest number the events still show.
        top = int(connection.execute(select(func.coalesce(func.max(_E.seq), 0))).scalar_one())
        connection.execute(insert(_SEQUENCE).values(id=1, last=top))
    pending = (
        select(_E.pk, func.row_number().over(order_by=_E.pk).label("n"))
        .where(_E.seq.is_(None))
        .order_by(_E.pk)
        .limit(batch)
        .subquery("pending")
    )
    # UPDATE ... FROM, set-based on both backends (SQLite has it since 3.33).
    numbered = connection.execute(
        update(_EVENTS).where(_E.pk == pending.c.pk).values(seq=top + pending.c.n)
    ).rowcount
    if numbered:
        connection.execute(update(_SEQUENCE).where(_SEQUENCE.c.id == 1).values(last=top + numbered))
    return int(numbered or 0)


def _numbering_lock(connection: Connection) -> bool:
    """Take the numbering lock (PostgreSQL), waiting for a reader that holds it: it numbers
    a bounded batch and commits within milliseconds, and only after its commit does this
    reader's page include what was committed before its call, so an empty page means "caught
    up". False, with the transaction still usable, when the holder keeps it past
    lock_timeout (a stuck transaction): the caller reads what is numbered, never fails."""
    try_lock = text("SELECT pg_try_advisory_xact_lock(:lock)")
    if connection.execute(try_lock, {"lock": SEQUENCE_LOCK}).scalar_one():
        return True  # the usual case: one statement, no savepoint
    savepoint = connection.begin_nested()
    try:
        connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": SEQUENCE_LOCK})
    except OperationalError as exc:
        savepoint.rollback()
        if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return False
        raise
    savepoint.commit()
    return True


def unsequenced(unit: UnitOfWork) -> bool:
    """Whether any committed event waits for its number (a cheap look before a write)."""
    found = unit.connection.execute(select(_E.pk).where(_E.seq.is_(None)).limit(1)).first()
    return found is not None


@dataclasses.dataclass(frozen=True, slots=True)
class EventRow:
    """An event as read, with what the host's identity of its member is made of."""

    id: str
    seq: int | None
    workspace: str  # the slug
    occurred_at: dt.datetime
    kind: str
    source: str
    member_id: str | None
    user_name_key: str | None  # None: no member (a group event), or none found
    domain_verified: bool
    group_id: str | None
    group_name: str | None
    changes: dict[str, Any]


# As store/sessions.py decides it for REMOTE_USER: the member's own workspace verified the
# domain of its userName (domains hold [a-z0-9.-] only, so LIKE sees no wildcard in them).
_DOMAIN_VERIFIED = (
    select(_D.domain)
    .where(
        _D.workspace_id == _E.workspace_id,
        _D.verified_at.is_not(None),
        _M.user_name_key.like(literal("%@") + _D.domain),
    )
    .exists()
)
_READ = (
    select(
        _E.id,
        _E.seq,
        _W.slug,
        _E.occurred_at,
        _E.kind,
        _E.source,
        _E.member_id,
        _M.user_name_key,
        _DOMAIN_VERIFIED.label("domain_verified"),
        _E.group_id,
        _E.group_name,
        _E.changes,
    )
    .select_from(_EVENTS)
    .join(Workspace, _W.id == _E.workspace_id)
    # The member of the event's own workspace only: an event never names another's member.
    .outerjoin(Member, and_(_M.id == _E.member_id, _M.workspace_id == _E.workspace_id))
)


def workspace_id(unit: UnitOfWork, slug: str) -> int | None:
    """The id of the workspace with this slug; None when none has it."""
    found = unit.connection.execute(select(_W.id).where(_W.slug == slug.strip().lower()))
    return found.scalar_one_or_none()


def read(
    unit: UnitOfWork, *, after: int, limit: int, workspace_id: int | None = None
) -> list[EventRow]:
    """Numbered events after ``after``, in order; of the workspace ``workspace_id`` only when
    given (a plain value, not a subquery: PostgreSQL then plans the (workspace_id, seq)
    index, and another workspace's flood of events is never walked)."""
    query = _READ.where(_E.seq > after)
    if workspace_id is not None:
        query = query.where(_E.workspace_id == workspace_id)
    return _rows(unit, query.order_by(_E.seq).limit(limit))


def newest(unit: UnitOfWork) -> int:
    """The highest number given so far (0 before any), deleted events' included."""
    last = unit.connection.execute(select(_SEQUENCE.c.last).where(_SEQUENCE.c.id == 1)).scalar()
    if last is None:  # the row is made again by the next sequence()
        last = unit.connection.execute(select(func.coalesce(func.max(_E.seq), 0))).scalar_one()
    return int(last)


def by_ids(unit: UnitOfWork, event_ids: Sequence[str]) -> list[EventRow]:
    """These events (just committed, perhaps not numbered yet), in the order given; read in
    chunks, so a commit of any size stays within the backends' parameter limits."""
    ids = list(event_ids)
    found: dict[str, EventRow] = {}
    postgresql = unit.connection.dialect.name == "postgresql"
    size = PG_INSERT_CHUNK if postgresql else READ_CHUNK
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        # PostgreSQL: one array parameter (= ANY), a statement the driver need not re-parse.
        where = _E.id == any_(_IDS) if postgresql else _E.id.in_(chunk)
        rows = _rows(unit, _READ.where(where), {"ids": chunk} if postgresql else None)
        found.update((row.id, row) for row in rows)
    return [found[event_id] for event_id in ids if event_id in found]


_IDS = bindparam("ids", type_=ARRAY(_E.id.type))


def _rows(unit: UnitOfWork, query: Any, parameters: dict[str, Any] | None = None) -> list[EventRow]:
    return [
        EventRow(
            id=row.id,
            seq=row.seq,
            workspace=row.slug,
            occurred_at=row.occurred_at,
            kind=row.kind,
            source=row.source,
            member_id=row.member_id,
            user_name_key=row.user_name_key,
            domain_verified=bool(row.domain_verified),
            group_id=row.group_id,
            group_name=row.group_name,
            changes=dict(row.changes or {}),
        )
        for row in unit.connection.execute(query, parameters)
    ]


# -- retention ----------------------------------------------------------------------------------


def purge(unit: UnitOfWork, *, before: dt.datetime, limit: int = 1000) -> int:
    """Delete up to ``limit`` of the oldest events that happened before ``before``, numbered
    or not (a host that only subscribes never numbers any); how many. The numbering's
    high-water mark is kept apart (``lifecycle_event_sequence``), so any event may go."""
    # By pk, which grows with time: the walk stops after ``limit`` old rows, not at the end.
    oldest = select(_E.pk).where(_E.occurred_at < before).order_by(_E.pk).limit(limit)
    result = unit.connection.execute(delete(_EVENTS).where(_E.pk.in_(oldest.scalar_subquery())))
    return int(result.rowcount or 0)
