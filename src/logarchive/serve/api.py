"""The JSON API under ``/api/``: runs with filters and paging, one run's manifest, its log in any
format, its lines page by page, lines per level over time, a check against its manifest, and a
search over the archive. Documented in docs/serve.md."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from logarchive.codec import timestamp_to_epoch
from logarchive.patterns import BoundedPattern, PatternTooSlow
from logarchive.serve.index import SORTS, RunQuery, RunRow
from logarchive.serve.logs import RENDERINGS, IntegrityError, records

MAX_PAGE = 1000
FIELD_PREFIX = "f."  # ?f.model_id=mdl-7f3a
LEVELS = ("trace", "debug", "info", "notice", "warning", "error", "critical")
CHART_BUCKETS = 48


class BadRequest(ValueError):
    """A query parameter that cannot be used; its message names it."""


def run_query(params: QueryParams) -> RunQuery:
    """A :class:`RunQuery` from query parameters (``f.<field>``, ``source``, ``status`` (comma
    separated), ``q``, ``since``, ``until``, ``sort``, ``order``, ``limit``, ``offset``)."""
    sort = params.get("sort") or "completed"
    if sort not in SORTS:
        raise BadRequest(f"sort={sort!r} is not one of: {', '.join(SORTS)}")
    order = params.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise BadRequest(f"order={order!r} is not asc or desc")
    return RunQuery(
        fields=field_filters(params),
        source=params.get("source") or None,
        statuses=tuple(s for s in (params.get("status") or "").split(",") if s),
        text=params.get("q") or None, since=_time(params, "since"), until=_time(params, "until"),
        sort=sort, descending=order == "desc", limit=_int(params, "limit", 50, 1, MAX_PAGE),
        offset=_int(params, "offset", 0, 0, 10**12))


def field_filters(params: QueryParams) -> dict[str, str]:
    """``f.<name>=<value or glob>`` parameters, and the UI's ``field`` + ``value`` pair."""
    fields = {k[len(FIELD_PREFIX):]: v for k, v in params.multi_items()
              if k.startswith(FIELD_PREFIX) and v}
    if params.get("field") and params.get("value"):
        fields[params["field"]] = params["value"]
    return fields


