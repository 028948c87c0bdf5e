"""Extension attributes kept as sent: an IdP's custom extension schemas, and the attributes of
the Enterprise User extension that have no column (Okta lets an admin name any attribute under
that URN). Stored in one JSON column, ``members.extensions`` = {schema URN: {attribute: value}}.

Which keys are extensions is schemas.py's (``ResourceType.extension_by_urn``); here they are
validated before they are stored, and put back into documents. A key need not be listed in the
body's ``schemas`` (RFC 7644 asks that it be): PATCH bodies carry no ``schemas`` of the
resource at all, and a response always lists every extension it carries.

Bounds, against a token that would bloat the store or every session check of the member:
MAX_EXTENSION_BYTES of compact JSON per member (the text the column stores: store/db.py),
values nested at most MAX_DEPTH deep, strings without the characters no backend stores
(schemas.UNSTORABLE). ``null``, ``[]`` and ``{}`` unassign (RFC 7643 section 2.5), so they are
not stored. And against a request that would cost CPU: a request giving extensions more JSON
values than MAX_EXTENSION_BYTES could ever hold is refused before any per-value work
(:class:`Budget`), and the work per value is constant (names are found through an index).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from ..store.db import json_text
from .errors import ScimError, invalid_value
from .paths import NameIndex
from .schemas import (
    ATTRIBUTE_NAME,
    ENTERPRISE_USER,
    ENTERPRISE_USER_SCHEMA,
    MAX_URN_LENGTH,
    UNSTORABLE,
    is_extension_urn,
)

MAX_EXTENSION_BYTES = 16 * 1024
MAX_DEPTH = 4  # an attribute's value, and three levels of lists or objects inside it
MAX_KEY_LENGTH = 128
# The Enterprise extension's described attributes have columns (resources.py); the rest are here.
ENTERPRISE_COLUMNS = frozenset(attribute.name.lower() for attribute in ENTERPRISE_USER.attributes)

# Every JSON value and member name kept takes at least two bytes of compact JSON ("1," or
# '"a":'), so a request giving extensions more than this many can't be kept: refused up front.
MAX_EXTENSION_VALUES = MAX_EXTENSION_BYTES // 2

Stored = dict[str, dict[str, Any]]


class Budget:
    """Counts what one request gives extensions (JSON values and member names), and the work
    it asks for; refuses (invalidValue) once over ``limit``, before the work is done."""

    def __init__(self, limit: int = MAX_EXTENSION_VALUES, counting: str = "") -> None:
        self.limit = limit
        self.left = limit
        self.counting = counting  # what else is charged, for the error

    def spend(self, value: Any, extra: int = 1) -> None:
        """Charge ``value``'s JSON values and names, plus ``extra`` (its own name)."""
        self.charge(extra)
        self.left -= count_values(value, self.left)
        self._check()

    def charge(self, work: int) -> None:
        self.left -= work
        self._check()

    def _check(self) -> None:
        if self.left < 0:
            raise invalid_value(
                f"the request gives extension attributes more than {self.limit} JSON values "
                f"and names{self.counting}; at most {MAX_EXTENSION_BYTES} bytes of them are "
                "kept per User"
            )


def count_values(value: Any, limit: int) -> int:
    """The JSON values and member names in ``value``, counted up to just past ``limit``: the
    work is O(limit) however large ``value`` is (an object's names are counted in one step)."""
    count = 0
    pending = [value]
    while pending:
        item = pending.pop()
        count += 1
        if isinstance(item, dict):
            count += len(item)
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            children = ()
        if count + len(children) > limit:
            return count + len(children)
        pending.extend(children)
    return count


def canonical(value: Any) -> str:
    """One text per JSON value, to compare values as JSON does (``true`` is not ``1``, and an
    object's order is no change) and to find equal ones through a set."""
    return _CANONICAL.encode(value)


# Made once: json.dumps with any option builds a new encoder per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_urn_length(urn: str, error: Callable[[str], ScimError] = invalid_value) -> None:
    """Refuse an extension URN too long to keep (never read as an attribute of a shorter one)."""
    if len(urn) > MAX_URN_LENGTH:
        raise error(f"the extension URN {urn[:40]!r}... is longer than {MAX_URN_LENGTH} characters")


