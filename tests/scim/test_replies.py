"""scim/replies.py: a SCIM reply sent as werkzeug's Response would send it, without its cost."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app
from werkzeug.wrappers import Response

from webwork_sso_middleware.scim.replies import SCIM_CONTENT_TYPE, JsonReply, json_reply

BODY = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "zoë@acme.test"}
LOCATION = "https://sso.example.com/scim/v2/Users/0d6c1b5e-8f1e-4bd4-9d7a-2f4f1f0c7a11"


def sent(app: Any, method: str = "GET") -> tuple[str, list[tuple[str, str]], bytes]:
    environ = EnvironBuilder(path="/scim/v2/Users", method=method).get_environ()
    body, status, headers = run_wsgi_app(app, environ)
    return status, list(headers.items()), b"".join(body)


def werkzeugs(status: int, body: Any, headers: dict[str, str], method: str = "GET") -> Any:
    import json

    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return sent(
        Response(payload, status=status, headers=headers, content_type=SCIM_CONTENT_TYPE), method
    )


@pytest.mark.parametrize(
    "status, headers",
    [
        (201, {"Location": LOCATION, "ETag": 'W/"1"'}),
        (200, {"ETag": 'W/"7"'}),
        (401, {"WWW-Authenticate": 'Bearer realm="SCIM"'}),
        (429, {"Retry-After": "30"}),
        (599, {}),  # a status without a name: as werkzeug says it
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_reply_is_sent_as_werkzeug_sends_it(
    status: int, headers: dict[str, str], method: str
) -> None:
    reply = json_reply(status, BODY, headers)
    assert isinstance(reply, JsonReply) and reply.status_code == status
    assert sent(reply, method) == werkzeugs(status, BODY, headers, method)
    if method == "HEAD":  # the GET's headers, its length included, and no body
        assert sent(reply, method)[2] == b""
        assert ("Content-Length", str(len(sent(reply)[2]))) in sent(reply, method)[1]


@pytest.mark.parametrize(
    "location",
    [
        "https://sso.example.com/scim/v2/Users/a b",  # werkzeug quotes the space
        "https://sso.exämple.com/scim/v2/Users/1",  # and makes a name of non-ASCII
    ],
)
def test_a_location_werkzeug_would_change_goes_through_werkzeug(location: str) -> None:
    reply = json_reply(201, BODY, {"Location": location})
    assert isinstance(reply, Response)
    assert sent(reply) == werkzeugs(201, BODY, {"Location": location})
    assert dict(sent(reply)[1])["Location"] != location


def test_a_header_with_a_line_break_is_refused_not_sent() -> None:
    with pytest.raises(ValueError):
        json_reply(200, BODY, {"ETag": 'W/"1"\r\nSet-Cookie: x=1'})


def test_no_body_means_no_content_type() -> None:
    status, headers, body = sent(json_reply(204, None, {}))
    assert status == "204 NO CONTENT" and body == b""
    assert "Content-Type" not in dict(headers)
