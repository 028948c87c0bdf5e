"""vault.py: SP private keys sealed under the site's secret keys, bound to workspace and
certificate, opening across a rotation of secret_key."""

from __future__ import annotations

import base64

import pytest

from webwork_sso_middleware.sp_keys.material import KeyPair, make_key_pair
from webwork_sso_middleware.sp_keys.vault import KeyVault, SealedKeyUnreadable

OLD = "old-secret-padded-to-thirty-two-bytes-at-least"
NEW = "new-secret-padded-to-thirty-two-bytes-at-least"


@pytest.fixture(scope="module")
def pair() -> KeyPair:
    return make_key_pair("acme SAML SP")


@pytest.fixture(scope="module")
def other_pair() -> KeyPair:
    return make_key_pair("globex SAML SP")


def seal(vault: KeyVault, pair: KeyPair, workspace_id: int = 7) -> str:
    return vault.seal(
        pair.key_pem, workspace_id=workspace_id, certificate_pem=pair.cert_pem.decode()
    )


def reason_of(vault: KeyVault, sealed: str, pair: KeyPair, workspace_id: int = 7) -> str:
    with pytest.raises(SealedKeyUnreadable) as refused:
        vault.open(sealed, workspace_id=workspace_id, certificate_pem=pair.cert_pem.decode())
    assert refused.value.workspace_id == workspace_id
    return refused.value.reason


def test_a_sealed_key_opens_to_the_same_pem_and_hides_it(pair: KeyPair) -> None:
    vault = KeyVault([NEW])
    sealed = seal(vault, pair)
    assert (
        vault.open(sealed, workspace_id=7, certificate_pem=pair.cert_pem.decode()) == pair.key_pem
    )
    body = "".join(pair.key_pem.decode().splitlines()[1:-1])
    assert b"PRIVATE KEY" not in sealed.encode() and body[:40] not in sealed
    assert sealed.startswith("v1.")
    # A fresh nonce each time: sealing twice never gives the same text.
    assert seal(vault, pair) != sealed


def test_a_sealed_key_does_not_open_for_another_workspace(pair: KeyPair) -> None:
    vault = KeyVault([NEW])
    sealed = seal(vault, pair, workspace_id=7)
    assert reason_of(vault, sealed, pair, workspace_id=8) == "corrupt"


def test_a_sealed_key_does_not_open_beside_another_certificate(
    pair: KeyPair, other_pair: KeyPair
) -> None:
    vault = KeyVault([NEW])
    sealed = seal(vault, pair)
    assert reason_of(vault, sealed, other_pair) == "corrupt"


def test_rotating_secret_key_newest_seals_and_every_configured_one_opens(pair: KeyPair) -> None:
    under_old = seal(KeyVault([OLD]), pair)
    rotated = KeyVault([OLD, NEW])  # newest last, as secret_key lists are
    assert rotated.open(under_old, workspace_id=7, certificate_pem=pair.cert_pem.decode()) == (
        pair.key_pem
    )
    under_new = seal(rotated, pair)
    # The newest secret sealed it: it opens without the old one, and not with the old alone.
    assert (
        KeyVault([NEW]).open(under_new, workspace_id=7, certificate_pem=pair.cert_pem.decode())
        == pair.key_pem
    )
    assert reason_of(KeyVault([OLD]), under_new, pair) == "unknown_secret"
    assert under_new.split(".")[1] != under_old.split(".")[1]  # named by different key ids


def test_a_secret_no_longer_configured_is_named_as_such(pair: KeyPair) -> None:
    sealed = seal(KeyVault([OLD]), pair)
    assert reason_of(KeyVault([NEW]), sealed, pair) == "unknown_secret"
    with pytest.raises(SealedKeyUnreadable, match="unknown_secret"):
        KeyVault([NEW]).open(sealed, workspace_id=7, certificate_pem=pair.cert_pem.decode())


def test_tampered_or_malformed_sealed_keys_are_corrupt(pair: KeyPair) -> None:
    vault = KeyVault([NEW])
    sealed = seal(vault, pair)
    version, key_id, payload = sealed.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload))
    raw[20] ^= 0x01  # one bit of the ciphertext
    flipped = f"{version}.{key_id}." + base64.urlsafe_b64encode(bytes(raw)).decode()
    for bad in (
        flipped,
        f"{version}.{key_id}." + payload[:-8],  # truncated: the tag is cut
        f"{version}.{key_id}.!!not-base64!!",
        f"{version}.{key_id}.",
        f"v2.{key_id}.{payload}",
        "",
        "garbage",
    ):
        assert reason_of(vault, bad, pair) == "corrupt", bad


def test_a_vault_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        KeyVault([])
