"""The ``db upgrade`` and ``workspace ...`` commands."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from .. import config
from ..admin.links import LINK_LIFETIME, settings_link
from ..devserver import ENV_SECRET_KEY, SECRET_FILE_NAME
from ..errors import MetadataError
from ..idp_metadata.document import decode_document
from ..signing import Signing
from .options import EXIT_USAGE, PROG, CommandError, GlobalOptions
from .output import report, workspace_document

# -- db ----------------------------------------------------------------------------------------


def db_upgrade(options: GlobalOptions, args: argparse.Namespace) -> int:
    database = options.open_database(auto_migrate=False)
    try:
        before = database.current_revision()
        database.upgrade()
        after = database.current_revision()
    finally:
        database.dispose()
    if before == after:
        print(f"{options.database_label} is up to date at revision {after}.")
    else:
        print(f"Upgraded {options.database_label} from {before or 'empty'} to revision {after}.")
    return 0


# -- workspace ---------------------------------------------------------------------------------


def workspace_create(options: GlobalOptions, args: argparse.Namespace) -> int:
    with options.workspaces() as workspaces:
        info, token = workspaces.create(
            args.slug, name=args.name, plan=args.plan, owner_email=args.owner
        )
    return report(options, args, info, f"Created workspace {info.slug!r}.", token=token)


def workspace_show(options: GlobalOptions, args: argparse.Namespace) -> int:
    with options.workspaces() as workspaces:
        info = workspaces.get(args.slug)
        idp = workspaces.idp(args.slug)
    return report(options, args, info, None, idp=idp, with_idp=True)


def workspace_rotate_token(options: GlobalOptions, args: argparse.Namespace) -> int:
    with options.workspaces() as workspaces:
        token = workspaces.rotate_token(args.slug)
        info = workspaces.get(args.slug)
    message = f"Issued a new SCIM token for {info.slug!r}; every earlier token is revoked."
    return report(options, args, info, message, token=token)


def workspace_settings_link(options: GlobalOptions, args: argparse.Namespace) -> int:
    secret_keys = _site_secret_keys(options, args.data_dir)  # before the database: cheap
    with options.workspaces() as workspaces:
        info = workspaces.get(args.slug)
    expires = dt.datetime.now(dt.UTC) + LINK_LIFETIME
    url = settings_link(info.slug, base_url=options.base_url, signing=Signing(secret_keys))
    if args.json:
        document = workspace_document(info, options.base_url)
        document["settings_link"] = url
        document["settings_link_expires_at"] = expires.isoformat(timespec="seconds")
        print(json.dumps(document, indent=2))
    else:
        print(url)  # alone on stdout, so a script can take it as it is
    return 0


def _site_secret_keys(options: GlobalOptions, data_dir: str | None) -> tuple[str, ...]:
    """The site's secret keys (newest last signs): the environment, else the file serve keeps."""
    # Parsed as the middleware parses it (comma-separated), not checked: the site checks its keys.
    from_environment: tuple[str, ...] = config.from_text(
        "secret_key", os.environ.get(ENV_SECRET_KEY, "")
    )
    if from_environment:
        return from_environment
    if data_dir is not None:
        folder = Path(data_dir)
    else:
        with options.database_setup():
            url = make_url(options.database_url)
        on_disk = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        folder = Path(url.database).parent if on_disk and url.database else Path.cwd()
    path = folder / SECRET_FILE_NAME
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        secret = ""
    except OSError as error:
        raise CommandError(f"cannot read the secret key in {path}: {error.strerror}") from None
    if not secret:
        raise CommandError(
            f"no secret key to sign the link with: set {ENV_SECRET_KEY} to the site's secret key"
            f" (no {path} either, which '{PROG} serve' keeps)"
        )
    return (secret,)


def workspace_enable(options: GlobalOptions, args: argparse.Namespace) -> int:
    scim, sso = _chosen_features(args)
    with options.workspaces() as workspaces:
        info = workspaces.enable(args.slug, scim=scim, sso=sso)
    return report(options, args, info, f"Enabled {_feature_names(scim, sso)} for {info.slug!r}.")


def workspace_disable(options: GlobalOptions, args: argparse.Namespace) -> int:
    scim, sso = _chosen_features(args)
    with options.workspaces() as workspaces:
        info = workspaces.disable(args.slug, scim=scim, sso=sso)
    return report(options, args, info, f"Disabled {_feature_names(scim, sso)} for {info.slug!r}.")


