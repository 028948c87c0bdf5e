"""The signed-in member as the host app sees it in ``environ["webwork_sso.member"]``,
and the identity the host app keys its users by (``REMOTE_USER``).

``REMOTE_USER`` is the member's email (its userName, normalised) only when the member's own
workspace verified that email's domain: a domain is verified by at most one workspace, so no
other workspace can ever produce that string. Every other member gets ``<slug>:<member id>``,
scoped to the workspace: it has no ``@``, so it never equals an email, and the slug (unique,
never reused while the workspace exists, and without ``:``) keeps workspaces apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .names import is_plain_address


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """A member with a live session, as of the last check of that session.

    Frozen, so the host app cannot rewrite who is signed in. ``groups`` and ``roles`` are
    lists, as host apps are promised; every request gets lists of its own, so a host app that
    mutates one changes nothing for the next request.
    """

    id: str
    workspace: str  # the workspace's slug
    user_name: str  # the SCIM userName (normally the email); also REMOTE_USER
    email: str | None
    given_name: str | None
    family_name: str | None
    display_name: str | None
    active: bool
    groups: list[str]  # group display names, ordered case-insensitively
    # What REMOTE_USER carries: the verified email, or "<workspace>:<id>" (see the module).
    identity: str = ""
    # The host must refuse this person's password sign-in: their identity is an address in a
    # domain their workspace verified, and the workspace requires SSO (store/enforcement.py).
    sso_required: bool = False
    # Profile attributes as SCIM last set them (see frozen_attributes): read-only all the way
    # down, so every request (and copy) of one session check shares one.
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=lambda: FrozenDict())
    # The host's declared roles this member's groups map to, in the declared order, or the
    # default role (roles.py); [] when the host declares none.
    roles: list[str] = dataclasses.field(default_factory=list)
    # The workspace's owner, by the same rule as the settings page: the verified sign-in
    # identity equals the owner's address (never a SCIM-writable attribute). For the host's
    # own owner checks, e.g. a link to the settings page.
    is_owner: bool = False

    def __post_init__(self) -> None:
        if not self.identity:  # built without one (a host app's test): the scoped form
            object.__setattr__(self, "identity", scoped_identity(self.workspace, self.id))

    def __hash__(self) -> int:
        # The generated hash would choke on the list; equal members share an id anyway.
        return hash((self.id, self.workspace))

    def copy(self) -> Member:
        """This member with lists of groups and roles of its own (the only mutable parts)."""
        # Not dataclasses.replace: this runs on every signed-in request, and replace costs
        # several times a plain construction.
        return Member(
            self.id,
            self.workspace,
            self.user_name,
            self.email,
            self.given_name,
            self.family_name,
            self.display_name,
            self.active,
            list(self.groups),
            self.identity,
            self.sso_required,
            self.attributes,
            list(self.roles),
            self.is_owner,
        )


class FrozenDict(dict[str, Any]):
    """A dict that refuses every change: read-only to the host app, yet a dict to json.dumps,
    dataclasses.asdict, copy and pickle (a mappingproxy is none of those).

    Being a dict, it cannot stop dict's own methods called unbound (``dict.__setitem__(d, k,
    v)``, ``dict.update(d, ...)``): a host that goes that far can change it. So none is ever
    shared beyond one member's session check (not even an empty one: frozen_attributes
    builds each anew), and such a host spoils only its own member until the next check."""

    __slots__ = ("_sealed",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if getattr(self, "_sealed", False):
            _refuse()
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_sealed", True)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: Any) -> FrozenDict:
        return self  # nothing in it can change: sharing it is copying it

    def __setattr__(self, name: str, value: Any) -> None:
        _refuse()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        _refuse()

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse


def _refuse() -> Any:
    raise TypeError("member attributes are read-only")


def frozen_attributes(attributes: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy, all the way down: mappings become FrozenDicts, lists become tuples,
    sharing nothing with ``attributes``. A host app cannot change what the next request sees.

    Keys: ``title``, the Enterprise attributes by their SCIM names (``employeeNumber``,
    ``costCenter``, ``organization``, ``division``, ``department``, ``manager`` as
    ``{"value", "displayName"}``), and each extension's other attributes under its URN."""
    return _freeze(attributes) if attributes else FrozenDict()  # never a shared empty one


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return FrozenDict({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def scoped_identity(workspace: str, member_id: str) -> str:
    """The REMOTE_USER of a member whose email is not in a domain its workspace verified."""
    return f"{workspace}:{member_id}"


def host_identity(workspace: str, member_id: str, user_name_key: str, domain_verified: bool) -> str:
    """REMOTE_USER for a member: the normalised email when its workspace verified the domain."""
    # A key that reads as one plain address only: "<a@x.test> b@y.test" ends in a verified
    # domain too, but a host that parses addresses would read someone else's in it.
    if domain_verified and is_plain_address(user_name_key):
        return user_name_key
    return scoped_identity(workspace, member_id)
