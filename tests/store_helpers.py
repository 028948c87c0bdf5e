"""A transaction as a ``with`` block, for tests' set-up and checks.

The package opens transactions one way only, ``Database.run(work)``, which retries ``work``
after a transient conflict. A test that arranges rows or reads them back wants neither the
retry nor a function per block, so it borrows the context manager ``run`` is built on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from webwork_sso_middleware.store.db import Database, UnitOfWork


@contextlib.contextmanager
def transaction(database: Database, *, write: bool = False) -> Iterator[UnitOfWork]:
    """One transaction, committed at the end of the block, rolled back when it raises."""
    with database._unit(write=write) as unit:
        yield unit
