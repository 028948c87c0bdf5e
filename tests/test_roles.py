"""Groups and roles (roles.py) end to end over real HTTP: groups read from the assertion
(Okta-style, Entra-style, generic) combined with SCIM groups, roles mapped from either, the
default role, a role the host no longer declares, a role change reaching another worker within
session_recheck_seconds, and a hostile second workspace that must change nothing of A's."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.admin.diagnostics import recent_failures
from webwork_sso_middleware.roles import (
    MAX_ASSERTED_GROUPS,
    clean_asserted_groups,
    member_groups,
    member_roles,
    role_key,
)

from .admin.conftest import sign_in
from .saml.conftest import Site
from .saml.idp import TestIdP, default_attributes

ROLES = ["admin", "member", "viewer"]
ENTRA_GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
SECRET = "s3cret-padded-to-thirty-two-bytes-at-least"


def whoami_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A host app that shows what it is told about the member."""
    member = environ.get("webwork_sso.member")
    body = {
        "user": environ.get("REMOTE_USER"),
        "groups": member.groups if member else None,
        "roles": member.roles if member else None,
    }
    answer = json.dumps(body).encode()
    if member is not None:
        member.roles.append("tampered")  # a host that mutates its copy changes nothing
    start_response("200 OK", [("Content-Type", "application/json")])
    return [answer]


def make_site(serve: Callable[[Any], Any], database_url: str, **options: Any) -> Site:
    site = Site(serve, database_url, **options)
    site.middleware.app = whoami_app
    return site


@pytest.fixture
def roles_site(serve: Callable[[Any], Any], database_url: str) -> Iterator[Site]:
    site = make_site(serve, database_url, roles=ROLES, default_role="viewer")
    yield site
    site.middleware.close()


def whoami(browser: requests.Session, url: str) -> dict[str, Any]:
    answer = browser.get(url + "/")
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()
    return found


def signed_in(
    site: Site, idp: TestIdP, email: str, slug: str = "acme", **attributes: list[str]
) -> requests.Session:
    idp.users[email] = {**default_attributes(email), **attributes}
    browser = requests.Session()
    response = sign_in(browser, site, idp, email, slug)
    assert response.status_code == 303, response.text
    return browser


def scim(site: Site, token: str, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(
        method,
        f"{site.url}/scim/v2{path}",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        data=json.dumps(body) if body is not None else None,
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def provision(site: Site, token: str, email: str, groups: list[str]) -> str:
    user = scim(
        site,
        token,
        "POST",
        "/Users",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email},
    )
    for group in groups:
        scim(
            site,
            token,
            "POST",
            "/Groups",
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": group,
                "members": [{"value": user["id"]}],
            },
        )
    return str(user["id"])


# -- groups read from the assertion ---------------------------------------------------------------


def test_okta_style_groups_are_read_and_replaced_at_each_sign_in(
    roles_site: Site, idp: TestIdP
) -> None:
    roles_site.add_workspace("acme", idp)
    browser = signed_in(roles_site, idp, "alice@acme.test", groups=["Engineering", "admins"])
    seen = whoami(browser, roles_site.url)
    assert seen["groups"] == ["admins", "Engineering"]  # ordered as SCIM groups are
    (alice,) = roles_site.members()
    assert alice.sign_in_groups == ["admins", "Engineering"]
    # The next sign-in's groups replace them whole.
    again = signed_in(roles_site, idp, "alice@acme.test", groups=["Sales"])
    assert whoami(again, roles_site.url)["groups"] == ["Sales"]
    assert whoami(browser, roles_site.url)["groups"] == ["Sales"]  # the other device too
    (event,) = [e for e in roles_site.audit("signed_in") if e.changes.get("groups") == ["Sales"]]
    assert event.actor == "saml"
    # An assertion without groups leaves none asserted.
    none = signed_in(roles_site, idp, "alice@acme.test")
    assert whoami(none, roles_site.url)["groups"] == []


