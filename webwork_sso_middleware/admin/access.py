"""Who may open the settings page: the owner signed in through SSO, whoever holds an
owner-settings session (which only a settings link starts), or both; and what a CSRF token of
theirs may be bound to.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..names import key as name_key
from ..store.workspaces import WorkspaceInfo
from .links import CsrfTokens, SettingsSessions

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from ..sessions import SessionManager


@dataclasses.dataclass(frozen=True)
class Access:
    """How this request may open the page: a settings session, the owner's SSO session, or both."""

    workspace: WorkspaceInfo
    viewer: str  # plain words for the page's header
    bindings: tuple[str, ...]  # what a CSRF token may be bound to; the first is used in forms
    by_link: bool
    by_sso: bool
    refreshed_cookie: str | None  # the SSO session's sliding refresh, when due


def owner_access(
    request: Request,
    slug: str,
    workspace: WorkspaceInfo | None,
    *,
    settings_sessions: SettingsSessions,
    sessions: SessionManager,
) -> tuple[Access | None, str]:
    """The request's access to the page, or None and why not (in plain words).

    ``workspace`` is the one ``slug`` names, or None when there is none: the refusal is the
    same either way."""
    refusal = "You need to be this workspace's owner to open its settings."
    if workspace is None:
        return None, refusal  # the same answer as for a workspace that exists
    bindings: list[str] = []
    viewers: list[str] = []
    link_session = settings_sessions.read(request.environ, slug)
    by_link = link_session is not None and link_session.workspace_id == workspace.id
    if by_link:
        assert link_session is not None
        bindings.append(CsrfTokens.binding("link", slug, link_session.session_id))
        viewers.append(f"opened with a settings link, until {link_session.expires:%H:%M} UTC")
    by_sso, refreshed = False, None
    found = sessions.identify(request.environ)
    cookie = sessions.read_cookie(request.environ)
    if found is not None and cookie is not None:
        member, refreshed = found
        # The verified sign-in identity only (identity.py): an email whose domain this
        # workspace verified. Never a SCIM-writable attribute such as emails[primary].
        if member.workspace == workspace.slug and member.identity == name_key(
            workspace.owner_email
        ):
            by_sso = True
            bindings.append(CsrfTokens.binding("sso", slug, cookie.session_id))
            viewers.insert(0, f"signed in through SSO as {member.user_name} (owner)")
        elif not by_link:
            refusal = (
                f"You are signed in as {member.user_name}, who is not the owner of this workspace."
            )
    if not bindings:
        return None, refusal
    return Access(workspace, "; ".join(viewers), tuple(bindings), by_link, by_sso, refreshed), ""
