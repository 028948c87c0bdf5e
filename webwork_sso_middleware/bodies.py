"""Request bodies within the site's limit (``max_body_bytes``), however they are sent.

With a Content-Length past the limit werkzeug refuses the body before reading it. Without one
(chunked transfer encoding) it reads up to the limit and stops *without an error*, so a cut
body would pass for a whole one: a truncated SAMLResponse, form or JSON document. Reading one
byte more than allowed tells the two apart.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

# Imported for its side effect: it registers the "werkzeug.url_quote" codec error handler.
from werkzeug import urls as _urls  # noqa: F401
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request


def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, kept on the request; ``RequestEntityTooLarge`` past ``max_bytes``."""
    request.max_content_length = max_bytes + 1
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise RequestEntityTooLarge(f"the request body is larger than {max_bytes} bytes")
    return raw


def read_form(request: Request, max_bytes: int) -> MultiDict[str, str]:
    """The form fields of a body within ``max_bytes``; ``RequestEntityTooLarge`` past it.

    One field may fill the whole limit (a pasted metadata document, a SAMLResponse): werkzeug's
    own cap on a field (500 kB) is raised to it.
    """
    raw = read_body(request, max_bytes)  # parsed below from the kept bytes, not the stream
    request.max_form_memory_size = max_bytes  # for request.form, should a caller read it too
    if request.mimetype != "application/x-www-form-urlencoded":
        return request.form  # multipart (or no form at all): werkzeug's parser
    # The sign-in POST (a SAMLResponse) is urlencoded: parsed here with the very call werkzeug's
    # form parser makes (same result), without the parser, stream wrapper and limits it builds
    # around it on every request. A body that is not UTF-8 is no form, as there.
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return ImmutableMultiDict()
    return ImmutableMultiDict(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))
