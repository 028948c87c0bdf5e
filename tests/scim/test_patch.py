"""PATCH on documents (RFC 7644 section 3.5.2): Okta's and Entra's exact operations, the RFC's
rules, and a property test that nothing but ScimError escapes and nothing is mutated."""

from __future__ import annotations

import copy
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from webwork_sso_middleware.scim import paths
from webwork_sso_middleware.scim.errors import ScimError
from webwork_sso_middleware.scim.patch import MAX_OPERATIONS, apply_patch
from webwork_sso_middleware.scim.schemas import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    GROUP_SCHEMA,
    PATCH_OP,
    USER_RESOURCE,
    USER_SCHEMA,
    ResourceType,
)

ENTERPRISE = ENTERPRISE_USER_SCHEMA
CORE = USER_SCHEMA

USER: dict[str, Any] = {
    "schemas": [USER_SCHEMA],
    "id": "u1",
    "userName": "ada@acme.test",
    "name": {"givenName": "Ada", "familyName": "Lovelace"},
    "displayName": "Ada Lovelace",
    "active": True,
    "emails": [
        {"value": "ada@acme.test", "type": "work", "primary": True},
        {"value": "ada@home.test", "type": "home"},
    ],
    "addresses": [{"streetAddress": "1 Main St", "locality": "London", "type": "work"}],
    "groups": [{"value": "g1", "display": "Eng", "type": "direct"}],
    "meta": {"resourceType": "User", "version": 'W/"3"'},
}
ENTERPRISE_USER: dict[str, Any] = {
    **USER,
    "schemas": [USER_SCHEMA, ENTERPRISE],
    ENTERPRISE: {"department": "Maths", "manager": {"value": "m1", "displayName": "Babbage"}},
}
GROUP: dict[str, Any] = {
    "schemas": [GROUP_SCHEMA],
    "id": "g1",
    "displayName": "Eng",
    "members": [
        {"value": "u1", "display": "ada@acme.test", "type": "User"},
        {"value": "u2", "display": "bob@acme.test", "type": "User"},
    ],
    "meta": {"resourceType": "Group"},
}


def patch(
    document: dict[str, Any], *operations: dict[str, Any], resource: ResourceType = USER_RESOURCE
) -> dict[str, Any]:
    before = copy.deepcopy(document)
    body = {"schemas": [PATCH_OP], "Operations": list(operations)}
    result = apply_patch(document, body, resource)
    assert document == before, "the input document was mutated"
    return result


def patch_group(*operations: dict[str, Any]) -> dict[str, Any]:
    return patch(GROUP, *operations, resource=GROUP_RESOURCE)


def failure(
    document: dict[str, Any], *operations: dict[str, Any], resource: ResourceType = USER_RESOURCE
) -> tuple[int, str | None]:
    with pytest.raises(ScimError) as info:
        patch(document, *operations, resource=resource)
    return info.value.status, info.value.scim_type


def changed(document: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**copy.deepcopy(document), **fields}


# -- Okta -------------------------------------------------------------------------------------


def test_okta_deactivates_and_reactivates_with_pathless_replace():
    off = patch(USER, {"op": "replace", "value": {"active": False}})
    assert off == changed(USER, active=False)
    assert patch(off, {"op": "replace", "value": {"active": True}}) == USER


def test_okta_renames_a_group_repeating_its_id():
    renamed = patch_group({"op": "replace", "value": {"id": "g1", "displayName": "Engineering"}})
    assert renamed == changed(GROUP, displayName="Engineering")


def test_okta_rename_with_another_id_is_mutability():
    assert failure(
        GROUP, {"op": "replace", "value": {"id": "g2", "displayName": "X"}}, resource=GROUP_RESOURCE
    ) == (400, "mutability")


def test_okta_adds_members_without_duplicating():
    added = patch_group(
        {
            "op": "add",
            "path": "members",
            "value": [
                {"value": "u1", "display": "ada@acme.test"},
                {"value": "u3", "display": "cy@acme.test"},
            ],
        }
    )
    assert added["members"] == [*GROUP["members"], {"value": "u3", "display": "cy@acme.test"}]