def test_entra_style_groups_claim_is_read(roles_site: Site, idp: TestIdP) -> None:
    roles_site.add_workspace("acme", idp)
    object_ids = ["8f6b2c9e-0000-4000-8000-000000000001", "1a2b3c4d-0000-4000-8000-000000000002"]
    browser = signed_in(roles_site, idp, "bob@acme.test", **{ENTRA_GROUPS: object_ids})
    assert whoami(browser, roles_site.url)["groups"] == sorted(object_ids)


def test_generic_groups_attribute_in_any_case_is_read_and_cleaned(
    roles_site: Site, idp: TestIdP
) -> None:
    roles_site.add_workspace("acme", idp)
    browser = signed_in(
        roles_site,
        idp,
        "carol@acme.test",
        Groups=["Staff", "STAFF", "  Ops  ", "", "x" * 300, "bad\u200bname"],
    )
    # One per name as names.py compares them; blank, overlong and invisible-character ones dropped.
    assert whoami(browser, roles_site.url)["groups"] == ["Ops", "Staff"]


def test_asserted_groups_never_become_scim_groups(roles_site: Site, idp: TestIdP) -> None:
    token = roles_site.add_workspace("acme", idp)
    signed_in(roles_site, idp, "alice@acme.test", groups=["Engineering"])
    listed = scim(roles_site, token, "GET", "/Groups")
    assert listed["totalResults"] == 0


# -- roles ----------------------------------------------------------------------------------------


def test_roles_come_from_scim_and_asserted_groups_in_declared_order(
    roles_site: Site, idp: TestIdP
) -> None:
    token = roles_site.add_workspace("acme", idp)
    provision(roles_site, token, "dave@acme.test", ["Engineering"])
    roles_site.workspaces.map_role("acme", "engineering", "member", declared=ROLES, actor="t")
    roles_site.workspaces.map_role("acme", "Admins", "admin", declared=ROLES, actor="t")
    browser = signed_in(roles_site, idp, "dave@acme.test", groups=["ADMINS"])
    seen = whoami(browser, roles_site.url)
    # SCIM's and the assertion's groups combine; names match regardless of case.
    assert seen["groups"] == ["ADMINS", "Engineering"]
    assert seen["roles"] == ["admin", "member"]  # declared order, not mapping order
    assert whoami(browser, roles_site.url)["roles"] == ["admin", "member"]  # host's copy only


def test_default_role_when_no_group_maps(roles_site: Site, idp: TestIdP) -> None:
    roles_site.add_workspace("acme", idp)
    roles_site.workspaces.map_role("acme", "Admins", "admin", declared=ROLES, actor="t")
    browser = signed_in(roles_site, idp, "erin@acme.test", groups=["Sales"])
    assert whoami(browser, roles_site.url)["roles"] == ["viewer"]


def test_no_roles_declared_means_no_roles(
    serve: Callable[[Any], Any], database_url: str, idp: TestIdP
) -> None:
    site = make_site(serve, database_url)
    try:
        site.add_workspace("acme", idp)
        site.workspaces.map_role("acme", "Admins", "admin", declared=None, actor="t")
        browser = signed_in(site, idp, "alice@acme.test", groups=["Admins"])
        assert whoami(browser, site.url) == {
            "user": "alice@acme.test",
            "groups": ["Admins"],
            "roles": [],
        }
    finally:
        site.middleware.close()


def test_a_role_the_host_no_longer_declares_is_ignored(
    serve: Callable[[Any], Any], database_url: str, idp: TestIdP
) -> None:
    before = make_site(serve, database_url, roles=["admin", "auditor"])
    before.add_workspace("acme", idp)
    before.workspaces.map_role("acme", "Audit", "auditor", declared=["admin", "auditor"], actor="t")
    before.workspaces.map_role("acme", "Admins", "admin", declared=["admin", "auditor"], actor="t")
    before.middleware.close()
    after = make_site(serve, database_url, roles=["admin", "member"], default_role="member")
    try:
        idp.sp_config(after.entity_id("acme"), after.acs("acme"))
        browser = signed_in(after, idp, "alice@acme.test", groups=["Audit"])
        assert whoami(browser, after.url)["roles"] == ["member"]  # auditor: ignored
    finally:
        after.middleware.close()


