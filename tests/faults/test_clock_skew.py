"""The IdP's clock off from ours: within ``clock_skew_seconds`` sign-in works; beyond it the
person sees why (reason ``not_yet_valid`` or ``expired``) and the owner finds it in the audit log.

The IdP here stamps its assertions by its own clock, ``offset`` seconds from ours: valid from
its "now" (NotBefore, as Entra and ADFS set it) for LIFETIME seconds (NotOnOrAfter, on the
Conditions and the bearer confirmation). So an IdP ahead by more than the skew sends
assertions that are not valid yet; one behind sends assertions that have lived part of their
LIFETIME already, which fail once it is behind by more than LIFETIME + the skew.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from ..saml.conftest import Site
from ..saml.idp import TestIdP

LIFETIME = 60
MARGIN = 15  # seconds kept clear of each boundary, for the time the test itself takes


def signed_by_clock(site: Site, idp: TestIdP, email: str, offset: float) -> requests.Response:
    """A response from an IdP whose clock reads ours + ``offset``, posted to the ACS."""
    saml_response = idp.response(
        sp_entity_id=site.entity_id("acme"),
        acs_url=site.acs("acme"),
        email=email,
        not_before_offset=offset,
        not_on_or_after_offset=offset + LIFETIME,
    )
    return site.post_response(requests.Session(), "acme", saml_response)


@pytest.mark.parametrize("skew", [30, None], ids=["skew=30", "default skew=180"])
def test_idp_clock_within_the_skew_works_and_beyond_it_fails_clearly(
    skew: int | None, serve: Callable[[Any], Any], database_url: str, idp: TestIdP
):
    options = {} if skew is None else {"clock_skew_seconds": skew}
    site = Site(serve, database_url, **options)
    try:
        site.add_workspace("acme", idp)
        allowed = site.middleware.settings.clock_skew_seconds
        assert allowed == (skew or 180)
        cases = [
            # (IdP clock minus ours, expected reason or None for a sign-in)
            (0, None),
            (allowed - MARGIN, None),
            (allowed + MARGIN, "not_yet_valid"),
            (-(allowed - MARGIN), None),
            (-(allowed + LIFETIME - MARGIN), None),
            (-(allowed + LIFETIME + MARGIN), "expired"),
        ]
        for number, (offset, reason) in enumerate(cases):
            email = f"person{number}@acme.test"
            answer = signed_by_clock(site, idp, email, offset)
            if reason is None:
                assert answer.status_code == 303, (offset, answer.text)
                continue
            assert answer.status_code == 400, (offset, answer.text)
            assert "Sign-in failed" in answer.text
            assert f'<span class="reason">{reason}</span>' in answer.text
            # The person sees which bound it was; the owner's record, which time.
            assert ("not valid yet" if reason == "not_yet_valid" else "has expired") in answer.text
            assert "Set-Cookie" not in answer.headers
            event = site.audit("login_failed")[-1]
            assert event.changes["reason"] == reason and event.changes["email"] == email
            expected = "is valid only from" if reason == "not_yet_valid" else "expired at"
            assert expected in event.changes["detail"] and "Z" in event.changes["detail"]
        signed_in = sorted(m.user_name for m in site.members())
        assert signed_in == [f"person{n}@acme.test" for n, (_, r) in enumerate(cases) if r is None]
    finally:
        site.middleware.close()
