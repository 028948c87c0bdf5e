"""Prometheus metrics (metrics.py): off by default without a trace of prometheus_client; on,
scraped over real HTTP after real sign-ins (the pysaml2 test IdP), SCIM requests, a throttled
client and a failing metadata URL, each counted under bounded labels that never carry an email,
a token, an id or a path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.errors import ConfigurationError
from webwork_sso_middleware.metrics import NO_METRICS, OTHER, PrometheusMetrics, metrics_for

from .faults.test_metadata_faults import MetadataHost, make_refresh_due
from .saml.conftest import Site, host_app
from .saml.idp import TestIdP
from .saml.test_app import sp_initiated
from .scim.conftest import okta_user

SECRET = "s3cret-padded-to-thirty-two-bytes-at-least"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, accept: str | None = None) -> tuple[Samples, requests.Response]:
    """Every sample of the exposition at ``url``: (name, labels) -> value."""
    response = requests.get(url, headers={"Accept": accept} if accept else {}, timeout=10)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples, response


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples) -> set[str]:
    return {
        label_value
        for (name, labels) in samples
        if name.startswith("webwork_sso_")
        for key, label_value in labels
        if key != "le"  # histogram buckets
    }


@pytest.fixture
def metered(serve: Callable[[Any], Any], database_url: str) -> Iterator[tuple[Site, str]]:
    """A site with metrics on, and the URL its exposition is served at (a server of its own,
    as a host mounts it where it wants)."""
    site = Site(serve, database_url, metrics=True, metadata_allowed_hosts="127.0.0.1")
    exposition = serve(site.middleware.metrics_app())
    yield site, exposition.url + "/"
    site.middleware.close()


@pytest.fixture
def acme(metered: tuple[Site, str], idp: TestIdP) -> str:
    """Workspace acme on the metered site (Plus, SCIM and SSO on, acme.test verified): its
    SCIM token."""
    return metered[0].add_workspace("acme", idp)


# -- off ------------------------------------------------------------------------------------------

IMPORT_CHECK = """
import json, sys
from werkzeug.test import Client
from webwork_sso_middleware import SSOMiddleware

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"host"]

sso = SSOMiddleware(app, database_url=sys.argv[1], secret_key="k" * 32)
client = Client(sso)
statuses = [client.get("/").status_code, client.get("/scim/v2/Users").status_code,
            client.post("/saml/acme/acs", data={"SAMLResponse": "x"}).status_code]
off = "prometheus_client" in sys.modules
on = SSOMiddleware(app, database_url=sys.argv[1], secret_key="k" * 32, metrics=True)
print(json.dumps({"statuses": statuses, "imported_while_off": off,
                  "imported_when_on": "prometheus_client" in sys.modules,
                  "enabled": [sso.metrics.enabled, on.metrics.enabled]}))