def test_okta_removes_a_member_by_value_filter():
    removed = patch_group({"op": "remove", "path": 'members[value eq "u1"]'})
    assert removed == changed(GROUP, members=[GROUP["members"][1]])
    # Removing someone not (or no longer) in the group is a no-op, so retries succeed.
    assert patch_group({"op": "remove", "path": 'members[value eq "u9"]'}) == GROUP
    both = patch(
        removed, {"op": "remove", "path": 'members[value eq "u2"]'}, resource=GROUP_RESOURCE
    )
    assert "members" not in both  # no values left: unassigned


def test_okta_password_is_accepted_and_never_stored():
    assert patch(
        USER, {"op": "replace", "value": {"password": "hunter2", "title": "CTO"}}
    ) == changed(USER, title="CTO")
    assert patch(USER, {"op": "add", "path": "password", "value": "x"}) == USER
    stored = changed(USER, password="old")
    assert "password" not in patch(stored, {"op": "remove", "path": "title"})


# -- Entra ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [("False", False), ("false", False), ("TRUE", True), (True, True), (False, False)],
)
def test_entra_capitalised_op_and_string_booleans(value: Any, expected: bool):
    result = patch(USER, {"op": "Replace", "path": "active", "value": value})
    assert result == changed(USER, active=expected)


@pytest.mark.parametrize("value", ["maybe", "", 1, 0, {}, ["true"]])
def test_anything_else_for_a_boolean_is_invalid_value(value: Any):
    assert failure(USER, {"op": "Replace", "path": "active", "value": value}) == (
        400,
        "invalidValue",
    )


def test_entra_pathless_dotted_and_urn_qualified_keys():
    result = patch(
        USER,
        {
            "op": "Replace",
            "value": {"name.givenName": "Augusta", f"{ENTERPRISE}:department": "Computing"},
        },
    )
    assert result == changed(
        USER,
        name={"givenName": "Augusta", "familyName": "Lovelace"},
        schemas=[USER_SCHEMA, ENTERPRISE],
        **{ENTERPRISE: {"department": "Computing"}},
    )


def test_entra_replaces_family_name_with_its_own_casing():
    result = patch(USER, {"op": "Replace", "path": "Name.FamilyName", "value": "King"})
    assert result == changed(USER, name={"givenName": "Ada", "familyName": "King"})
    # A document holding an IdP's casing is written back under the canonical name.
    odd = {k: v for k, v in USER.items() if k != "name"} | {"Name": {"GivenName": "Ada"}}
    fixed = patch(odd, {"op": "replace", "path": "name.givenName", "value": "A"})
    assert fixed["name"] == {"givenName": "A"} and "Name" not in fixed


def test_entra_removes_only_the_listed_members():
    result = patch_group({"op": "Remove", "path": "members", "value": [{"value": "u2"}]})
    assert result == changed(GROUP, members=[GROUP["members"][0]])
    assert patch_group({"op": "Remove", "path": "members"}) == {
        k: v for k, v in GROUP.items() if k != "members"
    }


def test_re_adding_a_member_keeps_its_immutable_parts():
    # The same member again is no change (RFC 7644 section 3.5.2.1), whatever $ref form it has.
    result = patch_group(
        {
            "op": "add",
            "path": "members",
            "value": [{"value": "u1", "$ref": "../Users/u1", "type": "user", "display": "Ada"}],
        }
    )
    assert result["members"] == [
        {"value": "u1", "display": "Ada", "type": "User", "$ref": "../Users/u1"},
        GROUP["members"][1],
    ]


def test_entra_adds_members_with_value_only():
    result = patch_group({"op": "Add", "path": "members", "value": [{"value": "u3"}]})
    assert result["members"] == [*GROUP["members"], {"value": "u3"}]


def test_entra_work_email_is_created_when_missing():
    # RFC 7644 says noTarget; Entra sends this for users without a work email, so we create it.
    home_only = changed(USER, emails=[{"value": "ada@home.test", "type": "home"}])
    result = patch(
        home_only, {"op": "Add", "path": 'emails[type eq "work"].value', "value": "ada@acme.test"}
    )
    assert result["emails"] == [
        {"value": "ada@home.test", "type": "home"},
        {"type": "work", "value": "ada@acme.test"},
    ]
    replaced = patch(
        home_only,
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ada@acme.test"},
    )
    assert replaced == result


