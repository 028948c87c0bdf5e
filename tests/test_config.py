"""Settings: keyword options first, then WEBWORK_SSO_* environment variables, typed and checked."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest

from webwork_sso_middleware import config
from webwork_sso_middleware.config import Options, Settings
from webwork_sso_middleware.errors import ConfigurationError, WebworkSSOError


def settings(environ: dict[str, str] | None = None, **options: Any) -> Settings:
    options.setdefault("secret_key", ["key-padded-to-thirty-two-bytes-at-least"])
    return Settings.from_options(options, environ=environ or {})


def test_defaults() -> None:
    result = settings()

    assert result.database_url == "sqlite:///webwork_sso.db"
    assert result.base_url is None
    assert result.scim_max_results == 200
    assert result.max_body_bytes == 1024 * 1024
    assert result.auto_migrate is True


def test_each_option_falls_back_to_the_environment() -> None:
    environ = {
        "WEBWORK_SSO_DATABASE_URL": "postgresql+psycopg://db.example/sso",
        "WEBWORK_SSO_SECRET_KEY": "from-env-padded-to-thirty-two-bytes-at-least",
        "WEBWORK_SSO_BASE_URL": "https://tracker.example.com",
        "WEBWORK_SSO_SCIM_MAX_RESULTS": "50",
        "WEBWORK_SSO_MAX_BODY_BYTES": "4096",
        "WEBWORK_SSO_AUTO_MIGRATE": "off",
    }

    result = Settings.from_options({}, environ=environ)

    assert result.database_url == "postgresql+psycopg://db.example/sso"
    assert result.secret_key == ("from-env-padded-to-thirty-two-bytes-at-least",)
    assert result.base_url == "https://tracker.example.com"
    assert result.scim_max_results == 50
    assert result.max_body_bytes == 4096
    assert result.auto_migrate is False


def test_an_explicit_option_wins_over_the_environment() -> None:
    environ = {
        "WEBWORK_SSO_DATABASE_URL": "sqlite:///env.db",
        "WEBWORK_SSO_SECRET_KEY": "env-key-padded-to-thirty-two-bytes-at-least",
        "WEBWORK_SSO_SCIM_MAX_RESULTS": "50",
        "WEBWORK_SSO_AUTO_MIGRATE": "true",
    }

    result = Settings.from_options(
        {
            "database_url": "sqlite:///explicit.db",
            "secret_key": ["explicit-key-padded-to-thirty-two-bytes-at-least"],
            "scim_max_results": 7,
            "auto_migrate": False,
        },
        environ=environ,
    )

    assert result.database_url == "sqlite:///explicit.db"
    assert result.secret_key == ("explicit-key-padded-to-thirty-two-bytes-at-least",)
    assert result.scim_max_results == 7
    assert result.auto_migrate is False


def test_none_means_not_given_and_an_empty_variable_means_unset() -> None:
    result = Settings.from_options(
        {"secret_key": None, "base_url": None},
        environ={
            "WEBWORK_SSO_SECRET_KEY": "env-key-padded-to-thirty-two-bytes-at-least",
            "WEBWORK_SSO_BASE_URL": "",
        },
    )

    assert result.secret_key == ("env-key-padded-to-thirty-two-bytes-at-least",)
    assert result.base_url is None


def test_several_secret_keys_from_the_environment_are_comma_separated_newest_last() -> None:
    variable = (
        " old-padded-to-thirty-two-bytes-at-least , new-padded-to-thirty-two-bytes-at-least ,"
    )
    result = Settings.from_options({}, environ={"WEBWORK_SSO_SECRET_KEY": variable})

    assert result.secret_key == (
        "old-padded-to-thirty-two-bytes-at-least",
        "new-padded-to-thirty-two-bytes-at-least",
    )


def test_a_list_of_secret_keys_rotates_newest_last() -> None:
    result = settings(
        secret_key=[
            "old-padded-to-thirty-two-bytes-at-least",
            "older-still-padded-to-thirty-two-bytes-at-least",
            "newest-padded-to-thirty-two-bytes-at-least",
        ]
    )

    assert result.secret_key == (
        "old-padded-to-thirty-two-bytes-at-least",
        "older-still-padded-to-thirty-two-bytes-at-least",
        "newest-padded-to-thirty-two-bytes-at-least",
    )


@pytest.mark.parametrize(
    "environ", [{}, {"WEBWORK_SSO_SECRET_KEY": ""}, {"WEBWORK_SSO_SECRET_KEY": " , "}]
)
def test_a_secret_key_is_required(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_options({}, environ=environ)

    assert raised.value.option == "secret_key"


@pytest.mark.parametrize(
    "secret_key",
    [
        ["a"],
        ["x" * 31],
        ["old-but-weak", "new-padded-to-thirty-two-bytes-at-least"],
        ["new-padded-to-thirty-two-bytes-at-least", "\u00e9" * 15],
    ],
)
def test_secret_keys_shorter_than_32_bytes_are_refused(secret_key: list[str]) -> None:
    # A short key can be guessed offline from one cookie; an old key in the list still verifies.
    with pytest.raises(ConfigurationError) as raised:
        settings(secret_key=secret_key)
    assert raised.value.option == "secret_key"
    assert "32 bytes" in raised.value.reason


def test_a_key_of_exactly_32_bytes_is_accepted() -> None:
    assert settings(secret_key=["x" * 32]).secret_key == ("x" * 32,)


@pytest.mark.parametrize("secret_key", [[], [""], ["good-padded-to-thirty-two-bytes-at-least", ""]])
def test_empty_secret_keys_are_refused(secret_key: list[str]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings(secret_key=secret_key)

    assert raised.value.option == "secret_key"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://tracker.example.com/", "https://tracker.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://example.com/tracker/", "https://example.com/tracker"),
    ],
)
def test_base_url_loses_its_trailing_slash(given: str, kept: str) -> None:
    assert settings(base_url=given).base_url == kept


@pytest.mark.parametrize(
    "base_url",
    ["tracker.example.com", "ftp://tracker.example.com", "https://", "https://x.example/?a=1"],
)
def test_a_base_url_that_is_not_an_http_origin_is_refused(base_url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings(base_url=base_url)

    assert raised.value.option == "base_url"
    assert "http" in raised.value.reason


def test_a_bad_base_url_from_the_environment_is_refused_too() -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        settings(environ={"WEBWORK_SSO_BASE_URL": "not a url"})


@pytest.mark.parametrize(
    ("option", "value"),
    [("scim_max_results", "many"), ("scim_max_results", True), ("max_body_bytes", "1.5")],
)
def test_an_integer_option_refuses_what_is_not_an_integer(option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings(**{option: value})

    assert raised.value.option == option
    assert repr(value) in str(raised.value)


def test_an_integer_from_the_environment_is_parsed_and_checked() -> None:
    assert settings(environ={"WEBWORK_SSO_SCIM_MAX_RESULTS": "25"}).scim_max_results == 25
    with pytest.raises(ConfigurationError, match="scim_max_results"):
        settings(environ={"WEBWORK_SSO_SCIM_MAX_RESULTS": "twenty"})


@pytest.mark.parametrize(("option", "value"), [("scim_max_results", 0), ("max_body_bytes", 1023)])
def test_integer_options_have_lower_bounds(option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings(**{option: value})

    assert raised.value.option == option


def test_the_database_busy_timeout_is_seconds_from_0_to_600() -> None:
    assert settings().database_busy_timeout == 30.0
    assert (
        settings(environ={"WEBWORK_SSO_DATABASE_BUSY_TIMEOUT": "2.5"}).database_busy_timeout == 2.5
    )
    assert settings(database_busy_timeout=0).database_busy_timeout == 0
    for bad in (-1, 601, float("nan")):
        with pytest.raises(ConfigurationError, match="database_busy_timeout"):
            settings(database_busy_timeout=bad)


def test_audit_retention_is_off_by_default_and_in_days() -> None:
    assert settings().audit_retention_days == 0
    assert settings(environ={"WEBWORK_SSO_AUDIT_RETENTION_DAYS": "400"}).audit_retention_days == 400
    for bad in (-1, 36501, 1.5, "a year"):
        with pytest.raises(ConfigurationError, match="audit_retention_days"):
            settings(audit_retention_days=bad)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("on", True),
     ("0", False), ("false", False), ("No", False), ("off", False)],
)  # fmt: skip
def test_boolean_words_from_the_environment(raw: str, expected: bool) -> None:
    assert settings(environ={"WEBWORK_SSO_AUTO_MIGRATE": raw}).auto_migrate is expected


@pytest.mark.parametrize("value", ["maybe", 1, "2"])
def test_a_boolean_option_refuses_anything_else(value: Any) -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings(auto_migrate=value)

    assert raised.value.option == "auto_migrate"


def test_a_string_option_refuses_another_type() -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings(database_url=42)

    assert raised.value.option == "database_url"


def test_an_unknown_option_is_named() -> None:
    with pytest.raises(ConfigurationError) as raised:
        settings(secret_keys=["typo"])

    assert raised.value.option == "secret_keys"
    assert "unknown option" in raised.value.reason
    assert "secret_key" in raised.value.reason  # the known options are listed


def test_configuration_errors_belong_to_the_package_error_tree() -> None:
    with pytest.raises(WebworkSSOError):
        settings(base_url="nope")
    with pytest.raises(ValueError):
        settings(base_url="nope")


def test_the_environment_is_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "WEBWORK_SSO_SECRET_KEY", "process-env-key-padded-to-thirty-two-bytes-at-least"
    )
    monkeypatch.setenv("WEBWORK_SSO_SCIM_MAX_RESULTS", "33")

    result = Settings.from_options({})

    assert result.secret_key == ("process-env-key-padded-to-thirty-two-bytes-at-least",)
    assert result.scim_max_results == 33


def test_settings_are_frozen() -> None:
    result = settings()

    with pytest.raises(AttributeError):
        result.database_url = "sqlite://"  # type: ignore[misc]


# -- IdP metadata fetching -----------------------------------------------------------------------


def test_no_metadata_host_is_allowed_by_default_and_fetches_take_at_most_10_seconds() -> None:
    result = settings()
    assert result.metadata_allowed_hosts == ()
    assert result.metadata_fetch_timeout == 10.0


def test_metadata_allowed_hosts_from_the_environment_are_comma_separated_and_normalised() -> None:
    environ = {"WEBWORK_SSO_METADATA_ALLOWED_HOSTS": " IdP.Internal. , 127.0.0.1,[::1],,localhost"}

    assert settings(environ=environ).metadata_allowed_hosts == (
        "idp.internal",
        "127.0.0.1",
        "::1",
        "localhost",
    )


def test_an_explicit_allowed_host_string_is_one_host_and_a_list_is_several() -> None:
    assert settings(metadata_allowed_hosts="idp.internal").metadata_allowed_hosts == (
        "idp.internal",
    )
    assert settings(metadata_allowed_hosts=["a.internal", "B.internal"]).metadata_allowed_hosts == (
        "a.internal",
        "b.internal",
    )


@pytest.mark.parametrize(
    "host",
    [
        "https://idp.internal",
        "idp.internal:8443",
        "idp.internal/x",
        "user@idp.internal",
        "*.internal",
        "10.0.0.0/8",
    ],
)
def test_an_allowed_host_must_be_a_bare_name_or_address(host: str) -> None:
    with pytest.raises(ConfigurationError, match="metadata_allowed_hosts.*not a host name"):
        settings(metadata_allowed_hosts=[host])


@pytest.mark.parametrize("value", [0, 0.05, 121, "nan", "soon"])
def test_the_metadata_fetch_timeout_is_bounded(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="metadata_fetch_timeout"):
        settings(environ={"WEBWORK_SSO_METADATA_FETCH_TIMEOUT": str(value)})
    assert (
        settings(environ={"WEBWORK_SSO_METADATA_FETCH_TIMEOUT": "2.5"}).metadata_fetch_timeout
        == 2.5
    )


# -- one declaration -----------------------------------------------------------------------------


def _members(hint: Any) -> set[Any]:
    return set(get_args(hint)) if get_origin(hint) in (Union, UnionType) else {hint}


def test_the_typed_keywords_and_the_settings_declare_the_same_options() -> None:
    # Options types SSOMiddleware(**options) for mypy; it cannot be derived from Settings, so
    # this keeps the two in step: the same names in the same order, each type a little wider
    # (None for "not given", one string or any sequence for an option of several values).
    accepted_by_name = get_type_hints(Options)
    stored_by_name = get_type_hints(Settings)

    assert list(accepted_by_name) == list(config.names()) == list(stored_by_name)
    for field in config.fields():
        accepted = _members(accepted_by_name[field.name])
        stored = _members(stored_by_name[field.name]) - {type(None)}
        widened = {type(None)}
        if config.declared(field).many:
            widened |= {str, Sequence[str]}
            stored = {Sequence[str] if kind == tuple[str, ...] else kind for kind in stored}
        assert accepted == stored | widened, field.name


def test_the_readme_table_lists_every_option_with_its_variable_and_default() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in readme.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) >= 4 and cells[1].startswith(f"`{config.ENV_PREFIX}"):
            rows[cells[0].strip("`")] = (cells[1].strip("`"), cells[2])

    assert set(rows) == set(config.names())
    for name, (variable, shown_default) in rows.items():
        assert variable == config.env_name(name)
        assert shown_default == _as_readme_shows(config.default(name)), name


def _as_readme_shows(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "required"
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def test_an_option_read_from_the_environment_alone_is_parsed_and_checked() -> None:
    # What the CLI reads: the same variables, parsed and checked as the middleware would.
    assert config.from_environment("dns_nameservers", {}) == ()
    environ = {"WEBWORK_SSO_DNS_NAMESERVERS": "127.0.0.1:5353, [::1]:53"}
    assert config.from_environment("dns_nameservers", environ) == ("127.0.0.1:5353", "[::1]:53")
    with pytest.raises(ConfigurationError, match="metadata_fetch_timeout"):
        config.from_environment(
            "metadata_fetch_timeout", {"WEBWORK_SSO_METADATA_FETCH_TIMEOUT": "600"}
        )


def test_an_unknown_option_is_a_type_error_too() -> None:
    # As Python's own error for an unexpected keyword argument.
    with pytest.raises(TypeError, match="databse_url.*known: database_url, secret_key"):
        settings(databse_url="sqlite://")


def test_roles_and_default_role_are_declared_options_with_environment_support() -> None:
    secret = {"secret_key": "k" * 40}
    settings = Settings.from_options(
        secret, {"WEBWORK_SSO_ROLES": "admin, member", "WEBWORK_SSO_DEFAULT_ROLE": "member"}
    )
    assert (settings.roles, settings.default_role) == (("admin", "member"), "member")
    assert Settings.from_options(secret, {}).roles == ()
    for options, fragment in (
        ({"roles": ["admin"], "default_role": "viewer"}, "not one of the declared roles"),
        ({"default_role": "viewer"}, "set roles first"),
        ({"roles": ["admin", "admin"]}, "twice"),
        ({"roles": ["admin", ""]}, "must not be empty"),
        ({"roles": "admin,member"}, "without commas"),
    ):
        with pytest.raises(ConfigurationError, match=fragment):
            Settings.from_options({**secret, **options}, {})
