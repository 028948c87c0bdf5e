"""New members as plain rows (store/members.py NewMember, NewValue, insert_new), on the backend
under test."""

from __future__ import annotations

import pytest

from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import members as member_store
from webwork_sso_middleware.store.members import NewMember, NewValue
from webwork_sso_middleware.store.models import Workspace

from ..store_helpers import transaction


def test_a_new_row_has_every_column_unset_but_those_given():
    member = NewMember(workspace_id=7, user_name="ada@example.com")
    assert member.workspace_id == 7
    assert member.user_name == "ada@example.com"
    unset = [c for c in member_store._MEMBER_COLUMNS if c not in ("workspace_id", "user_name")]
    assert unset and all(getattr(member, column) is None for column in unset)
    assert member.values == [] and member.memberships == []
    assert NewMember().values is not NewMember().values  # a list of its own each
    value = NewValue(attribute="emails", value="ada@example.com")
    assert (value.attribute, value.value, value.primary, value.member_id) == (
        "emails",
        "ada@example.com",
        None,
        None,
    )


def test_a_keyword_that_is_no_column_is_refused():
    with pytest.raises(TypeError, match="not a column of members: nickname$"):
        NewMember(workspace_id=1, nickname="typo")  # the column is nick_name
    with pytest.raises(TypeError, match="not a column of members: zz, aa, mm$"):
        NewMember(zz=1, workspace_id=1, aa=2, mm=3)  # as given
    with pytest.raises(TypeError, match="not a column of member_values: primari"):
        NewValue(primari=True)
    with pytest.raises(AttributeError):
        NewMember().nickname = "x"  # slots: no stray attributes


def test_insert_new_stores_the_member_and_its_values_as_given(database: Database):
    with transaction(database, write=True) as unit:
        unit.session.add(
            Workspace(id=1, slug="acme", name="Acme", plan="plus", owner_email="o@acme.example")
        )
    member = NewMember(workspace_id=1, source="scim", user_name="Ada@Acme.example")
    member.user_name_key = "ada@acme.example"
    member.title = "Engineer"
    member.values = [
        NewValue(attribute="emails", position=0, value="ada@acme.example", primary=True),
        NewValue(attribute="phoneNumbers", position=0, value="+1 555", primary=False),
    ]
    with transaction(database, write=True) as unit:
        member_store.insert_new(unit, member)
    assert member.id and member.version == 1 and member.active is True  # the model's defaults
    with transaction(database) as unit:
        stored = member_store.read(unit, 1, member.id)
    assert stored.row.user_name == "Ada@Acme.example"
    assert stored.row.title == "Engineer"
    assert stored.row.extensions is None  # SQL NULL, not JSON null
    assert sorted((v.attribute, v.value, v.primary) for v in stored.values) == [
        ("emails", "ada@acme.example", True),
        ("phoneNumbers", "+1 555", False),
    ]