def test_entra_replaces_the_existing_work_email_in_place():
    result = patch(
        USER, {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ada@new.test"}
    )
    assert result["emails"] == [
        {"value": "ada@new.test", "type": "work", "primary": True},
        USER["emails"][1],
    ]


def test_filtered_key_in_a_pathless_value():
    result = patch(
        USER,
        {
            "op": "replace",
            "value": {
                'emails[type eq "work"].value': "ada@new.test",
                'phoneNumbers[type eq "mobile"].value': "1",
            },
        },
    )
    assert result["emails"][0] == {"value": "ada@new.test", "type": "work", "primary": True}
    assert result["phoneNumbers"] == [{"type": "mobile", "value": "1"}]


def test_entra_manager_as_a_bare_id():
    result = patch(USER, {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "m2"})
    assert result[ENTERPRISE] == {"manager": {"value": "m2"}}
    assert result["schemas"] == [USER_SCHEMA, ENTERPRISE]
    # A new manager drops the old one's readOnly displayName rather than keep it stale.
    moved = patch(
        ENTERPRISE_USER, {"op": "Replace", "path": f"{ENTERPRISE}:manager.value", "value": "m2"}
    )
    assert moved[ENTERPRISE]["manager"] == {"value": "m2"}


def test_removing_the_last_extension_attribute_drops_the_extension():
    one = changed(ENTERPRISE_USER, **{ENTERPRISE: {"department": "Maths"}})
    result = patch(one, {"op": "Remove", "path": f"{ENTERPRISE}:department"})
    assert result == USER


def test_path_naming_the_extension_schema():
    result = patch(USER, {"op": "replace", "path": ENTERPRISE, "value": {"Department": "Ops"}})
    assert result[ENTERPRISE] == {"department": "Ops"}
    assert patch(ENTERPRISE_USER, {"op": "remove", "path": ENTERPRISE}) == USER


def test_schema_urn_key_in_a_pathless_value():
    result = patch(
        USER,
        {
            "op": "add",
            "value": {
                "schemas": [USER_SCHEMA, ENTERPRISE],
                ENTERPRISE: {"employeeNumber": 1906},
                CORE: {"title": "Countess"},
            },
        },
    )
    # Numbers for string attributes become their text: IdPs send employee numbers so.
    assert result[ENTERPRISE] == {"employeeNumber": "1906"} and result["title"] == "Countess"


def test_core_urn_qualified_path():
    result = patch(USER, {"op": "replace", "path": f"{CORE}:userName", "value": "a@x.test"})
    assert result == changed(USER, userName="a@x.test")


# -- RFC 7644 section 3.5.2.1: add ------------------------------------------------------------


def test_rfc_examples_replace_all_members_and_pathless_replace():
    members = [
        {
            "display": "Babs Jensen",
            "$ref": "https://example.com/v2/Users/2819c223",
            "value": "2819c223",
        }
    ]
    result = patch_group(
        {"op": "remove", "path": "members"}, {"op": "add", "path": "members", "value": members}
    )
    assert result == changed(GROUP, members=members)
    emails = [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ]
    result = patch(USER, {"op": "replace", "value": {"emails": emails, "nickname": "Babs"}})
    assert result == changed(USER, emails=emails, nickName="Babs")


def test_add_primary_email_takes_primary_from_the_others():
    result = patch(
        USER,
        {
            "op": "add",
            "path": "emails",
            "value": [{"value": "ada@new.test", "type": "other", "primary": True}],
        },
    )
    # RFC 7644 section 3.5.2: the server sets the former primary's primary to false.
    assert result["emails"] == [
        {"value": "ada@acme.test", "type": "work", "primary": False},
        USER["emails"][1],
        {"value": "ada@new.test", "type": "other", "primary": True},
    ]


def test_add_existing_value_merges_instead_of_duplicating():
    result = patch(
        USER, {"op": "add", "path": "emails", "value": {"value": "ADA@home.test", "primary": True}}
    )  # one object
    assert result["emails"] == [
        {"value": "ada@acme.test", "type": "work", "primary": False},
        {"value": "ADA@home.test", "type": "home", "primary": True},
    ]


def test_two_primaries_in_one_operation_is_invalid_value():
    assert failure(
        USER,
        {
            "op": "add",
            "path": "emails",
            "value": [
                {"value": "a@x.test", "primary": True},
                {"value": "b@x.test", "primary": True},
            ],
        },
    ) == (400, "invalidValue")


def test_add_to_complex_attribute_merges_sub_attributes():
    result = patch(USER, {"op": "add", "value": {"name": {"middleName": "King"}}})
    assert result["name"] == {"givenName": "Ada", "familyName": "Lovelace", "middleName": "King"}


def test_sub_attribute_path_without_filter_targets_every_value():
    assert (
        patch(
            GROUP, {"op": "add", "path": "members.type", "value": "User"}, resource=GROUP_RESOURCE
        )
        == GROUP
    )  # immutable, but unchanged
    result = patch(USER, {"op": "remove", "path": "emails.type"})
    assert result["emails"] == [
        {"value": "ada@acme.test", "primary": True},
        {"value": "ada@home.test"},
    ]
    first = patch(
        changed(USER, emails=[]), {"op": "add", "path": "emails.value", "value": "a@x.test"}
    )
    assert first["emails"] == [{"value": "a@x.test"}]


# -- RFC 7644 section 3.5.2.3: replace --------------------------------------------------------


def test_replace_multi_valued_replaces_the_list():
    result = patch(USER, {"op": "replace", "path": "emails", "value": [{"value": "n@x.test"}]})
    assert result["emails"] == [{"value": "n@x.test"}]
    assert "emails" not in patch(USER, {"op": "replace", "path": "emails", "value": []})


def test_replace_sub_attribute_of_filtered_values():
    result = patch(
        USER,
        {"op": "replace", "path": 'addresses[type eq "work"].streetAddress', "value": "2 High St"},
    )
    assert result["addresses"] == [
        {"streetAddress": "2 High St", "locality": "London", "type": "work"}
    ]


def test_replace_filtered_value_merges_the_sub_attributes_given():
    result = patch(
        USER,
        {
            "op": "replace",
            "path": 'emails[value eq "ada@home.test"]',
            "value": {"display": "Home", "primary": True},
        },
    )
    assert result["emails"] == [
        {"value": "ada@acme.test", "type": "work", "primary": False},
        {"value": "ada@home.test", "type": "home", "display": "Home", "primary": True},
    ]


@pytest.mark.parametrize(
    "path",
    [
        'emails[value eq "nobody@x.test"].value',
        'emails[type eq "other" and primary eq true].value',
        'emails[type ne "work" and type ne "home"]',
    ],
)
def test_replace_filter_matching_nothing_is_no_target(path: str):
    assert failure(USER, {"op": "replace", "path": path, "value": "x@x.test"}) == (400, "noTarget")


def test_replace_null_unassigns():
    assert "displayName" not in patch(USER, {"op": "replace", "path": "displayName", "value": None})
    assert patch(USER, {"op": "replace", "value": {"name": {"givenName": None}}})["name"] == {
        "familyName": "Lovelace"
    }


# -- RFC 7644 section 3.5.2.2: remove ---------------------------------------------------------


def test_remove_sub_attribute():
    assert patch(USER, {"op": "remove", "path": "name.givenName"})["name"] == {
        "familyName": "Lovelace"
    }
    both = patch(
        USER,
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "name.familyName"},
    )
    assert "name" not in both


