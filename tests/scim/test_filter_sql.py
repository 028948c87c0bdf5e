"""The SQL compiler of SCIM filters (scim/filter_sql.py): every attribute path the server
publishes, the 1,024-character value keys, and what a filter must never reach.

Members and groups are written as SCIM writes them (scim/resources.py) and searched through
the store's own pages (store/members.page, store/groups.page), which add workspace scoping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from webwork_sso_middleware.scim.errors import ScimError
from webwork_sso_middleware.scim.filters import compile_filter, parse_filter
from webwork_sso_middleware.scim.resources import write_group_fields
from webwork_sso_middleware.scim.schemas import (
    COMMON_ATTRIBUTES,
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    USER_RESOURCE,
    Attribute,
    ResourceType,
)
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import groups as group_store
from webwork_sso_middleware.store import members as member_store
from webwork_sso_middleware.store.models import Group, Member, Membership, MemberValue, Workspace

from .test_filters import _written_user, at

ACME, OTHER = 1, 2  # the workspace searched, and one whose rows must never be found
EARLY = at("2024-01-01T00:00:00+00:00")
LATE = "2031-02-03T04:05:06Z"  # the instant the holder of a meta.* path was created/modified


# -- the attribute paths the server publishes --------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FilterPath:
    """One leaf attribute as a client writes it in a filter."""

    text: str  # URN-qualified for the enterprise extension, whose names the core does not resolve
    canonical: str  # AttributePath.canonical: "name.givenName", "emails.value", "employeeNumber"
    attribute: Attribute  # the leaf
    parent: Attribute | None  # the complex attribute holding it, if any


def filter_paths(resource: ResourceType) -> list[FilterPath]:
    """Every leaf path of ``resource``'s schemas a filter may name (not the returned=never ones)."""
    paths: list[FilterPath] = []
    for schema in resource.schemas:
        urn = "" if schema is resource.schema else schema.id + ":"
        attributes = schema.attributes + (COMMON_ATTRIBUTES if schema is resource.schema else ())
        for attribute in attributes:
            if attribute.returned == "never":
                continue
            if attribute.type != "complex":
                paths.append(FilterPath(urn + attribute.name, attribute.name, attribute, None))
                continue
            for sub in attribute.sub_attributes:
                canonical = f"{attribute.name}.{sub.name}"
                paths.append(FilterPath(urn + canonical, canonical, sub, attribute))
    return paths


USER_PATHS = filter_paths(USER_RESOURCE)
GROUP_PATHS = filter_paths(GROUP_RESOURCE)
# Paths no column holds: filtering on them is refused (invalidFilter), never silently empty.
UNFILTERABLE = {"meta.location", "meta.version", "groups.$ref", "manager.$ref", "members.$ref"}
# Paths whose value is the same on every row (filter_sql.Constant).
CONSTANT = {"meta.resourceType", "groups.type", "members.type"}


def test_the_paths_are_those_the_server_publishes() -> None:
    """The lists the tests below walk hold what they should, so those tests cannot pass empty."""
    user = {path.canonical for path in USER_PATHS}
    assert user >= {
        "id", "externalId", "userName", "displayName", "nickName", "profileUrl", "title", "userType",
        "preferredLanguage", "locale", "timezone", "active", "meta.created", "meta.lastModified",
        "meta.resourceType", "employeeNumber", "costCenter", "organization", "division",
        "department", "manager.value", "manager.displayName", "groups.value", "groups.display",
        "groups.type", "addresses.streetAddress", "addresses.country", "addresses.primary",
        *(f"name.{sub}" for sub in ("formatted", "familyName", "givenName", "middleName",
                                    "honorificPrefix", "honorificSuffix")),
        *(f"{multi}.{sub}" for multi in ("emails", "phoneNumbers", "ims", "photos", "entitlements",
                                         "roles", "x509Certificates")
          for sub in ("value", "display", "type", "primary")),
    }
    assert "password" not in user
    assert {path.canonical for path in GROUP_PATHS} >= {
        "id", "externalId", "displayName", "meta.created", "meta.lastModified",
        "meta.resourceType", "members.value", "members.display", "members.type",
    }


