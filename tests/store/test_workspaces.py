"""The workspace Python API: plans, switches, domains and SCIM tokens."""

from __future__ import annotations

import time

import pytest
import requests
from sqlalchemy import select

from webwork_sso_middleware.domains import TxtResolver
from webwork_sso_middleware.errors import (
    ConfigurationError,
    Conflict,
    DomainError,
    DomainNotVerified,
    NotFound,
    PlanError,
)
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import (
    LifecycleEvent,
    Member,
    MemberSession,
    ScimToken,
    Workspace,
)
from webwork_sso_middleware.store.workspaces import (
    Workspaces,
    find_credential,
    hash_token,
)

from ..admin.conftest import sign_in
from ..dns_server import TxtServer
from ..saml.conftest import Site, TestIdP
from ..store_helpers import transaction


@pytest.fixture
def workspaces(database: Database, dns_server: TxtServer) -> Workspaces:
    return Workspaces(database, resolver=TxtResolver((dns_server.nameserver,), timeout=2))


def test_create_returns_the_token_once_and_stores_only_its_hash(workspaces, database):
    info, token = workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    assert info.slug == "acme" and info.plan == "plus"
    assert not info.scim_enabled and not info.sso_enabled
    assert token.startswith("wwsso_") and len(token) > 40
    with transaction(database) as unit:
        rows = unit.session.scalars(select(ScimToken)).all()
        assert [row.token_hash for row in rows] == [hash_token(token)]
        assert token not in {row.token_hash for row in rows}
        credential = find_credential(unit, token)
        assert credential.workspace_slug == "acme" and credential.token_hint == token[:10]
        assert find_credential(unit, token + "x") is None


def test_rotation_revokes_every_earlier_token(workspaces, database):
    _, first = workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    second = workspaces.rotate_token("acme")
    third = workspaces.rotate_token("acme")
    with transaction(database) as unit:
        assert find_credential(unit, first) is None
        assert find_credential(unit, second) is None
        assert find_credential(unit, third) is not None


def test_enable_needs_plus_or_premium(workspaces):
    workspaces.create("free", name="Free", plan="free", owner_email="o@free.test")
    with pytest.raises(PlanError) as caught:
        workspaces.enable("free", scim=True)
    assert caught.value.plan == "free" and "Plus or Premium" in str(caught.value)
    assert workspaces.get("free").scim_enabled is False
    workspaces.set_plan("free", "premium")
    assert workspaces.enable("free", scim=True, sso=True).sso_enabled is True


def test_moving_to_free_switches_scim_and_sso_off(workspaces):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    workspaces.enable("acme", scim=True, sso=True)
    info = workspaces.set_plan("acme", "free")
    assert (info.plan, info.scim_enabled, info.sso_enabled) == ("free", False, False)


def test_disable_one_switch_keeps_the_other(workspaces):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    workspaces.enable("acme", scim=True, sso=True)
    info = workspaces.disable("acme", sso=True)
    assert info.scim_enabled and not info.sso_enabled


def test_domains_are_validated_normalised_and_replaced(workspaces):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    info = workspaces.set_domains("acme", ["Acme.TEST", "@eu.acme.test", "acme.test"])
    assert info.domains == ("acme.test", "eu.acme.test")
    assert workspaces.set_domains("acme", ["other.test"]).domains == ("other.test",)
    for refused in ("not a domain", "gmail.com", "mailinator.com", "outlook.com"):
        with pytest.raises(DomainError):
            workspaces.set_domains("acme", ["acme.test", refused])
    assert workspaces.get("acme").domains == ("other.test",)


@pytest.mark.parametrize("slug", ["", "Has Space", "-dash", "x" * 64, "login", "a/b"])
def test_bad_slugs_are_refused(workspaces, slug):
    with pytest.raises(ConfigurationError):
        workspaces.create(slug, name="X", plan="plus", owner_email="o@x.test")


def test_bad_plan_and_owner_are_refused(workspaces):
    with pytest.raises(ConfigurationError):
        workspaces.create("a", name="A", plan="gold", owner_email="o@x.test")
    with pytest.raises(ConfigurationError):
        workspaces.create("a", name="A", plan="plus", owner_email="nobody")


def test_duplicate_slug_is_a_conflict(workspaces):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    with pytest.raises(Conflict):
        workspaces.create("ACME", name="Other", plan="plus", owner_email="o@acme.test")


def test_unknown_workspace_is_not_found(workspaces):
    with pytest.raises(NotFound):
        workspaces.get("nope")
    with pytest.raises(NotFound):
        workspaces.rotate_token("nope")


# -- verified domains ------------------------------------------------------------------------------


