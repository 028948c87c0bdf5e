"""The SCIM schemas we serve (RFC 7643): core User, Enterprise User extension, Group.

One description drives discovery (/Schemas), attribute-name resolution (case-insensitive,
URN-qualified), filters, PATCH paths and ``attributes``/``excludedAttributes`` projection.
"""

from __future__ import annotations

import dataclasses
import functools
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

# Extension schemas we keep without knowing them (a User resource's ``open_extensions``): an
# IdP's custom namespace, stored as sent (scim/extensions.py). Entra's are
# ``urn:ietf:params:scim:schemas:extension:<Name>:2.0:User``; Okta's "External namespace" is any
# URN the admin types (``urn:ietf:params:scim:schemas:custom:Space`` in Okta's own example).
# So: any RFC 8141-shaped URN, short enough to index, outside the namespaces SCIM reserves for
# its core schemas and its messages.
# re.ASCII: with re.I alone, [a-z] also matches the non-ASCII letters that fold to ASCII ones
# (K KELVIN SIGN, ſ, İ, ı), which then lower-case into another name's key.
EXTENSION_URN = re.compile(
    r"urn:[a-z0-9][a-z0-9-]{0,31}:[a-z0-9()+,\-.:=@;$_!*'%/?#]+", re.I | re.ASCII
)
MAX_URN_LENGTH = 256
RESERVED_URN_PREFIXES = ("urn:ietf:params:scim:schemas:core:", "urn:ietf:params:scim:api:")
# RFC 7643 section 2.1 ATTRNAME (``$ref`` aside): the last part of a URN-qualified path.
ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,127}", re.I | re.ASCII)


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
        return self._subs_by_name.get(name.lower())

    @functools.cached_property
    def _subs_by_name(self) -> dict[str, Attribute]:
        # Names are looked up on every attribute of every request body: a dict, not a scan.
        return _by_lowered_name(self.sub_attributes)

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
        return self._by_name.get(name.lower())

    @functools.cached_property
    def _by_name(self) -> dict[str, Attribute]:
        return _by_lowered_name(self.attributes)

    def to_scim(self, location: str) -> dict[str, Any]:
        return {
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [attr.to_scim() for attr in self.attributes],
            "meta": {"resourceType": "Schema", "location": location},
        }


def _by_lowered_name(attributes: tuple[Attribute, ...]) -> dict[str, Attribute]:
    """Attributes by lower-cased name; the first of a name wins, as a scan in order would."""
    index: dict[str, Attribute] = {}
    for attribute in attributes:
        index.setdefault(attribute.name.lower(), attribute)
    return index


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
                # The client's name for the member, kept as sent (scim/resources.py); a
                # later add of the same member may rename it (its value, $ref, type stay).
                Attribute("display"),
                Attribute("type", mutability="immutable", canonical_values=("User",)),
            ),
        ),
    ),
)


def is_extension_urn(urn: str) -> bool:
    """Whether ``urn`` may name an extension we keep as sent (see EXTENSION_URN)."""
    return len(urn) <= MAX_URN_LENGTH and _extension_shaped(urn)


def _extension_shaped(urn: str) -> bool:
    """An extension URN but maybe too long: one is refused, never read as something else."""
    return (
        EXTENSION_URN.fullmatch(urn) is not None
        and not urn.lower().startswith(RESERVED_URN_PREFIXES)
        and not urn.endswith(":")
    )


def open_schema(urn: str) -> Schema:
    """An extension schema we keep without knowing its attributes."""
    return Schema(urn, "", "", ())


def open_attribute(name: str) -> Attribute:
    """An attribute of an extension we do not describe: any JSON value, kept as sent."""
    return Attribute(name, "any")


_UNKNOWN = object()


class _Answers(dict[Any, Any]):
    """What a resource type answered for the names clients send, so that the same name is not
    worked out again on every request. Names repeat (an IdP sends the same attributes each
    time), but a client chooses them: only names of at most MAX_KEY characters are kept, and
    at most about MAX_ENTRIES (threads racing past the check may each add one more). When full,
    the memory starts afresh: a client sending endless invented names costs every request a
    worked-out answer now and then, not the memory for good. The answers are immutable: a race
    only works one out twice."""

    MAX_ENTRIES = 1024
    MAX_KEY = 256

    def keep(self, key: Any, answer: Any) -> Any:
        name = key[0] if isinstance(key, tuple) else key
        if len(name) <= self.MAX_KEY:
            if len(self) >= self.MAX_ENTRIES:
                self.clear()
            self[key] = answer
        return answer


