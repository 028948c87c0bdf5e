"""names.py: one normalisation for every way a member is named."""

from __future__ import annotations

import pytest

from webwork_sso_middleware.errors import InvalidName
from webwork_sso_middleware.names import clean, domain_of, fold, is_plain_address, key


@pytest.mark.parametrize(
    "spelling",
    [
        "dave@acme.test",
        "Dave@ACME.test",
        " dave@acme.test\t",
        "\uff44ave@acme.test",
        "DAVE@\uff41cme.test",  # full-width letters fold to ASCII
        "dave@acme.test.",  # the root's trailing dot
    ],
)
def test_look_alike_spellings_share_one_key(spelling: str) -> None:
    assert key(clean(spelling, "userName")) == "dave@acme.test"


def test_nfc_and_nfd_spellings_share_one_key_and_are_kept_in_nfc() -> None:
    nfc, nfd = "d\u00e1ve@acme.test", "da\u0301ve@acme.test"
    assert clean(nfd, "userName") == nfc
    assert key(nfc) == key(nfd)


def test_an_internationalised_domain_compares_as_its_a_label() -> None:
    assert (
        key("X@B\u00fccher.example") == key("x@xn--bcher-kva.example") == "x@xn--bcher-kva.example"
    )
    assert domain_of(key("x@B\u00fccher.example")) == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "character",
    [
        "\u200b",  # zero-width space
        "\u200c",
        "\u200d",
        "\u2060",
        "\ufeff",  # joiners, word joiner, BOM
        "\u00ad",  # soft hyphen
        "\u202e",
        "\u2066",  # bidi override and isolate
        "\x00",
        "\x07",
        "\n",
        "\r",
        "\x7f",
        "\x85",  # controls, NEL
        "\u2028",
        "\u2029",  # line and paragraph separators
        "\ue000",  # private use
        "\U000e0001",  # language tag
        "\u034f",
        "\u180b",
        "\ufe0f",
        "\u3164",  # invisible marks and fillers (Default_Ignorable)
    ],
)
def test_invisible_and_control_characters_are_refused(character: str) -> None:
    with pytest.raises(InvalidName) as raised:
        clean(f"da{character}ve@acme.test", "userName")
    assert f"U+{ord(character):04X}" in raised.value.reason
    assert raised.value.label == "userName"


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_a_name_empty_once_trimmed_is_refused(value: str) -> None:
    with pytest.raises(InvalidName):
        clean(value, "userName")


def test_length_is_checked_after_trimming() -> None:
    assert clean(" " + "a" * 255 + " ", "userName") == "a" * 255
    with pytest.raises(InvalidName):
        clean("a" * 256, "userName")


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("dave@acme.test", "acme.test"),
        ("a@b@acme.test", "acme.test"),  # the last @ decides
        ("dave@acme.test.", "acme.test"),
        ("dave", None),
        ("@acme.test", None),
        ("dave@", None),
    ],
)
def test_the_domain_of_an_address_key(address: str, domain: str | None) -> None:
    assert domain_of(key(address)) == domain


@pytest.mark.parametrize("stop", ["\u3002", "\uff61", "\ufe12"])
def test_ideographic_full_stops_end_a_domain_like_a_dot(stop: str) -> None:
    assert key(f"alice@acme.test{stop}") == "alice@acme.test"
    assert domain_of(key(f"alice@acme{stop}test")) == "acme.test"


@pytest.mark.parametrize(
    ("address", "plain"),
    [
        ("dave@acme.test", True),
        ("d.o'neil+x@acme.test", True),
        ("j\u00f6rg@acme.test", True),
        ("<alice@acme.test> x@evil.test", False),
        ("alice@acme.test, x@evil.test", False),
        ("alice@acme.test (x@evil.test", False),
        ("a@acme.test@evil.test", False),
        ("a b@acme.test", False),
        ("acme:1@evil.test", False),
        (".a@acme.test", False),
        ("a..b@acme.test", False),
        ('"a"@acme.test', False),
        ("a@localhost", False),
    ],
)
def test_only_a_plain_address_may_be_remote_user_as_an_email(address: str, plain: bool) -> None:
    assert is_plain_address(key(address)) is plain


def test_a_fragment_is_folded_but_neither_trimmed_nor_read_as_a_domain() -> None:
    assert fold(" DAVE@") == " dave@"
    assert fold("\uff24ave@B\u00fc") == "dave@b\u00fc"  # no IDNA: not a whole domain


def test_printable_ascii_is_exactly_the_ascii_that_passes() -> None:
    """clean() skips its per-character check for printable ASCII: every other ASCII character
    is refused, inside a name, as the check would refuse it."""
    for point in range(128):
        character = chr(point)
        name = f"da{character}ve@acme.test"
        if character.isprintable():
            assert clean(name, "userName") == name
        else:
            with pytest.raises(InvalidName):
                clean(name, "userName")
