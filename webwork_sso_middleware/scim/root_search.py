"""``POST /.search`` at the service provider's root (RFC 7644 section 3.4.3): one search over
every resource type, Users and Groups, of the token's workspace.

What the combined list is, deliberately:

* **One list, resource types in the order /ResourceTypes gives them** (Users, then Groups).
  ``sortBy`` and ``sortOrder`` order the resources *within* each type; a type that cannot be
  sorted by the attribute keeps its own default order (creation). A true merge across two
  tables could not be paged by index: finding where page N starts would need the rank of a
  value in both tables. With the types one after the other, page N is an OFFSET/LIMIT on at
  most two per-type queries, exactly the ones ``/Users/.search`` and ``/Groups/.search`` run.
* **A filter term naming an attribute a type lacks matches nothing of that type**: the
  attribute is unassigned on every resource of it (RFC 7643 2.5), so the term is false,
  ``eq null`` is true, and ``not`` and ``and``/``or`` combine as usual. A type whose whole
  filter is false is not even queried. An attribute no type knows is still invalidFilter (a
  typo should not look like an empty directory), and every other filter error of a type
  that has the attribute is answered as that type's search answers it.
* ``attributes`` / ``excludedAttributes`` apply to each resource by its own schema; each
  result carries its own ``schemas`` and ``meta.resourceType``.
"""

from __future__ import annotations

from typing import Any

from ..store import groups as group_store
from ..store import scim_filters as sql
from ..store import scim_queries
from ..store.scim_filters import Condition
from .context import Reply, ScimContext
from .discovery import list_response
from .errors import ScimError, invalid_filter, invalid_path
from .filter_query import compile_filter
from .filters import And, Comparison, Node, Not, Or, flatten
from .parameters import ListParameters, read_json
from .projection import project
from .resources import group_document, user_document
from .schemas import GROUP_RESOURCE, RESOURCE_TYPES, USER_RESOURCE, ResourceType

# A type's filter: a condition for the store, or a constant (True: all; False: none).
Where = Condition | bool


def search_resources(context: ScimContext) -> Reply:
    body = read_json(context.request, context.max_body_bytes)
    params = ListParameters.from_search(body, context.max_results)
    node = params.parsed_filter()
    if node is not None:
        _check_known(node)
    sort = _sort_keys(params)
    resources: list[dict[str, Any]] = []
    offset, room, total = params.start_index - 1, params.count, 0
    for resource in RESOURCE_TYPES:
        where = True if node is None else _where(node, resource)
        if where is False:
            continue
        # This type's part of the page starts at what the earlier types did not cover.
        type_total, page = _page(
            context,
            resource,
            params,
            where=None if where is True else where,
            sort_by=sort[resource.name],
            offset=max(0, offset - total),
            limit=room,
        )
        total += type_total
        room -= len(page)
        resources.extend(page)
    return 200, list_response(resources, total=total, start_index=params.start_index), {}


def _page(
    context: ScimContext,
    resource: ResourceType,
    params: ListParameters,
    *,
    where: Condition | None,
    sort_by: str | None,
    offset: int,
    limit: int,
) -> tuple[int, list[dict[str, Any]]]:
    """(matching resources of ``resource``, the documents of one page of them)."""
    unit, workspace_id, descending = context.unit, context.workspace_id, params.descending
    if resource is USER_RESOURCE:
        total, records = scim_queries.member_page(
            unit,
            workspace_id,
            where=where,
            sort_by=sort_by,
            descending=descending,
            offset=offset,
            limit=limit,
        )
        docs = [user_document(m, context.locate) for m in records]
    else:
        total, groups = scim_queries.group_page(
            unit,
            workspace_id,
            where=where,
            sort_by=sort_by,
            descending=descending,
            offset=offset,
            limit=limit,
        )
        # As /Groups: memberships are read only when the projection keeps them.
        members = (
            group_store.members_of(unit, [g.id for g in groups])
            if groups and params.wants(GROUP_RESOURCE, "members")
            else {}
        )
        docs = [group_document(g, context.locate, members.get(g.id)) for g in groups]
    projected = [
        project(doc, resource, params.attributes, params.excluded_attributes) for doc in docs
    ]
    return total, projected


def _sort_keys(params: ListParameters) -> dict[str, str | None]:
    """Each type's sort key; a type that cannot sort by ``sortBy`` keeps its default order,
    and a ``sortBy`` no type can sort by is invalidPath, as on each type's own search."""
    keys: dict[str, str | None] = {resource.name: None for resource in RESOURCE_TYPES}
    if params.sort_by is None:
        return keys
    for resource in RESOURCE_TYPES:
        try:
            keys[resource.name] = params.sort_key(resource)
        except ScimError:  # this type cannot sort by it
            keys[resource.name] = None
    if not any(keys.values()):
        raise invalid_path(f"no resource type can be sorted by {params.sort_by!r}")
    return keys


def _check_known(node: Node) -> None:
    """invalidFilter for a path that no resource type knows."""
    for leaf in _leaves(node):
        if all(resource.resolve(leaf.path) is None for resource in RESOURCE_TYPES):
            raise invalid_filter(f"unknown attribute {leaf.path!r} (for any resource type)")


def _leaves(node: Node) -> list[Any]:
    if isinstance(node, (And, Or)):
        return [leaf for part in flatten(node) for leaf in _leaves(part)]
    if isinstance(node, Not):
        return _leaves(node.node)
    return [node]


def _where(node: Node, resource: ResourceType) -> Where:
    """``node`` for ``resource``: terms on attributes it lacks are constants, the rest is
    compiled as the type's own search compiles it."""
    if isinstance(node, (And, Or)):
        parts = [_where(part, resource) for part in flatten(node)]
        absorbing = isinstance(node, Or)  # True absorbs an "or", False an "and"
        if any(part is absorbing for part in parts):  # never ==: a condition is SQL
            return absorbing
        conditions = [part for part in parts if not isinstance(part, bool)]
        if not conditions:
            return not absorbing
        return sql.any_of(conditions) if absorbing else sql.all_of(conditions)
    if isinstance(node, Not):
        inner = _where(node.node, resource)
        return (not inner) if isinstance(inner, bool) else sql.negation(inner)
    if resource.resolve(node.path) is None:
        # Unassigned on every resource of this type: only "eq null" holds (RFC 7643 2.5).
        return isinstance(node, Comparison) and node.value is None and node.op == "eq"
    return compile_filter(node, resource)
