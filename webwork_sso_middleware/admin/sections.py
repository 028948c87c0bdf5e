"""The settings page's sections, one function each, and the view they render: every value from
outside is escaped here, at the point where it meets markup. The page shell that puts them in
order is templates.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from html import escape
from urllib.parse import urlencode

from ..idp_metadata.identity_providers import IdPInfo
from ..store.members import DirectoryEntry
from ..store.workspaces import TokenSummary, WorkspaceInfo
from ..urls import WorkspaceUrls
from .diagnostics import Diagnostic, TestResult


@dataclasses.dataclass(frozen=True)
class Notice:
    kind: str  # "ok", "error" or "warn"
    text: str


@dataclasses.dataclass(frozen=True)
class SettingsView:
    """Everything one rendering of the page shows."""

    workspace: WorkspaceInfo
    urls: WorkspaceUrls
    action_url: str  # the page itself, with the script root
    home_url: str  # the host app's home (the mount point's root): the page's way back
    test_url: str  # the SAML login with this viewer's test ticket (sessions/sign_in_tests.py)
    viewer: str  # plain words: how this person got in
    csrf_token: str
    can_close: bool  # opened with a link: the owner-settings session can be ended
    idp: IdPInfo | None
    token: TokenSummary | None
    new_token: str | None
    members_total: int
    members: list[DirectoryEntry]
    state: str
    page: int
    per_page: int
    failures: list[Diagnostic]
    test_result: TestResult | None
    tested: bool  # the page was asked to show a test sign-in's result
    notices: tuple[Notice, ...] = ()
    entered_metadata_url: str = ""
    # The host's roles option (roles.py), for the Roles section.
    declared_roles: tuple[str, ...] = ()
    default_role: str | None = None


def when(moment: dt.datetime | None) -> str:
    if moment is None:
        return "never"
    moment = moment.astimezone(dt.UTC)
    return (
        f'<time datetime="{moment.isoformat().replace("+00:00", "Z")}">'
        f"{moment:%Y-%m-%d %H:%M} UTC</time>"
    )


def hidden_fields(view: SettingsView, action: str) -> str:
    return (
        f'<input type="hidden" name="csrf_token" value="{escape(view.csrf_token)}">'
        f'<input type="hidden" name="action" value="{escape(action)}">'
    )


def _copy_field(field_id: str, label: str, value: str, help_text: str = "") -> str:
    described = f' aria-describedby="{field_id}-help"' if help_text else ""
    help_html = f'<p class="help" id="{field_id}-help">{escape(help_text)}</p>' if help_text else ""
    return (
        f'<label for="{field_id}">{escape(label)}</label>{help_html}<div class="copy-row">'
        f'<input type="text" id="{field_id}" value="{escape(value)}" readonly spellcheck="false"'
        f' autocomplete="off"{described}>'
        f'<button type="button" data-copy="{field_id}" data-label="{escape(label)}" hidden>'
        f'Copy<span class="visually-hidden"> {escape(label)}</span></button></div>'
    )


def connection(view: SettingsView) -> str:
    urls = view.urls
    if view.new_token is not None:
        token = (
            '<div class="notice ok">'
            + _copy_field(
                "scim-token",
                "SCIM API Token",
                view.new_token,
                "Copy it into your identity provider now: it is shown only this once "
                "and cannot be shown again. The previous token stops working within seconds.",
            )
            + "</div>"
        )
    elif view.token is not None:
        token = (
            '<h3 id="token-h">SCIM API Token</h3><p>A token is set: it begins '
            f"<code>{escape(view.token.hint)}…</code> and was issued {when(view.token.created_at)}."
            " Only its hash is kept, so it cannot be shown again; regenerate it if you need it.</p>"
        )
    else:
        token = '<h3 id="token-h">SCIM API Token</h3><p>There is no live token.</p>'
    regenerate = (
        f'<form method="post" action="{escape(view.action_url)}">'
        f"{hidden_fields(view, 'regenerate_token')}"
        '<button type="submit" class="danger" aria-describedby="regenerate-help">'
        'Regenerate SCIM API Token…</button><p class="help" id="regenerate-help">Asks first. '
        "The current token then stops working within seconds: update your identity provider "
        "straight after.</p></form>"
    )
    return (
        '<section id="connection" aria-labelledby="connection-h">'
        '<h2 id="connection-h">Details for your identity provider</h2>'
        "<p>Paste these into the app you set up for this site in your IdP (Okta, Microsoft "
        "Entra ID, or another SAML 2.0 and SCIM 2.0 provider).</p>"
        + _copy_field(
            "scim-base-url",
            "SCIM Base URL",
            urls.scim_base_url,
            "Okta: Provisioning → SCIM connector base URL.",
        )
        + token
        + regenerate
        + _copy_field("sp-entity-id", "Audience URI (SP Entity ID)", urls.sp_entity_id)
        + _copy_field(
            "acs-url",
            "Single sign-on URL",
            urls.acs_url,
            "Also called the Assertion Consumer Service (ACS) URL; HTTP-POST.",
        )
        + _copy_field(
            "slo-url",
            "Single Logout URL",
            urls.slo_url,
            "Optional. Okta: Single Logout URL (with the SP certificate from the keys below); "
            "Entra ID: Logout Url. HTTP-Redirect and HTTP-POST.",
        )
        + _copy_field("sp-metadata-url", "SP metadata URL", urls.sp_metadata_url)
        + "</section>"
    )


def identity_provider(view: SettingsView) -> str:
    idp = view.idp
    if idp is None:
        facts = "<p>No identity provider is set yet.</p>"
    else:
        rows = [
            ("IdP entity ID", f'<span class="mono">{escape(idp.entity_id)}</span>'),
            ("SSO URL", f'<span class="mono">{escape(idp.sso_url)}</span>'),
        ]
        for number, certificate in enumerate(idp.certificates, 1):
            expired = " (expired)" if certificate.not_after <= dt.datetime.now(dt.UTC) else ""
            rows.append(
                (
                    f"Signing certificate {number}",
                    f'SHA-256 <span class="mono">{escape(certificate.sha256_fingerprint)}'
                    f"</span><br>expires {when(certificate.not_after)}{expired}",
                )
            )
        if idp.metadata_url:
            source = (
                f'from <span class="mono">{escape(idp.metadata_url)}</span>; '
                f"next refresh after {when(idp.refresh_after)}"
            )
        else:
            source = "pasted XML (not refreshed)"
        rows += [("Metadata", source), ("Last refresh", when(idp.fetched_at))]
        if idp.valid_until is not None:
            rows.append(
                ("Valid until", when(idp.valid_until) + (" (expired)" if idp.expired() else ""))
            )
        if idp.last_refresh_error:
            rows.append(
                (
                    "Last refresh failed",
                    f"{escape(idp.last_refresh_error)} ({when(idp.last_refresh_error_at)})",
                )
            )
        facts = (
            '<dl class="facts">'
            + "".join(f"<dt>{escape(label)}</dt><dd>{value}</dd>" for label, value in rows)
            + "</dl>"
        )
        facts += _idp_initiated_switch(view, idp.allow_idp_initiated)
    return (
        '<section id="idp" aria-labelledby="idp-h"><h2 id="idp-h">Identity provider</h2>'
        + facts
        + f'<form method="post" action="{escape(view.action_url)}">{hidden_fields(view, "set_idp")}'
        "<h3>Set the identity provider</h3>"
        '<label for="metadata-url">IdP metadata URL</label>'
        '<p class="help" id="metadata-url-help">Okta: the application\'s Sign On tab → Metadata '
        "URL. It is fetched and checked now, then refreshed every day.</p>"
        '<input type="url" id="metadata-url" name="metadata_url" inputmode="url" '
        f'aria-describedby="metadata-url-help" value="{escape(view.entered_metadata_url)}">'
        '<label for="metadata-xml">Or paste the IdP metadata XML</label>'
        '<textarea id="metadata-xml" name="metadata_xml" rows="5" spellcheck="false"></textarea>'
        '<button type="submit">Save and check</button></form></section>'
    )


def domains(view: SettingsView) -> str:
    """The workspace's email domains: verified ones decide whom its IdP may sign in."""
    rows = ""
    for number, claim in enumerate(view.workspace.domain_claims, 1):
        domain = escape(claim.domain)
        field = escape(claim.domain)
        if claim.verified:
            how = "by its DNS record" if claim.verified_by == "dns" else "by the site operator"
            state = f"<p><strong>{domain}</strong>: verified {how}, {when(claim.verified_at)}.</p>"
            check = ""
        else:
            state = (
                f"<p><strong>{domain}</strong>: <em>not verified</em>. Publish this DNS TXT "
                "record, wait until your DNS serves it, then check.</p>"
                + _copy_field(f"txt-name-{number}", "TXT record name", claim.record.name)
                + _copy_field(f"txt-value-{number}", "TXT record value", claim.record.value)
            )
            check = (
                f'<form method="post" action="{escape(view.action_url)}">'
                f"{hidden_fields(view, 'verify_domain')}"
                f'<input type="hidden" name="domain" value="{field}">'
                f'<button type="submit">Check DNS for {domain}</button></form>'
            )
        remove = (
            f'<form method="post" action="{escape(view.action_url)}">'
            f"{hidden_fields(view, 'release_domain')}"
            f'<input type="hidden" name="domain" value="{field}">'
            f'<button type="submit" class="quiet">Remove {domain}</button></form>'
        )
        rows += f'<div class="domain">{state}{check}{remove}</div>'
    if not rows:
        rows = "<p>No domains yet.</p>"
    return (
        '<section id="domains" aria-labelledby="domains-h"><h2 id="domains-h">Email domains</h2>'
        "<p>Your identity provider may sign in, and create at their first sign-in, people whose "
        "email is in a domain this workspace has <strong>verified</strong>; there they are known "
        "to this site by their email. People outside your verified domains sign in only if your "
        "SCIM provisioned them first (contractors). A domain can be verified by one workspace "
        "only; public mail providers (gmail.com and the like) cannot be claimed.</p>"
        + rows
        + f'<form method="post" action="{escape(view.action_url)}">'
        f"{hidden_fields(view, 'claim_domain')}"
        '<label for="new-domain">Add a domain</label>'
        '<input type="text" id="new-domain" name="domain" inputmode="url" spellcheck="false" '
        'autocomplete="off" placeholder="example.com" required>'
        '<button type="submit">Add domain</button></form></section>'
    )


