"""One public URL for everything, wherever the middleware is mounted (urls.py).

The middleware is mounted at /tracker by werkzeug's DispatcherMiddleware and served over real
HTTP with a real database; SCIM, SAML (metadata, login, ACS, the sign-in and error pages), the
settings page and the CLI must all name the same public URLs: the mount's path exactly once,
whether it comes from SCRIPT_NAME (no base_url) or from base_url.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from lxml import etree
from webtest import TestApp
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.cli import main
from webwork_sso_middleware.urls import MOUNT_ROOT_KEY, PublicUrls, public_urls

from .saml.idp import TestIdP, autopost_form

KEY = "urls-test-secret-key-padded-to-thirty-two-bytes"
MOUNT = "/tracker"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def host_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    user = environ.get("REMOTE_USER", "")
    return [f"user={user};script={environ.get('SCRIPT_NAME')};path={environ['PATH_INFO']}".encode()]


def outside(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Whatever the site serves outside the mount: a request that lands here went astray."""
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"outside the mount"]


class Mounted:
    """SSOMiddleware at ``/tracker`` of a real HTTP server; ``public``: the mount's URL."""

    def __init__(
        self, serve: Callable[[Any], Any], database_url: str, *, with_base_url: bool, tmp_path: Path
    ) -> None:
        dispatch: list[Any] = []
        live = serve(lambda environ, start_response: dispatch[0](environ, start_response))
        self.origin = live.url
        self.public = live.url + MOUNT
        self.database_url = database_url
        self.base_url = self.public if with_base_url else None
        self.middleware = SSOMiddleware(
            host_app,
            database_url=database_url,
            secret_key=KEY,
            base_url=self.base_url,
            protect=["/reports"],
        )
        dispatch.append(DispatcherMiddleware(outside, {MOUNT: self.middleware}))
        self.idp = TestIdP.start(serve, tmp_path / "idp")
        workspaces = self.middleware.workspaces
        _, self.token = workspaces.create(
            "acme", name="Acme", plan="plus", owner_email="owner@acme.test"
        )
        workspaces.enable("acme", scim=True, sso=True)
        workspaces.verify_domain("acme", "acme.test", by_operator=True)
        workspaces.set_idp("acme", metadata_xml=self.idp.metadata_xml())
        # The IdP knows the SP by the URLs the administrator copied: the public ones.
        self.idp.sp_config(f"{self.public}/saml/acme/metadata", f"{self.public}/saml/acme/acs")


@pytest.fixture(params=["script_name", "base_url"])
def mounted(
    request: pytest.FixtureRequest, serve: Callable[[Any], Any], database_url: str, tmp_path: Path
) -> Iterator[Mounted]:
    """Mounted at /tracker: the public URL from SCRIPT_NAME, or from base_url with that path."""
    site = Mounted(
        serve, database_url, with_base_url=request.param == "base_url", tmp_path=tmp_path
    )
    yield site
    site.middleware.close()


# -- SCIM -------------------------------------------------------------------------------------


def test_scim_locations_carry_the_mount_once(mounted: Mounted):
    auth = {"Authorization": f"Bearer {mounted.token}"}
    base = f"{mounted.public}/scim/v2"

    config = requests.get(f"{base}/ServiceProviderConfig", headers=auth).json()
    created = requests.post(
        f"{base}/Users",
        headers=auth,
        json={
            "schemas": [SCIM_USER],
            "userName": "ada@acme.test",
            "emails": [{"value": "ada@acme.test", "primary": True}],
        },
    )

    assert config["meta"]["location"] == f"{base}/ServiceProviderConfig"
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{base}/Users/{created.json()['id']}"
    assert created.json()["meta"]["location"] == created.headers["Location"]


# -- SAML -------------------------------------------------------------------------------------


def test_sp_metadata_names_the_public_urls(mounted: Mounted):
    answer = requests.get(f"{mounted.public}/saml/acme/metadata")

    root = etree.fromstring(answer.content)
    acs = root.find(f".//{{{MD}}}AssertionConsumerService")
    assert root.get("entityID") == f"{mounted.public}/saml/acme/metadata"
    assert acs is not None and acs.get("Location") == f"{mounted.public}/saml/acme/acs"


