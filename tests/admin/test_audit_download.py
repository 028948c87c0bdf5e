"""The settings page's audit-log download (admin/audit_download.py), over real HTTP: the owner
gets their own workspace's log, streamed as a file; nobody else gets any of it."""

from __future__ import annotations

import csv
import io
import json

import pytest
import requests

from webwork_sso_middleware import audit_export

from ..saml.conftest import Site
from ..saml.idp import TestIdP
from ..scim.conftest import okta_user
from .conftest import ACCESS_DENIED, open_with_link, settings_url, sign_in

SCIM_JSON = "application/scim+json"


def provision(site: Site, token: str, email: str) -> None:
    created = requests.post(
        f"{site.url}/scim/v2/Users",
        json=okta_user(email),
        headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON},
    )
    assert created.status_code == 201, created.text


@pytest.fixture
def two(site: Site, idp: TestIdP, second_idp: TestIdP) -> Site:
    """acme (provisioned ada) and beta (provisioned cyd), each with its own owner."""
    provision(site, site.add_workspace("acme", idp), "ada@acme.test")
    provision(site, site.add_workspace("beta", second_idp), "cyd@beta.test")
    return site


def download(browser: requests.Session, site: Site, slug: str, **query: str) -> requests.Response:
    return browser.get(settings_url(site, slug), params={"download": "audit-log", **query})


def test_the_owner_downloads_the_workspaces_log_as_json_lines(two: Site) -> None:
    browser = requests.Session()
    page = open_with_link(browser, two, "acme")
    assert "?download=audit-log&amp;format=jsonl" in page.text
    assert "?download=audit-log&amp;format=csv" in page.text

    answer = download(browser, two, "acme", format="jsonl")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/x-ndjson"
    disposition = answer.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="acme-audit-') and disposition.endswith(
        '.jsonl"'
    )
    assert answer.headers["Cache-Control"] == "no-store"
    assert "Content-Length" not in answer.headers  # streamed as it is read
    rows = [json.loads(line) for line in answer.text.splitlines()]
    assert rows and {row["workspace"] for row in rows} == {"acme"}
    assert "ada@acme.test" in answer.text and "cyd@beta.test" not in answer.text
    # The default format is JSON Lines too.
    assert download(browser, two, "acme").text == answer.text


def test_csv_and_since(two: Site) -> None:
    browser = requests.Session()
    open_with_link(browser, two, "acme")
    answer = download(browser, two, "acme", format="csv")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    assert answer.headers["Content-Disposition"].endswith('.csv"')
    table = list(csv.reader(io.StringIO(answer.content.decode("utf-8"), newline="")))
    assert tuple(table[0]) == audit_export.COLUMNS and len(table) > 1
    assert download(browser, two, "acme", format="csv", since="2999-01-01").text == (
        '"' + '","'.join(audit_export.COLUMNS) + '"\r\n'
    )


@pytest.mark.parametrize(
    ("query", "words"),
    [({"format": "xml"}, "downloads as jsonl or csv"), ({"since": "soon"}, "is not a date")],
)
def test_bad_query_is_a_page_not_a_file(two: Site, query: dict[str, str], words: str) -> None:
    browser = requests.Session()
    open_with_link(browser, two, "acme")
    answer = download(browser, two, "acme", **query)
    assert answer.status_code == 400 and words in answer.text
    assert "Content-Disposition" not in answer.headers


def test_another_workspaces_owner_never_gets_this_log(two: Site, second_idp: TestIdP) -> None:
    # beta's owner, with both kinds of credential: beta's settings link and an SSO session.
    hostile = requests.Session()
    open_with_link(hostile, two, "beta")
    assert sign_in(hostile, two, second_idp, "owner@beta.test", slug="beta").status_code == 303
    for slug in ("acme", "ACME", "acme/"):
        refused = hostile.get(
            f"{two.url}/saml/{slug}/settings", params={"download": "audit-log", "format": "csv"}
        )
        assert refused.status_code in (403, 404), refused.status_code
        assert "ada@acme.test" not in refused.text and "Content-Disposition" not in refused.headers
    # A query naming another workspace changes nothing: the log is the one the access names.
    own = download(hostile, two, "beta", workspace="acme", workspace_id="1")
    assert own.status_code == 200
    assert "cyd@beta.test" in own.text and "ada@acme.test" not in own.text
    # And with no credential at all: the settings page's 403.
    anonymous = download(requests.Session(), two, "acme")
    assert anonymous.status_code == 403 and ACCESS_DENIED in anonymous.text
