"""The options every ``webwork-sso`` command shares, exit statuses, and one-line failures."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from ..config import metadata_allowed_hosts, metadata_fetch_timeout
from ..errors import ConfigurationError
from ..idp_metadata.fetching import DEFAULT_TIMEOUT, MetadataFetcher
from ..store import Database
from ..domains import TxtResolver
from ..idp_metadata.workspaces import Workspaces

PROG = "webwork-sso"
ENV_DATABASE_URL = "WEBWORK_SSO_DATABASE_URL"
ENV_BASE_URL = "WEBWORK_SSO_BASE_URL"
ENV_AUTO_MIGRATE = "WEBWORK_SSO_AUTO_MIGRATE"
ENV_DNS_NAMESERVERS = "WEBWORK_SSO_DNS_NAMESERVERS"
ENV_METADATA_ALLOWED_HOSTS = "WEBWORK_SSO_METADATA_ALLOWED_HOSTS"
ENV_METADATA_FETCH_TIMEOUT = "WEBWORK_SSO_METADATA_FETCH_TIMEOUT"
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
    # Hosts whose IdP metadata may be fetched at internal addresses (the site's setting).
    metadata_allowed_hosts: tuple[str, ...] = ()
    metadata_fetch_timeout: float = DEFAULT_TIMEOUT

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
            yield Workspaces(database, resolver=TxtResolver(_nameservers()), fetch=MetadataFetcher(
                allowed_hosts=self.metadata_allowed_hosts, timeout=self.metadata_fetch_timeout))
        finally:
            database.dispose()


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
            f"base URL {base_url!r} must be an http(s) URL such as https://tracker.example.com",
            EXIT_USAGE,
        )
    try:
        # The same setting as the middleware's, so set-idp fetches what the site would.
        allowed_hosts = metadata_allowed_hosts(
            [*os.environ.get(ENV_METADATA_ALLOWED_HOSTS, "").split(","),
             *(getattr(args, "metadata_allowed_host", None) or ())])
        raw_timeout = os.environ.get(ENV_METADATA_FETCH_TIMEOUT, "").strip()
        timeout = metadata_fetch_timeout(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT
    except ConfigurationError as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    return GlobalOptions(database_url, base_url, base_url_chosen=bool(chosen_base_url),
                         metadata_allowed_hosts=allowed_hosts, metadata_fetch_timeout=timeout)


def _nameservers() -> tuple[str, ...]:
    """The DNS servers for verify-domain, as the middleware's ``dns_nameservers`` option."""
    raw = os.environ.get(ENV_DNS_NAMESERVERS, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _env_flag(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    return default
