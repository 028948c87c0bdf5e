"""Everything the site signs, declared once: one itsdangerous serializer per purpose.

Each purpose has its own salt, so a value signed for one (a CSRF token) never passes as another
(a session cookie). The salts are the ones each module used before this one existed, and the
wire format is itsdangerous's own (URL-safe JSON, HMAC-SHA256, ``django-concat`` key
derivation), so cookies and links issued before an upgrade still verify.

Keys rotate the itsdangerous way: ``secret_keys`` newest last; the newest signs, every key
verifies. A purpose is either *timed* (the signature carries when it was made: settings links
and the owner-settings cookie) with a ``max_age``, or untimed (the payload carries its own times,
which its module judges: session cookies, CSRF tokens, the sign-in state cookies). Ages are
judged against the caller's clock with one tolerance, :data:`CLOCK_TOLERANCE`, either way:
itsdangerous's own ``max_age`` refuses anything signed a second "in the future", which another
host's clock (or the CLI's, on another machine) makes routine.

Speed: a session cookie is verified on every request the host app serves. itsdangerous builds a
signer and derives a key per key and per ``loads``; here each purpose's signer is built once
with its keys derived up front, which leaves one HMAC per key tried.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Sequence
from typing import Any

from itsdangerous import BadData, BadSignature, Signer, TimestampSigner, URLSafeSerializer
from itsdangerous.encoding import base64_decode, base64_encode, int_to_bytes, want_bytes
from itsdangerous.serializer import Serializer

from .errors import ConfigurationError, SignatureRefused

CLOCK_TOLERANCE = 60.0  # seconds another host's clock may differ from ours, for every purpose
MAX_TOKEN_LENGTH = 4096  # longer than any value signed here (a cookie is at most ~4 kB)


class Purpose(enum.Enum):
    """What a signed value is for; the value is its salt (unchanged since before signing.py)."""

    SESSION = "webwork_sso.session"
    SETTINGS_LINK = "webwork_sso.settings-link"
    SETTINGS_SESSION = "webwork_sso.settings-session"
    SETTINGS_CSRF = "webwork_sso.settings-csrf"
    LOGOUT_CSRF = "webwork_sso.logout"
    LOGIN_REQUESTS = "webwork_sso.login-requests"
    PENDING_SIGN_IN = "webwork_sso.pending-sign-in"
    LOGOUT_REQUESTS = "webwork_sso.logout-requests"  # saml/single_logout.py
    SIGN_IN_TEST = "webwork_sso.sign-in-test"  # sessions/sign_in_tests.py

    @property
    def salt(self) -> str:
        return self.value


# The timed purposes and the longest they live (a caller may ask for less, or configure the
# settings session's lifetime). Untimed purposes carry their own times in the payload.
MAX_AGE: dict[Purpose, float] = {
    Purpose.SETTINGS_LINK: 15 * 60.0,
    Purpose.SETTINGS_SESSION: 30 * 60.0,
}


class _DerivedKeys:
    """A signer whose keys are derived once, at construction, rather than on every call."""

    secret_keys: list[bytes]

    def _derive_all(self) -> None:
        derive = super().derive_key  # type: ignore[misc]
        self._derived = {key: derive(key) for key in self.secret_keys}
        self._verifying = [self._derived[key] for key in reversed(self.secret_keys)]

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        key = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        return self._derived[key]

    def verify_signature(self, value: str | bytes, sig: str | bytes) -> bool:
        try:
            raw = base64_decode(sig)
        except BadData:  # the only thing base64_decode raises
            return False
        value = want_bytes(value)
        verify = self.algorithm.verify_signature  # type: ignore[attr-defined]
        return any(verify(key, value, raw) for key in self._verifying)  # newest first


class _Signer(_DerivedKeys, Signer):
    def __init__(self, secret_keys: list[str], salt: str) -> None:
        Signer.__init__(self, secret_keys, salt=salt, digest_method=hashlib.sha256)
        self._derive_all()


class _TimestampSigner(_DerivedKeys, TimestampSigner):
    def __init__(self, secret_keys: list[str], salt: str) -> None:
        TimestampSigner.__init__(self, secret_keys, salt=salt, digest_method=hashlib.sha256)
        self._derive_all()

    def sign_at(self, value: bytes, timestamp: float) -> bytes:
        """``TimestampSigner.sign`` with the caller's clock rather than ``time.time()``."""
        value = value + self.sep + base64_encode(int_to_bytes(int(timestamp)))
        return value + self.sep + self.get_signature(value)


