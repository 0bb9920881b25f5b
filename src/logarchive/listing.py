"""Runs listed by a paginated JSON endpoint (for HTTP sources that find their runs by listing).

A source that can list its runs (``GET /api/v1/runs?status=completed``) describes the endpoint
with a :class:`ListEndpoint` config block: a URL template, a JSON pointer to the items, a mapping
of item fields to run fields, status and times, and how to get the next page (a next-page token
in the body, a next-page URL in the body, or an RFC 8288 ``Link: <...>; rel="next"`` header).
:func:`list_runs` walks every page with the core HTTP client (retries included) and yields one
:class:`ListedRun` per item. A new model or run is then found without editing the config.

Next-page URLs from the server are followed only on the same scheme, host and port as the first
page, so a ``Link`` header can never send the source's credentials elsewhere.

Every paginated listing of every source is bounded the same way (:class:`Pages`): at most
``max_pages`` pages, and a page token or next URL the server sends twice stops the listing with
an error (a server that repeats one would otherwise be listed for ever). One bad item never
stops a listing: :func:`item_runs` turns an item whose mapping raises (a lone surrogate in an
id, a time of ``1e20`` or ``NaN``) into a warning ``item_skipped`` naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from logarchive.errors import ConfigError, SourceError
from logarchive.runs import STATUSES, parse_time
from logarchive.templates import UnknownFields, render_template

_MISSING = object()
T = TypeVar("T")
# What mapping one hostile item can raise: a bad time or id (ValueError, OverflowError), a
# missing or mistyped field (KeyError, TypeError), nesting too deep (RecursionError).
ITEM_ERRORS = (ValueError, TypeError, KeyError, OverflowError, RecursionError)

# Words APIs use for run states, normalised to logarchive's statuses (lower-cased lookup).
DEFAULT_STATUS_MAP: dict[str, str] = {
    **dict.fromkeys(["completed", "complete", "succeeded", "success", "successful", "finished",
                     "done", "ok"], "completed"),
    **dict.fromkeys(["failed", "failure", "error", "errored", "abnormal", "crashed"], "failed"),
    **dict.fromkeys(["killed", "cancelled", "canceled", "terminated", "stopped", "aborted"],
                    "killed"),
    **dict.fromkeys(["running", "in_progress", "inprogress", "active", "started", "terminating",
                     "stopping", "cancelling"], "running"),
    **dict.fromkeys(["pending", "queued", "created", "creating", "scheduled", "waiting",
                     "submitted", "new"], "pending"),
}


def json_pointer(document: Any, pointer: str, default: Any = _MISSING) -> Any:
    """Resolve an RFC 6901 JSON pointer (``/items/0/id``; ``""`` is the whole document).

    A pointer without a leading ``/`` is read as one key (``run_id`` is ``/run_id``).
    Raises KeyError when the path does not exist and no ``default`` is given.
    """
    if pointer == "":
        return document
    parts = pointer[1:].split("/") if pointer.startswith("/") else [pointer]
    current = document
    for raw in parts:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, Mapping) and token in current:
            current = current[token]
        elif isinstance(current, list) and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            if default is _MISSING:
                raise KeyError(pointer)
            return default
    return current


_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")


def parse_link_header(value: str | None) -> dict[str, str]:
    """``Link`` header (RFC 8288) to ``{rel: url}``; ``rel="next prev"`` yields both."""
    links: dict[str, str] = {}
    if not value:
        return links
    for match in _LINK.finditer(value):
        url, params = match.group(1).strip(), match.group(2)
        for param in params.split(";"):
            name, _, val = param.strip().partition("=")
            if name.strip().lower() == "rel":
                for rel in val.strip().strip('"').split():
                    links.setdefault(rel.lower(), url)
    return links


def fill_template(template: str, values: Mapping[str, str], *, quote_values: bool = True) -> str:
    """Replace ``{name}`` with ``values[name]``, URL-quoted (no ``/`` survives, so a value such
    as ``../admin`` cannot change the path). Unknown names raise ConfigError."""

    def url_value(value: Any, spec: str) -> str:
        text = format(value, spec)
        return quote(text, safe="") if quote_values else text

    try:
        return render_template(template, values, convert=url_value)
    except UnknownFields as exc:
        raise ConfigError(f"template {template!r} uses {{{exc.names[0]}}}, not one of: "
                          f"{', '.join(values) or '-'}") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def normalise_status(value: Any, mapping: Mapping[str, str] | None = None) -> str:
    """A source's status word to one of logarchive's statuses (``unknown`` when not known).
    ``mapping`` (exact value first, then lower-cased) wins over :data:`DEFAULT_STATUS_MAP`."""
    if value is None:
        return "unknown"
    text = str(value).strip()
    for table in (mapping or {}, DEFAULT_STATUS_MAP):
        for key in (text, text.lower()):
            if key in table:
                return table[key]
        lowered = {k.lower(): v for k, v in table.items()}
        if text.lower() in lowered:
            return lowered[text.lower()]
    return "unknown"


class ListEndpoint(BaseModel):
    """A paginated JSON endpoint that lists runs (or models, jobs...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        description="URL of the first page, relative to the source's base URL or absolute; "
        "{name} placeholders are filled from the source's variables (URL-quoted).",
        examples=["/api/v1/runs?status=completed"],
    )
    method: Literal["GET", "POST"] = Field(default="GET", description="HTTP method.",
                                           examples=["GET"])
    params: dict[str, str] = Field(default_factory=dict, description="Query parameters.",
                                   examples=[{"page_size": "100"}])
    body: dict[str, Any] | None = Field(default=None, description="JSON body (POST).",
                                        examples=[{"limit": 50}])
    items: str = Field(default="/items", description="JSON pointer to the array of items "
                       "(\"\" when the response is the array).", examples=["/data/runs"])
    fields: dict[str, str] = Field(
        description="Run field name -> JSON pointer (or key) inside an item.",
        examples=[{"model_id": "/model/id", "run_id": "/id"}],
    )
    status: str | None = Field(default=None, description="JSON pointer to the item's status.",
                               examples=["/status"])
    status_map: dict[str, Literal["pending", "running", "completed", "failed", "killed",
                                  "unknown"]] = Field(
        default_factory=dict,
        description="The source's status words -> logarchive statuses; common words "
        "(COMPLETED, SUCCEEDED, FAILED, CANCELLED, RUNNING...) are known already.",
        examples=[{"DONE_OK": "completed"}],
    )
    default_status: Literal["pending", "running", "completed", "failed", "killed",
                            "unknown"] = Field(
        default="unknown", description="Status of items without one (or without `status`).",
        examples=["completed"],
    )
    started: str | None = Field(default=None, description="JSON pointer to the start time "
                                "(ISO-8601 or epoch s/ms).", examples=["/started_at"])
    completed: str | None = Field(default=None, description="JSON pointer to the end time.",
                                  examples=["/finished_at"])
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Manifest metadata name -> JSON pointer.",
        examples=[{"owner": "/created_by"}],
    )
    next_token: str | None = Field(
        default=None, description="JSON pointer to a next-page token in the response body.",
        examples=["/next_page_token"],
    )
    token_param: str = Field(default="page_token", description="Query parameter that sends the "
                             "next-page token back.", examples=["page_token"])
    next_url: str | None = Field(default=None, description="JSON pointer to the next page's URL "
                                 "in the response body.", examples=["/links/next"])
    link: bool = Field(default=True, description="Follow a `Link: <url>; rel=\"next\"` header.",
                       examples=[True])
    max_pages: int = Field(default=1000, ge=1, description="Most pages read; a longer listing "
                           "fails naming this key.", examples=[1000])

    @field_validator("fields")
    @classmethod
    def _some_fields(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("map at least one run field, e.g. {run_id = \"/id\"}")
        return value

    @field_validator("status_map")
    @classmethod
    def _statuses(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [v for v in value.values() if v not in STATUSES]
        if bad:
            raise ValueError(f"statuses must be among {STATUSES}")
        return value


@dataclass
class ListedRun:
    """One item of a list endpoint, mapped."""

    fields: dict[str, str]
    status: str
    started: datetime | None = None
    completed: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    item: Any = None


def item_problem(endpoint: ListEndpoint, item: Any) -> str | None:
    """Why ``item`` cannot be mapped to a run (names the field and pointer), or None."""
    for name, pointer in endpoint.fields.items():
        value = json_pointer(item, pointer, None)
        if value is None:
            return f"run field {name!r} ({pointer}) is missing"
        if isinstance(value, (dict, list)):
            return f"run field {name!r} ({pointer}) is a {type(value).__name__}, not a value"
        if str(value) == "":
            return f"run field {name!r} ({pointer}) is empty"
    return None


def map_item(endpoint: ListEndpoint, item: Any) -> ListedRun | None:
    """Map one item; None when a run field is missing, empty or not a scalar (see
    :func:`item_problem`); the item is then skipped."""
    if item_problem(endpoint, item) is not None:
        return None
    fields = {name: str(json_pointer(item, pointer)) for name, pointer in endpoint.fields.items()}
    status = endpoint.default_status
    if endpoint.status:
        raw = json_pointer(item, endpoint.status, None)
        if raw is not None:
            status = normalise_status(raw, endpoint.status_map)
    return ListedRun(
        fields=fields,
        status=status,
        started=parse_time(json_pointer(item, endpoint.started, None)) if endpoint.started else None,
        completed=(parse_time(json_pointer(item, endpoint.completed, None))
                   if endpoint.completed else None),
        metadata={k: json_pointer(item, p, None) for k, p in endpoint.metadata.items()},
        item=item,
    )


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


class Pages:
    """The bounds of one paginated listing (``what`` names it in errors).

    Call :meth:`next` before requesting each page: past ``max_pages`` pages it raises a
    SourceError naming ``key``, the setting to raise. :meth:`follow` takes the next page's token
    or URL: False when there is none (the listing is complete), a SourceError when the server
    sent it before (the listing would never end), else True; :meth:`repeated` raises that error
    for a listing paged by number whose page holds only items listed before.
    """

    def __init__(self, what: str, max_pages: int, key: str = "max_pages") -> None:
        self.what, self.max_pages, self.key = what, max_pages, key
        self.count = 0
        self._seen: set[str] = set()

    def next(self) -> int:
        if self.count >= self.max_pages:
            raise SourceError(f"{self.what}: more than {self.max_pages} pages; stopped. If the "
                              f"listing is really that long, raise `{self.key}`")
        self.count += 1
        return self.count

    def follow(self, marker: Any) -> bool:
        if marker is None or marker == "":
            return False
        text = str(marker)
        if text in self._seen:
            self.repeated(f"the next page {text[:120]!r}")
        self._seen.add(text)
        return True

    def repeated(self, what: str) -> None:
        """Raise: the server sent ``what`` again (for listings paged by number, a page of only
        items seen before)."""
        raise SourceError(f"{self.what}: the server sent {what} again (after page "
                          f"{self.count}); stopped, it would list for ever")


def item_runs(make: Callable[[Any], Iterable[T]], item: Any, *, what: str, log: Any,
              skipped: list[tuple[str, bool]] | None = None) -> list[T]:
    """``make(item)`` as a list; an item whose mapping raises one of :data:`ITEM_ERRORS` (bad
    data: a warning) or a SourceError that is not fatal for the source (its listing failed or
    went out of bounds: an error) is skipped with a warning ``item_skipped`` naming it
    (``what``, keep it ``repr``-quoted) and added to ``skipped`` (the source's
    ``Source.skipped``, which the export reports), and the listing goes on."""
    try:
        return list(make(item))
    except SourceError as exc:
        if exc.fatal_for_source:
            raise
        error, failed = str(exc), True
    except ITEM_ERRORS as exc:
        error, failed = str(exc) or type(exc).__name__, False
    if log is not None:
        log.warning("item_skipped", item=what, error=error)
    if skipped is not None:
        skipped.append((f"skipped {what}: {error}", failed))
    return []


def _document(response: Any, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise SourceError(f"{what}: response is not JSON") from None
    except RecursionError:
        raise SourceError(f"{what}: the response nests JSON deeper than can be read") from None


def _page_items(document: Any, endpoint: ListEndpoint) -> list[Any]:
    try:
        items = json_pointer(document, endpoint.items)
    except KeyError:
        keys = sorted(document)[:10] if isinstance(document, Mapping) else type(document).__name__
        raise SourceError(f"list endpoint {endpoint.url}: items pointer {endpoint.items!r} "
                          f"not found in the response (it has: {keys})") from None
    if items is None:
        return []
    if not isinstance(items, list):
        raise SourceError(f"list endpoint {endpoint.url}: {endpoint.items or '(document)'} "
                          "is not an array")
    return items


def list_items(client: Any, endpoint: ListEndpoint, variables: Mapping[str, str] | None = None,
               *, classify: Any = None, log: Any = None, key: str = "max_pages"
               ) -> Iterator[Any]:
    """Every item of every page of ``endpoint`` (``client`` is a ``logarchive.http.HttpClient``);
    bounded by :class:`Pages` (``key`` is how the config names ``max_pages``)."""
    url = fill_template(endpoint.url, variables or {})
    params: dict[str, str] | None = {k: fill_template(v, variables or {}, quote_values=False)
                                     for k, v in endpoint.params.items()}
    origin: str | None = None
    pages = Pages(f"list endpoint {endpoint.url}", endpoint.max_pages, key)
    while True:
        pages.next()
        kwargs: dict[str, Any] = {"params": params, "classify": classify}
        if endpoint.body is not None:
            kwargs["json"] = endpoint.body
        response = client.request(endpoint.method, url, **kwargs)
        origin = origin or str(response.request.url)
        document = _document(response, f"list endpoint {endpoint.url}")
        items = _page_items(document, endpoint)
        yield from items
        token = json_pointer(document, endpoint.next_token, None) if endpoint.next_token else None
        if token not in (None, ""):
            next_url, next_params = url, {**(params or {}), endpoint.token_param: str(token)}
            marker = f"token {token}"
        else:
            target = json_pointer(document, endpoint.next_url, None) if endpoint.next_url else None
            if not target and endpoint.link:
                target = parse_link_header(response.headers.get("Link")).get("next")
            if not target:
                return
            next_url = urljoin(str(response.request.url), str(target))
            next_params = None  # the server's next URL carries its own query
            marker = f"url {next_url}"
            if not _same_origin(next_url, origin):
                raise SourceError(f"list endpoint {endpoint.url}: refusing a next page on "
                                  "another host")
        if not items or not pages.follow(marker):
            return
        url, params = next_url, next_params


def mapped_item(endpoint: ListEndpoint, item: Any) -> ListedRun:
    """:func:`map_item`, raising ValueError with :func:`item_problem` instead of None."""
    listed = map_item(endpoint, item)
    if listed is None:
        raise ValueError(item_problem(endpoint, item))
    return listed


def list_runs(client: Any, endpoint: ListEndpoint, variables: Mapping[str, str] | None = None,
              *, classify: Any = None, log: Any = None, key: str = "max_pages",
              skipped: list[tuple[str, bool]] | None = None) -> Iterator[ListedRun]:
    """Mapped items of every page; an item that cannot be mapped (a run field missing, a time
    out of range) is skipped with a warning naming it (see :func:`item_runs`)."""
    items = list_items(client, endpoint, variables, classify=classify, log=log, key=key)
    for index, item in enumerate(items):
        yield from item_runs(lambda i: [mapped_item(endpoint, i)], item,
                             what=describe_item(endpoint, item, index), log=log,
                             skipped=skipped)


def describe_item(endpoint: ListEndpoint, item: Any, index: int) -> str:
    """``/runs item 3 {'run_id': 'r3'}``: the item's place and run fields (``repr``-quoted, so
    control characters and lone surrogates stay escaped), for warnings."""
    fields = {name: json_pointer(item, pointer, None) if isinstance(item, (dict, list)) else None
              for name, pointer in endpoint.fields.items()}
    return f"{endpoint.url} item {index} {repr(fields)[:200]}"


__all__ = ["DEFAULT_STATUS_MAP", "ITEM_ERRORS", "ListEndpoint", "ListedRun", "Pages",
           "fill_template", "item_problem", "item_runs", "json_pointer", "list_items", "list_runs",
           "map_item", "mapped_item", "normalise_status", "parse_link_header"]