def test_a_role_change_reaches_another_worker_within_the_recheck(
    serve: Callable[[Any], Any], database_url: str, idp: TestIdP
) -> None:
    recheck = 0.5
    first = make_site(serve, database_url, roles=ROLES, session_recheck_seconds=recheck)
    other = SSOMiddleware(
        whoami_app,
        database_url=database_url,
        secret_key=SECRET,
        base_url=first.url,
        roles=ROLES,
        session_recheck_seconds=recheck,
    )
    other_url = serve(other).url
    try:
        token = first.add_workspace("acme", idp)
        provision(first, token, "dave@acme.test", [])
        browser = signed_in(first, idp, "dave@acme.test", groups=["Staff"])
        assert whoami(browser, other_url)["roles"] == []

        def roles_elsewhere_become(expected: list[str]) -> float:
            started = time.monotonic()
            while whoami(browser, other_url)["roles"] != expected:
                assert time.monotonic() - started < recheck + 2, expected
                time.sleep(0.05)
            return time.monotonic() - started

        # The owner maps a group (this worker hears at once, the other within its recheck).
        first.workspaces.map_role("acme", "Staff", "member", declared=ROLES, actor="t")
        assert whoami(browser, first.url)["roles"] == ["member"]
        assert roles_elsewhere_become(["member"]) <= recheck + 1
        # SCIM adds the member to a mapped group.
        first.workspaces.map_role("acme", "Admins", "admin", declared=ROLES, actor="t")
        (dave,) = [m for m in first.members() if m.user_name == "dave@acme.test"]
        scim(
            first,
            token,
            "POST",
            "/Groups",
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Admins",
                "members": [{"value": dave.id}],
            },
        )
        roles_elsewhere_become(["admin", "member"])
        # Unmapped again.
        first.workspaces.unmap_role("acme", "staff", actor="t")
        roles_elsewhere_become(["admin"])
    finally:
        other.close()
        first.middleware.close()


def test_a_hostile_workspace_changes_no_groups_or_roles_of_another(
    roles_site: Site, idp: TestIdP, second_idp: TestIdP
) -> None:
    acme_token = roles_site.add_workspace("acme", idp)
    evil_token = roles_site.add_workspace("evil", second_idp)
    provision(roles_site, acme_token, "dave@acme.test", ["Staff"])
    roles_site.workspaces.map_role("acme", "Staff", "member", declared=ROLES, actor="t")
    dave = signed_in(roles_site, idp, "dave@acme.test", groups=["Readers"])
    assert whoami(dave, roles_site.url)["roles"] == ["member"]

    # Evil uses the very same group names, maps them to admin, and provisions its own member.
    provision(roles_site, evil_token, "mallory@evil.test", ["Staff", "Readers"])
    for group in ("Staff", "Readers", "Admins"):
        roles_site.workspaces.map_role("evil", group, "admin", declared=ROLES, actor="evil")
    mallory = signed_in(roles_site, second_idp, "mallory@evil.test", "evil", groups=["Admins"])
    assert whoami(mallory, roles_site.url)["roles"] == ["admin"]
    # Its IdP asserting acme's member (with groups) is refused, and changes nothing of his.
    second_idp.users["dave@acme.test"] = {
        **default_attributes("dave@acme.test"),
        "groups": ["Admins"],
    }
    refused = sign_in(requests.Session(), roles_site, second_idp, "dave@acme.test", "evil")
    assert refused.status_code == 403
    # A SCIM group of evil's cannot take acme's member in.
    (acme_dave,) = [m for m in roles_site.members() if m.user_name == "dave@acme.test"]
    sneaky = requests.post(
        f"{roles_site.url}/scim/v2/Groups",
        headers={"Authorization": f"Bearer {evil_token}", "Content-Type": "application/scim+json"},
        data=json.dumps(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Admins",
                "members": [{"value": acme_dave.id}],
            }
        ),
    )
    assert sneaky.status_code == 400
    time.sleep(0.1)
    seen = whoami(dave, roles_site.url)
    assert seen["groups"] == ["Readers", "Staff"] and seen["roles"] == ["member"]
    assert roles_site.workspaces.get("acme").role_map == {"Staff": "member"}


