"""Typed settings: keyword arguments first, then ``WEBWORK_SSO_<OPTION>`` environment variables.

Every option is declared once, as a field of :class:`Settings`: its name, type, default, how it
is parsed from text, how it is checked, and a one-line help. The environment variable names,
the framework adapters (``integrations/``) and the CLI derive what they need from these fields.
Configuration enters here once; everything inside the package receives plain typed values.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypedDict

from . import option_values as values
from . import roles as role_rules
from .errors import ConfigurationError, UnknownOption
from .logs import LOG_FORMATS
from .metrics import MetricsRegistry
from .option_values import normalise_host  # noqa: F401 (saml/metadata_fetch.py imports it here)

ENV_PREFIX = "WEBWORK_SSO_"
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """The site's options, typed and checked. Each field declares one option once: its name,
    type and default, and in its metadata (:class:`OptionSpec`) how it is parsed and checked
    and a one-line help. Build it with :meth:`from_options`.
    """

    database_url: str = option("sqlite:///webwork_sso.db", "the member store (a SQLAlchemy URL)")
    # Newest key last: it signs; every key in the list verifies (signing.py).
    secret_key: tuple[str, ...] = dataclasses.field(
        metadata={
            "option": OptionSpec(
                "keys that sign cookies and links, newest last",
                parse=values.strings,
                check=values.check_secret_keys,
                many=True,
            )
        }
    )
    base_url: str | None = option(
        None,
        "the public http(s) URL the SAML and SCIM URLs are built from",
        parse=lambda url: values.string(url).rstrip("/"),
        check=values.check_base_url,
    )
    # Advertised in ServiceProviderConfig (filter.maxResults).
    scim_max_results: int = option(
        200, "the most SCIM resources one page returns", check=values.at_least(1)
    )
    max_body_bytes: int = option(
        1024 * 1024, "larger request bodies are refused with 413", check=values.at_least(1024)
    )
    # A fresh SQLite file needs no step at all.
    auto_migrate: bool = option(True, "apply the packaged schema migrations at start-up")
    session_absolute_lifetime: int = option(
        12 * 3600, "seconds a session lasts from sign-in (at least session_idle_lifetime)"
    )
    session_idle_lifetime: int = option(
        2 * 3600,
        "seconds without a request that end a session",
        check=values.at_least(60, " seconds"),
    )
    # The most time a deactivation, logout or "sign out everywhere" takes to reach every worker
    # (and a new SCIM token, or a domain verified elsewhere: SCIM's creates, and a session a
    # sign-in committed as the verification did); past five minutes revocation would no longer
    # be prompt.
    session_recheck_seconds: float = option(
        2.0,
        "seconds a worker trusts its cached check of a session, a SCIM token or a domain's "
        "verifier (0: ask every request)",
        check=values.between(0, 300),
    )
    session_cookie_name: str = option(
        "webwork_sso_session",
        "the session cookie's name",
        check=values.check_cookie_name,
    )
    # Kept normalised (protected_paths.py): matched case-insensitively on resolved paths.
    protect: bool | tuple[str, ...] = option(
        (),
        "path prefixes that require a session, or True for every path but /saml/ and /scim/",
        parse=values.to_protect,
        many=True,
    )
    clock_skew_seconds: int = option(
        180,
        "seconds the IdP's clock may be off in SAML validity windows",
        check=values.between(0, 600),
    )
    # SCIM answers 503 with Retry-After, sign-in shows "try again".
    database_busy_timeout: float = option(
        30.0,
        "seconds a request waits for a database lock or connection before it gives up",
        check=values.between(0, 600, " seconds"),
    )
    # Older events are deleted a batch at a time by the running middleware.
    audit_retention_days: int = option(
        0,
        "days the audit log keeps an event (0: for ever)",
        check=values.between(0, 36500, reason="must be between 0 (keep for ever) and 36500"),
    )
    # "host", "host:port", "[v6]:port"; empty: the system's resolver.
    dns_nameservers: tuple[str, ...] = option(
        (),
        "DNS servers that domain verification asks for TXT records",
        parse=values.to_nameservers,
        many=True,
    )
    # Every other metadata URL must resolve to public addresses only, so owners cannot make the
    # site fetch from its internal network.
    metadata_allowed_hosts: tuple[str, ...] = option(
        (),
        "hosts whose IdP metadata may be fetched whatever address they resolve to",
        parse=values.metadata_allowed_hosts,
        many=True,
    )
    metadata_fetch_timeout: float = option(
        10.0,
        "the most seconds one fetch of IdP metadata may take, redirects and body included",
        check=values.between(0.1, 120, " seconds"),
    )
    # The host's roles, in the order member.roles lists them; empty: no roles (roles.py).
    roles: tuple[str, ...] = option(
        (),
        "the role names the host app declares; owners map groups to them",
        parse=values.strings,
        check=role_rules.check_roles,
        many=True,
    )
    default_role: str | None = option(
        None, "the role of a member none of whose groups maps to one (one of roles)"
    )
    # Off: prometheus_client is never imported. True: a registry of the middleware's own
    # (SSOMiddleware.metrics_app() exposes it); a registry: counted into it (metrics.py).
    metrics: bool | MetricsRegistry = option(
        False,
        "Prometheus metrics: true, or a prometheus_client registry to count into",
        parse=values.to_metrics,
    )
    # "text" leaves the host's logging as it is; "json": logs.JsonLines.
    log_format: str = option(
        "text",
        "text: the package's records go to the host's logging; json: one JSON object per line"
        " on stderr",
        parse=lambda value: values.string(value).strip().lower(),
        check=lambda value: None if value in LOG_FORMATS else "must be text or json",
    )

    @classmethod
    def from_options(
        cls, options: Mapping[str, object], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from keyword options, filling the gaps from the environment.

        ``None`` means "not given"; an empty environment variable means "unset".
        """
        environ = os.environ if environ is None else environ
        check_known(options, where="SSOMiddleware()")
        chosen: dict[str, Any] = {}
        for field in fields():
            given = options.get(field.name)
            if given is not None:
                # An explicit string is one key (or prefix); only text from a file or the
                # environment lists several.
                many = declared(field).many and isinstance(given, str)
                chosen[field.name] = parse(field.name, [given] if many else given)
            elif (raw := environ.get(env_name(field.name))) not in (None, ""):
                chosen[field.name] = from_text(field.name, raw)
        if "secret_key" not in chosen:
            raise ConfigurationError(
                "secret_key", f"is required (pass secret_key= or set {env_name('secret_key')})"
            )
        return cls(**chosen)

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
        if self.default_role is not None and self.default_role not in self.roles:
            raise ConfigurationError(
                "default_role",
                f"{self.default_role!r} is not one of the declared roles "
                f"({', '.join(self.roles) or 'none: set roles first'})",
            )

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
    roles: str | Sequence[str] | None
    default_role: str | None
    metrics: bool | MetricsRegistry | None
    log_format: str | None


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


def check_known(given: Iterable[str], *, where: str, spell: Callable[[str], str] = str) -> None:
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
        if "bool" in str(field.type) and text.strip().lower() in values.TRUE + values.FALSE:
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
    converter = declared(field).parse or values.BY_TYPE[str(field.type)]
    try:
        return converter(value)
    except ConfigurationError:
        raise
    except (TypeError, ValueError) as error:
        # The converters by type say what they expected; the others name the value.
        reason = str(error) if isinstance(error, values.Expected) else f"invalid value {value!r}"
        raise ConfigurationError(name, reason) from None


def _field(name: str) -> dataclasses.Field[Any]:
    return next(field for field in fields() if field.name == name)