def workspace_set_plan(options: GlobalOptions, args: argparse.Namespace) -> int:
    with options.workspaces() as workspaces:
        info = workspaces.set_plan(args.slug, args.plan)
    return report(options, args, info, f"Workspace {info.slug!r} is now on the {info.plan} plan.")


def workspace_set_domains(options: GlobalOptions, args: argparse.Namespace) -> int:
    with options.workspaces() as workspaces:
        info = workspaces.set_domains(args.slug, args.domains)
    return report(
        options,
        args,
        info,
        f"Set the email domains {info.slug!r} claims. A claim "
        "counts once verified (workspace verify-domain).",
    )


def workspace_verify_domain(options: GlobalOptions, args: argparse.Namespace) -> int:
    with options.workspaces() as workspaces:
        claim = workspaces.verify_domain(args.slug, args.domain, by_operator=args.by_operator)
        info = workspaces.get(args.slug)
    how = "on the operator's word" if claim.verified_by == "operator" else "by its DNS TXT record"
    return report(options, args, info, f"{claim.domain} is verified for {info.slug!r} ({how}).")


def workspace_set_idp(options: GlobalOptions, args: argparse.Namespace) -> int:
    allow = None if args.idp_initiated is None else args.idp_initiated == "on"
    if args.metadata_url is None and args.metadata_file is None and allow is None:
        raise CommandError(
            "give --metadata-url URL or --metadata-file PATH, or --idp-initiated {on,off}",
            EXIT_USAGE,
        )
    source = args.metadata_url or args.metadata_file
    source = "standard input" if source == "-" else source
    xml = None if args.metadata_file is None else _read_metadata_file(args.metadata_file)
    with options.workspaces() as workspaces:
        try:
            idp = workspaces.set_idp(
                args.slug, metadata_url=args.metadata_url, metadata_xml=xml,
                allow_idp_initiated=allow, actor="cli",
            )  # fmt: skip
        except MetadataError as error:
            raise CommandError(
                f"cannot use the IdP metadata from {source}: {error.reason}"
            ) from None
        info = workspaces.get(args.slug)
    if source is None:
        state = "on" if idp.allow_idp_initiated else "off"
        message = f"IdP-initiated sign-in is {state} for {info.slug!r}."
    else:
        message = f"Set the identity provider of {info.slug!r}."
    return report(options, args, info, message, idp=idp, with_idp=True)


def workspace_require_sso(options: GlobalOptions, args: argparse.Namespace) -> int:
    on = args.state == "on"
    with options.workspaces() as workspaces:
        info = workspaces.set_require_sso(args.slug, on, actor="cli")
    message = (
        f"SSO is required for {info.slug!r}: hosts refuse password sign-in at its verified "
        "domains (the owner can open a break-glass window)."
        if on
        else f"SSO is no longer required for {info.slug!r}."
    )
    return report(options, args, info, message)


def workspace_break_glass(options: GlobalOptions, args: argparse.Namespace) -> int:
    with options.workspaces() as workspaces:
        if args.close:
            info = workspaces.close_break_glass(args.slug, actor="cli")
            message = f"Closed the break-glass window of {info.slug!r}."
        else:
            info = workspaces.open_break_glass(
                args.slug, actor="cli", duration=dt.timedelta(minutes=args.minutes)
            )
            until = info.break_glass_until
            shown = until.strftime("%Y-%m-%d %H:%M UTC") if until else "?"
            message = (
                f"Break-glass open for {info.slug!r} until {shown}: {info.owner_email} "
                "(the owner, nobody else) may sign in with a password."
            )
    return report(options, args, info, message)


def _read_metadata_file(path: str) -> str:
    shown = "standard input" if path == "-" else path
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        reason = error.strerror or error
        raise CommandError(f"cannot read the metadata file {path}: {reason}") from None
    try:
        return decode_document(raw)
    except MetadataError as error:
        raise CommandError(f"cannot use the IdP metadata from {shown}: {error.reason}") from None


def _chosen_features(args: argparse.Namespace) -> tuple[bool, bool]:
    if not args.scim and not args.sso:
        return True, True
    return bool(args.scim), bool(args.sso)


def _feature_names(scim: bool, sso: bool) -> str:
    return " and ".join(name for name, chosen in (("SCIM", scim), ("SSO", sso)) if chosen)
