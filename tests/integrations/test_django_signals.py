"""Lifecycle events as a Django signal (integrations/django_signals.py), with real Django:
the project of tests/integrations/django_project.py behind ``sso_wsgi_application``, served
over HTTP, signed into through the real test IdP and provisioned by SCIM."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from webwork_sso_middleware import SSOMiddleware
from webwork_sso_middleware.events import Event
from webwork_sso_middleware.integrations.django_signals import lifecycle_event

from ..saml.idp import TestIdP
from ..store_helpers import Statements
from .conftest import FrameworkSite

ALICE = "alice.smith@acme.test"


pytestmark = pytest.mark.usefixtures("django_project_ready")


@pytest.fixture
def site(
    empty_django_tables: None, make_django_site: Callable[..., FrameworkSite]
) -> FrameworkSite:
    return make_django_site()


@pytest.fixture
def received() -> Iterator[list[tuple[Any, str, Event]]]:
    heard: list[tuple[Any, str, Event]] = []

    def receiver(sender: Any, event: Event, kind: str, **kwargs: Any) -> None:
        heard.append((sender, kind, event))

    lifecycle_event.connect(receiver, weak=False, dispatch_uid="test-receiver")
    yield heard
    lifecycle_event.disconnect(dispatch_uid="test-receiver")


def test_sign_in_and_deactivation_are_sent_as_lifecycle_event(
    site: FrameworkSite, idp: TestIdP, received: list[tuple[Any, str, Event]]
) -> None:
    token = site.add_workspace("acme", idp)
    site.sign_in(requests.Session(), idp, "acme", ALICE)
    site.set_active(token, site.members()[0].id, False)

    assert [kind for _, kind, _ in received] == [
        "member.created",
        "member.signed_in",
        "member.deactivated",
    ]
    assert {sender for sender, _, _ in received} == {SSOMiddleware}
    assert {event.identity for _, _, event in received} == {ALICE}  # the Django username
    assert [e.source for _, _, e in received] == ["saml", "saml", "scim"]
    assert [e.id for e in site.middleware.events.since()] == [e.id for _, _, e in received]


def test_a_receiver_that_raises_is_logged_and_fails_nothing(
    site: FrameworkSite,
    idp: TestIdP,
    received: list[tuple[Any, str, Event]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    lifecycle_event.connect(broken, weak=False, dispatch_uid="broken")
    try:
        token = site.add_workspace("acme", idp)
        with caplog.at_level(logging.ERROR, logger="webwork_sso_middleware"):
            browser = requests.Session()
            site.sign_in(browser, idp, "acme", ALICE)  # 303 all the same
            site.set_active(token, site.members()[0].id, False)  # 200 all the same
    finally:
        lifecycle_event.disconnect(dispatch_uid="broken")
    assert [kind for _, kind, _ in received] == [
        "member.created",
        "member.signed_in",
        "member.deactivated",
    ]
    failures = [r for r in caplog.records if r.name.startswith("webwork_sso_middleware")]
    assert len(failures) == 3
    assert all(r.exc_info and "receiver bug" in str(r.exc_info[1]) for r in failures)


def test_with_no_receiver_a_commit_reads_no_events(site: FrameworkSite, idp: TestIdP) -> None:
    token = site.add_workspace("acme", idp)
    site.sign_in(requests.Session(), idp, "acme", ALICE)
    with Statements(site.middleware.database) as statements:
        site.set_active(token, site.members()[0].id, False)
    # Nobody listens: the commit's events are not read back nor built (asked at delivery).
    assert statements.matching("lifecycle_events.id IN") == []
    heard: list[str] = []

    def late(sender: Any, event: Event, kind: str, **kwargs: Any) -> None:
        heard.append(kind)

    lifecycle_event.connect(late, weak=False, dispatch_uid="late-receiver")
    try:
        site.set_active(token, site.members()[0].id, True)
    finally:
        lifecycle_event.disconnect(dispatch_uid="late-receiver")
    assert heard == ["member.reactivated"]  # a receiver connected later hears the next one
