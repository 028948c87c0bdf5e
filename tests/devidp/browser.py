"""A person at a browser, played by a requests session: the walk from "Sign in with SSO" through
the dev IdP's sign-in page and back, reading and submitting each page's forms as a browser would."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

import lxml.html
import requests

TIMEOUT = 10


@dataclass
class Form:
    action: str
    fields: dict[str, str]
    buttons: dict[str, list[str]]  # name -> values of its submit buttons


def forms(response: requests.Response) -> list[Form]:
    document = lxml.html.fromstring(response.text)
    found = []
    for form in document.forms:
        fields = {name: value or "" for name, value in form.form_values()}
        buttons: dict[str, list[str]] = {}
        for button in form.xpath(".//button[@name]"):
            buttons.setdefault(button.get("name"), []).append(button.get("value", ""))
        found.append(Form(urljoin(response.url, form.action or response.url), fields, buttons))
    return found


def submit(browser: requests.Session, form: Form, **values: str) -> requests.Response:
    return browser.post(form.action, data={**form.fields, **values}, timeout=TIMEOUT)


def start_at_sso_page(browser: requests.Session, site_url: str, email: str) -> requests.Response:
    """Home page -> "Sign in with SSO" -> type the email -> redirected to the dev IdP's page."""
    home = browser.get(f"{site_url}/", timeout=TIMEOUT)
    assert home.status_code == 200 and 'href="/saml/login"' in home.text, home.text
    sign_in = browser.get(urljoin(home.url, "/saml/login"), timeout=TIMEOUT)
    (email_form,) = forms(sign_in)
    at_idp = submit(browser, email_form, email=email)
    assert at_idp.status_code == 200, at_idp.text
    assert "Development IdP — not for production" in at_idp.text
    return at_idp


def pick(browser: requests.Session, idp_page: requests.Response, user: str) -> requests.Response:
    """Press the "Sign in as <user>" button; returns the auto-post page."""
    form = next(f for f in forms(idp_page) if user in f.buttons.get("user", []))
    return submit(browser, form, user=user)


def type_user(
    browser: requests.Session, idp_page: requests.Response, **values: str
) -> requests.Response:
    """Fill in the "type any user" form (user, first_name, last_name)."""
    form = next(f for f in forms(idp_page) if "first_name" in f.fields)
    return submit(browser, form, **values)


def follow_autopost(browser: requests.Session, autopost: requests.Response) -> requests.Response:
    """What the page's script does: POST the SAMLResponse to the SP's ACS (then follow it home)."""
    assert autopost.status_code == 200, autopost.text
    assert "document.forms[0].submit()" in autopost.text
    (form,) = forms(autopost)
    return browser.post(form.action, data=form.fields, timeout=TIMEOUT)


def sign_in(browser: requests.Session, site_url: str, email: str, user: str) -> requests.Response:
    """The whole walk; returns the page the browser lands on, signed in."""
    return follow_autopost(
        browser, pick(browser, start_at_sso_page(browser, site_url, email), user)
    )
