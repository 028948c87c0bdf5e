"""What the SCIM security tests share: a populated workspace, a strict check of every answer,
and the store's invariants read back with plain SQL.

Used by test_scim_fuzz.py, test_scim_tenants.py and test_scim_tokens.py. Those modules take the
conftest's ``middleware`` (built with ``new_middleware`` on tests/conftest.py's
``database_url``) and never touch the SAML ``site`` of this package's conftest.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from hypothesis import currently_in_test_context, event
from sqlalchemy import text
from webtest import TestApp

from webwork_sso_middleware import SSOMiddleware, names
from webwork_sso_middleware.scim.schemas import ENTERPRISE_USER_SCHEMA, ERROR, USER_SCHEMA

from ..constants import SCIM_JSON
from ..scim.conftest import host_app, okta_user

# RFC 7644 section 3.12, Table 9: every scimType there is.
RFC_SCIM_TYPES = frozenset(
    {
        "invalidFilter",
        "tooMany",
        "uniqueness",
        "mutability",
        "invalidSyntax",
        "invalidPath",
        "noTarget",
        "invalidValue",
        "invalidVers",
        "sensitive",
    }
)
# Answers whose status alone says it all (RFC 7644 lists no scimType for them).
PLAIN_ERRORS = frozenset({401, 403, 404, 405, 412, 413, 429, 501, 503})


class ErrorLog(logging.Handler):
    """Collects ERROR records of the package: a logged exception is a bug answered as 500."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logger = logging.getLogger("webwork_sso_middleware")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def check_answer(
    response: Any,
    allowed: dict[int, frozenset[str | None] | set[str | None]],
    errors: ErrorLog | None = None,
) -> dict[str, Any] | None:
    """Fail unless ``response`` is one of the ``allowed`` statuses, in proper SCIM form.

    ``allowed`` maps a status to the scimTypes acceptable with it (None: no scimType). Every
    error must be the SCIM Error message with ``status`` as a string; a 400 must carry an RFC
    scimType; nothing may ever show a traceback or log an error.
    """
    status = response.status_int
    shown = response.body[:600]
    assert status != 500, f"500 answered: {shown!r}"
    assert b"Traceback" not in response.body, shown
    if errors is not None:
        assert not errors.records, [r.getMessage() for r in errors.records]
    assert status in allowed, f"unexpected {status}: {shown!r}"
    if currently_in_test_context():  # --hypothesis-show-statistics tells what the runs met
        event(f"{status} {json.loads(response.body).get('scimType', '') if status >= 400 else ''}")
    if status in (204, 304):
        assert not response.body
        return None
    assert response.content_type == SCIM_JSON, response.content_type
    body = json.loads(response.body)
    if status < 400:
        return body
    assert body["schemas"] == [ERROR], body
    assert body["status"] == str(status), body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    scim_type = body.get("scimType")
    assert scim_type is None or scim_type in RFC_SCIM_TYPES, body
    if status == 400:
        assert scim_type is not None, f"a 400 needs a scimType: {body}"
    if status == 409:
        assert scim_type == "uniqueness", body
    assert scim_type in allowed[status], f"scimType {scim_type!r} for {status}: {body}"
    return body


def without_meta(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "meta"}


def version_of(document: dict[str, Any]) -> int:
    tag = document["meta"]["version"]
    assert tag.startswith('W/"') and tag.endswith('"'), tag
    return int(tag[3:-1])


def full_user(email: str, **extra: Any) -> dict[str, Any]:
    """An Okta-style user with a bit of everything: name, emails, phones, address, extension."""
    body = okta_user(email, **extra)
    body["schemas"] = [USER_SCHEMA, ENTERPRISE_USER_SCHEMA]
    body["phoneNumbers"] = [{"value": "+1 555 0100", "type": "work"}]
    body["addresses"] = [
        {"streetAddress": "1 Main St", "locality": "Springfield", "type": "work", "primary": True}
    ]
    body["title"] = "Engineer"
    body[ENTERPRISE_USER_SCHEMA] = {
        "department": "R&D",
        "employeeNumber": "42",
        "manager": {"value": "m-1"},
    }
    return body


