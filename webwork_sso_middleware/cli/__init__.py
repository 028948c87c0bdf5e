"""``webwork-sso``: set up the database and workspaces, and run the example.

A failing command prints one line on stderr and exits non-zero: 1 when the request was
understood but refused (unknown workspace, free plan, unreachable database), 2 for a command
line that does not parse.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError

from .. import __version__
from ..devserver import ENV_SECRET_KEY, SECRET_FILE_NAME
from ..errors import StoreUnavailable, WebworkSSOError
from ..store.enforcement import BREAK_GLASS_DEFAULT, BREAK_GLASS_MAX
from ..store.models import PLANS
from .audit import add_audit_commands
from .events import add_events_commands
from .options import (
    DEFAULT_BASE_URL,
    DEFAULT_DATABASE_URL,
    ENV_BASE_URL,
    ENV_DATABASE_URL,
    EXIT_BROKEN_PIPE,
    EXIT_USAGE,
    PROG,
    CommandError,
    OneLineErrorParser,
    _describe_database_error,
    fail,
    resolve_global_options,
)
from .roles import add_commands as _add_role_commands
from .serve import run_dev_idp, serve_example
from .sp_keys import workspace_rotate_sp_key, workspace_set_saml
from .workspace import (
    db_upgrade,
    workspace_break_glass,
    workspace_create,
    workspace_disable,
    workspace_enable,
    workspace_require_sso,
    workspace_rotate_token,
    workspace_set_domains,
    workspace_set_idp,
    workspace_set_plan,
    workspace_settings_link,
    workspace_show,
    workspace_verify_domain,
)

__all__ = ["build_parser", "main"]

BREAK_GLASS_MINUTES = int(BREAK_GLASS_DEFAULT.total_seconds() // 60)
BREAK_GLASS_MAX_MINUTES = int(BREAK_GLASS_MAX.total_seconds() // 60)


def _break_glass_minutes(text: str) -> int:
    """--minutes: a whole number within the window's bounds, or a one-line usage error."""
    try:
        minutes = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if not 1 <= minutes <= BREAK_GLASS_MAX_MINUTES:
        raise argparse.ArgumentTypeError(f"must be from 1 to {BREAK_GLASS_MAX_MINUTES}")
    return minutes