def test_a_claim_is_unverified_until_its_txt_record_is_published(workspaces, dns_server):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    info = workspaces.set_domains("acme", ["acme.test"])
    assert info.domains == ("acme.test",) and info.verified_domains == ()
    (claim,) = info.domain_claims
    assert claim.record.name == "_webwork-sso.acme.test"

    with pytest.raises(DomainNotVerified) as raised:
        workspaces.verify_domain("acme", "acme.test")
    assert (raised.value.record_name, raised.value.record_value) == (
        claim.record.name,
        claim.record.value,
    )
    assert workspaces.get("acme").verified_domains == ()

    dns_server.publish(claim.record.name, "something else", claim.record.value)
    verified = workspaces.verify_domain("acme", "Acme.TEST")
    assert verified.verified and verified.verified_by == "dns"
    assert workspaces.get("acme").verified_domains == ("acme.test",)


def test_a_record_published_for_one_workspace_never_verifies_another(workspaces, dns_server):
    for slug in ("acme", "evil"):
        workspaces.create(slug, name=slug, plan="plus", owner_email=f"o@{slug}.test")
    acme_claim = workspaces.claim_domain("acme", "acme.test")
    evil_claim = workspaces.claim_domain("evil", "acme.test")
    assert acme_claim.record.value != evil_claim.record.value  # a token per claim
    dns_server.publish(acme_claim.record.name, acme_claim.record.value)

    with pytest.raises(DomainNotVerified):
        workspaces.verify_domain("evil", "acme.test")
    workspaces.verify_domain("acme", "acme.test")
    # Once acme holds it, evil can verify it neither by DNS nor on the operator's word.
    dns_server.publish(acme_claim.record.name, acme_claim.record.value, evil_claim.record.value)
    for by_operator in (False, True):
        with pytest.raises(DomainError) as raised:
            workspaces.verify_domain("evil", "acme.test", by_operator=by_operator)
        assert "another workspace" in raised.value.reason
    assert workspaces.get("evil").verified_domains == ()
    assert workspaces.get("acme").verified_domains == ("acme.test",)


def test_the_operator_verifies_without_dns_and_claims_as_it_goes(workspaces, dns_server):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    claim = workspaces.verify_domain("acme", "acme.test", by_operator=True)
    assert claim.verified_by == "operator" and dns_server.queries == []
    assert workspaces.get("acme").verified_domains == ("acme.test",)


def test_set_domains_keeps_verifications_of_the_domains_it_keeps(workspaces):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    workspaces.verify_domain("acme", "acme.test", by_operator=True)
    info = workspaces.set_domains("acme", ["acme.test", "eu.acme.test"])
    assert info.verified_domains == ("acme.test",)
    assert workspaces.set_domains("acme", ["eu.acme.test"]).verified_domains == ()
    # Released: another workspace may now verify it.
    workspaces.create("globex", name="Globex", plan="plus", owner_email="o@globex.test")
    assert workspaces.verify_domain("globex", "acme.test", by_operator=True).verified


def test_a_verified_domain_is_released_with_its_claim(workspaces):
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    workspaces.verify_domain("acme", "acme.test", by_operator=True)
    workspaces.release_domain("acme", "acme.test")
    assert workspaces.get("acme").domains == ()
    with pytest.raises(NotFound):
        workspaces.release_domain("acme", "acme.test")


