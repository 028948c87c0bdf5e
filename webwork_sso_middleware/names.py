"""One normalisation of userNames and email addresses, for every way a member is named.

``dave@acme.test``, ``dave@acme.test `` (a trailing space), ``Dave@ACME.test``, an NFD spelling
and full-width letters are one member: the *key* of a name (what uniqueness and look-ups use)
is the trimmed name in NFKC, case-folded. Characters that make two names look alike on screen
while comparing unequal (zero-width and other format characters such as the soft hyphen,
controls, line separators, private-use and unassigned code points) are refused outright rather
than stripped, so that nobody can hold a name that displays as somebody else's.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidName

# Cc control, Cf format (zero-width space, soft hyphen, bidi overrides), Cs surrogate, Co private
# use, Cn unassigned, Zl/Zp line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt) outside those
# categories: invisible combining marks and fillers (U+034F, the Mongolian and standard
# variation selectors, Hangul fillers) that would make a look-alike of someone's name.
_DEFAULT_IGNORABLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
DOMAIN_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# The local part of an address REMOTE_USER may carry as an email: RFC 5322's dot-atom (letters
# of any script allowed, RFC 6531), nothing a parser could read as a display name or a list.
_DOT_ATOM = re.compile(r"^[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*$")


def _refused(character: str) -> bool:
    if unicodedata.category(character) in _REFUSED_CATEGORIES:
        return True
    point = ord(character)
    return any(low <= point <= high for low, high in _DEFAULT_IGNORABLE)


def clean(value: str, label: str, *, limit: int = 255) -> str:
    """The name as it is kept and shown: trimmed, in NFC; InvalidName when unusable."""
    value = unicodedata.normalize("NFC", value.strip())
    if not value:
        raise InvalidName(label, "must not be empty")
    # Printable ASCII (nearly every address) has none of them: skip the per-character check.
    for character in () if value.isascii() and value.isprintable() else value:
        if _refused(character):
            raise InvalidName(
                label, f"must not contain the invisible or control character U+{ord(character):04X}"
            )
    if len(value) > limit:
        raise InvalidName(label, f"is longer than {limit} characters")
    return value


def key(value: str) -> str:
    """The comparison key of a name: NFKC, case-folded (full-width and case variants of one
    name share it), an address's domain canonical (see :func:`canonical_domain`). Total: any
    string gets a key, so look-ups of junk simply miss."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value.strip()).casefold())
    local, at, domain = folded.rpartition("@")
    if not at:
        return folded
    return f"{local}@{canonical_domain(domain) or domain}"


def fold(fragment: str) -> str:
    """A piece of a name (a SCIM ``co``/``sw``/``ew`` operand) folded as :func:`key` folds
    whole names, but not trimmed and with no domain rules: a fragment is not a name. An
    internationalised domain is kept in keys as its A-label, so a fragment spelling it in
    Unicode matches nothing past the ``@``."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", fragment).casefold())


def canonical_domain(domain: str) -> str | None:
    """A domain as verified domains are kept (domains.py): lower case, an internationalised one
    as its A-label (IDNA also maps the ideographic full stops to dots), then without the root's
    trailing dot. None when it cannot be one (IDNA refuses it)."""
    domain = domain.strip().lower()
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return domain.rstrip(".") or None


def domain_of(address_key: str) -> str | None:
    """The domain of an address key (``dave@acme.test`` -> ``acme.test``), or None when the key
    is not an address with a well-formed domain."""
    local, at, domain = address_key.rpartition("@")
    if not at or not local:
        return None
    canonical = canonical_domain(domain)
    return canonical if canonical and DOMAIN_PATTERN.match(canonical) else None


def is_plain_address(address_key: str) -> bool:
    """An address key that reads as exactly one email address to any parser: one ``@``, a
    dot-atom local part, a well-formed domain. Only such a key may be REMOTE_USER as an email
    (identity.py); ``<a@x.test> b@y.test`` or ``a@x.test, b@y.test`` never are."""
    local, at, domain = address_key.partition("@")
    return bool(
        at and _DOT_ATOM.match(local) and DOMAIN_PATTERN.match(domain) and len(address_key) <= 320
    )
