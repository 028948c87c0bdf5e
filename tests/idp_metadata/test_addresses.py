"""Which metadata URLs and addresses may be fetched: the URL rules and the SSRF address rules."""

from __future__ import annotations

import ipaddress

import pytest

from webwork_sso_middleware.errors import MetadataError
from webwork_sso_middleware.idp_metadata.addresses import (
    check_url,
    is_loopback,
    is_public_address,
)

# -- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.9.8.7", "::1"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["example.com", "10.0.0.1", "localhost.example.com", "0.0.0.0"])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    "url",
    ["https://acme.okta.com/app/x/sso/saml/metadata", "http://127.0.0.1:8080/m",
     "http://localhost/m", "http://[::1]:9000/m"],
)  # fmt: skip
def test_accepted_urls(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://example.com/metadata", "plain http"),
        ("http://10.1.2.3/metadata", "plain http"),
        ("file:///etc/passwd", "not an https URL"),
        ("ftp://idp.example/metadata", "not an https URL"),
        ("https:///no-host", "not an https URL"),
        ("acme.okta.com/metadata", "not an https URL"),
        ("http://[::1/metadata", "not a URL"),
        ("https://idp.example:port/metadata", "not a URL"),
        ("https://idp.example/meta\ndata", "control character"),
    ],
)
def test_refused_urls(url: str, fragment: str) -> None:
    with pytest.raises(MetadataError, match=fragment):
        check_url(url)


# -- which addresses are public ------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.0.9", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250",
    "240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.2.1", "192.0.0.8",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe", "64:ff9b:1::808:808", "2002:7f00:1::1", "2002:a00:1::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "::127.0.0.1", "::8.8.8.8",
])  # fmt: skip
def test_internal_and_special_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::200e",
    "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
])  # fmt: skip
def test_globally_routable_addresses_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))
