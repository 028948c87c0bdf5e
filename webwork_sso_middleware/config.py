"""Typed settings: keyword arguments first, then ``WEBWORK_SSO_<OPTION>`` environment variables.

Every option is declared once, as a field of :class:`Settings`: its name, type, default, how it
is parsed from text, how it is checked, and a one-line help. The environment variable names,
the framework adapters (``integrations/``) and the CLI derive what they need from these fields.
Configuration enters here once; everything inside the package receives plain typed values.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypedDict
from urllib.parse import urlsplit

from .domains import split_nameserver
from .errors import ConfigurationError, UnknownOption
from .protected_paths import normalise_prefix

ENV_PREFIX = "WEBWORK_SSO_"
COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an RFC 6265 token
# Every key signs or verifies session cookies and settings links: a short one can be guessed
# offline from a single cookie. 32 bytes is what ``secrets.token_urlsafe(32)`` gives.
MIN_SECRET_KEY_BYTES = 32
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
# How the environment separates the values of an option that takes several.
ENV_SEPARATORS = re.compile(r",")


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """What the declaration of one option says besides its name, type and default."""

    help: str
    # Text, a list, or a typed value -> the field's type; None: converted by the field's type.
    # May raise ValueError/TypeError (reported as an invalid value) or ConfigurationError.
    parse: Callable[[Any], Any] | None = None
    # Why a parsed value is refused, or None when it is acceptable.
    check: Callable[[Any], str | None] | None = None
    # Takes several values: a list, or (from text) values separated by commas.
    many: bool = False


def option(default: Any, help: str, **declared: Any) -> Any:
    """A ``Settings`` field with a default; ``declared`` as :class:`OptionSpec`."""
    return dataclasses.field(default=default, metadata={"option": OptionSpec(help, **declared)})


def _at_least(low: float, unit: str = "") -> Callable[[float], str | None]:
    return lambda value: None if value >= low else f"must be at least {low}{unit}"


def _between(low: float, high: float, unit: str = "") -> Callable[[float], str | None]:
    # NaN fails both comparisons, so it is refused too.
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}{unit}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str = option("sqlite:///webwork_sso.db", "the member store (a SQLAlchemy URL)")
    # Newest key last: it signs; every key in the list verifies.
    secret_key: tuple[str, ...] = dataclasses.field(metadata={"option": OptionSpec(
        "keys that sign cookies and links, newest last", parse=lambda keys: _strings(keys),
        check=lambda keys: _check_secret_keys(keys), many=True)})
    base_url: str | None = option(
        None, "the public http(s) URL the SAML and SCIM URLs are built from",
        parse=lambda url: _string(url).rstrip("/"), check=lambda url: _check_base_url(url))
    # Advertised in ServiceProviderConfig (filter.maxResults).
    scim_max_results: int = option(200, "the most SCIM resources one page returns",
                                   check=_at_least(1))
    max_body_bytes: int = option(1024 * 1024, "larger request bodies are refused with 413",
                                 check=_at_least(1024))
    # A fresh SQLite file needs no step at all.
    auto_migrate: bool = option(True, "apply the packaged schema migrations at start-up")
    session_absolute_lifetime: int = option(
        12 * 3600, "seconds a session lasts from sign-in (at least session_idle_lifetime)")
    session_idle_lifetime: int = option(2 * 3600, "seconds without a request that end a session",
                                        check=_at_least(60, " seconds"))
    # The most time a deactivation, logout or "sign out everywhere" takes to reach every worker;
    # past five minutes revocation would no longer be prompt.
    session_recheck_seconds: float = option(
        2.0, "seconds a worker trusts its cached check of a session (0: ask every request)",
        check=_between(0, 300))
    session_cookie_name: str = option(
        "webwork_sso_session", "the session cookie's name",
        check=lambda name: None if COOKIE_NAME.match(name)
        else "must be letters, digits and !#$%&'*+-.^_`|~ only")
    # Kept normalised (protected_paths.py): matched case-insensitively on resolved paths.
    protect: bool | tuple[str, ...] = option(
        (), "path prefixes that require a session, or True for every path but /saml/ and /scim/",
        parse=lambda value: _to_protect(value), many=True)
    clock_skew_seconds: int = option(
        180, "seconds the IdP's clock may be off in SAML validity windows", check=_between(0, 600))
    # SCIM answers 503 with Retry-After, sign-in shows "try again".
    database_busy_timeout: float = option(
        30.0, "seconds a request waits for a database lock or connection before it gives up",
        check=_between(0, 600, " seconds"))
    # Older events are deleted a batch at a time by the running middleware.
    audit_retention_days: int = option(
        0, "days the audit log keeps an event (0: for ever)",
        check=lambda days: None if 0 <= days <= 36500
        else "must be between 0 (keep for ever) and 36500")
    # "host", "host:port", "[v6]:port"; empty: the system's resolver.
    dns_nameservers: tuple[str, ...] = option(
        (), "DNS servers that domain verification asks for TXT records",
        parse=lambda servers: _to_nameservers(servers), many=True)
    # Every other metadata URL must resolve to public addresses only, so owners cannot make the
    # site fetch from its internal network.
    metadata_allowed_hosts: tuple[str, ...] = option(
        (), "hosts whose IdP metadata may be fetched whatever address they resolve to",
        parse=lambda hosts: metadata_allowed_hosts(hosts), many=True)
    metadata_fetch_timeout: float = option(
        10.0, "the most seconds one fetch of IdP metadata may take, redirects and body included",
        check=_between(0.1, 120, " seconds"))

    @classmethod
    def from_options(
        cls, options: Mapping[str, object], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from keyword options, filling the gaps from the environment.

        ``None`` means "not given"; an empty environment variable means "unset".
        """
        environ = os.environ if environ is None else environ
        check_known(options, where="SSOMiddleware()")
        values: dict[str, Any] = {}
        for field in fields():
            given = options.get(field.name)
            if given is not None:
                # An explicit string is one key (or prefix); only text from a file or the
                # environment lists several.
                many = declared(field).many and isinstance(given, str)
                values[field.name] = parse(field.name, [given] if many else given)
            elif (raw := environ.get(env_name(field.name))) not in (None, ""):
                values[field.name] = from_text(field.name, raw)
        if "secret_key" not in values:
            raise ConfigurationError(
                "secret_key", f"is required (pass secret_key= or set {env_name('secret_key')})"
            )
        return cls(**values)

    def __post_init__(self) -> None:
        for field in fields():
            check = declared(field).check
            reason = check(getattr(self, field.name)) if check is not None else None
            if reason is not None:
                raise ConfigurationError(field.name, reason)
        if self.session_absolute_lifetime < self.session_idle_lifetime:
            raise ConfigurationError(
                "session_absolute_lifetime", "must be at least session_idle_lifetime"
            )

    @property
    def signing_key(self) -> str:
        return self.secret_key[-1]

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry Secure when the public origin is https."""
        return (self.base_url or "").startswith("https://")


class Options(TypedDict, total=False):
    """The keywords ``SSOMiddleware(app, **options)`` accepts, for type checkers.

    The same names as :class:`Settings`, each a little wider: ``None`` means "not given" (the
    environment or the default applies), and an option of several values takes one string or
    any sequence. tests/test_config.py keeps the two in step.
    """

    database_url: str | None
    secret_key: str | Sequence[str] | None
    base_url: str | None
    scim_max_results: int | None
    max_body_bytes: int | None
    auto_migrate: bool | None
    session_absolute_lifetime: int | None
    session_idle_lifetime: int | None
    session_recheck_seconds: float | None
    session_cookie_name: str | None
    protect: bool | str | Sequence[str] | None
    clock_skew_seconds: int | None
    database_busy_timeout: float | None
    audit_retention_days: int | None
    dns_nameservers: str | Sequence[str] | None
    metadata_allowed_hosts: str | Sequence[str] | None
    metadata_fetch_timeout: float | None


def fields() -> tuple[dataclasses.Field[Any], ...]:
    """The declared options, in declaration order."""
    return dataclasses.fields(Settings)


def names() -> tuple[str, ...]:
    return tuple(field.name for field in fields())


def declared(field: dataclasses.Field[Any]) -> OptionSpec:
    found: OptionSpec = field.metadata["option"]
    return found


def env_name(name: str) -> str:
    """The environment variable of an option: ``database_url`` -> ``WEBWORK_SSO_DATABASE_URL``."""
    return ENV_PREFIX + name.upper()


def default(name: str) -> Any:
    """An option's default (``dataclasses.MISSING`` for ``secret_key``, which has none)."""
    return _field(name).default


