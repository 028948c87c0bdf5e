"""``webwork-sso serve``: the example time tracker, wrapped by SSOMiddleware, on werkzeug's
threaded development server. For trying things out; production runs SSOMiddleware under a real
WSGI server with ``WEBWORK_SSO_SECRET_KEY`` set.

The time tracker is an example, not part of the package: it lives in
``examples/timetracker/`` of a source checkout and is loaded from there by file path.

Beside it, on the next port, runs the development IdP (devidp/), and the ``demo`` workspace
signs in through it, so the first command ends with a working "Sign in with SSO". Both run
in this one process, each server on its own threads.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from .config import env_name
from .devidp import DevIdP, DevIdPError
from .devidp.keys import KeyFileError
from .devidp.request_log import RedactingRequestHandler
from .devidp.server import BackgroundServer, bind, is_loopback
from .errors import Conflict, NotFound, WebworkSSOError
from .idp_metadata.workspaces import Workspaces
from .middleware import SSOMiddleware
from .store.models import SSO_PLANS
from .urls import public_urls

ENV_SECRET_KEY = env_name("secret_key")
SECRET_FILE_NAME = "webwork_sso.secret"
TIMETRACKER_DATABASE_NAME = "timetracker.db"
EXAMPLE_SOURCE = Path("examples", "timetracker", "app.py")
EXAMPLE_PACKAGE = "webwork_sso_example_timetracker"
DEMO_SLUG = "demo"
DEMO_OWNER = "owner@example.com"
DEMO_DOMAIN = "example.com"
DEMO_USERS = (DEMO_OWNER, "alice.smith@example.com", "bob.jones@example.com")
# The roles the example declares; members of the demo's "Admins" group (SCIM, or asserted at
# sign-in) are its admins, and see its Team and Activity pages, as its owner does.
DEMO_ROLES = ("admin", "member", "viewer")
DEMO_DEFAULT_ROLE = "member"
DEMO_ADMIN_GROUP = "Admins"
ALL_INTERFACES = ("", "0.0.0.0", "::")


class DevServerError(WebworkSSOError):
    """serve cannot start; the message says why in one sentence."""


def serve_timetracker(
    *,
    database_url: str,
    base_url: str | None,
    host: str,
    port: int,
    data_dir: str | None,
    idp_port: int | None = None,
    command: str = "webwork-sso",
    out: TextIO | None = None,
) -> None:
    """Serve until interrupted. ``base_url`` None: the address served on. ``idp_port`` None:
    the dev IdP listens on ``port + 1`` (a free port when ``port`` is 0)."""
    out = out or sys.stdout
    data_path = resolve_data_dir(database_url, data_dir)
    create_app = load_timetracker_factory()
    secret_key, secret_origin = secret_key_for(data_path)
    listener = listen(host, port)
    try:
        bound_port: int = listener.getsockname()[1]
        base_url = base_url or local_base_url(host, bound_port)
        tracker = create_app(str(data_path / TIMETRACKER_DATABASE_NAME))
        application = SSOMiddleware(
            tracker,
            database_url=database_url,
            secret_key=secret_key,
            base_url=base_url,
            **tracker_options(),
        )
    except BaseException:
        listener.close()
        raise
    idp_server: BackgroundServer | None = None
    try:
        server = make_server(
            host, bound_port, application, threaded=True, fd=listener.fileno(),
            request_handler=RedactingRequestHandler,
        )  # fmt: skip
        listener.close()  # the server holds its own duplicate of the socket
        demo_token = create_demo_workspace(application.workspaces)
        # Its Team and Activity pages follow the lifecycle events: subscribed, and caught up
        # with what happened while it was not running.
        tracker.follow(application)
        if idp_port is None:
            idp_port = bound_port + 1 if port and bound_port < 65535 else 0
        dev_idp, idp_server, idp_note = start_dev_idp(
            application.workspaces, base_url, host, idp_port, data_path
        )
        sso = sso_status(application.workspaces, dev_idp)
        print(banner(database_url, base_url, secret_origin, sso), file=out)
        print(workspace_notice(application.workspaces, base_url, demo_token, command), file=out)
        print(sign_in_notice(base_url, dev_idp, idp_note), file=out)
        if (link := owner_settings_link(application, command)) is not None:
            print(link, file=out)
        print("\nPress Ctrl+C to stop.", file=out, flush=True)
        server.serve_forever()
    finally:
        if idp_server is not None:
            idp_server.stop()
        application.close()


def tracker_options() -> dict[str, Any]:
    """The middleware options the example needs: the roles it declares."""
    # A plain dict, not config.Options: mypy reads a TypedDict's keys as maybe all present,
    # so ``**Options(...)`` beside explicit options would be "multiple values".
    return {"roles": list(DEMO_ROLES), "default_role": DEMO_DEFAULT_ROLE}


def resolve_data_dir(database_url: str, data_dir: str | None) -> Path:
    """--data-dir, else the SQLite database's folder, else the current directory."""
    if data_dir is not None:
        path = Path(data_dir)
    else:
        url = make_url(database_url)
        on_disk = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        path = Path(url.database).parent if on_disk and url.database else Path.cwd()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DevServerError(
            f"cannot use {path} for the example's data: {error.strerror}"
        ) from None
    return path.resolve()


