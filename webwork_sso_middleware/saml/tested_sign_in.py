"""The owner's test sign-in at the ACS: every check of a real sign-in, and then no session.

The settings page started it with a ticket (sessions/sign_in_tests.py) that the login flow
kept with the AuthnRequest in this browser's login cookie, so only a response answering that
request is a test. Its result (who the IdP asserted, whether they could sign in, the reason
code when not) goes to the workspace's audit log under the test's nonce and its owner's
binding mark; the browser goes back to the settings page, which shows it to that owner only.
Nothing else is written: no member is created at a first sign-in, no login is stamped, no
session is started, and the browser's own session (the owner's) is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from .. import attribute_map as attribute_rules
from ..logs import package_logger
from ..members import lifecycle
from ..sessions.sign_in_tests import TESTED, SignInTest
from ..store import audit
from ..store import sign_in as sign_in_store
from ..store.db import Database, UnitOfWork
from ..store.workspaces import find_by_slug
from ..urls import PublicUrls, workspace_path
from .acs import VerifiedAssertion
from .failures import MAX_DETAIL
from .rejection import Rejection

log = package_logger(__name__)

OUTCOMES = {
    "admitted": "an active member of this workspace: they could sign in",
    "created": "not a member yet: they could sign in, and would become a member at their first "
    "sign-in",
}


def check(
    unit: UnitOfWork,
    workspace_id: int,
    verified: VerifiedAssertion,
    test: SignInTest,
    known: sign_in_store.LoginLookup | None,
) -> None:
    """Judge the verified assertion as a sign-in would, writing nothing but the result."""
    try:
        outcome = lifecycle.check_sign_in(unit, workspace_id, verified.email, known=known)
    except lifecycle.SignInRefused as refused:
        record(unit, workspace_id, test, verified.email, refused.code, refused.detail)
        return
    if outcome == "deactivated":
        record(
            unit,
            workspace_id,
            test,
            verified.email,
            "member_deactivated",
            "the account is deactivated in this workspace, so sign-in would be refused; "
            "reactivate it in the identity provider to let them in",
        )
        return
    record(unit, workspace_id, test, verified.email, None, OUTCOMES[outcome])


def record(
    unit: UnitOfWork,
    workspace_id: int,
    test: SignInTest,
    email: str | None,
    reason: str | None,
    detail: str,
) -> None:
    audit.record(
        unit,
        workspace_id=workspace_id,
        actor="saml",
        action=TESTED,
        target_type="sign_in_test",
        target_id=test.nonce,
        changes={
            "mark": test.mark,
            "ok": reason is None,
            "detail": detail[:MAX_DETAIL],
            **({"reason": reason} if reason else {}),
            **({"email": email} if email else {}),
        },
    )


def record_refusal(
    database: Database,
    slug: str,
    test: SignInTest,
    rejection: Rejection,
    email: Callable[[Mapping[str, str]], str | None],
) -> None:
    """The result of a test whose response was refused, in a transaction of its own (the
    sign-in's rolled back). ``email``: the address the response named, given the mapping."""
    try:

        def work(unit: UnitOfWork) -> None:
            workspace = find_by_slug(unit, slug)
            if workspace is not None:
                named = email(attribute_rules.from_stored(workspace.attribute_map))
                record(unit, workspace.id, test, named, rejection.code, rejection.detail)

        database.run(work)
    except Exception:  # the owner still gets to the page, which says no result was found
        log.warning("could not record a test sign-in's refusal", exc_info=True)


def back_to_settings(site: PublicUrls, slug: str, test: SignInTest) -> Response:
    """The settings page, asked to show this test's result (found by its nonce)."""
    path = workspace_path(slug, "settings") + "?" + urlencode({"tested": test.nonce})
    return redirect(site.link(path), code=303)
