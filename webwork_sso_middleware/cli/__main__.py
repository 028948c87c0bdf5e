"""``python -m webwork_sso_middleware.cli``: the same as ``webwork-sso``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
