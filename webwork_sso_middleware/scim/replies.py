"""A SCIM reply as a WSGI app: its status, JSON body and headers, sent as they are.

werkzeug's Response is a general tool (header objects, a Location made a URI, charset rules,
conditional and range requests) and cost about a fifteenth of the CPU of a SCIM create, the
request a directory sync sends most; a SCIM reply needs none of it. Anything out of the common
way (no body, a header value that is not plain ASCII or holds a line break, a Location that
werkzeug would still quote) goes through werkzeug's Response, which knows how to send or
refuse it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

SCIM_CONTENT_TYPE = "application/scim+json; charset=utf-8"
# Made once: json.dumps with any option builds a new encoder per call.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# What werkzeug's iri_to_uri leaves as it is in a Location: such a URL is sent unchanged.
_URI_AS_IS = re.compile(r"[A-Za-z0-9\-._~/:?#\[\]@!$&'()*+,;=%]*\Z")


class JsonReply:
    """A SCIM JSON reply: ``status_code`` for whoever counts it; called, it is sent."""

    __slots__ = ("status_code", "_status", "_headers", "_payload")

    def __init__(self, status_code: int, payload: bytes, headers: Mapping[str, str]) -> None:
        self.status_code = status_code
        self._status = f"{status_code} {HTTP_STATUS_CODES.get(status_code, 'Unknown').upper()}"
        self._headers = [
            *headers.items(),
            ("Content-Type", SCIM_CONTENT_TYPE),
            ("Content-Length", str(len(payload))),
        ]
        self._payload = payload

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(self._status, self._headers)
        # HEAD is routed as GET: the headers of the GET, no body (as werkzeug sends it).
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [self._payload]


def json_reply(status: int, body: Any, headers: Mapping[str, str]) -> JsonReply | Response:
    """The reply to send: ``body`` as JSON (None: no body, as for 204 and 304)."""
    if body is None:
        response = Response(status=status, headers=dict(headers))
        del response.headers["Content-Type"]  # 204 and 304 carry no body to describe
        return response
    payload = _COMPACT.encode(body).encode("utf-8")
    if all(_sent_as_is(name, value) for name, value in headers.items()):
        return JsonReply(status, payload, headers)
    return Response(payload, status=status, headers=dict(headers), content_type=SCIM_CONTENT_TYPE)


def _sent_as_is(name: str, value: str) -> bool:
    if name.lower() == "location":
        return _URI_AS_IS.match(value) is not None
    return value.isascii() and value.isprintable()