def test_sign_in_starts_and_ends_under_the_mount(mounted: Mounted):
    browser = requests.Session()
    challenge = browser.get(f"{mounted.public}/reports", headers=BROWSER, allow_redirects=False)
    sign_in = challenge.headers["Location"]
    assert sign_in == f"{MOUNT}/saml/login?next=%2Freports"

    form = browser.get(mounted.origin + sign_in)
    action = re.search(r'<form method="post" action="([^"]+)"', form.text)
    assert action and action.group(1) == f"{MOUNT}/saml/login"
    chosen = browser.post(
        mounted.origin + action.group(1),
        data={"email": "alice@acme.test", "next": "/reports"},
        allow_redirects=False,
    )
    assert chosen.status_code == 303
    assert chosen.headers["Location"] == (
        f"{MOUNT}/saml/acme/login?next=%2Freports&login_hint=alice%40acme.test"
    )

    start = browser.get(
        f"{mounted.public}/saml/acme/login", params={"next": "/reports"}, allow_redirects=False
    )
    assert start.status_code == 302, start.text
    assert f"Path={MOUNT}/saml/acme/" in start.headers["Set-Cookie"]
    at_idp = browser.get(start.headers["Location"])
    assert mounted.idp.requests[-1].acs_url == f"{mounted.public}/saml/acme/acs"
    acs_url, fields = autopost_form(at_idp.text)
    done = browser.post(acs_url, data=fields, allow_redirects=False)

    assert done.status_code == 303, done.text
    assert done.headers["Location"] == f"{MOUNT}/reports"  # ``next`` is relative to the mount
    back = browser.get(mounted.origin + done.headers["Location"])
    assert back.text == f"user=alice@acme.test;script={MOUNT};path=/reports"

    sign_out = browser.get(f"{mounted.public}/saml/logout", params={"next": "/bye"}).text
    assert f'action="{MOUNT}/saml/logout"' in sign_out
    token = re.search(r'name="csrf_token" value="([^"]+)"', sign_out)
    assert token
    out = browser.post(
        f"{mounted.public}/saml/logout",
        allow_redirects=False,
        data={"csrf_token": token.group(1), "next": "/bye"},
    )
    # Single logout: on to the IdP, whose answer comes back to the SLO endpoint under the
    # mount, and the last page's link keeps ``next`` relative to the mount too.
    assert out.status_code == 302, out.text
    assert out.headers["Location"].startswith(mounted.idp.slo_url + "?")
    assert f"Path={MOUNT}/saml/" in out.headers["Set-Cookie"]
    mounted.idp.register_sp_metadata(requests.get(f"{mounted.public}/saml/acme/metadata").text)
    answer = browser.get(out.headers["Location"], allow_redirects=False)
    assert answer.headers["Location"].startswith(f"{mounted.public}/saml/acme/slo?")
    last = browser.get(answer.headers["Location"])
    assert last.status_code == 200, last.text
    assert f'href="{MOUNT}/bye"' in last.text


