"""The text and ``--json`` output of the ``workspace`` commands."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from ..idp_metadata.identity_providers import IdPInfo
from ..idp_metadata.parsing import BINDING_REDIRECT as REDIRECT
from ..store.domains import DomainClaim
from ..store.workspaces import WorkspaceInfo
from ..urls import public_urls
from .options import PROG, GlobalOptions


def workspace_document(
    info: WorkspaceInfo, base_url: str, token: str | None = None
) -> dict[str, Any]:
    """The ``--json`` object of the workspace commands: the keys scripts rely on, and a few
    additive ones."""
    document: dict[str, Any] = {
        "slug": info.slug,
        "name": info.name,
        "plan": info.plan,
        **public_urls(None, base_url).workspace(info.slug).as_dict(),
        "owner_email": info.owner_email,
        "scim_enabled": info.scim_enabled,
        "sso_enabled": info.sso_enabled,
        "domains": list(info.domains),
        "verified_domains": list(info.verified_domains),
        "domain_claims": [
            {
                "domain": claim.domain,
                "verified": claim.verified,
                "verified_by": claim.verified_by,
                "txt_record_name": claim.record.name,
                "txt_record_value": claim.record.value,
            }
            for claim in info.domain_claims
        ],
        "require_sso": info.require_sso,
        "break_glass_until": (
            info.break_glass_until.isoformat(timespec="seconds")
            if info.break_glass_open and info.break_glass_until
            else None
        ),
        "attribute_map": dict(info.attribute_map),
        "role_map": dict(info.role_map),
    }
    if token is not None:
        document["scim_token"] = token
    return document


def report(
    options: GlobalOptions,
    args: argparse.Namespace,
    info: WorkspaceInfo,
    message: str | None,
    *,
    token: str | None = None,
    idp: IdPInfo | None = None,
    with_idp: bool = False,
) -> int:
    if args.json:
        document = workspace_document(info, options.base_url, token)
        if with_idp:
            document["idp"] = idp.as_document() if idp is not None else None
            # The switch lives on the IdP: null until one is set.
            document["idp_initiated"] = idp.allow_idp_initiated if idp is not None else None
        print(json.dumps(document, indent=2))
        return 0
    if message:
        print(message)
        print()
    print(describe_workspace(info, options.base_url))
    if with_idp:
        print()
        print(describe_idp(info.slug, idp))
    if token is not None:
        print()
        print(describe_token(info.slug, token))
    for hint in [*describe_domain_records(info), *_next_steps(info)]:
        print(f"\n{hint}")
    return 0


def describe_workspace(info: WorkspaceInfo, base_url: str) -> str:
    urls = public_urls(None, base_url).workspace(info.slug)
    rows = [
        ("Plan", info.plan),
        ("Owner", info.owner_email),
        ("SCIM provisioning", "on" if info.scim_enabled else "off"),
        ("Single sign-on", "on" if info.sso_enabled else "off"),
        ("Email domains", ", ".join(_domain_state(c) for c in info.domain_claims) or "(none)"),
        ("SCIM base URL", urls.scim_base_url),
        ("Audience URI (SP entity ID)", urls.sp_entity_id),
        ("Single sign-on URL (ACS)", urls.acs_url),
        ("SP metadata URL", urls.sp_metadata_url),
        ("Sign-in URL", urls.login_url),
        ("Settings page", urls.settings_url),
        (
            "Attribute mapping",
            ", ".join(f"{k}={v}" for k, v in info.attribute_map.items()) or "(built-in names)",
        ),
        ("Role mapping", ", ".join(f"{g} -> {r}" for g, r in info.role_map.items()) or "(none)"),
    ]
    width = max(len(label) for label, _ in rows) + 1
    lines = [f"Workspace {info.slug!r} ({info.name})"]
    lines += [f"  {label + ':':<{width}} {value}" for label, value in rows]
    return "\n".join(lines)


def _domain_state(claim: DomainClaim) -> str:
    if claim.verified:
        return f"{claim.domain} (verified by {'the operator' if claim.verified_by == 'operator' else 'DNS'})"
    return f"{claim.domain} (unverified)"


def describe_domain_records(info: WorkspaceInfo) -> list[str]:
    """How to verify each unverified claim: the TXT record to publish, and the command."""
    hints = []
    for claim in info.domain_claims:
        if not claim.verified:
            hints.append(
                f"To verify {claim.domain}, publish this DNS TXT record, then run"
                f" '{PROG} workspace verify-domain {info.slug} {claim.domain}':\n"
                f'  {claim.record.name}  TXT  "{claim.record.value}"'
            )
    return hints


def describe_idp(slug: str, idp: IdPInfo | None) -> str:
    if idp is None:
        return (
            "Identity provider: none yet; set it with\n"
            f"  {PROG} workspace set-idp {slug} --metadata-url URL   (or --metadata-file PATH)"
        )
    binding = "HTTP-Redirect" if idp.sso_url == idp.sso_urls.get(REDIRECT) else "HTTP-POST"
    if idp.metadata_url:
        source = f"{idp.metadata_url}, fetched {_when(idp.fetched_at)}"
        if idp.refresh_after is not None:
            source += f"; next refresh after {_when(idp.refresh_after)}"
    else:
        source = f"pasted {_when(idp.fetched_at)} (not refreshed)"
    rows = [
        ("IdP entity ID", idp.entity_id),
        ("SSO URL", f"{idp.sso_url} ({binding})"),
        ("Metadata", source),
    ]
    if idp.valid_until is not None:
        expired = " (EXPIRED)" if idp.expired() else ""
        rows.append(("Valid until", _when(idp.valid_until) + expired))
    for certificate in idp.certificates:
        expiry = f"expires {_when(certificate.not_after)}"
        if certificate.not_after <= dt.datetime.now(dt.UTC):
            expiry = f"EXPIRED {_when(certificate.not_after)}"
        rows.append(("Signing certificate", f"{certificate.sha256_fingerprint} ({expiry})"))
    rows.append(
        (
            "IdP-initiated sign-in",
            "on"
            if idp.allow_idp_initiated
            else "off (only sign-ins started on this site are accepted)",
        )
    )
    if idp.last_refresh_error:
        at = f" ({_when(idp.last_refresh_error_at)})" if idp.last_refresh_error_at else ""
        rows.append(("Last refresh failed", f"{idp.last_refresh_error}{at}"))
    width = max(len(label) for label, _ in rows) + 1
    lines = [f"  {label + ':':<{width}} {value}" for label, value in rows]
    return "\n".join(["Identity provider", *lines])


def _when(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


def describe_token(slug: str, token: str) -> str:
    return (
        f"SCIM API token: {token}\n"
        "  Shown only now: only its hash is stored. Paste it into your identity provider;\n"
        f"  '{PROG} workspace rotate-token {slug}' issues a new one and revokes this one."
    )


def _next_steps(info: WorkspaceInfo) -> list[str]:
    if info.plan == "free":
        return [
            "SSO and SCIM need the Plus or Premium plan:"
            f" {PROG} workspace set-plan {info.slug} plus"
        ]
    if not info.scim_enabled:
        return [
            f"SCIM is off; to let your IdP provision: {PROG} workspace enable {info.slug} --scim"
        ]
    return []
