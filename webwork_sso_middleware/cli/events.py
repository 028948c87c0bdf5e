"""``webwork-sso events list``: the durable lifecycle-event feed, from a cursor on."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..events import Event, EventFeed
from ..events.feed import MAX_LIMIT
from .options import GlobalOptions


def add_events_commands(commands: Any) -> None:
    events = commands.add_parser(
        "events", help="the lifecycle events of members and groups",
        description="Read the durable feed of member and group lifecycle events.",
    )  # fmt: skip
    actions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="list events after a cursor, oldest first",
        description="List lifecycle events in commit order. Continue from the last event's"
        " cursor with --since; each event may be listed again after a crash, never skipped.",
    )
    listing.add_argument(
        "--since", metavar="CURSOR", help="the cursor of the last event already handled"
    )
    listing.add_argument("--workspace", metavar="SLUG", help="only this workspace's events")
    listing.add_argument(
        "--limit", type=_limit, default=100, help=f"at most this many (1 to {MAX_LIMIT})"
    )
    listing.add_argument(
        "--json", action="store_true", help="one JSON object per line (with its cursor)"
    )
    listing.set_defaults(handler=events_list)


def _limit(text: str) -> int:
    try:
        limit = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_LIMIT}")
    return limit


def events_list(options: GlobalOptions, args: argparse.Namespace) -> int:
    database = options.open_database(auto_migrate=options.auto_migrate)
    try:
        found = EventFeed(database).since(args.since, limit=args.limit, workspace=args.workspace)
    finally:
        database.dispose()
    for event in found:
        print(json.dumps(event.as_json(), sort_keys=True) if args.json else _line(event))
    return 0


def _line(event: Event) -> str:
    """cursor, time, workspace, kind, source, who or which group, and what changed."""
    subject = " ".join(
        part
        for part in (
            event.identity,
            f"group {event.group_name!r} ({event.group_id})" if event.group_id else None,
        )
        if part
    )
    changes = f" {json.dumps(event.changes, sort_keys=True)}" if event.changes else ""
    occurred = event.occurred_at.isoformat(timespec="seconds")
    return (
        f"{event.cursor}\t{occurred}\t{event.workspace}\t{event.kind}\t{event.source}"
        f"\t{subject}{changes}"
    )
