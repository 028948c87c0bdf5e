"""A value filter evaluated in Python against one complex value (PATCH paths such as
``emails[type eq "work"]``), with the semantics of scim/comparisons.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .comparisons import check_operand, compare, is_assigned
from .errors import invalid_filter
from .filters import And, Node, Not, Or, Present, ValuePath, flatten
from .schemas import Attribute


def matches(node: Node, element: Mapping[str, Any], *, attribute: Attribute | None = None) -> bool:
    """Whether ``element`` (one complex value, e.g. an email) satisfies the filter ``node``."""
    if isinstance(node, (And, Or)):
        results = (matches(part, element, attribute=attribute) for part in flatten(node))
        return all(results) if isinstance(node, And) else any(results)
    if isinstance(node, Not):
        return not matches(node.node, element, attribute=attribute)
    sub = _sub_attribute(attribute, node.path)
    values = [value for value in _lookup(element, node.path) if is_assigned(value)]
    if isinstance(node, ValuePath):
        return any(
            matches(node.filter, value, attribute=sub)
            for value in values
            if isinstance(value, Mapping)
        )
    if isinstance(node, Present):
        return bool(values)
    label = node.path if attribute is None else f"{attribute.name}.{node.path}"
    type_ = sub.type if sub is not None else None
    check_operand(node.op, node.value, type_, label)
    if node.value is None:
        return bool(values) == (node.op == "ne")
    case_exact = sub is not None and sub.case_exact
    return any(
        compare(node.op, value, node.value, case_exact=case_exact, type_=type_, label=label)
        for value in values
    )


def _sub_attribute(attribute: Attribute | None, path: str) -> Attribute | None:
    if attribute is None:
        return None
    sub = attribute.sub_attribute(path)
    if sub is None:
        raise invalid_filter(f"unknown attribute {path!r} in a filter on {attribute.name}")
    return sub


def _lookup(element: Any, path: str) -> list[Any]:
    """The values at ``path`` (keys ignore case; dots and schema URNs walk down; lists spread)."""
    found: list[Any] = []
    pending = [(element, path.lower())]
    while pending:
        current, rest = pending.pop()
        if isinstance(current, list):
            pending.extend((item, rest) for item in current)
            continue
        if not isinstance(current, Mapping):
            continue
        schemas = current.get("schemas")
        for schema in schemas if isinstance(schemas, list) else ():
            # A whole resource: its own schema URN may prefix core attribute names.
            prefix = str(schema).lower() + ":"
            if rest.startswith(prefix):
                pending.append((current, rest[len(prefix) :]))
        for key, value in current.items():
            name = str(key).lower()
            if name == rest:
                found.extend(value if isinstance(value, list) else [value])
            elif rest.startswith(name) and rest[len(name) : len(name) + 1] in (".", ":"):
                pending.append((value, rest[len(name) + 1 :]))
    return found
