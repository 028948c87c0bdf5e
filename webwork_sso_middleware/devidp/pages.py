"""The dev IdP's HTML: every page says it is for development, and every value is escaped."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from ..page_headers import NONE, SELF, hash_source, origin_source, secure_page

TITLE = "Development IdP — not for production"
WARNING = (
    "This identity provider signs in anyone as anyone, without a password. It exists so that "
    "SAML sign-in can be tried on one machine; never point a real site at it."
)
STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#fff8e6;color:#1d2330}
.warning{background:#b3261e;color:#fff;padding:.75rem 1rem;font-weight:600;text-align:center}
main{max-width:36rem;margin:2rem auto;padding:2rem;background:#fff;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.4rem;margin-top:0}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=email],input[type=text]{width:100%;padding:.5rem;font:inherit;box-sizing:border-box}
button,.button{margin:.25rem 0;padding:.5rem 1rem;font:inherit;background:#2b59c3;color:#fff;
border:0;border-radius:4px;cursor:pointer;text-decoration:none;display:inline-block}
ul.users,ul.sps{list-style:none;padding:0}ul.users button{width:100%;text-align:left}
.error{background:#fdecea;border-left:4px solid #b3261e;padding:.5rem 1rem}
.small{color:#555;font-size:.9rem}code{word-break:break-all}
button:focus,input:focus,a:focus{outline:3px solid #f5a623;outline-offset:2px}
"""
AUTOPOST_SCRIPT = "document.forms[0].submit()"
# Fixed blocks, allowed by their hashes: no inline handler or injected block could run.
STYLE_SOURCE = hash_source(STYLE)
AUTOPOST_SOURCE = hash_source(AUTOPOST_SCRIPT)


def page(
    title: str, body_html: str, *, status: int = 200, form_targets: Sequence[str] = ()
) -> Response:
    """A full page under the development warning; ``body_html`` must already be escaped.

    Its forms may post to this IdP and to ``form_targets`` (URLs: their origins are allowed).
    """
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · {escape(TITLE)}</title><style>{STYLE}</style></head>"
        f'<body><div class="warning" role="alert">{escape(TITLE)}</div>'
        f"<main><h1>{escape(title)}</h1>{body_html}</main></body></html>"
    )
    return html_response(document, status=status, styles=STYLE_SOURCE, form_targets=form_targets)


def html_response(
    document: str,
    *,
    status: int = 200,
    styles: str = NONE,
    scripts: str = NONE,
    form_targets: Sequence[str] = (),
) -> Response:
    """``document`` with the package's page headers (page_headers.py): a signed assertion on
    the page must not be cached, and its form may go only where the page says."""
    response = Response(document, status=status, content_type="text/html; charset=utf-8")
    origins = [source for url in form_targets if (source := origin_source(url))]
    return secure_page(response, styles=styles, scripts=scripts, form_action=(SELF, *origins))


def error_page(title: str, message: str, *, status: int = 400, hint_html: str = "") -> Response:
    return page(title, f'<p class="error">{escape(message)}</p>{hint_html}', status=status)


def hidden_fields(fields: Mapping[str, str | None]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
        if value is not None
    )


def autopost_page(action: str, fields: Mapping[str, str | None]) -> str:
    """A page whose form POSTs ``fields`` to ``action`` at once (SAML HTTP-POST binding).

    Without JavaScript it shows a Continue button instead. The script is a fixed block (not an
    ``onload`` handler) so that a CSP can allow exactly it by its hash.
    """
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Signing in</title></head>'
        f'<body><form method="post" action="{escape(action)}">{hidden_fields(fields)}'
        '<noscript><button type="submit">Continue</button></noscript></form>'
        f"<script>{AUTOPOST_SCRIPT}</script></body></html>"
    )


def autopost_response(action: str, fields: Mapping[str, str | None]) -> Response:
    """The auto-post page as a response: its form may go to ``action``'s origin only, and only
    its own script runs."""
    return html_response(
        autopost_page(action, fields), scripts=AUTOPOST_SOURCE, form_targets=(action,)
    )


