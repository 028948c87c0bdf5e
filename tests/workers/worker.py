#!/usr/bin/env python
"""One server process for tests/workers/, tests/faults/ and benchmarks/load_bench.py.

    python tests/workers/worker.py --database-url URL --base-url URL --index 1

SSOMiddleware in front of a host app that names the member and this worker
(``user=<REMOTE_USER>;worker=<index>;path=<path>;roles=<member.roles>``), served by waitress
on a free loopback port. The first line on stdout is ``{"port": ..., "pid": ...}``; SIGTERM ends the process.

Every worker gets the same base_url, as behind a load balancer: the SAML and SCIM URLs are
built from it, never from the port a request happened to reach.

``--freeze-on TEXT``: the first SQL statement whose text and parameters both contain TEXT
(repeat the option to require several) stops its thread inside the transaction and prints
``FROZEN`` on stdout, so a test can kill the process mid-write.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

# The host's declared roles (``roles=`` on the page): tests map a workspace's groups to them.
ROLES = ("admin", "member", "viewer")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument(
        "--secret-key", default="workers-secret-padded-to-thirty-two-bytes-at-least"
    )
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--recheck", type=float, default=1.0, help="session_recheck_seconds")
    parser.add_argument("--freeze-on", action="append", default=[])
    args = parser.parse_args(argv)

    import waitress

    from webwork_sso_middleware import SSOMiddleware

    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format=f"%(asctime)s worker{args.index} %(levelname)s %(name)s: %(message)s",
    )

    def host_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        member = environ.get("webwork_sso.member")
        body = (
            f"user={environ.get('REMOTE_USER', '')};worker={args.index};"
            f"path={environ.get('PATH_INFO', '')};"
            f"roles={','.join(member.roles) if member is not None else ''}"
        ).encode()
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]

    middleware = SSOMiddleware(
        host_app,
        database_url=args.database_url,
        secret_key=args.secret_key,
        base_url=args.base_url,
        session_recheck_seconds=args.recheck,
        auto_migrate=False,
        roles=ROLES,
        default_role="viewer",
    )
    if args.freeze_on:
        _freeze_on(middleware.database.engine, args.freeze_on)
    server = waitress.create_server(
        middleware,
        host="127.0.0.1",
        port=0,
        threads=args.threads,
        ident=f"worker{args.index}",
        connection_limit=200,
    )

    def stop(*_: Any) -> None:
        middleware.close()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    sys.stdout.write(json.dumps({"port": server.effective_port, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    server.run()


def _freeze_on(engine: Any, needles: list[str]) -> None:
    from sqlalchemy import event

    frozen = threading.Event()

    @event.listens_for(engine, "before_cursor_execute")
    def freeze(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        text = repr(parameters)
        if frozen.is_set() or not all(n in statement or n in text for n in needles):
            return
        frozen.set()
        sys.stdout.write("FROZEN\n")
        sys.stdout.flush()
        time.sleep(600)  # until the test kills the process


if __name__ == "__main__":
    main()
