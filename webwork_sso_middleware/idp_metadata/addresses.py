"""Which metadata URLs and addresses may be fetched (issue 9, SSRF): the rules, without the I/O.

A workspace owner chooses the URL, and every owner may be hostile. :func:`check_url` judges the
URL's form (https, or http to loopback only); :func:`is_public_address` judges each address a
host resolves to, which :mod:`.fetching` asks before it connects.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

from ..errors import MetadataError

_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")
# Forms of IPv6 address that carry an IPv4 address the network may deliver to: judge that one.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# IETF protocol assignments (192.0.0.8 and friends): Python 3.11 calls some of them global.
_IETF_PROTOCOL = ipaddress.ip_network("192.0.0.0/24")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_public_address(address: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, shared (100.64/10),
    reserved, multicast, unspecified, documentation, nor an IPv6 form of any of these."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address.sixtofour is not None:
            return is_public_address(address.sixtofour)
        if address in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.teredo is not None or address in _NAT64_LOCAL or address in _IPV4_COMPATIBLE:
            return False
        if address.is_site_local:
            return False
    if address in _IETF_PROTOCOL:
        return False
    # is_global alone lets multicast through; the rest are belt and braces across versions.
    return address.is_global and not (
        address.is_multicast or address.is_private or address.is_reserved
        or address.is_loopback or address.is_link_local or address.is_unspecified
    )  # fmt: skip


def check_url(url: str) -> None:
    """Refuse what we will not fetch: anything but https, and plain http beyond loopback.

    This judges the URL's form only (the caller's own input); which addresses may be reached
    is decided when fetching.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise MetadataError(f"{url!r} is not a URL") from None
    if _SPACE_OR_CONTROL.search(url.strip()):
        raise MetadataError(f"{url.strip()!r} contains a space or a control character")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise MetadataError(f"{url!r} is not an https URL")
    if scheme == "http" and not is_loopback(host):
        # Keys come from the metadata: over plain http anyone on the path could swap them.
        raise MetadataError(
            f"{shown(url)} uses plain http; a metadata URL must be https"
            " (http is accepted only for localhost)"
        )


def shown(url: str) -> str:
    """The URL as it is safe to print: without any user:password."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        netloc = parts.hostname or ""
        return urlunsplit(parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc))
    except ValueError:
        return repr(url)
