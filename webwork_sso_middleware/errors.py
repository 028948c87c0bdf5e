"""One exception tree for the package; each error carries what a caller needs to act on it."""

from __future__ import annotations


class WebworkSSOError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(WebworkSSOError, ValueError):
    """An option is missing or invalid."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason


class StoreError(WebworkSSOError):
    """The member store refused or could not perform an operation."""


class StoreUnavailable(StoreError):
    """The database cannot be reached right now; the caller may retry later."""


class NotFound(StoreError, LookupError):
    """No such workspace, member or group (in the caller's workspace)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} {key!r}")
        self.kind = kind
        self.key = key


class Conflict(StoreError):
    """The change would break a uniqueness rule (a userName, a slug, a group name)."""

    def __init__(self, kind: str, field: str, value: str) -> None:
        super().__init__(f"a {kind} with {field} {value!r} already exists")
        self.kind = kind
        self.field = field
        self.value = value


class MetadataError(WebworkSSOError, ValueError):
    """IdP metadata could not be fetched, or is not usable SAML 2.0 IdP metadata.

    ``reason`` says what is wrong in words an owner can act on (it is shown on the settings
    page and recorded when a refresh fails).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"IdP metadata: {reason}")
        self.reason = reason


class MetadataUnavailable(MetadataError):
    """Nothing usable came back from the metadata URL: always the same words, whether the
    address was refused, nothing answered, or the answer was not SAML metadata, so the error
    tells a caller nothing about the network behind the URL (the detail is in the server log).
    """

    REASON = (
        "could not get IdP metadata from that URL; check that it is the IdP's metadata URL"
        " and that it is reachable over the internet"
    )

    def __init__(self) -> None:
        super().__init__(self.REASON)


class PlanError(WebworkSSOError):
    """The workspace's plan does not include the feature (SSO and SCIM need Plus or Premium)."""

    def __init__(self, slug: str, plan: str, feature: str) -> None:
        super().__init__(
            f"workspace {slug!r} is on the {plan} plan; {feature} require the Plus or Premium plan"
        )
        self.slug = slug
        self.plan = plan
        self.feature = feature


class DomainError(WebworkSSOError, ValueError):
    """A workspace's email domain cannot be claimed or verified; ``reason`` says why."""

    def __init__(self, domain: str, reason: str) -> None:
        super().__init__(f"{domain}: {reason}")
        self.domain = domain
        self.reason = reason


class DomainNotVerified(DomainError):
    """The DNS check did not find the verification record: publish it and try again."""

    def __init__(self, domain: str, reason: str, *, record_name: str, record_value: str) -> None:
        super().__init__(domain, reason)
        self.record_name = record_name
        self.record_value = record_value


class InvalidName(WebworkSSOError, ValueError):
    """A userName or email address that cannot name a member (control or invisible
    characters, empty once trimmed, too long)."""

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(f"{label}: {reason}")
        self.label = label
        self.reason = reason


class SignatureRefused(WebworkSSOError, ValueError):
    """A signed token or cookie (signing.py) that is not taken; ``reason`` says why.

    ``bad_signature``: not signed with any of the site's keys (or altered, or not a token);
    ``wrong_purpose``: signed by this site, but for another purpose (a CSRF token offered as a
    session cookie); ``expired``: older than its purpose allows; ``not_yet_valid``: signed
    further in the future than the clock tolerance explains.
    """

    BAD_SIGNATURE = "bad_signature"
    WRONG_PURPOSE = "wrong_purpose"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"

    def __init__(self, purpose: str, reason: str) -> None:
        super().__init__(f"{purpose}: {reason}")
        self.purpose = purpose
        self.reason = reason


class UnknownOption(ConfigurationError, TypeError):
    """An option name that is not declared (a typo, most often); ``option`` names it as the
    caller spelled it and ``reason`` lists the known ones.

    A ``TypeError`` too, as Python raises for an unexpected keyword argument.
    """


class KeyRotationError(WebworkSSOError, ValueError):
    """A step of an SP key rotation that cannot be taken now; ``step`` is ``stage``,
    ``activate`` or ``retire`` and ``reason`` says what to do first."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"rotate-sp-key --{step}: {reason}")
        self.step = step
        self.reason = reason


class MappingError(WebworkSSOError, ValueError):
    """An attribute or role mapping the owner may not make (an unknown key, a role the host
    does not declare, an unusable name); ``reason`` says which, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidCursor(WebworkSSOError, ValueError):
    """A lifecycle-events cursor that ``events.since()`` did not hand out (``cursor`` is what
    was given); ``limit`` out of range is refused with this too."""

    def __init__(self, cursor: str, reason: str) -> None:
        super().__init__(f"cursor {cursor!r}: {reason}")
        self.cursor = cursor
        self.reason = reason


class UnknownWorkspace(WebworkSSOError, ValueError):
    """No workspace has this slug (``slug`` is what was given): refused, where an empty
    answer would look like a workspace with no events yet, for ever."""

    def __init__(self, slug: str) -> None:
        super().__init__(f"no workspace {slug!r}")
        self.slug = slug
