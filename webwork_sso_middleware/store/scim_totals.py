"""SCIM's totalResults without a COUNT, and the walk that makes the last page as cheap as the
first.

``scim_totals`` holds each workspace's visible members and groups, kept by triggers in the
transaction of every write (migration 0013), in a few slot rows: the total is their SUM, one
primary-key range read whatever the workspace's size.

A page past the middle of an unfiltered list is read from the end: the reversed ORDER BY with
the offset counted from the end, then turned around. LIMIT/OFFSET walks ``offset`` index entries,
so startIndex 99,901 of 100,000 walks 0 from the end instead of 99,900 from the start.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import desc_op

from .db import UnitOfWork
from .models import ScimTotal

TOTAL_LABEL = "scim_total_results"


def total_of(workspace_id: int, column: Any) -> ScalarSelect[Any]:
    """The workspace's total (``ScimTotal.members`` or ``ScimTotal.groups``), as a scalar
    subquery: selected beside a page's rows, it is read in the rows' own snapshot."""
    return (
        select(func.coalesce(func.sum(column), 0))
        .where(ScimTotal.workspace_id == workspace_id)
        .scalar_subquery()
    )


def read_total(unit: UnitOfWork, workspace_id: int, column: Any) -> int:
    return int(unit.connection.execute(select(total_of(workspace_id, column))).scalar_one())


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """Which rows to read for ``offset``/``limit`` of ``total``: ``reverse`` reads them in the
    reversed order, from ``offset`` rows before the end, and the caller turns them around."""

    reverse: bool
    offset: int
    limit: int


def window(total: int, offset: int, limit: int) -> Window | None:
    """None when the page is empty (past the end, or count=0)."""
    limit = min(limit, total - offset)
    if limit <= 0 or offset < 0:
        return None
    from_end = total - offset - limit
    if from_end < offset:
        return Window(True, from_end, limit)
    return Window(False, offset, limit)


def reversed_order(order_by: list[Any]) -> list[Any]:
    """Each ORDER BY term in the other direction. A plain DESC is the exact reverse of a plain
    ASC on both backends, NULLs included (PostgreSQL: NULLS LAST becomes NULLS FIRST; SQLite:
    the other way round), so reading backwards yields the forward order's rows, turned round."""
    flipped = []
    for term in order_by:
        if isinstance(term, UnaryExpression) and term.modifier is desc_op:
            flipped.append(term.element.asc())
        elif isinstance(term, UnaryExpression) and term.modifier is not None:
            flipped.append(term.element.desc())
        else:
            flipped.append(term.desc())
    return flipped
