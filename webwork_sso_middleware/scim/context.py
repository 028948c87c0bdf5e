"""What every SCIM endpoint receives and returns: the request's context and the reply shape.

Below app.py (routing) and users.py / groups.py (endpoints), so both import it and neither
imports the other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Request

from ..store.db import UnitOfWork
from .errors import uniqueness
from .verified_domains import VerifiedDomains

# (status, JSON body or None, extra headers)
Reply = tuple[int, Any, dict[str, str]]


class ContextSource(Protocol):
    """What a context takes from the SCIM app: its URL base, its limits and its memory."""

    max_results: int
    max_body_bytes: int
    verified_domains: VerifiedDomains

    def scim_base(self, request: Request) -> str: ...


class ScimContext:
    """What an endpoint needs: the request, its transaction, the workspace and URL builders."""

    def __init__(
        self, app: ContextSource, request: Request, unit: UnitOfWork, workspace_id: int, actor: str
    ) -> None:
        self.request = request
        self.unit = unit
        self.workspace_id = workspace_id
        self.actor = actor
        self.base = app.scim_base(request)
        self.max_results = app.max_results
        self.max_body_bytes = app.max_body_bytes
        self.verified_domains = app.verified_domains

    @property
    def connection(self) -> Connection:
        return self.unit.connection

    @property
    def session(self) -> Session:
        return self.unit.session

    def locate(self, endpoint: str, resource_id: str) -> str:
        return f"{self.base}/{endpoint}/{resource_id}"

    def flush_unique(self, conflict: str) -> None:
        """Flush the writes; a unique index refusing one is 409 uniqueness, ``conflict`` its
        detail. The caller builds the detail before the flush: a failed flush expires the
        row it would name."""
        with self.unique(conflict):
            self.session.flush()

    @staticmethod
    @contextlib.contextmanager
    def unique(conflict: str) -> Iterator[None]:
        """A unique index refusing a write inside is 409 uniqueness, ``conflict`` its detail."""
        try:
            yield
        except IntegrityError:
            raise uniqueness(conflict) from None