def _idp_initiated_switch(view: SettingsView, on: bool) -> str:
    """The state and the action stay apart: "IdP-initiated sign-in: On" and a "Turn off"
    button, so nobody reads the button's label as the current state."""
    state, action = ("On", "Turn off") if on else ("Off", "Turn on")
    return (
        f'<form method="post" action="{escape(view.action_url)}" class="switch-row" '
        f'id="idp-initiated">{hidden_fields(view, "idp_initiated")}'
        f'<p><strong id="idp-initiated-state">IdP-initiated sign-in: {state}</strong><br>'
        '<span id="idp-initiated-text">On: people can also sign in from your IdP\'s dashboard '
        "(an Okta tile, Microsoft My Apps). Off: only sign-ins started on this site are accepted"
        " (its sign-in page or login link), and a dashboard tile shows an error; a sign-in "
        "response that this site did not ask for can then never be used here.</span></p>"
        f'<button type="submit" name="state" value="{"off" if on else "on"}" '
        'aria-describedby="idp-initiated-state idp-initiated-text">'
        f'{action}<span class="visually-hidden"> IdP-initiated sign-in</span></button></form>'
    )


def switches(view: SettingsView) -> str:
    workspace = view.workspace
    free = workspace.plan not in ("plus", "premium")
    plan_note = ""
    if free:
        plan_note = (
            '<p class="notice warn" id="plan-note">Single sign-on and SCIM need the Plus '
            f"or Premium plan. This workspace is on the {escape(workspace.plan.title())}"
            " plan, so both stay off.</p>"
        )
    rows = ""
    for feature, label, short, on, text in (
        (
            "scim",
            "SCIM provisioning",
            "SCIM",
            workspace.scim_enabled,
            "1. Your IdP creates, updates and deactivates members here.",
        ),
        (
            "sso",
            "Single sign-on",
            "SSO",
            workspace.sso_enabled,
            "2. Members sign in through your IdP (SAML 2.0).",
        ),
    ):
        # The state is text, the button names the action it takes (never one label for
        # both); turning off asks first (confirmations.py), so its label ends in an ellipsis.
        # The button's value is the state it moves to: the form works without any script.
        described = f"{feature}-state {feature}-text" + (" plan-note" if free else "")
        state = f"{short} is {'on' if on else 'off'}"
        named = "single sign-on" if feature == "sso" else label
        act = f"Turn {named} {'off…' if on else 'on'}"
        danger = ' class="danger"'
        rows += (
            f'<form method="post" action="{escape(view.action_url)}" class="switch-row">'
            f'{hidden_fields(view, "switch")}<input type="hidden" name="feature" value="{feature}">'
            f'<p><strong id="{feature}-name">{escape(label)}</strong><br>'
            f'<span class="state-{"on" if on else "off"}" id="{feature}-state">'
            f"{escape(state)}</span><br>"
            f'<span id="{feature}-text">{escape(text)}</span></p>'
            f'<button type="submit" id="{feature}-switch" name="state" '
            f'value="{"off" if on else "on"}" aria-describedby="{described}"'
            f"{danger if on else ''}"
            f"{' disabled' if free else ''}>{escape(act)}</button></form>"
        )
    return (
        '<section id="switches" aria-labelledby="switches-h">'
        '<h2 id="switches-h">SCIM provisioning and single sign-on</h2>'
        "<p><strong>Recommended order: SCIM first, then SAML.</strong> Switch SCIM on and let "
        "your IdP provision everyone (assign the app to people and groups); then switch single "
        "sign-on on. Members then sign in to accounts that already exist, with the right names "
        "and groups, and someone deactivated in the IdP is signed out here at once.</p>"
        f'{plan_note}<div class="switches">{rows}</div></section>'
    )