# -- helpers -----------------------------------------------------------------------------------

def held(index: int) -> str:
    """The value the holder of path ``index`` has there: mixed case, found nowhere else."""
    return f"Vq{index:02d}-Xy"


def other(index: int) -> str:
    """The bystander's value at path ``index``: assigned, but not the one asked for."""
    return f"Nb{index:02d}-Zz"


def users_found(database: Database, text: str) -> set[str]:
    """The ids of workspace ACME's visible members that ``text`` selects, as the store pages them."""
    where = compile_filter(parse_filter(text), USER_RESOURCE)
    with database.transaction() as session:
        _, records = member_store.page(session.connection(), ACME, where=where, order_by=[],
                                       offset=0, limit=1000)
    return {record.row.id for record in records}


def groups_found(database: Database, text: str) -> set[str]:
    """The ids of workspace ACME's groups that ``text`` selects, as the store pages them."""
    where = compile_filter(parse_filter(text), GROUP_RESOURCE)
    with database.transaction() as session:
        _, groups = group_store.page(session, ACME, where=where, order_by=[], offset=0, limit=1000)
        return {group.id for group in groups}


def refused(resource: ResourceType, text: str) -> str:
    """The message of the invalidFilter error compiling ``text`` raises."""
    with pytest.raises(ScimError) as caught:
        compile_filter(parse_filter(text), resource)
    assert caught.value.scim_type == "invalidFilter"
    return str(caught.value)


def string_cases(path: FilterPath, value: str, holder: str, assigned: set[str],
                 everyone: set[str]) -> list[tuple[str, set[str]]]:
    """(filter, expected ids) for a string path where ``holder`` alone has ``value``;
    ``assigned``: who has the path assigned at all."""
    p = path.text
    # groups.value is a group id: compared exactly, as ids are (test_filters: "ids are caseExact").
    exact = path.attribute.case_exact or path.canonical == "groups.value"
    cases = [
        (f'{p} eq "{value}"', {holder}),
        (f'{p} eq "{value.swapcase()}"', set() if exact else {holder}),
        (f'{p} co "{value[1:6]}"', {holder}),
        (f'{p} co "{value[1:6].swapcase()}"', set() if exact else {holder}),
        (f'{p} sw "{value[:4].swapcase()}"', set() if exact else {holder}),
        (f'{p} ew "{value[-5:].swapcase()}"', set() if exact else {holder}),
        (f'{p} sw "{value[:4]}"', {holder}),
        (f'{p} ew "{value[-5:]}"', {holder}),
        (f'{p} ne "{value}"', assigned - {holder}),
        (f'not ({p} eq "{value}")', everyone - {holder}),
        (f"{p} pr", assigned),
        (f"not ({p} pr)", everyone - assigned),
        (f"{p} eq null", everyone - assigned),
        (f"{p} ne null", assigned),
        # LIKE's wildcards are characters like any other in an operand.
        (f'{p} co "%"', set()),
        (f'{p} sw "_"', set()),
        (f'{p} ew "%"', set()),
    ]
    if path.parent is not None and path.parent.multi_valued:
        cases.append((f'{path.parent.name}[{path.attribute.name} eq "{value}"]', {holder}))
    return cases


def datetime_cases(p: str, holder: str, everyone: set[str]) -> list[tuple[str, set[str]]]:
    """(filter, expected ids) for a dateTime path where ``holder`` alone is at LATE, the others
    years before; an operand to the second stands for that whole second."""
    return [
        (f'{p} eq "{LATE}"', {holder}),
        (f'{p} ne "{LATE}"', everyone - {holder}),
        (f'{p} gt "{LATE}"', set()),
        (f'{p} ge "{LATE}"', {holder}),
        (f'{p} lt "{LATE}"', everyone - {holder}),
        (f'{p} le "{LATE}"', everyone),
        (f'{p} gt "2030-01-01T00:00:00Z"', {holder}),
        (f'{p} le "2030-01-01T00:00:00Z"', everyone - {holder}),
        (f"{p} pr", everyone),
        (f"not ({p} pr)", set()),
    ]