"""


def test_with_metrics_off_prometheus_client_is_never_imported(tmp_path: Path) -> None:
    # A fresh interpreter: this one imported prometheus_client at the top of this module.
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, f"sqlite:///{tmp_path / 'sso.db'}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    outcome = json.loads(result.stdout)
    assert outcome["statuses"] == [200, 401, 400]  # the host, SCIM and the ACS all answered
    assert outcome["imported_while_off"] is False
    assert outcome["imported_when_on"] is True
    assert outcome["enabled"] == [False, True]


def test_off_every_part_holds_the_recorder_that_does_nothing(database_url: str) -> None:
    sso = SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET)
    try:
        parts = [sso.metrics, sso.sessions.metrics, sso.scim.metrics, sso.scim.throttle.metrics]
        parts += [sso.saml.metrics, sso.saml.flow.metrics, sso.saml.flow.metadata.metrics]
        assert all(part is NO_METRICS for part in parts)
        with pytest.raises(ConfigurationError, match="metrics: are off"):
            sso.metrics_app()
    finally:
        sso.close()


# -- the option -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "enabled"), [("true", True), ("on", True), ("0", False), ("", False)]
)
def test_the_environment_turns_metrics_on(
    database_url: str, monkeypatch: pytest.MonkeyPatch, environ: str, enabled: bool
) -> None:
    monkeypatch.setenv("WEBWORK_SSO_METRICS", environ)
    sso = SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET)
    try:
        assert sso.metrics.enabled is enabled
    finally:
        sso.close()


@pytest.mark.parametrize("given", ["maybe", 1.5, object()])
def test_anything_but_a_bool_or_a_registry_is_refused(database_url: str, given: Any) -> None:
    with pytest.raises(ConfigurationError, match="^metrics: "):
        SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET, metrics=given)


def test_each_middleware_counts_into_a_registry_of_its_own(database_url: str) -> None:
    first = SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET, metrics=True)
    second = SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET, metrics=True)
    try:
        assert isinstance(first.metrics, PrometheusMetrics)
        assert isinstance(second.metrics, PrometheusMetrics)
        assert first.metrics.registry is not second.metrics.registry
        assert first.metrics.registry is not prometheus_client.REGISTRY  # nothing global
        first.metrics.scim_client_blocked()
        assert _sample(first.metrics, "webwork_sso_scim_clients_blocked_total") == 1
        assert _sample(second.metrics, "webwork_sso_scim_clients_blocked_total") == 0
    finally:
        first.close()
        second.close()


def test_middlewares_given_one_registry_share_its_series(database_url: str) -> None:
    registry = prometheus_client.CollectorRegistry()
    first = SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET, metrics=registry)
    second = SSOMiddleware(host_app, database_url=database_url, secret_key=SECRET, metrics=registry)
    try:
        first.metrics.scim_client_blocked()
        second.metrics.scim_client_blocked()
        assert registry.get_sample_value("webwork_sso_scim_clients_blocked_total") == 2
    finally:
        first.close()
        second.close()


def test_a_registry_holding_one_of_the_names_already_is_refused_whole() -> None:
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.Counter("webwork_sso_scim_requests", "the host's own", registry=registry)
    with pytest.raises(ConfigurationError, match="already holds"):
        metrics_for(registry)
    # Nothing half-registered: the host's counter alone, and the names before it free again.
    names = {family.name for family in registry.collect()}
    assert names == {"webwork_sso_scim_requests"}


def test_label_values_outside_their_sets_are_counted_as_other() -> None:
    metrics = metrics_for(prometheus_client.CollectorRegistry())
    assert isinstance(metrics, PrometheusMetrics)
    metrics.sign_in("rejected", "alice@acme.test")
    metrics.sign_in("granted", "0d6c1b5e-8f1e-4bd4-9d7a-2f4f1f0c7a11")
    metrics.scim_request("BREW", "alice@acme.test", 999, 0.01)
    metrics.scim_request("GET", "Users/2f4f1f0c", 200, 0.01)
    metrics.metadata_refresh("https://idp.example.com/metadata")
    metrics.session_check("a-cookie-value")
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    text = body.decode()
    assert 'webwork_sso_sign_ins_total{reason="other",result="rejected"} 1.0' in text
    assert 'webwork_sso_sign_ins_total{reason="other",result="other"} 1.0' in text
    assert 'method="other",resource="other",status="other"' in text
    assert 'method="GET",resource="other",status="200"' in text
    assert 'webwork_sso_idp_metadata_refreshes_total{result="other"} 1.0' in text
    label_values = {
        value
        for family in metrics.registry.collect()
        for sample in family.samples
        for value in sample.labels.values()
    }
    assert {"other", "GET", "200", "rejected"} <= label_values
    for leaked in ("@", "0d6c1b5e", "2f4f1f0c", "idp.example.com", "cookie", "BREW", "999"):
        assert not any(leaked in value for value in label_values)
        # Anywhere in the page too, for what a number cannot spell ("999" can: a _created
        # timestamp such as 1.7966265049369998e+09).
        assert leaked.isdigit() or leaked not in text
    assert OTHER == "other"


def _sample(metrics: Any, name: str) -> float:
    found = metrics.registry.get_sample_value(name)
    return 0.0 if found is None else float(found)


# -- on, over HTTP --------------------------------------------------------------------------------


def test_sign_ins_are_counted_by_result_and_reason(
    metered: tuple[Site, str], idp: TestIdP, acme: str
) -> None:
    site, metrics_url = metered
    token = acme
    # SP-initiated, then the session is checked: first by the database, then from the cache.
    browser = requests.Session()
    idp.next_user = "alice@acme.test"
    assert sp_initiated(browser, site, "acme").status_code == 303
    assert browser.get(site.url + "/").text.startswith("user=alice@acme.test")
    assert browser.get(site.url + "/").text.startswith("user=alice@acme.test")
    # IdP-initiated, then the same response replayed.
    response = idp.response(
        sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="bob@acme.test"
    )
    assert site.post_response(requests.Session(), "acme", response).status_code == 303
    assert site.post_response(requests.Session(), "acme", response).status_code == 400
    # An address outside the workspace's verified domains, and a response that is no response.
    foreign = idp.response(
        sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="eve@elsewhere.test"
    )
    assert site.post_response(requests.Session(), "acme", foreign).status_code == 403
    assert site.post_response(requests.Session(), "acme", "not base64!").status_code == 400
    # A member the workspace's SCIM deactivated.
    created = requests.post(
        f"{site.url}/scim/v2/Users",
        json=okta_user("carol@acme.test", active=False),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    deactivated = idp.response(
        sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="carol@acme.test"
    )
    assert site.post_response(requests.Session(), "acme", deactivated).status_code == 403
    # A workspace that does not exist reads as every other unavailable one: the label is the
    # page's public code, so the metrics never tell which workspaces exist or are on a plan.
    nowhere = site.post_response(requests.Session(), "nosuchworkspace", response)
    assert nowhere.status_code == 404

    samples, _ = scrape(metrics_url)

    sign_ins = "webwork_sso_sign_ins_total"
    assert value(samples, sign_ins, result="success", reason="none") == 2
    assert value(samples, sign_ins, result="rejected", reason="replayed") == 1
    assert value(samples, sign_ins, result="rejected", reason="domain_not_verified") == 1
    assert value(samples, sign_ins, result="rejected", reason="bad_encoding") == 1
    assert value(samples, sign_ins, result="rejected", reason="member_deactivated") == 1
    assert value(samples, sign_ins, result="rejected", reason="sso_unavailable") == 1
    assert "unknown_workspace" not in label_values(samples)
    assert value(samples, "webwork_sso_acs_duration_seconds_count") == 7
    assert value(samples, "webwork_sso_acs_duration_seconds_sum") > 0
    checks = "webwork_sso_session_checks_total"
    assert value(samples, checks, source="database") >= 1
    assert value(samples, checks, source="cache") >= 1
    assert value(samples, checks, source="database") + value(samples, checks, source="cache") == 2
    _assert_nothing_personal(samples, site, token)


def test_scim_requests_are_counted_by_method_resource_type_and_status(
    metered: tuple[Site, str], acme: str
) -> None:
    site, metrics_url = metered
    token = acme
    bearer = {"Authorization": f"Bearer {token}"}
    base = f"{site.url}/scim/v2"

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, base + path, headers=bearer, timeout=10, **kwargs)

    created = call("POST", "/Users", json=okta_user("dana@acme.test"))
    assert created.status_code == 201, created.text
    member_id = created.json()["id"]
    assert call("GET", f"/Users/{member_id}").status_code == 200
    assert call("GET", "/Users", params={"filter": 'userName eq "dana@acme.test"'}).ok
    # Hostile paths: an email where the id goes, a resource type nobody has, a deep path.
    assert call("GET", "/Users/dana@acme.test").status_code == 404
    assert call("GET", "/Nonsense/dana@acme.test").status_code == 404
    assert call("DELETE", f"/Groups/{member_id}/x/y").status_code == 404
    assert call("GET", "/Schemas").status_code == 200
    assert call("PATCH", f"/Users/{member_id}", json={"Operations": []}).status_code == 400
    assert call("DELETE", f"/Users/{member_id}").status_code == 204

    samples, _ = scrape(metrics_url)

    requests_total = "webwork_sso_scim_requests_total"
    assert value(samples, requests_total, method="POST", resource="Users", status="201") == 1
    assert value(samples, requests_total, method="GET", resource="Users", status="200") == 2
    assert value(samples, requests_total, method="GET", resource="Users", status="404") == 1
    assert value(samples, requests_total, method="GET", resource="other", status="404") == 1
    assert value(samples, requests_total, method="DELETE", resource="Groups", status="404") == 1
    assert value(samples, requests_total, method="GET", resource="Schemas", status="200") == 1
    assert value(samples, requests_total, method="PATCH", resource="Users", status="400") == 1
    assert value(samples, requests_total, method="DELETE", resource="Users", status="204") == 1
    latency = "webwork_sso_scim_request_duration_seconds_count"
    assert value(samples, latency, method="GET", resource="Users") == 3
    resources = {dict(labels).get("resource") for name, labels in samples if name == requests_total}
    assert resources == {"Users", "Groups", "Schemas", "other"}
    _assert_nothing_personal(samples, site, token, member_id, "Nonsense")


def test_a_throttled_client_is_counted(metered: tuple[Site, str], acme: str) -> None:
    site, metrics_url = metered
    limit = site.middleware.scim.throttle.limit
    wrong = {"Authorization": "Bearer " + "x" * 43}
    statuses = [
        requests.get(f"{site.url}/scim/v2/Users", headers=wrong, timeout=10).status_code
        for _ in range(limit + 2)
    ]
    assert statuses == [401] * limit + [429] * 2

    samples, _ = scrape(metrics_url)

    assert value(samples, "webwork_sso_scim_clients_blocked_total") == 1  # one client, once
    requests_total = "webwork_sso_scim_requests_total"
    assert value(samples, requests_total, method="GET", resource="Users", status="401") == limit
    assert value(samples, requests_total, method="GET", resource="Users", status="429") == 2
    _assert_nothing_personal(samples, site, acme, "x" * 43, "127.0.0.1")


def test_metadata_refreshes_and_their_failures_are_counted(
    metered: tuple[Site, str],
    serve: Callable[[Any], Any],
    database_url: str,
    idp: TestIdP,
) -> None:
    site, metrics_url = metered
    host = MetadataHost(idp)
    try:
        workspaces = site.workspaces
        workspaces.create("acme", name="Acme", plan="plus", owner_email="owner@acme.test")
        workspaces.enable("acme", sso=True)
        workspaces.verify_domain("acme", "acme.test", by_operator=True)
        workspaces.set_idp("acme", metadata_url=host.url)
        idp.sp_config(site.entity_id("acme"), site.acs("acme"))
        host.fault = "http_500"
        make_refresh_due(site.middleware)
        response = idp.response(
            sp_entity_id=site.entity_id("acme"), acs_url=site.acs("acme"), email="amy@acme.test"
        )
        # The last good copy signs her in; the refresh failed.
        assert site.post_response(requests.Session(), "acme", response).status_code == 303

        samples, _ = scrape(metrics_url)
        refreshes = "webwork_sso_idp_metadata_refreshes_total"
        assert value(samples, refreshes, result="failure") == 1
        assert value(samples, refreshes, result="success") == 0
        _assert_nothing_personal(samples, site, "127.0.0.1", str(host.port))

        # The URL heals; another worker (its own registry) refreshes at its next sign-in.
        host.fault = None
        make_refresh_due(site.middleware)
        worker = Site(serve, database_url, metrics=True, metadata_allowed_hosts="127.0.0.1")
        try:
            idp.sp_config(worker.entity_id("acme"), worker.acs("acme"))
            response = idp.response(
                sp_entity_id=worker.entity_id("acme"),
                acs_url=worker.acs("acme"),
                email="ben@acme.test",
            )
            assert worker.post_response(requests.Session(), "acme", response).status_code == 303
            assert worker.middleware.metrics is not site.middleware.metrics
            registry = worker.middleware.metrics.registry  # type: ignore[attr-defined]
            assert registry.get_sample_value(refreshes, {"result": "success"}) == 1
            assert registry.get_sample_value(refreshes, {"result": "failure"}) == 0
        finally:
            worker.middleware.close()
    finally:
        host.down()


def test_the_scraper_gets_the_format_it_asks_for(metered: tuple[Site, str]) -> None:
    _, metrics_url = metered
    _, plain = scrape(metrics_url)
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    openmetrics = requests.get(
        metrics_url,
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        timeout=10,
    )
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def _assert_nothing_personal(samples: Samples, site: Site, *secrets: str) -> None:
    """No label value carries an email, a token, an id, an address or a path; and only the
    metrics of this package, whose every label is in a fixed set, are in the scrape."""
    seen = label_values(samples)
    assert seen, "no labelled samples at all"
    for found in seen:
        assert "@" not in found and "/" not in found and "." not in found, found
        for secret in secrets:
            assert secret not in found, (secret, found)
    member_ids = [member.id for member in site.members()]
    assert not any(member_id in found for member_id in member_ids for found in seen)
    assert {name.split("_")[0] for name, _ in samples} == {"webwork"}
