"""The settings page's "Service provider keys" section: the workspace's SP keys (current, next,
previous) with their fingerprints and dates, the rotation buttons, the certificates to copy or
download, and the owner's two SAML choices. The rotation itself is sp_keys/keyring.py; the POSTs
that press these buttons are actions.py.

Only certificates and dates are shown: a private key never leaves sp_keys/.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from html import escape
from urllib.parse import urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ..sp_keys import SpKeys
from ..sp_keys.vault import SealedKeyUnreadable
from ..store import sp_keys as key_store
from ..store.db import UnitOfWork
from .sections import SettingsView, hidden_fields, when

# The states in the order a rotation moves through them, with what each means to an owner.
STATES = (
    ("current", "Current key", "Signs this site's SAML requests and decrypts assertions."),
    (
        "next",
        "Next key",
        "Published in the SP metadata beside the current key; nothing signs with it until it "
        "is activated. Assertions encrypted for it are decrypted already.",
    ),
    (
        "previous",
        "Previous key",
        "No longer signs or published; still decrypts assertions your IdP encrypted for it, "
        "until it is retired.",
    ),
)
DOWNLOADABLE = ("current", "next")  # the certificates an IdP may need: the published ones


@dataclasses.dataclass(frozen=True)
class KeyFacts:
    """What the page shows of one key: never its private key."""

    state: str
    sha256_fingerprint: str
    created_at: dt.datetime
    activated_at: dt.datetime | None
    not_after: dt.datetime
    certificate_pem: str


@dataclasses.dataclass(frozen=True)
class SpKeysView:
    keys: dict[str, KeyFacts]
    sign_authn_requests: bool
    require_encrypted_assertions: bool
    # Set when the site's secret keys do not open a key (sp_keys/vault.py's reason code).
    unreadable: str | None = None


def load(unit: UnitOfWork, workspace_id: int, sp_keys: SpKeys) -> SpKeysView:
    """The section's facts, in the page's transaction. The keys are opened once too, so a key
    that the site's secret keys no longer open is said on the page rather than at sign-in."""
    unreadable = None
    try:
        ring = sp_keys.ring(unit, workspace_id)
    except SealedKeyUnreadable as error:
        unreadable = error.reason
        choices = key_store.choices(unit, workspace_id)
        signing = bool(choices and choices.sign_authn_requests)
        encryption = bool(choices and choices.require_encrypted_assertions)
    else:
        signing, encryption = ring.sign_authn_requests, ring.require_encrypted_assertions
    facts = {}
    for state, stored in key_store.keys(unit, workspace_id).items():
        # The facts come from the certificate alone, so they show even when a key cannot be
        # opened. Same fingerprint as SpKey.sha256_fingerprint: SHA-256 over the DER.
        certificate = x509.load_pem_x509_certificate(stored.certificate_pem.encode("ascii"))
        facts[state] = KeyFacts(
            state,
            certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
            stored.created_at,
            stored.activated_at,
            certificate.not_valid_after_utc,
            stored.certificate_pem,
        )
    return SpKeysView(facts, signing, encryption, unreadable)


def certificate_url(view: SettingsView, state: str) -> str:
    return f"{view.action_url}?{urlencode({'certificate': state})}"


def section(view: SettingsView, keys: SpKeysView) -> str:
    metadata = escape(view.urls.sp_metadata_url)
    intro = (
        "<p>This site has its own key pair for SAML: it signs the sign-in requests it sends "
        "your IdP, and your IdP can encrypt assertions for it. The site made it; its private "
        "key is stored encrypted and never shown. Your IdP finds the certificates in the "
        f'<a href="{metadata}">SP metadata</a>.</p>'
        '<h3 id="sp-keys-rollover">SP keys and rollover</h3>'
        "<p>A key is replaced in three steps, so sign-in never stops: "
        "<strong>stage</strong> a new key (the SP metadata publishes it beside the current "
        "one; nothing signs with it yet); let your IdP read the SP metadata again, or paste the "
        "new certificate into it, then <strong>activate</strong> it (it signs from then on, "
        "and the old key, now the previous one, still decrypts what was encrypted for it); "
        "once sign-ins work, <strong>retire</strong> the previous key, which deletes it. "
        "From the server: <code>webwork-sso workspace rotate-sp-key "
        f"{escape(view.workspace.slug)}</code>.</p>"
    )
    warning = ""
    if keys.unreadable is not None:
        warning = (
            '<p class="notice error" role="alert" id="sp-keys-unreadable">This site cannot open '
            f"its SAML keys (reason code <code>{escape(keys.unreadable)}</code>): they were "
            "sealed under a secret key the site no longer has. Ask the site's operator to put "
            "that secret key back in the site's configuration. Until then, signed requests and "
            "encrypted assertions fail.</p>"
        )
    listing = "".join(_key(view, keys.keys[state], label, text) for state, label, text in STATES
                      if state in keys.keys)  # fmt: skip
    if keys.unreadable is not None:
        buttons = ""
    elif "current" not in keys.keys:
        # Showing the page writes nothing (a GET), so the first key waits for a SAML request
        # (the IdP reading the SP metadata, a sign-in) or this button.
        listing = (
            "<p>No key yet. It is made when your IdP first reads the SP metadata or someone "
            "first signs in, or now, with this button (for a certificate to give your IdP "
            "before then).</p>"
        )
        buttons = _button(
            view,
            "sp_key_create",
            "Make the key",
            "Makes this site's key pair for the workspace; its certificate then shows here "
            "and in the SP metadata. Sign-in does not change.",
            danger=False,
        )
    else:
        buttons = _rotation_buttons(view, keys)
    return (
        '<section id="sp-keys" aria-labelledby="sp-keys-h">'
        '<h2 id="sp-keys-h">Service provider keys</h2>'
        + intro
        + warning
        + listing
        + buttons
        + '<h3 id="saml-choices-h">Signing and encryption</h3>'
        + _choice(
            view,
            "sign_authn_requests",
            "Sign AuthnRequests",
            keys.sign_authn_requests,
            "On: every sign-in request this site sends is signed with the current key. Either "
            "way, requests are also signed whenever the IdP's metadata asks for it "
            "(WantAuthnRequestsSigned).",
        )
        + _choice(
            view,
            "require_encrypted_assertions",
            "Require encrypted assertions",
            keys.require_encrypted_assertions,
            "On: sign-ins whose assertion is not encrypted are refused. Turn it on only once "
            "your IdP encrypts assertions with this site's certificate (Okta: Assertion "
            "Encryption; Microsoft Entra ID: Token encryption), or nobody can sign in.",
        )
        + "</section>"
    )


