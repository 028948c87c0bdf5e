"""The identity in a verified assertion: its subject (NameID, or an email attribute when the
NameID is opaque), the IdP's session, the name attributes and the groups.

Each of the email, names and groups is read from the built-in attribute names below unless
the workspace's owner mapped it to one attribute of their own (attribute_map.py): a mapped
email attribute is then the address, whatever the NameID says.

acs.py calls these only on the very assertion element whose signature (or whose enclosing
Response's) verified; nothing here checks a signature, a time or an audience.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..logs import package_logger
from ..roles import MAX_ASSERTED_GROUPS, AssertedGroups, clean_asserted_groups
from .posted import (
    EMAIL,
    EMAIL_ATTRIBUTES,
    MAX_EMAIL,
    NAMEID_EMAIL,
    OPAQUE_NAME_IDS,
    SAML,
    email_attribute,
)
from .rejection import Rejection

log = package_logger(__name__)

CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"  # Entra ID, ADFS
GIVEN_NAME = (
    "givenName",
    "firstName",
    "given_name",
    "first_name",
    "urn:oid:2.5.4.42",
    CLAIMS + "givenname",
)
FAMILY_NAME = (
    "sn",
    "surname",
    "lastName",
    "familyName",
    "family_name",
    "last_name",
    "urn:oid:2.5.4.4",
    CLAIMS + "surname",
)
DISPLAY_NAME = (
    "displayName",
    "display_name",
    "name",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.microsoft.com/identity/claims/displayname",
)

# Groups: Okta's group attribute statement (named as its admin chooses; "groups" by
# convention), Entra ID's groups claim (object ids unless it is set to send names), and a
# generic "groups" attribute. Every value of each of these is read.
GROUPS = (
    "groups",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
)
DEFAULTS: dict[str, tuple[str, ...]] = {
    "email": EMAIL_ATTRIBUTES,
    "given_name": GIVEN_NAME,
    "family_name": FAMILY_NAME,
    "display_name": DISPLAY_NAME,
    "groups": GROUPS,
}


def attribute_names(mapping: Mapping[str, str] | None, key: str) -> tuple[str, ...]:
    """The attributes ``key`` is read from: the owner's one, else the built-in names."""
    mapped = (mapping or {}).get(key)
    return (mapped,) if mapped else DEFAULTS[key]


# A NameID is at most 256 characters for persistent ones (SAML core 8.3.7); twice that is room
# for any IdP, while a VerifiedAssertion stays small enough for the pending sign-in cookie.
MAX_NAME_ID = 512
MAX_SESSION_INDEX = 512  # the width of member_sessions.saml_session_index


def read_subject(
    assertion: Any, email_attribute_name: str | None = None
) -> tuple[str, str, str | None]:
    """(email, NameID, its Format) of the verified assertion's subject.

    ``email_attribute_name``: the owner mapped the email to this attribute: its first address
    is the email, whatever the NameID is (the NameID is still kept for single logout).

    A transient or persistent NameID is an opaque identifier (Entra's default is
    persistent): the email is then the first address among its EMAIL_ATTRIBUTES. Any other
    NameID (emailAddress, unspecified, none) must itself be the address, whatever the
    attributes say: an emailAddress NameID that is none is the IdP's mistake, not a hint
    to look elsewhere.
    """
    name_id = assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
    # Children in NameID (a comment injected after signing) would let a parser read a
    # truncated address: refuse rather than guess which part was meant.
    if name_id is None or len(name_id):
        raise Rejection("bad_name_id", "the assertion's NameID is missing or malformed")
    value = (name_id.text or "").strip()
    name_id_format = name_id.get("Format")
    if email_attribute_name:
        if not value or len(value) > MAX_NAME_ID:
            raise Rejection("bad_name_id", "the NameID is empty or too long")
        mapped = email_attribute(assertion, (email_attribute_name,))
        if mapped is None:
            raise Rejection(
                "no_email_attribute",
                f"this workspace reads the email from the attribute {email_attribute_name!r} "
                "(its attribute mapping), and the assertion has no email address there",
            )
        return mapped, value, name_id_format
    if name_id_format in OPAQUE_NAME_IDS:
        if not value or len(value) > MAX_NAME_ID:
            raise Rejection("bad_name_id", f"the {name_id_format} NameID is empty or too long")
        email = email_attribute(assertion)
        if email is None:
            raise Rejection(
                "no_email_attribute",
                f"the NameID is {name_id_format.rpartition(':')[2]} (an identifier, not "
                "an address) and no attribute holds an email address: have the IdP send "
                f"the email in an attribute named {EMAIL_ATTRIBUTES[0]!r} (also read: "
                f"{', '.join(EMAIL_ATTRIBUTES[1:])}), or send the email as the NameID",
            )
        return email, value, name_id_format
    if not EMAIL.match(value) or len(value) > MAX_EMAIL:
        kind = "emailAddress NameID" if name_id_format == NAMEID_EMAIL else "NameID"
        raise Rejection("bad_name_id", f"the {kind} is not an email address")
    return value, value, name_id_format


