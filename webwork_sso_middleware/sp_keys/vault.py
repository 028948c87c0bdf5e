"""SP private keys encrypted at rest, so that a database dump alone does not reveal them.

Scheme: AES-256-GCM (``cryptography``) under a key derived from the site's ``secret_key`` with
HKDF-SHA256 (its own salt and info, so the derived key is independent of every other use of the
secret). The associated data binds each sealed key to its workspace and certificate: a sealed
key copied into another workspace's row, or beside another certificate, does not open.

Stored form: ``v1.<key id>.<base64url(nonce || ciphertext || tag)>``; the key id is the first 8
hex digits of SHA-256 over the derived key, so a key sealed under a secret that is no longer
configured is named as such instead of failing as "corrupt". ``secret_key`` rotates the usual
way (newest last): the newest seals, every configured one opens. Keep an old secret in the list
until every SP key sealed under it is retired (``rotate-sp-key --stage/--activate/--retire``
seals the new keys under the newest secret).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import WebworkSSOError

__all__ = ["KeyVault", "SealedKeyUnreadable"]

_FORMAT = "v1"
_SALT = b"webwork-sso-middleware sp-key vault"
_NONCE_BYTES = 12


class SealedKeyUnreadable(WebworkSSOError):
    """A sealed SP private key that none of the configured secret keys opens; ``reason``:
    ``unknown_secret`` (sealed under a secret no longer configured) or ``corrupt``."""

    def __init__(self, workspace_id: int, reason: str) -> None:
        super().__init__(
            f"the SP private key of workspace {workspace_id} cannot be opened ({reason}); "
            "keep every secret_key that sealed a live SP key configured"
        )
        self.workspace_id = workspace_id
        self.reason = reason


def _derive(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=b"sp-key v1").derive(
        secret.encode("utf-8")
    )


def _associated_data(workspace_id: int, certificate_pem: str) -> bytes:
    fingerprint = hashlib.sha256(certificate_pem.strip().encode("ascii")).hexdigest()
    return f"webwork-sso sp key|{workspace_id}|{fingerprint}".encode("ascii")


class KeyVault:
    """Seals and opens SP private keys with keys derived from ``secret_keys`` (newest last)."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is needed")
        derived = [_derive(secret) for secret in secret_keys]
        self._sealing = derived[-1]
        # Key id -> derived key, newest first for the common case.
        self._opening = {hashlib.sha256(key).hexdigest()[:8]: key for key in reversed(derived)}

    def seal(self, private_key_pem: bytes, *, workspace_id: int, certificate_pem: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._sealing).encrypt(
            nonce, private_key_pem, _associated_data(workspace_id, certificate_pem)
        )
        key_id = hashlib.sha256(self._sealing).hexdigest()[:8]
        return f"{_FORMAT}.{key_id}." + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, *, workspace_id: int, certificate_pem: str) -> bytes:
        version, _, rest = sealed.partition(".")
        key_id, _, payload = rest.partition(".")
        if version != _FORMAT or not payload:
            raise SealedKeyUnreadable(workspace_id, "corrupt")
        key = self._opening.get(key_id)
        if key is None:
            raise SealedKeyUnreadable(workspace_id, "unknown_secret")
        try:
            raw = base64.urlsafe_b64decode(payload.encode("ascii"))
            return AESGCM(key).decrypt(
                raw[:_NONCE_BYTES],
                raw[_NONCE_BYTES:],
                _associated_data(workspace_id, certificate_pem),
            )
        except (InvalidTag, binascii.Error, ValueError):
            raise SealedKeyUnreadable(workspace_id, "corrupt") from None
