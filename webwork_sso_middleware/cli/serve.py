"""The ``serve`` and ``dev-idp`` commands: the example time tracker and the development IdP."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..devserver import DevServerError, serve_timetracker
from .options import DEFAULT_DATABASE_URL, EXIT_USAGE, PROG, CommandError, GlobalOptions

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
    from ..devidp import DEFAULT_USERS, DevIdPError
    from ..devidp.keys import KeyFileError
    from ..devidp.server import NotLoopback
    from ..devidp.server import run_dev_idp as run

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
