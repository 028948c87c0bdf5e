"""Where a /Bulk operation may hold ``bulkId:<id>`` references (bulk.py), and their resolution.

Only in places whose type is a reference to a resource, so any other string that happens to
read "bulkId:x" (a displayName, a title) stays as written:

* the path's segments, split on "/" exactly as the path is routed: the path is JSON text, not
  a URL, so it is never percent-decoded (an encoded "%2F" would let a client re-route it, an
  encoded "%3A" hide a reference from the scheduler yet have it resolved);
* a Group's ``members[].value`` and an enterprise User's ``manager.value`` (or a bare
  ``manager`` string, as some IdPs send) in a POST or PUT body;
* in a PATCH operation: the ``value`` of one whose path targets ``members`` or ``manager``
  (or their ``value``), the members and manager in a pathless ``value``, and the string
  literals of a ``members[...]`` path filter, as in ``members[value eq "bulkId:u"]``.

Finding and resolving go through the same :class:`Place` list, so what the scheduler waits
for is exactly what is resolved.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

from .errors import ScimError
from .paths import parse_path
from .schemas import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    GROUP_SCHEMA,
    USER_RESOURCE,
    ResourceType,
)

REFERENCE = "bulkId:"
# The attributes whose value is a resource's id: (schema, attribute).
REFERENCING = frozenset({(GROUP_SCHEMA, "members"), (ENTERPRISE_USER_SCHEMA, "manager")})
RESOURCES = {"Users": USER_RESOURCE, "Groups": GROUP_RESOURCE}
# A filter's string literal, JSON-escaped (RFC 7644 3.4.2.2).
LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')


@dataclasses.dataclass(frozen=True)
class Place:
    """``container[key]``: a string that is a reference, or (``in_filter``) a path filter
    whose string literals may be."""

    container: Any  # a dict or a list of the operation's data
    key: Any
    in_filter: bool = False

    def references(self) -> list[str]:
        text = self.container[self.key]
        if not self.in_filter:
            return [text[len(REFERENCE) :]]
        return [
            ref for literal in LITERAL.findall(text) if (ref := _literal_ref(literal)) is not None
        ]

    def resolve(self, resolve: Callable[[str], str]) -> None:
        """Put the id each reference stands for in place (``resolve`` raises when none)."""
        text = self.container[self.key]
        if not self.in_filter:
            self.container[self.key] = resolve(text)
            return

        def replaced(match: re.Match[str]) -> str:
            literal = match.group(0)
            ref = _literal_ref(literal)
            return literal if ref is None else json.dumps(resolve(REFERENCE + ref))

        self.container[self.key] = LITERAL.sub(replaced, text)


def _literal_ref(literal: str) -> str | None:
    try:
        text = json.loads(literal)
    except ValueError:
        return None
    return text[len(REFERENCE) :] if isinstance(text, str) and text.startswith(REFERENCE) else None


def path_references(path: str) -> list[str]:
    return [s[len(REFERENCE) :] for s in path.split("/") if s.startswith(REFERENCE)]


def resolve_path(path: str, resolve: Callable[[str], str]) -> str:
    return "/".join(resolve(s) if s.startswith(REFERENCE) else s for s in path.split("/"))


def places(method: str, path: str, data: Any) -> list[Place]:
    """The reference places of an operation's data; none where the path names no resource
    type (routing refuses it) or the data is not shaped as it should be (the endpoint does)."""
    segments = path.split("/")
    resource = RESOURCES.get(segments[1]) if len(segments) > 1 else None
    if resource is None or not isinstance(data, dict):
        return []
    if method != "PATCH":
        return _object_places(resource, data)
    found: list[Place] = []
    for operations in _values(data, "operations"):
        for operation in operations if isinstance(operations, list) else []:
            if not isinstance(operation, dict):
                continue
            paths = [k for k in _keys(operation, "path") if isinstance(operation[k], str)]
            for key in _keys(operation, "value"):
                if not paths and isinstance(operation[key], dict):
                    found += _object_places(resource, operation[key])
                for path_key in paths:
                    found += _target_places(resource, operation[path_key], operation, key)
            for path_key in paths:
                if "[" in operation[path_key] and _referencing(resource, operation[path_key]):
                    place = Place(operation, path_key, in_filter=True)
                    found += [place] if place.references() else []
    return found


def _object_places(resource: ResourceType, obj: dict[str, Any]) -> list[Place]:
    """In a resource's body, or a pathless PATCH value: each key is an attribute's path."""
    found: list[Place] = []
    for key in list(obj):
        if not isinstance(key, str):
            continue
        if key.lower() == ENTERPRISE_USER_SCHEMA.lower() and resource is USER_RESOURCE:
            extension = obj[key]
            if isinstance(extension, dict):
                for name in _keys(extension, "manager"):
                    found += _value_places(extension, name)
        else:
            found += _target_places(resource, key, obj, key)
    return found


def _target_places(resource: ResourceType, path: str, container: Any, key: Any) -> list[Place]:
    """``container[key]`` is the value given for ``path``: its places, if a referencing one."""
    target = _referencing(resource, path)
    if target is None:
        return []
    if target.sub_attribute is not None:  # members.value, manager.value: the id itself
        return _value_places(container, key) if target.sub_attribute.name == "value" else []
    value = container[key]
    if isinstance(value, list) and target.attribute.multi_valued:
        return [place for index in range(len(value)) for place in _value_places(value, index)]
    return _value_places(container, key)


def _value_places(container: Any, key: Any) -> list[Place]:
    """``container[key]`` as a complex value's ``value`` (or that value bare)."""
    value = container[key]
    if isinstance(value, str):
        return [Place(container, key)] if value.startswith(REFERENCE) else []
    if isinstance(value, dict):
        return [
            Place(value, name)
            for name in _keys(value, "value")
            if isinstance(value[name], str) and value[name].startswith(REFERENCE)
        ]
    return []


def _referencing(resource: ResourceType, path: str) -> Any:
    """The parsed ``path`` when it targets a referencing attribute, else None."""
    try:
        parsed = parse_path(path, resource)
    except (ScimError, RecursionError):  # the endpoint answers a bad path
        return None
    referencing = (parsed.target.schema.id, parsed.attribute.name) in REFERENCING
    return parsed if referencing else None


def _keys(obj: dict[Any, Any], name: str) -> list[Any]:
    """Every key of ``obj`` that is ``name`` in any case: the endpoint reads one of them."""
    return [key for key in obj if isinstance(key, str) and key.lower() == name]


def _values(obj: dict[Any, Any], name: str) -> list[Any]:
    return [obj[key] for key in _keys(obj, name)]