def find_timetracker_source() -> Path:
    # An editable install (pip install -e .) runs the package from the checkout; otherwise a
    # checkout in the current directory will do.
    checkout = Path(__file__).resolve().parent.parent
    for candidate in (checkout / EXAMPLE_SOURCE, Path.cwd() / EXAMPLE_SOURCE):
        if candidate.is_file():
            return candidate
    raise DevServerError(
        f"serve runs the example time tracker from a source checkout, and {EXAMPLE_SOURCE}"
        " was not found; clone the repository and run 'pip install -e .' there"
    )


def load_timetracker_factory() -> Callable[[str], Any]:
    """``create_app`` of examples/timetracker/, imported by file path as a package of its own
    (its modules import each other relatively)."""
    source = find_timetracker_source()
    package = source.parent
    spec = importlib.util.spec_from_file_location(
        EXAMPLE_PACKAGE, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    if spec is None or spec.loader is None:
        raise DevServerError(f"cannot load the example time tracker from {package}")
    module = importlib.util.module_from_spec(spec)
    # Registered first, as an import would: its submodules, dataclasses and pickling look it up.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    create_app: Callable[[str], Any] = module.create_app
    return create_app


def secret_key_for(data_dir: Path) -> tuple[str | None, str]:
    """The key to sign with (None: the middleware reads the environment) and where it is from."""
    if os.environ.get(ENV_SECRET_KEY, "").strip():
        return None, f"from {ENV_SECRET_KEY}"
    path = data_dir / SECRET_FILE_NAME
    try:
        return _read_or_create_secret(path)
    except OSError as error:
        raise DevServerError(f"cannot keep a secret key in {path}: {error.strerror}") from None


def _read_or_create_secret(path: Path) -> tuple[str, str]:
    note = f"set {ENV_SECRET_KEY} in production"
    try:
        # O_EXCL: never overwrite a key that signed live sessions; 0600 from the first byte.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text(encoding="utf-8").strip()
        if not secret:
            raise DevServerError(f"{path} is empty; delete it or set {ENV_SECRET_KEY}") from None
        return secret, f"kept in {path} ({note})"
    secret = secrets.token_urlsafe(48)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(secret + "\n")
    return secret, f"generated into {path}, mode 0600 ({note})"


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, so that a busy port is one clear error rather than werkzeug's exit."""
    try:
        return bind(host, port)
    except DevIdPError as error:  # the same socket set-up as the dev IdP's, our error type
        raise DevServerError(str(error)) from None


def local_base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ALL_INTERFACES else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def create_demo_workspace(workspaces: Workspaces) -> str | None:
    """In an empty database, the ``demo`` workspace with SCIM on and its ``Admins`` group mapped
    to the ``admin`` role; its SCIM token, shown only now."""
    if workspaces.list_workspaces():
        return None
    try:
        _, token = workspaces.create(
            DEMO_SLUG, name="Demo workspace", plan="plus", owner_email=DEMO_OWNER
        )
    except Conflict:  # another process got there first
        return None
    workspaces.enable(DEMO_SLUG, scim=True)
    # Once, at creation: the owner may change or remove the mapping on the settings page.
    workspaces.map_role(
        DEMO_SLUG, DEMO_ADMIN_GROUP, "admin", declared=list(DEMO_ROLES), actor="serve"
    )
    return token


def banner(database_url: str, base_url: str, secret_origin: str, sso: str) -> str:
    database = make_url(database_url).render_as_string(hide_password=True)
    return (
        "webwork-sso: the example time tracker behind SSOMiddleware"
        " (development server; not for production)\n"
        f"  Time tracker:  {base_url}/\n"
        f"  SSO:           {sso}\n"
        f"  Database:      {database}\n"
        f"  Secret key:    {secret_origin}"
    )


def sso_status(workspaces: Workspaces, dev_idp: DevIdP | None) -> str:
    """Whether the demo workspace's SSO is on and through which IdP, as the store has it now
    (after start_dev_idp wired it, or left it alone)."""
    try:
        info = workspaces.get(DEMO_SLUG)
    except NotFound:
        return f"not set up by serve (there is no {DEMO_SLUG!r} workspace)"
    if not info.sso_enabled:
        return f"off for the {DEMO_SLUG!r} workspace"
    if dev_idp is not None:
        return (
            f"on for the {DEMO_SLUG!r} workspace, signing in through the dev IdP"
            f" ({dev_idp.base_url})"
        )
    return f"on for the {DEMO_SLUG!r} workspace, through the IdP it was given"


def workspace_notice(
    workspaces: Workspaces, base_url: str, demo_token: str | None, command: str
) -> str:
    scim_base_url = public_urls(None, base_url).scim_base_url
    if demo_token is not None:
        info = workspaces.get(DEMO_SLUG)
        features = " and ".join(
            name for name, on in (("SCIM", info.scim_enabled), ("SSO", info.sso_enabled)) if on
        )
        return (
            f"\nCreated the demo workspace {DEMO_SLUG!r}"
            f" (Plus plan, {features or 'SCIM and SSO'} {'on' if features else 'off'},"
            f" owner {DEMO_OWNER}).\n"
            f"  SCIM base URL: {scim_base_url}\n"
            f"  SCIM token:    {demo_token}\n"
            "                 (shown only now: only its hash is stored)\n"
            f"  Try it:        curl -H 'Authorization: Bearer {demo_token}' {scim_base_url}/Users"
        )
    slugs = [info.slug for info in workspaces.list_workspaces()]
    slug = DEMO_SLUG if DEMO_SLUG in slugs else "SLUG"
    return (
        f"\nWorkspaces: {', '.join(slugs) or '(none)'}; SCIM base URL: {scim_base_url}\n"
        "  SCIM tokens are stored hashed and never shown again; for a new one:\n"
        f"  {command} workspace rotate-token {slug}"
    )


# -- the dev IdP and the demo workspace ------------------------------------------------------


def start_dev_idp(
    workspaces: Workspaces, base_url: str, host: str, idp_port: int, data_dir: Path
) -> tuple[DevIdP | None, BackgroundServer | None, str | None]:
    """The dev IdP, serving in the background and wired to the demo workspace, when there is
    one to wire: (IdP, its server, None), else (None, None, why not)."""
    try:
        workspaces.get(DEMO_SLUG)
    except NotFound:
        return None, None, f"there is no {DEMO_SLUG!r} workspace to wire it to"
    if not is_loopback(host):
        return (
            None,
            None,
            (
                f"it signs in anyone without a password, so it runs on loopback only and {host!r}"
                " is not; serve on 127.0.0.1, or run 'webwork-sso dev-idp --force' yourself"
            ),
        )
    current = workspaces.idp(DEMO_SLUG)
    try:
        listener = bind(host, idp_port)
    except DevIdPError as error:
        raise DevServerError(
            f"{error} (for the dev IdP; choose its port with --idp-port)"
        ) from None
    try:
        dev_idp = DevIdP(
            local_base_url(host, listener.getsockname()[1]), key_dir=data_dir, users=DEMO_USERS
        )
        if current is not None and dev_idp.keys.sha256_fingerprint not in {
            c.sha256_fingerprint for c in current.certificates
        }:
            listener.close()
            return (
                None,
                None,
                (
                    f"the {DEMO_SLUG!r} workspace signs in through {current.entity_id}, which serve"
                    " leaves as it is"
                ),
            )
        urls = public_urls(None, base_url).workspace(DEMO_SLUG)
        dev_idp.register_sp(urls.sp_entity_id, urls.acs_url)
        wire_demo_workspace(workspaces, dev_idp)
        return dev_idp, BackgroundServer(dev_idp.wsgi_app, host, listener).start(), None
    except KeyFileError as error:
        listener.close()
        raise DevServerError(str(error)) from None
    except BaseException:
        listener.close()
        raise


def wire_demo_workspace(workspaces: Workspaces, dev_idp: DevIdP) -> None:
    """Plus plan, SCIM and SSO on, example.com verified (by the operator, who runs serve: the
    dev IdP may then sign in, and create, @example.com members), and the dev IdP as its IdP.
    Run at every start: the IdP's port may differ from last time."""
    info = workspaces.get(DEMO_SLUG)
    if info.plan not in SSO_PLANS:
        workspaces.set_plan(DEMO_SLUG, "plus")
    if not (info.scim_enabled and info.sso_enabled):
        workspaces.enable(DEMO_SLUG, scim=True, sso=True)
    if DEMO_DOMAIN not in info.verified_domains:
        workspaces.verify_domain(DEMO_SLUG, DEMO_DOMAIN, by_operator=True)
    current = workspaces.idp(DEMO_SLUG)
    unchanged = current is not None and (
        current.entity_id == dev_idp.entity_id
        and current.sso_url == dev_idp.sso_url
        and [c.sha256_fingerprint for c in current.certificates]
        == [dev_idp.keys.sha256_fingerprint]
    )
    if not unchanged:  # else a restart would add an audit event for nothing
        workspaces.set_idp(DEMO_SLUG, metadata_xml=dev_idp.metadata_xml(), actor="serve")


def sign_in_notice(base_url: str, dev_idp: DevIdP | None, idp_note: str | None) -> str:
    if dev_idp is None:
        return f"\nDev IdP: not started: {idp_note}." if idp_note else ""
    users = ", ".join(dev_idp.users)
    return (
        f"\nSign in with SSO through the dev IdP (DEVELOPMENT ONLY: it asks for no password):\n"
        f"  Dev IdP:       {dev_idp.metadata_url}\n"
        f'  1. Open {base_url}/ and click "Sign in with SSO".\n'
        f"  2. Type any @{DEMO_DOMAIN} email (for example {DEMO_OWNER}) and press Continue.\n"
        f"  3. At the dev IdP, pick a user ({users}) or type any email, and sign in.\n"
        "  4. You are back in the time tracker, signed in: log some time.\n"
        f"  Signed in as {DEMO_OWNER}, the workspace owner, see Team and Activity\n"
        f"  ({base_url}/team, {base_url}/activity; members of the {DEMO_ADMIN_GROUP!r} group\n"
        "  see them too) and open the settings page:\n"
        f"  {public_urls(None, base_url).workspace(DEMO_SLUG).settings_url}"
    )


def owner_settings_link(application: SSOMiddleware, command: str) -> str | None:
    """A one-time settings link for the demo owner, where the middleware can make one."""
    make_link = getattr(application, "settings_link", None)
    if make_link is None:
        return None
    try:
        link = make_link(DEMO_SLUG)
    except Exception as error:  # noqa: BLE001 - a printout must never stop the server from starting
        return f"  (no settings link: {error})"
    return (
        "  Or open it without signing in, with this short-lived one-time link"
        f" ('{command} workspace settings-link {DEMO_SLUG}' makes another):\n  {link}"
    )
