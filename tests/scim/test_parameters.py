"""What a list or search asks for (scim/parameters.py): here, sortBy read against the schema
and what the store can sort by."""

from __future__ import annotations

import pytest

from webwork_sso_middleware.scim.errors import ScimError
from webwork_sso_middleware.scim.parameters import ListParameters
from webwork_sso_middleware.scim.schemas import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    USER_RESOURCE,
    ResourceType,
)


def sort_key(resource: ResourceType, sort_by: str | None) -> str | None:
    query = {} if sort_by is None else {"sortBy": sort_by}
    return ListParameters.from_query(query, max_results=100).sort_key(resource)


@pytest.mark.parametrize(
    "sort_by, key",
    [
        (None, None),
        ("userName", "userName"),
        ("NAME.givenname", "name.givenName"),  # names ignore case, as everywhere in SCIM
        ("urn:ietf:params:scim:schemas:core:2.0:User:title", "title"),
        ("emails", "emails"),
        ("emails.value", "emails.value"),
        ("meta.lastModified", "meta.lastModified"),
        (f"{ENTERPRISE_USER_SCHEMA}:department", "department"),
        (f"{ENTERPRISE_USER_SCHEMA}:employeeNumber", "employeeNumber"),
    ],
)
def test_sort_by_becomes_the_canonical_name(sort_by: str | None, key: str | None) -> None:
    assert sort_key(USER_RESOURCE, sort_by) == key


@pytest.mark.parametrize(
    "resource, sort_by",
    [
        (USER_RESOURCE, "password"),
        (USER_RESOURCE, "groups"),
        (USER_RESOURCE, "name"),  # complex: only its sub-attributes sort
        (USER_RESOURCE, "nosuch"),
        (USER_RESOURCE, "emails.type"),
        (USER_RESOURCE, "department"),  # unqualified: not a core attribute
        (USER_RESOURCE, "meta.version"),
        (GROUP_RESOURCE, "userName"),
        (GROUP_RESOURCE, "members"),
    ],
)
def test_what_the_store_cannot_sort_by_is_an_invalid_path(
    resource: ResourceType, sort_by: str
) -> None:
    with pytest.raises(ScimError) as refused:
        sort_key(resource, sort_by)
    assert (refused.value.status, refused.value.scim_type) == (400, "invalidPath")
    assert refused.value.detail == f"cannot sort {resource.endpoint} by {sort_by!r}"
