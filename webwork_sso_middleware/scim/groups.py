"""The /Groups endpoints. Memberships change by SQL diff, so a big group is never rewritten."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..store import audit, scim_queries
from ..store import events as event_store
from ..store import groups as group_store
from ..store import members as member_store
from ..store.groups import SubAttributes
from ..store.models import Group
from .context import Reply, ScimContext
from .discovery import list_response
from .errors import invalid_value
from .filter_query import filter_condition
from .parameters import ListParameters, check_if_match, read_json
from .patch import apply_patch
from .projection import project
from .resources import group_document, version_tag
from .schemas import GROUP_RESOURCE
from .writes import canonicalize, check_id, group_members, touch, write_group_fields


def list_groups(context: ScimContext) -> Reply:
    return _list(context, ListParameters.from_query(context.request.args, context.max_results))


def search_groups(context: ScimContext) -> Reply:
    body = read_json(context.request, context.max_body_bytes)
    return _list(context, ListParameters.from_search(body, context.max_results))


def _list(context: ScimContext, params: ListParameters) -> Reply:
    total, rows = scim_queries.group_page(
        context.unit,
        context.workspace_id,
        where=filter_condition(params.parsed_filter(), GROUP_RESOURCE),
        sort_by=params.sort_key(GROUP_RESOURCE),
        descending=params.descending,
        offset=params.start_index - 1,
        limit=params.count,
    )
    # Entra asks with excludedAttributes=members: then the memberships are not even read.
    members = (
        group_store.members_of(context.unit, [g.id for g in rows])
        if params.wants(GROUP_RESOURCE, "members")
        else {}
    )
    resources = [
        project(
            group_document(g, context.locate, members.get(g.id)),
            GROUP_RESOURCE,
            params.attributes,
            params.excluded_attributes,
        )
        for g in rows
    ]
    return 200, list_response(resources, total=total, start_index=params.start_index), {}


def get_group(context: ScimContext, resource_id: str) -> Reply:
    group = group_store.get(context.unit, context.workspace_id, resource_id)
    params = ListParameters.from_query(context.request.args, context.max_results)
    return 200, _document(context, group, params), {"ETag": version_tag(group.version)}


def create_group(context: ScimContext) -> Reply:
    doc = canonicalize(read_json(context.request, context.max_body_bytes), GROUP_RESOURCE)
    check_id(doc, None)
    group = Group(workspace_id=context.workspace_id)
    write_group_fields(group, doc)
    given = _checked_members(context, doc)
    wanted = list(given)
    context.session.add(group)
    _flush(context, group)
    added = group_store.add_members(context.unit, group.id, given)
    audit.record(
        context.unit,
        workspace_id=context.workspace_id,
        actor=context.actor,
        action="created",
        target_type="group",
        target_id=group.id,
        changes={"displayName": group.display_name, "members": wanted},
    )
    event_store.record_many(
        context.unit,
        context.workspace_id,
        [
            event_store.NewEvent(
                "group.created",
                "scim",
                group_id=group.id,
                group_name=group.display_name,
                changes={"displayName": group.display_name},
            ),
            *_membership_events(group, added=added, removed=()),
        ],
    )
    result = _document(context, group, None)
    return 201, result, {"Location": result["meta"]["location"], "ETag": version_tag(group.version)}


def replace_group(context: ScimContext, resource_id: str) -> Reply:
    group = group_store.get(context.unit, context.workspace_id, resource_id, for_update=True)
    check_if_match(context.request, group.version)
    doc = canonicalize(read_json(context.request, context.max_body_bytes), GROUP_RESOURCE)
    check_id(doc, group.id)
    return _update(context, group, doc)


def patch_group(context: ScimContext, resource_id: str) -> Reply:
    group = group_store.get(context.unit, context.workspace_id, resource_id, for_update=True)
    check_if_match(context.request, group.version)
    body = read_json(context.request, context.max_body_bytes)
    current = group_document(
        group, context.locate, group_store.members_of(context.unit, [group.id])[group.id]
    )
    doc = apply_patch(current, body, GROUP_RESOURCE)
    check_id(doc, group.id)
    return _update(context, group, doc)


def _update(context: ScimContext, group: Group, doc: dict[str, Any]) -> Reply:
    before_fields = (group.display_name, group.external_id)
    write_group_fields(group, doc)
    kept = group_store.sub_attributes(context.unit, group.id)
    given = _checked_members(context, doc, already=set(kept))
    added = group_store.add_members(context.unit, group.id, given)
    removed = [mid for mid in kept if mid not in given]
    group_store.remove_members(context.unit, group.id, removed)
    # Sub-attributes a PUT (or a PATCH's merge, within their mutability) gave anew. A row
    # kept before sub-attributes were (None) takes them too, as no change of the group.
    renewed = {mid: sent for mid, sent in given.items() if mid in kept and kept[mid] != sent}
    group_store.set_sub_attributes(context.unit, group.id, renewed)
    changes: dict[str, Any] = {}
    if (group.display_name, group.external_id) != before_fields:
        changes["displayName"] = {"from": before_fields[0], "to": group.display_name}
        changes["externalId"] = {"from": before_fields[1], "to": group.external_id}
    if added:
        changes["added"] = added
    if removed:
        changes["removed"] = removed
    if updated := [mid for mid in renewed if kept[mid] is not None]:
        changes["updated"] = updated
    if changes:
        touch(group)
        _flush(context, group)
        audit.record(
            context.unit,
            workspace_id=context.workspace_id,
            actor=context.actor,
            action="updated",
            target_type="group",
            target_id=group.id,
            changes=changes,
        )
        renamed = (
            [
                event_store.NewEvent(
                    "group.renamed",
                    "scim",
                    group_id=group.id,
                    group_name=group.display_name,
                    changes={"displayName": changes["displayName"]},
                )
            ]
            if group.display_name != before_fields[0]
            else []
        )
        event_store.record_many(
            context.unit,
            context.workspace_id,
            [*renamed, *_membership_events(group, added=added, removed=removed)],
        )
    params = ListParameters.from_query(context.request.args, context.max_results)
    return 200, _document(context, group, params), {"ETag": version_tag(group.version)}


def delete_group(context: ScimContext, resource_id: str) -> Reply:
    group = group_store.get(context.unit, context.workspace_id, resource_id, for_update=True)
    check_if_match(context.request, group.version)
    removed = group_store.member_ids(context.unit, group.id)
    context.session.delete(group)
    context.session.flush()
    audit.record(
        context.unit,
        workspace_id=context.workspace_id,
        actor=context.actor,
        action="deleted",
        target_type="group",
        target_id=resource_id,
        changes={"displayName": group.display_name, "members": removed},
    )
    # One event: the memberships end with the group (no group.member_removed each).
    event_store.record(
        context.unit,
        context.workspace_id,
        "group.deleted",
        "scim",
        group_id=resource_id,
        group_name=group.display_name,
        changes={"displayName": group.display_name, "members": len(removed)},
    )
    return 204, None, {}


def _membership_events(
    group: Group, *, added: Iterable[str], removed: Iterable[str]
) -> Iterator[event_store.NewEvent]:
    """One event per member added to or removed from ``group``."""
    for kind, ids in (("group.member_added", added), ("group.member_removed", removed)):
        for member_id in ids:
            yield event_store.NewEvent(
                kind, "scim", member_id=member_id, group_id=group.id, group_name=group.display_name
            )


def _document(context: ScimContext, group: Group, params: ListParameters | None) -> dict[str, Any]:
    wants_members = params is None or params.wants(GROUP_RESOURCE, "members")
    members = group_store.members_of(context.unit, [group.id])[group.id] if wants_members else None
    doc = group_document(group, context.locate, members)
    if params is None:
        return doc
    return project(doc, GROUP_RESOURCE, params.attributes, params.excluded_attributes)


def _checked_members(
    context: ScimContext, doc: dict[str, Any], already: set[str] | None = None
) -> dict[str, SubAttributes]:
    given = group_members(doc)
    unknown = [mid for mid in given if mid not in (already or set())]
    found = member_store.existing_ids(context.unit, context.workspace_id, unknown)
    missing = [mid for mid in unknown if mid not in found]
    if missing:
        raise invalid_value(f"no User with id {missing[0]!r} in this workspace")
    return given


def _flush(context: ScimContext, group: Group) -> None:
    context.flush_unique(f"a Group named {group.display_name!r} already exists")
