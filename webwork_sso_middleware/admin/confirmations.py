"""Destructive settings actions ask first: regenerating the SCIM token, switching SCIM or single
sign-on off. The page's button posts the action as before; without ``confirmed=yes`` the answer
is a page that says what will break and holds a second form (the same fields, a fresh CSRF
token, ``confirmed=yes``) that does it. Plain HTML forms: it works without JavaScript. Nothing
changes until the second POST, whose CSRF token is checked as every action's is (actions.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from html import escape

from . import templates

CONFIRMED = "yes"  # the second POST's ``confirmed`` field


@dataclasses.dataclass(frozen=True)
class Confirmation:
    title: str
    consequences: tuple[str, ...]
    button: str
    fields: tuple[tuple[str, str], ...]  # what the second POST carries besides the CSRF token


def asked(form: Mapping[str, str]) -> Confirmation | None:
    """The confirmation this POST needs first, or None (not destructive, or confirmed)."""
    if form.get("confirmed") == CONFIRMED:
        return None
    action = form.get("action", "")
    if action == "regenerate_token":
        return Confirmation(
            "Regenerate the SCIM API token?",
            (
                "The current token stops working within seconds: your identity provider's provisioning "
                "(new members, changes, deactivations) stops until you paste the new token into "
                "it.",
                "The new token is shown once, on the next page; copy it straight away.",
            ),
            "Regenerate the token",
            (("action", action),),
        )
    if action == "switch" and form.get("state") == "off":
        feature = form.get("feature")
        if feature == "sso":
            return Confirmation(
                "Turn single sign-on off?",
                (
                    "Every member's single sign-on session ends, on every device, and nobody "
                    "can sign in through your identity provider until you turn it on again.",
                    "Members who have no other way to sign in to this site are locked out "
                    "meanwhile.",
                ),
                "Turn single sign-on off",
                (("action", action), ("feature", "sso"), ("state", "off")),
            )
        if feature == "scim":
            return Confirmation(
                "Turn SCIM provisioning off?",
                (
                    "Your identity provider's provisioning requests are refused until you turn "
                    "it on again: new people are not created here, and someone deactivated in "
                    "the IdP stays active here (and signed in) meanwhile.",
                ),
                "Turn SCIM provisioning off",
                (("action", action), ("feature", "scim"), ("state", "off")),
            )
    return None


def confirmation_page(
    confirmation: Confirmation, *, action_url: str, csrf_token: str, nonce: str
) -> str:
    """The page that asks: what will break, the button that does it, and a way back."""
    fields = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in (*confirmation.fields, ("confirmed", CONFIRMED))
    )
    consequences = "".join(f"<li>{escape(text)}</li>" for text in confirmation.consequences)
    body = (
        '<section aria-labelledby="confirm-h">'
        f'<h1 id="confirm-h">{escape(confirmation.title)}</h1>'
        f"<p>What this will break:</p><ul>{consequences}</ul>"
        f'<form method="post" action="{escape(action_url)}" id="confirm-form">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf_token)}">{fields}'
        f'<button type="submit" class="danger" id="confirm">{escape(confirmation.button)}'
        "</button></form>"
        f'<p><a href="{escape(action_url)}" id="cancel">Cancel: back to the settings page, '
        "nothing changed</a></p></section>"
    )
    return templates.document(confirmation.title, body, nonce=nonce)
