"""The converters and checks that config.py's declarations name, on their own."""

from __future__ import annotations

from typing import Any

import pytest

from webwork_sso_middleware import option_values as values
from webwork_sso_middleware.errors import ConfigurationError, WebworkSSOError


@pytest.mark.parametrize(("given", "expected"), [("25", 25), (" 7 ", 7), (3, 3), (2.0, 2)])
def test_a_whole_number_from_text_or_python(given: Any, expected: int) -> None:
    assert values.to_int(given) == expected


@pytest.mark.parametrize("given", ["1.5", "ten", 1.5, True, float("inf"), float("nan"), None])
def test_anything_else_is_not_a_whole_number_and_says_so(given: Any) -> None:
    with pytest.raises(values.Expected, match="must be a whole number, not"):
        values.to_int(given)


def test_numbers_and_booleans_refuse_each_other() -> None:
    assert values.to_float("2.5") == 2.5 and values.to_float(3) == 3.0
    with pytest.raises(values.Expected, match="must be a number, not True"):
        values.to_float(True)
    assert values.to_bool(" Yes ") is True and values.to_bool("off") is False
    with pytest.raises(values.Expected, match="must be true or false"):
        values.to_bool(1)


def test_an_expected_value_error_is_in_the_package_tree() -> None:
    assert issubclass(values.Expected, WebworkSSOError) and issubclass(values.Expected, ValueError)


def test_ranges_refuse_nan_and_name_their_bounds() -> None:
    check = values.between(0, 300)
    assert check(0) is None and check(300) is None
    assert check(float("nan")) == check(301) == "must be between 0 and 300"
    assert values.at_least(60, " seconds")(59) == "must be at least 60 seconds"


def test_protect_takes_true_or_prefixes_normalised_once_each() -> None:
    assert values.to_protect(True) is True and values.to_protect("false") == ()
    assert values.to_protect(["/Reports/", "/reports", "/a//b"]) == ("/reports", "/a/b")
    with pytest.raises(ValueError):
        values.to_protect(["reports"])


def test_allowed_hosts_are_bare_names_or_addresses() -> None:
    assert values.metadata_allowed_hosts(["IdP.Internal.", "[::1]", "idp.internal"]) == (
        "idp.internal",
        "::1",
    )
    with pytest.raises(ConfigurationError, match="not a host name"):
        values.metadata_allowed_hosts(["idp.internal:8443"])