def check(found: Callable[[str], set[str]], cases: list[tuple[str, set[str]]]) -> None:
    """Run every case; report all the wrong ones at once (a path left out shows as one line)."""
    wrong = []
    for text, expected in cases:
        try:
            got = found(text)
        except ScimError as error:
            wrong.append(f"{text}: refused ({error})")
            continue
        if got != expected:
            wrong.append(f"{text}: found {sorted(got)}, expected {sorted(expected)}")
    assert not wrong, "\n".join(wrong)


# -- Users: every path ---------------------------------------------------------------------------

def _doc_with(path: FilterPath, value: Any) -> dict[str, Any]:
    """The part of a SCIM User document that puts ``value`` at ``path`` (client-writable paths)."""
    leaf = path.attribute.name
    if path.parent is None:
        part: dict[str, Any] = {leaf: value}
    elif path.parent.multi_valued:
        part = {path.parent.name: [{leaf: value}]}
    else:
        part = {path.parent.name: {leaf: value}}
    return {ENTERPRISE_USER_SCHEMA: part} if path.text.startswith(ENTERPRISE_USER_SCHEMA) else part


def _merged(*parts: dict[str, Any]) -> dict[str, Any]:
    """Documents merged the way one member holds all of them (lists and objects joined)."""
    doc: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                doc[key] = _merged(doc.get(key, {}), value)
            elif isinstance(value, list):
                doc[key] = [{**(doc.get(key) or [{}])[0], **value[0]}]
            else:
                doc[key] = value
    return doc


SERVER_SET = {"id", "meta.created", "meta.lastModified", "groups.value", "groups.display"}


def _user_kind(path: FilterPath) -> str:
    if path.canonical in UNFILTERABLE:
        return "unfilterable"
    if path.canonical in CONSTANT:
        return "constant"
    if path.canonical in SERVER_SET:
        return "server"
    return path.attribute.type


@pytest.fixture
def user_holders(database: Database) -> Iterator[Database]:
    """In ACME: for each path i, a member ``h<i>`` holding held(i) there and nothing else, and a
    bystander ``by`` holding other(i) at every path. In OTHER: a twin of each holder, and a member
    holding every held(i) at once. Plus a deleted ACME member holding every held(i) too."""
    with database.transaction(write=True) as session:
        for workspace, slug in ((ACME, "acme"), (OTHER, "other")):
            session.add(Workspace(id=workspace, slug=slug, name=slug, plan="plus",
                                  owner_email=f"o@{slug}.example"))
        session.flush()
        bystander_parts, holder_parts = [], []
        made: list[tuple[int, str, Member]] = []
        for index, path in enumerate(USER_PATHS):
            kind = _user_kind(path)
            if kind in ("unfilterable", "constant"):
                continue
            value: Any = held(index) if kind != "boolean" else not _default(path)
            doc = {"userName": f"h{index:02d}@acme.test"}
            # Server-set values (id, timestamps, groups) are set by _server_set, below.
            if path.canonical == "userName":
                doc = {"userName": held(index)}
                bystander_parts.append({"userName": "by@acme.test"})
            elif kind != "server":
                doc = _merged(doc, _doc_with(path, value))
                bystander_parts.append(_doc_with(path, other(index) if kind != "boolean"
                                                 else _default(path)))
                holder_parts.append(_doc_with(path, value))
            for workspace, member_id in ((ACME, f"h{index:02d}"), (OTHER, f"twin{index:02d}")):
                if path.canonical == "id":
                    member_id = held(index) if workspace == ACME else member_id
                member = _written_user(session, member_id, doc)
                member.workspace_id = workspace
                made.append((index, path.canonical, member))
        bystander = _written_user(session, "by", _merged({"userName": "by@acme.test"},
                                                         *bystander_parts))
        everything = _merged({"userName": "all@acme.test"}, *holder_parts)
        deleted = _written_user(session, "deleted", everything)
        deleted.deleted_at = EARLY
        elsewhere = _written_user(session, "elsewhere", everything)
        elsewhere.workspace_id = OTHER
        session.flush()
        _server_set(session, made, bystander, [deleted, elsewhere])
    yield database


