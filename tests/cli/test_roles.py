"""``webwork-sso workspace set-attributes``, ``map-role`` and ``unmap-role`` (cli/roles.py),
through main(argv) against a real database; their effect is read back through real sign-ins
at the middleware."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from ..admin.conftest import sign_in
from ..saml.conftest import Site
from ..saml.idp import TestIdP, default_attributes
from ..test_cli import Cli, assert_one_line_failure
from ..test_cli import _no_webwork_environment as _no_webwork_environment
from ..test_cli import cli as cli
from ..test_roles import make_site, signed_in, whoami

ROLES = ["admin", "member", "viewer"]


@pytest.fixture
def site(serve: Callable[[Any], Any], database_url: str, idp: TestIdP) -> Iterator[Site]:
    """The site over the CLI's database, declaring ROLES, with ``acme`` (Plus, SSO on,
    acme.test verified, an IdP)."""
    made = make_site(serve, database_url, roles=ROLES)
    made.add_workspace("acme", idp)
    yield made
    made.middleware.close()


def audit_actions(database_url: str) -> list[tuple[str, str]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [
                (row[0], row[1])
                for row in connection.execute(
                    text(
                        "SELECT actor, action FROM audit_events WHERE action IN"
                        " ('attribute_map_changed', 'role_mapped', 'role_unmapped') ORDER BY id"
                    )
                )
            ]
    finally:
        engine.dispose()


def test_set_attributes_changes_which_attributes_are_read(
    cli: Cli, site: Site, idp: TestIdP
) -> None:
    document = cli.json(
        "workspace", "set-attributes", "acme",
        "--email", "workEmail", "--given-name", "first", "--family-name", "last",
        "--display-name", "shown", "--groups", "memberOf",
    )  # fmt: skip
    assert document["attribute_map"] == {
        "email": "workEmail",
        "given_name": "first",
        "family_name": "last",
        "display_name": "shown",
        "groups": "memberOf",
    }
    # The NameID says one address, the mapped attribute another: the attribute is the email.
    idp.users["nameid@acme.test"] = {
        **default_attributes("nameid@acme.test"),
        "workEmail": ["real@acme.test"],
        "first": ["Rea"],
        "last": ["Lity"],
        "shown": ["Rea L."],
        "memberOf": ["Ops"],
        "groups": ["Ignored"],
    }
    browser = requests.Session()

    assert sign_in(browser, site, idp, "nameid@acme.test").status_code == 303
    seen = whoami(browser, site.url)
    assert seen["user"] == "real@acme.test" and seen["groups"] == ["Ops"]
    (member,) = site.members()
    assert (member.given_name, member.family_name, member.display_name) == ("Rea", "Lity", "Rea L.")
    assert ("cli", "attribute_map_changed") in audit_actions(cli.database_url)

    # An empty NAME goes back to the built-in names.
    reset = cli.json("workspace", "set-attributes", "acme", "--email", "", "--groups", "")
    assert reset["attribute_map"] == {
        "given_name": "first",
        "family_name": "last",
        "display_name": "shown",
    }
    again = signed_in(site, idp, "plain@acme.test", groups=["Sales"])
    assert whoami(again, site.url) == {"user": "plain@acme.test", "groups": ["Sales"], "roles": []}


def test_a_mapped_email_never_widens_who_may_sign_in(cli: Cli, site: Site, idp: TestIdP) -> None:
    cli.json("workspace", "set-attributes", "acme", "--email", "workEmail")
    idp.users["alice@acme.test"] = {
        **default_attributes("alice@acme.test"),
        "workEmail": ["alice@elsewhere.test"],  # a domain acme never verified
    }
    browser = requests.Session()

    refused = sign_in(browser, site, idp, "alice@acme.test")
    assert refused.status_code == 403 and "domain_not_verified" in refused.text
    # And an assertion without the mapped attribute is refused, not read from the NameID.
    idp.users["bob@acme.test"] = default_attributes("bob@acme.test")
    missing = sign_in(requests.Session(), site, idp, "bob@acme.test")
    assert missing.status_code == 400 and "no_email_attribute" in missing.text
    assert site.members() == []
    # The owner's diagnostics name the address the sign-in went by (the mapped attribute's),
    # never the NameID it did not read; none when the attribute is missing.
    emails = [(e.changes["reason"], e.changes.get("email")) for e in site.audit("login_failed")]
    assert emails == [("domain_not_verified", "alice@elsewhere.test"), ("no_email_attribute", None)]


def test_set_attributes_refuses_bad_input_in_one_line(cli: Cli, site: Site) -> None:
    assert_one_line_failure(cli("workspace", "set-attributes", "acme"), "--email", code=2)
    assert_one_line_failure(
        cli("workspace", "set-attributes", "acme", "--email", "a\u200bb"), "invisible"
    )
    assert_one_line_failure(
        cli("workspace", "set-attributes", "acme", "--groups", "g" * 300), "longer than"
    )
    assert_one_line_failure(cli("workspace", "set-attributes", "nobody", "--email", "x"), "nobody")
    assert cli.json("workspace", "show", "acme")["attribute_map"] == {}


def test_map_role_and_unmap_role(cli: Cli, site: Site, idp: TestIdP) -> None:
    document = cli.json(
        "workspace", "map-role", "acme", "Admins", "admin", "--roles", "admin,member"
    )
    assert document["role_map"] == {"Admins": "admin"}
    browser = signed_in(site, idp, "alice@acme.test", groups=["admins"])
    assert whoami(browser, site.url)["roles"] == ["admin"]
    # Mapping the same group (any case) again replaces its role.
    assert cli.json("workspace", "map-role", "acme", "ADMINS", "member")["role_map"] == {
        "ADMINS": "member"
    }
    code, out, err = cli("workspace", "unmap-role", "acme", "admins")
    assert (code, err) == (0, "") and "no longer maps" in out
    assert cli.json("workspace", "show", "acme")["role_map"] == {}
    assert audit_actions(cli.database_url) == [
        ("cli", "role_mapped"),
        ("cli", "role_mapped"),
        ("cli", "role_unmapped"),
    ]


def test_map_role_refuses_a_role_the_site_does_not_declare(
    cli: Cli, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_one_line_failure(
        cli("workspace", "map-role", "acme", "Admins", "boss", "--roles", "admin,member"),
        "'boss' is not a role",
    )
    monkeypatch.setenv("WEBWORK_SSO_ROLES", "admin, viewer")
    assert_one_line_failure(cli("workspace", "map-role", "acme", "Admins", "member"), "member")
    assert cli.json("workspace", "map-role", "acme", "Admins", "viewer")["role_map"] == {
        "Admins": "viewer"
    }
    monkeypatch.delenv("WEBWORK_SSO_ROLES")
    # Unknown here: any well-formed name is kept, and the output says the site decides.
    code, out, _ = cli("workspace", "map-role", "acme", "Ops", "anything")
    assert code == 0 and "not known here" in out
    assert_one_line_failure(
        cli("workspace", "map-role", "acme", "Ops", "a", "--roles", "a,a"),
        "--roles",
        "twice",
        code=2,
    )
    assert_one_line_failure(cli("workspace", "map-role", "acme", "Ops", "a,b"), "without commas")
    assert_one_line_failure(cli("workspace", "map-role", "acme", " ", "admin"), "group name")
    assert_one_line_failure(cli("workspace", "unmap-role", "acme", "Nobody"), "no role mapping")


def test_a_hostile_workspaces_mappings_stay_its_own(
    cli: Cli, site: Site, idp: TestIdP, second_idp: TestIdP
) -> None:
    site.add_workspace("evil", second_idp)
    cli.json("workspace", "map-role", "evil", "Staff", "admin", "--roles", "admin")
    cli.json("workspace", "set-attributes", "evil", "--groups", "memberOf")
    browser = signed_in(site, idp, "dave@acme.test", groups=["Staff"], memberOf=["Admins"])
    assert whoami(browser, site.url) == {"user": "dave@acme.test", "groups": ["Staff"], "roles": []}
    acme = cli.json("workspace", "show", "acme")
    assert (acme["attribute_map"], acme["role_map"]) == ({}, {})