def members(view: SettingsView) -> str:
    pages = max(1, math.ceil(view.members_total / view.per_page))
    options = "".join(
        f'<option value="{value}"{" selected" if value == view.state else ""}>{label}</option>'
        for value, label in (
            ("all", "All members"),
            ("active", "Active"),
            ("deactivated", "Deactivated"),
        )
    )
    body = "".join(
        "<tr>"
        f'<td class="mono">{escape(m.email or m.user_name)}</td>'
        f"<td>{escape(m.name or '')}</td>"
        f'<td class="state-{"active" if m.active else "deactivated"}">'
        f"{'Active' if m.active else 'Deactivated'}</td>"
        f"<td>{'Provisioned by SCIM' if m.source == 'scim' else 'First SSO login'}</td>"
        f"<td>{when(m.last_login_at)}</td></tr>"
        for m in view.members
    )
    if not view.members:
        body = '<tr><td colspan="5">No members here yet.</td></tr>'
    caption = (
        f"{view.members_total} member{'s' if view.members_total != 1 else ''}"
        f"{'' if view.state == 'all' else ' (' + view.state + ')'}, page {view.page} of {pages}"
    )
    links = []
    if view.page > 1:
        links.append(_page_link(view, view.page - 1, "prev", "Previous page"))
    links.append(f"<span>Page {view.page} of {pages}</span>")
    if view.page < pages:
        links.append(_page_link(view, view.page + 1, "next", "Next page"))
    return (
        '<section id="members" aria-labelledby="members-h"><h2 id="members-h">Members</h2>'
        f'<form method="get" action="{escape(view.action_url)}#members" class="inline">'
        f'<div><label for="member-state">Show</label><select id="member-state" name="state">'
        f'{options}</select></div><button type="submit">Filter</button></form>'
        f'<table><caption>{escape(caption)}</caption><thead><tr><th scope="col">Email</th>'
        '<th scope="col">Name</th><th scope="col">State</th><th scope="col">Arrived by</th>'
        f'<th scope="col">Last login</th></tr></thead><tbody>{body}</tbody></table>'
        f'<nav class="pages" aria-label="Members pages">{"".join(links)}</nav></section>'
    )


