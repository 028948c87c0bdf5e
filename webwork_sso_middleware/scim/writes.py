"""SCIM JSON -> rows: a client's document in canonical form, validated, onto Member and Group.

PUT, POST and PATCH all end in :func:`write_user` or :func:`write_group_fields`, so every
write path validates the same way.

What a client writes is what it reads back (tests/scim/test_round_trip.py checks it from the
published schemas): ``primary: false`` stays false and an absent one absent; a Group's
``members`` keep exactly the sub-attributes sent (:func:`group_members`).

``active``: PATCH ``remove`` unassigns it, and GET then shows no ``active``. **An unassigned
``active`` counts as active for sign-in**: RFC 7643 leaves it open, Okta and Entra provision
without it meaning active. So removing it from a deactivated member reactivates it, as
``active: true`` would (sessions the deactivation ended stay ended); an IdP that means to
deactivate says ``active: false``. A POST or PUT that leaves ``active`` out does not assert it
(RFC 7644 3.5.1 lets the server keep or default it): POST makes the member active, PUT keeps
it as it was. That matters: OneLogin's template PUTs every profile change without ``active``,
and must never reactivate a member it suspended.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from .. import names
from ..errors import InvalidName
from ..store.groups import SubAttributes
from ..store.members import NewMember, NewValue
from ..store.models import Group, Member, MemberValue, utcnow
from .comparisons import as_boolean
from .errors import invalid_syntax, invalid_value, mutability
from .extensions import (
    Budget,
    canonical,
    check_attribute_name,
    check_urn_length,
    stored_extensions,
)
from .paths import NameIndex
from .resources import (
    ADDRESS_FIELDS,
    ENTERPRISE_FIELDS,
    MULTI_VALUED,
    NAME_FIELDS,
    USER_FIELDS,
    VALUE_FIELDS,
)
from .schemas import ENTERPRISE_USER_SCHEMA, UNSTORABLE, Attribute, ResourceType

MAX_VALUES_PER_ATTRIBUTE = 100


# -- canonical form of client input -----------------------------------------------------------


def canonicalize(body: Any, resource: ResourceType) -> dict[str, Any]:
    """Client JSON -> document with canonical names; unknown attributes and schemas dropped.

    Attribute names are case-insensitive (RFC 7643 section 2.1). Extensions we do not
    describe (an IdP's custom schema) and undescribed attributes of the Enterprise extension
    are kept as sent (extensions.py); other unknown attributes are ignored, for interop.
    """
    if not isinstance(body, dict):
        raise invalid_syntax("the request body must be a JSON object")
    doc: dict[str, Any] = {}
    budget = Budget()  # what extensions are given is counted before any per-name work
    extensions: dict[str, NameIndex] = {}  # lower-cased URN -> its object's names

    def extension_object(urn: str) -> NameIndex:
        """One object per extension, whatever the case of its URN in each key."""
        names = extensions.get(urn.lower())
        if names is None:
            names = extensions[urn.lower()] = NameIndex(doc.setdefault(urn, {}))
        return names

    for key, value in body.items():
        if not isinstance(key, str):
            continue
        extension = resource.extension_by_urn(key, object_given=isinstance(value, dict))
        if extension is not None:
            check_urn_length(extension.id)
            if value is not None and not isinstance(value, dict):
                raise invalid_value(f"{extension.id} must be an object")
            budget.spend(value)
            target = extension_object(extension.id)
            for k, sub in (value or {}).items():
                if not isinstance(k, str):
                    continue
                if (attr := extension.attribute(k)) is not None:
                    target.put(attr.name, _canonical_value(attr, sub))
                elif resource.open_extensions:
                    check_attribute_name(k, extension.id)  # before names merge by case
                    target.put(k, sub)  # kept as sent; extensions.py checks the value
            continue
        if key.lower() == "schemas":
            continue
        path = resource.resolve(key)
        if path is None or path.sub_attribute is not None:
            continue
        if path.schema is resource.schema:
            doc[path.attribute.name] = _canonical_value(path.attribute, value)
        else:  # a URN-qualified extension attribute given at the top level
            budget.spend(value)
            extension_object(path.schema.id).put(
                path.attribute.name, _canonical_value(path.attribute, value)
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
        raise invalid_value(
            f"{label} holds a character no value can hold (NUL or an unpaired surrogate)"
        )
    if required and not result.strip():
        raise invalid_value(f"{label} must not be blank")
    return result


def boolean(value: Any, label: str) -> bool:
    """A boolean; Entra sends ``"True"``/``"False"`` strings."""
    flag = as_boolean(value)
    if flag is None:
        raise invalid_value(f"{label} must be a boolean")
    return flag


@functools.cache
def _column_limit(model: type, column: str) -> int:
    length = getattr(model.__table__.c[column].type, "length", None)  # type: ignore[attr-defined]
    return int(length) if length else 65536


# -- documents onto rows ----------------------------------------------------------------------


def write_user(
    member: Member | NewMember, doc: Mapping[str, Any], *, unassign_omitted_active: bool = False
) -> None:
    """Set every client-writable column of ``member`` from a full document (PUT semantics).

    An ``active`` the document leaves out stays as it is (POST: active), unless
    ``unassign_omitted_active`` (PATCH, whose document lacks it only when removed)."""
    if not isinstance(doc.get("userName"), str):
        raise invalid_value("userName is required and must be a string")
    _write_texts(member, doc, _USER_TEXTS, "")
    # One normalisation for every way a member is named (names.py): a trailing space,
    # NFD or full-width spelling is the same member, and invisible characters are refused.
    try:
        member.user_name = names.clean(
            member.user_name, "userName", limit=_column_limit(Member, "user_name")
        )
    except InvalidName as invalid:
        raise invalid_value(f"userName {invalid.reason}") from None
    member.user_name_key = names.key(member.user_name)
    if len(member.user_name_key) > _column_limit(Member, "user_name_key"):
        raise invalid_value(
            f"userName is longer than {_column_limit(Member, 'user_name_key')} "
            "characters once normalised"
        )
    name = doc.get("name") or {}
    if not isinstance(name, dict):
        raise invalid_value("name must be an object")
    _write_texts(member, name, _NAME_TEXTS, "name.")
    # An unassigned ``active`` reads back absent and counts as active (the module docstring).
    if doc.get("active") is not None:
        member.active, member.active_assigned = boolean(doc["active"], "active"), True
    elif unassign_omitted_active:
        member.active, member.active_assigned = True, False
    enterprise = doc.get(ENTERPRISE_USER_SCHEMA) or {}
    _write_texts(member, enterprise, _ENTERPRISE_TEXTS, "")
    manager = enterprise.get("manager")
    if manager is not None and not isinstance(manager, (dict, str)):
        raise invalid_value("manager must be an object")
    if isinstance(manager, str):  # some IdPs send the manager id alone
        manager = {"value": manager}
    manager = manager or {}
    member.manager_id = text(manager.get("value"), "manager.value")
    member.manager_display_name = text(manager.get("displayName"), "manager.displayName", limit=512)
    extensions = stored_extensions(doc)
    # An equal value is no change (no new version); equal as JSON: true is not 1 (Python's ==).
    if (extensions or member.extensions) and canonical(extensions) != canonical(
        member.extensions or {}
    ):
        member.extensions = extensions or None
    _write_values(member, doc)
    member.email_key = _primary_email(member)


# (SCIM name, column, the column's length, required), in the order they are checked.
Texts = tuple[tuple[str, str, int, bool], ...]


def _texts(
    model: type, fields: Sequence[tuple[str, str]], *, value_limit: int = 0, required: str = ""
) -> Texts:
    return tuple(
        (
            scim_name,
            column,
            value_limit if column == "value" else _column_limit(model, column),
            scim_name == required,
        )
        for scim_name, column in fields
    )


def _write_texts(row: Any, source: Mapping[str, Any], fields: Texts, label: str) -> None:
    """Each text attribute of ``fields`` from ``source`` onto its column (None when absent)."""
    for scim_name, column, limit, required in fields:
        value = source.get(scim_name)
        if value is not None or required:  # (an optional None is unassigned: nothing to check)
            value = text(value, label + scim_name, limit=limit, required=required)
        setattr(row, column, value)


def _write_values(member: Member | NewMember, doc: Mapping[str, Any]) -> None:
    # A stored member's values are ORM rows; a new member's are plain (store/members.py).
    new_row = NewValue if isinstance(member, NewMember) else MemberValue
    rows: list[Any] = []
    for attribute in MULTI_VALUED:
        values = doc.get(attribute) or []
        if not isinstance(values, list):
            values = [values]
        if len(values) > MAX_VALUES_PER_ATTRIBUTE:
            raise invalid_value(f"{attribute} has more than {MAX_VALUES_PER_ATTRIBUTE} values")
        fields = _ADDRESS_TEXTS if attribute == "addresses" else _VALUE_TEXTS
        seen_primary = False
        position = 0
        for value in values:
            if not isinstance(value, dict):
                raise invalid_value(f"{attribute} values must be objects")
            row: Any = new_row(attribute=attribute, position=position)
            _write_texts(row, value, fields, attribute + ".")
            primary = value.get("primary")
            # None is "not given" and reads back absent; false reads back false.
            row.primary = None if primary is None else boolean(primary, f"{attribute}.primary")
            if not row.primary and all(getattr(row, field[1]) is None for field in fields):
                # Nothing assigned (RFC 7643 2.5: "" is unassigned): template-driven IdPs
                # (OneLogin) render an empty profile as {"locality": "", ...}; no value, no row.
                continue
            position += 1
            if row.primary:  # RFC 7643: true at most once; the first one the client marked
                row.primary = not seen_primary
                seen_primary = True
            row.value_key = row.value.lower()[:1024] if row.value is not None else None
            rows.append(row)
    if not member.values:  # (a new member's: any row is a change)
        if rows:
            member.values = rows
    elif _value_signature(member.values) != _value_signature(rows):
        member.values = rows


def _value_signature(rows: Sequence[MemberValue | NewValue]) -> list[tuple[Any, ...]]:
    columns = (
        "attribute",
        "position",
        "value",
        "display",
        "type",
        "primary",
        "formatted",
        "street_address",
        "locality",
        "region",
        "postal_code",
        "country",
    )
    return sorted(tuple(getattr(row, c) for c in columns) for row in rows)


def _primary_email(member: Member | NewMember) -> str | None:
    emails = [row for row in member.values if row.attribute == "emails" and row.value]
    chosen = (
        next((row for row in emails if row.primary), None)
        or next((row for row in emails if (row.type or "").lower() == "work"), None)
        or (emails[0] if emails else None)
    )
    if chosen is not None:
        return names.key(chosen.value)[:320]  # type: ignore[arg-type]
    return member.user_name_key if "@" in member.user_name_key else None


def _key(value: str, label: str, model: type, column: str) -> str:
    """The lower-cased lookup key of a unique name; lowering can lengthen it (U+0130 -> 2)."""
    key = value.lower()
    if len(key) > _column_limit(model, column):
        raise invalid_value(
            f"{label} is longer than {_column_limit(model, column)} characters once lower-cased"
        )
    return key


def write_group_fields(group: Group, doc: Mapping[str, Any]) -> None:
    group.display_name = text(doc.get("displayName"), "displayName", required=True)  # type: ignore[assignment]
    group.display_name_key = _key(group.display_name, "displayName", Group, "display_name_key")
    group.external_id = text(doc.get("externalId"), "externalId")


def group_members(doc: Mapping[str, Any]) -> dict[str, SubAttributes]:
    """A Group document's ``members``: id -> the sub-attributes sent, in order, once each
    (a repeated id keeps its first sub-attributes)."""
    members = doc.get("members") or []
    if not isinstance(members, list):
        raise invalid_value("members must be a list")
    given: dict[str, SubAttributes] = {}
    for item in members:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise invalid_value("each member needs a string value (the member's id)")
        if UNSTORABLE.search(item["value"]):
            raise invalid_value(f"no User with id {item['value']!r} in this workspace")
        if item.get("type") not in (None, "User", "user"):
            raise invalid_value("only Users can be group members here")
        if item["value"] not in given:
            given[item["value"]] = SubAttributes(
                text(item.get("display"), "members.display", limit=512),
                item.get("type"),
                text(item.get("$ref"), "members.$ref", limit=1024),
            )
    return given


def check_id(doc: Mapping[str, Any], current_id: str | None) -> None:
    """``id`` is assigned by the server: a client may repeat it, never change it."""
    given = doc.get("id")
    if given is not None and given != current_id:
        raise mutability("id is read-only" if current_id else "id is assigned by the server")


def touch(row: Member | Group) -> None:
    row.modified_at = utcnow()


# The text attributes write_user sets, with their columns' lengths, worked out once (a value's
# ``value`` may be longer than its column's index key: 65536).
_USER_TEXTS = _texts(Member, USER_FIELDS, required="userName")
_NAME_TEXTS = _texts(Member, NAME_FIELDS)
_ENTERPRISE_TEXTS = _texts(Member, ENTERPRISE_FIELDS)
_VALUE_TEXTS = _texts(MemberValue, VALUE_FIELDS, value_limit=65536)
_ADDRESS_TEXTS = _texts(MemberValue, ADDRESS_FIELDS, value_limit=65536)
