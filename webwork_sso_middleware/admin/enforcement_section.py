"""The settings page's "Require SSO" section: the switch, and the owner's break-glass window.

Every value from outside is escaped here, where it meets markup, as in sections.py.
"""

from __future__ import annotations

from html import escape

from ..store.enforcement import BREAK_GLASS_DEFAULT
from .sections import SettingsView, hidden_fields, when

BREAK_GLASS_MINUTES = int(BREAK_GLASS_DEFAULT.total_seconds() // 60)


def section(view: SettingsView) -> str:
    workspace = view.workspace
    free = workspace.plan not in ("plus", "premium")
    on = workspace.require_sso
    # The state and the action stay apart, as on the IdP-initiated switch.
    state, action = ("On", "Turn off") if on else ("Off", "Turn on")
    domains = ", ".join(workspace.verified_domains) or "none verified yet"
    switch = (
        f'<form method="post" action="{escape(view.action_url)}" class="switch-row" '
        f'id="require-sso">{hidden_fields(view, "require_sso")}'
        f'<p><strong id="require-sso-state">Require SSO: {state}</strong><br>'
        '<span id="require-sso-text">On: the site refuses password sign-in for every address '
        f"at this workspace's verified email domains ({escape(domains)}); those people sign "
        "in through your IdP only. It counts only while single sign-on is on and an identity "
        "provider is set, so a half-done set-up never locks anyone out.</span></p>"
        f'<button type="submit" name="state" value="{"off" if on else "on"}" '
        'aria-describedby="require-sso-state require-sso-text"'
        f"{' disabled' if free and not on else ''}>"
        f'{action}<span class="visually-hidden"> Require SSO</span></button></form>'
    )
    if workspace.break_glass_open:
        window = (
            f'<p id="break-glass-state"><strong>Break-glass is open</strong> until '
            f"{when(workspace.break_glass_until)}: {escape(workspace.owner_email)} may sign in "
            "with a password.</p>"
            f'<form method="post" action="{escape(view.action_url)}" id="break-glass-close">'
            f"{hidden_fields(view, 'break_glass_close')}"
            '<button type="submit">Close break-glass now</button></form>'
        )
    else:
        window = (
            f'<form method="post" action="{escape(view.action_url)}" id="break-glass">'
            f"{hidden_fields(view, 'break_glass_open')}"
            f'<button type="submit">Open break-glass for {BREAK_GLASS_MINUTES} minutes</button>'
            "</form>"
        )
    return (
        '<section id="enforcement" aria-labelledby="enforcement-h">'
        '<h2 id="enforcement-h">Require SSO</h2>'
        f"{switch}"
        "<p><strong>Break-glass.</strong> If your IdP breaks while SSO is required, open a "
        "break-glass window: for its length the owner's address "
        f"({escape(workspace.owner_email)}), and nobody else's, may sign in with a password "
        "again. Opening and closing it is recorded in the audit log. The site's operator can "
        "do the same: <code>webwork-sso workspace break-glass "
        f"{escape(workspace.slug)} [--minutes N] [--close]</code>.</p>"
        f"{window}</section>"
    )
