"""No secret in logs or error pages: the secret key, SCIM tokens, session cookies and
settings links never appear in what the package logs or answers, on success or failure."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ..saml.conftest import Site
from ..saml.idp import TestIdP

SECRET_KEY = "s3cret-padded-to-thirty-two-bytes-at-least"  # what tests/saml's Site signs with


@pytest.fixture
def secrets_site(
    serve: Callable[[Any], Any], database_url: str, tmp_path: Path
) -> Iterator[tuple[Site, TestIdP, str]]:
    idp = TestIdP.start(serve, tmp_path / "idp")
    site = Site(serve, database_url)
    token = site.add_workspace("acme", idp)
    yield site, idp, token
    site.middleware.close()


def test_no_secret_reaches_logs_or_pages(
    secrets_site: tuple[Site, TestIdP, str], caplog: pytest.LogCaptureFixture
):
    site, idp, token = secrets_site
    caplog.set_level(logging.DEBUG)
    pages: list[str] = []
    scim = f"{site.url}/scim/v2/Users"
    guessed = token[:-4] + "XXXX"
    for header in (f"Bearer {guessed}", guessed, f"Bearer {token}"):
        pages.append(requests.get(scim, headers={"Authorization": header}).text)
    browser = requests.Session()
    honest = idp.response(
        sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="alice@acme.test"
    )
    tampered = base64.b64encode(
        base64.b64decode(honest).replace(b"alice@acme.test", b"mallory@acme.test")
    ).decode()
    pages.append(site.post_response(browser, "acme", tampered).text)
    signed_in = site.post_response(browser, "acme", honest)
    assert signed_in.status_code == 303
    cookie = signed_in.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    pages.append(site.post_response(requests.Session(), "acme", honest).text)  # replay
    link = site.middleware.settings_link("acme")
    settings = requests.Session()
    link = link if link.startswith("http") else site.url + link
    pages.append(settings.get(link).text)  # the page with the button that opens it
    pages.append(settings.post(link, data={"action": "open_link"}).text)  # the settings page
    pages.append(requests.post(link, data={"action": "open_link"}).text)  # a used link
    link_token = link.rsplit("link=", 1)[1]

    ours = [r for r in caplog.records if r.name.startswith(("webwork_sso_middleware", "saml2"))]
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in ours)
    for secret in (SECRET_KEY, token, guessed, cookie, link_token):
        assert secret not in logged
        for page in pages:
            assert secret not in page
    # The pages did answer: refusals, a replay, the settings page and a used link.
    assert any("invalid SCIM API token" in page for page in pages)
    assert any("replayed" in page for page in pages)
    assert any("Open the settings page" in page for page in pages)
    assert any("SCIM Base URL" in page for page in pages)
    assert any("already used" in page for page in pages)