def test_remove_sub_attribute_of_filtered_values():
    result = patch(USER, {"op": "remove", "path": 'emails[type eq "work"].primary'})
    assert result["emails"] == [{"value": "ada@acme.test", "type": "work"}, USER["emails"][1]]


def test_remove_multi_valued_attribute():
    result = patch(USER, {"op": "remove", "path": "emails"})
    assert result == {k: v for k, v in USER.items() if k != "emails"}


def test_remove_without_path_is_no_target():
    assert failure(USER, {"op": "remove"}) == (400, "noTarget")
    assert failure(USER, {"op": "remove", "path": "", "value": {"title": "x"}}) == (400, "noTarget")


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "nosuch", "value": "x"},
        {"op": "replace", "path": "name.nosuch", "value": "x"},
        {"op": "replace", "path": "name.givenName.x", "value": "x"},
        {"op": "replace", "path": 'emails[type eq "work"].nosuch', "value": "x"},
        {"op": "replace", "path": 'emails[type eq "work"]value', "value": "x"},
        {"op": "replace", "path": 'name[givenName eq "Ada"]', "value": "x"},
        {"op": "replace", "path": 'emails[type eq "work"', "value": "x"},
        {"op": "replace", "path": 'emails[type eq "a"].value[x]', "value": "x"},
        {"op": "replace", "path": "emails]", "value": "x"},
        # Undescribed Enterprise attributes are kept (scim/extensions.py), but not dotted ones.
        {"op": "replace", "path": f"{ENTERPRISE}:nosuch.sub", "value": "x"},
        {"op": "replace", "path": f"{ENTERPRISE}:manager.nosuch", "value": "x"},
        {"op": "add", "value": {"nosuch": "x"}},
        {"op": "add", "value": {ENTERPRISE: {"no.such": "x"}}},
        {
            "op": "add",
            "path": "urn:ietf:params:scim:schemas:extension:acme:2.0:User:a.b",
            "value": 1,
        },
        {"op": "add", "path": "emails", "value": [{"value": "a@x.test", "kind": "work"}]},
    ],
)
def test_unknown_attribute_is_invalid_path(operation: dict[str, Any]):
    assert failure(USER, operation) == (400, "invalidPath")