def _int(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadRequest(f"{name}={text!r} is not an integer from {low} to {high}")
    return int(text)


def _time(params: QueryParams, name: str) -> float | None:
    text = params.get(name)
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadRequest(f"{name}={text!r} is not an ISO-8601 date or time") from None
    epoch = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    return epoch + 86400 if name == "until" and len(text) == 10 else epoch  # a day: inclusive


def list_page(served: Any, params: QueryParams) -> dict[str, Any]:
    query = run_query(params)
    rows, total = served.index.query(query)
    following = None
    if query.offset + len(rows) < total:
        rest = [(k, v) for k, v in params.multi_items() if k != "offset"]
        following = "/api/runs?" + urlencode([*rest, ("offset", query.offset + len(rows))])
    return {"total": total, "offset": query.offset, "limit": query.limit,
            "runs": [r.to_json() for r in rows], "next": following}


def lines_page(served: Any, row: RunRow, params: QueryParams) -> dict[str, Any]:
    """Records after ``after`` (a seq), at most ``limit``, matching ``q`` (a regular expression
    over the message) and ``level`` when given."""
    after = _int(params, "after", 0, 0, 10**15)
    limit = _int(params, "limit", 500, 1, 5000)
    pattern = _pattern(params.get("q"))
    level = params.get("level") or None
    out: list[dict[str, Any]] = []
    more = False
    chunks = served.chunks(row)
    for record in records(row.stored(), chunks):
        if record.get("seq", 0) <= after or (level and record.get("level") != level):
            continue
        if pattern and not pattern.search(str(record.get("message") or "")):
            continue
        if len(out) == limit:
            more = True
            break
        out.append({k: record.get(k) for k in ("seq", "timestamp", "level", "message", "part",
                                               "partial")})
    chunks.close()
    return {"lines": out, "more": more, "after": out[-1]["seq"] if out else after}


def _pattern(text: str | None) -> BoundedPattern | None:
    """The client's ``q``, matched with a time limit (:mod:`logarchive.patterns`)."""
    if not text:
        return None
    try:
        return BoundedPattern(text, ignore_case=True)
    except ValueError as exc:
        raise BadRequest(f"q: {exc}") from None


def level_chart(served: Any, row: RunRow) -> dict[str, Any]:
    """Lines per level over the run's time, in at most CHART_BUCKETS equal buckets (records
    without a timestamp are counted apart)."""
    per_second: Counter[tuple[int, str]] = Counter()
    untimed: Counter[str] = Counter()
    for record in records(row.stored(), served.chunks(row)):
        if record.get("continuation"):
            continue
        level = record.get("level") or "none"
        try:
            when = timestamp_to_epoch(record.get("timestamp"))
        except ValueError:
            when = None
        if when is None:
            untimed[level] += 1
        else:
            per_second[(int(when), level)] += 1
    return _buckets(per_second, untimed)


def _buckets(per_second: Counter[tuple[int, str]], untimed: Counter[str]) -> dict[str, Any]:
    if not per_second:
        return {"start": None, "end": None, "width": 0, "levels": {}, "untimed": dict(untimed)}
    start = min(s for s, _ in per_second)
    end = max(s for s, _ in per_second) + 1
    width = max(1, -(-(end - start) // CHART_BUCKETS))
    count = -(-(end - start) // width)
    levels: dict[str, list[int]] = {}
    for (second, level), n in per_second.items():
        levels.setdefault(level, [0] * count)[(second - start) // width] += n
    ordered = {k: levels[k] for k in (*LEVELS, "none") if k in levels}
    return {"start": _iso(start), "end": _iso(end), "width": width, "levels": ordered,
            "untimed": dict(untimed)}


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def verify_run(served: Any, row: RunRow) -> dict[str, Any]:
    """Read the whole object and compare it with its manifest (the result is also remembered)."""
    try:
        for _ in served.chunks(row):
            pass
    except IntegrityError as exc:
        return {"id": row.id, "ok": False, "detail": str(exc)}
    return {"id": row.id, "ok": True, "detail": f"{row.size} bytes, sha256 {row.sha256}"}


def search_page(served: Any, params: QueryParams) -> dict[str, Any]:
    from logarchive.serve.searching import search_archive

    pattern = params.get("pattern") or ""
    if not pattern:
        raise BadRequest("pattern is required (a regular expression)")
    limit = _int(params, "limit", 200, 1, 5000)
    where = field_filters(params)
    hits, more = search_archive(served, pattern, level=params.get("level") or None,
                                since=_time(params, "since"), until=_time(params, "until"),
                                where=where, limit=limit)
    return {"pattern": pattern, "hits": hits, "more": more}


def routes(served: Any) -> list[Route]:
    from logarchive.serve.app import attachment, json_error, log_response

    def threaded(work: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                row = None
                if "run" in request.path_params:
                    row = await run_in_threadpool(served.index.get, request.path_params["run"])
                    if row is None or not row.present or not await run_in_threadpool(
                            served.still_there, row):
                        return json_error(404, "Not Found", "no such run in the archive")
                result = await run_in_threadpool(work, request, row)
            except (BadRequest, PatternTooSlow) as exc:
                return json_error(400, "Bad Request", str(exc))
            except IntegrityError as exc:
                return json_error(500, "Integrity Error", str(exc))
            return result if isinstance(result, Response) else JSONResponse(result)
        return endpoint

    def log(request: Request, row: RunRow) -> Response:
        fmt = request.query_params.get("format", "txt")
        if fmt not in RENDERINGS:
            raise BadRequest(f"format={fmt!r} is not one of: {', '.join(RENDERINGS)}")
        name = attachment(f"{_file_stem(row)}.{fmt}")
        inline = request.query_params.get("download") in ("0", "false")
        return log_response(served, row, fmt, None if inline else name)

    return [
        Route("/api/runs", threaded(lambda r, _: list_page(served, r.query_params))),
        Route("/api/runs/{run}", threaded(lambda r, row: {
            "run": row.to_json(), "manifest": served.index.manifest(row.id)})),
        Route("/api/runs/{run}/log", threaded(log)),
        Route("/api/runs/{run}/lines",
              threaded(lambda r, row: lines_page(served, row, r.query_params))),
        Route("/api/runs/{run}/levels", threaded(lambda r, row: level_chart(served, row))),
        Route("/api/runs/{run}/verify", threaded(lambda r, row: verify_run(served, row))),
        Route("/api/search", threaded(lambda r, _: search_page(served, r.query_params))),
        Route("/api/facets", threaded(lambda r, _: served.index.facets())),
    ]


def _file_stem(row: RunRow) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9._-]", "_", v) for v in row.fields.values())[:200]