def test_a_mapped_group_after_the_cap_still_gives_its_role_and_the_owner_is_told(
    roles_site: Site, idp: TestIdP
) -> None:
    """An IdP sending more groups than are kept: the mapped ones are kept first (the member
    keeps the role), the rest capped, and the owner's diagnostics say so."""
    roles_site.add_workspace("acme", idp)
    roles_site.workspaces.map_role("acme", "zzz-admins", "admin", declared=ROLES, actor="t")
    others = [f"g{n:03d}" for n in range(MAX_ASSERTED_GROUPS + 50)]
    browser = signed_in(roles_site, idp, "alice@acme.test", groups=[*others, "ZZZ-Admins"])
    seen = whoami(browser, roles_site.url)
    assert seen["roles"] == ["admin"]
    assert len(seen["groups"]) == MAX_ASSERTED_GROUPS and "ZZZ-Admins" in seen["groups"]
    assert seen["groups"][:-1] == others[: MAX_ASSERTED_GROUPS - 1]  # in assertion order
    (note,) = roles_site.audit("groups_dropped")
    assert note.changes["email"] == "alice@acme.test"
    assert (note.changes["kept"], note.changes["dropped"]) == (MAX_ASSERTED_GROUPS, 51)
    # Counted: an IdP that does so at every sign-in adds no row per sign-in.
    signed_in(roles_site, idp, "alice@acme.test", groups=[*others, "ZZZ-Admins"])
    (note,) = roles_site.audit("groups_dropped")
    assert note.changes["count"] == 2
    workspace_id = roles_site.workspaces.get("acme").id
    shown = roles_site.middleware.database.run(
        lambda unit: recent_failures(unit, workspace_id), write=False
    )
    (diagnostic,) = [d for d in shown if d.code == "groups_dropped"]
    assert "kept 150 and dropped 51" in diagnostic.what and "2 sign-ins" in diagnostic.what
    # Under the cap, nothing is dropped and nothing told.
    signed_in(roles_site, idp, "bob@acme.test", groups=others[:10])
    assert [n.changes["email"] for n in roles_site.audit("groups_dropped")] == ["alice@acme.test"]


def test_look_alike_group_names_get_no_role_only_letter_case_is_ignored(
    roles_site: Site, idp: TestIdP
) -> None:
    """Role mapping compares group names regardless of letter case, and nothing more: a
    full-width or mathematical-bold spelling (which NFKC would fold to the mapped name) is
    another group, whether the assertion or SCIM names it."""
    token = roles_site.add_workspace("acme", idp)
    roles_site.workspaces.map_role("acme", "admins", "admin", declared=ROLES, actor="t")
    full_width = "\uff21\uff24\uff2d\uff29\uff2e\uff33"  # ＡＤＭＩＮＳ
    math_bold = "".join(chr(0x1D41A + ord(c) - ord("a")) for c in "admins")  # 𝐚𝐝𝐦𝐢𝐧𝐬
    for look_alike in (full_width, math_bold):
        browser = signed_in(roles_site, idp, "alice@acme.test", groups=[look_alike])
        assert whoami(browser, roles_site.url) == {
            "user": "alice@acme.test",
            "groups": [look_alike],
            "roles": ["viewer"],
        }
    browser = signed_in(roles_site, idp, "alice@acme.test", groups=["ADMINS"])
    assert whoami(browser, roles_site.url)["roles"] == ["admin"]
    # A SCIM group of that spelling no more; beside an asserted "admins", both are groups.
    provision(roles_site, token, "dave@acme.test", [full_width])
    dave = signed_in(roles_site, idp, "dave@acme.test")
    assert whoami(dave, roles_site.url)["roles"] == ["viewer"]
    dave = signed_in(roles_site, idp, "dave@acme.test", groups=["Admins"])
    seen = whoami(dave, roles_site.url)
    assert sorted(seen["groups"]) == sorted(["Admins", full_width]) and seen["roles"] == ["admin"]
    # Mapping a look-alike is a mapping of its own; another letter case replaces it.
    roles_site.workspaces.map_role("acme", full_width, "member", declared=ROLES, actor="t")
    roles_site.workspaces.map_role("acme", "ADMINS", "admin", declared=ROLES, actor="t")
    assert roles_site.workspaces.get("acme").role_map == {"ADMINS": "admin", full_width: "member"}


