"""Typed settings: keyword arguments first, then ``WEBWORK_SSO_<OPTION>`` environment variables.

Configuration enters here once; everything inside the package receives plain typed values.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError

ENV_PREFIX = "WEBWORK_SSO_"


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
                # An explicit string is one key; only the environment lists keys by commas.
                values[name] = (value,) if name == "secret_key" and isinstance(value, str) else value
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

    @property
    def signing_key(self) -> str:
        return self.secret_key[-1]


def _coerce(name: str, value: Any) -> Any:
    """Turn an option (possibly an environment string) into the field's type."""
    field_type = {field.name: field.type for field in dataclasses.fields(Settings)}[name]
    try:
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
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except (TypeError, ValueError):
        raise ConfigurationError(name, f"invalid value {value!r}") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)
