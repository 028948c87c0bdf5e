"""The time tracker's look: one page frame (a navigation bar, the settings page's colours and
type), its error pages, and the markup of each page. Every value from outside is escaped where
it meets markup; callers pass plain values.

Nothing loads from elsewhere: the stylesheet is inlined under a per-response CSP nonce.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import itertools
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from werkzeug.wrappers import Response

from .directory import Activity, Seat
from .entries import EARLIEST_DATE, MAX_DESCRIPTION_LENGTH, MAX_MINUTES, Entry

SIGN_IN_PATH = "/saml/login"
SIGN_OUT_PATH = "/saml/logout"
SIGNED_OUT_PATH = "/?signed_out=1"  # where the sign-out form sends the browser afterwards
CURRENT = ' aria-current="page"'
# Read by path, as the example itself is loaded (devserver.py): no package data to declare.
# Its comments stay in the file: every page carries the rest.
STYLE = re.sub(
    r"/\*.*?\*/\s*",
    "",
    (Path(__file__).parent / "static" / "tracker.css").read_text("utf-8"),
    flags=re.S,
)

KINDS = {
    "member.created": "Member created",
    "member.updated": "Member updated",
    "member.deactivated": "Member deactivated",
    "member.reactivated": "Member reactivated",
    "member.deleted": "Member deleted",
    "group.created": "Group created",
    "group.renamed": "Group renamed",
    "group.deleted": "Group deleted",
    "group.member_added": "Added to group",
    "group.member_removed": "Removed from group",
    "member.signed_in": "Signed in",
    "member.signed_out": "Signed out",
}
SOURCES = {"scim": "SCIM", "saml": "SSO sign-in", "settings": "Settings page", "cli": "CLI"}


@dataclasses.dataclass(frozen=True)
class Viewer:
    """Who is looking, as far as the pages care."""

    user: str | None  # REMOTE_USER
    name: str | None  # the member's name, when the middleware knows one
    workspace: str | None
    is_admin: bool
    is_owner: bool


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def settings_path(slug: str) -> str:
    """The workspace's settings page, which accepts its owner's SSO session."""
    return f"/saml/{quote(slug, safe='')}/settings"


def sign_in_path(next_path: str) -> str:
    return f"{SIGN_IN_PATH}?{urlencode({'next': next_path})}"


# -- the frame -------------------------------------------------------------------------------


def page(
    title: str, body: str, viewer: Viewer, *, current: str = "", status: int = 200
) -> Response:
    nonce = secrets.token_urlsafe(16)
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<title>{escape(title)} · Time tracker</title><style nonce="{nonce}">{STYLE}</style>'
        '</head><body><a class="skip" href="#content">Skip to content</a>'
        f"{_top(viewer, current)}"
        f'<main id="content" tabindex="-1"><h1>{escape(title)}</h1>{body}</main></body></html>'
    )
    response = Response(document, status=status, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self';"
        " base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["Cache-Control"] = "no-store"  # a person's own entries and roster
    return response


def _top(viewer: Viewer, current: str) -> str:
    links = [("/", "Time")]
    if viewer.is_admin:
        links += [("/team", "Team"), ("/activity", "Activity")]
    items = "".join(
        f'<li><a href="{path}"{CURRENT if path == current else ""}>{label}</a></li>'
        for path, label in links
        if viewer.user
    )
    if viewer.user and viewer.is_owner and viewer.workspace:
        items += (
            f'<li><a class="settings" href="{escape(settings_path(viewer.workspace))}">'
            "SSO settings</a></li>"
        )
    return (
        '<header class="top"><nav aria-label="Main">'
        f'<a class="brand" href="/">Time tracker</a><ul>{items}</ul>'
        f"{_who(viewer)}</nav></header>"
    )


def _who(viewer: Viewer) -> str:
    """Who is signed in (the name the middleware knows, and the user name), and Sign out."""
    if not viewer.user:
        return f'<p class="who"><a href="{SIGN_IN_PATH}">Sign in with SSO</a></p>'
    name = viewer.name
    shown = f"<strong>{escape(name or viewer.user)}</strong>" + (
        f" ({escape(viewer.user)})" if name else ""
    )
    # A GET form: the sign-out page asks to confirm, with a token only it can issue; "next"
    # brings the browser back here, to a "signed out" notice.
    return (
        f'<form class="who" method="get" action="{SIGN_OUT_PATH}">'
        f'Signed in as {shown} <button type="submit">Sign out</button>'
        f'<input type="hidden" name="next" value="{escape(SIGNED_OUT_PATH)}"></form>'
    )


def display_name(member: Any) -> str | None:
    name = getattr(member, "display_name", None) or " ".join(
        part
        for part in (getattr(member, "given_name", None), getattr(member, "family_name", None))
        if part
    )
    return name or None


# -- pages -----------------------------------------------------------------------------------


def welcome(viewer: Viewer, *, signed_out: bool) -> Response:
    notice = '<div class="notice ok" role="status">You are signed out.</div>' if signed_out else ""
    body = (
        f"{notice}<section><p>Track the time you spend, signed in with your company account.</p>"
        f'<p><a class="button" href="{SIGN_IN_PATH}">Sign in with SSO</a></p></section>'
    )
    return page("Welcome", body, viewer)


def entries_page(viewer: Viewer, entries: list[Entry], today: dt.date) -> Response:
    body = (
        f"<section>{_this_week(entries, today)}{_entry_form(today)}</section>"
        f"{_entry_tables(entries, today)}"
    )
    return page("Your time", body, viewer, current="/")


def team_page(viewer: Viewer, seats: int, roster: list[Seat]) -> Response:
    rows = "".join(
        f'<tr><td class="mono">{escape(seat.identity)}</td>'
        f'<td class="{"state-active" if seat.active else "state-deactivated"}">'
        f"{'Active' if seat.active else 'Deactivated'}</td><td>{_when(seat.since)}</td></tr>"
        for seat in roster
    )
    table = (
        "<table><caption>Members</caption><thead><tr><th>Who</th><th>Status</th>"
        f"<th>Known since</th></tr></thead><tbody>{rows}</tbody></table>"
        if roster
        else "<p>No members yet.</p>"
    )
    body = (
        f'<section><p class="seats">Seats in use: <strong id="seat-count">{seats}</strong></p>'
        '<p class="help">One seat per active member of your workspace, kept up to date as your'
        " identity provider provisions and deactivates people.</p></section>"
        f"<section>{table}</section>"
    )
    return page("Team", body, viewer, current="/team")


def activity_page(viewer: Viewer, events: list[Activity]) -> Response:
    rows = "".join(
        f'<tr><td class="when">{_when(event.occurred_at)}</td>'
        f"<td>{escape(KINDS.get(event.kind, event.kind))}</td>"
        f'<td class="mono">{escape(event.subject)}</td>'
        f"<td>{escape(SOURCES.get(event.source, event.source))}</td>"
        f"<td>{_changes(event.changes)}</td></tr>"
        for event in events
    )
    table = (
        "<table><caption>Latest first</caption><thead><tr><th>When</th><th>What</th>"
        f"<th>Who</th><th>From</th><th>Details</th></tr></thead><tbody>{rows}</tbody></table>"
        if events
        else "<p>Nothing has happened in your workspace yet.</p>"
    )
    return page("Activity", f"<section>{table}</section>", viewer, current="/activity")


def error_page(viewer: Viewer, status: int, title: str, message: str) -> Response:
    way_on = (
        f'<p><a class="button" href="{SIGN_IN_PATH}">Sign in with SSO</a></p>'
        if not viewer.user and status == 403
        else '<p><a href="/">Back to your time</a></p>'
    )
    body = f'<section class="error"><p>{escape(message)}</p>{way_on}</section>'
    return page(title, body, viewer, status=status)


def _when(moment: dt.datetime) -> str:
    return escape(f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC")


def _changes(changes: dict[str, Any]) -> str:
    """What changed, one ``field: value`` a line (``old → new`` for a ``{from, to}`` pair)."""
    shown = []
    for field, value in sorted(changes.items()):
        if isinstance(value, dict) and set(value) == {"from", "to"}:
            value = f"{_value(value['from'])} → {_value(value['to'])}"
        shown.append(f"{escape(str(field))}: {escape(_value(value))}")
    return "<br>".join(shown)


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(item) for item in value) or "(none)"
    return str(value)


def _format_minutes(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def _this_week(entries: list[Entry], today: dt.date) -> str:
    monday = today - dt.timedelta(days=today.weekday())
    total = sum(entry.minutes for entry in entries if entry.week == monday)
    return f'<p class="summary">This week: <strong>{_format_minutes(total)}</strong></p>'


def _entry_form(today: dt.date) -> str:
    return (
        '<form class="add" method="post" action="/entries">'
        '<label>What did you work on? <input name="description" required'
        f' maxlength="{MAX_DESCRIPTION_LENGTH}"></label> '
        f'<label>Minutes <input name="minutes" type="number" min="1" max="{MAX_MINUTES}"'
        " required></label> "
        f'<label>Date <input name="date" type="date" value="{today.isoformat()}"'
        f' min="{EARLIEST_DATE.isoformat()}"></label> '
        "<button>Add</button></form>"
    )


def _entry_tables(entries: list[Entry], today: dt.date) -> str:
    """One table per ISO week, latest first, each with its total."""
    if not entries:
        return "<section><p>No time recorded yet.</p></section>"
    this_monday = today - dt.timedelta(days=today.weekday())
    tables = []
    for monday, week in itertools.groupby(entries, key=lambda entry: entry.week):
        week_entries = list(week)
        rows = "".join(
            f"<tr><td>{entry.day:%a %Y-%m-%d}</td><td>{escape(entry.description)}</td>"
            f"<td>{_format_minutes(entry.minutes)}</td></tr>"
            for entry in week_entries
        )
        total = _format_minutes(sum(entry.minutes for entry in week_entries))
        label = "This week" if monday == this_monday else f"Week of {monday:%Y-%m-%d}"
        iso_year, iso_week, _ = monday.isocalendar()
        tables.append(
            f"<section><h2>{label} <small>({iso_year}-W{iso_week:02d})</small></h2>"
            '<table class="week"><thead><tr><th>Date</th><th>What</th><th>Time</th></tr></thead>'
            f'<tbody>{rows}</tbody><tfoot><tr><th colspan="2">Week total</th><th>{total}</th>'
            "</tr></tfoot></table></section>"
        )
    return "".join(tables)
