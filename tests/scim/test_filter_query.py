"""A parsed filter checked against the schema on its way to SQL (scim/filter_query.py):
what it refuses, with invalidFilter and a message naming the problem, before any SQL exists.
What the SQL then finds, on real rows, is tests/store/test_scim_filters.py."""

from __future__ import annotations

import dataclasses

import pytest

from webwork_sso_middleware.scim.errors import ScimError
from webwork_sso_middleware.scim.filter_query import compile_filter
from webwork_sso_middleware.scim.filters import ValuePath, parse_filter
from webwork_sso_middleware.scim.schemas import GROUP_RESOURCE, USER_RESOURCE, ResourceType

from ..store.test_scim_filters import GROUP_PATHS, UNFILTERABLE, USER_PATHS
from .test_filters import ENTERPRISE as E
from .test_filters import P


def refused(resource: ResourceType, text: str) -> str:
    """The message of the invalidFilter error compiling ``text`` raises."""
    with pytest.raises(ScimError) as caught:
        compile_filter(parse_filter(text), resource)
    assert caught.value.scim_type == "invalidFilter"
    return str(caught.value)


COMPILE_ERRORS = [
    (USER_RESOURCE, 'foo eq "x"', "unknown attribute 'foo' (for User resources)"),
    (USER_RESOURCE, 'name.foo eq "x"', "unknown attribute 'name.foo'"),
    (USER_RESOURCE, 'userName.value eq "x"', "unknown attribute 'userName.value'"),
    (USER_RESOURCE, 'members eq "x"', "unknown attribute 'members' (for User resources)"),
    (GROUP_RESOURCE, 'userName eq "x"', "unknown attribute 'userName' (for Group resources)"),
    (GROUP_RESOURCE, f'{E}department eq "x"', "unknown attribute"),
    (USER_RESOURCE, 'emails[foo eq "x"]', "unknown attribute 'foo' in a filter on emails"),
    (
        USER_RESOURCE,
        'emails[type eq "work"].foo pr',
        "unknown attribute 'foo' in a filter on emails",
    ),
    (USER_RESOURCE, 'emails.foo eq "x"', "unknown attribute 'emails.foo'"),
    (USER_RESOURCE, 'password eq "x"', "password cannot be used in filters"),
    (USER_RESOURCE, "password pr", "password cannot be used in filters"),
    (USER_RESOURCE, "active eq 5", "active is a boolean"),
    (USER_RESOURCE, 'active eq "yes"', "active is a boolean"),
    (USER_RESOURCE, "active gt true", "'gt' cannot compare booleans"),
    (USER_RESOURCE, 'active ge "true"', "'ge' cannot be used with the boolean attribute active"),
    (USER_RESOURCE, 'active co "t"', "'co' cannot be used with the boolean attribute active"),
    (USER_RESOURCE, "emails[primary eq 1]", "emails.primary is a boolean"),
    (USER_RESOURCE, "userName eq 5", "userName is a string"),
    (USER_RESOURCE, "userName eq true", "userName is a string"),
    (USER_RESOURCE, "userName co 5", "'co' needs a string value"),
    (USER_RESOURCE, "userName gt null", "'gt null' is not allowed"),
    (USER_RESOURCE, 'meta.created gt "yesterday"', "'yesterday' is not an ISO 8601 dateTime"),
    (USER_RESOURCE, 'meta.created co "2024"', "'co' cannot be used with the dateTime attribute"),
    (USER_RESOURCE, "meta.created eq 5", "meta.created is a dateTime"),
    (USER_RESOURCE, 'meta.created eq "9999-12-31T23:59:59.999999"', "not an ISO 8601 dateTime"),
    (USER_RESOURCE, 'name eq "x"', "name is complex; filter on a sub-attribute"),
    (USER_RESOURCE, 'meta eq "x"', "meta is complex"),
    (USER_RESOURCE, 'meta.location eq "x"', "meta.location cannot be used in filters"),
    (USER_RESOURCE, 'meta.version eq "W/\\"1\\""', "meta.version cannot be used in filters"),
    (USER_RESOURCE, f"{E}manager.$ref pr", "manager.$ref cannot be used in filters"),
    (USER_RESOURCE, 'groups.$ref eq "x"', "groups.$ref cannot be used in filters"),
    (USER_RESOURCE, 'addresses eq "x"', "filter on a sub-attribute of addresses"),
    (USER_RESOURCE, 'userName[value eq "x"]', "'userName' is not a complex attribute"),
    (USER_RESOURCE, 'emails.value[type eq "x"]', "'emails.value' is not a complex attribute"),
    (GROUP_RESOURCE, "members.$ref pr", "members.$ref cannot be used in filters"),
    (GROUP_RESOURCE, "members[value eq 5]", "members.value is a string"),
]


