"""Running the dev IdP on werkzeug: alone (``webwork-sso dev-idp``) or beside ``serve``.

It refuses any address but loopback unless forced: on a network it would let anyone sign in
to any SP that trusts it as anyone at all.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from werkzeug.serving import BaseWSGIServer, make_server

from ..idp_metadata.addresses import is_loopback
from .idp import DEFAULT_USERS, DevIdP, DevIdPError
from .request_log import RedactingRequestHandler

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["BackgroundServer", "banner", "base_url_for", "bind", "is_loopback", "run_dev_idp"]

RULE = "=" * 78


class NotLoopback(DevIdPError):
    """A non-loopback address without --force (a usage error: the command line must change)."""


def base_url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def check_host(host: str, *, force: bool) -> None:
    if not force and not is_loopback(host):
        raise NotLoopback(
            f"the dev IdP signs anyone in without a password, so it listens on loopback only"
            f" (127.0.0.1, ::1, localhost), not {host or 'every interface'!r}; add --force"
            " if you really mean it"
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so that a busy port is one clear error rather than werkzeug's exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)
    except OSError as error:
        listener.close()
        raise DevIdPError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return listener


class BackgroundServer:
    """A WSGI app on werkzeug's threaded server, in a daemon thread, on a bound socket."""

    def __init__(self, app: WSGIApplication, host: str, listener: socket.socket) -> None:
        port = listener.getsockname()[1]
        self.server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, fd=listener.fileno(),
            request_handler=RedactingRequestHandler,
        )  # fmt: skip
        listener.close()  # the server holds its own duplicate of the socket
        self.thread = threading.Thread(
            target=self.server.serve_forever, daemon=True, name=f"dev-idp:{port}"
        )

    def start(self) -> BackgroundServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def banner(idp: DevIdP) -> str:
    sps = idp.known_sps()
    rows = [
        ("Metadata URL", f"{idp.metadata_url}  (also its entity ID)"),
        ("Single sign-on URL", f"{idp.sso_url}  (HTTP-Redirect and HTTP-POST)"),
        ("IdP-initiated", idp.start_url),
        ("Signing key", f"{idp.key_file}  (kept, so SPs keep trusting it)"),
        ("Trusted SPs", ", ".join(sorted(sps)) or "none yet"),
    ]
    width = max(len(label) for label, _ in rows) + 1
    return "\n".join([
        RULE,
        "  DEVELOPMENT ONLY -- NOT FOR PRODUCTION",
        f"  {idp.name}: signs in anyone as anyone, without a password.",
        RULE,
        *(f"  {label + ':':<{width}} {value}" for label, value in rows),
    ])  # fmt: skip


def run_dev_idp(
    *,
    host: str,
    port: int,
    key_dir: Path,
    sp_metadata_urls: Sequence[str] = (),
    users: Sequence[str] = DEFAULT_USERS,
    force: bool = False,
    out: TextIO | None = None,
) -> None:
    """Serve a DevIdP until interrupted (``webwork-sso dev-idp``)."""
    out = out or sys.stdout
    check_host(host, force=force)
    listener = bind(host, port)
    try:
        idp = DevIdP(base_url_for(host, listener.getsockname()[1]), key_dir=key_dir, users=users)
        waiting = [url for url in sp_metadata_urls if not idp.register_sp_from_metadata_url(
            url, retry_later=True)]  # fmt: skip
        server = make_server(
            host, listener.getsockname()[1], idp.wsgi_app, threaded=True, fd=listener.fileno(),
            request_handler=RedactingRequestHandler,
        )  # fmt: skip
    finally:
        listener.close()  # the server holds its own duplicate of the socket
    print(banner(idp), file=out)
    for url in waiting:
        print(f"  Not reachable yet:  {url} (fetched again when that SP first signs in)", file=out)
    print(
        "\nPoint a workspace at it:\n"
        f"  webwork-sso workspace set-idp SLUG --metadata-url {idp.metadata_url}"
        f" --metadata-allowed-host {urlsplit(idp.metadata_url).hostname}\n"
        "  (and set WEBWORK_SSO_METADATA_ALLOWED_HOSTS for the site's refresh)\n"
        "\nPress Ctrl+C to stop.",
        file=out,
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
