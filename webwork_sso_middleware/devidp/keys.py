"""The dev IdP's signing key: a self-signed certificate made with ``cryptography``, kept on disk.

The key is made once and reused on every start, because an SP stores the IdP's certificate
from its metadata: a new key at each restart would break every SP configured before it.
Key and certificate live together in one PEM file (``dev_idp.pem``, mode 0600) so they are
created in one atomic step and can never disagree with each other.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..errors import WebworkSSOError
from ..logs import package_logger
from ..sp_keys.material import KeyPair, make_key_pair

__all__ = ["KeyFileError", "KeyPair", "load_or_create_key_pair", "make_key_pair"]

log = package_logger(__name__)

KEY_FILE_NAME = "dev_idp.pem"
# Long enough that a checkout never sees its dev IdP certificate expire in practice; an expired
# one is replaced at the next start (and ``serve`` hands the SP the new metadata each time).
DEV_CERT_DAYS = 3650
# Replaced a little before the end, so that a response signed now still verifies at the SP.
RENEW_BEFORE = dt.timedelta(days=1)
PEM_BLOCK = re.compile(
    rb"-----BEGIN (?P<kind>[A-Z ]+)-----\r?\n.*?-----END (?P=kind)-----\r?\n?", re.S
)


class KeyFileError(WebworkSSOError):
    """The key file cannot be read or written; the message names the file and the reason."""


def load_or_create_key_pair(key_dir: Path, *, common_name: str) -> tuple[KeyPair, Path]:
    """The key pair kept in ``key_dir/dev_idp.pem`` (made on first use) and that file's path.

    pysaml2 reads both its ``key_file`` and its ``cert_file`` from this one file: each reader
    takes the first PEM block of the kind it wants.
    """
    path = Path(key_dir) / KEY_FILE_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            keys = _read(path)
            if keys is not None and _current(keys):
                return keys, path
            log.warning("replacing the dev IdP key in %s: it is unreadable or expired", path)
            _store(path, make_key_pair(common_name, days=DEV_CERT_DAYS), replace=True)
        else:
            _store(path, make_key_pair(common_name, days=DEV_CERT_DAYS), replace=False)
        keys = _read(path)  # what is on disk wins: another process may have written it first
    except OSError as error:
        raise KeyFileError(
            f"cannot keep the dev IdP key in {path}: {error.strerror or error}"
        ) from None
    if keys is None:
        raise KeyFileError(f"{path} does not hold a private key and its certificate; delete it")
    return keys, path


def _read(path: Path) -> KeyPair | None:
    blocks = {match["kind"]: match[0] for match in PEM_BLOCK.finditer(path.read_bytes())}
    key_pem, cert_pem = blocks.get(b"PRIVATE KEY"), blocks.get(b"CERTIFICATE")
    if key_pem is None or cert_pem is None:
        return None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return None
    public = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*public) != cert.public_key().public_bytes(*public):
        return None  # a hand-edited file whose halves no longer belong together
    return KeyPair(key_pem, cert_pem)


def _current(keys: KeyPair) -> bool:
    return keys.certificate.not_valid_after_utc - RENEW_BEFORE > dt.datetime.now(dt.UTC)


def _store(path: Path, keys: KeyPair, *, replace: bool) -> None:
    """Write the file whole or not at all, mode 0600 from the first byte."""
    descriptor, temporary = tempfile.mkstemp(prefix=".dev_idp.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(keys.key_pem + keys.cert_pem)
        if replace:
            os.replace(temporary, path)
            return
        try:
            os.link(temporary, path)  # atomic, and never over a key another process just made
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