# -- the command line ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=PROG,
        description="Set up webwork-sso workspaces and run the example time tracker.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help=f"SQLAlchemy URL of the member store (env {ENV_DATABASE_URL};"
        f" default {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help=f"public URL of the middleware's mount point, e.g. https://x.example/tracker; the"
        f" workspace URLs are built from it (env {ENV_BASE_URL};"
        f" default {DEFAULT_BASE_URL})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_db_commands(commands)
    _add_workspace_commands(commands)
    add_events_commands(commands)
    add_audit_commands(commands)
    _add_serve_command(commands)
    _add_dev_idp_command(commands)
    return parser


def _add_db_commands(commands: Any) -> None:
    db = commands.add_parser(
        "db", help="the database schema", description="Manage the member store's schema."
    )
    actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    upgrade = actions.add_parser(
        "upgrade", help="apply the packaged migrations",
        description="Create the webwork-sso tables, or bring them up to the installed version.",
    )  # fmt: skip
    upgrade.set_defaults(handler=db_upgrade)


def _add_workspace_commands(commands: Any) -> None:
    workspace = commands.add_parser(
        "workspace", help="create and configure workspaces",
        description="Create and configure workspaces: plan, SCIM token, domains, IdP, SP keys,"
        " attribute and role mappings.",
    )  # fmt: skip
    actions = workspace.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, handler: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help, description=help)
        sub.add_argument("slug", metavar="SLUG", help="the workspace's slug, as in its URLs")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
        sub.set_defaults(handler=handler)
        return sub

    create = action("create", workspace_create, "create a workspace and its first SCIM token")
    create.add_argument("--name", required=True, help="display name")
    create.add_argument("--plan", required=True, choices=PLANS, help=" | ".join(PLANS))
    create.add_argument("--owner", required=True, metavar="EMAIL", help="the owner's email")

    action("show", workspace_show, "show a workspace and its URLs")
    action("rotate-token", workspace_rotate_token, "issue a new SCIM token, revoking the old")
    settings_link_command = action(
        "settings-link", workspace_settings_link,
        "print a link that opens the workspace's settings page once, within 15 minutes",
    )  # fmt: skip
    settings_link_command.add_argument(
        "--data-dir",
        help=f"where 'serve' keeps {SECRET_FILE_NAME}, used when {ENV_SECRET_KEY} is unset"
        " (default: next to the SQLite database, else the current directory)",
    )  # fmt: skip

    for name, handler, purpose in (
        ("enable", workspace_enable, "switch SCIM and/or SSO on (Plus and Premium plans only)"),
        ("disable", workspace_disable, "switch SCIM and/or SSO off"),
    ):
        toggle = action(name, handler, f"{purpose}; with neither flag, both")
        toggle.add_argument("--scim", action="store_true", help="SCIM provisioning")
        toggle.add_argument("--sso", action="store_true", help="SAML single sign-on")

    set_plan = action(
        "set-plan", workspace_set_plan, "change the plan (free switches SCIM and SSO off)"
    )
    set_plan.add_argument("plan", metavar="PLAN", choices=PLANS, help=" | ".join(PLANS))

    require_sso = action(
        "require-sso", workspace_require_sso,
        "require SSO: hosts refuse password sign-in at the workspace's verified domains",
    )  # fmt: skip
    require_sso.add_argument(
        "state", choices=("on", "off"), help="on: require SSO; off: allow passwords again"
    )
    break_glass = action(
        "break-glass", workspace_break_glass,
        "let the owner (only) sign in with a password for a while, despite require-sso",
    )  # fmt: skip
    break_glass.add_argument(
        "--minutes", type=_break_glass_minutes, default=BREAK_GLASS_MINUTES,
        help=f"how long the window stays open (1 to {BREAK_GLASS_MAX_MINUTES};"
        f" default {BREAK_GLASS_MINUTES})",
    )  # fmt: skip
    break_glass.add_argument("--close", action="store_true", help="close the window now")

    set_domains = action(
        "set-domains", workspace_set_domains,
        "claim the workspace's email domains (unverified until verify-domain)",
    )  # fmt: skip
    set_domains.add_argument(
        "domains", metavar="DOMAIN", nargs="+",
        help="an email domain, e.g. acme.com; the list replaces the current claims",
    )  # fmt: skip
    verify_domain = action(
        "verify-domain", workspace_verify_domain,
        "verify a claimed email domain by its DNS TXT record (or on the operator's word)",
    )  # fmt: skip
    verify_domain.add_argument("domain", metavar="DOMAIN", help="a domain claimed by set-domains")
    verify_domain.add_argument(
        "--by-operator", action="store_true",
        help="record that you, the site's operator, checked the workspace controls DOMAIN"
        " (no DNS look-up)",
    )  # fmt: skip

    set_idp = action(
        "set-idp", workspace_set_idp, "set the SAML identity provider from its metadata"
    )
    # Not required: --idp-initiated alone changes only that (workspace_set_idp says so).
    source = set_idp.add_mutually_exclusive_group()
    source.add_argument(
        "--metadata-url", metavar="URL",
        help="the IdP's metadata URL (Okta: Metadata URL), fetched now and refreshed;"
        " https at a public address (see --metadata-allowed-host), or http on localhost only",
    )  # fmt: skip
    source.add_argument(
        "--metadata-file", metavar="PATH", help="a file of IdP metadata XML ('-': standard input)"
    )
    set_idp.add_argument(
        "--idp-initiated", choices=("on", "off"),
        help="accept sign-ins started at the IdP (Okta tiles; on by default), or only those"
        " started on this site; alone, changes only this",
    )  # fmt: skip
    set_idp.add_argument(
        "--metadata-allowed-host", metavar="HOST", action="append",
        help="fetch from HOST even at an internal address (repeatable; added to"
        " WEBWORK_SSO_METADATA_ALLOWED_HOSTS, comma-separated, which the site uses too)",
    )  # fmt: skip

    _add_sp_key_commands(action)
    _add_role_commands(action)


