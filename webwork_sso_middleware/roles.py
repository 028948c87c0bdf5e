"""Groups and roles: how a member's groups combine, and which of the host's roles they give.

A member's groups are the union of two sources, compared by :func:`role_key`: regardless of
letter case, and nothing more (no compatibility folding: a full-width or mathematical-bold
spelling is another group, never a look-alike way into a mapped role):

- the SCIM groups the workspace's IdP provisioned it into (SCIM Group resources), and
- the groups its last SAML sign-in asserted (``members.sign_in_groups``), replaced whole at
  each sign-in. Asserted groups never become SCIM Group resources: SCIM stays the IdP's own
  view of the directory.

The host declares its roles (the ``roles`` option, in the order it wants them); the workspace
owner maps group names to them (``workspaces.role_map``). A member's roles are the declared
roles some group of theirs maps to, in the declared order, or ``[default_role]`` when none
does. A mapping to a role the host no longer declares is ignored.

Pure functions of values, on the session check's path (sessions/manager.py): no I/O.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from . import names
from .errors import InvalidName

# A group name is at most what a SCIM group's displayName may be (groups.display_name).
MAX_GROUP_NAME = 255
# Entra ID sends at most 150 groups in a SAML token (beyond that, a link to Graph instead).
MAX_ASSERTED_GROUPS = 150
MAX_ROLE_NAME = 64
MAX_ROLE_MAPPINGS = 500


def role_key(name: str) -> str:
    """How group names compare for groups and roles: trimmed, NFC, case-folded. Unlike
    names.key, no NFKC: ``ＡＤＭＩＮＳ`` (full-width) or math-bold letters are not ``admins``,
    so a group an IdP lets anyone name cannot pass for a mapped one."""
    return unicodedata.normalize("NFC", name.strip()).casefold()


@dataclasses.dataclass(frozen=True)
class AssertedGroups:
    """The asserted groups as kept, and how many distinct usable ones were not (the cap)."""

    names: tuple[str, ...]
    dropped: int = 0


def clean_asserted_groups(
    values: Iterable[str], mapped: Callable[[], Collection[str]] | None = None
) -> AssertedGroups:
    """The group names an assertion carried, as kept: cleaned (names.clean), names that are
    blank, too long or hold control characters dropped (a cut name could name another group),
    one per role_key, ordered as member.groups is.

    At most MAX_ASSERTED_GROUPS of them, but the cap falls on unmapped groups only: the groups
    whose role_key is in ``mapped()`` (the workspace's role mapping keys, asked only when the
    cap is reached) are all kept, so a mapped group after many others still gives its role.
    Unmapped ones are kept in assertion order while room is left."""
    found: dict[str, str] = {}
    for value in values:
        try:
            cleaned = names.clean(value, "group", limit=MAX_GROUP_NAME)
        except InvalidName:
            continue
        found.setdefault(role_key(cleaned), cleaned)
    dropped = 0
    if len(found) > MAX_ASSERTED_GROUPS:
        wanted = set(mapped()) if mapped is not None else set()
        keep = [key for key in found if key in wanted]
        room = max(MAX_ASSERTED_GROUPS - len(keep), 0)
        keep += [key for key in found if key not in wanted][:room]
        dropped = len(found) - len(keep)
        found = {key: found[key] for key in keep}
    return AssertedGroups(tuple(found[key] for key in sorted(found, key=group_order)), dropped)


def group_order(name: str) -> tuple[str, str]:
    """The order group names are listed in: as the session query orders SCIM groups (by
    names.key), ties broken by role_key."""
    return names.key(name), role_key(name)


def prioritised(groups: Sequence[str], mapped: Collection[str]) -> list[str]:
    """``groups`` with those whose role_key is in ``mapped`` first (each part in its order):
    what to keep first when not all of them fit."""
    first = [g for g in groups if role_key(g) in mapped]
    return first + [g for g in groups if role_key(g) not in mapped]


def member_groups(scim_groups: Sequence[str], asserted: Sequence[str] | None) -> list[str]:
    """SCIM groups and asserted groups, one per role_key (SCIM's spelling first), ordered as
    the session query orders SCIM groups."""
    if not asserted:
        return list(scim_groups)
    by_key: dict[str, str] = {}
    for name in (*scim_groups, *asserted):
        by_key.setdefault(role_key(name), name)
    return [by_key[key] for key in sorted(by_key, key=group_order)]


def member_roles(
    groups: Sequence[str],
    role_map: Mapping[str, str] | None,
    declared: Sequence[str],
    default_role: str | None,
) -> list[str]:
    """The declared roles the member's groups map to, in declared order; else the default."""
    if not declared:
        return []
    mapped: set[str] = set()
    if role_map and groups:
        keys = {role_key(group) for group in groups}
        mapped = {role for group, role in role_map.items() if role_key(group) in keys}
    found = [role for role in declared if role in mapped]
    if not found and default_role is not None:
        return [default_role]
    return found


def check_role_name(role: str) -> str | None:
    """Why ``role`` cannot be a role name, or None."""
    if not isinstance(role, str) or not role.strip():
        return "a role name must not be empty"
    if role != role.strip() or "," in role or not role.isprintable():
        return f"role {role!r} must be printable, without commas or surrounding spaces"
    if len(role) > MAX_ROLE_NAME:
        return f"role {role[:20]!r}... is longer than {MAX_ROLE_NAME} characters"
    return None


def check_roles(roles: Sequence[str]) -> str | None:
    """Why the declared roles are refused (the ``roles`` option), or None."""
    for role in roles:
        if (reason := check_role_name(role)) is not None:
            return reason
    if len(set(roles)) != len(roles):
        return "names a role twice"
    return None


def clean_group_name(group: str) -> str:
    """A group name as a role mapping keeps it; InvalidName when unusable."""
    return names.clean(group, "group", limit=MAX_GROUP_NAME)
