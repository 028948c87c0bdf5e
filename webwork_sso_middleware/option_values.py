"""Option values: how config.py's declarations read them from text or Python and check them.

Each converter takes what a caller may give (text from the environment or an INI file, a list,
a typed value) and returns the field's type, or raises ValueError/TypeError (an invalid value)
or ConfigurationError (with its own reason). Each check returns why a value is refused, or None.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from .domains import split_nameserver
from .errors import ConfigurationError, WebworkSSOError
from .metrics import MetricsRegistry
from .protected_paths import normalise_prefix

COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an RFC 6265 token
# Every key signs or verifies session cookies and settings links: a short one can be guessed
# offline from a single cookie. 32 bytes is what ``secrets.token_urlsafe(32)`` gives.
MIN_SECRET_KEY_BYTES = 32
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def at_least(low: float, unit: str = "") -> Callable[[float], str | None]:
    return lambda value: None if value >= low else f"must be at least {low}{unit}"


def between(
    low: float, high: float, unit: str = "", *, reason: str | None = None
) -> Callable[[float], str | None]:
    refused = reason or f"must be between {low} and {high}{unit}"
    # NaN fails both comparisons, so it is refused too.
    return lambda value: None if low <= value <= high else refused


def check_cookie_name(name: str) -> str | None:
    if COOKIE_NAME.match(name):
        return None
    return "must be letters, digits and !#$%&'*+-.^_`|~ only"


class Expected(WebworkSSOError, ValueError):
    """A value of the wrong type or form; the message says what was expected (config.parse
    turns it into a ConfigurationError naming the option)."""


def to_int(value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    elif (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (math.isfinite(value) and value == int(value))
    ):
        return int(value)
    raise Expected(f"must be a whole number, not {value!r}")


def to_float(value: Any) -> float:
    try:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return float(value)
    except ValueError:
        pass
    raise Expected(f"must be a number, not {value!r}")


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
        return value.strip().lower() in TRUE
    raise Expected(f"must be true or false (or 1/0, yes/no, on/off), not {value!r}")


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise Expected(f"must be a string, not {value!r}")
    return value


BY_TYPE: dict[str, Callable[[Any], Any]] = {
    "str": string,
    "str | None": string,
    "int": to_int,
    "float": to_float,
    "bool": to_bool,
}


def strings(values: Iterable[Any]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise TypeError(values)
    strings = tuple(values)
    if not all(isinstance(value, str) for value in strings):
        raise TypeError(values)
    return strings


def check_secret_keys(keys: tuple[str, ...]) -> str | None:
    if not keys or not all(keys):
        return "must be a non-empty string or list of strings"
    if any(len(key.encode("utf-8")) < MIN_SECRET_KEY_BYTES for key in keys):
        # Old keys too: a weak key that still verifies is as good as a weak signing key.
        return (
            f"every key must be at least {MIN_SECRET_KEY_BYTES} bytes; generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return None


def check_base_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if (
        parts.scheme in ("http", "https")
        and parts.netloc
        and not parts.query
        and not (parts.fragment)
    ):
        return None  # a path is allowed: the site may live under a prefix such as /tracker
    return "must be an http(s) URL such as https://tracker.example.com"


def to_metrics(value: Any) -> bool | MetricsRegistry:
    """The ``metrics`` option: true or false (also as text), or a prometheus_client registry
    to count into (metrics.py; recognised by its methods, so nothing imports the library)."""
    if isinstance(value, MetricsRegistry):
        return value
    try:
        return to_bool(value)
    except Expected:
        raise Expected(
            f"must be true, false or a prometheus_client CollectorRegistry, not {value!r}"
        ) from None


def to_protect(value: Any) -> bool | tuple[str, ...]:
    """True, or path prefixes; text gives the words true and false too."""
    if isinstance(value, bool):
        return value or ()
    if isinstance(value, str):
        return to_bool(value) or ()
    prefixes: list[str] = []
    for prefix in strings(value):
        prefix = prefix.strip()
        if not prefix.startswith("/") or any(c.isspace() or c in "?#" for c in prefix):
            raise ValueError(prefix)
        # "/reports/" and "/reports" both mean the /reports page and everything below it;
        # "/Reports" and "/a//b/./c" are matched as "/reports" and "/a/b/c", as requests are.
        normalised = normalise_prefix(prefix)
        if normalised not in prefixes:
            prefixes.append(normalised)
    return tuple(prefixes)


def to_nameservers(value: Iterable[Any]) -> tuple[str, ...]:
    servers = []
    for server in strings(value):
        server = server.strip()
        if server:
            split_nameserver(server)  # a bad port raises ValueError here, not at first use
            servers.append(server)
    return tuple(servers)


def metadata_allowed_hosts(value: Iterable[str]) -> tuple[str, ...]:
    """Host names or IP addresses, without scheme or port.

    Compared with the URL's host as written (after lower-casing), never with what it resolves
    to: allowing ``idp.internal`` does not allow another name that resolves to the same address.
    """
    allowed: list[str] = []
    for host in strings(value):
        cleaned = normalise_host(host)
        if not cleaned:
            continue
        if any(c in cleaned for c in "/@?#* \t") or (":" in cleaned and not _is_ip(cleaned)):
            raise ConfigurationError(
                "metadata_allowed_hosts",
                f"{host.strip()!r} is not a host name or IP address (give no scheme, port or path)",
            )
        allowed.append(cleaned)
    return tuple(dict.fromkeys(allowed))


def normalise_host(host: str) -> str:
    """A host as the allow-list compares it: lower case, no trailing dot or brackets, an IP
    address in its canonical form."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