@pytest.mark.parametrize(
    "path",
    [
        "emails[type eq]",
        'emails[tpye eq "work"]',
        "emails[]",
        'emails[primary eq "yes"]',
        'emails[members[value eq "x"]]',
        'emails[type eq "work" and]',
    ],
)
def test_bad_value_filter_is_invalid_filter(path: str):
    # RFC 7644 Table 9 lists invalidFilter for "PATCH (Path Filter)".
    assert failure(USER, {"op": "remove", "path": path}) == (400, "invalidFilter")


def test_bracket_inside_a_filter_string_is_not_the_end_of_the_filter():
    doc = changed(USER, emails=[{"value": "odd]@x.test", "type": "work"}])
    assert "emails" not in patch(doc, {"op": "remove", "path": 'emails[value eq "odd]@x.test"]'})


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": "userName"},
        {"op": "replace", "path": "userName", "value": None},
        {"op": "replace", "value": {"meta": {"version": 'W/"9"'}}},
        {"op": "add", "path": "groups", "value": [{"value": "g2"}]},
        {"op": "remove", "path": "groups"},
        {"op": "remove", "path": "id"},
        {"op": "replace", "path": "id", "value": "u2"},
        {"op": "replace", "path": f"{ENTERPRISE}:manager.displayName", "value": "Someone"},
    ],
)
def test_mutability_errors(operation: dict[str, Any]):
    assert failure(ENTERPRISE_USER, operation) == (400, "mutability")


def test_read_only_values_repeated_unchanged_are_ignored():
    assert (
        patch(
            USER,
            {
                "op": "replace",
                "value": {"id": "u1", "groups": USER["groups"], "meta": USER["meta"]},
            },
        )
        == USER
    )


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": "displayName"},
        {"op": "replace", "path": 'members[value eq "u1"].value', "value": "u9"},
        {"op": "replace", "path": 'members[value eq "u1"]', "value": {"value": "u9"}},
        {"op": "remove", "path": "members.value"},
        {"op": "replace", "path": 'members[value eq "u1"].type', "value": "Group"},
    ],
)
def test_group_mutability_errors(operation: dict[str, Any]):
    assert failure(GROUP, operation, resource=GROUP_RESOURCE) == (400, "mutability")