# The listed user the SP's login hint names: focused, so Enter signs them in.
HINTED = ' autofocus class="hinted"'


def sign_in_body(
    *,
    action: str,
    sp_entity_id: str,
    acs_url: str,
    users: Iterable[tuple[str, str]],
    carry: Mapping[str, str | None],
    error: str | None = None,
    typed: Mapping[str, str] | None = None,
    hint: str = "",
) -> str:
    """Pick a listed user, or type any email (and optional names); ``carry`` rides along hidden.

    ``hint``: the address the SP says was typed there (its login hint). A listed user with
    that address is pre-selected (focused, marked); any other fills the typed field."""
    listed = {email.lower() for email, _ in users}
    users = list(users)
    if hint and not typed and hint.lower() not in listed:
        typed = {"user": hint}
    typed = typed or {}
    hidden = hidden_fields(carry)
    notice = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    hinted_listed = bool(hint) and hint.lower() in listed

    def chosen(email: str) -> bool:
        return bool(hint) and email.lower() == hint.lower()

    buttons = "".join(
        f'<li><button type="submit" name="user" value="{escape(email)}"'
        f"{HINTED if chosen(email) else ''}>"
        f"Sign in as <strong>{escape(label)}</strong> &lt;{escape(email)}&gt;"
        f"{' (the address you typed)' if chosen(email) else ''}</button></li>"
        for email, label in users
    )
    pick = (
        f'<h2>Pick a user</h2><form method="post" action="{escape(action)}">{hidden}'
        f'<ul class="users">{buttons}</ul></form>'
        if buttons
        else ""
    )
    return (
        f"<p>{escape(WARNING)}</p>{notice}"
        f'<p class="small">Signing in to <code>{escape(sp_entity_id)}</code><br>'
        f"Response goes to <code>{escape(acs_url)}</code></p>{pick}"
        f'<h2>Or type any user</h2><form method="post" action="{escape(action)}">{hidden}'
        '<label for="user">Email</label>'
        f'<input id="user" name="user" type="email" required autocomplete="off"'
        f' value="{escape(typed.get("user", ""))}"{"" if hinted_listed or not hint else " autofocus"}>'
        '<label for="first_name">First name (optional)</label>'
        f'<input id="first_name" name="first_name" type="text" maxlength="100"'
        f' value="{escape(typed.get("first_name", ""))}">'
        '<label for="last_name">Last name (optional)</label>'
        f'<input id="last_name" name="last_name" type="text" maxlength="100"'
        f' value="{escape(typed.get("last_name", ""))}">'
        '<p><button type="submit">Sign in</button></p></form>'
    )


def start_body(start_path: str, sps: Mapping[str, str]) -> str:
    """IdP-initiated sign-in: the SPs this IdP knows, each a link to its sign-in form."""
    if not sps:
        return (
            f"<p>{escape(WARNING)}</p><p>No service provider is registered yet. Start the dev "
            "IdP with <code>--sp-metadata-url</code>, or call <code>register_sp()</code>.</p>"
        )
    items = "".join(
        f'<li><a class="button" href="{escape(start_path + "?" + urlencode({"sp": entity_id}))}">'
        f"{escape(entity_id)}</a></li>"
        for entity_id in sorted(sps)
    )
    return (
        f"<p>{escape(WARNING)}</p><p>Sign in to one of the service providers this IdP "
        f'knows, without a request from it (IdP-initiated):</p><ul class="sps">{items}</ul>'
    )


def index_body(*, metadata_url: str, sso_url: str, start_url: str, sps: Iterable[str]) -> str:
    known = "".join(f"<li><code>{escape(entity_id)}</code></li>" for entity_id in sorted(sps))
    return (
        f"<p>{escape(WARNING)}</p>"
        f"<p>Metadata URL (give it to the SP): <code>{escape(metadata_url)}</code></p>"
        f"<p>Single sign-on URL: <code>{escape(sso_url)}</code></p>"
        f"<h2>Registered service providers</h2><ul>{known or '<li>none yet</li>'}</ul>"
        f'<p><a class="button" href="{escape(start_url)}">IdP-initiated sign-in</a></p>'
    )