def test_two_workspaces_verifying_at_once_leave_one_verifier(database):
    # The partial unique index decides, whatever the interleaving.
    first, second = Workspaces(database), Workspaces(database)
    for slug in ("acme", "evil"):
        first.create(slug, name=slug, plan="plus", owner_email=f"o@{slug}.test")
        first.claim_domain(slug, "shared.test")
    import threading

    outcomes: list[str] = []

    def verify(workspaces: Workspaces, slug: str) -> None:
        try:
            workspaces.verify_domain(slug, "shared.test", by_operator=True)
            outcomes.append(slug)
        except DomainError:
            outcomes.append("refused")

    threads = [
        threading.Thread(target=verify, args=(w, s)) for w, s in ((first, "acme"), (second, "evil"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes)[0] in ("acme", "evil") and "refused" in outcomes
    verified = [s for s in ("acme", "evil") if first.get(s).verified_domains]
    assert len(verified) == 1


# -- switching SSO off ends sessions for good (over real HTTP, with a real IdP) ----------------


def signed_in(site: Site, idp: TestIdP, slug: str, email: str) -> requests.Session:
    """A browser signed in (SP-initiated) as ``email`` in ``slug``, checked at the host app."""
    browser = requests.Session()
    assert sign_in(browser, site, idp, email, slug=slug).status_code == 303
    assert remote_user(site, browser) == email
    return browser


def remote_user(site: Site, browser: requests.Session) -> str:
    """The REMOTE_USER the host app got for this browser's cookie ('' for none)."""
    return browser.get(f"{site.url}/app").text.split(";", 1)[0].removeprefix("user=")


def session_rows(site: Site, slug: str) -> list[MemberSession]:
    workspace_id = site.workspaces.get(slug).id
    with transaction(site.middleware.database) as unit:
        rows = list(
            unit.session.scalars(
                select(MemberSession).where(MemberSession.workspace_id == workspace_id)
            )
        )
        unit.session.expunge_all()
        return rows


@pytest.mark.parametrize(
    "switch_off, switch_on",
    [
        (lambda w: w.disable("acme", sso=True), lambda w: w.enable("acme", sso=True)),
        (
            lambda w: w.set_plan("acme", "free"),
            lambda w: (w.set_plan("acme", "plus"), w.enable("acme", scim=True, sso=True)),
        ),
    ],
    ids=["sso-switch", "free-plan"],
)
def test_sso_off_or_the_free_plan_ends_sessions_that_stay_ended(
    site: Site, idp: TestIdP, second_idp: TestIdP, switch_off, switch_on
):
    site.add_workspace("acme", idp)
    site.add_workspace("globex", second_idp)
    alice = signed_in(site, idp, "acme", "alice@acme.test")
    bob = signed_in(site, second_idp, "globex", "bob@globex.test")

    switch_off(site.workspaces)
    # At once in this process (its cached checks were evicted at commit), not after 2 s.
    assert remote_user(site, alice) == ""
    assert all(row.ended_at is not None for row in session_rows(site, "acme"))
    # One sign-out event for acme's member, from the CLI (the API's default); none for globex.
    assert signed_out_events(site) == [("acme", "alice@acme.test", "cli")]
    switch_on(site.workspaces)
    assert remote_user(site, alice) == ""
    time.sleep(2.1)  # past the recheck interval: another worker's cached answer is gone too
    assert remote_user(site, alice) == ""

    # Another workspace's sessions are untouched.
    assert remote_user(site, bob) == "bob@globex.test"
    assert [row.ended_at for row in session_rows(site, "globex")] == [None]
    # Signing in again works as before.
    assert remote_user(site, signed_in(site, idp, "acme", "alice@acme.test")) == "alice@acme.test"


def signed_out_events(site: Site) -> list[tuple[str, str, str]]:
    """(workspace slug, member's userName, source) of every member.signed_out event."""
    with transaction(site.middleware.database) as unit:
        return [
            (slug, user_name, source)
            for slug, user_name, source in unit.session.execute(
                select(Workspace.slug, Member.user_name, LifecycleEvent.source)
                .join(Workspace, Workspace.id == LifecycleEvent.workspace_id)
                .join(Member, Member.id == LifecycleEvent.member_id)
                .where(LifecycleEvent.kind == "member.signed_out")
                .order_by(LifecycleEvent.pk)
            )
        ]


def test_switching_sso_off_on_the_settings_page_signs_out_as_the_settings(site: Site, idp: TestIdP):
    site.add_workspace("acme", idp)
    signed_in(site, idp, "acme", "alice@acme.test")
    site.workspaces.disable("acme", sso=True, source="settings")
    site.workspaces.disable("acme", sso=True, source="settings")  # nothing left: no event
    assert signed_out_events(site) == [("acme", "alice@acme.test", "settings")]


def test_switching_scim_off_ends_no_session(site: Site, idp: TestIdP):
    site.add_workspace("acme", idp)
    alice = signed_in(site, idp, "acme", "alice@acme.test")
    site.workspaces.disable("acme", scim=True)
    assert remote_user(site, alice) == "alice@acme.test"
    assert [row.ended_at for row in session_rows(site, "acme")] == [None]
    assert signed_out_events(site) == []


def test_switching_sso_off_waits_for_a_sign_in_in_flight(database: Database):
    """A sign-in that read SSO as on holds the workspace row until its session is written:
    the switch (and the ending of sessions that follows it) waits, so the new session is ended
    with the others instead of slipping in after them (PostgreSQL's read committed; SQLite
    serialises writers anyway)."""
    import threading
    import time as clock

    from webwork_sso_middleware.store import sign_in_target as target_store

    workspaces = Workspaces(database)
    workspaces.create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    workspaces.enable("acme", sso=True)
    holding = threading.Event()
    switched_at: list[float] = []

    def switch_off() -> None:
        holding.wait(10)
        workspaces.disable("acme", sso=True)
        switched_at.append(clock.monotonic())

    switcher = threading.Thread(target=switch_off)
    switcher.start()
    with transaction(database, write=True) as unit:
        target = target_store.sign_in_target(unit, "acme", lock=True)
        assert target is not None and target.sso_enabled
        holding.set()
        clock.sleep(0.5)  # the sign-in's work: the switch must not get past the row meanwhile
        committed_at = clock.monotonic()
    switcher.join(30)
    assert switched_at and switched_at[0] >= committed_at
    assert not workspaces.get("acme").sso_enabled