def _default(path: FilterPath) -> bool:
    """What SCIM writes for a boolean left out: active True, primary False."""
    return path.canonical == "active"


def _server_set(session: Any, made: list[tuple[int, str, Member]], bystander: Member,
                everything: list[Member]) -> None:
    """The values no client writes: timestamps, and groups (through memberships)."""
    for index, canonical, member in made:
        if canonical in ("meta.created", "meta.lastModified"):
            column = "created_at" if canonical == "meta.created" else "modified_at"
            setattr(member, column, at(LATE.replace("Z", "+00:00")))
        if canonical in ("groups.value", "groups.display"):
            group_id = held(index) if canonical == "groups.value" else f"g{member.id}"
            name = held(index) if canonical == "groups.display" else f"group of {member.id}"
            group = Group(id=group_id if member.workspace_id == ACME else f"{group_id}-2",
                          workspace_id=member.workspace_id, display_name=name,
                          display_name_key=name.lower(), created_at=EARLY, modified_at=EARLY)
            session.add(group)
            session.flush()
            session.add(Membership(group_id=group.id, member_id=member.id))
            if member.workspace_id == ACME:
                for someone in everything:
                    session.add(Membership(group_id=group.id, member_id=someone.id))
    for index, path in enumerate(USER_PATHS):
        if path.canonical in ("groups.value", "groups.display"):
            session.add(Group(id=other(index), workspace_id=ACME, display_name=other(index),
                              display_name_key=other(index).lower(), created_at=EARLY,
                              modified_at=EARLY))
            session.flush()
            session.add(Membership(group_id=other(index), member_id=bystander.id))


def test_every_user_path_finds_its_holder_only(user_holders: Database) -> None:
    """eq, co, sw, ew, ne, pr and their negations, on each path: the member holding the value,
    never the bystander, another workspace's twin, or a deleted member holding the same."""
    everyone = users_found(user_holders, "id pr")
    assert len(everyone) > 60 and {"by", "h01"} <= everyone
    assert everyone.isdisjoint({"deleted", "elsewhere"}) and not any(i.startswith("twin") for i in everyone)
    checked = set()
    cases: list[tuple[str, set[str]]] = []
    for index, path in enumerate(USER_PATHS):
        kind = _user_kind(path)
        holder = held(index) if path.canonical == "id" else f"h{index:02d}"
        p = path.text
        if kind in ("unfilterable", "constant"):
            continue
        checked.add(path.canonical)
        if kind == "boolean":
            value = str(not _default(path)).lower()
            # active is on every member; a primary on each value of its attribute (siblings').
            assigned = everyone if path.parent is None else {"by", *(
                f"h{i:02d}" for i, q in enumerate(USER_PATHS)
                if q.parent is path.parent and _user_kind(q) not in ("unfilterable", "constant"))}
            cases += [(f"{p} eq {value}", {holder}),
                      (f"not ({p} eq {value})", everyone - {holder}),
                      (f"{p} ne {value}", assigned - {holder}),
                      (f"{p} pr", assigned)]
            continue
        if path.canonical in ("meta.created", "meta.lastModified"):
            cases += datetime_cases(p, holder, everyone)
            continue
        if path.canonical in ("id", "userName"):
            assigned = everyone
        elif path.canonical in ("groups.value", "groups.display"):
            assigned = {holder, "by", *(f"h{i:02d}" for i, q in enumerate(USER_PATHS)
                                        if q.canonical in ("groups.value", "groups.display"))}
        else:
            assigned = {holder, "by"}
        cases += string_cases(path, held(index), holder, assigned, everyone)
    assert checked >= {"emails.value", "addresses.country", "groups.display", "manager.value",
                       "active", "meta.created", "id", "userName"}
    # A single-valued complex attribute: present when one of its parts is; [...] on its parts.
    for parent in ("name", f"{ENTERPRISE_USER_SCHEMA}:manager"):
        parts = {(f"h{i:02d}", q.attribute.name) for i, q in enumerate(USER_PATHS)
                 if q.text.startswith(parent + ".") and q.canonical not in UNFILTERABLE}
        assert len(parts) >= 2
        holders = {holder for holder, _ in parts}
        cases += [(f"{parent} pr", holders | {"by"}), (f"not ({parent} pr)", everyone - holders - {"by"})]
        cases += [(f'{parent}[{sub} eq "{held(int(holder[1:]))}"]', {holder}) for holder, sub in parts]
    cases += [("meta pr", everyone), ("not (meta pr)", set())]
    # A multi-valued attribute is present when it has a value, whichever parts that value has.
    for parent in {q.parent.name for q in USER_PATHS if q.parent is not None and q.parent.multi_valued}:
        with_rows = {"by", *(f"h{i:02d}" for i, q in enumerate(USER_PATHS) if q.parent is not None
                             and q.parent.name == parent and _user_kind(q) not in ("unfilterable", "constant"))}
        cases += [(f"{parent} pr", with_rows), (f"not ({parent} pr)", everyone - with_rows)]
    # The constants: the same on every row, so a filter on them finds all or nothing.
    in_groups = {"by", *(f"h{i:02d}" for i, q in enumerate(USER_PATHS)
                         if q.canonical in ("groups.value", "groups.display"))}
    cases += [
        ('meta.resourceType eq "User"', everyone),
        ('meta.resourceType eq "user"', set()),  # caseExact
        ('meta.resourceType eq "Group"', set()),
        ('meta.resourceType ne "User"', set()),
        ("meta.resourceType pr", everyone),
        ('groups.type eq "direct"', in_groups),  # groups do not nest
        ('groups.type eq "indirect"', set()),
        ('groups[type eq "direct" and display eq "Nb00-Zz"]', set()),
        ("groups pr", in_groups),
    ]
    check(lambda text: users_found(user_holders, text), cases)


