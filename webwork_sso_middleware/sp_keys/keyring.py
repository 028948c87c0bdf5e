"""Each workspace's SP keys: made by the middleware, sealed at rest, rotated without downtime.

A rotation is three steps, each a command (``webwork-sso workspace rotate-sp-key SLUG``) and a
button on the settings page, so the IdP can catch up between them:

1. ``stage``: make a *next* key. The SP metadata publishes it beside the current one (for
   signing and encryption) while nothing signs with it yet: IdPs that read the metadata, and
   admins who paste certificates, learn it before it is used.
2. ``activate``: the next key becomes *current* (signs AuthnRequests and logout messages) and
   the current one *previous*, which still decrypts assertions an IdP encrypted for it.
3. ``retire``: the previous key is deleted, private key and all.

Assertions are decrypted with every key the workspace holds (current, next and previous): an
IdP may start encrypting for the next key as soon as it reads it from the metadata.
A workspace's first key is made on its first SAML request (:meth:`SpKeys.ensure`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ..errors import KeyRotationError, NotFound
from ..store import audit
from ..store import sp_keys as key_store
from ..store.db import Database, UnitOfWork
from .material import SP_CERT_DAYS, SP_KEY_BITS, make_key_pair
from .vault import KeyVault

__all__ = ["SpKey", "SpKeyRing", "SpKeys"]

CURRENT, NEXT, PREVIOUS = key_store.CURRENT, key_store.NEXT, key_store.PREVIOUS


@dataclasses.dataclass(frozen=True)
class SpKey:
    state: str
    certificate_pem: str
    private_key_pem: bytes = dataclasses.field(repr=False)
    created_at: dt.datetime
    activated_at: dt.datetime | None

    @property
    def certificate_base64(self) -> str:
        """The certificate as metadata's X509Certificate carries it: base64 DER, one line."""
        return "".join(self.certificate_pem.strip().splitlines()[1:-1])

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem.encode("ascii"))

    @property
    def sha256_fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex(":").upper()


@dataclasses.dataclass(frozen=True)
class SpKeyRing:
    """A workspace's SP keys and SAML choices, as its SP is built from them."""

    workspace_id: int
    current: SpKey | None
    next: SpKey | None
    previous: SpKey | None
    sign_authn_requests: bool
    require_encrypted_assertions: bool
    version: int

    @property
    def published(self) -> list[SpKey]:
        """What the SP metadata lists, for signing and encryption: current, then next."""
        return [key for key in (self.current, self.next) if key is not None]

    @property
    def decryption_keys(self) -> list[bytes]:
        """Private keys (PEM) that may open an encrypted assertion, most likely first."""
        return [k.private_key_pem for k in (self.current, self.next, self.previous) if k]

    @property
    def all(self) -> list[SpKey]:
        return [k for k in (self.next, self.current, self.previous) if k is not None]


