"""``webwork-sso audit export``: a workspace's audit log as JSON Lines or CSV, streamed to
standard output (audit_export.py says what each format holds)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from ..audit_export import DEFAULT_FORMAT, FORMATS, export, find_workspace, parse_since
from .options import GlobalOptions


def add_audit_commands(commands: Any) -> None:
    audit = commands.add_parser(
        "audit", help="the workspaces' audit logs",
        description="Read a workspace's audit log: provisioning changes, sign-ins and refusals,"
        " and the owner's settings changes.",
    )  # fmt: skip
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    export_command = actions.add_parser(
        "export",
        help="write a workspace's audit log to standard output, oldest first",
        description="Write the audit events of one workspace from --since on, oldest first, to"
        " standard output as they are read (in batches: any size of log, in bounded memory)."
        " For a SIEM: jsonl is one JSON object per line; csv has a header row, and a cell that"
        " a spreadsheet could run as a formula (starting with = + - @, tab or CR) gets a"
        " leading single quote.",
    )
    export_command.add_argument("slug", metavar="SLUG", help="the workspace's slug, as in its URLs")
    export_command.add_argument(
        "--since", metavar="DATE", type=_since, required=True,
        help="the first moment to export: a date (2026-12-01, from midnight UTC) or an ISO 8601"
        " date and time (2026-12-01T09:30, UTC unless it gives an offset such as +02:00)",
    )  # fmt: skip
    export_command.add_argument(
        "--format", choices=FORMATS, default=DEFAULT_FORMAT,
        help=f"jsonl (JSON Lines) or csv (default {DEFAULT_FORMAT})",
    )  # fmt: skip
    export_command.set_defaults(handler=audit_export)


def _since(text: str) -> dt.datetime:
    try:
        return parse_since(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def audit_export(options: GlobalOptions, args: argparse.Namespace) -> int:
    database = options.open_database(auto_migrate=options.auto_migrate)
    try:
        workspace_id, slug = find_workspace(database, args.slug)  # UnknownWorkspace: one line
        # Bytes, as the export encodes them: CSV's CRLF and UTF-8 stay exactly as written,
        # whatever the terminal's encoding.
        out = sys.stdout.buffer
        for chunk in export(database, workspace_id, slug, since=args.since, format=args.format):
            out.write(chunk)
        out.flush()
    finally:
        database.dispose()
    return 0
