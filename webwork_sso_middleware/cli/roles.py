"""The ``workspace set-attributes``, ``map-role`` and ``unmap-role`` commands: the owner's
attribute mapping and group-to-role mapping, as the settings page's sections change them."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from .. import config
from ..attribute_map import KEYS
from ..errors import ConfigurationError
from .options import EXIT_USAGE, CommandError, GlobalOptions
from .output import report

# --given-name NAME and so on, one per attribute_map key.
ATTRIBUTE_FLAGS = {key: "--" + key.replace("_", "-") for key in KEYS}


def workspace_set_attributes(options: GlobalOptions, args: argparse.Namespace) -> int:
    changes = {key: value for key in KEYS if (value := getattr(args, key)) is not None}
    if not changes:
        raise CommandError(
            f"give at least one of {', '.join(ATTRIBUTE_FLAGS.values())} "
            "(an empty NAME resets it to the built-in names)",
            EXIT_USAGE,
        )
    with options.workspaces() as workspaces:
        info = workspaces.set_attribute_map(args.slug, changes, actor="cli")
    shown = ", ".join(f"{k}={v}" for k, v in info.attribute_map.items()) or "the built-in names"
    return report(options, args, info, f"{info.slug!r} reads identity from: {shown}.")


def workspace_map_role(options: GlobalOptions, args: argparse.Namespace) -> int:
    declared = declared_roles(args.roles)
    with options.workspaces() as workspaces:
        info = workspaces.map_role(args.slug, args.group, args.role, declared=declared, actor="cli")
    message = f"Members of the group {args.group.strip()!r} get the role {args.role!r}."
    if declared is None:
        message += (
            " (The site's roles are not known here: set --roles or WEBWORK_SSO_ROLES to have"
            " the role checked; the site ignores a role it does not declare.)"
        )
    return report(options, args, info, message)


def workspace_unmap_role(options: GlobalOptions, args: argparse.Namespace) -> int:
    with options.workspaces() as workspaces:
        info, removed = workspaces.unmap_role(args.slug, args.group, actor="cli")
    if not removed:
        raise CommandError(f"no role mapping for the group {args.group!r} in {info.slug!r}")
    return report(options, args, info, f"The group {args.group!r} no longer maps to a role.")


def declared_roles(given: str | None) -> tuple[str, ...] | None:
    """The site's roles: --roles, else WEBWORK_SSO_ROLES (as the site reads it); None when
    neither is set (the CLI does not know them)."""
    text = given if given is not None else os.environ.get(config.env_name("roles"), "")
    if given is None and not text.strip():
        return None
    try:
        roles: tuple[str, ...] = config.checked("roles", config.from_text("roles", text))
    except ConfigurationError as error:
        raise CommandError(f"--roles: {error.reason}", EXIT_USAGE) from None
    return roles


def add_commands(action: Callable[..., argparse.ArgumentParser]) -> None:
    set_attributes = action(
        "set-attributes", workspace_set_attributes,
        "choose which SAML attribute holds the email, names and groups (an empty NAME resets"
        " one to the built-in names)",
    )  # fmt: skip
    for key, flag in ATTRIBUTE_FLAGS.items():
        set_attributes.add_argument(
            flag, dest=key, metavar="NAME",
            help=f"the SAML attribute that holds the member's {key.replace('_', ' ')}",
        )  # fmt: skip
    roles_help = (
        "the site's roles, comma-separated (default: WEBWORK_SSO_ROLES); a ROLE outside them"
        " is refused"
    )
    map_role = action(
        "map-role", workspace_map_role, "give the members of a group (SCIM or asserted) a role"
    )
    map_role.add_argument(
        "group", metavar="GROUP", help="a group name, matched regardless of letter case"
    )
    map_role.add_argument("role", metavar="ROLE", help="one of the site's roles")
    map_role.add_argument("--roles", metavar="ROLES", help=roles_help)
    unmap_role = action("unmap-role", workspace_unmap_role, "remove a group's role mapping")
    unmap_role.add_argument("group", metavar="GROUP", help="the group whose mapping to remove")