def bounded(value: str | None, width: int) -> str | None:
    """``value`` when it is at most ``width`` long: an IdP's oversized qualifier is dropped
    rather than failing the sign-in (single logout then sends the NameID without it)."""
    return value if value and len(value) <= width else None


def session_index(assertion: Any) -> str | None:
    """The SessionIndex of the assertion's (first) AuthnStatement: the IdP's session, which
    its LogoutRequest names. Past MAX_SESSION_INDEX it is not kept: logout by NameID alone
    still ends the session."""
    statement = assertion.find(f"{{{SAML}}}AuthnStatement")
    index = statement.get("SessionIndex") if statement is not None else None
    if index is not None and len(index) > MAX_SESSION_INDEX:
        log.info("SessionIndex of %d characters not kept", len(index))
        return None
    return index or None


def attribute_values(assertion: Any) -> dict[str, list[str]]:
    """Attribute values by Name and by FriendlyName, from this assertion's statements only."""
    found: dict[str, list[str]] = {}
    for attribute in assertion.iterfind(f"{{{SAML}}}AttributeStatement/{{{SAML}}}Attribute"):
        values = [
            (value.text or "").strip()
            for value in attribute.iterfind(f"{{{SAML}}}AttributeValue")
            if not len(value)
        ]
        for key in {attribute.get("Name"), attribute.get("FriendlyName")} - {None}:
            found.setdefault(key, []).extend(values)
    return found


def first_value(attributes: Mapping[str, list[str]], names: tuple[str, ...]) -> str | None:
    """The first value of the first of ``names`` that has a non-blank one (values come
    stripped from ``attribute_values``), cut to 255 characters."""
    lowered = {k.lower(): v for k, v in attributes.items()}
    for name in names:
        values = lowered.get(name.lower())
        if values and values[0]:
            return values[0][:255]
    return None  # pragma: no mutate (the last statement: deleting it returns None all the same)


def all_values(attributes: Mapping[str, list[str]], names: tuple[str, ...]) -> list[str]:
    """Every value of each of ``names`` (in any case), in order: a multi-valued attribute."""
    lowered: dict[str, list[str]] = {}
    for key, values in attributes.items():
        lowered.setdefault(key.lower(), []).extend(values)
    found: list[str] = []
    for name in dict.fromkeys(name.lower() for name in names):
        found.extend(lowered.get(name, ()))
    return found


def read_groups(
    attributes: Mapping[str, list[str]],
    names: tuple[str, ...],
    mapped: Callable[[], Collection[str]] | None = None,
) -> AssertedGroups:
    """The group names the assertion carries, cleaned and capped, the mapped ones kept first
    (roles.py)."""
    groups = clean_asserted_groups(all_values(attributes, names), mapped)
    if groups.dropped:
        log.info(
            "an assertion carried more than %d groups: %d kept (the mapped ones first), %d dropped",
            MAX_ASSERTED_GROUPS,
            len(groups.names),
            groups.dropped,
        )
    return groups
