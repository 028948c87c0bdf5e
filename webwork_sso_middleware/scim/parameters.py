"""What every SCIM endpoint reads from a request: the JSON body, list parameters, preconditions."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

from ..bodies import read_body
from ..store.scim_queries import SORTABLE
from .errors import ScimError, invalid_path, invalid_syntax, invalid_value
from .filters import Node, parse_filter
from .paths import lowered_keys
from .projection import parse_attribute_list
from .resources import lists_version
from .schemas import SEARCH_REQUEST, ResourceType

MAX_START_INDEX = 2**31 - 1


def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON; 413 past ``max_bytes``, 400 invalidSyntax when not JSON."""
    try:
        raw = read_body(request, max_bytes)  # chunked bodies included (bodies.py)
    except RequestEntityTooLarge:
        raise ScimError(413, f"the request body is larger than {max_bytes} bytes") from None
    if not raw.strip():
        raise invalid_syntax("the request needs a JSON body")
    try:
        # As json.loads reads bytes (UTF-8, -16 or -32), with a decoder made once.
        return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (ValueError, RecursionError) as exc:
        raise invalid_syntax(f"the body is not valid JSON: {exc}") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@dataclasses.dataclass(frozen=True)
class ListParameters:
    """RFC 7644 section 3.4.2: filter, sort, pagination and projection of a list or search."""

    filter: str | None
    sort_by: str | None
    descending: bool
    start_index: int
    count: int
    attributes: list[str]
    excluded_attributes: list[str]

    @classmethod
    def from_query(cls, args: Mapping[str, str], max_results: int) -> ListParameters:
        return cls.parse(dict(args.items()), max_results)

    @classmethod
    def from_search(cls, body: Any, max_results: int) -> ListParameters:
        if not isinstance(body, dict):
            raise invalid_syntax("a search request must be a JSON object")
        schemas = body.get("schemas")
        if schemas is not None and SEARCH_REQUEST not in (
            schemas if isinstance(schemas, list) else []
        ):
            raise invalid_syntax(f"a search request must have the schema {SEARCH_REQUEST}")
        return cls.parse({k: v for k, v in body.items() if k != "schemas"}, max_results)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], max_results: int) -> ListParameters:
        lowered = lowered_keys(raw)
        text_filter = lowered.get("filter")
        if text_filter is not None and not isinstance(text_filter, str):
            raise ScimError(400, "filter must be a string", "invalidFilter")
        sort_order = lowered.get("sortorder") or "ascending"
        if not isinstance(sort_order, str) or sort_order.lower() not in ("ascending", "descending"):
            raise invalid_value("sortOrder must be 'ascending' or 'descending'")
        sort_by = lowered.get("sortby")
        if sort_by is not None and not isinstance(sort_by, str):
            raise invalid_value("sortBy must be a string")
        # RFC 7644: startIndex below 1 means 1; a negative count means 0; we cap at max_results.
        # No list is MAX_START_INDEX long: past it the page is as empty, and the SQL OFFSET
        # stays within the 64-bit integers both databases take.
        start_index = min(
            max(1, _integer(lowered.get("startindex"), "startIndex", 1)), MAX_START_INDEX
        )
        count = min(max(0, _integer(lowered.get("count"), "count", max_results)), max_results)
        return cls(
            filter=text_filter if text_filter and text_filter.strip() else None,
            sort_by=sort_by or None,
            descending=sort_order.lower() == "descending",
            start_index=start_index,
            count=count,
            attributes=parse_attribute_list(lowered.get("attributes")),
            excluded_attributes=parse_attribute_list(lowered.get("excludedattributes")),
        )

    def parsed_filter(self) -> Node | None:
        """The filter as a tree (filter_query.py compiles it); invalidFilter when it does not
        parse."""
        return None if self.filter is None else parse_filter(self.filter)

    def sort_key(self, resource: ResourceType) -> str | None:
        """sortBy as the store names it (AttributePath.canonical); invalidPath when the store
        cannot sort ``resource`` by it."""
        if self.sort_by is None:
            return None
        path = resource.resolve(self.sort_by)
        if path is None or path.canonical not in SORTABLE[resource.name]:
            raise invalid_path(f"cannot sort {resource.endpoint} by {self.sort_by!r}")
        return path.canonical

    def wants(self, resource: ResourceType, attribute: str) -> bool:
        """Whether the projection keeps ``attribute`` (to skip loading what is not returned)."""

        def names(paths: list[str]) -> set[str]:
            return {p.attribute.name for p in map(resource.resolve, paths) if p is not None}

        if self.attributes:
            return attribute in names(self.attributes)
        excluded = {
            p.attribute.name
            for p in map(resource.resolve, self.excluded_attributes)
            if p is not None and p.sub_attribute is None
        }
        return attribute not in excluded


def _integer(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise invalid_value(f"{name} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_value(f"{name} must be an integer") from None


def check_if_match(request: Request, version: int) -> None:
    """412 when an If-Match header names a version other than the current one."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return
    if not lists_version(header, version):
        raise ScimError(412, "the resource has changed since that version (If-Match failed)")
