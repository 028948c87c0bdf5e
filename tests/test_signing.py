"""signing.py: one serializer per purpose, keys newest last, one clock tolerance."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

from webwork_sso_middleware.errors import ConfigurationError, SignatureRefused, WebworkSSOError
from webwork_sso_middleware.signing import CLOCK_TOLERANCE, MAX_AGE, Purpose, Signing

OLD = "old-key-padded-to-thirty-two-bytes-at-least"
NEW = "new-key-padded-to-thirty-two-bytes-at-least"
NOW = 1_800_000_000.0


def refusal(signing: Signing, purpose: Purpose, token: str, **options: float) -> str:
    with pytest.raises(SignatureRefused) as refused:
        signing[purpose].loads(token, **options)
    return refused.value.reason


@pytest.mark.parametrize("purpose", list(Purpose), ids=lambda p: p.name)
def test_a_value_round_trips_in_its_own_purpose(purpose: Purpose) -> None:
    signing = Signing([NEW])
    token = signing[purpose].dumps({"who": "ada", "n": [1, 2]}, now=NOW)

    assert signing[purpose].loads(token, now=NOW) == {"who": "ada", "n": [1, 2]}


@pytest.mark.parametrize(
    "made, offered", [pair for pair in itertools.permutations(Purpose, 2)], ids=lambda p: p.name
)
def test_a_value_of_one_purpose_is_refused_by_every_other(made: Purpose, offered: Purpose) -> None:
    signing = Signing([NEW])
    token = signing[made].dumps(["payload"], now=NOW)

    assert refusal(signing, offered, token, now=NOW) == SignatureRefused.WRONG_PURPOSE


def test_every_purpose_has_a_salt_of_its_own() -> None:
    assert len({purpose.salt for purpose in Purpose}) == len(Purpose)


def test_the_newest_key_signs_and_every_key_verifies() -> None:
    old_only, rotated, new_only = Signing([OLD]), Signing([OLD, NEW]), Signing([NEW])
    before = old_only[Purpose.SESSION].dumps([1])
    after = rotated[Purpose.SESSION].dumps([1])

    assert rotated[Purpose.SESSION].loads(before) == [1]  # an old key still verifies
    assert new_only[Purpose.SESSION].loads(after) == [1]  # the newest signed
    assert refusal(old_only, Purpose.SESSION, after) == SignatureRefused.BAD_SIGNATURE


def test_values_signed_before_signing_py_still_verify() -> None:
    """Cookies and links issued by earlier releases: itsdangerous with the same salts."""
    signing = Signing([OLD, NEW])
    untimed = URLSafeSerializer(
        [OLD], salt="webwork_sso.session", signer_kwargs={"digest_method": hashlib.sha256}
    ).dumps([1, "s"])
    timed = URLSafeTimedSerializer(
        [NEW], salt="webwork_sso.settings-link", signer_kwargs={"digest_method": hashlib.sha256}
    ).dumps({"w": 1})

    assert signing[Purpose.SESSION].loads(untimed) == [1, "s"]
    assert signing[Purpose.SETTINGS_LINK].loads(timed) == {"w": 1}
    # And the other way round: what is signed now, an earlier release reads.
    assert URLSafeSerializer(
        [NEW], salt="webwork_sso.session", signer_kwargs={"digest_method": hashlib.sha256}
    ).loads(signing[Purpose.SESSION].dumps([2])) == [2]


@pytest.mark.parametrize("purpose", list(Purpose), ids=lambda p: p.name)
def test_compress_false_signs_the_uncompressed_form_every_reader_takes(purpose: Purpose) -> None:
    signing = Signing([NEW])
    payload = ["shrinks " * 20]
    compressed = signing[purpose].dumps(payload, now=NOW)
    plain = signing[purpose].dumps(payload, now=NOW, compress=False)

    assert compressed.startswith(".") and not plain.startswith(".")  # "." marks zlib
    assert (
        signing[purpose].loads(plain, now=NOW)
        == payload
        == signing[purpose].loads(compressed, now=NOW)
    )
    if purpose is Purpose.SESSION:  # and an earlier release's plain itsdangerous reads it
        assert (
            URLSafeSerializer(
                [NEW], salt="webwork_sso.session", signer_kwargs={"digest_method": hashlib.sha256}
            ).loads(plain)
            == payload
        )


@pytest.mark.parametrize("purpose", sorted(MAX_AGE, key=lambda p: p.name), ids=lambda p: p.name)
def test_a_timed_value_expires_after_its_max_age_and_the_one_tolerance(purpose: Purpose) -> None:
    signing = Signing([NEW])
    token = signing[purpose].dumps("x", now=NOW)
    last = NOW + MAX_AGE[purpose] + CLOCK_TOLERANCE

    assert signing[purpose].loads(token, now=last) == "x"
    assert refusal(signing, purpose, token, now=last + 1) == SignatureRefused.EXPIRED
    # A caller's own (configured) lifetime stands in for the purpose's.
    assert (
        refusal(signing, purpose, token, now=NOW + 10 + CLOCK_TOLERANCE + 1, max_age=10)
        == SignatureRefused.EXPIRED
    )


def test_a_timed_value_signed_ahead_of_our_clock_passes_within_the_tolerance_only() -> None:
    signing = Signing([NEW])
    token = signing[Purpose.SETTINGS_LINK].dumps("x", now=NOW)

    assert signing[Purpose.SETTINGS_LINK].loads(token, now=NOW - CLOCK_TOLERANCE) == "x"
    assert (
        refusal(signing, Purpose.SETTINGS_LINK, token, now=NOW - CLOCK_TOLERANCE - 1)
        == SignatureRefused.NOT_YET_VALID
    )
    payload, signed_at = signing[Purpose.SETTINGS_LINK].loads_signed_at(token, now=NOW)
    assert (payload, signed_at) == ("x", NOW)


def test_an_untimed_value_has_no_age() -> None:
    signing = Signing([NEW])
    token = signing[Purpose.SESSION].dumps([1], now=NOW)

    assert signing[Purpose.SESSION].loads_signed_at(token, now=NOW + 10**8) == ([1], None)


def test_a_tampered_value_is_refused() -> None:
    signing = Signing([NEW])
    token = signing[Purpose.LOGOUT_CSRF].dumps("binding-of-a-session")
    payload, signature = token.rsplit(".", 1)
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")

    for forged in (
        f"{flipped}.{signature}",
        f"{payload}.{signature[::-1]}",
        payload,
        f"{payload}.",
        "garbage",
        "",
        "a" * 5000,
    ):
        assert refusal(signing, Purpose.LOGOUT_CSRF, forged) == SignatureRefused.BAD_SIGNATURE


def test_the_refusal_is_part_of_the_package_s_exception_tree() -> None:
    signing = Signing([NEW])
    with pytest.raises(WebworkSSOError) as refused:
        signing[Purpose.SESSION].loads("garbage")
    assert isinstance(refused.value, SignatureRefused)
    assert refused.value.purpose == "SESSION" and "bad_signature" in str(refused.value)


@pytest.mark.parametrize(
    "keys",
    [[], [""], [NEW, ""], ["", NEW], NEW],
    ids=["none", "one-empty", "empty-newest", "empty-oldest", "a-bare-string"],
)
def test_a_missing_or_empty_key_is_refused(keys) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Signing(keys)
    assert raised.value.option == "secret_key"
