"""Where a PATCH finds the values it changes (patch.py): the document itself for the core
schema, an extension's object nested under its URN otherwise; and the undescribed extension
attributes' own operations (add appends to a list, remove by value).

Whatever a request asks, each name costs O(1): extension objects are found by URN, and their
attributes by name, through :class:`~.paths.NameIndex`; the URNs ``schemas`` lists are a set,
and an extension dropped leaves ``schemas`` once, in :meth:`Objects.finish`. Work that is
linear in what the document holds (a list an ``add`` looks through) is charged to the
request's :class:`~.extensions.Budget`.
"""

from __future__ import annotations

from typing import Any

from .extensions import Budget, canonical
from .paths import NameIndex, PatchPath, delete_name, get_name, put_name
from .schemas import Schema


class Objects:
    def __init__(self, document: dict[str, Any], core: Schema, budget: Budget) -> None:
        self.document = document
        self.core = core
        self.budget = budget
        self.urns = NameIndex(document)  # the extension objects, by URN
        self.names: dict[str, NameIndex] = {}  # lower-cased URN -> its object's names
        schemas = document.get("schemas")
        self.listed = {str(s).lower() for s in schemas} if isinstance(schemas, list) else set()
        self.unlisted = False  # an extension was dropped: finish() takes it out of ``schemas``

    def holds_object(self, urn: str) -> bool:
        return isinstance(self.urns.get(urn), dict)

    def container(self, schema: Schema, create: bool) -> dict[str, Any] | None:
        """The top-level document, or the extension's object nested under its URN."""
        if schema is self.core:
            return self.document
        container = self.urns.get(schema.id)
        if not isinstance(container, dict):
            if not create:
                return None
            container = {}
        self.urns.put(schema.id, container)  # under the URN as last named
        return container

    def get(self, path: PatchPath, container: dict[str, Any]) -> Any:
        names = self._names(path, container)
        name = path.attribute.name
        return get_name(container, name) if names is None else names.get(name)

    def put(self, path: PatchPath, container: dict[str, Any], value: Any) -> None:
        names = self._names(path, container)
        if names is None:
            put_name(container, path.attribute.name, value)
        else:
            names.put(path.attribute.name, value)

    def delete(self, path: PatchPath, container: dict[str, Any]) -> None:
        names = self._names(path, container)
        if names is None:
            delete_name(container, path.attribute.name)
        else:
            names.delete(path.attribute.name)

    def _names(self, path: PatchPath, container: dict[str, Any]) -> NameIndex | None:
        """The index of an extension object's names (None for the core schema's)."""
        if path.target.schema is self.core:
            return None
        lowered = path.target.schema.id.lower()
        names = self.names.get(lowered)
        if names is None or names.container is not container:
            names = self.names[lowered] = NameIndex(container)
        return names

    def tidy(self, schema: Schema) -> None:
        """An extension's object and its URN in ``schemas`` exist exactly when it has values."""
        container = self.urns.get(schema.id)
        schemas = self.document.get("schemas")
        if not (isinstance(container, dict) and container):
            self.drop(schema)
        elif isinstance(schemas, list) and schema.id.lower() not in self.listed:
            schemas.append(schema.id)
            self.listed.add(schema.id.lower())

    def drop(self, schema: Schema) -> None:
        lowered = schema.id.lower()
        self.urns.delete(schema.id)
        self.names.pop(lowered, None)
        if lowered in self.listed:
            self.listed.discard(lowered)
            self.unlisted = True

    def finish(self) -> None:
        """``schemas`` without the extensions dropped (each URN once)."""
        schemas = self.document.get("schemas")
        if self.unlisted and isinstance(schemas, list):
            seen: set[str] = set()
            kept = []
            for urn in schemas:
                lowered = str(urn).lower()
                if lowered in self.listed and lowered not in seen:
                    seen.add(lowered)
                    kept.append(urn)
            schemas[:] = kept

    # -- an undescribed attribute's own operations -------------------------------------------

    def add_open(self, path: PatchPath, value: Any) -> None:
        """``add`` to an undescribed attribute: appends to a list it holds (RFC 7644 3.5.2.1
        for a multi-valued attribute), values already there once; otherwise sets it.

        "Already there" is equal as JSON (``true`` is not ``1``, as Python's ``in`` has it),
        found through a set: linear in the list, and the list is charged to the budget."""
        container = self.container(path.target.schema, create=True)
        assert container is not None
        current = self.get(path, container)
        if isinstance(current, list):
            self.budget.charge(len(current))
            seen = {canonical(item) for item in current}
            appended = list(current)
            for item in value_list(value):
                if (key := canonical(item)) not in seen:
                    seen.add(key)
                    appended.append(item)
            value = appended
        self.put(path, container, value)

    def remove_open(self, path: PatchPath, value: Any) -> None:
        """``remove`` with a ``value`` from an undescribed attribute: the values equal (as
        JSON) to one listed go, the rest stay; a single value goes only when listed."""
        container = self.container(path.target.schema, create=False)
        current = None if container is None else self.get(path, container)
        if container is None or current is None:
            return
        listed = {canonical(item) for item in value_list(value)}
        if isinstance(current, list):
            self.budget.charge(len(current))
            kept = [item for item in current if canonical(item) not in listed]
            if kept:
                self.put(path, container, kept)
            else:
                self.delete(path, container)
        elif canonical(current) in listed:
            self.delete(path, container)


def value_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
