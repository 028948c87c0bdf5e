"""SCIM PATCH (RFC 7644 section 3.5.2) applied to a resource's canonical JSON document.

:func:`apply_patch` returns a new document; the SCIM app validates it and writes it back the
way a PUT would, so this module only has to get the document right. Operations apply in
order to one copy: any error leaves the caller's document untouched (PATCH is atomic).

Deliberate departures from a literal reading of the RFC, all for IdP interop:

* ``op`` and body keys are case-insensitive and ``schemas`` isn't enforced (Entra, Okta).
* A filtered ``add``/``replace`` that matches nothing and whose filter is exactly
  ``type eq "x"`` creates ``{"type": "x", ...}`` instead of failing with noTarget: Entra
  sends ``replace emails[type eq "work"].value`` for users who have no work email yet.
* ``remove`` of a multi-valued attribute with a ``value`` list removes just those values
  (Entra's way of removing group members); a filter matching nothing removes nothing. The
  same for an undescribed extension attribute (the mirror of ``add`` appending to its list):
  the values equal as JSON to one listed are removed, the rest kept.
* Booleans accept "true"/"false" strings; numbers given for strings become their text; a
  bare value for a complex attribute with a ``value`` part means ``{"value": ...}`` (Entra's
  manager); a single object for a multi-valued attribute means a list of one.
* ``null`` unassigns the target (RFC 7643 section 2.5), as does ``replace`` with ``[]``.
* ``password`` is writeOnly: accepted and discarded. readOnly attributes (``id``, ``meta``,
  ``groups``) may be repeated unchanged (Okta sends ``id`` on group renames); any change,
  and any removal, is ``mutability``. So is removing a required attribute (``userName``,
  a Group's ``displayName``): the operation is well-formed, the state it asks for is not.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from .errors import ScimError, invalid_path, invalid_syntax, invalid_value, mutability, no_target
from .extensions import MAX_EXTENSION_VALUES, Budget, check_urn_length, show_name
from .filters import Comparison, Node
from .patch_objects import Objects
from .paths import (
    PatchPath,
    Selector,
    delete_name,
    get_name,
    lowered_keys,
    parse_path,
)
from .schemas import ATTRIBUTE_NAME, Attribute, ResourceType, Schema
from .values import (
    ValueIndex,
    check_immutable,
    coerce,
    coerce_value,
    merge,
    put_values,
    show,
    strip_unassigned,
)

MAX_OPERATIONS = 1000
# Per request: the JSON values and names operations give extensions, and the list items their
# adds and removes compare against (extensions.Budget). A few times what one User can keep.
MAX_EXTENSION_WORK = 4 * MAX_EXTENSION_VALUES
OPS = ("add", "replace", "remove")


@dataclasses.dataclass(frozen=True)
class PatchOperation:
    op: str  # "add", "replace" or "remove", lower case
    path: str | None
    value: Any = None
    has_value: bool = False


def apply_patch(document: dict[str, Any], body: Any, resource: ResourceType) -> dict[str, Any]:
    """The document after the PatchOp request ``body``; raises ScimError, never mutates input."""
    operations = parse_operations(body)
    result = copy.deepcopy(document)
    patcher = _Patcher(result, resource)
    for operation in operations:
        patcher.apply(operation)
    patcher.finish()
    delete_name(result, "password")  # writeOnly: never part of a stored document
    return result


def parse_operations(body: Any) -> list[PatchOperation]:
    if not isinstance(body, Mapping):
        raise invalid_syntax("the PATCH body must be a JSON object with Operations")
    operations = lowered_keys(body).get("operations")
    if not isinstance(operations, list) or not operations:
        raise invalid_syntax("Operations must be a non-empty list of operations")
    if len(operations) > MAX_OPERATIONS:
        raise invalid_value(
            f"too many operations ({len(operations)}); at most {MAX_OPERATIONS} per request"
        )
    return [_parse_operation(index, item) for index, item in enumerate(operations)]


def _parse_operation(index: int, item: Any) -> PatchOperation:
    if not isinstance(item, Mapping):
        raise invalid_syntax(f"Operations[{index}] must be an object")
    fields = lowered_keys(item)
    op = fields.get("op")
    if not isinstance(op, str) or op.lower() not in OPS:
        raise invalid_syntax(
            f"Operations[{index}].op must be add, replace or remove, not {show(op)}"
        )
    path = fields.get("path")
    if isinstance(path, str) and not path.strip():
        path = None  # some clients send "" for "no path"
    if path is not None and not isinstance(path, str):
        raise invalid_syntax(f"Operations[{index}].path must be a string")
    has_value = "value" in fields
    if op.lower() != "remove" and not has_value:
        raise invalid_value(f"Operations[{index}] ({op}) needs a value")
    return PatchOperation(op.lower(), path, fields.get("value"), has_value)


class _Patcher:
    def __init__(self, document: dict[str, Any], resource: ResourceType) -> None:
        self.document = document
        self.resource = resource
        self.selector = Selector()
        self.budget = Budget(
            MAX_EXTENSION_WORK, " (counting the list items its adds and removes look through)"
        )
        self.objects = Objects(document, resource.schema, self.budget)

    def finish(self) -> None:
        self.objects.finish()

    def apply(self, operation: PatchOperation) -> None:
        op, value = operation.op, operation.value
        if (
            self.resource.open_extensions
            and value is not None
            and (operation.path is None or operation.path.strip().lower().startswith("urn:"))
        ):
            self.budget.spend(value)  # before any per-name work: see MAX_EXTENSION_WORK
        if operation.path is None:
            if op == "remove":
                raise no_target("remove needs a path")
            self._apply_object(op, value, None)
            return
        schema = self._schema_named(operation.path.strip(), op, value)
        if schema is None:
            path = parse_path(operation.path, self.resource)
            self._apply(op, path, value, operation.has_value)
        elif op != "remove":  # the path names a schema: the value is an object of its attributes
            self._apply_object(op, value, schema)
        elif schema is not self.resource.schema:
            self.objects.drop(schema)
        else:
            raise invalid_path("the core schema cannot be removed")

    def _apply_object(self, op: str, value: Any, schema: Schema | None) -> None:
        """A pathless value: an object of attribute names (any case, dotted, URN-qualified)."""
        if value is None and schema is not None and schema is not self.resource.schema:
            self.objects.drop(schema)
            return
        if not isinstance(value, Mapping):
            raise invalid_value("without a path, value must be an object of attributes")
        for key, item in value.items():
            name = str(key)
            if name.lower() == "schemas":
                continue
            if (
                schema is not None
                and schema is not self.resource.schema
                and ATTRIBUTE_NAME.fullmatch(name) is None
            ):
                # As POST and PUT refuse it: "<urn>:<urn:b:c>" would read as attribute c of
                # extension "<urn>:urn:b", a URN the client never named.
                raise invalid_path(f"{show_name(key)} in {schema.id} is not an attribute name")
            if schema is None and (nested := self._schema_named(name, op, item)) is not None:
                self._apply_object(op, item, nested)
                continue
            qualified = name if schema is None else f"{schema.id}:{name}"
            self._apply(op, parse_path(qualified, self.resource), item, True)

    def _apply(self, op: str, path: PatchPath, value: Any, has_value: bool) -> None:
        attribute, sub = path.attribute, path.sub_attribute
        if attribute.mutability == "writeOnly":
            return  # password: accepted, never stored
        unassign = op == "remove" or value is None or (op == "replace" and value == [])
        read_only = attribute.mutability == "readOnly" or (
            sub is not None and sub.mutability == "readOnly"
        )
        if read_only:
            if op != "remove" and path.filter is None and self._unchanged(path, value):
                return
            raise mutability(f"{path.text} is readOnly")
        if attribute.required and unassign and sub is None and path.filter is None:
            raise mutability(f"{attribute.name} is required and cannot be removed")
        if op == "remove" and has_value and value is not None and attribute.type == "any":
            self.objects.remove_open(path, value)
        elif (
            op == "remove"
            and has_value
            and value is not None
            and attribute.multi_valued
            and sub is None
            and path.filter is None
        ):
            self._remove_listed(path, value)
        elif unassign:
            self._remove(path)
        elif attribute.type == "any" and op == "add":
            self.objects.add_open(path, value)
        elif attribute.multi_valued:
            self._write_multi(op, path, value)
        else:
            self._write_single(path, value)
        if path.target.schema is not self.resource.schema:
            self.objects.tidy(path.target.schema)
        if not (op == "remove" and path.filter is not None and sub is None):
            self.selector.reset()  # values may have changed: indexes of them are stale

    # -- where values live ------------------------------------------------------------------

    def _schema_named(self, urn: str, op: str, value: Any) -> Schema | None:
        """The schema a path (or a pathless value's key) names as a whole, if it names one.

        An undescribed URN names an extension when it ends in ``:User``, or when it holds an
        object (given, or already in the document for a remove): see extension_by_urn."""
        schema = self.resource.schema_by_urn(urn)
        if schema is not None or not urn.lower().startswith("urn:"):
            return schema
        given = isinstance(value, Mapping) or (op == "remove" and self.objects.holds_object(urn))
        schema = self.resource.extension_by_urn(urn, object_given=given)
        if schema is not None:
            check_urn_length(schema.id, invalid_path)
        return schema

    def _unchanged(self, path: PatchPath, value: Any) -> bool:
        """Whether ``value`` is what a readOnly target already holds (a harmless echo)."""
        try:
            given = strip_unassigned(coerce(path.sub_attribute or path.attribute, value))
        except ScimError:
            return False  # ill-typed is a change: mutability follows
        container = self.objects.container(path.target.schema, create=False) or {}
        current = get_name(container, path.attribute.name)
        if path.sub_attribute is not None:
            current = (
                get_name(current, path.sub_attribute.name) if isinstance(current, dict) else None
            )
        return bool(given == current)

    def _elements(self, path: PatchPath, create: bool) -> tuple[dict[str, Any] | None, list[Any]]:
        container = self.objects.container(path.target.schema, create)
        current = self.objects.get(path, container) if container is not None else None
        if current is None:
            return container, []
        return container, current if isinstance(current, list) else [current]

    # -- the operations ---------------------------------------------------------------------

    def _write_single(self, path: PatchPath, value: Any) -> None:
        container = self.objects.container(path.target.schema, create=True)
        assert container is not None
        attribute, sub = path.attribute, path.sub_attribute
        if sub is None and attribute.type != "complex":
            new = coerce(attribute, value)
            check_immutable(attribute, self.objects.get(path, container), new)
            self.objects.put(path, container, new)
            return
        # Complex: add and replace both set the sub-attributes given and keep the others.
        current = get_name(container, attribute.name)
        merged = dict(current) if isinstance(current, dict) else {}
        merge(
            attribute,
            merged,
            coerce(attribute, value) if sub is None else {sub.name: coerce(sub, value)},
        )
        put_values(container, attribute.name, merged)

    def _write_multi(self, op: str, path: PatchPath, value: Any) -> None:
        container, elements = self._elements(path, create=True)
        assert container is not None
        attribute, sub = path.attribute, path.sub_attribute
        promoted: list[Any] = []  # the values this operation made primary
        if path.filter is None and sub is None:
            index = ValueIndex(attribute, [] if op == "replace" else elements)
            for item in coerce(attribute, value):
                element = index.add(strip_unassigned(item))
                if isinstance(item, dict) and item.get("primary") is True:
                    promoted.append(element)
            elements = index.elements
        else:
            given = (
                {sub.name: coerce(sub, value)}
                if sub is not None
                else coerce_value(attribute, _single(attribute, value))
            )
            targets = self.selector.select(path, elements)
            if not targets:
                kind = _upsert_type(path.filter, attribute)
                if path.filter is not None and kind is None:
                    raise no_target(f"no value matches {path.text}")
                targets = [{"type": kind} if kind is not None else {}]
                elements.append(targets[0])
            for element in targets:
                merge(attribute, element, given)
            if given.get("primary") is True:
                promoted.extend(targets)
            elements = [e for e in elements if e != {}]
        if len({id(e) for e in promoted}) > 1:
            raise invalid_value(f"at most one {attribute.name} value can be primary")
        if promoted:  # RFC 7644 section 3.5.2: the others' primary becomes false
            for element in elements:
                if (
                    element is not promoted[0]
                    and isinstance(element, dict)
                    and element.get("primary") is True
                ):
                    element["primary"] = False
        put_values(container, attribute.name, elements)

    def _remove(self, path: PatchPath) -> None:
        container, elements = self._elements(path, create=False)
        if container is None:
            return
        attribute, sub = path.attribute, path.sub_attribute
        if sub is None and path.filter is None:
            self.objects.delete(path, container)
        elif not attribute.multi_valued:
            current = get_name(container, attribute.name)
            if isinstance(current, dict):
                merge(attribute, current, {sub.name: None})  # type: ignore[union-attr]
                put_values(container, attribute.name, current)
        else:
            targets = self.selector.select(path, elements)
            if sub is None:  # a filter matching nothing removes nothing (idempotent for IdPs)
                self.selector.discard(elements, targets)
            else:
                for element in targets:
                    merge(attribute, element, {sub.name: None})
                elements = [e for e in elements if e != {}]
            put_values(container, attribute.name, elements)

    def _remove_listed(self, path: PatchPath, value: Any) -> None:
        """Entra: ``remove members`` with ``value: [{"value": id}]`` removes just those members."""
        container, elements = self._elements(path, create=False)
        if container is None:
            return
        listed = ValueIndex(path.attribute, [])
        for item in coerce(path.attribute, value):
            listed.add(strip_unassigned(item))
        put_values(container, path.attribute.name, [e for e in elements if listed.find(e) is None])


def _upsert_type(node: Node | None, attribute: Attribute) -> str | None:
    """``x`` when the filter is exactly ``type eq "x"``: the only filter we create values for."""
    if (
        isinstance(node, Comparison)
        and node.op == "eq"
        and node.path.lower() == "type"
        and isinstance(node.value, str)
        and attribute.sub_attribute("type") is not None
    ):
        return node.value
    return None


def _single(attribute: Attribute, value: Any) -> Any:
    """The one value for a filtered target; a list of exactly one is accepted too."""
    if isinstance(value, list):
        if len(value) != 1:
            raise invalid_value(f"a filtered {attribute.name} target takes one value")
        return value[0]
    return value
