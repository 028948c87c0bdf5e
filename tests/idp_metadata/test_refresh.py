"""Refreshing a workspace's IdP metadata: when due, once across workers, the last good copy kept."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from webwork_sso_middleware.errors import (
    MetadataError,
)
from webwork_sso_middleware.idp_metadata.identity_providers import copy_of
from webwork_sso_middleware.idp_metadata.parsing import parse
from webwork_sso_middleware.idp_metadata.refresh import (
    IdentityProviders,
    refresh_if_due,
)
from webwork_sso_middleware.idp_metadata.workspaces import Workspaces
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store import identity_providers as idps
from webwork_sso_middleware.store.identity_providers import RETRY_AFTER_FAILURE
from webwork_sso_middleware.store.models import utcnow

from .metadata_samples import (
    certificate,
    entity_descriptor,
    fingerprint,
    okta_metadata,
)
from .support import DAY, URL, FakeIdP, events, stored_xml


def test_not_due_does_nothing(workspaces: Workspaces, database: Database, idp: FakeIdP) -> None:
    info = workspaces.set_idp("acme", metadata_url=URL)

    refresh_if_due(database, info.workspace_id, now=info.refresh_after - dt.timedelta(seconds=1),
                   fetch=idp)  # fmt: skip

    assert idp.calls == [URL]
    assert workspaces.idp("acme") == info


def test_a_due_refresh_stores_the_new_metadata(
    workspaces: Workspaces, database: Database, idp: FakeIdP
) -> None:
    before = workspaces.set_idp("acme", metadata_url=URL)
    old, new = certificate("old"), certificate("new")
    idp.xml = okta_metadata(old, new)  # the IdP publishes its next certificate
    now = before.refresh_after + dt.timedelta(minutes=1)

    refresh_if_due(database, before.workspace_id, now=now, fetch=idp)

    after = workspaces.idp("acme")
    assert idp.calls == [URL, URL]
    assert [c.sha256_fingerprint for c in after.certificates] == [
        fingerprint(old), fingerprint(new),
    ]  # fmt: skip
    assert (after.fetched_at, after.refresh_after) == (now, now + DAY)
    (event,) = events(database, "metadata_refreshed")
    assert event.changes["before"]["certificates"] == [fingerprint(old)]
    assert event.changes["after"]["certificates"] == [fingerprint(old), fingerprint(new)]


def test_an_unchanged_refresh_is_not_audited(
    workspaces: Workspaces, database: Database, idp: FakeIdP
) -> None:
    before = workspaces.set_idp("acme", metadata_url=URL)

    refresh_if_due(database, before.workspace_id, now=before.refresh_after, fetch=idp)

    assert workspaces.idp("acme").fetched_at == before.refresh_after
    assert events(database, "metadata_refreshed") == []


@pytest.mark.parametrize(
    "failure",
    [MetadataError("https://acme.okta.com/... did not answer within 10 seconds"),
     OSError("network is unreachable"), "<html>maintenance</html>", "not xml"],
    ids=["timeout", "oserror", "html", "garbage"],
)  # fmt: skip
def test_a_failed_refresh_keeps_the_last_good_copy_and_records_why(
    workspaces: Workspaces, database: Database, idp: FakeIdP, failure: Exception | str
) -> None:
    before = workspaces.set_idp("acme", metadata_url=URL)
    good_xml = stored_xml(database)
    if isinstance(failure, str):
        idp.xml = failure
    else:
        idp.error = failure
    now = before.refresh_after + dt.timedelta(hours=1)

    refresh_if_due(database, before.workspace_id, now=now, fetch=idp)

    after = workspaces.idp("acme")
    assert stored_xml(database) == good_xml
    assert (after.entity_id, after.certificates, after.fetched_at) == (
        before.entity_id, before.certificates, before.fetched_at,
    )  # fmt: skip
    assert after.last_refresh_error and after.last_refresh_error_at == now
    assert after.refresh_after == now + RETRY_AFTER_FAILURE
    (event,) = events(database, "metadata_refresh_failed")
    assert (event.target_type, event.actor) == ("idp", idps.REFRESH_ACTOR)
    assert event.changes["error"] == after.last_refresh_error
    assert event.changes["metadata_url"] == URL and event.changes["expired"] is False

    # A dead IdP is not fetched again on every sign-in ...
    refresh_if_due(database, before.workspace_id, now=now + dt.timedelta(minutes=1), fetch=idp)
    assert len(idp.calls) == 2
    # ... and once it is back, the error is cleared, with a note in the log.
    idp.xml, idp.error = okta_metadata(certificate("old")), None
    later = now + RETRY_AFTER_FAILURE
    refresh_if_due(database, before.workspace_id, now=later, fetch=idp)
    recovered = workspaces.idp("acme")
    assert (recovered.last_refresh_error, recovered.last_refresh_error_at) == (None, None)
    assert recovered.fetched_at == later
    (event,) = events(database, "metadata_refreshed")
    assert event.changes["recovered_from"] == after.last_refresh_error


def test_expired_metadata_stays_in_use_when_the_refresh_fails_and_says_so(
    workspaces: Workspaces, database: Database, idp: FakeIdP
) -> None:
    valid_until = utcnow().replace(microsecond=0) + dt.timedelta(hours=2)
    idp.xml = entity_descriptor(attributes=f' validUntil="{valid_until:%Y-%m-%dT%H:%M:%SZ}"')
    before = workspaces.set_idp("acme", metadata_url=URL)
    assert before.refresh_after == valid_until  # refreshed when it runs out
    idp.error = MetadataError("https://acme.okta.com/... answered HTTP 503 Service Unavailable")
    now = valid_until + dt.timedelta(minutes=10)

    refresh_if_due(database, before.workspace_id, now=now, fetch=idp)

    after = workspaces.idp("acme")
    assert after.expired(now) and after.metadata_xml == before.metadata_xml
    assert "503" in after.last_refresh_error and "expired" in after.last_refresh_error
    (event,) = events(database, "metadata_refresh_failed")
    assert event.changes["expired"] is True


def test_a_refresh_that_serves_expired_metadata_is_a_failure(
    workspaces: Workspaces, database: Database, idp: FakeIdP
) -> None:
    before = workspaces.set_idp("acme", metadata_url=URL)
    idp.xml = entity_descriptor(attributes=' validUntil="2001-01-01T00:00:00Z"')

    refresh_if_due(database, before.workspace_id, now=before.refresh_after, fetch=idp)

    after = workspaces.idp("acme")
    assert after.valid_until is None and "expired" in after.last_refresh_error


def test_concurrent_workers_fetch_once(
    workspaces: Workspaces, database_url: str, idp: FakeIdP
) -> None:
    before = workspaces.set_idp("acme", metadata_url=URL)
    idp.delay = 0.3  # long enough for every worker to arrive while the fetch runs
    now = before.refresh_after + dt.timedelta(seconds=1)
    workers = 8
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []
    databases = [Database(database_url, auto_migrate=False) for _ in range(workers)]

    def worker(database: Database) -> None:
        try:
            barrier.wait()
            refresh_if_due(database, before.workspace_id, now=now, fetch=idp)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for database in databases:
        database.dispose()

    assert errors == []
    assert idp.calls == [URL, URL]  # set_idp's fetch, then exactly one refresh
    assert workspaces.idp("acme").fetched_at == now


def test_a_refresh_does_not_undo_a_change_made_while_it_fetched(
    workspaces: Workspaces, database: Database
) -> None:
    info = workspaces.set_idp("acme", metadata_url=URL)
    claim = database.run(
        lambda unit: idps.claim_refresh(unit, info.workspace_id, info.refresh_after)
    )
    assert claim is not None
    pasted = workspaces.set_idp("acme", metadata_xml=okta_metadata(certificate("pasted")))
    fetched = parse(okta_metadata(certificate("fetched")))

    stored = database.run(
        lambda unit: idps.store_refreshed(
            unit,
            claim,
            copy_of(fetched),
            info.refresh_after,
            refresh_after=info.refresh_after,
            before=None,
        )
    )
    failed = database.run(
        lambda unit: idps.record_refresh_failure(unit, claim, "boom", info.refresh_after)
    )

    assert (stored, failed) == (False, False)
    assert workspaces.idp("acme") == pasted


def test_no_idp_or_no_workspace_is_nothing_to_refresh(database: Database, idp: FakeIdP) -> None:
    refresh_if_due(database, 12345, fetch=idp)
    assert idp.calls == []


def test_the_facade_refreshes_before_it_answers(
    workspaces: Workspaces, database: Database, idp: FakeIdP
) -> None:
    info = workspaces.set_idp("acme", metadata_url=URL)
    idp.xml = okta_metadata(certificate("old"), certificate("new"))
    providers = IdentityProviders(database, fetch=idp)

    assert providers.get(info.workspace_id) == info
    current = providers.current(info.workspace_id, now=info.refresh_after)

    assert current is not None and len(current.certificates) == 2
    assert providers.get(999999) is None