def check_attribute_name(name: Any, urn: str) -> None:
    """Refuse (invalidValue) a name RFC 7643's ATTRNAME does not allow, ASCII only: before it
    is merged with another case-insensitively (KELVIN SIGN "\u212aey" lower-cases to "key")."""
    if not isinstance(name, str) or ATTRIBUTE_NAME.fullmatch(name) is None:
        raise invalid_value(
            f"{show_name(name)} in {urn} is not an attribute name "
            "(a letter, then letters, digits, '-' or '_'; at most 128)"
        )


def stored_extensions(doc: Mapping[str, Any]) -> Stored:
    """What ``doc`` (a canonical User document) carries that has no column, validated.

    Raises invalidValue (nothing is written: the caller has not flushed) when a value is not
    storable or the whole is over MAX_EXTENSION_BYTES."""
    stored: Stored = {}
    urns = NameIndex(stored)
    for key, value in doc.items():
        if not isinstance(key, str):
            continue
        enterprise = key == ENTERPRISE_USER_SCHEMA
        if not (enterprise or is_extension_urn(key)):
            continue  # not an extension (core attributes, or a reserved URN: ignored)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise invalid_value(f"{key} must be an object of attributes")
        existing = urns.get(key)
        target: dict[str, Any] = existing if isinstance(existing, dict) else {}
        names = NameIndex(target)
        for name, item in value.items():
            if enterprise and str(name).lower() in ENTERPRISE_COLUMNS:
                continue
            check_attribute_name(name, key)
            cleaned = _clean(item, f"{key}:{name}", 1)
            if cleaned is not None:
                names.put(name, cleaned)
        if target:
            urns.put(key, target)
    if not stored:  # most Users carry none: nothing to measure
        return stored
    size = len(json_text(stored).encode("utf-8"))  # as the column will hold it
    if size > MAX_EXTENSION_BYTES:
        raise invalid_value(
            f"the extension attributes take {size} bytes as JSON; "
            f"at most {MAX_EXTENSION_BYTES} are kept per User"
        )
    return stored


def _clean(value: Any, label: str, depth: int) -> Any:
    """``value`` as stored: unassigned parts dropped; raises invalidValue for what can't be."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if UNSTORABLE.search(value):
            raise invalid_value(
                f"{label} holds a character no value can hold (NUL or an unpaired surrogate)"
            )
        return value
    if isinstance(value, int):
        if value.bit_length() > 63:
            raise invalid_value(f"{label} is a number too large to keep")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise invalid_value(f"{label} is not a finite number")
        return value
    if not isinstance(value, (list, dict)):
        raise invalid_value(f"{label} is not a JSON value")
    if depth >= MAX_DEPTH:
        raise invalid_value(f"{label} nests lists or objects more than {MAX_DEPTH - 1} deep")
    if isinstance(value, list):
        items = [_clean(item, label, depth + 1) for item in value]
        return [item for item in items if item is not None] or None
    out: dict[str, Any] = {}
    for key, item in value.items():
        if (
            not isinstance(key, str)
            or not key
            or len(key) > MAX_KEY_LENGTH
            or UNSTORABLE.search(key)
        ):
            raise invalid_value(f"{label} has a member name that cannot be kept")
        if (cleaned := _clean(item, f"{label}.{key}", depth + 1)) is not None:
            out[key] = cleaned
    return out or None


def show_name(name: Any) -> str:
    return repr(name)[:60] if isinstance(name, str) else type(name).__name__


def add_to_document(doc: dict[str, Any], stored: Stored | None) -> None:
    """Put the stored extension attributes into a User document being built (before meta).

    Copies: a document is the caller's to change (PATCH works on one)."""
    for urn, attributes in (stored or {}).items():
        if urn == ENTERPRISE_USER_SCHEMA:
            enterprise = doc.get(urn)
            if enterprise is None:
                enterprise = doc[urn] = {}
                doc["schemas"].append(urn)
            for name, value in attributes.items():
                enterprise.setdefault(name, copy.deepcopy(value))
        else:
            doc[urn] = copy.deepcopy(attributes)
            doc["schemas"].append(urn)