@pytest.mark.parametrize("resource, text, message", [
    (USER_RESOURCE, 'title[value eq "x"]', "'title' is not a complex attribute"),
    (USER_RESOURCE, 'name.givenName[value eq "x"]', "is not a complex attribute"),
    (USER_RESOURCE, 'emails.value[value eq "x"]', "is not a complex attribute"),
    (USER_RESOURCE, 'name eq "x"', "name is complex; filter on a sub-attribute such as name.formatted"),
    (USER_RESOURCE, 'addresses eq "x"', "filter on a sub-attribute of addresses, such as addresses.formatted"),
    (USER_RESOURCE, 'nosuch eq "x"', "unknown attribute 'nosuch' (for User resources)"),
    (USER_RESOURCE, 'password eq "x"', "password cannot be used in filters"),
    (USER_RESOURCE, 'emails[nosuch eq "x"]', "unknown attribute 'nosuch' in a filter on emails"),
    (USER_RESOURCE, 'name[nosuch eq "x"]', "unknown attribute 'nosuch' in a filter on name"),
    (GROUP_RESOURCE, 'userName eq "x"', "unknown attribute 'userName' (for Group resources)"),
])
def test_filters_the_tables_cannot_answer_are_refused(resource: ResourceType, text: str,
                                                      message: str) -> None:
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


# -- Groups: every path --------------------------------------------------------------------------

def _group(session: Any, group_id: str, name: str, workspace: int = ACME, **fields: Any) -> Group:
    """A group written as SCIM writes one (display name key, external id)."""
    group = Group(id=group_id, workspace_id=workspace, created_at=EARLY, modified_at=EARLY)
    write_group_fields(group, {"displayName": name, **fields})
    session.add(group)
    session.flush()
    return group


def _person(session: Any, member_id: str, *, workspace: int = ACME, **doc: Any) -> Member:
    """A member written as SCIM writes one, userName <id>@acme.test, plus ``doc``."""
    member = _written_user(session, member_id, {"userName": f"{member_id}@acme.test", **doc})
    member.workspace_id = workspace
    session.flush()
    return member


