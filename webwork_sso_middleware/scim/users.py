"""The /Users endpoints. Deactivation keeps every field and membership and ends sessions.

PATCH remove of ``active`` unassigns it: it reads back absent and counts as active for
sign-in; a POST or PUT without it does not assert it. The reasons are in writes.py's docstring.
"""

from __future__ import annotations

from typing import Any

from ..members import lifecycle
from ..store import audit, scim_queries
from ..store import events as event_store
from ..store import members as member_store
from ..store.driver import combined
from ..store.members import MemberRecord, NewMember
from ..store.models import Member, utcnow
from .context import Reply, ScimContext
from .discovery import list_response
from .errors import invalid_value
from .extensions import canonical
from .filter_query import filter_condition
from .filters import Comparison, Node
from .parameters import ListParameters, check_if_match, read_json
from .patch import apply_patch
from .projection import project
from .resources import lists_version, user_document, version_tag
from .schemas import USER_RESOURCE
from .writes import canonicalize, check_id, touch, write_user

# Attributes whose change is not a profile change worth an audit diff.
UNAUDITED = ("meta", "groups", "schemas", "id")


def list_users(context: ScimContext) -> Reply:
    params = ListParameters.from_query(context.request.args, context.max_results)
    return _list(context, params)


def search_users(context: ScimContext) -> Reply:
    body = read_json(context.request, context.max_body_bytes)
    return _list(context, ListParameters.from_search(body, context.max_results))


def _list(context: ScimContext, params: ListParameters) -> Reply:
    node = params.parsed_filter()
    user_name = _user_name_lookup(params, node)
    if user_name is not None:
        rows = member_store.find_by_user_name(context.unit, context.workspace_id, user_name)
        total = len(rows)
    else:
        total, rows = scim_queries.member_page(
            context.unit,
            context.workspace_id,
            where=filter_condition(node, USER_RESOURCE),
            sort_by=params.sort_key(USER_RESOURCE),
            descending=params.descending,
            offset=params.start_index - 1,
            limit=params.count,
        )
    resources = [
        project(
            user_document(m, context.locate),
            USER_RESOURCE,
            params.attributes,
            params.excluded_attributes,
        )
        for m in rows
    ]
    return 200, list_response(resources, total=total, start_index=params.start_index), {}


def _user_name_lookup(params: ListParameters, node: Node | None) -> str | None:
    """The userName when the filter is exactly ``userName eq "..."`` on the first page.

    Okta and Entra send this lookup before every create and many updates: it is answered by
    a prebuilt statement on the unique index, skipping the general filter compiler.
    """
    if node is None or params.start_index != 1 or params.count < 1:
        return None
    if isinstance(node, Comparison) and node.op == "eq" and isinstance(node.value, str):
        path = USER_RESOURCE.resolve(node.path)
        if path is not None and path.canonical == "userName":
            return node.value
    return None


def get_user(context: ScimContext, resource_id: str) -> Reply:
    record = member_store.read(context.unit, context.workspace_id, resource_id)
    tag = version_tag(record.row.version)
    if_none_match = context.request.headers.get("If-None-Match")
    if if_none_match and lists_version(if_none_match, record.row.version):
        return 304, None, {"ETag": tag}
    params = ListParameters.from_query(context.request.args, context.max_results)
    doc = project(
        user_document(record, context.locate),
        USER_RESOURCE,
        params.attributes,
        params.excluded_attributes,
    )
    return 200, doc, {"ETag": tag}


def create_user(context: ScimContext) -> Reply:
    doc = canonicalize(read_json(context.request, context.max_body_bytes), USER_RESOURCE)
    check_id(doc, None)
    member = NewMember(
        workspace_id=context.workspace_id, source="scim", active=True, active_assigned=True
    )
    write_user(member, doc)
    # A new member has no session: the domain's verifier may come from this worker's memory
    # (scim/verified_domains.py says why that is safe).
    _check_name(context, member.user_name_key, verifier_of=context.verified_domains.verifier_of)
    if not member.active:
        member.deactivated_at = utcnow()
    # The reply first: the write below is the last step, and on PostgreSQL its own commit
    # (app.py ONE_WRITE), so nothing may fail after it.
    member_store.fill_defaults(member)
    result = user_document(MemberRecord(member, member.values, []), context.locate)
    headers = {"Location": result["meta"]["location"], "ETag": version_tag(member.version)}
    # Creates are what a directory sync sends most: plain INSERTs, not the ORM's flush, sent
    # as one statement on PostgreSQL, the unique userName index checked at its end.
    with context.unique(_conflict(member)), combined(context.connection):
        member_store.insert_new(context.unit, member)
        _record(
            context, "created", member.id, {"userName": member.user_name, "active": member.active}
        )
    return 201, result, headers


