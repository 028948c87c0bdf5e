"""PasteDeploy: ``egg:webwork-sso-middleware#sso`` as a filter in an INI pipeline.

::

    [pipeline:main]
    pipeline = sso myapp

    [filter:sso]
    use = egg:webwork-sso-middleware#sso
    base_url = https://tracker.example.com
    database_url = postgresql+psycopg://sso@db.internal/webwork_sso
    protect = /reports /admin
    session_recheck_seconds = 2
    # secret_key: better from WEBWORK_SSO_SECRET_KEY than from a file under version control

INI values are strings; each is converted to the option's type here, and an unknown option or a
value that does not convert raises ``ConfigurationError`` naming it, when the pipeline loads.
``secret_key``, ``protect`` and ``metadata_allowed_hosts`` take several values separated by whitespace or commas
(``protect`` also takes ``true``/``false``). An empty value counts as unset, so the
``WEBWORK_SSO_<OPTION>`` environment variable applies, as for any option not given.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import ConfigurationError
from ..middleware import SSOMiddleware
from .options import check_known

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

LIST_OPTIONS = ("secret_key", "protect", "metadata_allowed_hosts")
TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")
SEPARATORS = re.compile(r"[\s,]+")


def filter_factory(
    global_conf: Mapping[str, str], **local_conf: str
) -> Callable[[WSGIApplication], SSOMiddleware]:
    """The ``paste.filter_factory`` entry point: options come from the filter's own section.

    ``global_conf`` (the ``[DEFAULT]`` section: ``here``, ``__file__`` and the like) is not
    read; options belong in ``[filter:sso]``, where a typo is caught.
    """
    options = typed_options(local_conf)

    def sso_filter(app: WSGIApplication) -> SSOMiddleware:
        return SSOMiddleware(app, **options)

    return sso_filter


def typed_options(raw: Mapping[str, str]) -> dict[str, Any]:
    """INI strings -> ``SSOMiddleware`` keyword options of the right types."""
    check_known(raw, where="the [filter:...] section")
    options: dict[str, Any] = {}
    for name, value in raw.items():
        if not isinstance(value, str):
            options[name] = value  # called from Python with typed values: nothing to convert
        elif value.strip():  # empty: unset, so the environment applies
            options[name] = _convert(name, value.strip())
    return options


def _convert(name: str, value: str) -> Any:
    if name in LIST_OPTIONS:
        if name == "protect" and value.lower() in TRUE + FALSE:
            return value.lower() in TRUE
        return [part for part in SEPARATORS.split(value) if part]
    kind = _field_types().get(name)
    if kind == "bool":
        if value.lower() not in TRUE + FALSE:
            raise ConfigurationError(name, f"must be true or false, not {value!r}")
        return value.lower() in TRUE
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            raise ConfigurationError(name, f"must be a whole number, not {value!r}") from None
    if kind == "float":
        try:
            return float(value)
        except ValueError:
            raise ConfigurationError(name, f"must be a number, not {value!r}") from None
    return value  # strings (URLs, names) and any option the core checks itself


def _field_types() -> dict[str, str]:
    # The settings dataclass declares each option's type (as a string, postponed annotations).
    return {field.name: str(field.type) for field in dataclasses.fields(Settings)}
