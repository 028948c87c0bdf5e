"""Request bodies within max_body_bytes, with and without Content-Length."""

from __future__ import annotations

import io

import pytest
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from webwork_sso_middleware.bodies import read_body, read_form

LIMIT = 1000


def request(body: bytes, *, chunked: bool = False) -> Request:
    environ = EnvironBuilder(
        method="POST", data=body, content_type="application/x-www-form-urlencoded"
    ).get_environ()
    if chunked:  # what a server hands over for Transfer-Encoding: chunked
        del environ["CONTENT_LENGTH"]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["wsgi.input_terminated"] = True
    return Request(environ)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_at_the_limit_is_read_whole(chunked: bool) -> None:
    body = b"a=" + b"x" * (LIMIT - 2)
    assert read_body(request(body, chunked=chunked), LIMIT) == body
    assert read_form(request(body, chunked=chunked), LIMIT)["a"] == "x" * (LIMIT - 2)


@pytest.mark.parametrize("chunked", [False, True])
def test_one_byte_more_is_refused_not_cut(chunked: bool) -> None:
    body = b"a=" + b"x" * (LIMIT - 1)
    with pytest.raises(RequestEntityTooLarge):
        read_body(request(body, chunked=chunked), LIMIT)
    with pytest.raises(RequestEntityTooLarge):
        read_form(request(body, chunked=chunked), LIMIT)


def test_one_field_may_fill_the_whole_limit() -> None:
    big = 2 * 1024 * 1024  # past werkzeug's own 500 kB cap on a form field
    form = read_form(request(b"SAMLResponse=" + b"A" * big, chunked=True), big + 100)
    assert len(form["SAMLResponse"]) == big


@pytest.mark.parametrize(
    "body",
    [
        b"SAMLResponse=PHNhbWxw%2BOlJl%2Fc3Bv%3D%3D&RelayState=%2Fafter%3Fx%3D1",
        b"a=1&a=2&b=&c&=d&&e=x+y%20z",  # repeats, blanks, no "=", empty name
        b"a=%ff%fe&b=%zz&c=%e2%82%ac",  # escapes that are not UTF-8, a bad escape, a euro
        "a=\u00e9t\u00e9".encode(),  # raw UTF-8
        b"a=\xff\xfe",  # a raw body that is not UTF-8: no form at all
        b"",
    ],
)
def test_an_urlencoded_form_reads_as_werkzeug_reads_it(body: bytes) -> None:
    ours = read_form(request(body), LIMIT)
    theirs = request(body).form
    assert list(ours.items(multi=True)) == list(theirs.items(multi=True))


def test_a_multipart_form_is_still_read() -> None:
    environ = EnvironBuilder(
        method="POST", data={"a": "x", "f": (io.BytesIO(b"data"), "f.txt")}
    ).get_environ()
    assert read_form(Request(environ), LIMIT)["a"] == "x"
