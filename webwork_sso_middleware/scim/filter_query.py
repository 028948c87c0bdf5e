"""A parsed SCIM filter resolved against the schema and compiled into the store's condition.

The walk is SCIM's: which attribute a path names, whether it may be filtered on, whether the
operand suits its type (invalidFilter otherwise). What each term becomes in SQL, and where
each attribute is kept, is the store's (store/scim_filters.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..store import scim_filters as sql
from ..store.scim_filters import Condition, Constant, Rows, Target
from .comparisons import as_boolean, check_operand, compare, datetime_window, is_assigned
from .errors import invalid_filter
from .filters import And, Comparison, Node, Not, Or, Present, ValuePath, flatten
from .schemas import Attribute, AttributePath, ResourceType


@dataclasses.dataclass(frozen=True)
class _Scope:
    """Inside ``attribute[...]``: paths name sub-attributes, found as ``prefix + name``."""

    attribute: Attribute
    columns: Mapping[str, Target]
    prefix: str = ""


def compile_filter(node: Node, resource: ResourceType) -> Condition:
    """The WHERE condition for ``node`` on ``resource``'s table (Member or Group)."""
    columns, rows = sql.columns_of(resource.name)
    return _Compiler(resource, columns, rows).compile(node, None)


def filter_condition(node: Node | None, resource: ResourceType) -> Condition | None:
    """The condition of a list's filter, None without one."""
    return None if node is None else compile_filter(node, resource)


class _Compiler:
    def __init__(
        self, resource: ResourceType, columns: Mapping[str, Target], rows: Mapping[str, Rows]
    ) -> None:
        self.resource = resource
        self.columns = columns
        self.rows = rows

    def compile(self, node: Node, scope: _Scope | None) -> Condition:
        """``node`` at the top (``scope`` None) or inside ``scope.attribute[...]``."""
        if isinstance(node, (And, Or)):
            parts = [self.compile(part, scope) for part in flatten(node)]
            return sql.all_of(parts) if isinstance(node, And) else sql.any_of(parts)
        if isinstance(node, Not):
            return sql.negation(self.compile(node.node, scope))
        if isinstance(node, Comparison) and node.value is None:
            # RFC 7643 2.5: null means unassigned, so "eq null" is "not pr", also for multi-valued.
            check_operand(node.op, None, None, node.path)
            present = self.compile(Present(node.path), scope)
            return present if node.op == "ne" else sql.negation(present)
        if scope is not None:
            return self.inside(node, scope)
        path = self.resolve(node.path)
        attribute, sub = path.attribute, path.sub_attribute
        if isinstance(node, ValuePath) and (attribute.type != "complex" or sub is not None):
            raise invalid_filter(f"{node.path!r} is not a complex attribute; it cannot take [...]")
        if attribute.multi_valued:
            rows = self.rows[attribute.name]
            if isinstance(node, ValuePath):
                return rows.exists(self.compile(node.filter, _Scope(attribute, rows.columns)))
            if sub is None and isinstance(node, Present):
                return rows.exists(None)
            # ``emails eq "x"`` means emails.value; any one value may match (RFC 7644 3.4.2.2).
            sub = sub or attribute.sub_attribute("value")
            if sub is None:
                raise invalid_filter(
                    f"filter on a sub-attribute of {attribute.name}, "
                    f"such as {attribute.name}.{attribute.sub_attributes[0].name}"
                )
            return rows.exists(
                self.term(node, rows.columns.get(sub.name), sub, f"{attribute.name}.{sub.name}")
            )
        if attribute.type == "complex":
            scope = _Scope(attribute, self.columns, attribute.name + ".")
            if isinstance(node, ValuePath):
                return self.compile(node.filter, scope)
            if sub is None and isinstance(node, Present):
                subs = [
                    (self.columns.get(scope.prefix + s.name), s) for s in attribute.sub_attributes
                ]
                return sql.any_of(
                    [sql.constant(False), *(_present(target, s) for target, s in subs if target)]
                )
            if sub is None:
                raise invalid_filter(
                    f"{attribute.name} is complex; filter on a sub-attribute "
                    f"such as {attribute.name}.{attribute.sub_attributes[0].name}"
                )
        return self.term(node, self.columns.get(path.canonical), path.target, path.canonical)

    def resolve(self, text: str) -> AttributePath:
        path = self.resource.resolve(text)
        if path is None:
            raise invalid_filter(f"unknown attribute {text!r} (for {self.resource.name} resources)")
        if path.target.returned == "never":
            raise invalid_filter(f"{path.canonical} cannot be used in filters")
        return path

    def inside(self, node: Node, scope: _Scope) -> Condition:
        """A term inside ``attribute[...]``: its path names a sub-attribute."""
        if not isinstance(node, (Comparison, Present)):
            raise invalid_filter(
                f"value filters do not nest (in a filter on {scope.attribute.name})"
            )
        name = scope.attribute.name
        sub = scope.attribute.sub_attribute(node.path)
        if sub is None:
            raise invalid_filter(f"unknown attribute {node.path!r} in a filter on {name}")
        label = f"{name}.{sub.name}"
        return self.term(node, scope.columns.get(scope.prefix + sub.name), sub, label)

    def term(
        self, node: Node, target: Target | None, attribute: Attribute, label: str
    ) -> Condition:
        if target is None:
            raise invalid_filter(f"{label} cannot be used in filters")
        if isinstance(node, Present):
            return _present(target, attribute)
        assert isinstance(node, Comparison)
        check_operand(node.op, node.value, attribute.type, label)
        if isinstance(target, Constant):
            holds = compare(
                node.op,
                target.value,
                node.value,
                case_exact=attribute.case_exact,
                type_=attribute.type,
            )
            return sql.constant(holds)
        # Only assigned values compare; this also keeps NULL (unknown) away from NOT.
        return sql.all_of(
            [
                _present(target, attribute),
                sql.condition(node.op, _operand(node, attribute, label), target, attribute),
            ]
        )


def _present(target: Target, attribute: Attribute) -> Condition:
    """Assigned: not NULL and, for strings, not empty (RFC 7643 2.5)."""
    if isinstance(target, Constant):
        return sql.constant(is_assigned(target.value))
    return sql.present(target, attribute)


def _operand(node: Comparison, attribute: Attribute, label: str) -> Any:
    """The operand as the store compares it: a bool for a boolean, the [start, end) instants
    a dateTime operand stands for (see datetime_window), else the string as given."""
    if attribute.type == "boolean":
        return as_boolean(node.value)
    if attribute.type == "dateTime":
        return datetime_window(node.value, label)
    return node.value