def test_a_members_display_is_the_clients_to_change():
    # display is kept as the client sent it (scim/resources.py), so the client may rename it.
    path = 'members[value eq "u1"].display'
    result = patch(GROUP, {"op": "replace", "path": path, "value": "Ada"}, resource=GROUP_RESOURCE)
    assert result["members"][0] == {"value": "u1", "display": "Ada", "type": "User"}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "title", "value": True},
        {"op": "replace", "path": "title", "value": {"x": 1}},
        {"op": "replace", "path": "title", "value": ["a"]},
        {"op": "replace", "path": "title", "value": float("inf")},
        {"op": "replace", "path": "name", "value": "Ada"},
        {"op": "add", "path": "emails", "value": [["nested"]]},
        {
            "op": "replace",
            "path": 'emails[type eq "work"]',
            "value": [{"value": "a"}, {"value": "b"}],
        },
        {"op": "replace", "value": "not an object"},
        {"op": "add", "path": "title"},
        {"op": "replace", "path": "title", "value": 10**5000},
    ],
)
def test_invalid_values(operation: dict[str, Any]):
    assert failure(USER, operation) == (400, "invalidValue")


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "x",
        {},
        {"Operations": []},
        {"Operations": {"op": "add"}},
        {"Operations": ["add"]},
        {"Operations": [{"op": "jump", "path": "title", "value": "x"}]},
        {"Operations": [{"path": "title", "value": "x"}]},
        {"Operations": [{"op": "add", "path": 7, "value": "x"}]},
    ],
)
def test_malformed_bodies_are_invalid_syntax(body: Any):
    with pytest.raises(ScimError) as info:
        apply_patch(USER, body, USER_RESOURCE)
    assert (info.value.status, info.value.scim_type) == (400, "invalidSyntax")


def test_body_keys_and_ops_ignore_case_and_schemas_is_optional():
    body = {"operations": [{"OP": "REPLACE", "Path": "title", "Value": "CTO"}]}
    assert apply_patch(USER, body, USER_RESOURCE) == changed(USER, title="CTO")


def test_too_many_operations():
    body = {"Operations": [{"op": "add", "path": "title", "value": "x"}] * (MAX_OPERATIONS + 1)}
    with pytest.raises(ScimError) as info:
        apply_patch(USER, body, USER_RESOURCE)
    assert info.value.scim_type == "invalidValue" and "at most" in info.value.detail
    body["Operations"] = body["Operations"][:MAX_OPERATIONS]
    assert apply_patch(USER, body, USER_RESOURCE)["title"] == "x"


def test_operations_apply_in_order_and_all_or_nothing():
    doc = copy.deepcopy(USER)
    result = patch(
        doc,
        {"op": "add", "path": "title", "value": "A"},
        {"op": "replace", "path": "title", "value": "B"},
    )
    assert result["title"] == "B"
    assert failure(
        doc,
        {"op": "add", "path": "title", "value": "A"},
        {"op": "add", "path": "nosuch", "value": "B"},
    ) == (400, "invalidPath")
    assert doc == USER


def test_result_shares_nothing_with_the_body():
    value = [{"value": "n@x.test", "type": "work"}]
    body = {
        "Operations": [
            {"op": "replace", "path": "emails", "value": value},
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "m@x.test"},
        ]
    }
    result = apply_patch(USER, body, USER_RESOURCE)
    assert result["emails"] == [{"value": "m@x.test", "type": "work"}]
    assert value == [{"value": "n@x.test", "type": "work"}]


# -- property: any input, only ScimError, no mutation -----------------------------------------

