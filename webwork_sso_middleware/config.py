"""Typed settings: keyword arguments first, then ``WEBWORK_SSO_<OPTION>`` environment variables.

Configuration enters here once; everything inside the package receives plain typed values.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .domains import split_nameserver
from .errors import ConfigurationError
from .protected_paths import normalise_prefix

ENV_PREFIX = "WEBWORK_SSO_"
COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an RFC 6265 token
# Every key signs or verifies session cookies and settings links: a short one can be guessed
# offline from a single cookie. 32 bytes is what ``secrets.token_urlsafe(32)`` gives.
MIN_SECRET_KEY_BYTES = 32
# Options that take several values: from the environment, separated by commas.
LIST_OPTIONS = ("secret_key", "protect", "metadata_allowed_hosts", "dns_nameservers")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str = "sqlite:///webwork_sso.db"
    # Newest key last: it signs; every key in the list verifies.
    secret_key: tuple[str, ...]
    base_url: str | None = None
    # Ceiling on SCIM ``count``, advertised in ServiceProviderConfig (filter.maxResults).
    scim_max_results: int = 200
    # Request bodies larger than this are refused with 413 before they are read.
    max_body_bytes: int = 1024 * 1024
    # Apply the packaged migrations at start-up (a fresh SQLite file needs no step at all).
    auto_migrate: bool = True
    # Session lifetimes in seconds: from sign-in, and since the last request.
    session_absolute_lifetime: int = 12 * 3600
    session_idle_lifetime: int = 2 * 3600
    # How long a worker trusts its cached check of a session: the most time a deactivation,
    # logout or "sign out everywhere" takes to reach every worker (0: ask on every request).
    session_recheck_seconds: float = 2.0
    session_cookie_name: str = "webwork_sso_session"
    # Path prefixes that require a session, or True for every path but /saml/ and /scim/.
    # Kept normalised (protected_paths.py): matched case-insensitively on resolved paths.
    protect: bool | tuple[str, ...] = ()
    # Tolerance for the IdP's clock in SAML validity windows (NotBefore, NotOnOrAfter).
    clock_skew_seconds: int = 180
    # How long a request waits for a lock another connection holds (SQLite's write lock, a
    # PostgreSQL row lock), or for a PostgreSQL connection, before it gives up (SCIM answers
    # 503 with Retry-After, sign-in shows "try again").
    database_busy_timeout: float = 30.0
    # Days the audit log keeps an event (every sign-in and provisioning change is one); older
    # ones are deleted a batch at a time by the running middleware. 0 keeps them for ever.
    audit_retention_days: int = 0
    # DNS servers that verify-domain asks for TXT records ("host", "host:port", "[v6]:port");
    # empty: the system's resolver.
    dns_nameservers: tuple[str, ...] = ()
    # Hosts whose IdP metadata may be fetched whatever address they resolve to (an IdP on the
    # site's own network, a test IdP on 127.0.0.1). Every other metadata URL must resolve to
    # public addresses only, so owners cannot make the site fetch from its internal network.
    metadata_allowed_hosts: tuple[str, ...] = ()
    # The most seconds one fetch of IdP metadata may take, redirects and the whole body included.
    metadata_fetch_timeout: float = 10.0

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from keyword options, filling the gaps from the environment."""
        environ = os.environ if environ is None else environ
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise ConfigurationError(unknown[0], f"unknown option (known: {', '.join(fields)})")
        values: dict[str, Any] = {}
        for name in fields:
            if options.get(name) is not None:
                value = options[name]
                # An explicit string is one key (or prefix); only the environment lists by commas.
                listed = name in LIST_OPTIONS and isinstance(value, str)
                values[name] = (value,) if listed else value
            elif (raw := environ.get(ENV_PREFIX + name.upper())) not in (None, ""):
                values[name] = raw
        if "secret_key" not in values:
            raise ConfigurationError(
                "secret_key", f"is required (pass secret_key= or set {ENV_PREFIX}SECRET_KEY)"
            )
        return cls(**{name: _coerce(name, value) for name, value in values.items()})

    def __post_init__(self) -> None:
        if not self.secret_key or not all(self.secret_key):
            raise ConfigurationError("secret_key", "must be a non-empty string or list of strings")
        if any(len(key.encode("utf-8")) < MIN_SECRET_KEY_BYTES for key in self.secret_key):
            # Old keys too: a weak key that still verifies is as good as a weak signing key.
            raise ConfigurationError(
                "secret_key", f"every key must be at least {MIN_SECRET_KEY_BYTES} bytes; generate "
                "one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or (
                parts.fragment
            ):
                # A path is allowed: the site may live under a prefix such as /tracker.
                raise ConfigurationError(
                    "base_url", "must be an http(s) URL such as https://tracker.example.com"
                )
            object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.scim_max_results < 1:
            raise ConfigurationError("scim_max_results", "must be at least 1")
        if self.max_body_bytes < 1024:
            raise ConfigurationError("max_body_bytes", "must be at least 1024")
        if self.session_idle_lifetime < 60:
            raise ConfigurationError("session_idle_lifetime", "must be at least 60 seconds")
        if self.session_absolute_lifetime < self.session_idle_lifetime:
            raise ConfigurationError(
                "session_absolute_lifetime", "must be at least session_idle_lifetime"
            )
        # NaN fails both comparisons; past five minutes revocation would no longer be prompt.
        if not 0 <= self.session_recheck_seconds <= 300:
            raise ConfigurationError("session_recheck_seconds", "must be between 0 and 300")
        if not COOKIE_NAME.match(self.session_cookie_name):
            raise ConfigurationError(
                "session_cookie_name", "must be letters, digits and !#$%&'*+-.^_`|~ only"
            )
        if not 0 <= self.clock_skew_seconds <= 600:
            raise ConfigurationError("clock_skew_seconds", "must be between 0 and 600")
        if not 0 <= self.database_busy_timeout <= 600:
            raise ConfigurationError("database_busy_timeout", "must be between 0 and 600 seconds")
        if not 0 <= self.audit_retention_days <= 36500:
            raise ConfigurationError("audit_retention_days", "must be between 0 (keep for ever) "
                                     "and 36500")
        metadata_fetch_timeout(self.metadata_fetch_timeout)

    @property
    def signing_key(self) -> str:
        return self.secret_key[-1]

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry Secure when the public origin is https."""
        return (self.base_url or "").startswith("https://")


def _coerce(name: str, value: Any) -> Any:
    """Turn an option (possibly an environment string) into the field's type."""
    field_type = {field.name: field.type for field in dataclasses.fields(Settings)}[name]
    try:
        if name == "protect":
            return _to_protect(value)
        if name == "dns_nameservers":
            return _to_nameservers(value)
        if name == "metadata_allowed_hosts":
            return metadata_allowed_hosts(value)
        if name == "secret_key":
            if isinstance(value, str):
                # From the environment, several keys are separated by commas, newest last.
                return tuple(key.strip() for key in value.split(",") if key.strip())
            return tuple(value)
        if field_type == "bool":
            return _to_bool(value)
        if field_type == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if field_type == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except ConfigurationError:
        raise
    except (TypeError, ValueError):
        raise ConfigurationError(name, f"invalid value {value!r}") from None