class SpKeys:
    """Makes, seals, opens and rotates the SP keys of every workspace."""

    def __init__(self, database: Database, *, secret_keys: Sequence[str]) -> None:
        self.database = database
        self.vault = KeyVault(secret_keys)
        # Slugs whose workspace had a current key when this worker last looked: ensure() asks
        # the database once per workspace and worker.
        self._ensured: set[str] = set()
        self._lock = threading.Lock()

    # -- reading, in the caller's transaction ----------------------------------------------------

    def ring(self, unit: UnitOfWork, workspace_id: int) -> SpKeyRing:
        choices = key_store.choices(unit, workspace_id)
        if choices is None:
            raise NotFound("workspace", str(workspace_id))
        stored = key_store.keys(unit, workspace_id)

        def opened(state: str) -> SpKey | None:
            row = stored.get(state)
            if row is None:
                return None
            private = self.vault.open(
                row.encrypted_private_key,
                workspace_id=workspace_id,
                certificate_pem=row.certificate_pem,
            )
            return SpKey(state, row.certificate_pem, private, row.created_at, row.activated_at)

        return SpKeyRing(
            workspace_id,
            current=opened(CURRENT),
            next=opened(NEXT),
            previous=opened(PREVIOUS),
            sign_authn_requests=choices.sign_authn_requests,
            require_encrypted_assertions=choices.require_encrypted_assertions,
            version=choices.sp_version,
        )

    # -- the first key -------------------------------------------------------------------------

    def ensure(self, slug: str) -> None:
        """Make the workspace's first key if it has none (in a transaction of its own: call it
        before the request's own). Nothing happens for an unknown slug."""
        slug = slug.strip().lower()
        with self._lock:
            if slug in self._ensured:
                return

        def has_key(unit: UnitOfWork) -> bool | None:
            workspace_id = key_store.workspace_id(unit, slug)
            if workspace_id is None:
                return None
            return CURRENT in key_store.keys(unit, workspace_id)

        # Asked in a read transaction first: an unknown slug (anyone can ask for any) must
        # never take SQLite's write lock, and a workspace with its key needs none either.
        found = self.database.run(has_key, write=False)
        if found is None:
            return

        def work(unit: UnitOfWork) -> None:
            workspace_id = key_store.locked_workspace_id(unit, slug)
            if workspace_id is not None and CURRENT not in key_store.keys(unit, workspace_id):
                self._insert_new(unit, workspace_id, slug, CURRENT)

        if not found:
            self.database.run(work)
        with self._lock:
            if len(self._ensured) > 100_000:  # bounded: a cache, never a leak
                self._ensured.clear()
            self._ensured.add(slug)

    def forget(self, slug: str) -> None:
        """Ask the database again next time (a workspace found without a current key)."""
        with self._lock:
            self._ensured.discard(slug.strip().lower())

    # -- rotation ------------------------------------------------------------------------------

    def stage(self, slug: str, *, actor: str) -> SpKeyRing:
        def work(unit: UnitOfWork) -> SpKeyRing:
            workspace_id = self._locked(unit, slug)
            stored = key_store.keys(unit, workspace_id)
            if NEXT in stored:
                raise KeyRotationError(
                    "stage", "a next key is staged already; activate it (--activate) first"
                )
            state = NEXT if CURRENT in stored else CURRENT
            self._insert_new(unit, workspace_id, slug, state)
            self._audit(unit, workspace_id, actor, "sp_key_staged")
            return self.ring(unit, workspace_id)

        return self.database.run(work)

    def activate(self, slug: str, *, actor: str) -> SpKeyRing:
        def work(unit: UnitOfWork) -> SpKeyRing:
            workspace_id = self._locked(unit, slug)
            if NEXT not in key_store.keys(unit, workspace_id):
                raise KeyRotationError(
                    "activate",
                    "no next key is staged; stage one (--stage) and let the IdP read the "
                    "new SP metadata first",
                )
            key_store.activate_next(unit, workspace_id)
            self._audit(unit, workspace_id, actor, "sp_key_activated")
            return self.ring(unit, workspace_id)

        return self.database.run(work)

    def retire(self, slug: str, *, actor: str) -> SpKeyRing:
        def work(unit: UnitOfWork) -> SpKeyRing:
            workspace_id = self._locked(unit, slug)
            if not key_store.delete_key(unit, workspace_id, PREVIOUS):
                raise KeyRotationError("retire", "there is no previous key to retire")
            self._audit(unit, workspace_id, actor, "sp_key_retired")
            return self.ring(unit, workspace_id)

        return self.database.run(work)

    def status(self, slug: str) -> SpKeyRing:
        self.ensure(slug)
        return self.database.run(
            lambda unit: self.ring(unit, self._workspace_id(unit, slug)), write=False
        )

    def set_choices(
        self,
        slug: str,
        *,
        actor: str,
        sign_authn_requests: bool | None = None,
        require_encrypted_assertions: bool | None = None,
    ) -> SpKeyRing:
        """The owner's SAML choices (signing AuthnRequests always, requiring encryption)."""

        def work(unit: UnitOfWork) -> SpKeyRing:
            workspace_id = self._locked(unit, slug)
            key_store.set_choices(
                unit,
                workspace_id,
                sign_authn_requests=sign_authn_requests,
                require_encrypted_assertions=require_encrypted_assertions,
            )
            changes = {
                name: value
                for name, value in (
                    ("sign_authn_requests", sign_authn_requests),
                    ("require_encrypted_assertions", require_encrypted_assertions),
                )
                if value is not None
            }
            self._audit(unit, workspace_id, actor, "saml_settings_changed", changes)
            return self.ring(unit, workspace_id)

        return self.database.run(work)

    # -- helpers -------------------------------------------------------------------------------

    def _insert_new(self, unit: UnitOfWork, workspace_id: int, slug: str, state: str) -> None:
        pair = make_key_pair(f"{slug} SAML SP", days=SP_CERT_DAYS, bits=SP_KEY_BITS)
        certificate = pair.cert_pem.decode("ascii")
        key_store.insert_key(
            unit,
            workspace_id,
            state,
            certificate_pem=certificate,
            encrypted_private_key=self.vault.seal(
                pair.key_pem, workspace_id=workspace_id, certificate_pem=certificate
            ),
        )

    def _locked(self, unit: UnitOfWork, slug: str) -> int:
        workspace_id = key_store.locked_workspace_id(unit, slug)
        if workspace_id is None:
            raise NotFound("workspace", slug)
        if CURRENT not in key_store.keys(unit, workspace_id):
            self._insert_new(unit, workspace_id, slug, CURRENT)
        return workspace_id

    @staticmethod
    def _workspace_id(unit: UnitOfWork, slug: str) -> int:
        workspace_id = key_store.workspace_id(unit, slug)
        if workspace_id is None:
            raise NotFound("workspace", slug)
        return workspace_id

    @staticmethod
    def _audit(
        unit: UnitOfWork,
        workspace_id: int,
        actor: str,
        action: str,
        changes: dict[str, bool] | None = None,
    ) -> None:
        audit.record(
            unit,
            workspace_id=workspace_id,
            actor=actor,
            action=action,
            target_type="workspace",
            target_id=None,
            changes=changes,
        )
