"""Where the Django adapter's password backend asks ``sso_required``: the middleware that
``sso_wsgi_application`` built in this process, else a store opened from
``settings.WEBWORK_SSO["database_url"]`` (or ``WEBWORK_SSO_DATABASE_URL``), for processes that
serve no requests through the middleware (``manage.py``, Django's test client).

No Django model is imported here, so integrations.django may import it before setup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from django.conf import settings

from .. import config
from ..store import Database
from ..store.workspaces import Workspaces

SETTINGS_NAME = "WEBWORK_SSO"

_lock = threading.Lock()
_registered: Callable[[str], bool] | None = None
_fallback: Workspaces | None = None


def register(sso_required: Callable[[str], bool] | None) -> None:
    """Answer from this callable (the middleware's ``sso_required``) from now on."""
    global _registered, _fallback
    with _lock:
        _registered = sso_required
        if _fallback is not None:
            _fallback.database.dispose()
            _fallback = None


def sso_required(email: str) -> bool:
    ask = _registered
    if ask is None:
        ask = _fallback_workspaces().sso_required
    return ask(email)


def _fallback_workspaces() -> Workspaces:
    global _fallback
    with _lock:
        if _fallback is None:
            options = getattr(settings, SETTINGS_NAME, {})
            url = options.get("database_url") if isinstance(options, Mapping) else None
            url = (
                config.checked("database_url", url)
                if url is not None
                else config.from_environment("database_url")
            )
            # Reading only: the site that serves requests migrates the schema.
            _fallback = Workspaces(Database(url, auto_migrate=False))
        return _fallback