def check_known(
    given: Iterable[str], *, where: str, spell: Callable[[str], str] = str
) -> None:
    """Raise :class:`UnknownOption` naming every unknown option, as the user spelled it.

    Settings files are where typos live; ``spell`` writes a name as the caller's source does
    (``WEBWORK_SSO_DATABASE_URL`` in a Flask config, ``database_url`` elsewhere).
    """
    known = names()
    unknown = sorted(spell(name) for name in given if name not in known)
    if unknown:
        raise UnknownOption(
            ", ".join(unknown),
            f"unknown option{'s' if len(unknown) > 1 else ''} in {where} "
            f"(known: {', '.join(spell(name) for name in known)})",
        )


def from_text(name: str, text: str, separators: re.Pattern[str] = ENV_SEPARATORS) -> Any:
    """An option from text (an environment variable, an INI file): several values are split by
    ``separators``; ``protect`` also takes the words true and false."""
    field = _field(name)
    if declared(field).many:
        if "bool" in str(field.type) and text.strip().lower() in TRUE + FALSE:
            return parse(name, text)
        return parse(name, [part.strip() for part in separators.split(text) if part.strip()])
    return parse(name, text)


def from_environment(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One option as the environment sets it, parsed and checked; its default when unset."""
    environ = os.environ if environ is None else environ
    raw = environ.get(env_name(name), "")
    return checked(name, from_text(name, raw) if raw.strip() else default(name))


def checked(name: str, value: Any) -> Any:
    """One option converted to its type and checked on its own, or ConfigurationError."""
    value = parse(name, value)
    check = declared(_field(name)).check
    if check is not None and (reason := check(value)) is not None:
        raise ConfigurationError(name, reason)
    return value


def parse(name: str, value: Any) -> Any:
    """An explicit option (or text) converted to the field's type, or ConfigurationError."""
    field = _field(name)
    converter = declared(field).parse or _BY_TYPE[str(field.type)]
    try:
        return converter(value)
    except ConfigurationError:
        raise
    except (TypeError, ValueError) as error:
        # The converters by type say what they expected; the others name the value.
        reason = str(error) if isinstance(error, _Expected) else f"invalid value {value!r}"
        raise ConfigurationError(name, reason) from None


class _Expected(ValueError):
    """A value of the wrong type or form; the message says what was expected."""


def _to_int(value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool) and (
        math.isfinite(value) and value == int(value)
    ):
        return int(value)
    raise _Expected(f"must be a whole number, not {value!r}")


def _to_float(value: Any) -> float:
    try:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return float(value)
    except ValueError:
        pass
    raise _Expected(f"must be a number, not {value!r}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
        return value.strip().lower() in TRUE
    raise _Expected(f"must be true or false (or 1/0, yes/no, on/off), not {value!r}")


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Expected(f"must be a string, not {value!r}")
    return value


_BY_TYPE: dict[str, Callable[[Any], Any]] = {
    "str": _string, "str | None": _string, "int": _to_int, "float": _to_float, "bool": _to_bool,
}


def _field(name: str) -> dataclasses.Field[Any]:
    return next(field for field in fields() if field.name == name)


def _strings(values: Iterable[Any]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise TypeError(values)
    strings = tuple(values)
    if not all(isinstance(value, str) for value in strings):
        raise TypeError(values)
    return strings


def _check_secret_keys(keys: tuple[str, ...]) -> str | None:
    if not keys or not all(keys):
        return "must be a non-empty string or list of strings"
    if any(len(key.encode("utf-8")) < MIN_SECRET_KEY_BYTES for key in keys):
        # Old keys too: a weak key that still verifies is as good as a weak signing key.
        return (f"every key must be at least {MIN_SECRET_KEY_BYTES} bytes; generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return None


def _check_base_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc and not parts.query and not (
        parts.fragment
    ):
        return None  # a path is allowed: the site may live under a prefix such as /tracker
    return "must be an http(s) URL such as https://tracker.example.com"


def _to_protect(value: Any) -> bool | tuple[str, ...]:
    """True, or path prefixes; text gives the words true and false too."""
    if isinstance(value, bool):
        return value or ()
    if isinstance(value, str):
        return _to_bool(value) or ()
    prefixes: list[str] = []
    for prefix in _strings(value):
        prefix = prefix.strip()
        if not prefix.startswith("/") or any(c.isspace() or c in "?#" for c in prefix):
            raise ValueError(prefix)
        # "/reports/" and "/reports" both mean the /reports page and everything below it;
        # "/Reports" and "/a//b/./c" are matched as "/reports" and "/a/b/c", as requests are.
        normalised = normalise_prefix(prefix)
        if normalised not in prefixes:
            prefixes.append(normalised)
    return tuple(prefixes)


def _to_nameservers(value: Iterable[Any]) -> tuple[str, ...]:
    servers = []
    for server in _strings(value):
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
    for host in _strings(value):
        cleaned = normalise_host(host)
        if not cleaned:
            continue
        if any(c in cleaned for c in "/@?#* \t") or (":" in cleaned and not _is_ip(cleaned)):
            raise ConfigurationError("metadata_allowed_hosts", f"{host.strip()!r} is not a host "
                                     "name or IP address (give no scheme, port or path)")
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
