"""Key pairs with self-signed certificates, made with ``cryptography``: the SP keys of every
workspace (sp_keys/keyring.py), and the dev and test IdPs' signing keys (devidp/keys.py).

In SAML a certificate is only a container for the public key: the metadata is the trust anchor,
so nobody checks its issuer, and IdPs (Okta, Entra ID, ADFS) accept a self-signed one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

__all__ = ["SP_CERT_DAYS", "SP_KEY_BITS", "KeyPair", "make_key_pair"]

# RSA 2048 is what Okta, Entra ID and ADFS generate and accept everywhere, and keeps the
# per-sign-in decryption and signing cheap; a workspace moves to a new key by rotation.
SP_KEY_BITS = 2048
# Certificates are containers (above): a long validity spares owners a forced rotation, while
# the rotation command stays the way to replace a key.
SP_CERT_DAYS = 3650


@dataclass(frozen=True)
class KeyPair:
    """A private key and its self-signed certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes

    @property
    def cert_base64(self) -> str:
        """The certificate as metadata and KeyInfo carry it: base64 DER on one line."""
        return "".join(self.cert_pem.decode().splitlines()[1:-1])

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def sha256_fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex(":").upper()

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """``<stem>.key`` and ``<stem>.crt`` in ``directory`` (for pysaml2, which wants files)."""
        directory.mkdir(parents=True, exist_ok=True)
        key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.crt"
        key_path.write_bytes(self.key_pem)
        cert_path.write_bytes(self.cert_pem)
        return key_path, cert_path


def make_key_pair(
    common_name: str = "Test IdP", *, elliptic: bool = False, days: int = 365, bits: int = 2048
) -> KeyPair:
    """A fresh RSA (``bits``) or P-256 key with a self-signed certificate valid for ``days``."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    key = (
        ec.generate_private_key(ec.SECP256R1())
        if elliptic
        else rsa.generate_private_key(65537, bits)
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return KeyPair(key_pem, cert.public_bytes(serialization.Encoding.PEM))
