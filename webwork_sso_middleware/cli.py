"""``webwork-sso``: set up the database and workspaces, and run the example (INTERFACE.md, "CLI").

A failing command prints one line on stderr and exits non-zero: 1 when the request was
understood but refused (unknown workspace, free plan, unreachable database), 2 for a command
line that does not parse.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from . import __version__
from .admin.links import LINK_LIFETIME, settings_link
from .devserver import ENV_SECRET_KEY, SECRET_FILE_NAME, DevServerError, serve_timetracker
from .errors import MetadataError, StoreUnavailable, WebworkSSOError
from .saml.metadata import BINDING_REDIRECT as REDIRECT
from .saml.metadata import decode_document
from .store import Database
from .store.identity_providers import IdPInfo
from .store.models import PLANS
from .store.workspaces import WorkspaceInfo, Workspaces
from .urls import WorkspaceUrls

PROG = "webwork-sso"
ENV_DATABASE_URL = "WEBWORK_SSO_DATABASE_URL"
ENV_BASE_URL = "WEBWORK_SSO_BASE_URL"
ENV_AUTO_MIGRATE = "WEBWORK_SSO_AUTO_MIGRATE"
DEFAULT_DATABASE_URL = "sqlite:///webwork_sso.db"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

EXIT_REFUSED = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line on stderr, with the exit status to end with."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclasses.dataclass(frozen=True)
class GlobalOptions:
    """The options every command shares, resolved: flag, then environment, then default."""

    database_url: str
    base_url: str
    # serve builds its base URL from --host/--port unless one was chosen explicitly.
    base_url_chosen: bool

    @property
    def database_label(self) -> str:
        """The database URL as it is safe to print (no password)."""
        try:
            return make_url(self.database_url).render_as_string(hide_password=True)
        except ArgumentError:
            return repr(self.database_url)

    @contextmanager
    def database_setup(self) -> Iterator[None]:
        """Where an engine is made: a bad URL or a missing driver becomes one clear line."""
        try:
            yield
        except ArgumentError as error:
            raise CommandError(
                f"{self.database_label} is not a usable database URL ({error})", EXIT_USAGE
            ) from None
        except ModuleNotFoundError as error:
            raise CommandError(
                f"the database driver for {self.database_label} is not installed ({error});"
                " for PostgreSQL: pip install 'webwork-sso-middleware[postgres]'"
            ) from None

    def open_database(self, *, auto_migrate: bool) -> Database:
        with self.database_setup():
            return Database(self.database_url, auto_migrate=auto_migrate)

    @contextmanager
    def workspaces(self) -> Iterator[Workspaces]:
        # Like the middleware, bring the schema up to date unless told not to.
        database = self.open_database(auto_migrate=_env_flag(ENV_AUTO_MIGRATE, default=True))
        try:
            yield Workspaces(database)
        finally:
            database.dispose()


# -- the command line ------------------------------------------------------------------------


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad command line is reported on one line, like every other failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


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
        help=f"public origin the workspace URLs are built from (env {ENV_BASE_URL};"
        f" default {DEFAULT_BASE_URL})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_db_commands(commands)
    _add_workspace_commands(commands)
    _add_serve_command(commands)
    _add_dev_idp_command(commands)
    return parser


def _add_db_commands(commands: Any) -> None:
    db = commands.add_parser("db", help="the database schema")
    actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="apply the packaged migrations")
    upgrade.set_defaults(handler=db_upgrade)


def _add_workspace_commands(commands: Any) -> None:
    workspace = commands.add_parser("workspace", help="create and configure workspaces")
    actions = workspace.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, handler: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help, description=help)
        sub.add_argument("slug", metavar="SLUG")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
        sub.set_defaults(handler=handler)
        return sub

    create = action("create", workspace_create, "create a workspace and its first SCIM token")
    create.add_argument("--name", required=True, help="display name")
    create.add_argument("--plan", required=True, choices=PLANS)
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

    set_domains = action(
        "set-domains", workspace_set_domains, "set the email domains routed to this workspace"
    )
    set_domains.add_argument("domains", metavar="DOMAIN", nargs="+")

    set_idp = action(
        "set-idp", workspace_set_idp, "set the SAML identity provider from its metadata"
    )
    source = set_idp.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--metadata-url", metavar="URL",
        help="the IdP's metadata URL (Okta: Metadata URL), fetched now and refreshed;"
        " https, or http on localhost only",
    )  # fmt: skip
    source.add_argument(
        "--metadata-file", metavar="PATH", help="a file of IdP metadata XML ('-': standard input)"
    )


def _add_serve_command(commands: Any) -> None:
    serve = commands.add_parser(
        "serve", help="run the example time tracker, wrapped by the middleware"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000, help="0 picks a free port")
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
    dev_idp.add_argument("--host", default="127.0.0.1")
    dev_idp.add_argument("--port", type=_port, default=8001, help="0 picks a free port")
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
        return int(args.handler(options, args))
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


def fail(message: str, exit_code: int = EXIT_REFUSED) -> int:
    # Driver messages span lines; the contract is one line on stderr.
    print(f"{PROG}: {' '.join(message.split())}", file=sys.stderr)
    return exit_code


def _describe_database_error(options: GlobalOptions, error: DBAPIError) -> str:
    detail = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    if "no such table" in detail or ("relation" in detail and "does not exist" in detail):
        return (
            f"the database {options.database_label} has no webwork-sso tables ({detail});"
            f" run '{PROG} db upgrade'"
        )
    return f"cannot use the database {options.database_label}: {detail}"


def resolve_global_options(args: argparse.Namespace) -> GlobalOptions:
    database_url = args.database_url or os.environ.get(ENV_DATABASE_URL) or DEFAULT_DATABASE_URL
    chosen_base_url = args.base_url or os.environ.get(ENV_BASE_URL)
    base_url = (chosen_base_url or DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise CommandError(
            f"base URL {base_url!r} must be an http(s) origin such as https://tracker.example.com",
            EXIT_USAGE,
        )
    return GlobalOptions(database_url, base_url, base_url_chosen=bool(chosen_base_url))


def _env_flag(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    return default


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
    expires = dt.datetime.now(dt.timezone.utc) + LINK_LIFETIME
    url = settings_link(info.slug, base_url=options.base_url, secret_keys=secret_keys)
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
    from_environment = [k.strip() for k in os.environ.get(ENV_SECRET_KEY, "").split(",")]
    if any(from_environment):
        return tuple(key for key in from_environment if key)
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
    return report(options, args, info, f"Set the email domains of {info.slug!r}.")


def workspace_set_idp(options: GlobalOptions, args: argparse.Namespace) -> int:
    source = args.metadata_url or args.metadata_file
    source = "standard input" if source == "-" else source
    xml = None if args.metadata_file is None else _read_metadata_file(args.metadata_file)
    with options.workspaces() as workspaces:
        try:
            idp = workspaces.set_idp(
                args.slug, metadata_url=args.metadata_url, metadata_xml=xml, actor="cli"
            )
        except MetadataError as error:
            raise CommandError(
                f"cannot use the IdP metadata from {source}: {error.reason}"
            ) from None
        info = workspaces.get(args.slug)
    message = f"Set the identity provider of {info.slug!r}."
    return report(options, args, info, message, idp=idp, with_idp=True)


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


# -- output ------------------------------------------------------------------------------------


def workspace_document(
    info: WorkspaceInfo, base_url: str, token: str | None = None
) -> dict[str, Any]:
    """The ``--json`` object of INTERFACE.md, with a few additive keys."""
    document: dict[str, Any] = {
        "slug": info.slug,
        "name": info.name,
        "plan": info.plan,
        **WorkspaceUrls(base_url, info.slug).as_dict(),
        "owner_email": info.owner_email,
        "scim_enabled": info.scim_enabled,
        "sso_enabled": info.sso_enabled,
        "domains": list(info.domains),
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
    for hint in _next_steps(info):
        print(f"\n{hint}")
    return 0


def describe_workspace(info: WorkspaceInfo, base_url: str) -> str:
    urls = WorkspaceUrls(base_url, info.slug)
    rows = [
        ("Plan", info.plan),
        ("Owner", info.owner_email),
        ("SCIM provisioning", "on" if info.scim_enabled else "off"),
        ("Single sign-on", "on" if info.sso_enabled else "off"),
        ("Email domains", ", ".join(info.domains) or "(none)"),
        ("SCIM base URL", urls.scim_base_url),
        ("Audience URI (SP entity ID)", urls.sp_entity_id),
        ("Single sign-on URL (ACS)", urls.acs_url),
        ("SP metadata URL", urls.sp_metadata_url),
        ("Sign-in URL", urls.login_url),
        ("Settings page", urls.settings_url),
    ]
    width = max(len(label) for label, _ in rows) + 1
    lines = [f"Workspace {info.slug!r} ({info.name})"]
    lines += [f"  {label + ':':<{width}} {value}" for label, value in rows]
    return "\n".join(lines)


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
    rows = [("IdP entity ID", idp.entity_id), ("SSO URL", f"{idp.sso_url} ({binding})"),
            ("Metadata", source)]
    if idp.valid_until is not None:
        expired = " (EXPIRED)" if idp.expired() else ""
        rows.append(("Valid until", _when(idp.valid_until) + expired))
    for certificate in idp.certificates:
        expiry = f"expires {_when(certificate.not_after)}"
        if certificate.not_after <= dt.datetime.now(dt.timezone.utc):
            expiry = f"EXPIRED {_when(certificate.not_after)}"
        rows.append(("Signing certificate", f"{certificate.sha256_fingerprint} ({expiry})"))
    rows.append(("IdP-initiated sign-in", "allowed" if idp.allow_idp_initiated else "refused"))
    if idp.last_refresh_error:
        at = f" ({_when(idp.last_refresh_error_at)})" if idp.last_refresh_error_at else ""
        rows.append(("Last refresh failed", f"{idp.last_refresh_error}{at}"))
    width = max(len(label) for label, _ in rows) + 1
    lines = [f"  {label + ':':<{width}} {value}" for label, value in rows]
    return "\n".join(["Identity provider", *lines])


def _when(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"


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


# -- serve -------------------------------------------------------------------------------------


def serve_example(options: GlobalOptions, args: argparse.Namespace) -> int:
    command = PROG
    if options.database_url != DEFAULT_DATABASE_URL:
        command += f" --database-url {options.database_label}"
    try:
        with options.database_setup():
            serve_timetracker(
                database_url=options.database_url,
                base_url=options.base_url if options.base_url_chosen else None,
                host=args.host,
                port=args.port,
                idp_port=args.idp_port,
                data_dir=args.data_dir,
                command=command,
            )
    except DevServerError as error:
        raise CommandError(str(error)) from None
    return 0


# -- dev-idp -----------------------------------------------------------------------------------


def run_dev_idp(options: GlobalOptions, args: argparse.Namespace) -> int:
    from .devidp import DEFAULT_USERS, DevIdPError
    from .devidp.keys import KeyFileError
    from .devidp.server import NotLoopback, run_dev_idp as run

    try:
        run(
            host=args.host,
            port=args.port,
            key_dir=Path(args.key_dir),
            sp_metadata_urls=args.sp_metadata_url,
            users=args.user or DEFAULT_USERS,
            force=args.force,
        )
    except NotLoopback as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    except (DevIdPError, KeyFileError) as error:
        raise CommandError(str(error)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