@pytest.fixture
def group_holders(database: Database) -> Iterator[Database]:
    """In ACME: for each path i a group ``g<i>`` holding held(i) there, and a bystander group
    ``gby`` holding other(i); ``g-gone`` whose only member, deleted, holds every members.* value;
    ``g-plain``, whose member has no displayName. In OTHER: twins holding the same values."""
    with database.transaction(write=True) as session:
        for workspace, slug in ((ACME, "acme"), (OTHER, "other")):
            session.add(Workspace(id=workspace, slug=slug, name=slug, plan="plus",
                                  owner_email=f"o@{slug}.example"))
        session.flush()
        index_of = {path.canonical: index for index, path in enumerate(GROUP_PATHS)}
        by_value, by_display = other(index_of["members.value"]), other(index_of["members.display"])
        bystander = _group(session, "gby", other(index_of["displayName"]),
                           externalId=other(index_of["externalId"]))
        session.add(Membership(group_id=bystander.id,
                               member_id=_person(session, by_value, displayName=by_display).id))
        gone = _person(session, "gone", displayName=held(index_of["members.display"]))
        gone.deleted_at = EARLY
        session.add(Membership(group_id=_group(session, "g-gone", "Gone").id, member_id=gone.id))
        session.add(Membership(group_id=_group(session, "g-plain", "Plain").id,
                               member_id=_person(session, "Plain", displayName=None).id))
        for index, path in enumerate(GROUP_PATHS):
            value, gid = held(index), f"g{index:02d}"
            for workspace in (ACME, OTHER):
                if workspace == OTHER:
                    gid = f"twin{index:02d}"
                if path.canonical == "id":
                    _group(session, value if workspace == ACME else gid, f"{gid} group", workspace)
                elif path.canonical == "externalId":
                    _group(session, gid, f"{gid} group", workspace, externalId=value)
                elif path.canonical == "displayName":
                    _group(session, gid, value, workspace)
                elif path.canonical in ("meta.created", "meta.lastModified"):
                    group = _group(session, gid, f"{gid} group", workspace)
                    column = "created_at" if path.canonical == "meta.created" else "modified_at"
                    setattr(group, column, at(LATE.replace("Z", "+00:00")))
                elif path.canonical in ("members.value", "members.display"):
                    group = _group(session, gid, f"{gid} group", workspace)
                    member_id = value if workspace == ACME else f"m-{gid}"
                    display = value if path.canonical == "members.display" else None
                    if path.canonical == "members.value" or workspace == OTHER:
                        display = display or f"member of {gid}"
                    session.add(Membership(group_id=group.id, member_id=_person(
                        session, member_id if path.canonical == "members.value" else f"m-{gid}",
                        workspace=workspace, displayName=display).id))
    yield database


def test_every_group_path_finds_its_holder_only(group_holders: Database) -> None:
    """As for Users: each path finds the group holding the value, not the bystander, another
    workspace's twin, nor a group whose only member holding it is deleted."""
    everyone = groups_found(group_holders, "id pr")
    assert {"gby", "g-gone", "g-plain", "g00"} <= everyone
    assert not any(group.startswith("twin") for group in everyone)
    with_members = {"gby", "g-plain"} | {
        f"g{i:02d}" for i, path in enumerate(GROUP_PATHS)
        if path.canonical in ("members.value", "members.display")}
    cases: list[tuple[str, set[str]]] = [
        ("members pr", with_members),
        ("not (members pr)", everyone - with_members),
        ('members.display eq "plain@ACME.test"', {"g-plain"}),  # no displayName: the userName
        ('members.value eq "gone"', set()),  # a deleted member is in no group SCIM shows
        ('members.display eq "gone@acme.test"', set()),
    ]
    checked = set()
    for index, path in enumerate(GROUP_PATHS):
        holder = held(index) if path.canonical == "id" else f"g{index:02d}"
        p = path.text
        if path.canonical in UNFILTERABLE | CONSTANT:
            continue
        checked.add(path.canonical)
        if path.canonical in ("meta.created", "meta.lastModified"):
            cases += datetime_cases(p, holder, everyone)
            continue
        if path.canonical in ("id", "displayName"):
            assigned = everyone
        elif path.canonical.startswith("members."):
            assigned = with_members
        else:
            assigned = {holder, "gby"}
        cases += string_cases(path, held(index), holder, assigned, everyone)
    assert checked == {"id", "externalId", "displayName", "meta.created", "meta.lastModified",
                       "members.value", "members.display"}
    cases += [
        ('meta.resourceType eq "Group"', everyone),
        ('meta.resourceType eq "User"', set()),
        ('members.type eq "User"', with_members),
        ('members.type eq "Group"', set()),
        ('members[type eq "User" and value eq "gone"]', set()),
    ]
    check(lambda text: groups_found(group_holders, text), cases)


