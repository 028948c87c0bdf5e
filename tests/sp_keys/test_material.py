"""material.py: RSA and P-256 key pairs with self-signed certificates."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from webwork_sso_middleware.sp_keys.material import SP_CERT_DAYS, SP_KEY_BITS, make_key_pair


def test_an_sp_key_pair_is_rsa_2048_self_signed_for_the_common_name() -> None:
    pair = make_key_pair("acme SAML SP", days=SP_CERT_DAYS, bits=SP_KEY_BITS)
    key = serialization.load_pem_private_key(pair.key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    certificate = pair.certificate
    assert certificate.subject == certificate.issuer
    name = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert name == "acme SAML SP"
    # The certificate is the key's: a signature by the key verifies with the certificate.
    public = certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    signature = key.sign(b"message", padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, b"message", padding.PKCS1v15(), hashes.SHA256())
    # Self-signed: the certificate's own signature verifies with its key.
    public.verify(
        certificate.signature,
        certificate.tbs_certificate_bytes,
        padding.PKCS1v15(),
        certificate.signature_hash_algorithm or hashes.SHA256(),
    )
    now = dt.datetime.now(dt.UTC)
    assert certificate.not_valid_before_utc <= now
    lifetime = certificate.not_valid_after_utc - now
    assert dt.timedelta(days=SP_CERT_DAYS - 1) < lifetime <= dt.timedelta(days=SP_CERT_DAYS)


def test_two_key_pairs_differ() -> None:
    first, second = make_key_pair(), make_key_pair()
    assert first.key_pem != second.key_pem
    assert first.sha256_fingerprint != second.sha256_fingerprint
    assert first.certificate.serial_number != second.certificate.serial_number


def test_an_elliptic_pair_is_p256() -> None:
    key = serialization.load_pem_private_key(make_key_pair(elliptic=True).key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_the_forms_metadata_and_files_take(tmp_path: Path) -> None:
    pair = make_key_pair()
    der = pair.certificate.public_bytes(serialization.Encoding.DER)
    assert base64.b64decode(pair.cert_base64) == der and "\n" not in pair.cert_base64
    fingerprint = pair.sha256_fingerprint
    assert len(fingerprint.split(":")) == 32 and fingerprint == fingerprint.upper()
    assert (
        fingerprint.replace(":", "").lower() == pair.certificate.fingerprint(hashes.SHA256()).hex()
    )
    key_path, cert_path = pair.write(tmp_path / "keys", "sp")
    assert key_path.read_bytes() == pair.key_pem and cert_path.read_bytes() == pair.cert_pem
    assert (key_path.name, cert_path.name) == ("sp.key", "sp.crt")
