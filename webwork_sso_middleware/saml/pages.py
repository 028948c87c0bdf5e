"""Small server-rendered HTML pages for browsers: escaped, accessible, no external assets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from werkzeug.wrappers import Response

from ..page_headers import NONE, SELF, hash_source, secure_page
from ..urls import LOGOUT_PATH, SIGN_IN_PATH, PublicUrls

STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:32rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.4rem;margin-top:0}label{display:block;font-weight:600;margin:1rem 0 .25rem}
input[type=email]{width:100%;padding:.5rem;font:inherit;box-sizing:border-box}
button,.button{margin-top:1rem;padding:.5rem 1rem;font:inherit;background:#2b59c3;color:#fff;
border:0;border-radius:4px;cursor:pointer;text-decoration:none;display:inline-block}
button:focus,input:focus,a:focus{outline:3px solid #f5a623;outline-offset:2px}
.reason{font-family:ui-monospace,monospace;background:#eef;padding:.1rem .3rem}
ul.choices{list-style:none;padding:0}
"""
STYLE_SOURCE = hash_source(STYLE)  # a fixed block: pages stay byte-identical between responses


# The "Sign in with SSO" form posts to /saml/login, which redirects to /saml/<slug>/login and on
# to the workspace's IdP. Chromium applies form-action to every redirect of a form submission,
# so that one page must allow wherever an IdP may live (checked in tests/admin/test_browser.py).
SIGN_IN_FORM_ACTION = (SELF, "https:", "http:")


def page(
    title: str,
    body_html: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    form_action: Sequence[str] = (SELF,),
    scripts: str = NONE,
) -> Response:
    """A full HTML page; ``body_html`` must already be escaped.

    Its forms may post only to this site unless ``form_action`` says more (the sign-in form),
    and no script runs unless ``scripts`` names it (the auto-post page's one fixed block).
    """
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body_html}</main></body></html>"
    )
    response = Response(
        html, status=status, headers=headers, content_type="text/html; charset=utf-8"
    )
    return secure_page(response, styles=STYLE_SOURCE, scripts=scripts, form_action=form_action)


# The auto-post page's script: a fixed block, allowed by its hash (no nonce to thread through,
# no inline handler, nothing injected could match it). The page works without it too.
AUTOPOST_SCRIPT = "document.forms[0].submit()"
AUTOPOST_SOURCE = hash_source(AUTOPOST_SCRIPT)


def autopost_page(action: str, fields: Mapping[str, str]) -> Response:
    """A page whose form POSTs ``fields`` to ``action`` at once: the SAML HTTP-POST binding,
    for an IdP that takes AuthnRequests by POST only.

    With JavaScript off (or blocked), the person sees why and presses Continue; the form is
    the same either way. Its form-action is the sign-in form's (SIGN_IN_FORM_ACTION): the IdP
    may redirect the submission on to its login page on another host, and Chromium holds
    every redirect of a form submission to form-action.
    """
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    body = (
        "<p>Taking you to your organisation's sign-in page. If nothing happens, press "
        "Continue.</p>"
        f'<form method="post" action="{escape(action)}">{hidden}'
        '<button type="submit">Continue</button></form>'
        f"<script>{AUTOPOST_SCRIPT}</script>"
    )
    return page("Signing in", body, form_action=SIGN_IN_FORM_ACTION, scripts=AUTOPOST_SOURCE)


def error_page(
    title: str, message: str, *, site: PublicUrls, reason: str | None = None, status: int = 400
) -> Response:
    """A rejection a person can read; the reason code is what an admin looks up. ``site``: the
    public URLs of the request's site (urls.py), for the link that starts over."""
    body = f"<p>{escape(message)}</p>"
    if reason:
        body += f'<p>Reason code: <span class="reason">{escape(reason)}</span></p>'
    body += f'<p><a href="{escape(site.link(SIGN_IN_PATH))}">Try signing in again</a></p>'
    return page(title, body, status=status)


def signed_in_as_other_page(signed_in_as: str, *, site: PublicUrls) -> Response:
    """An unsolicited sign-in refused because the browser holds another member's session."""
    body = (
        f"<p>This browser is signed in as <strong>{escape(signed_in_as)}</strong>. Your identity "
        "provider sent a sign-in for a different account that was not started on this site, "
        f"so it was not used: you are still signed in as {escape(signed_in_as)}.</p>"
        "<p>To use the other account, sign out first, then sign in again.</p>"
        f'<p><a class="button" href="{escape(site.link(LOGOUT_PATH))}">Sign out</a> '
        f'<a href="{escape(site.link("/"))}">Continue as {escape(signed_in_as)}</a></p>'
        '<p>Reason code: <span class="reason">signed_in_as_other</span></p>'
    )
    return page("Already signed in", body, status=409)


def email_form(site: PublicUrls, next_path: str, email: str = "") -> str:
    """The "Sign in with SSO" form; it posts to the sign-in page under the site's mount."""
    return (
        f'<form method="post" action="{escape(site.link(SIGN_IN_PATH))}">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<label for="email">Work email</label>'
        f'<input id="email" name="email" type="email" autocomplete="email" required autofocus '
        f'value="{escape(email)}">'
        '<button type="submit">Continue</button></form>'
    )


def workspace_form(site: PublicUrls, next_path: str, email: str) -> str:
    """The form that names a workspace, for an address no verified domain covers."""
    return (
        f'<form method="post" action="{escape(site.link(SIGN_IN_PATH))}">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        f'<input type="hidden" name="email" value="{escape(email)}">'
        '<label for="workspace">Workspace ID</label>'
        '<input id="workspace" name="workspace" autocomplete="organization" required autofocus '
        'pattern="[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?" spellcheck="false">'
        '<button type="submit">Continue</button></form>'
        + email_form(site, next_path, email).replace("autofocus ", "")
    )
