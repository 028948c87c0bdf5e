"""protected_paths: the readings of a path that protect= prefixes are matched against."""

from __future__ import annotations

import pytest

from webwork_sso_middleware.protected_paths import (
    is_protected,
    normalise_prefix,
    request_path_forms,
)


@pytest.mark.parametrize(
    ("path_info", "resolved"),
    [
        ("//reports", "/reports"),  # some servers pass a doubled slash through
        ("/reports/", "/reports"),
        ("/a/./b/../../reports", "/reports"),
        ("/../../reports", "/reports"),  # never above the root
        ("/reports;jsessionid=1/x", "/reports/x"),
        ("/x/..;/reports", "/reports"),
        ("/reports. /x", "/reports/x"),
        ("/%252e%252e/reports", "/reports"),
        ("/R\u00c9PORTS".encode().decode("latin-1"), "/r\u00e9ports"),  # PATH_INFO carries latin-1
        ("/reports\x00.html", "/reports"),
    ],
)
def test_the_resolved_reading(path_info: str, resolved: str) -> None:
    assert request_path_forms(path_info)[1] == resolved


def test_the_literal_reading_keeps_dot_segments() -> None:
    assert request_path_forms("/Reports/../public") == ("/reports/../public", "/public")


def test_a_prefix_is_normalised_like_a_request() -> None:
    assert normalise_prefix("/R\u00e9ports/./") == "/r\u00e9ports"
    assert is_protected("/R\u00c9PORTS/x".encode().decode("latin-1"), ["/r\u00e9ports"])
    assert not is_protected("/reports-archive", ["/reports"])
    assert is_protected("/anything", ["/"])