@pytest.mark.parametrize(
    "resource, text, message", COMPILE_ERRORS, ids=[case[1] for case in COMPILE_ERRORS]
)
def test_compile_refuses_with_invalid_filter(
    resource: ResourceType, text: str, message: str
) -> None:
    with pytest.raises(ScimError) as caught:
        compile_filter(parse_filter(text), resource)
    assert caught.value.scim_type == "invalidFilter"
    assert message in caught.value.detail


def test_compile_refuses_nested_value_filters_built_by_hand() -> None:
    node = ValuePath("emails", ValuePath("type", P("value")))
    with pytest.raises(ScimError, match="value filters do not nest"):
        compile_filter(node, USER_RESOURCE)


@pytest.mark.parametrize(
    "resource, text, message",
    [
        (USER_RESOURCE, 'title[value eq "x"]', "'title' is not a complex attribute"),
        (USER_RESOURCE, 'name.givenName[value eq "x"]', "is not a complex attribute"),
        (USER_RESOURCE, 'emails.value[value eq "x"]', "is not a complex attribute"),
        (
            USER_RESOURCE,
            'name eq "x"',
            "name is complex; filter on a sub-attribute such as name.formatted",
        ),
        (
            USER_RESOURCE,
            'addresses eq "x"',
            "filter on a sub-attribute of addresses, such as addresses.formatted",
        ),
        (USER_RESOURCE, 'nosuch eq "x"', "unknown attribute 'nosuch' (for User resources)"),
        (USER_RESOURCE, 'password eq "x"', "password cannot be used in filters"),
        (
            USER_RESOURCE,
            'emails[nosuch eq "x"]',
            "unknown attribute 'nosuch' in a filter on emails",
        ),
        (USER_RESOURCE, 'name[nosuch eq "x"]', "unknown attribute 'nosuch' in a filter on name"),
        (GROUP_RESOURCE, 'userName eq "x"', "unknown attribute 'userName' (for Group resources)"),
    ],
)
def test_filters_the_tables_cannot_answer_are_refused(
    resource: ResourceType, text: str, message: str
) -> None:
    """Refused with invalidFilter and a message naming the problem, never compiled to SQL."""
    assert message in refused(resource, text)


def test_unmapped_paths_are_refused_not_empty() -> None:
    """A published path no column holds is an invalidFilter, not a filter that finds nothing."""
    for resource, paths in ((USER_RESOURCE, USER_PATHS), (GROUP_RESOURCE, GROUP_PATHS)):
        unmapped = {path.canonical for path in paths if path.canonical in UNFILTERABLE}
        assert unmapped
        for path in paths:
            if path.canonical in UNFILTERABLE:
                assert "cannot be used in filters" in refused(resource, f'{path.text} eq "x"')
                assert "cannot be used in filters" in refused(resource, f"{path.text} pr")


def test_compile_refuses_a_resource_type_without_tables() -> None:
    """Only Users and Groups have tables; another resource type is a programming error."""
    device = dataclasses.replace(USER_RESOURCE, name="Device")
    with pytest.raises(ValueError, match="no SQL mapping for the resource type 'Device'"):
        compile_filter(P("userName"), device)
