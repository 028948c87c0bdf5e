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
    """Apply ``attributes`` or ``excludedAttributes``; ``id`` and ``schemas`` always stay."""
    if not attributes and not excluded:
        return doc
    selected = [p for p in (resource.resolve(a) for a in attributes or excluded) if p is not None]
    if attributes:
        out: dict[str, Any] = {"schemas": doc["schemas"], "id": doc["id"]}
        for path in selected:
            _copy_path(doc, out, path)
        return out
    out = copy.copy(doc)
    for path in selected:
        if path.attribute.returned == "always":
            continue
        container = out
        if path.schema is not resource.schema:
            extension = out.get(path.schema.id)
            if not isinstance(extension, dict):
                continue
            container = out[path.schema.id] = dict(extension)  # copy: never edit the input
        _remove_path(container, path)
    return out


def _copy_path(source: dict[str, Any], target: dict[str, Any], path: Any) -> None:
    if path.schema.id != source["schemas"][0]:
        src = source.get(path.schema.id)
        if not isinstance(src, dict):
            return
        dst = target.setdefault(path.schema.id, {})
    else:
        src, dst = source, target
    name = path.attribute.name
    if name not in src:
        return
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
        return
    if path.sub_attribute is None:
        del container[name]
        return
    sub = path.sub_attribute.name
    value = container[name]
    if isinstance(value, list):
        container[name] = [{k: v for k, v in item.items() if k != sub} for item in value]
    elif isinstance(value, dict):
        container[name] = {k: v for k, v in value.items() if k != sub}