@dataclasses.dataclass(frozen=True)
class ResourceType:
    name: str
    endpoint: str
    schema: Schema
    extensions: tuple[Schema, ...] = ()
    # Attributes of undescribed extensions, and undescribed attributes of the described ones,
    # are kept as sent (scim/extensions.py) rather than ignored.
    open_extensions: bool = False

    @property
    def schemas(self) -> tuple[Schema, ...]:
        return (self.schema, *self.extensions)

    def schema_by_urn(self, urn: str) -> Schema | None:
        return self._schemas_by_urn.get(urn.lower())

    @functools.cached_property
    def _schemas_by_urn(self) -> dict[str, Schema]:
        index: dict[str, Schema] = {}
        for schema in self.schemas:
            index.setdefault(schema.id.lower(), schema)
        return index

    def extension_by_urn(self, urn: str, *, object_given: bool = False) -> Schema | None:
        """A described extension, or (open resources) an undescribed one: see
        :meth:`_extension_by_urn`. Remembered (:class:`_Answers`): each key of each body
        comes here."""
        key = (urn, object_given)
        found = self._extensions_found.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            found = self._extensions_found.keep(key, self._extension_by_urn(urn, object_given))
        return found

    def _extension_by_urn(self, urn: str, object_given: bool) -> Schema | None:
        """A described extension, or (open resources) an undescribed one.

        An undescribed URN names an extension when it ends in the resource's name (Entra's
        ``...:2.0:User``), or when its value is an object (``object_given``: Okta's "External
        namespace" can be any URN); otherwise it is an attribute's path (see resolve).

        The URN may be longer than MAX_URN_LENGTH: the caller refuses it (were it None here,
        ``<long URN>:User`` would read as attribute ``User`` of a shorter extension)."""
        schema = self.schema_by_urn(urn)
        if schema is not None:
            return schema if schema is not self.schema else None
        lowered, name = urn.lower(), self.name.lower()
        # An object under "<...>:User:x" is attribute x's value (Entra's complex customs),
        # not an extension of its own.
        object_given = object_given and f":{name}:" not in lowered
        if (
            self.open_extensions
            and (object_given or lowered.endswith(":" + name))
            and _extension_shaped(urn)
        ):
            return open_schema(urn)
        return None

    def resolve(self, path: str) -> AttributePath | None:
        """Resolve ``name``, ``name.sub`` or a URN-qualified path, ignoring case. Remembered
        (:class:`_Answers`): each key of each body, and each PATCH path, comes here."""
        found = self._paths_found.get(path, _UNKNOWN)
        if found is _UNKNOWN:
            found = self._paths_found.keep(path, self._resolve(path))
        return found

    @functools.cached_property
    def _paths_found(self) -> _Answers:
        return _Answers()

    @functools.cached_property
    def _extensions_found(self) -> _Answers:
        return _Answers()

    def _resolve(self, path: str) -> AttributePath | None:
        schema = self.schema
        rest = path
        lowered = path.lower()
        for candidate in self.schemas:
            prefix = candidate.id.lower() + ":"
            if lowered.startswith(prefix):
                schema, rest = candidate, path[len(prefix) :]
                break
        else:
            if self.open_extensions and lowered.startswith("urn:"):
                return self._resolve_open(path)
        head, _, tail = rest.partition(".")
        attribute = schema.attribute(head)
        if attribute is None and schema is not self.schema and self.open_extensions:
            # An attribute a described extension does not list (Okta's custom names under the
            # enterprise URN): kept as sent, like an undescribed extension's.
            return AttributePath(schema, open_attribute(rest), None) if _plain(rest) else None
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

    def _resolve_open(self, path: str) -> AttributePath | None:
        """``<extension URN>:<attribute>``: the attribute name is what follows the last colon.
        Its values are taken whole: a dotted sub-attribute is not a path here (invalidPath)."""
        urn, _, name = path.rpartition(":")
        if not (_plain(name) and is_extension_urn(urn)):
            return None
        return AttributePath(open_schema(urn), open_attribute(name), None)

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
        if self.attribute.type == "any":
            # An undescribed attribute is no column's: qualified, so it never reads as one (a
            # custom "userName" is not the core userName to filters, sorting or lookups).
            return f"{self.schema.id}:{name}"
        if self.sub_attribute is not None:
            name += "." + self.sub_attribute.name
        return name


def _plain(name: str) -> bool:
    return ATTRIBUTE_NAME.fullmatch(name) is not None


USER_RESOURCE = ResourceType("User", "Users", USER, (ENTERPRISE_USER,), open_extensions=True)
GROUP_RESOURCE = ResourceType("Group", "Groups", GROUP)
RESOURCE_TYPES = (USER_RESOURCE, GROUP_RESOURCE)
SCHEMAS = (USER, ENTERPRISE_USER, GROUP)
