"""The owner's attribute mapping: which assertion attribute holds each piece of identity.

Stored per workspace (``workspaces.attribute_map``) as {key: attribute name}; a key that is
absent reads the built-in names (saml/subject.py). Reading another attribute never widens who
may sign in: the address read goes through the same verified-domain rules
(members/lifecycle.py) as any other.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import names
from .errors import InvalidName

KEYS = ("email", "given_name", "family_name", "display_name", "groups")
# What each key reads when not mapped, in words for the settings page (saml/subject.py has the
# full lists).
DEFAULT_HINTS = {
    "email": "the NameID, or email, mail, the emailaddress claim…",
    "given_name": "givenName, firstName, the givenname claim…",
    "family_name": "sn, surname, lastName, the surname claim…",
    "display_name": "displayName, name, the displayname claim…",
    "groups": "groups, Entra ID's groups claim",
}
# A SAML attribute Name is a string (often a URI): room for the longest claim URIs.
MAX_ATTRIBUTE_NAME = 255


def clean_attribute_name(key: str, name: str) -> str | None:
    """The attribute name kept for ``key``; None for "" (back to the default); InvalidName
    when ``key`` is unknown or the name unusable."""
    if key not in KEYS:
        raise InvalidName(key, f"is not one of {', '.join(KEYS)}")
    if not name.strip():
        return None
    return names.clean(name, f"the {key} attribute", limit=MAX_ATTRIBUTE_NAME)


def updated(current: Mapping[str, str] | None, changes: Mapping[str, str]) -> dict[str, str]:
    """``current`` with ``changes`` applied (an empty name resets its key); InvalidName."""
    result = {k: v for k, v in (current or {}).items() if k in KEYS and isinstance(v, str)}
    for key, name in changes.items():
        cleaned = clean_attribute_name(key, name)
        if cleaned is None:
            result.pop(key, None)
        else:
            result[key] = cleaned
    return {key: result[key] for key in KEYS if key in result}


def from_stored(value: object) -> dict[str, str]:
    """A stored map as a dict of known keys (anything else in it is ignored)."""
    if not isinstance(value, Mapping):
        return {}
    return {k: v for k, v in value.items() if k in KEYS and isinstance(v, str) and v}
