"""domains.py: which domains a workspace may claim, and TXT look-ups through a real DNS server."""

from __future__ import annotations

import time

import pytest

from webwork_sso_middleware import domains
from webwork_sso_middleware.errors import DomainError

from .dns_server import TxtServer


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Acme.TEST", "acme.test"),
        ("@eu.acme.test", "eu.acme.test"),
        ("acme.test.", "acme.test"),
        ("  acme.test ", "acme.test"),
        ("Bücher.example", "xn--bcher-kva.example"),
        ("example.com", "example.com"),  # RFC 2606: in some lists, yet no one's mailbox
    ],
)
def test_claimable_domains_are_normalised(given: str, stored: str) -> None:
    assert domains.clean(given) == stored


@pytest.mark.parametrize(
    "public",
    [
        "gmail.com",
        "GMail.com",
        "outlook.com",
        "yahoo.com",
        "hotmail.com",
        "icloud.com",
        "gmx.de",
        "mailinator.com",
        "guerrillamail.com",
        "10minutemail.com",
    ],
)
def test_public_and_disposable_mail_domains_are_refused(public: str) -> None:
    with pytest.raises(DomainError) as raised:
        domains.clean(public)
    assert "public or disposable" in raised.value.reason


@pytest.mark.parametrize(
    "junk",
    [
        "not a domain",
        "acme",
        "-acme.test",
        "acme..test",
        "",
        "@",
        "a" * 64 + ".test",
        "acme.test/x",
        "acme_test.test",
    ],
)
def test_what_is_not_a_domain_name_is_refused(junk: str) -> None:
    with pytest.raises(DomainError) as raised:
        domains.clean(junk)
    assert raised.value.reason == "is not a domain name"


def test_the_verification_record_lives_under_its_own_label() -> None:
    record = domains.verification_record("acme.test", "tok3n")
    assert (record.name, record.value) == (
        "_webwork-sso.acme.test",
        "webwork-sso-verification=tok3n",
    )


def test_txt_look_up_through_the_configured_server(dns_server: TxtServer) -> None:
    dns_server.publish("_webwork-sso.acme.test", "v=spf1 -all", "webwork-sso-verification=abc")
    resolver = domains.TxtResolver((dns_server.nameserver,), timeout=2)

    assert sorted(resolver.txt("_webwork-sso.acme.test")) == [
        "v=spf1 -all",
        "webwork-sso-verification=abc",
    ]
    assert resolver.txt("_webwork-sso.nobody.test") == []  # NXDOMAIN: simply nothing there
    assert dns_server.queries[-2:] == ["_webwork-sso.acme.test", "_webwork-sso.nobody.test"]


def test_a_dns_that_does_not_answer_is_an_error_within_the_timeout(dns_server: TxtServer) -> None:
    dns_server.silent.add("_webwork-sso.slow.test")
    resolver = domains.TxtResolver((dns_server.nameserver,), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(DomainError) as raised:
        resolver.txt("_webwork-sso.slow.test")
    assert time.monotonic() - started < 2
    assert "did not answer" in raised.value.reason


@pytest.mark.parametrize(
    ("server", "split"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]", ("::1", 53)),
    ],
)
def test_nameservers_are_host_and_optional_port(server: str, split: tuple[str, int]) -> None:
    assert domains.split_nameserver(server) == split
