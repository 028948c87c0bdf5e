"""Small server-rendered HTML pages for browsers: escaped, accessible, no external assets."""

from __future__ import annotations

from html import escape

from werkzeug.wrappers import Response

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


def page(title: str, body_html: str, *, status: int = 200,
         headers: dict[str, str] | None = None) -> Response:
    """A full HTML page; ``body_html`` must already be escaped."""
    html = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body_html}</main></body></html>"
    )
    response = Response(html, status=status, headers=headers, content_type="text/html; charset=utf-8")
    # Sign-in pages must not be cached or framed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'"
    return response


def error_page(title: str, message: str, *, reason: str | None = None, status: int = 400) -> Response:
    """A rejection a person can read; the reason code is what an admin looks up."""
    body = f"<p>{escape(message)}</p>"
    if reason:
        body += f'<p>Reason code: <span class="reason">{escape(reason)}</span></p>'
    body += '<p><a href="/saml/login">Try signing in again</a></p>'
    return page(title, body, status=status)


def signed_in_as_other_page(signed_in_as: str) -> Response:
    """An unsolicited sign-in refused because the browser holds another member's session."""
    body = (
        f"<p>This browser is signed in as <strong>{escape(signed_in_as)}</strong>. Your identity "
        "provider sent a sign-in for a different account that was not started on this site, "
        f"so it was not used: you are still signed in as {escape(signed_in_as)}.</p>"
        "<p>To use the other account, sign out first, then sign in again.</p>"
        '<p><a class="button" href="/saml/logout">Sign out</a> '
        f'<a href="/">Continue as {escape(signed_in_as)}</a></p>'
        '<p>Reason code: <span class="reason">signed_in_as_other</span></p>'
    )
    return page("Already signed in", body, status=409)
