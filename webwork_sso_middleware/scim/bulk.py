"""``POST /Bulk`` (RFC 7644 section 3.7): many resource operations in one request.

Decisions, deliberately:

* **Each operation is a request of its own.** It is built as one (method, path, JSON body,
  ``If-Match`` from its ``version``, the bulk request's token and host) and goes through the
  app's ``perform``: its own transaction, its own token check, the very endpoint a single
  request reaches. So every rule holds per operation exactly as for single requests (tenant
  isolation, verified domains, version bumps, audit records, lifecycle events), and a failed
  operation rolls back alone: bulk is not atomic (RFC 7644 3.7), an earlier success stays.
* **The bulk request itself** is checked like any: its token once, before its body is read (a
  wrong token is one failure for the token-guessing throttle); then the payload against
  ``maxPayloadSize`` and the operations against ``maxOperations``, both 413 as RFC 7644 3.7.4
  shows (the RFC's table of scimTypes has none for it). A malformed request as a whole is 400
  and runs nothing; a malformed operation fails alone.
* **bulkId references** (``bulkId:<id>``) are resolved in an operation's path segments and in
  any string under a ``value`` key of its data (a group's ``members[].value``, a manager's
  ``value``, a PATCH operation's ``value``): not in other strings, so a displayName that reads
  "bulkId:x" stays as written. An operation that refers to a later POST's bulkId waits for it
  (forward references work); operations waiting on each other are a cycle, answered 409 (the
  RFC allows a server to stop there), as is a reference to a bulkId no POST declares or whose
  POST failed. A bulkId declared twice makes the whole request 400.
* **failOnErrors** (an integer of at least 1): processing stops once that many operations have
  failed; the operations not run are left out of the response (RFC 7644 3.7.3). An operation
  answered 503 (the store unavailable) stops processing too, whatever failOnErrors says: the
  next ones would each wait out the busy timeout only to fail alike.
* Each operation's entry carries ``method``, ``bulkId`` (when given), ``location`` and
  ``version`` (when known) and ``status`` as a string; ``response`` only for a failure, the
  SCIM error (RFC: a success MAY omit it, and omitting keeps a 1,000-operation answer small).
  Entries are in the order of the request.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote, unquote

from werkzeug.wrappers import Request

from .context import Reply
from .errors import ScimError, invalid_syntax, invalid_value
from .parameters import read_json
from .paths import lowered_keys

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
MAX_OPERATIONS = 1000  # RFC 7644's own example figure; maxPayloadSize is the body limit
METHODS = ("POST", "PUT", "PATCH", "DELETE")
# The endpoints an operation may reach: writes to Users and Groups, nothing else.
WRITES = frozenset(
    f"{verb}_{kind}"
    for verb in ("create", "replace", "patch", "delete")
    for kind in ("user", "group")
)
REFERENCE = "bulkId:"
# How deep in an operation's data references are looked for: a User's, Group's or PATCH
# body's "value" lies within five levels; deeper data is passed on as it is (and the
# endpoint judges it), so a hostile nesting costs no recursion here.
REFERENCE_DEPTH = 8
# Request headers an operation must not inherit from the bulk request.
NOT_INHERITED = (
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_CONTENT_ENCODING",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "QUERY_STRING",
)


@dataclasses.dataclass(frozen=True)
class BulkLimits:
    """What ServiceProviderConfig announces under ``bulk``, and what is enforced."""

    max_operations: int
    max_payload_size: int


class BulkTarget(Protocol):
    """What bulk needs of the SCIM app: routing, running one endpoint, errors, the URL base."""

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]]: ...

    def perform(self, request: Request, endpoint: str, args: Mapping[str, str]) -> Reply: ...

    @staticmethod
    def error_for(exc: Exception, request: Request) -> ScimError: ...

    def scim_base(self, request: Request) -> str: ...


@dataclasses.dataclass
class Operation:
    index: int
    method: str | None
    path: str | None
    bulk_id: str | None
    version: str | None
    data: Any
    problem: ScimError | None = None  # malformed: fails without running
    references: frozenset[str] = frozenset()


def process(request: Request, target: BulkTarget, limits: BulkLimits) -> Reply:
    operations, fail_on_errors = parse(read_request(request, limits), limits)
    declared: dict[str, int] = {}
    for op in operations:
        if op.method == "POST" and op.bulk_id is not None and op.problem is None:
            if op.bulk_id in declared:
                raise invalid_value(f"bulkId {op.bulk_id!r} is declared by more than one POST")
            declared[op.bulk_id] = op.index
    run = _Run(request, target, declared)
    pending = list(operations)
    while pending and run.errors < fail_on_errors and not run.unavailable:
        # The first operation (in request order) that waits for no pending POST runs next.
        ready = next((op for op in pending if not run.waits(op)), None)
        if ready is None:  # every one left waits for another: a cycle
            ready = pending[0]
            run.fail(
                ready, _conflict(f"circular bulkId references: {_refs(ready)} wait on each other")
            )
        else:
            run.execute(ready)
        pending.remove(ready)
    entries = [run.entries[op.index] for op in operations if op.index in run.entries]
    return 200, {"schemas": [BULK_RESPONSE], "Operations": entries}, {}


def read_request(request: Request, limits: BulkLimits) -> Any:
    """The bulk request's JSON; 413 past maxPayloadSize, 400 invalidSyntax when not JSON."""
    try:
        return read_json(request, limits.max_payload_size)
    except ScimError as error:
        if error.status != 413:
            raise
        raise ScimError(
            413, f"the bulk request is larger than maxPayloadSize ({limits.max_payload_size} bytes)"
        ) from None


