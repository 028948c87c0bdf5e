"""Resource types answer the names clients send, and remember a bounded number of answers."""

from __future__ import annotations

from webwork_sso_middleware.scim.schemas import (
    ENTERPRISE_USER,
    ENTERPRISE_USER_SCHEMA,
    USER,
    ResourceType,
    _Answers,
)


def fresh_user_type() -> ResourceType:
    # Not USER_RESOURCE: its remembered answers are shared by every test in this process.
    return ResourceType("User", "Users", USER, (ENTERPRISE_USER,), open_extensions=True)


def test_a_remembered_answer_is_the_one_worked_out():
    user = fresh_user_type()
    paths = [
        "userName",
        "USERNAME",
        "name.givenName",
        "emails",
        "meta",
        f"{ENTERPRISE_USER_SCHEMA}:department",
        f"{ENTERPRISE_USER_SCHEMA}:customThing",
        "urn:example:custom:2.0:User:badge",
        "nosuchattribute",
        "name.nosuch",
        "name.givenName.more",
    ]
    for path in paths:
        first = user.resolve(path)
        assert first == user._resolve(path)
        assert user.resolve(path) == first  # now from memory
    assert user.resolve("userName").attribute.name == "userName"
    assert user.resolve("USERNAME") == user.resolve("userName")
    assert user.resolve("nosuchattribute") is None
    for urn, given in [
        (ENTERPRISE_USER_SCHEMA, True),
        ("urn:example:custom:2.0:User", False),
        ("urn:example:custom", True),
        ("urn:example:custom", False),
        ("userName", False),
    ]:
        first = user.extension_by_urn(urn, object_given=given)
        assert first == user._extension_by_urn(urn, given)
        assert user.extension_by_urn(urn, object_given=given) == first
    assert user.extension_by_urn("urn:example:custom", object_given=True) is not None
    assert user.extension_by_urn("urn:example:custom", object_given=False) is None
    # Kept as sent: names that differ in case are remembered apart.
    for spelling in ("badge", "Badge", "BADGE"):
        assert user.resolve(f"urn:example:custom:2.0:User:{spelling}").attribute.name == spelling


def test_a_client_inventing_names_cannot_grow_the_memory_nor_keep_it_full():
    user = fresh_user_type()
    user.resolve("displayName")
    many = 3 * _Answers.MAX_ENTRIES + 7
    for n in range(many):
        assert user.resolve(f"invented{n}") is None
        user.extension_by_urn(f"urn:example:invented{n}:2.0:User", object_given=False)
        assert len(user._paths_found) <= _Answers.MAX_ENTRIES
        assert len(user._extensions_found) <= _Answers.MAX_ENTRIES
    assert len(user._paths_found) == (many + 1) % _Answers.MAX_ENTRIES  # it started afresh
    # The names real clients send are answered, and remembered again after the flood.
    assert "displayName" not in user._paths_found
    assert user.resolve("displayName").attribute.name == "displayName"
    assert "displayName" in user._paths_found

    long_name = "x" * (_Answers.MAX_KEY + 1)
    other = fresh_user_type()
    assert other.resolve(long_name) is None
    assert long_name not in other._paths_found
    assert other.resolve("x" * _Answers.MAX_KEY) is None
    assert "x" * _Answers.MAX_KEY in other._paths_found