# -- the rules themselves -------------------------------------------------------------------------


def test_clean_asserted_groups_caps_the_count() -> None:
    many = [f"group-{n:04d}" for n in range(MAX_ASSERTED_GROUPS + 50)]
    kept = clean_asserted_groups(many)
    assert kept.names == tuple(many[:MAX_ASSERTED_GROUPS]) and kept.dropped == 50


def test_clean_asserted_groups_keeps_mapped_groups_before_capping_the_others() -> None:
    others = [f"group-{n:04d}" for n in range(MAX_ASSERTED_GROUPS + 50)]
    kept = clean_asserted_groups([*others, "Admins", "Staff"], lambda: {"admins", "staff"})
    assert "Admins" in kept.names and "Staff" in kept.names
    assert len(kept.names) == MAX_ASSERTED_GROUPS and kept.dropped == 52
    # More mapped groups than the cap: all of them kept, no unmapped one.
    mapped = [f"m-{n:04d}" for n in range(MAX_ASSERTED_GROUPS + 5)]
    kept = clean_asserted_groups([*others, *mapped], lambda: set(mapped))
    assert kept.names == tuple(mapped) and kept.dropped == len(others)

    # The mapping is asked for only when the cap is reached.
    def never() -> set[str]:
        raise AssertionError("asked")

    assert clean_asserted_groups(["b", "A", "a"], never).names == ("A", "b")


def test_role_key_ignores_letter_case_only() -> None:
    assert role_key(" ADMINS ") == role_key("admins") == role_key("Admins")
    assert role_key("STRASSE") == role_key("straße")  # casefold: letter case, in full
    assert role_key("\uff21\uff24\uff2d\uff29\uff2e\uff33") != role_key("admins")
    assert role_key("e\u0301") == role_key("\u00e9")  # one letter, two encodings (NFC)


def test_member_groups_keeps_scims_spelling_and_orders_by_key() -> None:
    assert member_groups(["Admins", "sales"], ["ADMINS", "ops"]) == ["Admins", "ops", "sales"]
    assert member_groups(["b"], None) == ["b"]
    # A look-alike is another group: SCIM's full-width spelling does not hide "admins".
    assert member_groups(["\uff41dmins"], ["admins"]) == ["admins", "\uff41dmins"]


def test_member_roles() -> None:
    mapping = {"Admins": "admin", "Staff": "member", "Old": "gone"}
    assert member_roles(["staff", "ADMINS"], mapping, ROLES, None) == ["admin", "member"]
    assert member_roles(["Old"], mapping, ROLES, "viewer") == ["viewer"]
    assert member_roles(["Old"], mapping, ROLES, None) == []
    assert member_roles(["Admins"], mapping, [], None) == []
    assert member_roles([], None, ROLES, "viewer") == ["viewer"]
    assert member_roles(["\uff21dmins"], mapping, ROLES, "viewer") == ["viewer"]
