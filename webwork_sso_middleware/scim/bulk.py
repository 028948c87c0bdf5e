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
* **bulkId references** (``bulkId:<id>``) are resolved only where a resource's id belongs
  (bulk_references.py: path segments, members' and a manager's ``value``, members filters),
  so a displayName that reads "bulkId:x" stays as written; an operation's path is JSON text,
  never percent-decoded. An operation that refers to a later POST's bulkId waits for it
  (forward references work; bulk_order.py orders them in linear time); operations left
  waiting on each other, directly or not, are a cycle, each answered 409 (the RFC allows a
  server to stop there), as is a reference to a bulkId no POST declares or whose POST
  failed. A bulkId declared twice, or one that is not Unicode text (a lone surrogate cannot
  be echoed back), makes the whole request 400 before anything runs.
* **failOnErrors** (an integer of at least 1): processing stops once that many operations have
  failed; the operations not run are left out of the response (RFC 7644 3.7.3). An operation
  answered 503 (the store unavailable), 401 or 403 (the token revoked, SCIM switched off or
  the plan changed meanwhile) stops processing too, whatever failOnErrors says: the next
  ones would each fail alike.
* **Every failure is one operation's**: refused before it runs or by its endpoint, each is
  logged as error_for logs a refused write (``scim.write_refused``), and an error of ours
  while running one is that operation's 500 (logged with its traceback): the entries of the
  operations already run are still answered.
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
from urllib.parse import quote

from werkzeug.wrappers import Request

from .bulk_order import Order
from .bulk_references import REFERENCE, Place, path_references, places, resolve_path
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
# An operation's answer that every later one would get too: the store is unavailable, or the
# token (revoked, rotated) or the workspace (SCIM off, plan changed) no longer allows writes.
STOPS = frozenset({401, 403, 503})
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
    places: list[Place] = dataclasses.field(default_factory=list)  # in its data
    references: frozenset[str] = frozenset()


def process(request: Request, target: BulkTarget, limits: BulkLimits) -> Reply:
    operations, fail_on_errors = parse(read_request(request, limits), limits)
    declared: dict[str, int] = {}
    for op in operations:  # all whole-request checks come before any operation runs
        if op.bulk_id is not None and not _is_text(op.bulk_id):
            raise invalid_value(f"operation {op.index + 1}'s bulkId is not Unicode text")
        if op.method == "POST" and op.bulk_id is not None and op.problem is None:
            if op.bulk_id in declared:
                raise invalid_value(f"bulkId {op.bulk_id!r} is declared by more than one POST")
            declared[op.bulk_id] = op.index
    run = _Run(request, target, declared)
    order = Order([op.references for op in operations], declared)
    while run.errors < fail_on_errors and not run.stopped:
        index = order.next()
        if index is None:
            break
        op = operations[index]
        try:
            run.execute(op)
        except Exception as exc:  # noqa: BLE001 - a bug of ours fails this operation alone
            run.fail(op, exc)
        order.ran(index)
    for index in order.stuck():  # never ready: each in, or waiting on, a cycle
        if run.errors >= fail_on_errors or run.stopped:
            break
        op = operations[index]
        run.fail(
            op,
            _conflict(
                f"circular bulkId references: the operation waits for {_refs(op)}, which"
                " are never resolved: their operations are in, or wait on, a cycle of"
                " operations that wait for each other"
            ),
        )
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
    # More distinct references than the job has operations cannot all name one of its POSTs.
    most = len(raw_operations)
    return [_operation(i, raw, most) for i, raw in enumerate(raw_operations)], fail_on_errors