def parse(body: Any, limits: BulkLimits) -> tuple[list[Operation], float]:
    """The operations and failOnErrors (infinity when not given) of a BulkRequest."""
    if not isinstance(body, dict):
        raise invalid_syntax("a bulk request must be a JSON object")
    fields = lowered_keys(body)
    schemas = fields.get("schemas")
    if schemas is not None and BULK_REQUEST not in (schemas if isinstance(schemas, list) else []):
        raise invalid_syntax(f"a bulk request must have the schema {BULK_REQUEST}")
    raw_operations = fields.get("operations")
    if not isinstance(raw_operations, list):
        raise invalid_syntax("a bulk request needs Operations, a list")
    if len(raw_operations) > limits.max_operations:
        raise ScimError(
            413,
            f"the bulk request has {len(raw_operations)} operations, more than maxOperations"
            f" ({limits.max_operations})",
        )
    fail_on_errors: float = float("inf")
    raw_limit = fields.get("failonerrors")
    if raw_limit is not None:
        if isinstance(raw_limit, bool) or not isinstance(raw_limit, int) or raw_limit < 1:
            raise invalid_value("failOnErrors must be an integer of at least 1")
        fail_on_errors = raw_limit
    return [_operation(i, raw) for i, raw in enumerate(raw_operations)], fail_on_errors


def _operation(index: int, raw: Any) -> Operation:
    if not isinstance(raw, dict):
        op = Operation(index, None, None, None, None, None)
        op.problem = invalid_syntax("an operation must be a JSON object")
        return op
    fields = lowered_keys(raw)
    method, path, bulk_id, version = (
        fields.get(name) for name in ("method", "path", "bulkid", "version")
    )
    op = Operation(
        index,
        method.upper() if isinstance(method, str) else None,
        path if isinstance(path, str) else None,
        bulk_id if isinstance(bulk_id, str) else None,
        version if isinstance(version, str) else None,
        fields.get("data"),
    )
    if op.method not in METHODS:
        op.problem = invalid_value("an operation's method must be POST, PUT, PATCH or DELETE")
    elif op.path is None or not op.path.startswith("/"):
        op.problem = invalid_value("an operation needs a path such as /Users or /Users/<id>")
    elif bulk_id is not None and (op.bulk_id is None or not op.bulk_id):
        op.problem = invalid_value("bulkId must be a non-empty string")
    elif op.method == "POST" and op.bulk_id is None:
        op.problem = invalid_syntax("a POST operation needs a bulkId (RFC 7644 3.7)")
    elif version is not None and op.version is None:
        op.problem = invalid_value("version must be a string (an ETag)")
    elif op.method != "DELETE" and op.data is None:
        op.problem = invalid_syntax(f"a {op.method} operation needs data")
    else:
        op.references = frozenset(_path_references(op.path) + _data_references(op.data))
    return op


def _path_references(path: str | None) -> list[str]:
    segments = (path or "").split("/")
    return [s[len(REFERENCE) :] for s in segments if s.startswith(REFERENCE)]


def _data_references(data: Any, under_value: bool = False, depth: int = 0) -> list[str]:
    if depth > REFERENCE_DEPTH:
        return []
    if isinstance(data, dict):
        return [
            ref
            for key, item in data.items()
            for ref in _data_references(item, str(key).lower() == "value", depth + 1)
        ]
    if isinstance(data, list):
        return [ref for item in data for ref in _data_references(item, under_value, depth + 1)]
    if under_value and isinstance(data, str) and data.startswith(REFERENCE):
        return [data[len(REFERENCE) :]]
    return []


def _refs(op: Operation) -> str:
    return ", ".join(f"{REFERENCE}{ref}" for ref in sorted(op.references))


def _conflict(detail: str) -> ScimError:
    return ScimError(409, detail, "invalidValue")


