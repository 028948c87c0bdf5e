"""The audit record of a refused SAML response, for the workspace's owner (the diagnostics on
its settings page). A plain function of the database: the sign-in flow calls it on each
refusal it may record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .. import attribute_map as attribute_rules
from ..logs import package_logger
from ..store import audit
from ..store.db import Database, UnitOfWork
from ..store.workspaces import find_by_slug
from .acs import VerifiedAssertion
from .rejection import Rejection

log = package_logger(__name__)

# A refusal's detail quotes the response (an audience, an issuer): bounded in the audit log.
MAX_DETAIL = 500


def record_failure(
    database: Database,
    slug: str,
    rejection: Rejection,
    email: str | None | Callable[[Mapping[str, str]], str | None] = None,
    *,
    verified: bool = False,
) -> None:
    """Record a refused response in the workspace's audit log, for its owner.

    ``verified``: the IdP's signature verified on the response. Only such a failure
    (which takes the IdP signing something new) gets a row of its own. Anything else can
    be sent by anyone, as often as they like, and so can a replay of one signed response:
    those are counted, one row per workspace, reason and hour (audit.count), so a flood
    of any size writes a bounded number of rows and pushes no real failure out of the
    owner's diagnostics.

    ``email``: the address the response named, or how to read it given the workspace's
    attribute mapping (so the owner sees the address the sign-in goes by, not the NameID)."""
    log.info(
        "SAML response for %s rejected: %s",
        slug,
        rejection,
        extra={"event": "sign_in.refused", "workspace": slug, "reason": rejection.code},
    )
    try:

        def work(unit: UnitOfWork) -> None:
            workspace = find_by_slug(unit, slug)
            if workspace is None:
                return
            named = (
                email(attribute_rules.from_stored(workspace.attribute_map))
                if callable(email)
                else email
            )
            changes = {
                "reason": rejection.code,
                "detail": rejection.detail[:MAX_DETAIL],
                # unverified: what the refused response claimed
                **({"email": named} if named else {}),
            }
            if verified and not rejection.repeatable:
                audit.record(
                    unit,
                    workspace_id=workspace.id,
                    actor="saml",
                    action="login_failed",
                    target_type="login",
                    target_id=None,
                    changes=changes,
                )
            else:
                audit.count(
                    unit,
                    workspace_id=workspace.id,
                    actor="saml",
                    action="login_failed",
                    key=rejection.code,
                    changes=changes,
                )

        database.run(work)
    except Exception:  # the rejection page matters more than its record
        log.warning("could not record a SAML rejection", exc_info=True)


GROUPS_DROPPED = "groups_dropped"  # the audit action (admin/diagnostics.py shows it)


def record_groups_dropped(unit: UnitOfWork, workspace_id: int, verified: VerifiedAssertion) -> None:
    """Tell the owner that a sign-in kept only some of the groups its assertion carried
    (roles.clean_asserted_groups's cap, or what a pending sign-in's cookie could hold): the
    groups mapped to roles were kept first. Counted (one row per workspace and hour), as an
    IdP that sends many groups does so at every sign-in: it never pushes a failure out of the
    owner's diagnostics. In the sign-in's own transaction."""
    kept = len(verified.groups)
    log.info(
        "sign-in of %s kept %d groups, dropped %d", verified.email, kept, verified.groups_dropped
    )
    audit.count(
        unit,
        workspace_id=workspace_id,
        actor="saml",
        action=GROUPS_DROPPED,
        key=GROUPS_DROPPED,
        changes={
            "reason": GROUPS_DROPPED,
            "email": verified.email,
            "kept": kept,
            "dropped": verified.groups_dropped,
        },
    )