# -- values around the 1,024 characters of member_values.value_key, beyond ASCII ---------------
#
# value_key holds value.lower()[:1024], lowered by Python. A value no longer than the key is
# compared through it, so its case folds on every backend (SQLite's lower() folds ASCII only);
# only a value that may have been cut is compared whole. tests/scim/test_filters.py walks
# the lengths around the cut with ASCII values, where both ways give the same answer.

UNICODE = "Éa" * 600
ASCII = "Qz" * 600
KEYED = {"c1022": ("x509Certificates", UNICODE[:1022]), "c1023": ("x509Certificates", UNICODE[:1023]),
         "r1024": ("roles", UNICODE[:1024]), "r1025": ("roles", UNICODE[:1025]),
         "e1024": ("entitlements", ASCII[:1024]), "e1025": ("entitlements", ASCII[:1025])}


@pytest.fixture
def unicode_values(database: Database) -> Iterator[Database]:
    """Members holding each value of KEYED, as a certificate, role or entitlement."""
    with database.transaction(write=True) as session:
        session.add(Workspace(id=ACME, slug="acme", name="Acme", plan="plus",
                              owner_email="o@acme.example"))
        session.flush()
        for member_id, (attribute, value) in KEYED.items():
            values: dict[str, Any] = {attribute: [{"value": value}]}
            member = _person(session, member_id, **values)
            assert len(member.values[0].value_key or "") == min(len(value), 1024)
    yield database


def test_values_the_key_holds_whole_compare_by_the_key(unicode_values: Database) -> None:
    lowered = UNICODE.lower()
    check(lambda text: users_found(unicode_values, text), [
        (f'x509Certificates eq "{lowered[:1022]}"', {"c1022"}),
        (f'x509Certificates eq "{lowered[:1023]}"', {"c1023"}),
        (f'x509Certificates eq "{UNICODE[:1023]}"', {"c1023"}),
        (f'x509Certificates ne "{lowered[:1023]}"', {"c1022"}),
        (f'x509Certificates sw "{lowered[:1022]}"', {"c1022", "c1023"}),
        (f'x509Certificates sw "{lowered[:1023]}"', {"c1023"}),
        (f'x509Certificates co "éaé"', {"c1022", "c1023"}),
        (f'x509Certificates ew "aéa"', {"c1022"}),
        (f'x509Certificates ew "éaé"', {"c1023"}),
        # 1,024 characters: all a key holds, so an operand that long may only start a value.
        (f'roles sw "{lowered[:1024]}"', {"r1024", "r1025"}),
        # Past the key only the whole value tells (through SQL lower(): ASCII here, see above).
        (f'entitlements eq "{ASCII[:1024].lower()}"', {"e1024"}),
        (f'entitlements ne "{ASCII[:1024]}"', {"e1025"}),
        (f'entitlements sw "{ASCII[:1024]}"', {"e1024", "e1025"}),
        (f'entitlements sw "{ASCII[:1025]}"', {"e1025"}),
        ('entitlements ew "ZQ"', {"e1025"}),  # its last two characters: one past the key
        ('entitlements co "zqzq"', {"e1024", "e1025"}),
    ])