class Tenant:
    """One workspace and a WebTest client holding its token."""

    def __init__(self, middleware: SSOMiddleware, slug: str) -> None:
        _, self.token = middleware.workspaces.create(
            slug, name=slug.title(), plan="plus", owner_email=f"owner@{slug}.test"
        )
        middleware.workspaces.enable(slug, scim=True)
        self.slug = slug
        self.workspace_id = middleware.workspaces.get(slug).id
        self.app = TestApp(middleware)
        self.headers = {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM_JSON}

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        query: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Any request, any status; ``path`` below /scim/v2, ``query`` encoded as given."""
        if isinstance(query, dict):
            query = "&".join(f"{quote(str(k))}={_quote(str(v))}" for k, v in query.items())
        url = "/scim/v2" + path + (f"?{query}" if query else "")
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        return self.app.request(
            url,
            method=method,
            body=data,
            expect_errors=True,
            headers={**self.headers, **(headers or {})},
        )

    def create(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.request("POST", f"/{endpoint}", body)
        assert response.status_int == 201, response.body
        return response.json  # type: ignore[no-any-return]

    def get(self, endpoint: str, resource_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/{endpoint}/{quote(resource_id, safe='')}")
        assert response.status_int == 200, response.body
        return response.json  # type: ignore[no-any-return]


def _quote(value: str) -> str:
    # Lone surrogates travel as the bytes Python would give them: the server must cope.
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


class World:
    """Workspace ``acme`` with users (one deleted) and groups, and ``beta`` next to it.

    ``beta`` holds a user and a group with the same names as acme's, so per-workspace
    uniqueness and cross-tenant references are always in play. Strategies name these rows
    with placeholders (``{{u0}}``, ``{{beta_user}}``...) that :meth:`fill` replaces by ids.
    """

    USER_NAMES = ("ada@acme.test", "Bob@Acme.test", "carol@acme.test", "dave@acme.test")
    GROUP_NAMES = ("Engineering", "Sales", "Everyone")

    def __init__(self, middleware: SSOMiddleware) -> None:
        self.middleware = middleware
        self.engine = middleware.database.engine
        self.acme = Tenant(middleware, "acme")
        self.beta = Tenant(middleware, "beta")
        self.users = [
            self.acme.create("Users", full_user(name, externalId=f"ext-{i}"))
            for i, name in enumerate(self.USER_NAMES)
        ]
        gone = self.acme.create("Users", okta_user("gone@acme.test"))
        assert self.acme.request("DELETE", f"/Users/{gone['id']}").status_int == 204
        self.deleted_user_id = gone["id"]
        ids = [u["id"] for u in self.users]
        self.groups = [
            self.acme.create(
                "Groups", {"displayName": name, "members": [{"value": i} for i in ids[: 3 - n]]}
            )
            for n, name in enumerate(self.GROUP_NAMES)
        ]
        self.beta_user = self.beta.create("Users", full_user("ada@acme.test", externalId="ext-0"))
        self.beta_group = self.beta.create(
            "Groups", {"displayName": "Engineering", "members": [{"value": self.beta_user["id"]}]}
        )
        self.placeholders = {
            **{f"{{{{u{i}}}}}": user["id"] for i, user in enumerate(self.users)},
            **{f"{{{{g{i}}}}}": group["id"] for i, group in enumerate(self.groups)},
            "{{deleted_user}}": self.deleted_user_id,
            "{{beta_user}}": self.beta_user["id"],
            "{{beta_group}}": self.beta_group["id"],
            "{{unknown}}": str(uuid.UUID(int=7)),
        }

    def fill(self, value: str) -> str:
        for marker, replacement in self.placeholders.items():
            value = value.replace(marker, replacement)
        return value

    def fill_body(self, body: Any) -> bytes:
        # ensure_ascii: a lone surrogate goes out as its \ud800 escape, as a client may send it
        return self.fill(json.dumps(body)).encode()

    # -- the store, read without the app --------------------------------------------------

    def sql(self, statement: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(statement), params))

    def check_invariants(self) -> None:
        """What every committed state must satisfy, whatever requests came before."""
        seen: dict[tuple[int, str], str] = {}
        for workspace_id, member_id, user_name, key in self.sql(
            "SELECT workspace_id, id, user_name, user_name_key FROM members"
            " WHERE deleted_at IS NULL"
        ):
            # The stored key is the name's comparison key (NFKC, case-folded: '²' is '2').
            assert key == names.key(user_name), (user_name, key)
            other = seen.setdefault((workspace_id, key), member_id)
            assert other == member_id, f"two live members named {user_name!r} in one workspace"
        dangling = self.sql(
            "SELECT ms.group_id, ms.member_id FROM memberships ms"
            " LEFT JOIN groups g ON g.id = ms.group_id"
            " LEFT JOIN members m ON m.id = ms.member_id"
            " WHERE g.id IS NULL OR m.id IS NULL OR m.deleted_at IS NOT NULL"
            " OR g.workspace_id <> m.workspace_id"
        )
        assert not dangling, f"memberships of missing, deleted or foreign rows: {dangling}"
        for key, group_name in self.sql("SELECT display_name_key, display_name FROM groups"):
            assert key == group_name.lower(), (group_name, key)
        duplicates = self.sql(
            "SELECT workspace_id, display_name_key FROM groups"
            " GROUP BY workspace_id, display_name_key HAVING count(*) > 1"
        )
        assert not duplicates, duplicates

    def audit_events(self, target_id: str) -> int:
        return int(
            self.sql("SELECT count(*) FROM audit_events WHERE target_id = :t", t=target_id)[0][0]
        )

    def live_members(self, workspace_id: int) -> int:
        return int(
            self.sql(
                "SELECT count(*) FROM members WHERE workspace_id = :w AND deleted_at IS NULL",
                w=workspace_id,
            )[0][0]
        )

    def group_count(self, workspace_id: int) -> int:
        return int(
            self.sql("SELECT count(*) FROM groups WHERE workspace_id = :w", w=workspace_id)[0][0]
        )


def new_middleware(database_url: str, **options: Any) -> SSOMiddleware:
    return SSOMiddleware(
        host_app,
        database_url=database_url,
        secret_key="test-secret-padded-to-thirty-two-bytes-at-least",
        base_url="https://tracker.example.com",
        **options,
    )
