"""``/saml/logout``: a GET asks, a POST carrying the page's token ends the session.

The token is signed with the site's keys and bound to the session the browser holds, so a
page on another site cannot sign anyone out (and neither can a token from someone else's
session). Ending the session marks its row ended: the old cookie is refused even if replayed.
Then, when the sign-in came from an IdP that offers single logout, the browser goes on to it
with our LogoutRequest (single_logout.py); the local session is over whatever the IdP does.

An IdP set up with this URL as the SP's logout URL sends its LogoutRequest (or its
LogoutResponse) here: the SAML message goes on, unchanged, to the SLO endpoint of the workspace
the browser's session (or its pending logout) belongs to.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from ..errors import SignatureRefused, StoreError
from ..logs import package_logger
from ..signing import Purpose
from ..urls import LOGOUT_PATH, public_urls, workspace_path
from .logout_messages import MESSAGE_FIELDS
from .pages import page
from .redirects import safe_next
from .single_logout import forward_page

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from ..sessions import SessionCookie, SessionManager
    from .single_logout import SingleLogout

log = package_logger(__name__)

CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 16 * 1024


class LogoutPage:
    """The WSGI app behind ``/saml/logout``; its links are the site's public paths (urls.py)."""

    def __init__(
        self,
        sessions: SessionManager,
        *,
        base_url: str | None = None,
        single_logout: SingleLogout | None = None,
    ) -> None:
        self.sessions = sessions
        self.base_url = base_url
        self.single_logout = single_logout
        # Signed with the sessions' keys, for a purpose of its own: never a session cookie.
        self._tokens = sessions.signing[Purpose.LOGOUT_CSRF]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_FORM_BYTES
        request.max_form_memory_size = MAX_FORM_BYTES
        if self.single_logout is not None and _carries_saml_message(request):
            response = self.forward(request)
        elif request.method in ("GET", "HEAD"):
            response = self.confirm(request)
        elif request.method == "POST":
            response = self.sign_out(request)
        else:
            response = page(
                "Method not allowed",
                "<p>Use the sign-out form.</p>",
                status=405,
                headers={"Allow": "GET, HEAD, POST"},
            )
        return response(environ, start_response)

    def token_for(self, cookie: SessionCookie) -> str:
        """The CSRF token for the session the cookie names."""
        return self._tokens.dumps(_binding(cookie))

    def confirm(self, request: Request) -> Response:
        next_path = safe_next(request.args.get("next"))
        cookie = self.sessions.read_cookie(request.environ)
        if cookie is None:
            link = escape(self.link(request, next_path))
            return page(
                "Sign out", f'<p>You are not signed in.</p><p><a href="{link}">Continue</a></p>'
            )
        return page("Sign out", self._form(request, cookie, next_path))

    def sign_out(self, request: Request) -> Response:
        try:
            form = request.form
        except RequestEntityTooLarge:
            return page("Request too large", "<p>The sign-out form was too large.</p>", status=413)
        next_path = safe_next(form.get("next"))
        cookie = self.sessions.read_cookie(request.environ)
        if cookie is None:
            # Nobody to sign out: answer as if it had worked, so the request is idempotent.
            response = redirect(self.link(request, next_path), code=303)
            response.headers.add("Set-Cookie", self.sessions.clearing_cookie())
            return response
        if not self._token_matches(form.get(CSRF_FIELD), cookie):
            # The session is untouched. A fresh form lets a person who meant it confirm.
            body = (
                "<p>This sign-out request did not come from this site's sign-out page, so "
                "you are still signed in.</p>" + self._form(request, cookie, next_path)
            )
            return page("Sign-out not confirmed", body, status=403)
        subject = self._saml_subject(cookie)
        try:
            clearing = self.sessions.end(request.environ)
        except (StoreError, SQLAlchemyError):
            log.warning("could not end a session", exc_info=True)
            body = (
                "<p>We could not sign you out just now, so you are still signed in. Please "
                "try again in a moment.</p>" + self._form(request, cookie, next_path)
            )
            return page("Please try again", body, status=503)
        # The local session is over: from here on, nothing the IdP does (or fails to do) matters.
        onward = self._to_idp(request, subject, next_path) or redirect(
            self.link(request, next_path), code=303
        )
        onward.headers.add("Set-Cookie", clearing)
        onward.headers["Cache-Control"] = "no-store"
        return onward

    def _saml_subject(self, cookie: SessionCookie) -> Any | None:
        """Whom the session's SAML sign-in named, read before it ends (None: nobody, or the
        store could not say, which leaves single logout out but never the local sign-out)."""
        if self.single_logout is None:
            return None
        try:
            return self.single_logout.subject_of(cookie)
        except (StoreError, SQLAlchemyError):
            log.warning("could not read a session's SAML subject", exc_info=True)
            return None

    def _to_idp(self, request: Request, subject: Any | None, next_path: str) -> Response | None:
        if self.single_logout is None or subject is None:
            return None
        try:
            return self.single_logout.logout_at_idp(request, subject, next_path)
        except Exception:  # the local sign-out stands whatever fails here
            log.warning("could not send a LogoutRequest to the IdP", exc_info=True)
            return None

    def forward(self, request: Request) -> Response:
        """An IdP's LogoutRequest (or LogoutResponse) sent here: on to the SLO endpoint of the
        workspace this browser belongs to, the message untouched (its signature still holds)."""
        assert self.single_logout is not None
        site = public_urls(request.environ, self.base_url)
        slug = None
        cookie = self.sessions.read_cookie(request.environ)
        try:
            if cookie is not None and (subject := self.single_logout.subject_of(cookie)):
                slug = subject.slug
        except (StoreError, SQLAlchemyError):
            log.warning("could not read a session's workspace", exc_info=True)
        if slug is None and (pending := self.single_logout.read_pending(request, None)):
            slug = pending.slug
        if slug is None:
            body = (
                "<p>Your identity provider asked this site to sign you out, but this browser "
                "holds no session here, so there is nothing to end.</p>"
                '<p>Reason code: <span class="reason">slo_no_session</span></p>'
                f'<p><a href="{escape(site.link("/"))}">Continue</a></p>'
            )
            return page("Nothing to sign out", body)
        if request.method == "POST":
            try:
                form = request.form
            except RequestEntityTooLarge:
                return page(
                    "Request too large", "<p>The sign-out message was too large.</p>", status=413
                )
            fields = {name: form[name] for name in MESSAGE_FIELDS if name in form}
            return forward_page(site, slug, fields)
        query = str(request.environ.get("QUERY_STRING") or "")
        return redirect(f"{site.link(workspace_path(slug, 'slo'))}?{query}", code=302)

    def _form(self, request: Request, cookie: SessionCookie, next_path: str) -> str:
        # Named only when the session is live: an ended one still gets a form to clear it.
        found = self.sessions.identify(request.environ)
        who = ""
        if found is not None:
            who = f"<p>You are signed in as <strong>{escape(found[0].user_name)}</strong>.</p>"
        return (
            who + f'<form method="post" action="{escape(self.link(request, LOGOUT_PATH))}" '
            'aria-labelledby="logout-question">'
            '<p id="logout-question">Sign out of this site in this browser?</p>'
            f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(self.token_for(cookie))}">'
            f'<input type="hidden" name="next" value="{escape(next_path)}">'
            '<button type="submit">Sign out</button>'
            "</form>"
        )

    def link(self, request: Request, path: str) -> str:
        """The site path of ``path`` (relative to the middleware's mount point)."""
        return public_urls(request.environ, self.base_url).link(path)

    def _token_matches(self, token: str | None, cookie: SessionCookie) -> bool:
        if not token or len(token) > 512:
            return False
        try:
            bound = self._tokens.loads(token)
        except SignatureRefused:
            return False
        return isinstance(bound, str) and hmac.compare_digest(bound, _binding(cookie))


def _binding(cookie: SessionCookie) -> str:
    # A digest, not the id itself: the page's HTML never carries the session's secret.
    return hashlib.sha256(b"logout\0" + cookie.session_id.encode("utf-8")).hexdigest()[:32]


def _carries_saml_message(request: Request) -> bool:
    """Whether an IdP sent a SAML message here (never the sign-out form's fields)."""
    if "SAMLRequest" in request.args or "SAMLResponse" in request.args:
        return True
    if request.method != "POST":
        return False
    try:
        return "SAMLRequest" in request.form or "SAMLResponse" in request.form
    except RequestEntityTooLarge:
        return False