def _key(view: SettingsView, key: KeyFacts, label: str, text: str) -> str:
    rows = [
        ("SHA-256 fingerprint", f'<span class="mono">{escape(key.sha256_fingerprint)}</span>'),
        ("Created", when(key.created_at)),
    ]
    if key.state != "next":
        rows.append(("Activated", when(key.activated_at)))
    rows.append(("Certificate valid until", when(key.not_after)))
    facts = (
        '<dl class="facts">'
        + "".join(f"<dt>{escape(name)}</dt><dd>{value}</dd>" for name, value in rows)
        + "</dl>"
    )
    certificate = ""
    if key.state in DOWNLOADABLE:
        field = f"sp-cert-{key.state}"
        name = f"{label} certificate (PEM)"
        certificate = (
            f'<label for="{field}">{escape(name)}</label><div class="copy-row">'
            f'<textarea id="{field}" rows="4" readonly spellcheck="false">'
            f"{escape(key.certificate_pem)}</textarea>"
            f'<button type="button" data-copy="{field}" data-label="{escape(name)}" hidden>'
            f'Copy<span class="visually-hidden"> {escape(name)}</span></button></div>'
            f'<p><a href="{escape(certificate_url(view, key.state))}" '
            f'download="{escape(view.workspace.slug)}-sp-{key.state}.crt">Download the '
            f"{escape(label.lower())}'s certificate</a></p>"
        )
    return (
        f'<div class="sp-key" id="sp-key-{key.state}"><h3>{escape(label)}</h3>'
        f'<p class="help">{escape(text)}</p>{facts}{certificate}</div>'
    )


def _button(view: SettingsView, action: str, label: str, help_text: str, *, danger: bool) -> str:
    help_id = f"{action.replace('_', '-')}-help"
    kind = ' class="danger"' if danger else ""
    return (
        f'<form method="post" action="{escape(view.action_url)}">{hidden_fields(view, action)}'
        f'<button type="submit"{kind} '
        f'aria-describedby="{help_id}">{escape(label)}</button>'
        f'<p class="help" id="{help_id}">{escape(help_text)}</p></form>'
    )


def _rotation_buttons(view: SettingsView, keys: SpKeysView) -> str:
    buttons = ""
    held = keys.keys
    if "next" not in held:
        buttons += _button(
            view,
            "sp_key_stage",
            "Stage a new key",
            "Makes a new key and publishes its certificate in the SP metadata beside the "
            "current one. Nothing changes for sign-in until you activate it.",
            danger=False,
        )
    else:
        also = (
            " The previous key you still hold is deleted now: assertions encrypted for it "
            "are refused from then on."
            if "previous" in held
            else ""
        )
        buttons += _button(
            view,
            "sp_key_activate",
            "Activate the next key",
            "The next key signs this site's requests from now on. Make sure your IdP has its "
            "certificate first (it read the SP metadata again, or you pasted it), or it may "
            "refuse signed requests. The current key becomes the previous key and still "
            "decrypts assertions encrypted for it." + also,
            danger=True,
        )
    if "previous" in held:
        buttons += _button(
            view,
            "sp_key_retire",
            "Retire the previous key",
            "Deletes the previous key for good: assertions your IdP still encrypts for it are "
            "refused from then on. Do this once sign-ins work with the current key.",
            danger=True,
        )
    return f'<div class="sp-key-steps">{buttons}</div>'


def _choice(view: SettingsView, choice: str, label: str, on: bool, text: str) -> str:
    """A switch laid out as the IdP-initiated one (sections.py): the state and the action
    apart, so nobody reads the button's label as the current state."""
    state, action = ("On", "Turn off") if on else ("Off", "Turn on")
    ident = choice.replace("_", "-")
    return (
        f'<form method="post" action="{escape(view.action_url)}" class="switch-row" '
        f'id="{ident}">{hidden_fields(view, "saml_choice")}'
        f'<input type="hidden" name="choice" value="{choice}">'
        f'<p><strong id="{ident}-state">{escape(label)}: {state}</strong><br>'
        f'<span id="{ident}-text">{escape(text)}</span></p>'
        f'<button type="submit" name="state" value="{"off" if on else "on"}" '
        f'aria-describedby="{ident}-state {ident}-text">'
        f'{action}<span class="visually-hidden"> {escape(label)}</span></button></form>'
    )
