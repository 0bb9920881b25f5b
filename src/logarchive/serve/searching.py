"""The search page: :func:`logarchive.search.search` (what ``logarchive search`` runs) over the
served sink, its hits mapped to the index's run ids, its usage errors to HTTP 400."""

from __future__ import annotations

from datetime import datetime, timezone
from itertools import islice
from typing import Any

from logarchive.errors import ConfigError, LogarchiveError
from logarchive.search import search
from logarchive.serve.index import run_id_of
from logarchive.serve.logs import IntegrityError

# search()'s usage errors name a CLI option; the page's parameters are named these
PARAMETERS = {"PATTERN": "pattern", "--level": "level", "--where": "field filters"}


def search_archive(served: Any, pattern: str, *, level: str | None, since: float | None,
                   until: float | None, where: dict[str, str], limit: int
                   ) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` hits (dicts with the run's id and key and the record's seq, timestamp,
    level, message) and whether there were more. ``level``: that level and above."""
    from logarchive.serve.api import BadRequest

    found = search(served.sink, pattern, level=level, since=_datetime(since),
                   until=_datetime(until), where=where)
    try:
        hits = list(islice(found, limit + 1))
    except ConfigError as exc:
        name = PARAMETERS.get(exc.key or "", exc.key)
        raise BadRequest(f"{name}: {str(exc).split(': ', 1)[-1]}") from None
    except LogarchiveError as exc:  # an object that cannot be read as its manifest says
        raise IntegrityError(str(exc)) from None
    return [{"run": run_id_of(hit.manifest_path), "run_key": hit.run_key, **{
        k: hit.record.get(k) for k in ("seq", "timestamp", "level", "message")}}
        for hit in hits[:limit]], len(hits) > limit


def _datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)