def _add_sp_key_commands(action: Callable[..., argparse.ArgumentParser]) -> None:
    data_dir_help = (
        f"where 'serve' keeps {SECRET_FILE_NAME}, used when {ENV_SECRET_KEY} is unset (default:"
        " next to the SQLite database, else the current directory); the site's own secret key"
        " is needed: the SP private keys are sealed under it"
    )
    rotate = action(
        "rotate-sp-key", workspace_rotate_sp_key,
        "the SP keys: with no flag, show them and the next step; --stage publishes a next key,"
        " --activate makes it sign (the old one still decrypts), --retire deletes the old one",
    )  # fmt: skip
    step = rotate.add_mutually_exclusive_group()
    step.add_argument(
        "--stage", action="store_true",
        help="make a next key, published in the SP metadata but not used yet",
    )  # fmt: skip
    step.add_argument(
        "--activate", action="store_true",
        help="the next key signs from now on; the current one becomes previous (decrypts only),"
        " and a previous one still held is deleted",
    )  # fmt: skip
    step.add_argument(
        "--retire", action="store_true",
        help="delete the previous key: assertions encrypted for it are refused from now on",
    )  # fmt: skip
    rotate.add_argument("--data-dir", help=data_dir_help)

    set_saml = action(
        "set-saml", workspace_set_saml,
        "the owner's SAML choices: sign every AuthnRequest, require encrypted assertions",
    )  # fmt: skip
    signing = set_saml.add_mutually_exclusive_group()
    signing.add_argument(
        "--sign-authn-requests", dest="sign_authn_requests", action="store_const", const=True,
        help="sign every AuthnRequest (they are also signed whenever the IdP's metadata asks)",
    )  # fmt: skip
    signing.add_argument(
        "--no-sign-authn-requests", dest="sign_authn_requests", action="store_const",
        const=False, help="sign AuthnRequests only when the IdP's metadata asks for it",
    )  # fmt: skip
    encryption = set_saml.add_mutually_exclusive_group()
    encryption.add_argument(
        "--require-encryption", dest="require_encryption", action="store_const", const=True,
        help="refuse sign-ins whose assertion is not encrypted",
    )  # fmt: skip
    encryption.add_argument(
        "--no-require-encryption", dest="require_encryption", action="store_const",
        const=False, help="accept unencrypted assertions too (the default)",
    )  # fmt: skip
    set_saml.add_argument("--data-dir", help=data_dir_help)


def _add_serve_command(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="run the example time tracker, wrapped by the middleware",
        description="Run the example time tracker behind SSOMiddleware on werkzeug's development"
        " server, with the dev IdP beside it; the demo workspace's SSO is on and signs in"
        " through it. DEVELOPMENT ONLY.",
    )  # fmt: skip
    serve.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; the dev IdP runs on loopback only)",
    )  # fmt: skip
    serve.add_argument(
        "--port", type=_port, default=8000, help="port to listen on (default 8000; 0: a free one)"
    )
    serve.add_argument(
        "--idp-port", type=_port, default=None,
        help="port of the dev IdP serve runs for the demo workspace (default: --port + 1,"
        " or a free port when --port is 0)",
    )  # fmt: skip
    serve.add_argument(
        "--data-dir",
        help="where the example keeps timetracker.db and a generated secret key"
        " (default: next to the SQLite database, else the current directory)",
    )
    serve.set_defaults(handler=serve_example)


def _add_dev_idp_command(commands: Any) -> None:
    dev_idp = commands.add_parser(
        "dev-idp", help="run a SAML IdP for development that signs in anyone (loopback only)",
        description="A local SAML 2.0 IdP with a pick-or-type-a-user sign-in page, so the whole"
        " sign-in flow works on one machine. DEVELOPMENT ONLY: it asks for no password.",
    )  # fmt: skip
    dev_idp.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; another needs --force)",
    )  # fmt: skip
    dev_idp.add_argument(
        "--port", type=_port, default=8001, help="port to listen on (default 8001; 0: a free one)"
    )
    dev_idp.add_argument(
        "--sp-metadata-url", metavar="URL", action="append", default=[],
        help="trust the SP with this metadata (a webwork-sso SP: http://HOST/saml/SLUG/metadata);"
        " repeat for several",
    )  # fmt: skip
    dev_idp.add_argument(
        "--user", metavar="EMAIL", action="append", default=None,
        help="a user offered on the sign-in page (repeat; any other can be typed there)",
    )  # fmt: skip
    dev_idp.add_argument(
        "--key-dir", default=".",
        help="where the IdP keeps its key and certificate (dev_idp.pem), made once and reused;"
        " default: the current directory",
    )  # fmt: skip
    dev_idp.add_argument(
        "--force", action="store_true", help="listen on a non-loopback address (never do this)"
    )
    dev_idp.set_defaults(handler=run_dev_idp)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 0 and 65535")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a command line that does not parse
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        options = resolve_global_options(args)
    except CommandError as error:
        return fail(str(error), error.exit_code)
    try:
        status = int(args.handler(options, args))
        sys.stdout.flush()  # here, so a closed pipe is caught below and not at exit
        return status
    except BrokenPipeError:
        # The reader went away (`| head`): what it took was enough. Python's own advice: point
        # stdout at devnull, so the interpreter's last flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except CommandError as error:
        return fail(str(error), error.exit_code)
    except StoreUnavailable as error:
        return fail(f"cannot reach the database {options.database_label}: {error}")
    except WebworkSSOError as error:
        return fail(str(error))
    except DBAPIError as error:
        return fail(_describe_database_error(options, error))
    except KeyboardInterrupt:
        return 130
