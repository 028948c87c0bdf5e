"""The workspace owner's settings page at ``/saml/<slug>/settings``: views, templates, one
stylesheet, and the signed links that open it."""

from __future__ import annotations

from .links import settings_link
from .views import SettingsPage

__all__ = ["SettingsPage", "settings_link"]
