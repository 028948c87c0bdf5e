"""A worker's memory of which workspace verified a domain, as SCIM's creates ask it.

Bounded in time by session_recheck_seconds, forgotten at once in the worker that made a change,
never used for a rename, and bounded in size. ``evil`` is hostile: a member it creates in the
moments a verification takes to reach its worker still cannot sign in, and changes nothing of
``acme``'s members."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.scim.verified_domains import VerifiedDomains
from webwork_sso_middleware.store import domains as domain_store

from ..members.test_lifecycle import assert_in, assert_refused, provision
from ..saml.conftest import Site, host_app
from ..saml.idp import TestIdP
from ..store_helpers import transaction
from .conftest import okta_user


@pytest.fixture
def evil_idp(serve: Callable[[Any], Any], tmp_path: Any) -> TestIdP:
    return TestIdP.start(serve, tmp_path / "evil_idp", name="Evil IdP")


def two_workers(
    serve: Callable[[Any], Any], database_url: str, recheck: float
) -> tuple[Site, SSOMiddleware]:
    """The site, serving SCIM and sign-in, and another worker on its database (as a second
    process would be), where the owner changes settings."""
    site = Site(serve, database_url, session_recheck_seconds=recheck)
    other = SSOMiddleware(
        host_app,
        database_url=database_url,
        secret_key="another-worker-padded-to-thirty-two-bytes",
        base_url=site.url,
        session_recheck_seconds=recheck,
    )
    return site, other


@pytest.fixture
def slow(serve: Callable[[Any], Any], database_url: str) -> Iterator[tuple[Site, SSOMiddleware]]:
    """Two workers whose memory outlives every test step (recheck 60 s)."""
    site, other = two_workers(serve, database_url, recheck=60)
    yield site, other
    site.middleware.close()
    other.close()


def claimed_and_hostile(site: Site, idp: TestIdP, evil_idp: TestIdP) -> str:
    """acme, which claimed acme.test without verifying it yet, and evil, whose SCIM token is
    returned, with early@acme.test created (allowed) so that the site's worker remembers that
    no one verified acme.test."""
    site.add_workspace("acme", idp, verify_domain=False)
    site.workspaces.claim_domain("acme", "acme.test")
    evil = site.add_workspace("evil", evil_idp)
    provision(site, evil, "early@acme.test")
    return evil


def refused_create(site: Site, token: str, email: str) -> dict[str, Any]:
    response = requests.post(
        f"{site.url}/scim/v2/Users", json=okta_user(email), headers=_auth(token)
    )
    assert response.status_code == 400, response.text
    return dict(response.json())


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_create_in_the_moments_before_a_verification_arrives_signs_no_one_in(
    slow: tuple[Site, SSOMiddleware], idp: TestIdP, evil_idp: TestIdP
):
    site, other = slow
    evil = claimed_and_hostile(site, idp, evil_idp)
    other.workspaces.verify_domain("acme", "acme.test", by_operator=True)
    # The site's worker has not heard yet: evil's create goes through, as one sent a moment
    # before the verification would have...
    late = provision(site, evil, "late@acme.test")
    # ...and, like that one, its member cannot sign in: every sign-in asks the database.
    for name in ("early@acme.test", "late@acme.test"):
        assert_refused(site, evil_idp, "evil", name, "domain_verified_elsewhere")
    # acme's own people are acme's: evil's member of the same name changed nothing.
    assert assert_in(site, idp, "acme", "late@acme.test") == "late@acme.test"
    owners = {m.id: m.workspace_id for m in site.members() if m.user_name == "late@acme.test"}
    assert len(owners) == 2 and len(set(owners.values())) == 2 and late in owners


def test_a_member_created_in_the_moments_gets_in_by_no_other_address_or_later_write(
    slow: tuple[Site, SSOMiddleware], idp: TestIdP, evil_idp: TestIdP
):
    """Its email in evil's own verified domain is an alias sign-in would follow; a PUT that keeps
    the name is no rename, so it asks nothing. Neither lets evil's IdP in."""
    site, other = slow
    evil = claimed_and_hostile(site, idp, evil_idp)
    other.workspaces.verify_domain("acme", "acme.test", by_operator=True)
    body = okta_user("ceo@acme.test")
    body["emails"] = [{"primary": True, "value": "ceo@evil.test", "type": "work"}]
    made = requests.post(f"{site.url}/scim/v2/Users", json=body, headers=_auth(evil))
    assert made.status_code == 201, made.text  # in the moments before the site's worker hears
    member = made.json()["id"]
    for address in ("ceo@evil.test", "ceo@acme.test"):
        assert_refused(site, evil_idp, "evil", address, "domain_verified_elsewhere")
    for active in (False, True):  # deactivated, then reactivated, by PUT
        put = requests.put(
            f"{site.url}/scim/v2/Users/{member}",
            json=body | {"active": active},
            headers=_auth(evil),
        )
        assert put.status_code == 200, put.text
    assert_refused(site, evil_idp, "evil", "ceo@evil.test", "domain_verified_elsewhere")


