"""Email domains a workspace may claim, and the DNS TXT record that proves it controls one.

A claim counts only once verified (store/workspaces.py keeps claims and verifications). Public
mail providers and disposable-address services are refused outright: nobody's workspace owns
``gmail.com``. Both lists come from maintained packages (disposable-email-domains, the list
behind many sign-up forms; email-inspector's list of free mail providers) rather than a list
typed here that would go stale.
"""

from __future__ import annotations

import dataclasses
import functools

import dns.exception
import dns.rdatatype
import dns.resolver

from .errors import DomainError
from .names import DOMAIN_PATTERN, canonical_domain

RECORD_PREFIX = "_webwork-sso"  # the TXT record lives at _webwork-sso.<domain>
VALUE_PREFIX = "webwork-sso-verification="
DNS_TIMEOUT = 5.0  # seconds for the whole look-up, every nameserver tried included


def clean(domain: str) -> str:
    """A claimable domain in its stored form (lower case, no leading @ or trailing dot);
    DomainError for anything else, public mail providers and disposable domains included."""
    cleaned = canonical_domain(domain.strip().lstrip("@"))
    if cleaned is None or not DOMAIN_PATTERN.match(cleaned):
        raise DomainError(domain, "is not a domain name")
    if is_public_mail_domain(cleaned):
        raise DomainError(
            cleaned,
            "is a public or disposable email provider; a workspace can "
            "claim only its organisation's own domains",
        )
    return cleaned


# RFC 2606's example domains serve no mailboxes, yet some lists carry them: the demo and the
# docs use them, so they stay claimable.
_DOCUMENTATION_DOMAINS = frozenset({"example.com", "example.net", "example.org"})


def is_public_mail_domain(domain: str) -> bool:
    if domain in _DOCUMENTATION_DOMAINS:
        return False
    return domain in _disposable_domains() or _is_free_mail_domain(domain)


@functools.cache
def _disposable_domains() -> frozenset[str]:
    from disposable_email_domains import blocklist  # loaded on first use, not at import

    return frozenset(blocklist)


def _is_free_mail_domain(domain: str) -> bool:
    from email_inspector.free_providers import is_free_domain

    return bool(is_free_domain(domain))


@dataclasses.dataclass(frozen=True, slots=True)
class TxtRecord:
    """The record an owner publishes to verify ``domain``."""

    name: str
    value: str


def verification_record(domain: str, token: str) -> TxtRecord:
    return TxtRecord(f"{RECORD_PREFIX}.{domain}", VALUE_PREFIX + token)


class TxtResolver:
    """Looks up TXT records through the configured nameservers (``host`` or ``host:port``,
    IPv6 as ``[::1]:53``), or the system's resolver when none are configured."""

    def __init__(self, nameservers: tuple[str, ...] = (), *, timeout: float = DNS_TIMEOUT) -> None:
        self.nameservers = nameservers
        self.timeout = timeout

    def _resolver(self) -> dns.resolver.Resolver:
        if not self.nameservers:
            resolver = dns.resolver.Resolver()
        else:
            resolver = dns.resolver.Resolver(configure=False)
            addresses, ports = [], set()
            for server in self.nameservers:
                host, port = split_nameserver(server)
                addresses.append(host)
                ports.add(port)
            resolver.nameservers = addresses
            resolver.port = ports.pop() if len(ports) == 1 else 53
        resolver.lifetime = self.timeout
        resolver.timeout = self.timeout
        return resolver

    def txt(self, name: str) -> list[str]:
        """The TXT strings at ``name`` (each record's strings joined); [] when there are none.
        Raises DomainError when the DNS cannot answer (timeout, SERVFAIL)."""
        try:
            answer = self._resolver().resolve(name, dns.rdatatype.TXT, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException:
            raise DomainError(name, "the DNS did not answer; try again in a moment") from None
        return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def split_nameserver(server: str) -> tuple[str, int]:
    server = server.strip()
    if server.startswith("["):  # [::1]:5353
        host, _, rest = server[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if server.count(":") == 1:
        host, _, port = server.partition(":")
        return host, int(port)
    return server, 53
