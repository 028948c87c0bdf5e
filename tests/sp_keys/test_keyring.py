"""keyring.py: each workspace's SP keys made, rotated (stage, activate, retire) and audited,
on the real database (SQLite, or PostgreSQL with WEBWORK_SSO_TEST_DATABASE_URL)."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from webwork_sso_middleware.errors import KeyRotationError, NotFound
from webwork_sso_middleware.sp_keys import SpKeys
from webwork_sso_middleware.sp_keys.vault import SealedKeyUnreadable
from webwork_sso_middleware.store import Database
from webwork_sso_middleware.store.models import AuditEvent, SpKey, Workspace
from webwork_sso_middleware.store.workspaces import Workspaces

from ..constants import SECRET
from ..store_helpers import transaction


@pytest.fixture
def keys(database: Database) -> SpKeys:
    workspaces = Workspaces(database)
    workspaces.create("acme", name="Acme", plan="plus", owner_email="owner@acme.test")
    workspaces.create("globex", name="Globex", plan="plus", owner_email="owner@globex.test")
    return SpKeys(database, secret_keys=[SECRET])


def rows(database: Database, slug: str = "acme") -> dict[str, SpKey]:
    with transaction(database) as unit:
        found = unit.session.scalars(
            select(SpKey)
            .join(Workspace, Workspace.id == SpKey.workspace_id)
            .where(Workspace.slug == slug)
        ).all()
        unit.session.expunge_all()
    return {row.state: row for row in found}


def version(database: Database, slug: str = "acme") -> int:
    with transaction(database) as unit:
        return int(unit.session.scalar(select(Workspace.sp_version).where(Workspace.slug == slug)))


def audit(database: Database) -> list[tuple[str, str, object]]:
    with transaction(database) as unit:
        return [
            (event.actor, event.action, event.changes)
            for event in unit.session.scalars(select(AuditEvent).order_by(AuditEvent.id))
            if event.action.startswith(("sp_key", "saml_settings"))
        ]


# -- the first key ---------------------------------------------------------------------------


def test_ensure_makes_exactly_one_current_key_and_is_idempotent(
    keys: SpKeys, database: Database
) -> None:
    assert rows(database) == {}
    keys.ensure("acme")
    first = rows(database)
    assert set(first) == {"current"}
    assert first["current"].activated_at is not None
    assert version(database) == 1  # a worker that built the SP without a key rebuilds it
    keys.ensure("acme")
    keys.ensure(" ACME ")
    # A second SpKeys (another worker) asks the database and finds the key there.
    SpKeys(database, secret_keys=[SECRET]).ensure("acme")
    assert {state: row.id for state, row in rows(database).items()} == {
        "current": first["current"].id
    }
    assert rows(database, "globex") == {}  # only the workspace asked for
    keys.ensure("no-such-workspace")  # nothing happens, nothing raised


def test_two_workers_racing_to_make_the_first_key_make_one(database: Database) -> None:
    Workspaces(database).create("acme", name="Acme", plan="plus", owner_email="o@acme.test")
    workers = [SpKeys(database, secret_keys=[SECRET]) for _ in range(4)]
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(worker: SpKeys) -> None:
        try:
            start.wait(5)
            worker.ensure("acme")
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert set(rows(database)) == {"current"}
    # Every worker opens the one key.
    fingerprints = {worker.status("acme").current.sha256_fingerprint for worker in workers}  # type: ignore[union-attr]
    assert len(fingerprints) == 1


def test_a_ring_is_for_a_known_workspace(keys: SpKeys, database: Database) -> None:
    with pytest.raises(NotFound):
        keys.status("no-such-workspace")
    with transaction(database) as unit, pytest.raises(NotFound):
        keys.ring(unit, 10_000)
    for step in (keys.stage, keys.activate, keys.retire):
        with pytest.raises(NotFound):
            step("no-such-workspace", actor="test")


# -- rotation ----------------------------------------------------------------------------------


def test_a_full_rotation_stage_activate_retire(keys: SpKeys, database: Database) -> None:
    ring = keys.status("acme")
    assert ring.current is not None and ring.next is None and ring.previous is None
    original = ring.current
    assert ring.published == [original]
    start = ring.version

    staged = keys.stage("acme", actor="test")
    assert staged.current == original and staged.next is not None and staged.previous is None
    assert staged.published == [original, staged.next]  # the metadata now lists both
    assert staged.next.activated_at is None
    assert staged.next.sha256_fingerprint != original.sha256_fingerprint
    assert staged.version > start
    assert staged.all == [staged.next, original]

    activated = keys.activate("acme", actor="test")
    assert activated.current is not None and activated.previous is not None
    assert activated.next is None
    assert activated.current.certificate_pem == staged.next.certificate_pem
    assert activated.current.activated_at is not None
    assert activated.previous.certificate_pem == original.certificate_pem
    assert activated.published == [activated.current]  # the previous key is no longer offered
    # Every key may still open an assertion: the new current first, then the old one.
    assert activated.decryption_keys == [
        activated.current.private_key_pem,
        original.private_key_pem,
    ]
    assert activated.version > staged.version

    previous_id = rows(database)["previous"].id
    retired = keys.retire("acme", actor="test")
    assert retired.previous is None and retired.current == activated.current
    assert retired.decryption_keys == [activated.current.private_key_pem]
    assert retired.version > activated.version
    with transaction(database) as unit:
        assert unit.session.get(SpKey, previous_id) is None  # the row is gone, key and all
    assert set(rows(database)) == {"current"}

    assert audit(database) == [
        ("test", "sp_key_staged", {}),
        ("test", "sp_key_activated", {}),
        ("test", "sp_key_retired", {}),
    ]


def test_decryption_keys_list_current_next_previous(keys: SpKeys) -> None:
    keys.status("acme")
    keys.stage("acme", actor="test")
    keys.activate("acme", actor="test")
    ring = keys.stage("acme", actor="test")
    assert ring.current and ring.next and ring.previous
    assert ring.decryption_keys == [
        ring.current.private_key_pem,
        ring.next.private_key_pem,  # an IdP may encrypt for it as soon as it reads the metadata
        ring.previous.private_key_pem,
    ]
    assert len(set(ring.decryption_keys)) == 3


def test_steps_out_of_order_are_refused_and_change_nothing(
    keys: SpKeys, database: Database
) -> None:
    keys.status("acme")
    before = version(database)
    with pytest.raises(KeyRotationError) as no_next:
        keys.activate("acme", actor="test")
    assert no_next.value.step == "activate" and "--stage" in no_next.value.reason
    with pytest.raises(KeyRotationError) as no_previous:
        keys.retire("acme", actor="test")
    assert no_previous.value.step == "retire"
    staged = keys.stage("acme", actor="test")
    with pytest.raises(KeyRotationError) as twice:
        keys.stage("acme", actor="test")
    assert twice.value.step == "stage" and "--activate" in twice.value.reason
    assert keys.status("acme").next == staged.next  # the staged key is kept as it was
    assert version(database) == before + 1  # only the one stage bumped it
    assert [action for _, action, _ in audit(database)] == ["sp_key_staged"]


def test_activating_with_a_previous_key_still_held_retires_it(
    keys: SpKeys, database: Database
) -> None:
    keys.status("acme")
    keys.stage("acme", actor="test")
    first_previous = keys.activate("acme", actor="test").previous
    keys.stage("acme", actor="test")
    ring = keys.activate("acme", actor="test")
    assert ring.previous is not None and first_previous is not None
    assert ring.previous.certificate_pem != first_previous.certificate_pem
    assert len(rows(database)) == 2


def test_rotation_of_one_workspace_leaves_another_alone(keys: SpKeys) -> None:
    globex = keys.status("globex")
    keys.status("acme")
    keys.stage("acme", actor="test")
    keys.activate("acme", actor="test")
    assert keys.status("globex") == globex


def test_a_step_makes_the_first_key_when_there_is_none(keys: SpKeys, database: Database) -> None:
    ring = keys.stage("acme", actor="test")
    assert ring.current is not None and ring.next is not None
    assert set(rows(database)) == {"current", "next"}


def test_owner_choices_are_kept_versioned_and_audited(keys: SpKeys, database: Database) -> None:
    ring = keys.status("acme")
    assert (ring.sign_authn_requests, ring.require_encrypted_assertions) == (False, False)
    changed = keys.set_choices("acme", actor="settings:link", sign_authn_requests=True)
    assert (changed.sign_authn_requests, changed.require_encrypted_assertions) == (True, False)
    assert changed.version > ring.version
    changed = keys.set_choices("acme", actor="cli", require_encrypted_assertions=True)
    assert (changed.sign_authn_requests, changed.require_encrypted_assertions) == (True, True)
    assert keys.status("globex").require_encrypted_assertions is False
    assert audit(database) == [
        ("settings:link", "saml_settings_changed", {"sign_authn_requests": True}),
        ("cli", "saml_settings_changed", {"require_encrypted_assertions": True}),
    ]


# -- at rest -----------------------------------------------------------------------------------


def test_a_database_dump_never_holds_a_private_key(
    keys: SpKeys, database: Database, database_url: str
) -> None:
    keys.status("acme")
    keys.stage("acme", actor="test")
    ring = keys.activate("acme", actor="test")
    keys.stage("acme", actor="test")
    ring = keys.status("acme")
    secrets = []
    for key in (ring.current, ring.next, ring.previous):
        assert key is not None
        pem = key.private_key_pem.decode()
        body = "".join(pem.splitlines()[1:-1])
        secrets += [pem, body, body[:64], body[-64:]]
    with transaction(database) as unit:
        dump = repr(unit.connection.execute(text("SELECT * FROM sp_keys")).fetchall())
    assert "BEGIN CERTIFICATE" in dump  # the dump is of the keys' rows
    assert "PRIVATE KEY" not in dump
    for secret in secrets:
        assert secret not in dump
    if database.is_sqlite:
        path = Path(make_url(database_url).database or "")
        stored = b"".join(
            candidate.read_bytes()
            for candidate in (path, path.with_name(path.name + "-wal"))
            if candidate.exists()
        )
        assert b"BEGIN CERTIFICATE" in stored
        assert b"PRIVATE KEY" not in stored
        for secret in secrets:
            assert secret.encode() not in stored
        for key in (ring.current, ring.next, ring.previous):
            assert key is not None
            der = base64.b64decode("".join(key.private_key_pem.decode().splitlines()[1:-1]))
            assert der[-48:] not in stored


def test_keys_sealed_under_another_secret_do_not_open(keys: SpKeys, database: Database) -> None:
    keys.status("acme")
    stranger = SpKeys(database, secret_keys=["another-secret-padded-to-thirty-two-bytes"])
    with pytest.raises(SealedKeyUnreadable) as refused:
        stranger.status("acme")
    assert refused.value.reason == "unknown_secret"
    # A site that rotated its secret_key (old one still listed) opens them, and seals new
    # keys under the newest.
    rotated = SpKeys(database, secret_keys=[SECRET, "newer-secret-padded-to-thirty-two-bytes"])
    staged = rotated.stage("acme", actor="test")
    assert staged.next is not None and staged.current is not None
    with pytest.raises(SealedKeyUnreadable):
        keys.status("acme")  # the old list alone cannot open the new key