def test_a_rename_asks_the_database_every_time(
    slow: tuple[Site, SSOMiddleware], idp: TestIdP, evil_idp: TestIdP
):
    site, other = slow
    evil = claimed_and_hostile(site, idp, evil_idp)
    member = provision(site, evil, "mole@evil.test")
    assert assert_in(site, evil_idp, "evil", "mole@evil.test") == "mole@evil.test"
    other.workspaces.verify_domain("acme", "acme.test", by_operator=True)
    renamed = requests.patch(
        f"{site.url}/scim/v2/Users/{member}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "userName", "value": "ceo@acme.test"}],
        },
        headers=_auth(evil),
    )
    assert renamed.status_code == 400, renamed.text
    assert renamed.json()["scimType"] == "invalidValue"
    assert "another workspace has verified" in renamed.json()["detail"]
    assert {m.user_name for m in site.members() if m.id == member} == {"mole@evil.test"}


def test_a_verification_in_this_worker_is_heard_at_once(
    slow: tuple[Site, SSOMiddleware], idp: TestIdP, evil_idp: TestIdP
):
    site, _ = slow
    evil = claimed_and_hostile(site, idp, evil_idp)
    site.workspaces.verify_domain("acme", "acme.test", by_operator=True)
    refused = refused_create(site, evil, "late@acme.test")
    assert refused["scimType"] == "invalidValue"
    assert "acme.test, a domain another workspace has verified" in refused["detail"]
    # And a release made here lets the name through at once, though "verified by acme" was
    # remembered a moment ago.
    site.workspaces.release_domain("acme", "acme.test")
    provision(site, evil, "later@acme.test")
    assert not any(m.user_name == "late@acme.test" for m in site.members())


def test_a_verification_in_another_worker_reaches_creates_within_the_bound(
    serve: Callable[[Any], Any], database_url: str, idp: TestIdP, evil_idp: TestIdP
):
    recheck = 0.5
    site, other = two_workers(serve, database_url, recheck=recheck)
    try:
        evil = claimed_and_hostile(site, idp, evil_idp)
        other.workspaces.verify_domain("acme", "acme.test", by_operator=True)
        verified = time.monotonic()
        for n in range(10_000):
            sent = time.monotonic()  # the answer it got was remembered before this
            response = requests.post(
                f"{site.url}/scim/v2/Users",
                json=okta_user(f"n{n}@acme.test"),
                headers=_auth(evil),
            )
            if response.status_code == 400:
                break
            assert response.status_code == 201, response.text
            assert sent - verified <= recheck, "still allowed past the bound"
            time.sleep(0.05)
        assert response.json()["scimType"] == "invalidValue"
    finally:
        site.middleware.close()
        other.close()


def test_the_memory_is_bounded_and_answers_as_the_database_does(database_url: str):
    app = SSOMiddleware(
        host_app,
        database_url=database_url,
        secret_key="s3cret-padded-to-thirty-two-bytes-at-least",
        base_url="https://tracker.example.com",
    )
    try:
        for slug in ("acme", "beta"):
            app.workspaces.create(slug, name=slug, plan="plus", owner_email=f"o@{slug}.test")
            app.workspaces.verify_domain(slug, f"{slug}.test", by_operator=True)
        memory = VerifiedDomains(recheck=dt.timedelta(seconds=60), max_domains=2)
        with transaction(app.database) as unit:
            for domain in ["acme.test", "beta.test", "nobody.test"] * 2:
                assert memory.verifier_of(unit, domain) == domain_store.verifier_of(unit, domain)
                assert len(memory) <= 2
            assert memory.verifier_of(unit, "nobody.test") is None
        unasked = VerifiedDomains(recheck=dt.timedelta(0))
        with transaction(app.database) as unit:
            assert unasked.verifier_of(unit, "acme.test") is not None
        assert len(unasked) == 0  # recheck 0: nothing is kept, every create asks
    finally:
        app.close()
