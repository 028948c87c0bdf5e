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
``secret_key``, ``protect``, ``dns_nameservers`` and ``metadata_allowed_hosts`` take several
values separated by whitespace or commas (``protect`` also takes ``true``/``false``). An empty
value counts as unset, so the ``WEBWORK_SSO_<OPTION>`` environment variable applies, as for any
option not given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..config import check_known, from_text
from ..middleware import SSOMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

# An INI value of several items may spread them over lines, as PasteDeploy files usually do.
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
    """INI strings -> ``SSOMiddleware`` keyword options of the right types (config.py parses
    each as it parses the environment, but splits several values by whitespace too)."""
    check_known(raw, where="the [filter:...] section")
    options: dict[str, Any] = {}
    for name, value in raw.items():
        if not isinstance(value, str):
            options[name] = value  # called from Python with typed values: nothing to convert
        elif value.strip():  # empty: unset, so the environment applies
            options[name] = from_text(name, value.strip(), SEPARATORS)
    return options