def _to_protect(value: Any) -> bool | tuple[str, ...]:
    """True, or path prefixes. The environment gives "true"/"false" or prefixes by commas;
    an explicit string is one prefix."""
    if isinstance(value, bool):
        return value or ()
    if isinstance(value, str):
        if value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return _to_bool(value) or ()
        value = [part for part in value.split(",") if part.strip()]
    prefixes: list[str] = []
    for prefix in value:
        if not isinstance(prefix, str):
            raise ValueError(prefix)
        prefix = prefix.strip()
        if not prefix.startswith("/") or any(c.isspace() or c in "?#" for c in prefix):
            raise ValueError(prefix)
        # "/reports/" and "/reports" both mean the /reports page and everything below it;
        # "/Reports" and "/a//b/./c" are matched as "/reports" and "/a/b/c", as requests are.
        normalised = normalise_prefix(prefix)
        if normalised not in prefixes:
            prefixes.append(normalised)
    return tuple(prefixes)


def _to_nameservers(value: Any) -> tuple[str, ...]:
    """Nameservers from a list, or from the environment separated by commas."""
    if isinstance(value, str):
        value = value.split(",")
    servers = []
    for server in value:
        if not isinstance(server, str):
            raise ValueError(server)
        server = server.strip()
        if server:
            split_nameserver(server)  # a bad port raises ValueError here, not at first use
            servers.append(server)
    return tuple(servers)
def metadata_allowed_hosts(value: str | Iterable[str]) -> tuple[str, ...]:
    """Host names or IP addresses, without scheme or port; a string separates them by commas.

    Compared with the URL's host as written (after lower-casing), never with what it resolves
    to: allowing ``idp.internal`` does not allow another name that resolves to the same address.
    """
    hosts = value.split(",") if isinstance(value, str) else value
    allowed: list[str] = []
    for host in hosts:
        if not isinstance(host, str):
            raise ValueError(host)
        cleaned = normalise_host(host)
        if not cleaned:
            continue
        if any(c in cleaned for c in "/@?#* \t") or (":" in cleaned and not _is_ip(cleaned)):
            raise ConfigurationError("metadata_allowed_hosts", f"{host.strip()!r} is not a host "
                                     "name or IP address (give no scheme, port or path)")
        allowed.append(cleaned)
    return tuple(dict.fromkeys(allowed))


def metadata_fetch_timeout(value: float | str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0.1 <= seconds <= 120:  # NaN fails too
        raise ConfigurationError("metadata_fetch_timeout", "must be between 0.1 and 120 seconds")
    return seconds


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


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)
