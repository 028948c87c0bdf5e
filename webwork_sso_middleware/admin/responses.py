"""One settings-page response's HTML plumbing, shared by the page (views.py) and the owner's
actions (actions.py)."""

from __future__ import annotations

from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from ..page_headers import new_nonce, nonce_source, secure_page
from ..urls import LOGOUT_PATH, SIGN_IN_PATH, public_urls
from . import templates
from .links import settings_path


class Page:
    """One response's HTML plumbing: its CSP nonce and the headers every settings page has."""

    def __init__(self, request: Request, base_url: str | None) -> None:
        self.request = request
        self.site = public_urls(request.environ, base_url)
        self.nonce = new_nonce()

    def secured(self, response: Response) -> Response:
        # Owner-only and sometimes holding a fresh token: the headers every page of ours has.
        allowed = nonce_source(self.nonce)
        return secure_page(response, styles=allowed, scripts=allowed)

    def html(self, markup: str, *, status: int = 200) -> Response:
        return self.secured(
            Response(markup, status=status, content_type="text/html; charset=utf-8")
        )

    def message(self, title: str, paragraphs: list[str], *, status: int) -> Response:
        return self.html(templates.message_page(title, paragraphs, nonce=self.nonce), status=status)

    def sign_in_url(self, slug: str) -> str:
        """The site's sign-in page, coming back to this workspace's settings."""
        return self.site.link(SIGN_IN_PATH) + "?" + urlencode({"next": settings_path(slug)})

    @property
    def home_url(self) -> str:
        """The host app's home: the mount point's root."""
        return self.site.link("/")

    def forbidden(self, slug: str, reason: str) -> Response:
        sign_in = self.sign_in_url(slug)
        # Sign out first (the logout page asks), then on to the sign-in page, back here.
        sign_out = (
            self.site.link(LOGOUT_PATH)
            + "?"
            + urlencode({"next": SIGN_IN_PATH + "?" + urlencode({"next": settings_path(slug)})})
        )
        return self.html(
            templates.forbidden_page(
                reason,
                slug=slug,
                sign_in_url=sign_in,
                nonce=self.nonce,
                home_url=self.home_url,
                sign_out_url=sign_out,
            ),
            status=403,
        )


def sentence(text: str) -> str:
    """``text`` as a sentence of a page: a capital first, a full stop last."""
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
