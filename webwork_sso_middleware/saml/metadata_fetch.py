"""Fetching IdP metadata from its URL: https only (plain http on loopback), with a timeout, a
size cap and checked redirects. Stdlib only; :mod:`.metadata` re-exports these names.
"""

from __future__ import annotations

import codecs
import http.client
import ipaddress
import re
import ssl
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from ..errors import MetadataError

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 5

_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][\w.-]*)["']""")


def is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> None:
    """Refuse what we will not fetch: anything but https, and plain http beyond loopback."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        raise MetadataError(f"{url!r} is not a URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise MetadataError(f"{url!r} is not an https URL")
    if scheme == "http" and not is_loopback(host):
        # Keys come from the metadata: over plain http anyone on the path could swap them.
        raise MetadataError(
            f"{_shown(url)} uses plain http; a metadata URL must be https"
            " (http is accepted only for localhost)"
        )


def _shown(url: str) -> str:
    """The URL as it is safe to print: without any user:password."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        netloc = parts.hostname or ""
        return urlunsplit(parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc))
    except ValueError:
        return repr(url)


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a few redirects, each to a URL we would have fetched in the first place."""

    max_redirections = MAX_REDIRECTS

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        location = headers.get("location") or headers.get("uri")
        if location:
            try:
                check_url(urljoin(req.full_url, location))
            except MetadataError as error:
                fp.close()
                raise MetadataError(
                    f"{_shown(req.full_url)} redirected to a URL that is refused: {error.reason}"
                ) from None
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _opener(url: str) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [
        _CheckedRedirects(),
        urllib.request.HTTPSHandler(context=ssl.create_default_context()),
    ]
    if is_loopback(urlsplit(url).hostname or ""):
        handlers.append(urllib.request.ProxyHandler({}))  # a proxy can't reach our loopback
    return urllib.request.build_opener(*handlers)


def fetch(url: str, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """GET the metadata at ``url`` and return it as text; :class:`MetadataError` on any failure.

    ``timeout`` bounds each network wait and, roughly, the whole download; at most
    ``max_bytes`` are read.
    """
    url = url.strip()
    check_url(url)
    shown = _shown(url)
    request = urllib.request.Request(url, headers={
        "Accept": "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1",
        "User-Agent": "webwork-sso-middleware (SAML metadata refresh)",
    })
    deadline = time.monotonic() + timeout
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            if response.status != 200:
                raise MetadataError(f"{shown} answered HTTP {response.status}, not 200")
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise MetadataError(
                    f"{shown} announced {int(length)} bytes, more than the limit of {max_bytes}"
                )
            body = _read_capped(response, max_bytes, deadline, timeout, shown)
    except MetadataError:
        raise
    except urllib.error.HTTPError as error:
        raise MetadataError(f"{shown} answered HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise MetadataError(f"{shown} did not answer within {timeout:g} seconds") from None
        raise MetadataError(f"cannot fetch {shown}: {error.reason}") from None
    except TimeoutError:
        raise MetadataError(f"{shown} did not answer within {timeout:g} seconds") from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise MetadataError(f"cannot fetch {shown}: {error or type(error).__name__}") from None
    return decode_document(body)


def _read_capped(response: Any, max_bytes: int, deadline: float, timeout: float,
                 shown: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        # read1 returns after one socket read, so a server dripping bytes meets the deadline.
        chunk = response.read1(min(65536, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise MetadataError(f"{shown} sent more than the limit of {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise MetadataError(f"{shown} did not send its metadata within {timeout:g} seconds")


def decode_document(raw: bytes) -> str:
    """XML bytes as text: a byte-order mark, else the XML declaration's encoding, else UTF-8."""
    if raw.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        declared = _DECLARED_ENCODING.match(raw)
        encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        return raw.decode(encoding)
    except LookupError:
        raise MetadataError(f"the XML declares an unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as error:
        raise MetadataError(
            f"the metadata is not valid {encoding} text (bad byte at offset {error.start})"
        ) from None
