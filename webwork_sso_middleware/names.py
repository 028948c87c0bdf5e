"""One normalisation of userNames and email addresses, for every way a member is named.

``dave@acme.test``, ``dave@acme.test `` (a trailing space), ``Dave@ACME.test``, an NFD spelling
and full-width letters are one member: the *key* of a name (what uniqueness and look-ups use)
is the trimmed name in NFKC, case-folded. Characters that make two names look alike on screen
while comparing unequal (zero-width and other format characters such as the soft hyphen,
controls, line separators, private-use and unassigned code points) are refused outright rather
than stripped, so that nobody can hold a name that displays as somebody else's.
"""

from __future__ import annotations

import unicodedata

from .errors import InvalidName

# Cc control, Cf format (zero-width space, soft hyphen, bidi overrides), Cs surrogate, Co private
# use, Cn unassigned, Zl/Zp line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean(value: str, label: str, *, limit: int = 255) -> str:
    """The name as it is kept and shown: trimmed, in NFC; InvalidName when unusable."""
    value = unicodedata.normalize("NFC", value.strip())
    if not value:
        raise InvalidName(label, "must not be empty")
    for character in value:
        if unicodedata.category(character) in _REFUSED_CATEGORIES:
            raise InvalidName(label, f"must not contain the invisible or control character "
                                     f"U+{ord(character):04X}")
    if len(value) > limit:
        raise InvalidName(label, f"is longer than {limit} characters")
    return value


def key(value: str) -> str:
    """The comparison key of a cleaned name: NFKC, case-folded (full-width and case variants
    of one name share it). Total: any string gets a key, so look-ups of junk simply miss."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value.strip()).casefold())
    local, at, domain = folded.rpartition("@")
    if not at:
        return folded
    # A domain compares as verified domains are kept (domains.py): without the root's trailing
    # dot, and an internationalised one as its A-label (x@bücher.example is
    # x@xn--bcher-kva.example).
    domain = domain.rstrip(".")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return f"{local}@{domain}"


def domain_of(address_key: str) -> str | None:
    """The domain of an address key (``dave@acme.test`` -> ``acme.test``), or None when the key
    is not an address. Domains compare in ASCII: an internationalised one as its A-label."""
    local, at, domain = address_key.rpartition("@")
    if not at or not local or not domain:
        return None
    domain = domain.rstrip(".")
    try:
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return None
