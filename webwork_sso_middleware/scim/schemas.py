"""The SCIM schemas we serve (RFC 7643): core User, Enterprise User extension, Group.

One description drives discovery (/Schemas), attribute-name resolution (case-insensitive,
URN-qualified), filters, PATCH paths and ``attributes``/``excludedAttributes`` projection.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SERVICE_PROVIDER_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"

# Characters no stored string may hold: PostgreSQL refuses NUL in text, and UTF-8 (so either
# backend's driver) cannot encode a lone surrogate, which JSON's "\ud800" escape can produce.
# Writes refuse them (writes.py) and filters too (filters.py): no value can match them.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclasses.dataclass(frozen=True)
class Attribute:
    name: str
    type: str = "string"  # string boolean decimal integer dateTime reference complex binary
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"  # readOnly readWrite immutable writeOnly
    returned: str = "default"  # always never default request
    uniqueness: str = "none"
    description: str = ""
    sub_attributes: tuple[Attribute, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()

    def sub_attribute(self, name: str) -> Attribute | None:
        lowered = name.lower()
        return next((sub for sub in self.sub_attributes if sub.name.lower() == lowered), None)

    def to_scim(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description or self.name,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        }
        if self.sub_attributes:
            data["subAttributes"] = [sub.to_scim() for sub in self.sub_attributes]
        if self.canonical_values:
            data["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            data["referenceTypes"] = list(self.reference_types)
        return data


@dataclasses.dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> Attribute | None:
        lowered = name.lower()
        return next((attr for attr in self.attributes if attr.name.lower() == lowered), None)

    def to_scim(self, location: str) -> dict[str, Any]:
        return {
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [attr.to_scim() for attr in self.attributes],
            "meta": {"resourceType": "Schema", "location": location},
        }


def _multi(
    name: str,
    *subs: Attribute,
    description: str = "",
    mutability: str = "readWrite",
    types: tuple[str, ...] = ("work", "home", "other"),
) -> Attribute:
    """A multi-valued complex attribute with the usual value/display/type/primary parts."""
    return Attribute(
        name,
        "complex",
        multi_valued=True,
        mutability=mutability,
        description=description,
        sub_attributes=subs
        or (
            Attribute("value", mutability=mutability),
            Attribute("display", mutability=mutability),
            Attribute("type", mutability=mutability, canonical_values=types),
            Attribute("primary", "boolean", mutability=mutability),
        ),
    )


# Attributes every resource has (RFC 7643 section 3.1).
COMMON_ATTRIBUTES = (
    Attribute("id", case_exact=True, mutability="readOnly", returned="always", uniqueness="server"),
    Attribute("externalId", case_exact=True),
    Attribute(
        "meta",
        "complex",
        mutability="readOnly",
        sub_attributes=(
            Attribute("resourceType", case_exact=True, mutability="readOnly"),
            Attribute("created", "dateTime", mutability="readOnly"),
            Attribute("lastModified", "dateTime", mutability="readOnly"),
            Attribute("location", "reference", case_exact=True, mutability="readOnly"),
            Attribute("version", case_exact=True, mutability="readOnly"),
        ),
    ),
)

USER = Schema(
    USER_SCHEMA,
    "User",
    "User Account",
    (
        Attribute(
            "userName",
            required=True,
            uniqueness="server",
            description="Unique identifier for the User; here, the email address.",
        ),
        Attribute(
            "name",
            "complex",
            sub_attributes=(
                Attribute("formatted"),
                Attribute("familyName"),
                Attribute("givenName"),
                Attribute("middleName"),
                Attribute("honorificPrefix"),
                Attribute("honorificSuffix"),
            ),
        ),
        Attribute("displayName"),
        Attribute("nickName"),
        Attribute("profileUrl", "reference", reference_types=("external",)),
        Attribute("title"),
        Attribute("userType"),
        Attribute("preferredLanguage"),
        Attribute("locale"),
        Attribute("timezone"),
        Attribute("active", "boolean"),
        Attribute(
            "password",
            mutability="writeOnly",
            returned="never",
            description="Accepted and discarded: members sign in through the IdP.",
        ),
        _multi("emails"),
        _multi("phoneNumbers", types=("work", "home", "mobile", "fax", "pager", "other")),
        _multi("ims", types=("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
        _multi("photos", types=("photo", "thumbnail")),
        _multi(
            "addresses",
            Attribute("formatted"),
            Attribute("streetAddress"),
            Attribute("locality"),
            Attribute("region"),
            Attribute("postalCode"),
            Attribute("country"),
            Attribute("type", canonical_values=("work", "home", "other")),
            Attribute("primary", "boolean"),
        ),
        _multi(
            "groups",
            Attribute("value", mutability="readOnly"),
            Attribute("$ref", "reference", mutability="readOnly", reference_types=("Group",)),
            Attribute("display", mutability="readOnly"),
            Attribute("type", mutability="readOnly", canonical_values=("direct", "indirect")),
            mutability="readOnly",
        ),
        _multi("entitlements"),
        _multi("roles"),
        _multi("x509Certificates"),
    ),
)

ENTERPRISE_USER = Schema(
    ENTERPRISE_USER_SCHEMA,
    "EnterpriseUser",
    "Enterprise User",
    (
        Attribute("employeeNumber"),
        Attribute("costCenter"),
        Attribute("organization"),
        Attribute("division"),
        Attribute("department"),
        Attribute(
            "manager",
            "complex",
            sub_attributes=(
                Attribute("value"),
                Attribute("$ref", "reference", reference_types=("User",)),
                Attribute("displayName", mutability="readOnly"),
            ),
        ),
    ),
)

GROUP = Schema(
    GROUP_SCHEMA,
    "Group",
    "Group",
    (
        Attribute("displayName", required=True, uniqueness="server"),
        Attribute(
            "members",
            "complex",
            multi_valued=True,
            sub_attributes=(
                Attribute("value", case_exact=True, mutability="immutable"),
                Attribute("$ref", "reference", mutability="immutable", reference_types=("User",)),
                Attribute("display", mutability="readOnly"),
                Attribute("type", mutability="immutable", canonical_values=("User",)),
            ),
        ),
    ),
)


@dataclasses.dataclass(frozen=True)
class ResourceType:
    name: str
    endpoint: str
    schema: Schema
    extensions: tuple[Schema, ...] = ()

    @property
    def schemas(self) -> tuple[Schema, ...]:
        return (self.schema, *self.extensions)

    def schema_by_urn(self, urn: str) -> Schema | None:
        lowered = urn.lower()
        return next((s for s in self.schemas if s.id.lower() == lowered), None)

    def resolve(self, path: str) -> AttributePath | None:
        """Resolve ``name``, ``name.sub`` or a URN-qualified path, ignoring case."""
        schema = self.schema
        rest = path
        lowered = path.lower()
        for candidate in self.schemas:
            prefix = candidate.id.lower() + ":"
            if lowered.startswith(prefix):
                schema, rest = candidate, path[len(prefix) :]
                break
        head, _, tail = rest.partition(".")
        attribute = schema.attribute(head)
        if attribute is None and schema is self.schema:
            lowered_head = head.lower()
            attribute = next((a for a in COMMON_ATTRIBUTES if a.name.lower() == lowered_head), None)
        if attribute is None:
            return None
        if not tail:
            return AttributePath(schema, attribute, None)
        sub = attribute.sub_attribute(tail)
        if sub is None or "." in tail:
            return None
        return AttributePath(schema, attribute, sub)

    def to_scim(self, location: str) -> dict[str, Any]:
        return {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": self.name,
            "name": self.name,
            "endpoint": "/" + self.endpoint,
            "description": self.schema.description,
            "schema": self.schema.id,
            "schemaExtensions": [{"schema": ext.id, "required": False} for ext in self.extensions],
            "meta": {"resourceType": "ResourceType", "location": location},
        }


@dataclasses.dataclass(frozen=True)
class AttributePath:
    schema: Schema
    attribute: Attribute
    sub_attribute: Attribute | None

    @property
    def target(self) -> Attribute:
        return self.sub_attribute or self.attribute

    @property
    def canonical(self) -> str:
        """``givenName`` style name, dotted for sub-attributes, without the core URN."""
        name = self.attribute.name
        if self.sub_attribute is not None:
            name += "." + self.sub_attribute.name
        return name


USER_RESOURCE = ResourceType("User", "Users", USER, (ENTERPRISE_USER,))
GROUP_RESOURCE = ResourceType("Group", "Groups", GROUP)
RESOURCE_TYPES = (USER_RESOURCE, GROUP_RESOURCE)
SCHEMAS = (USER, ENTERPRISE_USER, GROUP)
