"""The settings page's "Attribute mapping" and "Roles" sections, and their actions.

Attribute mapping: which assertion attribute holds the email, names and groups (empty: the
built-in names). Roles: group names mapped to the roles the host declares (the ``roles``
option); the section says so when the host declares none. Each change is CSRF-checked by
actions.py before it comes here, and audited in the store (store/roles.py).

Every value from outside is escaped here, where it meets markup, as in sections.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING

from ..attribute_map import DEFAULT_HINTS, KEYS
from ..errors import MappingError
from .sections import Notice, SettingsView, hidden_fields

if TYPE_CHECKING:
    from ..idp_metadata.workspaces import Workspaces

ACTIONS = ("set_attributes", "map_role", "unmap_role")
LABELS = {
    "email": "Email",
    "given_name": "Given name",
    "family_name": "Family name",
    "display_name": "Display name",
    "groups": "Groups",
}


def section(view: SettingsView) -> str:
    return _attributes(view) + _roles(view)


def _attributes(view: SettingsView) -> str:
    mapping = view.workspace.attribute_map
    fields = ""
    for key in KEYS:
        defaults = DEFAULT_HINTS[key]
        fields += (
            f'<label for="attr-{key}">{LABELS[key]} attribute</label>'
            f'<input type="text" id="attr-{key}" name="{key}" spellcheck="false" '
            f'autocomplete="off" value="{escape(mapping.get(key, ""))}" '
            f'placeholder="{escape(defaults)}" aria-describedby="attr-{key}-help">'
            f'<small id="attr-{key}-help">Empty: the built-in names ({escape(defaults)}).</small>'
        )
    return (
        '<section id="attributes" aria-labelledby="attributes-h">'
        '<h2 id="attributes-h">Attribute mapping</h2>'
        "<p>Which attribute of your IdP's assertion holds each of these. A set email attribute "
        "is read instead of the NameID; the address read must still be in one of your verified "
        "domains (or a member your SCIM provisioned), as for any sign-in.</p>"
        f'<form method="post" action="{escape(view.action_url)}">'
        f"{hidden_fields(view, 'set_attributes')}{fields}"
        '<button type="submit">Save attribute mapping</button></form></section>'
    )


def _roles(view: SettingsView) -> str:
    declared = view.declared_roles
    rows = ""
    for group, role in view.workspace.role_map.items():
        ignored = "" if role in declared else " <em>(not a role this site declares: ignored)</em>"
        rows += (
            f"<li><strong>{escape(group)}</strong> → {escape(role)}{ignored}"
            f'<form method="post" action="{escape(view.action_url)}" class="inline">'
            f"{hidden_fields(view, 'unmap_role')}"
            f'<input type="hidden" name="group" value="{escape(group)}">'
            f'<button type="submit" class="quiet">Remove<span class="visually-hidden"> '
            f"{escape(group)}</span></button></form></li>"
        )
    listing = f'<ul id="role-mappings">{rows}</ul>' if rows else "<p>No mappings yet.</p>"
    if not declared:
        add = "<p>This site declares no roles, so there is nothing to map groups to.</p>"
    else:
        options = "".join(f'<option value="{escape(r)}">{escape(r)}</option>' for r in declared)
        add = (
            f'<form method="post" action="{escape(view.action_url)}" id="map-role">'
            f"{hidden_fields(view, 'map_role')}"
            '<label for="role-group">Group name</label>'
            '<input type="text" id="role-group" name="group" spellcheck="false" '
            'autocomplete="off" required>'
            f'<label for="role-role">Role</label><select id="role-role" name="role">{options}'
            '</select><button type="submit">Map group</button></form>'
        )
    default = view.default_role
    return (
        '<section id="roles" aria-labelledby="roles-h"><h2 id="roles-h">Roles</h2>'
        "<p>Members get the roles their groups map to: groups your SCIM provisioned and groups "
        "your IdP asserts at sign-in alike, names compared regardless of letter case "
        "(and only of letter case: a look-alike spelling is another group). "
        + (
            f"A member none of whose groups maps to a role gets <strong>{escape(default)}"
            "</strong>. "
            if default
            else ""
        )
        + "A change reaches signed-in members within seconds.</p>"
        f"{listing}{add}</section>"
    )


def act(
    workspaces: Workspaces,
    slug: str,
    action: str,
    form: Mapping[str, str],
    *,
    declared: Sequence[str],
    actor: str,
) -> Notice:
    """Do one of ACTIONS; the notice to show. MappingError for input refused (nothing
    changed), NotFound for a workspace deleted meanwhile."""
    if action == "set_attributes":
        changes = {key: form.get(key, "") for key in KEYS}
        workspaces.set_attribute_map(slug, changes, actor=actor)
        return Notice("ok", "Saved the attribute mapping. It applies from the next sign-in.")
    if action == "map_role":
        group, role = form.get("group", ""), form.get("role", "")
        workspaces.map_role(slug, group, role, declared=tuple(declared), actor=actor)
        return Notice("ok", f"Members of {group.strip()} get the role {role}.")
    _, removed = workspaces.unmap_role(slug, form.get("group", ""), actor=actor)
    if not removed:
        raise MappingError("there is no mapping for that group")
    return Notice("ok", "Removed the mapping.")
