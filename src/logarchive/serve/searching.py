"""The search page's one entry point: records of the archive whose message matches a regular
expression, with the run each is in. Runs are chosen from the index (``where``: globs on the
run's fields), then read one after the other until ``limit`` hits."""

from __future__ import annotations

import re
from typing import Any

from logarchive.codec import timestamp_to_epoch
from logarchive.serve.index import RunQuery
from logarchive.serve.logs import IntegrityError, records

LEVELS = ("trace", "debug", "info", "notice", "warning", "error", "critical")
RUNS_PER_PAGE = 500


def search_archive(served: Any, pattern: str, *, level: str | None, since: float | None,
                   until: float | None, where: dict[str, str], limit: int
                   ) -> tuple[list[dict[str, Any]], bool, list[dict[str, str]]]:
    """Up to ``limit`` hits (dicts with the run's id and key and the record's seq, timestamp,
    level, message), whether there were more, and the runs that could not be read (their
    objects do not match their manifests). ``level``: that level and above."""
    from logarchive.serve.api import BadRequest

    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise BadRequest(f"pattern {pattern!r} is not a regular expression: {exc}") from None
    if level and level not in LEVELS:
        raise BadRequest(f"level={level!r} is not one of: {', '.join(LEVELS)}")
    levels = set(LEVELS[LEVELS.index(level):]) if level else None
    hits: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    offset = 0
    while True:
        rows, total = served.index.query(RunQuery(fields=where, sort="run", descending=False,
                                                  limit=RUNS_PER_PAGE, offset=offset))
        for row in rows:
            try:
                for record in records(row.stored(), served.chunks(row)):
                    if not _keep(record, regex, levels, row.completed, since, until):
                        continue
                    if len(hits) == limit:
                        return hits, True, failed
                    hits.append({"run": row.id, "run_key": row.run_key, **{
                        k: record.get(k) for k in ("seq", "timestamp", "level", "message")}})
            except IntegrityError as exc:
                failed.append({"run": row.id, "run_key": row.run_key, "detail": str(exc)})
        offset += len(rows)
        if offset >= total or not rows:
            return hits, False, failed


def _keep(record: dict[str, Any], regex: re.Pattern[str], levels: set[str] | None,
          completed: float | None, since: float | None, until: float | None) -> bool:
    if levels is not None and record.get("level") not in levels:
        return False
    return bool(regex.search(str(record.get("message") or ""))) and _in_time(
        record, completed, since, until)


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
