"""Rows -> SCIM JSON: the User and Group documents a response carries.

A *document* is a resource in canonical SCIM form: canonical attribute names, the Enterprise
extension nested under its URN. The way back, a client's document onto rows, is writes.py;
both read the same tables of (SCIM name, column) pairs below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..store.groups import Listed
from ..store.members import MemberRecord
from ..store.models import Group
from .extensions import add_to_document
from .schemas import ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA

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
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "entitlements",
    "roles",
    "x509Certificates",
)
# A Group's ``members`` sub-attributes other than value, in store.groups.SubAttributes' order.
MEMBER_FIELDS = ("display", "type", "$ref")
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

Locator = Callable[[str, str], str]  # (endpoint, id) -> absolute URL


def version_tag(version: int) -> str:
    return f'W/"{version}"'


def lists_version(header: str, version: int) -> bool:
    """Whether an If-Match or If-None-Match header lists ``version``'s tag, weak or strong."""
    listed = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return version_tag(version).removeprefix("W/") in listed


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
    if member.active_assigned:  # an unassigned active reads back absent (writes.py)
        doc["active"] = member.active
    for row in record.values:
        fields = ADDRESS_FIELDS if row.attribute == "addresses" else VALUE_FIELDS
        value = {scim: v for scim, col in fields if (v := getattr(row, col)) is not None}
        if row.primary is not None:  # false as written, absent as written
            value["primary"] = row.primary
        doc.setdefault(row.attribute, []).append(value)
    if record.groups:
        doc["groups"] = [
            {"value": gid, "$ref": locate("Groups", gid), "display": display, "type": "direct"}
            for gid, display in record.groups
        ]
    enterprise = {s: v for s, c in ENTERPRISE_FIELDS if (v := getattr(member, c)) is not None}
    if member.manager_id is not None:
        enterprise["manager"] = {
            "value": member.manager_id,
            "$ref": locate("Users", member.manager_id),
        }
        if member.manager_display_name is not None:
            enterprise["manager"]["displayName"] = member.manager_display_name
    if enterprise:
        doc["schemas"].append(ENTERPRISE_USER_SCHEMA)
        doc[ENTERPRISE_USER_SCHEMA] = enterprise
    add_to_document(doc, member.extensions)  # the attributes that have no column
    doc["meta"] = _meta("User", member, locate("Users", member.id))
    return doc


def group_document(group: Group, locate: Locator, members: list[Listed] | None) -> dict[str, Any]:
    """``members`` is the group's members (store/groups.py), or None when not requested."""
    doc: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": group.id}
    if group.external_id is not None:
        doc["externalId"] = group.external_id
    doc["displayName"] = group.display_name
    if members:
        doc["members"] = [_member_value(member, locate) for member in members]
    doc["meta"] = _meta("Group", group, locate("Groups", group.id))
    return doc


def _member_value(member: Listed, locate: Locator) -> dict[str, Any]:
    """A ``members`` value with the sub-attributes its client sent, and only those.

    They are the client's: ``display`` is what the client calls the member, ``$ref`` and
    ``type`` as it wrote them. Rows kept before sub-attributes were get computed ones."""
    if member.sent is None:
        return {
            "value": member.id,
            "$ref": locate("Users", member.id),
            "display": member.name,
            "type": "User",
        }
    value = {"value": member.id}
    for scim_name, given in zip(MEMBER_FIELDS, member.sent, strict=True):
        if given is not None:
            value[scim_name] = given
    return value
