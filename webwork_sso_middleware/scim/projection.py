"""``attributes`` and ``excludedAttributes`` (RFC 7644 section 3.9): which parts of a
document a response carries."""

from __future__ import annotations

import copy
from typing import Any

from .errors import invalid_value
from .schemas import ResourceType


def parse_attribute_list(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list):
        raw = ",".join(str(item) for item in raw)
    if not isinstance(raw, str):
        raise invalid_value("attributes must be a comma-separated string")
    return [item.strip() for item in raw.split(",") if item.strip()]


def project(
    doc: dict[str, Any], resource: ResourceType, attributes: list[str], excluded: list[str]
) -> dict[str, Any]:
    """Apply ``attributes`` or ``excludedAttributes``; ``id`` and ``schemas`` always stay.

    A name may be an extension's URN: the whole extension object is selected (or left out)."""
    if not attributes and not excluded:
        return doc
    names = attributes or excluded
    wholes = [key for name in names if (key := _extension_key(doc, resource, name)) is not None]
    selected = [
        p
        for p in (resource.resolve(a) for a in names if _extension_key(doc, resource, a) is None)
        if p is not None
    ]
    if attributes:
        out: dict[str, Any] = {"schemas": doc["schemas"], "id": doc["id"]}
        for key in wholes:
            out[key] = doc[key]
        for path in selected:
            _copy_path(doc, out, path)
        return out
    out = copy.copy(doc)
    for key in wholes:
        del out[key]
    for path in selected:
        if path.attribute.returned == "always":
            continue
        container = out
        if path.schema is not resource.schema:
            key = _key(out, path.schema.id)
            if key is None or not isinstance(out[key], dict):
                continue
            container = out[key] = dict(out[key])  # copy: never edit the input
        _remove_path(container, path)
    return out


def _key(doc: dict[str, Any], urn: str) -> str | None:
    """The document's key for an extension URN, whatever its case."""
    lowered = urn.lower()
    return next((k for k in doc if k.lower() == lowered), None)


def _extension_key(doc: dict[str, Any], resource: ResourceType, name: str) -> str | None:
    """The key of the extension ``name`` names as a whole, when the document carries one."""
    key = _key(doc, name) if name.lower().startswith("urn:") else None
    if key is None or key.lower() == resource.schema.id.lower():
        return None
    return key


def _copy_path(source: dict[str, Any], target: dict[str, Any], path: Any) -> None:
    if path.schema.id != source["schemas"][0]:
        key = _key(source, path.schema.id)
        src = source.get(key) if key is not None else None
        if not isinstance(src, dict):
            return
        dst = target.setdefault(key, {})  # type: ignore[arg-type]
    else:
        src, dst = source, target
    name = path.attribute.name
    if name not in src:
        key = _key(src, name)  # an undescribed attribute, named in another case
        if key is None:
            return
        name = key
    if path.sub_attribute is None:
        dst[name] = src[name]
    elif isinstance(src[name], list):
        sub = path.sub_attribute.name
        dst[name] = [{sub: v[sub]} for v in src[name] if sub in v]
    elif isinstance(src[name], dict) and path.sub_attribute.name in src[name]:
        dst.setdefault(name, {})[path.sub_attribute.name] = src[name][path.sub_attribute.name]


def _remove_path(container: dict[str, Any], path: Any) -> None:
    name = path.attribute.name
    if name not in container:
        key = _key(container, name)
        if key is None:
            return
        name = key
    if path.sub_attribute is None:
        del container[name]
        return
    sub = path.sub_attribute.name
    value = container[name]
    if isinstance(value, list):
        container[name] = [{k: v for k, v in item.items() if k != sub} for item in value]
    elif isinstance(value, dict):
        container[name] = {k: v for k, v in value.items() if k != sub}
