"""The PasteDeploy filter through the installed entry point: ``egg:webwork-sso-middleware#sso``
in a real INI pipeline, loaded with ``paste.deploy.loadapp``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest
from paste.deploy import loadapp

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.errors import ConfigurationError
from webwork_sso_middleware.integrations.paste import filter_factory


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {environ.get('REMOTE_USER', 'anonymous')}".encode()]


def hello_factory(global_conf: dict[str, str], **local_conf: str) -> Any:
    return hello


PIPELINE = """\
[DEFAULT]
# [DEFAULT] values reach the factory as global_conf, never as options.
admin_email = ops@example.com

[pipeline:main]
pipeline = sso hello

[filter:sso]
use = egg:webwork-sso-middleware#sso
{options}

[app:hello]
use = call:tests.integrations.test_paste:hello_factory
"""


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Any]:
    """``load(options_text)``: the pipeline's app, from an INI file written with those options."""
    loaded: list[SSOMiddleware] = []

    def load_ini(options: str) -> Any:
        path = tmp_path / "site.ini"
        path.write_text(PIPELINE.format(options=options))
        app = loadapp(f"config:{path}")
        loaded.append(app)
        return app

    yield load_ini
    for app in loaded:
        app.close()


def test_the_entry_point_builds_the_middleware_with_typed_options(
    load: Any, database_url: str
) -> None:
    app = load(f"""
database_url = {database_url}
secret_key = old-key-padded-to-thirty-two-bytes-at-least, new-key-padded-to-thirty-two-bytes-at-least
base_url = https://tracker.example.com/
protect = /reports /admin
scim_max_results = 50
auto_migrate = false
session_recheck_seconds = 0.5
session_cookie_name = sso
clock_skew_seconds =
""")

    assert isinstance(app, SSOMiddleware) and app.app is hello
    settings = app.settings
    assert settings.secret_key == (
        "old-key-padded-to-thirty-two-bytes-at-least",
        "new-key-padded-to-thirty-two-bytes-at-least",
    )
    assert settings.base_url == "https://tracker.example.com"
    assert settings.protect == ("/reports", "/admin")
    assert settings.scim_max_results == 50 and settings.auto_migrate is False
    assert settings.session_recheck_seconds == 0.5
    assert settings.session_cookie_name == "sso"
    assert settings.clock_skew_seconds == 180  # empty: unset
    client = webtest.TestApp(app)
    assert client.get("/", extra_environ={"REMOTE_USER": "forged"}).text == "hello anonymous"
    assert client.get("/reports/2024", status=401).status_int == 401


def test_metadata_allowed_hosts_take_several_values(load: Any, database_url: str) -> None:
    app = load(f"""
database_url = {database_url}
secret_key = key-padded-to-thirty-two-bytes-at-least
metadata_allowed_hosts = idp.internal, 127.0.0.1 localhost
metadata_fetch_timeout = 4
""")

    assert app.settings.metadata_allowed_hosts == ("idp.internal", "127.0.0.1", "localhost")
    assert app.settings.metadata_fetch_timeout == 4.0


def test_every_option_of_several_values_takes_them_by_whitespace_or_commas(
    load: Any, database_url: str
) -> None:
    # Which options take several values is declared once (config.py); dns_nameservers was
    # missing from this adapter's own list, so "a b" reached the core as one server.
    app = load(f"""
database_url = {database_url}
secret_key = key-padded-to-thirty-two-bytes-at-least
dns_nameservers = 127.0.0.1:5353
    [::1]:53, 10.0.0.2
""")

    assert app.settings.dns_nameservers == ("127.0.0.1:5353", "[::1]:53", "10.0.0.2")


def test_options_left_out_come_from_the_environment(
    load: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBWORK_SSO_SECRET_KEY", "from-env-padded-to-thirty-two-bytes-at-least")
    app = load(f"database_url = {database_url}\nprotect = true")
    assert app.settings.secret_key == ("from-env-padded-to-thirty-two-bytes-at-least",)
    assert app.settings.protect is True


@pytest.mark.parametrize(
    "line, option, reason",
    [
        ("databse_url = sqlite://", "databse_url", "unknown option in the [filter:...] section"),
        ("scim_max_results = lots", "scim_max_results", "whole number, not 'lots'"),
        ("scim_max_results = 1.5", "scim_max_results", "whole number"),
        ("auto_migrate = maybe", "auto_migrate", "true or false"),
        ("session_recheck_seconds = soon", "session_recheck_seconds", "a number"),
        ("session_idle_lifetime = 10", "session_idle_lifetime", "at least 60"),  # the core's check
        ("protect = reports", "protect", "invalid value"),
    ],
)
def test_an_unknown_option_or_a_bad_value_fails_naming_it(
    load: Any, line: str, option: str, reason: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load(f"secret_key = k-padded-to-thirty-two-bytes-at-least\n{line}")
    assert raised.value.option == option
    assert reason in str(raised.value)


def test_global_conf_is_not_read_as_options() -> None:
    make_filter = filter_factory(
        {"here": "/srv", "__file__": "/srv/site.ini"},
        secret_key="k-padded-to-thirty-two-bytes-at-least",
        database_url="sqlite://",
    )
    app = make_filter(hello)
    try:
        assert app.settings.database_url == "sqlite://"
    finally:
        app.close()
