"""PATCH paths (RFC 7644 section 3.5.2): ``attr``, ``attr.sub``, URN-qualified names and value
filters such as ``emails[type eq "work"].value``; finding what they target in documents.

Names are resolved against the schema here, once, so :mod:`.patch` only sees canonical
attributes. Errors: an unknown or malformed name is ``invalidPath``; anything wrong inside the
brackets is ``invalidFilter`` (RFC 7644 Table 9 lists invalidFilter for "PATCH (Path Filter)").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .errors import invalid_filter, invalid_path
from .filters import And, Comparison, Node, Not, Or, ValuePath, parse_filter
from .matching import matches
from .schemas import Attribute, AttributePath, ResourceType

MAX_PATH_LENGTH = 2048
INDEX_FROM = 64  # values; below this a scan is as fast as an index


@dataclasses.dataclass(frozen=True)
class PatchPath:
    """A resolved PATCH target: an attribute, maybe one sub-attribute, maybe a value filter."""

    text: str
    target: AttributePath
    filter: Node | None = None

    @property
    def attribute(self) -> Attribute:
        return self.target.attribute

    @property
    def sub_attribute(self) -> Attribute | None:
        return self.target.sub_attribute


def parse_path(text: str, resource: ResourceType) -> PatchPath:
    """A ``path`` member, or a key of a pathless value (those may be paths too)."""
    if len(text) > MAX_PATH_LENGTH:
        raise invalid_path(f"path is longer than {MAX_PATH_LENGTH} characters")
    text = text.strip()
    opened = text.find("[")
    if opened < 0:
        found = resource.resolve(text) if "]" not in text else None
        if found is None:
            raise invalid_path(f"{text!r} is not an attribute of {resource.name}")
        return PatchPath(text, found)
    closed = _closing_bracket(text, opened)
    head, inner, rest = text[:opened].strip(), text[opened + 1 : closed], text[closed + 1 :]
    target = resource.resolve(head)
    if target is None or target.sub_attribute is not None:
        raise invalid_path(f"{head!r} is not an attribute of {resource.name}")
    attribute = target.attribute
    if not (attribute.multi_valued and attribute.type == "complex"):
        raise invalid_path(f"{attribute.name} is not multi-valued; it cannot take a value filter")
    sub = None
    if rest:
        sub = attribute.sub_attribute(rest[1:]) if rest.startswith(".") else None
        if sub is None:
            raise invalid_path(
                f"{rest!r} after the filter in {text!r} is not a sub-attribute of {attribute.name}"
            )
    node = parse_filter(inner)
    _check_filter(node, attribute)
    return PatchPath(text, AttributePath(target.schema, attribute, sub), node)


def _closing_bracket(text: str, opened: int) -> int:
    """The index of the ``]`` closing ``text[opened]``; brackets inside strings don't count.

    Nested brackets are matched too, so that the filter parser reports them (invalidFilter).
    """
    in_string = escaped = False
    depth = 0
    for index in range(opened + 1, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "[":
            depth += 1
        elif char == "]":
            if depth == 0:
                return index
            depth -= 1
    raise invalid_path(f"missing ']' in path {text!r}")


def _check_filter(node: Node, attribute: Attribute) -> None:
    """Fail on unknown sub-attributes and ill-typed operands now, whatever the values are.

    ``matches`` checks these only for the values it evaluates, so an empty list (or an ``and``
    that short-circuits) would otherwise hide a malformed filter.
    """
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, (And, Or)):
            pending.extend((current.left, current.right))
        elif isinstance(current, Not):
            pending.append(current.node)
        elif isinstance(current, ValuePath):
            raise invalid_filter(f"value filters do not nest (in a filter on {attribute.name})")
        else:
            matches(current, {}, attribute=attribute)


# -- names in documents: case-insensitive (RFC 7643 section 2.1), written back canonically --


def lowered_keys(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    """A request object with its keys lower-cased, to read its members whatever their case."""
    return {str(key).lower(): value for key, value in mapping.items()}


def get_name(container: Mapping[str, Any], name: str) -> Any:
    if name in container:
        return container[name]
    lowered = name.lower()
    return next(
        (v for k, v in container.items() if isinstance(k, str) and k.lower() == lowered), None
    )


def put_name(container: dict[str, Any], name: str, value: Any) -> None:
    lowered = name.lower()
    for key in [k for k in container if isinstance(k, str) and k.lower() == lowered and k != name]:
        del container[key]  # an IdP's "Name" becomes "name"
    container[name] = value


def delete_name(container: dict[str, Any], name: str) -> None:
    lowered = name.lower()
    for key in [k for k in container if isinstance(k, str) and k.lower() == lowered]:
        del container[key]


class NameIndex:
    """One dict's names found case-insensitively in O(1), written back as :func:`put_name` does.

    get_name and put_name scan every key: per key of a large object that is quadratic work a
    client could ask for. Names written to the dict other than through the index are found
    only if they were there when it was built; a name it holds that is gone is treated as
    absent. (Callers use it for names only they write.)"""

    def __init__(self, container: dict[str, Any]) -> None:
        self.container = container
        self.keys = {key.lower(): key for key in container if isinstance(key, str)}

    def key(self, name: str) -> str | None:
        """The key ``name`` is held under, in whatever case."""
        if name in self.container:
            return name
        key = self.keys.get(name.lower())
        return key if key is not None and key in self.container else None

    def get(self, name: str) -> Any:
        key = self.key(name)
        return None if key is None else self.container[key]

    def put(self, name: str, value: Any) -> None:
        key = self.key(name)
        if key is not None and key != name:
            del self.container[key]  # an IdP's "Name" becomes "name"
        self.keys[name.lower()] = name
        self.container[name] = value

    def delete(self, name: str) -> None:
        key = self.key(name)
        if key is not None:
            del self.container[key]
        self.keys.pop(name.lower(), None)


class Selector:
    """Finds the values a path's filter selects, in document order.

    Okta removes group members one ``members[value eq "id"]`` operation at a time, so scanning
    a large group per operation is quadratic. A simple ``sub eq "text"`` filter therefore
    looks its candidates up in an index of the list (built once, kept through removals, and
    dropped by :meth:`reset` after any other change); ``matches`` still decides each one.
    """

    def __init__(self) -> None:
        # id(list) -> (the list, kept alive so its id isn't reused; sub name; value -> values)
        self._indexes: dict[int, tuple[list[Any], str, dict[str, list[Any]]]] = {}

    def reset(self) -> None:
        self._indexes.clear()

    def select(self, path: PatchPath, elements: list[Any]) -> list[dict[str, Any]]:
        node = path.filter
        candidates = elements
        if isinstance(node, Comparison) and len(elements) >= INDEX_FROM:
            sub = path.attribute.sub_attribute(node.path)
            if (
                node.op == "eq"
                and isinstance(node.value, str)
                and sub is not None
                and sub.type in ("string", "reference")
            ):
                candidates = self._index(elements, sub.name.lower()).get(node.value.lower(), [])
        return [
            e
            for e in candidates
            if isinstance(e, dict) and (node is None or matches(node, e, attribute=path.attribute))
        ]

    def discard(self, elements: list[Any], chosen: list[dict[str, Any]]) -> None:
        """Remove ``chosen`` from ``elements`` in place, keeping any index of it valid."""
        gone = {id(e) for e in chosen}
        elements[:] = [e for e in elements if id(e) not in gone]
        entry = self._indexes.get(id(elements))
        if entry is not None:
            for element in chosen:
                for key in _index_keys(element, entry[1]):
                    bucket = entry[2].get(key, [])
                    bucket[:] = [e for e in bucket if e is not element]

    def _index(self, elements: list[Any], name: str) -> dict[str, list[Any]]:
        entry = self._indexes.get(id(elements))
        if entry is None or entry[1] != name:
            index: dict[str, list[Any]] = {}
            for element in elements:
                for key in _index_keys(element, name):
                    bucket = index.setdefault(key, [])
                    if not bucket or bucket[-1] is not element:
                        bucket.append(element)
            entry = self._indexes[id(elements)] = (elements, name, index)
        return entry[2]


def _index_keys(element: Any, name: str) -> list[str]:
    """The lower-cased strings under ``name`` in any casing, as ``matches`` reads them."""
    if not isinstance(element, dict):
        return []
    keys: list[str] = []
    for key, value in element.items():
        if str(key).lower() == name:
            keys.extend(
                v.lower()
                for v in (value if isinstance(value, list) else [value])
                if isinstance(v, str)
            )
    return keys
