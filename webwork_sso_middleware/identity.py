"""The signed-in member as the host app sees it in ``environ["webwork_sso.member"]`` (INTERFACE.md)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """A member with a live session, as of the last check of that session.

    Frozen, so the host app cannot rewrite who is signed in. ``groups`` is a list because
    INTERFACE.md promises one; every request gets a list of its own, so a host app that
    mutates it changes nothing for the next request.
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

    def __hash__(self) -> int:
        # The generated hash would choke on the list; equal members share an id anyway.
        return hash((self.id, self.workspace))

    def copy(self) -> Member:
        """This member with a list of groups of its own (the only mutable part)."""
        return dataclasses.replace(self, groups=list(self.groups))
