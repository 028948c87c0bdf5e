"""Rows <-> SCIM JSON: the User and Group documents, input validation and projection.

A *document* is a resource in canonical SCIM form: canonical attribute names, the Enterprise
extension nested under its URN. PUT, POST and PATCH all end in :func:`write_user` or
:func:`write_group_fields`, so every write path validates the same way.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidName
from .. import names
from ..store.members import MemberRecord
from ..store.models import Group, Member, MemberValue, utcnow
from .errors import invalid_syntax, invalid_value, mutability
from .schemas import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_SCHEMA,
    USER_SCHEMA,
    Attribute,
    ResourceType,
)

# (SCIM name, column) pairs for the single-valued User attributes.
USER_FIELDS = (
    ("externalId", "external_id"),
    ("userName", "user_name"),
    ("displayName", "display_name"),
    ("nickName", "nick_name"),
    ("profileUrl", "profile_url"),
    ("title", "title"),
    ("userType", "user_type"),
    ("preferredLanguage", "preferred_language"),
    ("locale", "locale"),
    ("timezone", "timezone"),
)
NAME_FIELDS = (
    ("formatted", "formatted_name"),
    ("familyName", "family_name"),
    ("givenName", "given_name"),
    ("middleName", "middle_name"),
    ("honorificPrefix", "honorific_prefix"),
    ("honorificSuffix", "honorific_suffix"),
)
ENTERPRISE_FIELDS = (
    ("employeeNumber", "employee_number"),
    ("costCenter", "cost_center"),
    ("organization", "organization"),
    ("division", "division"),
    ("department", "department"),
)
MULTI_VALUED = (
    "emails", "phoneNumbers", "ims", "photos", "addresses", "entitlements", "roles",
    "x509Certificates",
)
VALUE_FIELDS = (("value", "value"), ("display", "display"), ("type", "type"))
ADDRESS_FIELDS = (
    ("formatted", "formatted"),
    ("streetAddress", "street_address"),
    ("locality", "locality"),
    ("region", "region"),
    ("postalCode", "postal_code"),
    ("country", "country"),
    ("type", "type"),
)
MAX_VALUES_PER_ATTRIBUTE = 100
# Characters no stored string may hold: PostgreSQL refuses NUL in text, and UTF-8 (so either
# backend's driver) cannot encode a lone surrogate, which JSON's "\ud800" escape can produce.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

Locator = Callable[[str, str], str]  # (endpoint, id) -> absolute URL


def version_tag(version: int) -> str:
    return f'W/"{version}"'


def _timestamp(value: Any) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _meta(resource_type: str, row: Any, location: str) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "created": _timestamp(row.created_at),
        "lastModified": _timestamp(row.modified_at),
        "location": location,
        "version": version_tag(row.version),
    }


# -- documents from rows ----------------------------------------------------------------------


def user_document(record: MemberRecord, locate: Locator) -> dict[str, Any]:
    member = record.row
    doc: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": member.id}
    for scim_name, column in USER_FIELDS:
        if (value := getattr(member, column)) is not None:
            doc[scim_name] = value
    name = {scim: v for scim, col in NAME_FIELDS if (v := getattr(member, col)) is not None}
    if name:
        doc["name"] = name
    doc["active"] = member.active
    for row in record.values:
        fields = ADDRESS_FIELDS if row.attribute == "addresses" else VALUE_FIELDS
        value = {scim: v for scim, col in fields if (v := getattr(row, col)) is not None}
        if row.primary:
            value["primary"] = True
        doc.setdefault(row.attribute, []).append(value)
    if record.groups:
        doc["groups"] = [
            {"value": gid, "$ref": locate("Groups", gid), "display": display, "type": "direct"}
            for gid, display in record.groups
        ]
    enterprise = {s: v for s, c in ENTERPRISE_FIELDS if (v := getattr(member, c)) is not None}
    if member.manager_id is not None:
        enterprise["manager"] = {"value": member.manager_id, "$ref": locate("Users", member.manager_id)}
        if member.manager_display_name is not None:
            enterprise["manager"]["displayName"] = member.manager_display_name
    if enterprise:
        doc["schemas"].append(ENTERPRISE_USER_SCHEMA)
        doc[ENTERPRISE_USER_SCHEMA] = enterprise
    doc["meta"] = _meta("User", member, locate("Users", member.id))
    return doc


def group_document(
    group: Group, locate: Locator, members: list[tuple[str, str]] | None
) -> dict[str, Any]:
    """``members`` is a list of (member id, display) pairs, or None when not requested."""
    doc: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": group.id}
    if group.external_id is not None:
        doc["externalId"] = group.external_id
    doc["displayName"] = group.display_name
    if members:
        doc["members"] = [
            {"value": mid, "$ref": locate("Users", mid), "display": display, "type": "User"}
            for mid, display in members
        ]
    doc["meta"] = _meta("Group", group, locate("Groups", group.id))
    return doc


# -- canonical form of client input -----------------------------------------------------------


def canonicalize(body: Any, resource: ResourceType) -> dict[str, Any]:
    """Client JSON -> document with canonical names; unknown attributes and schemas dropped.

    Attribute names are case-insensitive (RFC 7643 section 2.1); attributes of schemas we do
    not serve (an IdP's custom extension) are ignored rather than refused, for interop.
    """
    if not isinstance(body, dict):
        raise invalid_syntax("the request body must be a JSON object")
    doc: dict[str, Any] = {}
    for key, value in body.items():
        if not isinstance(key, str):
            continue
        extension = resource.schema_by_urn(key)
        if extension is not None and extension is not resource.schema:
            if value is not None and not isinstance(value, dict):
                raise invalid_value(f"{extension.id} must be an object")
            doc.setdefault(extension.id, {}).update({
                attr.name: _canonical_value(attr, sub)
                for k, sub in (value or {}).items()
                if isinstance(k, str) and (attr := extension.attribute(k)) is not None
            })
            continue
        if key.lower() == "schemas":
            continue
        path = resource.resolve(key)
        if path is None or path.sub_attribute is not None:
            continue
        if path.schema is resource.schema:
            doc[path.attribute.name] = _canonical_value(path.attribute, value)
        else:  # a URN-qualified extension attribute given at the top level
            doc.setdefault(path.schema.id, {})[path.attribute.name] = _canonical_value(
                path.attribute, value
            )
    return doc


def _canonical_value(attribute: Attribute, value: Any) -> Any:
    if attribute.type != "complex" or value is None:
        return value
    if attribute.multi_valued:
        items = value if isinstance(value, list) else [value]
        return [_canonical_complex(attribute, item) for item in items]
    return _canonical_complex(attribute, value)


def _canonical_complex(attribute: Attribute, value: Any) -> Any:
    if not isinstance(value, dict):
        raise invalid_value(f"{attribute.name} values must be objects")
    out: dict[str, Any] = {}
    for key, sub_value in value.items():
        sub = attribute.sub_attribute(key) if isinstance(key, str) else None
        if sub is not None:
            out[sub.name] = sub_value
    return out


# -- typed reading of document values ---------------------------------------------------------


def text(value: Any, label: str, *, limit: int = 255, required: bool = False) -> str | None:
    """A string attribute; numbers are accepted as their text (IdPs send employee numbers so)."""
    if value is None or value == "":
        if required:
            raise invalid_value(f"{label} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise invalid_value(f"{label} must be a string")
    result = str(value)
    if len(result) > limit:
        raise invalid_value(f"{label} is longer than {limit} characters")
    if UNSTORABLE.search(result):
        raise invalid_value(f"{label} holds a character no value can hold "
                            "(NUL or an unpaired surrogate)")
    if required and not result.strip():
        raise invalid_value(f"{label} must not be blank")
    return result


def boolean(value: Any, label: str) -> bool:
    """A boolean; Entra sends ``"True"``/``"False"`` strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid_value(f"{label} must be a boolean")


def _column_limit(model: type, column: str) -> int:
    length = getattr(model.__table__.c[column].type, "length", None)  # type: ignore[attr-defined]
    return int(length) if length else 65536


# -- documents onto rows ----------------------------------------------------------------------


def write_user(member: Member, doc: Mapping[str, Any]) -> None:
    """Set every client-writable column of ``member`` from a full document (PUT semantics)."""
    if not isinstance(doc.get("userName"), str):
        raise invalid_value("userName is required and must be a string")
    for scim_name, column in USER_FIELDS:
        setattr(
            member,
            column,
            text(doc.get(scim_name), scim_name, limit=_column_limit(Member, column),
                 required=scim_name == "userName"),
        )
    # One normalisation for every way a member is named (names.py): a trailing space,
    # NFD or full-width spelling is the same member, and invisible characters are refused.
    try:
        member.user_name = names.clean(member.user_name, "userName",
                                       limit=_column_limit(Member, "user_name"))
    except InvalidName as invalid:
        raise invalid_value(f"userName {invalid.reason}") from None
    member.user_name_key = names.key(member.user_name)
    if len(member.user_name_key) > _column_limit(Member, "user_name_key"):
        raise invalid_value(f"userName is longer than {_column_limit(Member, 'user_name_key')} "
                            "characters once normalised")
    name = doc.get("name") or {}
    if not isinstance(name, dict):
        raise invalid_value("name must be an object")
    for scim_name, column in NAME_FIELDS:
        setattr(member, column, text(name.get(scim_name), f"name.{scim_name}",
                                     limit=_column_limit(Member, column)))
    if "active" in doc and doc["active"] is not None:
        member.active = boolean(doc["active"], "active")
    elif member.active is None:
        member.active = True
    enterprise = doc.get(ENTERPRISE_USER_SCHEMA) or {}
    for scim_name, column in ENTERPRISE_FIELDS:
        setattr(member, column, text(enterprise.get(scim_name), scim_name,
                                     limit=_column_limit(Member, column)))
    manager = enterprise.get("manager")
    if manager is not None and not isinstance(manager, (dict, str)):
        raise invalid_value("manager must be an object")
    if isinstance(manager, str):  # some IdPs send the manager id alone
        manager = {"value": manager}
    manager = manager or {}
    member.manager_id = text(manager.get("value"), "manager.value")
    member.manager_display_name = text(manager.get("displayName"), "manager.displayName", limit=512)
    _write_values(member, doc)
    member.email_key = _primary_email(member)


def _write_values(member: Member, doc: Mapping[str, Any]) -> None:
    rows: list[MemberValue] = []
    for attribute in MULTI_VALUED:
        values = doc.get(attribute) or []
        if not isinstance(values, list):
            values = [values]
        if len(values) > MAX_VALUES_PER_ATTRIBUTE:
            raise invalid_value(f"{attribute} has more than {MAX_VALUES_PER_ATTRIBUTE} values")
        fields = ADDRESS_FIELDS if attribute == "addresses" else VALUE_FIELDS
        seen_primary = False
        for position, value in enumerate(values):
            if not isinstance(value, dict):
                raise invalid_value(f"{attribute} values must be objects")
            row = MemberValue(attribute=attribute, position=position)
            for scim_name, column in fields:
                limit = 65536 if column == "value" else _column_limit(MemberValue, column)
                setattr(row, column, text(value.get(scim_name), f"{attribute}.{scim_name}",
                                          limit=limit))
            primary = value.get("primary")
            row.primary = primary is not None and boolean(primary, f"{attribute}.primary")
            # RFC 7643: at most one primary value; keep the first one the client marked.
            row.primary, seen_primary = row.primary and not seen_primary, seen_primary or row.primary
            row.value_key = row.value.lower()[:1024] if row.value is not None else None
            rows.append(row)
    if _value_signature(member.values) != _value_signature(rows):
        member.values = rows


def _value_signature(rows: list[MemberValue]) -> list[tuple[Any, ...]]:
    columns = ("attribute", "position", "value", "display", "type", "primary", "formatted",
               "street_address", "locality", "region", "postal_code", "country")
    return sorted(tuple(getattr(row, c) for c in columns) for row in rows)


def _primary_email(member: Member) -> str | None:
    emails = [row for row in member.values if row.attribute == "emails" and row.value]
    chosen = next((row for row in emails if row.primary), None) or next(
        (row for row in emails if (row.type or "").lower() == "work"), None
    ) or (emails[0] if emails else None)
    if chosen is not None:
        return names.key(chosen.value)[:320]  # type: ignore[arg-type]
    return member.user_name_key if "@" in member.user_name_key else None


def _key(value: str, label: str, model: type, column: str) -> str:
    """The lower-cased lookup key of a unique name; lowering can lengthen it (U+0130 -> 2)."""
    key = value.lower()
    if len(key) > _column_limit(model, column):
        raise invalid_value(f"{label} is longer than {_column_limit(model, column)} characters "
                            "once lower-cased")
    return key


def write_group_fields(group: Group, doc: Mapping[str, Any]) -> None:
    group.display_name = text(doc.get("displayName"), "displayName", required=True)  # type: ignore[assignment]
    group.display_name_key = _key(group.display_name, "displayName", Group, "display_name_key")
    group.external_id = text(doc.get("externalId"), "externalId")


def member_ids(doc: Mapping[str, Any]) -> list[str]:
    """The ids in a Group document's ``members``, in order, without duplicates."""
    members = doc.get("members") or []
    if not isinstance(members, list):
        raise invalid_value("members must be a list")
    ids: dict[str, None] = {}
    for item in members:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise invalid_value("each member needs a string value (the member's id)")
        if UNSTORABLE.search(item["value"]):
            raise invalid_value(f"no User with id {item['value']!r} in this workspace")
        if item.get("type") not in (None, "User", "user"):
            raise invalid_value("only Users can be group members here")
        ids[item["value"]] = None
    return list(ids)


def check_id(doc: Mapping[str, Any], current_id: str | None) -> None:
    """``id`` is assigned by the server: a client may repeat it, never change it."""
    given = doc.get("id")
    if given is not None and given != current_id:
        raise mutability("id is read-only" if current_id else "id is assigned by the server")


# -- attributes / excludedAttributes (RFC 7644 section 3.9) -----------------------------------


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


def touch(row: Member | Group) -> None:
    row.modified_at = utcnow()
