"""How a filter's operator compares an attribute's value with its operand (RFC 7644 3.4.2.2).

Shared by both evaluators of a parsed filter (scim/filters.py): :func:`.matching.matches` in
Python and the SQL compiler in scim/filter_query.py, so they cannot disagree.

Semantics (RFC 7643 section 2.5: null, "" and [] mean unassigned):
``attr eq null`` is ``not (attr pr)`` and ``attr ne null`` is ``attr pr``; any other operator
with null is invalidFilter. A comparison on an unassigned attribute is false (``ne`` too), so
``not (title eq "x")`` is the way to include members without a title. A multi-valued
attribute matches when any one of its values does. Booleans also accept the strings
"true"/"false" (Entra sends those). A dateTime operand stands for the whole unit of its last
digit: ``meta.created eq "2024-05-01T10:00:00Z"`` matches anything within that second.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import invalid_filter
from .filters import ORDERING_OPERATORS, SUBSTRING_OPERATORS, Scalar


def as_boolean(value: Any) -> bool | None:
    """A SCIM boolean, or its string form as Entra sends it; None when it is neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


_TIME_PRECISION = re.compile(r"T\d\d(:?\d\d(:?\d\d(?:[.,](\d+))?)?)?", re.IGNORECASE)


def datetime_window(value: Any, label: str) -> tuple[dt.datetime, dt.datetime]:
    """The aware UTC instants [start, end) an ISO 8601 operand stands for, to its precision."""
    if not isinstance(value, str):
        raise invalid_filter(f"{label} is a dateTime; compare it with an ISO 8601 string")
    try:
        start = dt.datetime.fromisoformat(value.strip())
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
        start = start.astimezone(dt.UTC)
        match = _TIME_PRECISION.search(value.replace(" ", "T", 1))
        if match is None:  # a date
            step = dt.timedelta(days=1)
        elif match[3]:  # fractional seconds
            step = dt.timedelta(microseconds=10 ** max(0, 6 - len(match[3])))
        else:  # hours, minutes or seconds: as many as the groups matched
            unit = (match[1] is not None) + (match[2] is not None)
            step = dt.timedelta(seconds=(3600, 60, 1)[unit])
        return start, start + step
    except (ValueError, OverflowError):
        raise invalid_filter(f"{value!r} is not an ISO 8601 dateTime (for {label})") from None


def check_operand(op: str, value: Scalar, type_: str | None, label: str) -> None:
    """Reject operator/value pairs no attribute can satisfy, and mismatches with ``type_``."""
    if value is None and op not in ("eq", "ne"):
        raise invalid_filter(f"'{op} null' is not allowed (for {label}); use 'pr' or 'eq null'")
    if op in SUBSTRING_OPERATORS and not isinstance(value, str):
        raise invalid_filter(f"'{op}' needs a string value (for {label})")
    if op in ORDERING_OPERATORS and isinstance(value, bool):
        raise invalid_filter(f"'{op}' cannot compare booleans (for {label})")
    if value is None or type_ is None:
        return
    if type_ == "boolean":
        if op not in ("eq", "ne"):
            raise invalid_filter(f"'{op}' cannot be used with the boolean attribute {label}")
        if as_boolean(value) is None:
            raise invalid_filter(
                f"{label} is a boolean; compare it with true or false, not {value!r}"
            )
    elif type_ == "dateTime":
        if op in SUBSTRING_OPERATORS:
            raise invalid_filter(f"'{op}' cannot be used with the dateTime attribute {label}")
        datetime_window(value, label)
    elif type_ == "complex":
        raise invalid_filter(f"{label} is complex; filter on one of its sub-attributes")
    elif type_ in ("integer", "decimal"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid_filter(f"{label} is a number; compare it with a number, not {value!r}")
    elif not isinstance(value, str):
        raise invalid_filter(f"{label} is a string; compare it with a quoted string, not {value!r}")


_OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "co": operator.contains,
    "sw": str.startswith,
    "ew": str.endswith,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def compare(
    op: str,
    actual: Any,
    operand: Scalar,
    *,
    case_exact: bool = False,
    type_: str | None = None,
    label: str = "attribute",
) -> bool:
    """One assigned value against the operand; values of unrelated types are simply unequal."""
    if type_ == "boolean" or isinstance(actual, bool) or isinstance(operand, bool):
        left, right = as_boolean(actual), as_boolean(operand)
        equal = left is not None and left == right
        return equal if op == "eq" else (not equal if op == "ne" else False)
    if type_ == "dateTime" or isinstance(actual, dt.datetime):
        return _compare_datetime(op, actual, operand, label)
    if isinstance(actual, str) and isinstance(operand, str):
        if not case_exact:
            actual, operand = actual.lower(), operand.lower()
    elif not (
        isinstance(actual, (int, float))
        and isinstance(operand, (int, float))
        and op not in SUBSTRING_OPERATORS
    ):
        return op == "ne"
    return bool(_OPERATIONS[op](actual, operand))


def _compare_datetime(op: str, actual: Any, operand: Scalar, label: str) -> bool:
    start, end = datetime_window(operand, label)
    try:
        when = actual if isinstance(actual, dt.datetime) else dt.datetime.fromisoformat(str(actual))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        when = when.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return op == "ne"
    inside = start <= when < end
    return {
        "eq": inside,
        "ne": not inside,
        "gt": when >= end,
        "ge": when >= start,
        "lt": when < start,
        "le": when < end,
    }.get(op, False)


def is_assigned(value: Any) -> bool:
    """RFC 7643 2.5: null, "" and [] are unassigned, as is a complex value holding only those."""
    if isinstance(value, Mapping):
        return any(_has_value(part) for part in value.values())
    return _has_value(value)


def _has_value(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}