def _page_link(view: SettingsView, page: int, rel: str, label: str) -> str:
    query = urlencode({"state": view.state, "page": page})
    return f'<a rel="{rel}" href="{escape(view.action_url)}?{escape(query)}#members">{label}</a>'


def diagnostics(view: SettingsView) -> str:
    workspace = view.workspace
    if workspace.sso_enabled and workspace.plan in ("plus", "premium") and view.idp is not None:
        test = (
            f'<p><a class="button" id="test-sign-in" href="{escape(view.test_url)}">'
            'Test sign-in</a></p><p class="help">Runs a sign-in through your IdP, as whoever '
            "you sign in as there, "
            "and brings you back here with the result: who the IdP asserted and whether they "
            "could sign in (the reason when not). It starts no session: you stay signed in as "
            "you are.</p>"
        )
    else:
        test = (
            "<p>Test sign-in becomes available once single sign-on is on and an identity "
            "provider is set.</p>"
        )
    rows = "".join(
        f'<tr><td>{when(d.at)}</td><td class="mono">{escape(d.email or "not known")}</td>'
        f'<td>{escape(d.what)}<br><span class="help">reason code <code>{escape(d.code)}</code>'
        "</span></td></tr>"
        for d in view.failures
    )
    table = (
        "<p>No failed sign-ins recorded.</p>"
        if not view.failures
        else "<table><caption>Latest failures, newest first (an email is as the refused "
        "response named it)</caption><thead><tr>"
        '<th scope="col">When</th><th scope="col">Email</th><th scope="col">What went wrong'
        f"</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    download = escape(view.action_url) + "?download=audit-log&amp;format="
    audit_log = (
        '<p id="audit-log">Audit log (sign-ins, refusals, provisioning and settings changes, '
        f'oldest first): <a href="{download}jsonl" download>JSON Lines</a> · '
        f'<a href="{download}csv" download>CSV</a>.</p>'
    )
    return (
        '<section id="diagnostics" aria-labelledby="diagnostics-h">'
        f'<h2 id="diagnostics-h">Diagnostics</h2>{test}{table}{audit_log}</section>'
    )


def sign_in_test_result(view: SettingsView) -> str:
    if not view.tested:
        return ""
    if view.test_result is None:
        return (
            '<div class="notice warn" role="status" id="test-result">Test sign-in: no result '
            "was found for it. It may not have come back from the identity provider yet, be "
            "older than half an hour, or have been started in another browser.</div>"
        )
    kind = "ok" if view.test_result.ok else "error"
    return (
        f'<div class="notice {kind}" role="status" id="test-result">Test '
        f"{escape(view.test_result.what)} ({when(view.test_result.at)}). Failures are also "
        'listed under <a href="#diagnostics">Diagnostics</a>.</div>'
    )