USER_NAMES = [
    "userName",
    "USERNAME",
    "name",
    "name.givenName",
    "Name.FamilyName",
    "displayName",
    "active",
    "emails",
    "emails.value",
    "emails.primary",
    "phoneNumbers",
    "addresses",
    "addresses.streetAddress",
    "groups",
    "id",
    "meta",
    "meta.version",
    "password",
    "externalId",
    "title",
    "schemas",
    ENTERPRISE,
    f"{ENTERPRISE}:department",
    f"{ENTERPRISE}:manager",
    f"{ENTERPRISE}:manager.value",
    f"{ENTERPRISE}:manager.displayName",
    f"{CORE}:userName",
    "nosuch",
    "name.nosuch",
    "",
    "urn:x",
]
USER_PATHS = USER_NAMES + [
    'emails[type eq "work"]',
    'emails[type eq "work"].value',
    'emails[type eq "home"].primary',
    'emails[value co "@" and primary eq true]',
    "emails[primary eq true].display",
    'emails[not (type eq "work")]',
    'addresses[type eq "work"].locality',
    'groups[value eq "g1"]',
    'emails[type eq "work"',
    "emails[type eq]",
    "emails[]",
    "emails[x[y]]",
    'name[a eq "b"]',
    'emails[type eq "work"].',
    'emails[type eq "work"]].value',
    "emails[primary gt true]",
]
GROUP_NAMES = [
    "displayName",
    "DisplayName",
    "members",
    "members.value",
    "members.display",
    "members.type",
    "externalId",
    "id",
    "meta",
    "schemas",
    "nosuch",
    "",
]
GROUP_PATHS = GROUP_NAMES + [
    'members[value eq "u1"]',
    'members[value eq "u9"].value',
    'members[value sw "u"].display',
    'members[type eq "User"]',
    'members[value eq "U1"]',
    'members[display co "@"].type',
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.builds(lambda: 10**5000)
    | st.floats(allow_nan=False)
    | st.sampled_from(["True", "false", "work", "u1", ""])
    | st.text(max_size=8)
)
KEYS = st.sampled_from(
    USER_NAMES + GROUP_NAMES + ["value", "type", "primary", "display", "givenName", "Value", "$ref"]
) | st.text(max_size=6)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
# Mostly plausible values, so that many operations get past validation and change things.
PLAUSIBLE = st.sampled_from(
    [
        "x",
        "True",
        True,
        False,
        None,
        [],
        "m1",
        42,
        {"givenName": "G"},
        {"value": "m2"},
        {"value": "a@x.test", "type": "work", "primary": True},
        {"value": "ada@home.test"},
        [{"value": "u3"}],
        [{"value": "u1", "display": "d"}],
        [{"value": "u2"}, {"value": "u4"}],
        [{"value": "b@x.test", "primary": "true"}, {"value": "c@x.test", "type": "home"}],
        {"display": "D", "primary": True},
        {"streetAddress": "S", "type": "work"},
        {"id": "u1", "active": False},
        {"id": "g1", "displayName": "N"},
        {"name.givenName": "X", f"{ENTERPRISE}:department": "D"},
        {ENTERPRISE: {"department": "D"}},
    ]
)


def bodies(names: list[str], paths: list[str]) -> st.SearchStrategy[Any]:
    objects = st.dictionaries(st.sampled_from(names), PLAUSIBLE | SCALARS, max_size=4)
    op = st.sampled_from(["add", "Add", "replace", "Replace"])
    writes = st.fixed_dictionaries({"op": op, "value": objects}) | st.fixed_dictionaries(
        {"op": op, "path": st.sampled_from(paths), "value": PLAUSIBLE | VALUES}
    )
    removes = st.fixed_dictionaries(
        {"op": st.sampled_from(["remove", "Remove"]), "path": st.sampled_from(paths)},
        optional={"value": PLAUSIBLE},
    )
    anything = st.fixed_dictionaries(
        {},
        optional={
            "op": VALUES | st.sampled_from(["add", "move"]),
            "path": st.text(max_size=12) | VALUES,
            "value": VALUES,
        },
    )
    well_formed = st.fixed_dictionaries(
        {"Operations": st.lists(writes | removes, min_size=1, max_size=4)}
    )
    malformed = VALUES | st.fixed_dictionaries(
        {"Operations": st.lists(writes | removes | anything, min_size=1, max_size=4)}
    )
    return st.integers(0, 5).flatmap(lambda n: malformed if n == 0 else well_formed)


CASES = st.one_of(
    st.tuples(st.just((USER, USER_RESOURCE)), bodies(USER_NAMES, USER_PATHS)),
    st.tuples(st.just((ENTERPRISE_USER, USER_RESOURCE)), bodies(USER_NAMES, USER_PATHS)),
    st.tuples(st.just((GROUP, GROUP_RESOURCE)), bodies(GROUP_NAMES, GROUP_PATHS)),
)