def test_non_strings_are_never_compared_with_the_empty_string() -> None:
    """Only strings can be "" (unassigned): PostgreSQL refuses to compare a boolean or a
    timestamp with '', which SQLite would quietly do."""
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    texts = ["active pr", "active eq true", "not (active ne false)", "emails.primary pr",
             'emails[primary eq true]', "meta.created pr", 'meta.lastModified gt "2024-01-01"']
    for text in texts:
        query = select(Member.id).where(compile_filter(parse_filter(text), USER_RESOURCE))
        sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        assert "''" not in sql, (text, sql)
    query = select(Member.id).where(compile_filter(parse_filter("title pr"), USER_RESOURCE))
    assert "''" in str(query.compile(dialect=postgresql.dialect(),
                                     compile_kwargs={"literal_binds": True}))  # the premise


def test_the_sql_names_every_table_it_aliases() -> None:
    """The group/member subqueries alias their tables (so they never correlate with an outer
    query over the same table): PostgreSQL refuses a zero-length alias, which SQLite accepts."""
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    for resource, model, text in (
        (USER_RESOURCE, Member, 'groups[display eq "a" and value eq "b"]'),
        (GROUP_RESOURCE, Group, 'members[display eq "a" and value eq "b"]'),
    ):
        query = select(model.id).where(compile_filter(parse_filter(text), resource))
        sql = str(query.compile(dialect=postgresql.dialect()))
        assert " AS " in sql and '""' not in sql, sql


# -- empty strings: unassigned (RFC 7643 2.5), whatever the operator ---------------------------

@pytest.fixture
def blanks(database: Database) -> Iterator[Database]:
    """``blank`` holds empty strings (as rows stored before SCIM wrote "" as NULL did), ``set``
    holds "Mid", ``unset`` holds nothing, in a title and in an email's value and type."""
    with database.transaction(write=True) as session:
        session.add(Workspace(id=ACME, slug="acme", name="Acme", plan="plus",
                              owner_email="o@acme.example"))
        session.flush()
        for member_id, text in (("blank", ""), ("set", "Mid"), ("unset", None)):
            member = _person(session, member_id)
            member.title = text
            if text is not None:
                member.values = [MemberValue(attribute="emails", position=0, value=text,
                                             value_key=text.lower(), type=text)]
    yield database


def test_empty_strings_are_unassigned_for_every_operator(blanks: Database) -> None:
    """No comparison holds for "" (not even ne, gt, or co "") and pr does not, so not() of
    any of them holds: on a column, on a multi-valued attribute, and inside a value filter."""
    terms: list[tuple[str, set[str]]] = [
        ("{} pr", {"set"}),
        ('{} eq ""', set()), ('{} ne ""', {"set"}), ('{} ne "zzz"', {"set"}),
        ('{} co ""', {"set"}), ('{} sw ""', {"set"}), ('{} ew ""', {"set"}),
        ('{} gt ""', {"set"}), ('{} ge ""', {"set"}), ('{} lt "zzz"', {"set"}),
        ('{} le "zzz"', {"set"}),
    ]
    cases: list[tuple[str, set[str]]] = []
    for form in ("title", "emails.value", "emails.type", "emails[type]"):
        for term, expected in terms:
            text = (f"emails[{term.format('type')}]" if form == "emails[type]"
                    else term.format(form))
            cases += [(text, expected), (f"not ({text})", {"blank", "set", "unset"} - expected)]
    check(lambda text: users_found(blanks, text), cases)


def test_the_shared_attribute_maps_cannot_be_changed_in_place() -> None:
    """The maps are module-level and every request on every thread compiles with them: a
    target assigned to by one compile would change what another's filter means."""
    from webwork_sso_middleware.scim import filter_sql

    targets = [target for table in (filter_sql.USER_COLUMNS, filter_sql.GROUP_COLUMNS)
               for target in table.values()]
    rows = [*filter_sql.USER_ROWS.values(), *filter_sql.GROUP_ROWS.values()]
    targets += [target for row in rows for target in row.columns.values()]
    kinds = {type(target) for target in targets} | {type(row) for row in rows}
    assert kinds == {filter_sql.Stored, filter_sql.Constant, filter_sql.Rows}
    for value in [*targets, *rows]:
        field = dataclasses.fields(value)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, None)
