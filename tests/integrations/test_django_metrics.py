"""The Django metrics view (integrations/django_metrics.py) in the real Django project of
django_project.py, served over HTTP behind ``sso_wsgi_application`` and signed into through the
real test IdP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from ..saml.idp import TestIdP
from .conftest import FrameworkSite

ALICE = "alice.smith@acme.test"


pytestmark = pytest.mark.usefixtures("empty_django_tables")


def test_the_view_serves_the_metrics_of_the_middleware_it_runs_behind(
    make_django_site: Callable[..., FrameworkSite], idp: TestIdP
) -> None:
    site = make_django_site(metrics=True)
    token = site.add_workspace("acme", idp)
    site.sign_in(requests.Session(), idp, "acme", ALICE)
    listed = requests.get(
        f"{site.url}/scim/v2/Users/{ALICE}", headers={"Authorization": f"Bearer {token}"}
    )
    assert listed.status_code == 404

    scraped = requests.get(f"{site.url}/metrics", timeout=10)

    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert scraped.headers["Cache-Control"] == "no-store"
    text = scraped.text
    assert 'webwork_sso_sign_ins_total{reason="none",result="success"} 1.0' in text
    assert 'webwork_sso_scim_requests_total{method="GET",resource="Users",status="404"} 1.0' in text
    for private in ("alice", "acme", token, site.members()[0].id):
        assert private not in text


def test_the_view_answers_404_while_metrics_are_off(
    make_django_site: Callable[..., FrameworkSite], idp: TestIdP
) -> None:
    make_django_site(metrics=True)  # an earlier middleware of this process, with metrics on
    site = make_django_site()  # the one now serving, with metrics off: the view follows it

    scraped = requests.get(f"{site.url}/metrics", timeout=10)

    assert scraped.status_code == 404
    assert "Metrics are off" in scraped.text
    assert "webwork_sso" not in scraped.text
