"""Failed SCIM authentications, counted per source and minute (see scim/throttle.py).

One row per (source, minute): a failure is one UPSERT, and "failures of this source in the
last M minutes" reads at most M rows of the primary key.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from .db import UnitOfWork
from .models import ScimAuthFailure

_F = ScimAuthFailure


def _upsert(dialect: Any) -> Any:
    statement = dialect.insert(_F).values(
        source=bindparam("source"), window_start=bindparam("minute"), failures=1
    )
    return statement.on_conflict_do_update(
        index_elements=[_F.source, _F.window_start], set_={"failures": _F.failures + 1}
    )


# Built once: constructing statements costs more than running these.
_UPSERTS = {"sqlite": _upsert(sqlite), "postgresql": _upsert(postgresql)}
_RECENT = (
    select(_F.window_start, _F.failures)
    .where(_F.source == bindparam("source"), _F.window_start > bindparam("since"))
    .order_by(_F.window_start)
)
_PURGE = delete(_F).where(_F.window_start <= bindparam("before"))


def minute_of(when: dt.datetime) -> dt.datetime:
    return when.replace(second=0, microsecond=0)


def record(
    unit: UnitOfWork, source: str, now: dt.datetime, window: dt.timedelta
) -> list[tuple[dt.datetime, int]]:
    """Count one failure of ``source`` now; its (minute, failures) within ``window`` of
    ``now``, oldest first. A minute counts while it started less than ``window`` ago."""
    connection = unit.connection
    connection.execute(
        _UPSERTS[connection.dialect.name], {"source": source, "minute": minute_of(now)}
    )
    rows = connection.execute(_RECENT, {"source": source, "since": now - window})
    return [(row.window_start, row.failures) for row in rows]


def purge(unit: UnitOfWork, before: dt.datetime) -> int:
    """Forget the minutes that started at or before ``before``; how many rows went."""
    return int(unit.connection.execute(_PURGE, {"before": before}).rowcount or 0)