def test_an_idp_initiated_sign_in_continues_under_the_mount(mounted: Mounted):
    browser = requests.Session()
    response = mounted.idp.response(
        sp_entity_id=f"{mounted.public}/saml/acme/metadata",
        acs_url=f"{mounted.public}/saml/acme/acs",
        email="alice@acme.test",
    )

    # Cross-site, as from the IdP's page: it finishes on a same-site GET (login_state.py).
    posted = browser.post(
        f"{mounted.public}/saml/acme/acs",
        allow_redirects=False,
        data={"SAMLResponse": response, "RelayState": "/timesheets"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert posted.status_code == 303, posted.text
    assert posted.headers["Location"] == f"{mounted.public}/saml/acme/continue"
    assert f"Path={MOUNT}/saml/acme/" in posted.headers["Set-Cookie"]
    finished = browser.get(posted.headers["Location"], allow_redirects=False)

    assert finished.status_code == 303, finished.text
    assert finished.headers["Location"] == f"{MOUNT}/timesheets"
    assert browser.get(mounted.origin + finished.headers["Location"]).text.startswith(
        "user=alice@acme.test;"
    )


def test_error_pages_link_to_the_sign_in_page_under_the_mount(mounted: Mounted):
    refused = requests.get(f"{mounted.public}/saml/nosuch/login")

    assert refused.status_code == 404
    assert f'href="{MOUNT}/saml/login"' in refused.text
    assert 'href="/saml/' not in refused.text


# -- the settings page ------------------------------------------------------------------------


def copied(page: str, field_id: str) -> str:
    found = re.search(rf'id="{field_id}" value="([^"]*)"', page)
    assert found, field_id
    return html.unescape(found.group(1))


def test_the_settings_page_shows_the_public_urls(mounted: Mounted):
    link = mounted.middleware.settings_link("acme")
    # Without base_url the link is relative to the mount point, as every path we hand out.
    url = link if link.startswith("http") else mounted.public + link
    browser = requests.Session()
    assert browser.get(url).status_code == 200
    opened = browser.post(url, allow_redirects=False)
    assert opened.status_code == 303, opened.text
    assert opened.headers["Location"] == f"{MOUNT}/saml/acme/settings"
    assert f"Path={MOUNT}/saml/acme/settings" in opened.headers["Set-Cookie"]

    page = browser.get(f"{mounted.public}/saml/acme/settings").text

    assert copied(page, "scim-base-url") == f"{mounted.public}/scim/v2"
    assert copied(page, "sp-entity-id") == f"{mounted.public}/saml/acme/metadata"
    assert copied(page, "acs-url") == f"{mounted.public}/saml/acme/acs"
    assert copied(page, "sp-metadata-url") == f"{mounted.public}/saml/acme/metadata"
    assert f'action="{MOUNT}/saml/acme/settings"' in page
    test_link = re.search(r'id="test-sign-in" href="([^"]+)"', page)
    assert test_link, "the test sign-in link"
    target = urlsplit(html.unescape(test_link.group(1)))
    assert target.path == f"{MOUNT}/saml/acme/login"
    assert "test" in parse_qs(target.query)


def test_the_settings_page_refusal_links_under_the_mount(mounted: Mounted):
    refused = requests.get(f"{mounted.public}/saml/acme/settings")

    assert refused.status_code == 403
    assert f'href="{MOUNT}/saml/login?next=%2Fsaml%2Facme%2Fsettings"' in refused.text
    assert f'href="{MOUNT}/">Back to the app</a>' in refused.text
    assert f'href="{MOUNT}/saml/logout?next=' in refused.text


# -- the CLI ----------------------------------------------------------------------------------


def test_the_cli_prints_the_urls_the_site_serves(
    mounted: Mounted, capsys: pytest.CaptureFixture[str]
):
    capsys.readouterr()
    code = main(
        [
            "--database-url",
            mounted.database_url,
            "--base-url",
            mounted.public,
            "workspace",
            "show",
            "acme",
            "--json",
        ]
    )
    document = json.loads(capsys.readouterr().out)
    metadata = etree.fromstring(requests.get(document["sp_metadata_url"]).content)
    config = requests.get(
        document["scim_base_url"] + "/ServiceProviderConfig",
        headers={"Authorization": f"Bearer {mounted.token}"},
    ).json()

    assert code == 0
    assert document["scim_base_url"] == f"{mounted.public}/scim/v2"
    assert config["meta"]["location"] == document["scim_base_url"] + "/ServiceProviderConfig"
    assert metadata.get("entityID") == document["sp_entity_id"]
    acs = metadata.find(f".//{{{MD}}}AssertionConsumerService")
    assert acs is not None and acs.get("Location") == document["acs_url"]
    assert document["login_url"] == f"{mounted.public}/saml/acme/login"
    assert document["settings_url"] == f"{mounted.public}/saml/acme/settings"
    assert requests.get(document["login_url"], allow_redirects=False).status_code == 302


# -- base_url wins over SCRIPT_NAME -----------------------------------------------------------


@pytest.fixture
def proxied(database_url: str) -> Iterator[TestApp]:
    """A proxy strips /tracker before the middleware sees it: only base_url knows the path."""
    middleware = SSOMiddleware(
        host_app, database_url=database_url, secret_key=KEY, base_url="https://x.example/tracker/"
    )
    _, token = middleware.workspaces.create(
        "acme", name="Acme", plan="plus", owner_email="owner@acme.test"
    )
    middleware.workspaces.enable("acme", scim=True)
    app = TestApp(middleware, extra_environ={"HTTP_HOST": "internal:8000"})
    app.authorization = ("Bearer", token)
    yield app
    middleware.close()


@pytest.mark.parametrize("script_name", ["", MOUNT, "/elsewhere"])
def test_base_url_wins_over_the_request(proxied: TestApp, script_name: str):
    environ = {"SCRIPT_NAME": script_name}
    config = proxied.get("/scim/v2/ServiceProviderConfig", extra_environ=environ).json
    metadata = etree.fromstring(proxied.get("/saml/acme/metadata", extra_environ=environ).body)
    form = proxied.get("/saml/login", extra_environ=environ).text

    assert config["meta"]["location"] == "https://x.example/tracker/scim/v2/ServiceProviderConfig"
    assert metadata.get("entityID") == "https://x.example/tracker/saml/acme/metadata"
    assert '<form method="post" action="/tracker/saml/login">' in form


# -- public_urls itself -----------------------------------------------------------------------


def test_public_urls_from_the_request_without_base_url():
    environ = {"wsgi.url_scheme": "https", "HTTP_HOST": "x.example", "SCRIPT_NAME": "/tracker/"}
    mounted_environ = {**environ, "SCRIPT_NAME": "/tracker/saml", MOUNT_ROOT_KEY: "/tracker"}

    assert public_urls(environ, None) == PublicUrls("https://x.example/tracker")
    # A mounted sub-app finds the middleware's own SCRIPT_NAME, not its own.
    assert public_urls(mounted_environ, None) == PublicUrls("https://x.example/tracker")
    assert public_urls({**mounted_environ, MOUNT_ROOT_KEY: ""}, None).root == ""
    assert public_urls({**environ, "SCRIPT_NAME": "/caf\xc3\xa9"}, None).root == "/caf%C3%A9"


def test_public_urls_from_base_url():
    urls = public_urls(
        {"HTTP_HOST": "internal", "SCRIPT_NAME": "/other"}, "https://x.example/tracker/"
    )

    assert urls.base_url == "https://x.example/tracker"
    assert urls.root == "/tracker"
    assert urls.link("/saml/login") == "/tracker/saml/login"
    assert urls.url("/saml/login") == "https://x.example/tracker/saml/login"
    assert urls.scim_base_url == "https://x.example/tracker/scim/v2"
    assert urls.workspace("acme").continue_url == "https://x.example/tracker/saml/acme/continue"
    assert public_urls(None, "https://x.example").root == ""
    with pytest.raises(ValueError):
        public_urls(None, None)