def replace_user(context: ScimContext, resource_id: str) -> Reply:
    member = member_store.get(context.unit, context.workspace_id, resource_id, for_update=True)
    check_if_match(context.request, member.version)
    doc = canonicalize(read_json(context.request, context.max_body_bytes), USER_RESOURCE)
    check_id(doc, member.id)
    return _update(context, member, doc)


def patch_user(context: ScimContext, resource_id: str) -> Reply:
    member = member_store.get(context.unit, context.workspace_id, resource_id, for_update=True)
    check_if_match(context.request, member.version)
    body = read_json(context.request, context.max_body_bytes)
    doc = apply_patch(user_document(MemberRecord.of(member), context.locate), body, USER_RESOURCE)
    check_id(doc, member.id)
    return _update(context, member, doc, unassign_omitted_active=True)


def _update(
    context: ScimContext,
    member: Member,
    doc: dict[str, Any],
    *,
    unassign_omitted_active: bool = False,
) -> Reply:
    before = _profile(user_document(MemberRecord.of(member), context.locate))
    was_active = member.active
    key_before = member.user_name_key
    write_user(member, doc, unassign_omitted_active=unassign_omitted_active)
    if member.user_name_key != key_before:  # a rename; a member's existing name stays usable
        _check_name(context, member.user_name_key)
    after = _profile(user_document(MemberRecord.of(member), context.locate))
    # Equal as JSON, not as Python: an extension attribute's 1 replaced by true is a change.
    if canonical(after) != canonical(before):
        touch(member)
        changes = {
            key: {"from": before.get(key), "to": after.get(key)}
            for key in sorted(set(before) | set(after))
            if canonical(before.get(key)) != canonical(after.get(key))
        }
        action = lifecycle.settle_active_change(member, was_active=was_active)
        _flush(context, member)
        _record(context, action, member.id, changes)
    result = user_document(MemberRecord.of(member), context.locate)
    return 200, result, {"ETag": version_tag(member.version)}


def delete_user(context: ScimContext, resource_id: str) -> Reply:
    """The member disappears from SCIM but stays in the store, deactivated."""
    member = member_store.get(context.unit, context.workspace_id, resource_id, for_update=True)
    check_if_match(context.request, member.version)
    left = lifecycle.delete(member)
    for group in left:
        touch(group)  # its members changed: a new version for SCIM
    groups = sorted(group.id for group in left)
    touch(member)
    context.session.flush()
    # One event: leaving its groups is part of a deletion (no group.member_removed each).
    _record(context, "deleted", member.id, {"userName": member.user_name, "groups": groups})
    return 204, None, {}


def _record(context: ScimContext, action: str, member_id: str, changes: dict[str, Any]) -> None:
    """A change to a member, in the audit log and as the lifecycle event ``member.<action>``."""
    audit.record(
        context.unit,
        workspace_id=context.workspace_id,
        actor=context.actor,
        action=action,
        target_type="member",
        target_id=member_id,
        changes=changes,
    )
    event_store.record(
        context.unit,
        context.workspace_id,
        f"member.{action}",
        "scim",
        member_id=member_id,
        changes=changes,
    )


def _check_name(
    context: ScimContext, key: str, *, verifier_of: lifecycle.VerifierOf | None = None
) -> None:
    """The identity rules (members/lifecycle.py): no userName in another workspace's domain."""
    try:
        lifecycle.check_provisioned_name(
            context.unit, context.workspace_id, key, verifier_of=verifier_of
        )
    except lifecycle.NameRefused as refused:
        raise invalid_value(refused.detail) from None


def _profile(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in UNAUDITED}


def _flush(context: ScimContext, member: Member) -> None:
    context.flush_unique(_conflict(member))


def _conflict(member: Member | NewMember) -> str:
    return f"a User with userName {member.user_name!r} already exists"
