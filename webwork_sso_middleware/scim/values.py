"""Values as PATCH writes them (RFC 7644 section 3.5.2): coerced to their schema types,
merged into complex values, and found again in multi-valued attributes.

Lenient for IdP interop where the RFC allows a reading (see scim/patch.py): booleans as
"true"/"false" strings, numbers given for strings, a bare value for a complex attribute with
a ``value`` part, one object for a list of one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .comparisons import as_boolean
from .errors import invalid_path, invalid_value, mutability
from .paths import delete_name, get_name, put_name
from .schemas import Attribute


class ValueIndex:
    """The values of a multi-valued attribute, found by ``value`` (and a compatible ``type``).

    Adding a value that is already there merges into it instead of duplicating it (RFC 7644
    section 3.5.2.1); the index keeps that linear for large groups.
    """

    def __init__(self, attribute: Attribute, elements: list[Any]) -> None:
        self.attribute = attribute
        self.elements = elements
        self.value_sub = attribute.sub_attribute("value") if attribute.type == "complex" else None
        self.by_value: dict[Any, list[Any]] = {}
        for element in elements:
            self._remember(element)

    def _key(self, element: Any) -> Any:
        if self.value_sub is None or not isinstance(element, dict):
            return None
        value = element.get(self.value_sub.name)
        if isinstance(value, str) and not self.value_sub.case_exact:
            return value.lower()
        return value if isinstance(value, (str, int, float, bool)) else None

    def _remember(self, element: Any) -> None:
        key = self._key(element)
        if key is not None:
            self.by_value.setdefault(key, []).append(element)

    def find(self, element: Any) -> Any | None:
        key = self._key(element)
        if key is None:  # no value part (addresses): only an identical value is the same
            return next((e for e in self.elements if e == element), None)
        return next((e for e in self.by_value.get(key, ()) if same_type(e, element)), None)

    def add(self, element: Any) -> Any:
        existing = self.find(element)
        if existing is None:
            if element not in ({}, None):
                self.elements.append(element)
                self._remember(element)
            return element
        if isinstance(existing, dict):  # the same value again: immutable parts stay as they are
            merge(self.attribute, existing, element, keep_immutable=True)
        return existing


def same_type(left: dict[str, Any], right: dict[str, Any]) -> bool:
    """A missing ``type`` matches any (Okta adds members without one); others ignore case."""
    a, b = left.get("type"), right.get("type")
    return a is None or b is None or str(a).lower() == str(b).lower()


def merge(
    attribute: Attribute,
    target: dict[str, Any],
    given: Mapping[str, Any],
    *,
    keep_immutable: bool = False,
) -> None:
    """Set the given sub-attributes of a complex value (None unassigns); others stay.

    When ``value`` changes, readOnly parts not given (``manager.displayName``) described the
    old referent, so they go rather than go stale.
    """
    old_value = get_name(target, "value")
    for name, value in given.items():
        sub = attribute.sub_attribute(name)
        assert sub is not None  # given comes from coerce: canonical names only
        current = get_name(target, name)
        if keep_immutable and sub.mutability == "immutable" and current is not None:
            continue
        check_immutable(sub, current, value)
        if value is None:
            delete_name(target, name)
        else:
            put_name(target, name, value)
    if "value" in given and given["value"] != old_value:
        for sub in attribute.sub_attributes:
            if sub.mutability == "readOnly" and sub.name not in given:
                delete_name(target, sub.name)


def check_immutable(attribute: Attribute, old: Any, new: Any) -> None:
    if attribute.mutability == "immutable" and old is not None and old != new:
        raise mutability(f"{attribute.name} is immutable: it cannot change once set")


def put_values(container: dict[str, Any], name: str, value: Any) -> None:
    if value:
        put_name(container, name, value)
    else:
        delete_name(container, name)  # no values left: unassigned


# -- values by schema type ------------------------------------------------------------------


def coerce(attribute: Attribute, value: Any) -> Any:
    if not attribute.multi_valued:
        return coerce_value(attribute, value)
    items = value if isinstance(value, list) else [value]  # one object for a list: lenient
    return [coerce_value(attribute, item) for item in items if item is not None]


def coerce_value(attribute: Attribute, value: Any) -> Any:
    """One value in canonical form; a complex value keeps None parts (they unassign)."""
    if attribute.type != "complex":
        return scalar(attribute, value)
    if not isinstance(value, Mapping):
        value_sub = attribute.sub_attribute("value")
        if value_sub is None or isinstance(value, list):
            raise invalid_value(f"{attribute.name} values must be objects")
        return {value_sub.name: scalar(value_sub, value)}  # Entra sends manager as a bare id
    result: dict[str, Any] = {}
    for key, item in value.items():
        sub = attribute.sub_attribute(str(key))
        if sub is None:
            raise invalid_path(f"{attribute.name} has no sub-attribute {str(key)!r}")
        result[sub.name] = None if item is None else scalar(sub, item)
    return result


def scalar(attribute: Attribute, value: Any) -> Any:
    kind = attribute.type
    if kind == "any":  # an undescribed extension's attribute: kept as sent (extensions.py)
        return value
    if kind == "boolean":
        # Entra sends "True"/"False"; PATCH values also forgive surrounding spaces.
        flag = as_boolean(value.strip() if isinstance(value, str) else value)
        if flag is None:
            raise invalid_value(f"{attribute.name} must be a boolean, not {show(value)}")
        return flag
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in ("integer", "decimal"):
        if is_number and (kind == "decimal" or isinstance(value, int)):
            return value
        raise invalid_value(f"{attribute.name} must be a number, not {show(value)}")
    if kind != "complex" and isinstance(value, str):
        return value
    if kind != "complex" and is_number and (isinstance(value, int) or math.isfinite(value)):
        try:  # IdPs send numeric-looking strings (employeeNumber) as JSON numbers
            return str(value)
        except ValueError:  # more digits than int -> str allows
            pass
    raise invalid_value(f"{attribute.name} must be a string, not {show(value)}")


def show(value: Any) -> str:
    if isinstance(value, (dict, list)) or (isinstance(value, int) and value.bit_length() > 64):
        return type(value).__name__  # repr of a huge int raises
    return repr(value)[:40]


def strip_unassigned(value: Any) -> Any:
    """A value as stored: no None-valued sub-attributes."""
    if isinstance(value, list):
        return [strip_unassigned(item) for item in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value