def _operation(index: int, raw: Any, most_references: int) -> Operation:
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
    elif not _is_text(op.path):
        op.problem = invalid_value("an operation's path is not Unicode text")
    elif bulk_id is not None and (op.bulk_id is None or not op.bulk_id):
        op.problem = invalid_value("bulkId must be a non-empty string")
    elif op.method == "POST" and op.bulk_id is None:
        op.problem = invalid_syntax("a POST operation needs a bulkId (RFC 7644 3.7)")
    elif version is not None and (op.version is None or not op.version.isascii()):
        op.problem = invalid_value("version must be a string (an ETag)")  # ETags are ASCII
    elif op.method != "DELETE" and op.data is None:
        op.problem = invalid_syntax(f"a {op.method} operation needs data")
    else:
        op.places = places(op.method, op.path, op.data)
        references = {*path_references(op.path)}
        for place in op.places:
            references.update(place.references())
        if len(references) > most_references:
            op.problem = invalid_value(
                f"the operation holds {len(references)} distinct bulkId references, more than"
                " the request has operations: they cannot all be resolved"
            )
        else:
            op.references = frozenset(references)
    return op


def _is_text(text: str) -> bool:
    """Whether ``text`` encodes to UTF-8: JSON's "\\ud800" decodes to a lone surrogate,
    which no response, log line or database can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(text: str) -> str:
    """``text`` for an error detail: lone surrogates escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _refs(op: Operation) -> str:
    return _shown(", ".join(f"{REFERENCE}{ref}" for ref in sorted(op.references)))


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
        self.stopped = False  # an answer every later operation would get too (STOPS)

    def fail(
        self,
        op: Operation,
        exc: Exception,
        sub: Request | None = None,
        location: str | None = None,
    ) -> None:
        """``op``'s failure, answered and logged by error_for as a single request's: as
        ``sub`` (the operation's request) or, refused before that was built, as sent."""
        error = self.target.error_for(exc, sub or self._as_sent(op))
        self.errors += 1
        self.stopped = self.stopped or error.status in STOPS
        self.entries[op.index] = self._entry(op, str(error.status), location)
        self.entries[op.index]["response"] = error.to_scim()

    def execute(self, op: Operation) -> None:
        if op.problem is not None:
            self.fail(op, op.problem)
            return
        assert op.method is not None and op.path is not None
        try:
            path = resolve_path(op.path, lambda text: self._resolve(text, op))
            for place in op.places:
                place.resolve(lambda text: self._resolve(text, op))
            sub = self._request(op.method, path, op.data, op.version)
        except ScimError as error:
            self.fail(op, error)
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
            self.fail(op, exc, sub, location)
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
        """The id a ``bulkId:<id>`` reference stands for."""
        ref = text[len(REFERENCE) :]
        if ref in self.resolved:
            return self.resolved[ref]
        if ref not in self.declared:
            raise _conflict(f"{_shown(text)} names no POST operation of this bulk request")
        if self.declared[ref] == op.index:
            raise _conflict(f"circular bulkId reference: the operation refers to its own {text}")
        raise _conflict(f"{text} cannot be resolved: the operation that creates it failed")

    def _as_sent(self, op: Operation) -> Request:
        """A stand-in for an operation refused before its request was built, for the log:
        its method and path when it has usable ones, else the bulk request's own."""
        method = op.method if op.method in METHODS else self.request.method
        usable = op.path is not None and op.path.startswith("/") and _is_text(op.path)
        return self._request(method, op.path if usable and op.path else "/Bulk", None, None)

    def _request(self, method: str, path: str, data: Any, version: str | None) -> Request:
        """The operation as a request of its own: the bulk request's token, host and client,
        this operation's method, path, body and If-Match."""
        outer = self.request.environ
        environ = {
            key: value
            for key, value in outer.items()
            if key not in NOT_INHERITED and not key.startswith("werkzeug.")
        }
        try:
            # Compact and not ASCII-escaped: a body within the bulk request's limit stays
            # within the single request's.
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            body = b"" if data is None else text.encode("utf-8")
        except RecursionError:  # it parsed, but nested too deep to write back: refused alone
            raise invalid_syntax("the operation's data is nested too deeply") from None
        except UnicodeEncodeError:
            raise invalid_value("the operation's data holds text that is not Unicode") from None
        environ.update(
            {
                "REQUEST_METHOD": method,
                # WSGI's PATH_INFO is the path's UTF-8 bytes as latin-1 (PEP 3333), as a
                # server would give it: werkzeug decodes it back.
                "PATH_INFO": path.encode("utf-8").decode("latin-1"),
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
