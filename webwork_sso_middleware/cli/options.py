"""The options every ``webwork-sso`` command shares, exit statuses, and one-line failures."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from .. import config
from ..domains import TxtResolver
from ..errors import ConfigurationError, WebworkSSOError
from ..idp_metadata.fetching import MetadataFetcher
from ..idp_metadata.workspaces import Workspaces
from ..store import Database

PROG = "webwork-sso"
ENV_DATABASE_URL = config.env_name("database_url")
ENV_BASE_URL = config.env_name("base_url")
DEFAULT_DATABASE_URL: str = config.default("database_url")
# The CLI's own: where 'serve' listens unless told otherwise (the middleware has no default).
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # as a shell reports a command SIGPIPE ended (128 + 13)


class CommandError(WebworkSSOError):
    """A failure to report as one line on stderr, with the exit status to end with."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclasses.dataclass(frozen=True)
class GlobalOptions:
    """The options every command shares, resolved: flag, then environment, then default.

    Besides the two flags, the middleware's own options that the commands need, read from the
    same ``WEBWORK_SSO_<OPTION>`` variables (config.py), so the CLI acts as the site would.
    """

    database_url: str
    base_url: str
    # serve builds its base URL from --host/--port unless one was chosen explicitly.
    base_url_chosen: bool
    auto_migrate: bool = config.default("auto_migrate")
    dns_nameservers: tuple[str, ...] = config.default("dns_nameservers")
    # Hosts whose IdP metadata may be fetched at internal addresses (the site's setting).
    metadata_allowed_hosts: tuple[str, ...] = config.default("metadata_allowed_hosts")
    metadata_fetch_timeout: float = config.default("metadata_fetch_timeout")

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
        database = self.open_database(auto_migrate=self.auto_migrate)
        try:
            fetch = MetadataFetcher(
                allowed_hosts=self.metadata_allowed_hosts, timeout=self.metadata_fetch_timeout
            )
            yield Workspaces(database, resolver=TxtResolver(self.dns_nameservers), fetch=fetch)
        finally:
            database.dispose()


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad command line is reported on one line, like every other failure, by
    the (sub)command it belongs to, with a pointer to that command's own ``--help``.

    Two of argparse's habits are undone here. A subcommand's parser passes the arguments it
    does not know up to the top-level parser, which then names itself ("see 'webwork-sso
    --help'" for ``serve --bogus``); here each parser reports its own. And a required
    subcommand is checked before unknown arguments, so ``webwork-sso --bogus`` said a COMMAND
    is required instead of naming ``--bogus``; here the subcommand is optional to argparse and
    checked after the unknown arguments.
    """

    _required_subcommand: tuple[str, str] | None = None  # (dest, metavar)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")

    def add_subparsers(self, **kwargs: Any) -> Any:
        if kwargs.pop("required", False):
            self._required_subcommand = (kwargs["dest"], kwargs.get("metavar") or kwargs["dest"])
        return super().add_subparsers(required=False, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        if self._required_subcommand is not None:
            dest, metavar = self._required_subcommand
            if getattr(parsed, dest, None) is None:
                self.error(f"the following arguments are required: {metavar}")
        return parsed, extras


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
    chosen_base_url = args.base_url or os.environ.get(ENV_BASE_URL)
    base_url = chosen_base_url or DEFAULT_BASE_URL
    try:
        base_url = config.checked("base_url", config.from_text("base_url", base_url))
    except ConfigurationError as error:
        raise CommandError(f"base URL {base_url!r} {error.reason}", EXIT_USAGE) from None
    try:
        # The same settings as the middleware's, so set-idp fetches what the site would.
        allowed_hosts = config.checked(
            "metadata_allowed_hosts",
            [
                *config.from_environment("metadata_allowed_hosts"),
                *(getattr(args, "metadata_allowed_host", None) or ()),
            ],
        )
        return GlobalOptions(
            args.database_url or config.from_environment("database_url"),
            base_url,
            base_url_chosen=bool(chosen_base_url),
            auto_migrate=config.from_environment("auto_migrate"),
            dns_nameservers=config.from_environment("dns_nameservers"),
            metadata_allowed_hosts=allowed_hosts,
            metadata_fetch_timeout=config.from_environment("metadata_fetch_timeout"),
        )
    except ConfigurationError as error:
        raise CommandError(str(error), EXIT_USAGE) from None
