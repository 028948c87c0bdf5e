"""HTML builders for the settings page: the page shells (the document, the message, refusal and
settings-link pages, the settings page's frame); each section of the settings page is in
sections.py. Every value from outside is escaped at the point where it meets markup; callers
pass plain values.

No external assets: the one stylesheet (static/settings.css) and the tiny copy-button script are
inlined under a per-response CSP nonce, and the page works without the script.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from importlib import resources

from . import enforcement_section, roles_section, sections, sp_keys_section
from .sections import SettingsView, hidden_fields, when
from .sp_keys_section import SpKeysView

STYLESHEET = resources.files(__package__).joinpath("static/settings.css").read_text("utf-8")

# Reveals the copy buttons (hidden without JS) and copies: the Clipboard API where the page is a
# secure context, else the selection and execCommand; failing both, it says how to copy by hand.
COPY_SCRIPT = """
(function(){
  var status=document.getElementById('copy-status');
  document.querySelectorAll('button[data-copy]').forEach(function(button){
    button.hidden=false;
    button.addEventListener('click',function(){
      var field=document.getElementById(button.getAttribute('data-copy'));
      var label=button.getAttribute('data-label');
      function say(ok){status.textContent=ok?'Copied '+label+'.':
        'Press Ctrl+C (Cmd+C on a Mac) to copy '+label+'.';button.focus();}
      function legacy(){field.select();try{return document.execCommand('copy');}catch(e){return false;}}
      if(navigator.clipboard&&window.isSecureContext){
        navigator.clipboard.writeText(field.value).then(function(){say(true);},
          function(){say(legacy());});
      }else{say(legacy());}
    });
  });
})();
"""

SECTIONS = (
    ("connection", "Details for your IdP"),
    ("idp", "Identity provider"),
    ("sp-keys", "SP keys"),
    ("domains", "Email domains"),
    ("switches", "SCIM and SSO"),
    ("enforcement", "Require SSO"),
    ("members", "Members"),
    ("diagnostics", "Diagnostics"),
)


def document(title: str, body: str, *, nonce: str, header: str = "") -> str:
    """A full page. ``body`` and ``header`` are markup already escaped by their builders."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f'<title>{escape(title)}</title><style nonce="{nonce}">{STYLESHEET}</style></head>'
        f'<body><a class="skip" href="#content">Skip to content</a>{header}'
        f'<main id="content" tabindex="-1">{body}</main>'
        '<p id="copy-status" class="visually-hidden" role="status" aria-live="polite"></p>'
        f'<script nonce="{nonce}">{COPY_SCRIPT}</script></body></html>'
    )


def message_page(
    title: str,
    paragraphs: list[str],
    *,
    nonce: str,
    links: tuple[tuple[str, str], ...] = (),
) -> str:
    """A page of plain sentences (refusals, a closed session) and the ways on from it
    (``links``: (href, label)); each value is escaped here."""
    body = "".join(f"<p>{escape(text)}</p>" for text in paragraphs)
    return document(
        title, f"<section><h1>{escape(title)}</h1>{body}{ways_on(links)}</section>", nonce=nonce
    )


def ways_on(links: tuple[tuple[str, str], ...]) -> str:
    """A page's links onward, so that no page is a dead end."""
    if not links:
        return ""
    items = "".join(
        f'<li><a href="{escape(href)}">{escape(label)}</a></li>' for href, label in links
    )
    return f'<nav aria-label="Where next"><ul class="ways-on">{items}</ul></nav>'


def forbidden_page(
    reason: str,
    *,
    slug: str,
    sign_in_url: str,
    nonce: str,
    home_url: str = "/",
    sign_out_url: str | None = None,
) -> str:
    others = [(home_url, "Back to the app")]
    if sign_out_url is not None:
        others.append(
            (sign_out_url, "Signed in as someone else? Sign out, then sign in as the owner")
        )
    body = (
        "<section><h1>This page is for the workspace owner</h1>"
        f"<p>{escape(reason)}</p>"
        "<p>The workspace owner can open it by signing in through single sign-on, or with a "
        "settings link from the site's administrators (they last 15 minutes and open the page "
        "once); on the server: <code>webwork-sso workspace settings-link "
        f"{escape(slug)}</code>.</p>"
        f'<p><a class="button" href="{escape(sign_in_url)}">Sign in with SSO</a></p>'
        f"{ways_on(tuple(others))}</section>"
    )
    return document("Settings: access denied", body, nonce=nonce)


def open_link_page(slug: str, *, expires: dt.datetime, nonce: str) -> str:
    """What a settings link shows before it is used: one button that POSTs it.

    The form has no ``action``: it posts back to this very URL, link included, so the page's
    markup never carries the link's token. Plain HTML, so it works without JavaScript.
    """
    body = (
        "<section><h1>Open the settings page</h1>"
        f"<p>This settings link opens the single sign-on settings of workspace "
        f"<code>{escape(slug)}</code>, once, in this browser. It works until "
        f"{when(expires)}.</p>"
        '<form method="post"><input type="hidden" name="action" value="open_link">'
        '<button type="submit">Open the settings page</button></form></section>'
    )
    return document("Open the settings page", body, nonce=nonce)


def settings_page(view: SettingsView, *, nonce: str, sp_keys: SpKeysView | None = None) -> str:
    workspace = view.workspace
    header = (
        '<header class="top">'
        f"<h1>Single sign-on settings: {escape(workspace.name)}</h1>"
        f"<p>Workspace <code>{escape(workspace.slug)}</code> · {escape(workspace.plan.title())} "
        f"plan · {escape(view.viewer)}</p>"
        f'<p><a href="{escape(view.home_url)}" id="back-to-app">Back to the app</a></p>'
        f"{_close_form(view)}</header>"
        '<nav class="sections" aria-label="Sections"><ul>'
        + "".join(f'<li><a href="#{key}">{escape(label)}</a></li>' for key, label in SECTIONS)
        + "</ul></nav>"
    )
    notices = "".join(
        f'<div class="notice {n.kind}" role="{"alert" if n.kind == "error" else "status"}">'
        f"{escape(n.text)}</div>"
        for n in view.notices
    )
    # The test sign-in's result leads the page: it is what the owner came back to see.
    body = (
        notices
        + sections.sign_in_test_result(view)
        + sections.connection(view)
        + sections.identity_provider(view)
        + (sp_keys_section.section(view, sp_keys) if sp_keys is not None else "")
        + sections.domains(view)
        + sections.switches(view)
        + enforcement_section.section(view)
        + roles_section.section(view)
        + sections.members(view)
        + sections.diagnostics(view)
    )
    return document(f"SSO settings: {workspace.name}", body, nonce=nonce, header=header)


def _close_form(view: SettingsView) -> str:
    if not view.can_close:
        return ""
    return (
        f'<form method="post" action="{escape(view.action_url)}">{hidden_fields(view, "close")}'
        '<button type="submit" class="quiet">Close settings</button></form>'
    )
