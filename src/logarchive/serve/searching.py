"""The search page's one entry point: records of the archive whose message matches a regular
expression, with the run each is in. Runs are chosen from the index (``where``: globs on the
run's fields), then read one after the other until ``limit`` hits."""

from __future__ import annotations

import re
from typing import Any

from logarchive.codec import timestamp_to_epoch
from logarchive.serve.index import RunQuery
from logarchive.serve.logs import records

LEVELS = ("trace", "debug", "info", "notice", "warning", "error", "critical")
RUNS_PER_PAGE = 500


def search_archive(served: Any, pattern: str, *, level: str | None, since: float | None,
                   until: float | None, where: dict[str, str], limit: int
                   ) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` hits (dicts with the run's id and key and the record's seq, timestamp,
    level, message), and whether there were more. ``level``: that level and above."""
    from logarchive.serve.api import BadRequest

    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise BadRequest(f"pattern {pattern!r} is not a regular expression: {exc}") from None
    if level and level not in LEVELS:
        raise BadRequest(f"level={level!r} is not one of: {', '.join(LEVELS)}")
    levels = set(LEVELS[LEVELS.index(level):]) if level else None
    hits: list[dict[str, Any]] = []
    offset = 0
    while True:
        rows, total = served.index.query(RunQuery(fields=where, sort="run", descending=False,
                                                  limit=RUNS_PER_PAGE, offset=offset))
        for row in rows:
            for record in records(row.stored(), served.chunks(row)):
                if levels is not None and record.get("level") not in levels:
                    continue
                if not regex.search(str(record.get("message") or "")):
                    continue
                if not _in_time(record, row.completed, since, until):
                    continue
                if len(hits) == limit:
                    return hits, True
                hits.append({"run": row.id, "run_key": row.run_key, "seq": record.get("seq"),
                             "timestamp": record.get("timestamp"), "level": record.get("level"),
                             "message": record.get("message")})
        offset += len(rows)
        if offset >= total or not rows:
            return hits, False


def _in_time(record: dict[str, Any], completed: float | None, since: float | None,
             until: float | None) -> bool:
    if since is None and until is None:
        return True
    try:
        when = timestamp_to_epoch(record.get("timestamp"))
    except ValueError:
        when = None
    when = completed if when is None else when
    return when is not None and (since is None or when >= since) and (until is None or when < until)
