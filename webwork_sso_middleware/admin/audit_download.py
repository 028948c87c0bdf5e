"""``GET /saml/<slug>/settings?download=audit-log&format=jsonl|csv[&since=DATE]``: the
workspace's audit log as a file, for the owner (the settings page's own access check, in
views.py, comes first).

The workspace is the one the access check let in, by id: nothing in the query can name
another. The body is streamed (audit_export.py): a batch of rows is read, sent, and the next
read, so a large log costs neither memory nor a long transaction. A failure after the first
bytes went out cannot become an error page: it is logged and the response is broken off, so
the browser reports a failed download instead of saving a short file as if whole.
"""

from __future__ import annotations

from collections.abc import Iterator

from werkzeug.wrappers import Response

from .. import audit_export
from ..logs import package_logger
from ..store.db import Database
from .access import Access
from .responses import Page

log = package_logger(__name__)

DOWNLOAD_PARAMETER = "download"
AUDIT_LOG = "audit-log"


def audit_log_response(page: Page, database: Database, access: Access) -> Response:
    args = page.request.args
    format = args.get("format", audit_export.DEFAULT_FORMAT)
    if format not in audit_export.FORMATS:
        return page.message(
            "Unknown format",
            [f"The audit log downloads as {' or '.join(audit_export.FORMATS)}."],
            status=400,
        )
    since = audit_export.EPOCH
    if args.get("since"):
        try:
            since = audit_export.parse_since(args["since"])
        except ValueError as error:
            return page.message("Bad date", [str(error)], status=400)
    workspace = access.workspace
    chunks = audit_export.export(database, workspace.id, workspace.slug, since=since, format=format)
    response = Response(
        _logged(chunks, workspace.slug), content_type=audit_export.MEDIA_TYPES[format]
    )
    name = audit_export.filename(workspace.slug, format)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return page.secured(response)


def _logged(chunks: Iterator[bytes], slug: str) -> Iterator[bytes]:
    try:
        yield from chunks
    except Exception:
        log.exception(
            "audit log download of %s broken off",
            slug,
            extra={"event": "audit.export_failed", "workspace": slug},
        )
        raise  # the server drops the connection: the download fails visibly