class SignedSerializer:
    """Signs and verifies the values of one purpose (get it from :class:`Signing`)."""

    def __init__(self, purpose: Purpose, secret_keys: list[str], tolerance: float) -> None:
        self.purpose = purpose
        self.max_age = MAX_AGE.get(purpose)
        self.tolerance = tolerance
        self._timed = self.max_age is not None
        self._signer = (_TimestampSigner if self._timed else _Signer)(secret_keys, purpose.salt)
        # Only its JSON + base64 (+ zlib) payload handling is used: the signer is ours.
        self._payloads = URLSafeSerializer(secret_keys, salt=purpose.salt)
        self._others: list[Signer] = []  # the other purposes', to say "wrong purpose"

    def dumps(self, payload: Any, *, now: float | None = None, compress: bool = True) -> str:
        """The signed value; a timed purpose records ``now`` (default: ``time.time()``).

        ``compress=False`` skips itsdangerous's zlib attempt, for a payload too short and too
        random for it to save more than a few bytes (a session cookie): the value is then
        itsdangerous's uncompressed form, which every reader of the purpose takes as before.
        """
        value = (
            self._payloads.dump_payload(payload)
            if compress
            else base64_encode(Serializer.dump_payload(self._payloads, payload))
        )
        if isinstance(self._signer, _TimestampSigner):
            signed = self._signer.sign_at(value, time.time() if now is None else now)
        else:
            signed = self._signer.sign(value)
        return signed.decode("ascii")

    def loads(self, token: str, *, now: float | None = None, max_age: float | None = None) -> Any:
        """The payload of a genuine value of this purpose, within its age; else raises
        :class:`SignatureRefused`."""
        return self.loads_signed_at(token, now=now, max_age=max_age)[0]

    def loads_signed_at(
        self, token: str, *, now: float | None = None, max_age: float | None = None
    ) -> tuple[Any, float | None]:
        """As :meth:`loads`, with when it was signed (epoch seconds; None when untimed).

        ``max_age`` stands in for the purpose's own (a configured lifetime).
        """
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise SignatureRefused(self.purpose.name, SignatureRefused.BAD_SIGNATURE)
        signed_at: float | None = None
        try:
            if isinstance(self._signer, _TimestampSigner):
                value, when = self._signer.unsign(token, return_timestamp=True)
                signed_at = when.timestamp()
            else:
                value = self._signer.unsign(token)
            payload = self._payloads.load_payload(value)
        except BadSignature:
            raise self._refusal(token) from None
        except BadData:  # a payload that verifies yet does not decode: not one of ours
            raise SignatureRefused(self.purpose.name, SignatureRefused.BAD_SIGNATURE) from None
        if signed_at is not None:
            self._check_age(signed_at, time.time() if now is None else now, max_age)
        return payload, signed_at

    def _check_age(self, signed_at: float, now: float, max_age: float | None) -> None:
        assert self.max_age is not None
        limit = self.max_age if max_age is None else max_age
        if signed_at > now + self.tolerance:
            raise SignatureRefused(self.purpose.name, SignatureRefused.NOT_YET_VALID)
        if now - signed_at > limit + self.tolerance:
            raise SignatureRefused(self.purpose.name, SignatureRefused.EXPIRED)

    def _refusal(self, token: str) -> SignatureRefused:
        # Only on the refusal path: a forged value costs one HMAC per purpose and key more.
        for other in self._others:
            try:
                Signer.unsign(other, token)  # the signature alone, timed or not
            except BadData:
                continue
            return SignatureRefused(self.purpose.name, SignatureRefused.WRONG_PURPOSE)
        return SignatureRefused(self.purpose.name, SignatureRefused.BAD_SIGNATURE)


class Signing:
    """The site's keys, and a serializer per purpose built once (keys derived once).

    ``secret_keys``: newest last; the newest signs, every key verifies. ``tolerance``: how far
    another host's clock may be off, for every timed purpose (callers judging their own
    payload's times use it too).
    """

    def __init__(self, secret_keys: Sequence[str], *, tolerance: float = CLOCK_TOLERANCE) -> None:
        if isinstance(secret_keys, str) or not secret_keys or not all(secret_keys):
            raise ConfigurationError("secret_key", "at least one non-empty key is required")
        keys = list(secret_keys)
        self.tolerance = tolerance
        self._serializers = {
            purpose: SignedSerializer(purpose, keys, tolerance) for purpose in Purpose
        }
        for purpose, serializer in self._serializers.items():
            serializer._others = [
                other._signer for p, other in self._serializers.items() if p is not purpose
            ]

    def __getitem__(self, purpose: Purpose) -> SignedSerializer:
        return self._serializers[purpose]
