"""Two pages: who is signed in, and an account page that requires sign-in."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join

PAGE = "<!doctype html><title>Django behind SSO</title><h1>Django behind SSO</h1>{}"


def index(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.is_authenticated:
        return HttpResponse(
            format_html(
                PAGE,
                format_html('<p>Not signed in. <a href="/saml/login">Sign in with SSO</a></p>'),
            )
        )
    # The member is there on every request SSOMiddleware let through with a session.
    member = request.META.get("webwork_sso.member")
    groups = ", ".join(member.groups) if member else ""
    return HttpResponse(
        format_html(
            PAGE,
            format_html(
                "<p>Signed in as {} ({}) in workspace {}. Groups: {}.</p>"
                '<p><a href="/account">Your Django account</a> · <a href="/saml/logout">Sign '
                "out</a></p>",
                user.get_full_name() or user.get_username(),
                user.email,
                member.workspace if member else "?",
                groups or "none",
            ),
        )
    )


@login_required
def account(request: HttpRequest) -> HttpResponse:
    user = request.user
    rows = format_html_join(
        "",
        "<tr><th>{}</th><td>{}</td></tr>",
        [
            ("username", user.get_username()),
            ("email", user.email),
            ("first name", user.first_name),
            ("last name", user.last_name),
            ("joined", user.date_joined),
            ("last login", user.last_login),
        ],
    )
    return HttpResponse(
        format_html(PAGE, format_html('<table>{}</table><p><a href="/">Back</a></p>', rows))
    )