def assert_canonical(document: dict[str, Any], resource: ResourceType) -> None:
    """Canonical names, typed values and at most one primary: what the writer expects."""
    assert document["schemas"][0] == resource.schema.id
    for key, value in document.items():
        if key == "schemas":
            assert all(resource.schema_by_urn(urn) is not None for urn in value)
            assert sorted(set(value)) == sorted(value)
            continue
        if key.startswith("urn:"):
            assert key in document["schemas"]
            schema = resource.schema_by_urn(key)
            assert schema is not None and schema.id == key and isinstance(value, dict) and value
            continue
        target = resource.resolve(key)
        assert target is not None and target.attribute.name == key
        attribute = target.attribute
        if attribute.type == "boolean":
            assert isinstance(value, bool)
        elif attribute.multi_valued:
            assert isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
            assert sum(v.get("primary") is True for v in value) <= 1
            for element in value:
                for name in element:
                    sub = attribute.sub_attribute(name)
                    assert sub is not None and sub.name == name
    assert "password" not in document


def scorch(value: Any) -> None:
    """Empty every list and dict inside ``value``."""
    if isinstance(value, dict):
        for item in value.values():
            scorch(item)
        value.clear()
    elif isinstance(value, list):
        for item in value:
            scorch(item)
        value.clear()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=CASES)
def test_random_patches_raise_only_scim_errors_and_never_mutate(
    case: tuple[tuple[dict[str, Any], ResourceType], Any],
):
    (document, resource), body = case
    document_before, body_before = copy.deepcopy(document), copy.deepcopy(body)
    try:
        result = apply_patch(document, body, resource)
    except ScimError as error:
        assert error.status == 400 and error.scim_type
    else:
        assert_canonical(result, resource)
        scorch(result)  # the result shares nothing with the input or the body
    assert document == document_before
    assert body == body_before


# -- large groups: an index serves filtered removes; it must agree with a plain scan ---------

BIG_GROUP: dict[str, Any] = {
    **GROUP,
    "members": [{"value": f"u{i}", "display": f"d{i % 7}", "type": "User"} for i in range(150)]
    + [{"value": "u3", "display": "again"}, {"value": "U3"}, {"value": "x", "display": "D1"}],
}
IDS = st.sampled_from(["u3", "U3", "u77", "x", "new"])
GROUP_OPERATIONS = st.one_of(
    st.builds(lambda v: {"op": "remove", "path": f'members[value eq "{v}"]'}, IDS),
    st.builds(
        lambda v: {"op": "remove", "path": f'members[display eq "{v}"]'},
        st.sampled_from(["d1", "D1", "again"]),
    ),
    st.builds(lambda v: {"op": "add", "path": "members", "value": [{"value": v}]}, IDS),
    st.builds(
        lambda v: {
            "op": "replace",
            "path": f'members[value eq "{v}"]',
            "value": {"display": "renamed"},
        },
        IDS,
    ),
    st.builds(lambda v: {"op": "Remove", "path": "members", "value": [{"value": v}]}, IDS),
    st.just({"op": "remove", "path": 'members[value sw "u1"]'}),
    st.just({"op": "replace", "path": "displayName", "value": "Renamed"}),
)


def outcome(operations: list[dict[str, Any]]) -> Any:
    try:
        return apply_patch(BIG_GROUP, {"Operations": operations}, GROUP_RESOURCE)
    except ScimError as error:
        return error.scim_type


@settings(max_examples=300, deadline=None)
@given(operations=st.lists(GROUP_OPERATIONS, min_size=1, max_size=12))
@example(
    operations=[  # a removed value must not be found again through the index
        {"op": "remove", "path": 'members[value eq "u3"]'},
        {"op": "replace", "path": 'members[value eq "u3"]', "value": {"display": "r"}},
    ]
)
def test_indexed_selection_agrees_with_a_scan(operations: list[dict[str, Any]]):
    indexed = outcome(operations)
    with mock.patch.object(paths, "INDEX_FROM", 10**9):
        assert outcome(operations) == indexed


def test_okta_removes_many_members_from_a_large_group():
    group = {**GROUP, "members": [{"value": f"u{i}"} for i in range(5000)]}
    result = patch(
        group,
        *({"op": "remove", "path": f'members[value eq "u{i}"]'} for i in range(0, 5000, 5)),
        resource=GROUP_RESOURCE,
    )
    assert [m["value"] for m in result["members"]] == [f"u{i}" for i in range(5000) if i % 5]