class _Run:
    """The state of one bulk request's processing: resolved bulkIds and the entries so far."""

    def __init__(self, request: Request, target: BulkTarget, declared: dict[str, int]) -> None:
        self.request = request
        self.target = target
        self.declared = declared
        self.base = target.scim_base(request)
        self.resolved: dict[str, str] = {}  # bulkId -> the id its POST created
        self.entries: dict[int, dict[str, Any]] = {}
        self.errors = 0
        self.unavailable = False  # an operation found the store unavailable: stop there

    def waits(self, op: Operation) -> bool:
        """Whether ``op`` refers to a bulkId whose POST (another operation) has not run yet."""
        return any(
            self.declared.get(ref, op.index) != op.index and self.declared[ref] not in self.entries
            for ref in op.references
        )

    def fail(self, op: Operation, error: ScimError, location: str | None = None) -> None:
        self.errors += 1
        self.unavailable = self.unavailable or error.status == 503
        self.entries[op.index] = self._entry(op, str(error.status), location)
        self.entries[op.index]["response"] = error.to_scim()

    def execute(self, op: Operation) -> None:
        if op.problem is not None:
            self.fail(op, op.problem)
            return
        assert op.method is not None and op.path is not None
        try:
            path = "/".join(self._resolve(s, op) for s in unquote(op.path).split("/"))
            data = self._substitute(op.data, op, under_value=False)
        except ScimError as error:
            self.fail(op, error)
            return
        try:
            sub = self._request(op.method, path, data, op.version)
        except RecursionError:  # it parsed, but nested too deep to write back: refused alone
            self.fail(op, invalid_syntax("the operation's data is nested too deeply"))
            return
        location = None  # of the resource an operation on one names, once routed
        try:
            endpoint, args = self.target.route(op.method, path)
            if endpoint not in WRITES:
                raise invalid_value(
                    "a bulk operation creates, replaces, modifies or deletes one User or Group;"
                    f" {op.method} {op.path} is not one"
                )
            if op.method != "POST":
                location = self.base + quote(path)
            status, body, headers = self.target.perform(sub, endpoint, args)
        except Exception as exc:  # noqa: BLE001 - this operation's alone; error_for logs bugs
            self.fail(op, self.target.error_for(exc, sub), location)
            return
        if op.method == "POST" and op.bulk_id is not None and isinstance(body, dict):
            self.resolved[op.bulk_id] = body["id"]
        entry = self._entry(op, str(status), headers.get("Location", location))
        if "ETag" in headers:
            entry["version"] = headers["ETag"]
        self.entries[op.index] = entry

    def _entry(self, op: Operation, status: str, location: str | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"method": op.method} if op.method else {}
        if op.bulk_id is not None:
            entry["bulkId"] = op.bulk_id
        if location is not None:
            entry["location"] = location
        entry["status"] = status
        return entry

    def _resolve(self, text: str, op: Operation) -> str:
        """``text`` itself, or the id a ``bulkId:<id>`` reference stands for."""
        if not text.startswith(REFERENCE):
            return text
        ref = text[len(REFERENCE) :]
        if ref in self.resolved:
            return self.resolved[ref]
        if ref not in self.declared:
            raise _conflict(f"{text} names no POST operation of this bulk request")
        if self.declared[ref] == op.index:
            raise _conflict(f"circular bulkId reference: the operation refers to its own {text}")
        raise _conflict(f"{text} cannot be resolved: the operation that creates it failed")

    def _substitute(self, data: Any, op: Operation, *, under_value: bool, depth: int = 0) -> Any:
        if depth > REFERENCE_DEPTH:
            return data
        if isinstance(data, dict):
            return {
                key: self._substitute(
                    item, op, under_value=str(key).lower() == "value", depth=depth + 1
                )
                for key, item in data.items()
            }
        if isinstance(data, list):
            return [
                self._substitute(item, op, under_value=under_value, depth=depth + 1)
                for item in data
            ]
        if under_value and isinstance(data, str):
            return self._resolve(data, op)
        return data

    def _request(self, method: str, path: str, data: Any, version: str | None) -> Request:
        """The operation as a request of its own: the bulk request's token, host and client,
        this operation's method, path, body and If-Match."""
        outer = self.request.environ
        environ = {
            key: value
            for key, value in outer.items()
            if key not in NOT_INHERITED and not key.startswith("werkzeug.")
        }
        body = b"" if data is None else json.dumps(data).encode()
        environ.update(
            {
                "REQUEST_METHOD": method,
                "PATH_INFO": path,
                "QUERY_STRING": "",
                "CONTENT_TYPE": "application/scim+json",
                "CONTENT_LENGTH": str(len(body)),
                "wsgi.input": io.BytesIO(body),
                "wsgi.input_terminated": False,
            }
        )
        if version is not None:
            environ["HTTP_IF_MATCH"] = version
        return Request(environ)
