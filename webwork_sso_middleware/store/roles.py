"""A workspace's attribute mapping and group-to-role mapping (``workspaces.attribute_map``,
``workspaces.role_map``): the writes behind the CLI and the settings page, each audited.

A mapping change is a role change for every member of the workspace: this process's cached
session checks of its members with live sessions are dropped at commit, other workers' within
their recheck (sessions/manager.py reads both on the session check's one row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from sqlalchemy import Table, select

from .. import attribute_map as attribute_rules
from .. import roles as role_rules
from ..errors import InvalidName, MappingError
from . import audit
from .db import UnitOfWork, note_sessions_ended
from .models import Member, MemberSession, Workspace

_SESSIONS = cast(Table, MemberSession.__table__)


def role_mappings(workspace: Workspace) -> dict[str, str]:
    """The workspace's group -> role mapping, ordered by group key."""
    stored = workspace.role_map if isinstance(workspace.role_map, dict) else {}
    pairs = {g: r for g, r in stored.items() if isinstance(g, str) and isinstance(r, str)}
    return {group: pairs[group] for group in sorted(pairs, key=role_rules.group_order)}


def mapped_group_keys(unit: UnitOfWork, workspace_id: int) -> frozenset[str]:
    """The role_keys (roles.py) of the groups the workspace maps to a role: the groups a
    sign-in keeps first when it cannot keep them all. Read only then (the mapping is up to
    MAX_ROLE_MAPPINGS names, no part of a sign-in's usual reads)."""
    stored = unit.connection.execute(
        select(Workspace.role_map).where(Workspace.id == workspace_id)
    ).scalar_one_or_none()
    if not isinstance(stored, dict):
        return frozenset()
    return frozenset(role_rules.role_key(g) for g in stored if isinstance(g, str))


def attribute_mapping(workspace: Workspace) -> dict[str, str]:
    return attribute_rules.from_stored(workspace.attribute_map)


def set_attribute_map(
    unit: UnitOfWork, workspace: Workspace, changes: Mapping[str, str], *, actor: str
) -> dict[str, str]:
    """Apply ``changes`` ({key: attribute name}, "" resets a key); the new mapping."""
    current = attribute_mapping(workspace)
    try:
        wanted = attribute_rules.updated(current, changes)
    except InvalidName as invalid:
        raise MappingError(f"{invalid.label} {invalid.reason}") from None
    if wanted != current:
        workspace.attribute_map = wanted or None
        audit.record(
            unit,
            workspace_id=workspace.id,
            actor=actor,
            action="attribute_map_changed",
            target_type="workspace",
            target_id=None,
            changes={"attribute_map": wanted},
        )
    return wanted


def map_role(
    unit: UnitOfWork,
    workspace: Workspace,
    group: str,
    role: str,
    *,
    declared: Sequence[str] | None,
    actor: str,
) -> dict[str, str]:
    """Map ``group`` (matched regardless of letter case: roles.role_key) to ``role``,
    replacing its mapping.

    ``declared``: the host's roles; a role outside them is refused. None: not known here (a
    CLI without the roles option): any well-formed role name is kept, and the host ignores
    one it does not declare."""
    try:
        cleaned = role_rules.clean_group_name(group)
    except InvalidName as invalid:
        raise MappingError(f"the group name {invalid.reason}") from None
    if (reason := role_rules.check_role_name(role)) is not None:
        raise MappingError(reason)
    if declared is not None and role not in declared:
        raise MappingError(
            f"{role!r} is not a role this site declares "
            f"({', '.join(declared) or 'none: the roles option is empty'})"
        )
    mappings = role_mappings(workspace)
    key = role_rules.role_key(cleaned)
    kept = {g: r for g, r in mappings.items() if role_rules.role_key(g) != key}
    if len(kept) >= role_rules.MAX_ROLE_MAPPINGS:
        raise MappingError(f"a workspace maps at most {role_rules.MAX_ROLE_MAPPINGS} groups")
    kept[cleaned] = role
    if kept != mappings:
        _store(unit, workspace, kept, actor, {"group": cleaned, "role": role}, "role_mapped")
    return role_mappings(workspace)


def unmap_role(unit: UnitOfWork, workspace: Workspace, group: str, *, actor: str) -> bool:
    """Remove the mapping of ``group`` (in any letter case); whether one was."""
    mappings = role_mappings(workspace)
    key = role_rules.role_key(group)
    kept = {g: r for g, r in mappings.items() if role_rules.role_key(g) != key}
    if kept == mappings:
        return False
    removed = next(g for g in mappings if role_rules.role_key(g) == key)
    _store(unit, workspace, kept, actor, {"group": removed}, "role_unmapped")
    return True


def _store(
    unit: UnitOfWork,
    workspace: Workspace,
    mappings: dict[str, str],
    actor: str,
    changes: dict[str, str],
    action: str,
) -> None:
    workspace.role_map = dict(mappings) or None
    audit.record(
        unit,
        workspace_id=workspace.id,
        actor=actor,
        action=action,
        target_type="workspace",
        target_id=None,
        changes=changes,
    )
    _drop_cached_checks(unit, workspace.id)


def _drop_cached_checks(unit: UnitOfWork, workspace_id: int) -> None:
    """This process's cached checks of the workspace's members with live sessions go at
    commit: their roles are read again on their next request."""
    live = unit.connection.execute(
        select(_SESSIONS.c.member_id)
        .where(
            _SESSIONS.c.member_id.in_(select(Member.id).where(Member.workspace_id == workspace_id)),
            _SESSIONS.c.workspace_id == workspace_id,
            _SESSIONS.c.ended_at.is_(None),
        )
        .distinct()
    ).scalars()
    note_sessions_ended(unit.connection, list(live))
