"""page_headers: the one header set of every HTML page; a URL can never rewrite the policy."""

from __future__ import annotations

import pytest

from webwork_sso_middleware.page_headers import content_security_policy, origin_source


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://idp.example.com/sso?x=1", "https://idp.example.com"),
        ("http://127.0.0.1:8001/saml/acme/acs", "http://127.0.0.1:8001"),
        ("http://[::1]:8001/acs", "http://[::1]:8001"),
        ("https://idp.example.com;script-src/acs", None),  # would add a directive
        ("https://a.example 'unsafe-inline'/x", None),
        ("https://user@idp.example.com/", None),
        ("javascript:alert(1)", None),
        ("/relative", None),
    ],
)
def test_only_a_plain_http_origin_becomes_a_source(url: str, source: str | None) -> None:
    assert origin_source(url) == source


def test_a_page_with_no_form_target_posts_nowhere() -> None:
    csp = content_security_policy(styles="'none'", form_action=())
    assert "form-action 'none'" in csp and "frame-ancestors 'none'" in csp
