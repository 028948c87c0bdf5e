"""Who a workspace's IdP may sign in, and who its SCIM may name: the identity rules.

A workspace owner controls their own IdP, so it can assert any email; they also hold their own
SCIM token. What they can assert is bounded by the domains their workspace *verified*
(store/domains.py), and nothing else:

- Workspace A's IdP signs in an address when its domain is verified by A, or when it names an
  existing member that A's own SCIM provisioned and whose domain no other workspace verified
  (an external member, such as a contractor). Members are created at first sign-in only within
  A's verified domains. Everything else is refused with its own reason code.
- A's SCIM cannot create a member, or rename one, into a domain another workspace verified.

The other steps of a member's life (deactivation, reactivation, deletion) and what each ends
live here too, so SCIM, sign-in and the settings page cannot each decide them differently.

Every name goes through names.py first, so look-alike spellings are one member.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from .. import names
from ..errors import InvalidName, WebworkSSOError
from ..store import audit
from ..store import domains as domain_store
from ..store import events as event_store
from ..store import sign_in as sign_in_store
from ..store.db import UnitOfWork
from ..store.models import Group, Member, utcnow

# The longest address a member can be named by (the userName column).
MAX_NAME = 255


class SignInRefused(WebworkSSOError):
    """A verified assertion that this workspace's IdP may not use to sign anyone in.

    ``code`` is the reason code shown to the person and in the owner's diagnostics; ``detail``
    is for the owner only (it may name the address)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class NameRefused(WebworkSSOError):
    """A userName that SCIM may not give a member in this workspace."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    """Names and groups the assertion carried (the IdP is their source at sign-in)."""

    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    # Replace the member's asserted groups (roles.py); never SCIM's Group resources.
    groups: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Admission:
    """The member signing in: start a session for them at ``session_generation``."""

    member_id: str
    session_generation: int
    created: bool


def address_key(address: str, label: str = "NameID") -> tuple[str, str, str]:
    """(cleaned address, its key, its domain); InvalidName when it cannot name a member."""
    cleaned = names.clean(address, label, limit=MAX_NAME)
    key = names.key(cleaned)
    domain = names.domain_of(key)
    if domain is None:
        raise InvalidName(label, "is not an email address")
    return cleaned, key, domain


def sign_in(
    unit: UnitOfWork,
    workspace_id: int,
    address: str,
    profile: Profile,
    *,
    now: dt.datetime | None = None,
    known: sign_in_store.LoginLookup | None = None,
) -> Admission | None:
    """Admit the member ``address`` names, created at first sign-in where the rules allow;
    None when that member is deactivated. Raises SignInRefused when this workspace's IdP may
    not sign in ``address`` at all. Runs in the caller's transaction (the member row locked).

    ``known``: what the ACS already read for an address in this transaction
    (store/sign_in.py's ``sign_in_lookup``); used only when it has this address's key."""
    now = now or utcnow()
    cleaned, key, member = _admissible(unit, workspace_id, address, known)
    if member is None:
        changes = _changed_profile(None, profile)
        member_id = sign_in_store.create_member_at_login(
            unit, workspace_id, cleaned, key, now=now, profile=changes, groups=list(profile.groups)
        )
        audit.record(
            unit,
            workspace_id=workspace_id,
            actor="saml",
            action="created",
            target_type="member",
            target_id=member_id,
            changes={"email": cleaned, "source": "sso"}
            | ({"groups": list(profile.groups)} if profile.groups else {}),
        )
        event_store.record_many(
            unit,
            workspace_id,
            [
                event_store.NewEvent(
                    "member.created",
                    "saml",
                    member_id=member_id,
                    changes={"userName": cleaned, "active": True, **changes},
                ),
                event_store.NewEvent("member.signed_in", "saml", member_id=member_id),
            ],
        )
        return Admission(member_id, 0, created=True)
    if not member.active:
        audit.record(
            unit,
            workspace_id=workspace_id,
            actor="saml",
            action="login_refused",
            target_type="member",
            target_id=member.id,
            changes={"reason": "member_deactivated", "email": cleaned},
        )
        return None
    changes = _changed_profile(member, profile)
    groups = list(profile.groups) if profile.groups != (member.sign_in_groups or ()) else None
    if changes:  # the IdP changed the member's names: the host hears it as an update
        event_store.record(
            unit,
            workspace_id,
            "member.updated",
            "saml",
            member_id=member.id,
            changes={
                key: {"from": getattr(member, key), "to": value} for key, value in changes.items()
            },
        )
    # The login stamp, its audit row and its member.signed_in event (one statement on
    # PostgreSQL: the sign-in costs no extra round trip for the event).
    sign_in_store.record_login_event(
        unit,
        workspace_id=workspace_id,
        member_id=member.id,
        now=now,
        profile=changes,
        groups=groups,
    )
    return Admission(member.id, member.session_generation, created=False)


def check_sign_in(
    unit: UnitOfWork,
    workspace_id: int,
    address: str,
    *,
    known: sign_in_store.LoginLookup | None = None,
) -> str:
    """What :func:`sign_in` would do for ``address``, writing nothing (the owner's test
    sign-in): "created" (a new member at first sign-in), "admitted" (an active member) or
    "deactivated"; raises SignInRefused exactly as :func:`sign_in` would."""
    _, _, member = _admissible(unit, workspace_id, address, known)
    if member is None:
        return "created"
    return "admitted" if member.active else "deactivated"


def _admissible(
    unit: UnitOfWork,
    workspace_id: int,
    address: str,
    known: sign_in_store.LoginLookup | None,
) -> tuple[str, str, sign_in_store.LoginMember | None]:
    """The refusals of a sign-in, shared by :func:`sign_in` and :func:`check_sign_in`:
    (the cleaned address, its key, the member it names or None)."""
    try:
        cleaned, key, domain = address_key(address)
    except InvalidName as invalid:
        raise SignInRefused("invalid_name_id", f"the NameID {invalid.reason}") from None
    if known is not None and known.key != key:
        known = None  # read for another address than the verified one
    verifier = known.verifier if known else domain_store.verifier_of(unit, domain)
    if verifier is not None and verifier != workspace_id:
        raise SignInRefused(
            "domain_verified_elsewhere",
            f"{domain} is verified by another workspace, so this workspace's IdP cannot sign "
            f"in {cleaned}",
        )
    member = (
        sign_in_store.verified_member(unit, workspace_id, key, known.member)
        if known
        else sign_in_store.login_member(unit, workspace_id, key)
    )
    if member is not None and member.user_name_key != key:
        # Found through another address (its SCIM-written email): the member's own name must
        # pass too, or an alias would sign in someone named in another workspace's domain.
        named = names.domain_of(member.user_name_key)
        named_by = domain_store.verifier_of(unit, named) if named else None
        if named_by is not None and named_by != workspace_id:
            raise SignInRefused(
                "domain_verified_elsewhere",
                f"{cleaned} belongs to the member "
                f"{member.user_name_key}, whose domain {named} another workspace has verified",
            )
    if verifier is None and (member is None or member.source != "scim"):
        # Not our domain: only a member our own SCIM provisioned (a contractor) may come in.
        raise SignInRefused(
            "domain_not_verified",
            f"{domain} is not a verified domain of this workspace, and {cleaned} is not a member "
            "its SCIM provisioned; verify the domain, or provision the member first",
        )
    return cleaned, key, member


def lookup_key(address: str | None) -> tuple[str, str] | None:
    """(key, domain) of an address as :func:`sign_in` will key it; None when it names no one."""
    if address is None:
        return None
    try:
        _, key, domain = address_key(address)
    except InvalidName:
        return None
    return key, domain


# Which workspace verified a domain: domains.verifier_of, or a worker's memory of it.
VerifierOf = Callable[[UnitOfWork, str], int | None]


def check_provisioned_name(
    unit: UnitOfWork, workspace_id: int, key: str, *, verifier_of: VerifierOf | None = None
) -> None:
    """Refuse (NameRefused) a userName, by its key (names.py), that lies in a domain
    another workspace verified: only that workspace may provision its addresses. SCIM asks this
    when it creates a member or changes a member's userName; ``verifier_of`` answers which
    workspace verified the domain (by default the database, now)."""
    domain = names.domain_of(key)
    if domain is None:
        return
    verifier = (verifier_of or domain_store.verifier_of)(unit, domain)
    if verifier is not None and verifier != workspace_id:
        raise NameRefused(
            f"userName is in {domain}, a domain another workspace has verified; "
            "only that workspace can provision its addresses"
        )


def settle_active_change(
    member: Member, *, was_active: bool, now: dt.datetime | None = None
) -> str:
    """Apply what a change of ``active`` (by SCIM) means; return its audit action.

    Deactivation keeps every field and membership and ends every live session of the member
    (the session generation moves on); reactivation clears the deactivation time and starts no
    session. Anything else is a plain update.
    """
    if was_active and not member.active:
        member.deactivated_at = now or utcnow()
        member.session_generation += 1
        return "deactivated"
    if member.active and not was_active:
        member.deactivated_at = None
        return "reactivated"
    return "updated"


def delete(member: Member, *, now: dt.datetime | None = None) -> list[Group]:
    """Delete ``member`` as SCIM sees it: gone from SCIM and from its groups, kept in the store
    deactivated, with every live session ended. Returns the groups it left (their versions
    are the caller's to bump)."""
    now = now or utcnow()
    left = [membership.group for membership in member.memberships]
    member.memberships = []
    member.deleted_at = now
    member.deactivated_at = member.deactivated_at or now
    member.active = False
    member.session_generation += 1
    return left


def _changed_profile(member: sign_in_store.LoginMember | None, profile: Profile) -> dict[str, str]:
    """Names from the assertion that differ from the member's: the IdP is their source."""
    current = (
        {
            "given_name": member.given_name,
            "family_name": member.family_name,
            "display_name": member.display_name,
        }
        if member
        else {}
    )
    wanted = {
        "given_name": profile.given_name,
        "family_name": profile.family_name,
        "display_name": profile.display_name
        or " ".join(p for p in (profile.given_name, profile.family_name) if p)
        or None,
    }
    if member is not None and member.display_name and not profile.display_name:
        del wanted["display_name"]  # keep a display name SCIM set when the IdP sends none
    return {k: v for k, v in wanted.items() if v is not None and current.get(k) != v}
