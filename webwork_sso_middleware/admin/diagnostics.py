"""What went wrong with sign-in, in words an owner can act on, read from the audit log.

The ACS already records each rejection with a reason code and a plain sentence (for example
"audience mismatch: the IdP sent X, this workspace expects Y"); this module only chooses the
events worth showing and says the rest of them (refused deactivated members, failed metadata
refreshes) in the same plain way.

Refusals of responses whose signature never verified (junk anyone can post) and replays are
counted, one audit row per reason and hour (audit.count); they are listed apart from the
single events, so a flood of them shows as a few lines with a count and never pushes a real
failure out of the list.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from ..sessions.sign_in_tests import RESULT_WINDOW, TESTED, binding_mark
from ..store import audit
from ..store.db import UnitOfWork
from ..store.models import AuditEvent, utcnow

# groups_dropped (saml/failures.py): a sign-in that worked, but kept only some of the groups
# its assertion carried; shown here as the owner may need to act on it (fewer groups).
FAILURE_ACTIONS = ("login_failed", "login_refused", "metadata_refresh_failed", "groups_dropped")
SHOWN_FAILURES = 20
SHOWN_COUNTED = 10  # rows of counted refusals shown besides the SHOWN_FAILURES single events


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    at: dt.datetime
    email: str | None  # as the response named it: unverified when the response was refused
    what: str  # plain words
    code: str  # the reason code the owner acts on (the page may have shown a generic one)
    count: int = 1  # a counted row: how many refusals of this reason in its hour


@dataclasses.dataclass(frozen=True)
class TestResult:
    ok: bool
    at: dt.datetime
    what: str


def describe(event: AuditEvent) -> Diagnostic:
    changes: dict[str, Any] = event.changes or {}
    email = changes.get("email") if isinstance(changes.get("email"), str) else None
    code = str(changes.get("reason") or event.action)
    count = 1
    if event.action == "login_failed":
        what = str(changes.get("detail") or code.replace("_", " "))
        if event.target_type == audit.COUNTED:
            count = _count(changes.get("count"))
            first = _instant(changes.get("first_at")) or event.occurred_at
            times = "once" if count == 1 else f"{count} times since {first:%Y-%m-%d %H:%M} UTC"
            what = (
                f"{what} ({times}; counted rather than listed, as anyone can send such a "
                "response without your identity provider signing anything new)"
            )
    elif event.action == "login_refused":
        what = (
            "the account is deactivated in this workspace, so sign-in was refused; "
            "reactivate it in the identity provider to let them in"
        )
        if code != "member_deactivated":
            what = f"sign-in was refused ({code.replace('_', ' ')})"
    elif event.action == "groups_dropped":
        count = _count(changes.get("count"))
        what = (
            f"the identity provider sent more groups than are kept: the sign-in kept "
            f"{changes.get('kept', '?')} and dropped {changes.get('dropped', '?')}, keeping "
            "the groups mapped to roles first (have the IdP send only the groups this site "
            "needs, for example with a group filter)"
        )
        if count > 1:
            first = _instant(changes.get("first_at")) or event.occurred_at
            what += f" ({count} sign-ins since {first:%Y-%m-%d %H:%M} UTC)"
    elif event.action == "metadata_refresh_failed":
        code = "metadata_refresh_failed"
        what = (
            f"refreshing the IdP metadata from {changes.get('metadata_url') or 'its URL'} "
            f"failed: {changes.get('error') or 'unknown error'}; the last good copy stays "
            "in use"
        )
    else:
        what = event.action.replace("_", " ")
    return Diagnostic(event.occurred_at, email, what, code, count)


def recent_failures(
    unit: UnitOfWork,
    workspace_id: int,
    limit: int = SHOWN_FAILURES,
    counted_limit: int = SHOWN_COUNTED,
) -> list[Diagnostic]:
    """The latest single failures and the latest counted ones, newest first: each kind has
    its own limit, so no number of junk posts can push a real failure off the list."""
    single = audit.latest(unit, workspace_id, FAILURE_ACTIONS, limit=limit, counted=False)
    counted = audit.latest(unit, workspace_id, FAILURE_ACTIONS, limit=counted_limit, counted=True)
    events = sorted(single + counted, key=lambda e: (e.occurred_at, e.id), reverse=True)
    return [describe(e) for e in events]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 1


def _instant(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def test_result(
    unit: UnitOfWork,
    workspace_id: int,
    nonce: str,
    bindings: tuple[str, ...],
    *,
    now: dt.datetime | None = None,
) -> TestResult | None:
    """The result of the test sign-in ``nonce`` names, when the viewer started it: its mark
    is one of the viewer's CSRF bindings (sessions/sign_in_tests.py). None otherwise, so the
    nonce alone shows nothing to anyone else."""
    since = (now or utcnow()) - RESULT_WINDOW
    event = audit.find(unit, workspace_id, TESTED, nonce, since=since)
    if event is None:
        return None
    changes: dict[str, Any] = event.changes or {}
    if changes.get("mark") not in {binding_mark(binding) for binding in bindings}:
        return None
    email = changes.get("email") if isinstance(changes.get("email"), str) else None
    who = f"the identity provider asserted {email}" if email else "no address could be read"
    detail = str(changes.get("detail") or "")
    if changes.get("ok") is True:
        return TestResult(True, event.occurred_at, f"sign-in worked: {who}, {detail}")
    code = str(changes.get("reason") or "refused")
    return TestResult(
        False,
        event.occurred_at,
        f"sign-in failed: {who}, who could not sign in: {detail} (reason code {code})",
    )
