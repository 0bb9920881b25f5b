"""Search an archive without SQL: a regular expression over the messages of its records.

:func:`search` yields a :class:`Hit` per matching record of the objects of one byte sink (its
manifests say which run each object holds, its format and compression). Records are read as the
archive stores them: an ``ndjson``, ``json`` or ``parquet`` object's records as written
(original ``seq``, timestamps and levels), a ``txt`` object's lines through the line codec (the records an
``ndjson`` export of the same log would hold). Nothing is held but one chunk of records.

Filters: ``level`` (that level and above, records without a level excluded), ``since`` /
``until`` (the record's timestamp, or the run's completion time for a record without one; a
naive timestamp is UTC), ``where`` (globs on the run's fields and ``source``). Objects whose runs
do not match ``where`` are not read at all.

:func:`archived_records` (records of one stored object, a chunk's worth at a time) is shared
with the ``archive`` source through ``logarchive.plugin_api``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from logarchive.archive import Archived, read_archive
from logarchive.base import ByteSink
from logarchive.codec import (
    DEFAULT_MAX_LINE_BYTES, RecordBuilder, decompress_stream, timestamp_to_epoch,
)
from logarchive.errors import ConfigError, LogarchiveError, SourceError
from logarchive.parquet import spooled_records

LEVELS = ("trace", "debug", "info", "notice", "warning", "error", "critical")
RECORD_FORMATS = ("ndjson", "json")


@dataclass
class Hit:
    """One matching record, and where it is."""

    run_key: str
    object: str
    record: dict[str, Any] = field(repr=False)
    manifest_path: str = field(default="", repr=False)  # relative to the sink's root

    @property
    def seq(self) -> int:
        return int(self.record["seq"])

    @property
    def timestamp(self) -> str | None:
        return self.record.get("timestamp")

    @property
    def message(self) -> str:
        return str(self.record.get("message", ""))

    def to_json(self) -> dict[str, Any]:
        return {"run_key": self.run_key, "object": self.object, **self.record}

    def columns(self) -> list[str]:
        """What ``logarchive search`` prints, tab-separated: run key, seq, timestamp, line."""
        return [self.run_key, str(self.seq), self.timestamp or "-", self.message]


def level_at_least(level: str) -> frozenset[str]:
    """The levels ``level`` and above; an unknown name is a usage error naming the choices."""
    name = {"warn": "warning", "err": "error", "fatal": "critical"}.get(level.lower(),
                                                                         level.lower())
    if name not in LEVELS:
        raise ConfigError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}",
                          key="--level")
    return frozenset(LEVELS[LEVELS.index(name):])


def parse_where(items: Iterable[str]) -> dict[str, str]:
    """``field=glob`` options as a mapping; a malformed one is a usage error."""
    out = {}
    for item in items:
        name, sep, glob = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"{item!r} is not field=glob", key="--where")
        out[name] = glob
    return out


def run_matches(entry: Archived, where: dict[str, str]) -> bool:
    """Whether every glob of ``where`` matches the run's field of that name (``source``: the
    run's source); a field the run lacks matches nothing."""
    values = {"source": entry.source, **entry.fields}
    return all(k in values and fnmatch.fnmatchcase(values[k], g) for k, g in where.items())


class BadRecord(SourceError):
    """A record of an archived object that is not one: not JSON, not an object, or a field of
    the wrong type. The message names the object and the line."""


def _checked(rows: Any, where: str, lines: list[bytes], first: int) -> list[dict[str, Any]]:
    """``rows`` (decoded from ``lines``) if each is a record; else the first bad line's error."""
    if isinstance(rows, list) and all(_is_record(r) for r in rows):
        return rows
    for number, line in enumerate(lines, first):
        text = line.strip().rstrip(b",")
        if text and text not in (b"[", b"]", b"[]"):
            record_of(text, where, number)
    raise BadRecord(f"{where}: malformed records near line {first}")


def record_of(line: bytes | str, where: str, number: int | None) -> dict[str, Any]:
    """One JSON record line, checked: a :class:`BadRecord` naming ``where`` and the line."""
    at = f"{where}, line {number}" if number is not None else where
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadRecord(f"{at}: not a JSON record ({exc})") from None
    if not _is_record(record):
        raise BadRecord(f"{at}: not a record (an object with an integer seq and text message, "
                        "level and timestamp)")
    return record


def _is_record(record: Any) -> bool:
    return (isinstance(record, dict) and type(record.get("seq")) is int
            and all(isinstance(record.get(k), str | None)
                    for k in ("message", "level", "timestamp")))


def archived_records(fmt: str, compression: str, chunks: Iterable[bytes],
                     fields: dict[str, Any], where: str = "object"
                     ) -> Iterator[list[dict[str, Any]]]:
    """The records of one stored object, a chunk's worth at a time: an ``ndjson`` or ``json``
    object's as written (a malformed one: :class:`BadRecord` naming ``where`` and the line), a
    ``parquet`` object's in batches of rows (the same record shape:
    :func:`logarchive.parquet.spooled_records`), a ``txt`` object's built by the line codec with
    ``fields``."""
    if fmt == "parquet":  # compressed by column, never as a stream
        yield from spooled_records(chunks)
        return
    data = decompress_stream(compression, chunks)
    if fmt == "txt":
        builder = RecordBuilder(fields)
        for chunk in data:
            yield builder.feed(chunk).records()
        yield builder.finish().records()
        return
    if fmt not in RECORD_FORMATS:
        raise LogarchiveError(f"format {fmt!r} cannot be read here (txt, ndjson, json and "
                              "parquet can)")
    first = 1
    for lines in _lines(data, where):
        # The fs sink writes one record per line; a json array adds "[", "]" and commas.
        body = b",".join(line for line in (ln.strip().rstrip(b",") for ln in lines)
                         if line and line not in (b"[", b"]", b"[]"))
        if body:
            try:
                rows = orjson.loads(b"[" + body + b"]")
            except orjson.JSONDecodeError:
                rows = None
            yield _checked(rows, where, lines, first)
        first += len(lines)


# A record line longer than this is refused (a record holds at most the export's
# max_line_bytes of message, JSON escapes at most sextuple it): an unbounded line is not held.
MAX_RECORD_LINE = 16 * DEFAULT_MAX_LINE_BYTES


def _lines(data: Iterable[bytes], where: str = "object") -> Iterator[list[bytearray]]:
    """Complete lines, a chunk's worth at a time. The partial line is a growing bytearray
    (linear however long), refused past :data:`MAX_RECORD_LINE`."""
    rest, done = bytearray(), 0
    for chunk in data:
        end = chunk.rfind(b"\n")
        if end == -1:
            rest += chunk
        else:
            rest += memoryview(chunk)[:end]
            lines = rest.split(b"\n")
            rest = bytearray(memoryview(chunk)[end + 1:])
            done += len(lines)
            yield lines
        if len(rest) > MAX_RECORD_LINE:
            raise BadRecord(f"{where}, line {done + 1}: longer than {MAX_RECORD_LINE} bytes "
                            "without a newline: not a record")
    if rest:
        yield [rest]


@dataclass
class _Filter:
    pattern: re.Pattern[str]
    levels: frozenset[str] | None
    since: float | None
    until: float | None

    def keep(self, record: dict[str, Any], completed: float | None) -> bool:
        if self.levels is not None and record.get("level") not in self.levels:
            return False
        if not self.pattern.search(record.get("message") or ""):
            return False
        if self.since is None and self.until is None:
            return True
        when = _epoch(record.get("timestamp"))
        when = completed if when is None else when
        if when is None:
            return False
        return ((self.since is None or when >= self.since)
                and (self.until is None or when < self.until))


def _epoch(timestamp: Any) -> float | None:
    try:
        return timestamp_to_epoch(timestamp) if isinstance(timestamp, str) else None
    except ValueError:
        return None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{pattern!r} is not a regular expression: {exc}",
                          key="PATTERN") from None


def search(sink: ByteSink, pattern: str, *, level: str | None = None,
           since: datetime | None = None, until: datetime | None = None,
           where: dict[str, str] | None = None,
           errors: list[str] | None = None) -> Iterator[Hit]:
    """Every record of ``sink``'s archive whose message matches ``pattern`` (``re.search``)
    and the filters (see the module docstring), run by run in path order, in ``seq`` order.
    An object with a malformed record: its error is appended to ``errors`` and the search goes
    on with the next object (raised when ``errors`` is None)."""
    keep = _Filter(compile_pattern(pattern), level_at_least(level) if level else None,
                   since.timestamp() if since else None, until.timestamp() if until else None)
    for entry in matching_entries(sink, where or {}):
        completed = entry.completed.timestamp() if entry.completed else None
        where_is = sink.describe(entry.path)
        try:
            with sink.read(entry.path) as chunks:
                for rows in candidate_records(entry, chunks, keep.pattern, where=where_is):
                    for record in rows:
                        if keep.keep(record, completed):
                            yield Hit(entry.run_key, where_is, record, entry.manifest_path)
        except BadRecord as exc:
            if errors is None:
                raise
            errors.append(str(exc))


# The fast path of search over ndjson/json objects: the pattern runs over a whole chunk of JSON
# lines at C speed, and only the lines it touches (or that hold an escape, whose message is not
# their text verbatim) are decoded. A record whose message matches is always among them: its
# message is a substring of its line. Patterns for which that does not hold (anchors, negative
# lookarounds: a match in the message alone that the surrounding JSON could undo; a pattern
# matching the empty string: every position) take the slow path, every record decoded.
# tests/test_query_search.py checks both paths give the same hits.
_UNSAFE = ("^", "$", "\\A", "\\Z", "(?!", "(?<!")
_BACKSLASH = re.compile(r"\\")


def prefilter_safe(pattern: re.Pattern[str]) -> bool:
    """Whether :func:`candidate_records` may skip the lines ``pattern`` does not touch."""
    return not any(u in pattern.pattern for u in _UNSAFE) and pattern.search("") is None


def candidate_records(entry: Archived, chunks: Iterable[bytes], pattern: re.Pattern[str],
                      fast: bool = True, where: str = "object"
                      ) -> Iterator[list[dict[str, Any]]]:
    """The records of an object that may match ``pattern`` (all of them on the slow path)."""
    fmt = str(entry.manifest.get("format"))
    if not (fast and fmt in RECORD_FORMATS and prefilter_safe(pattern)):
        yield from entry_records(entry, chunks, where)
        return
    data = decompress_stream(str(entry.manifest.get("compression") or "none"), chunks)
    first = 1
    for lines in _lines(data, where):
        text = b"\n".join(lines).decode("utf-8", "replace")
        touched = _touched_lines(text, pattern)
        try:
            yield [record_of(line, where, None) for line in touched]
        except BadRecord:  # find the line: the checked slow path over this chunk
            yield _checked(None, where, lines, first)
        first += len(lines)


def _touched_lines(text: str, pattern: re.Pattern[str]) -> list[str]:
    """The JSON record lines of ``text`` that a match of ``pattern`` or a backslash touches,
    in order. After a match the search goes on at the next line: one search per touched line,
    however often the pattern matches within it (``.`` matches every character)."""
    starts: set[int] = set()
    for regex in (pattern, _BACKSLASH):
        pos = 0
        while (match := regex.search(text, pos)) is not None:
            start = text.rfind("\n", 0, match.start()) + 1
            while True:
                starts.add(start)
                newline = text.find("\n", start)
                if newline == -1 or newline >= match.end():
                    break
                start = newline + 1
            pos = len(text) if newline == -1 else newline + 1
    out = []
    for start in sorted(starts):
        newline = text.find("\n", start)
        line = text[start:newline if newline != -1 else len(text)].strip().rstrip(",")
        if line and line not in ("[", "]", "[]"):
            out.append(line)
    return out


def matching_entries(sink: ByteSink, where: dict[str, str]) -> list[Archived]:
    """The sink's archived objects (present, manifest naming it) whose runs match ``where``."""
    listing = read_archive(sink)
    return [e for e in listing.entries if e.object_present and run_matches(e, where)]


def entry_records(entry: Archived, chunks: Iterable[bytes],
                  where: str = "object") -> Iterator[list[dict[str, Any]]]:
    """:func:`archived_records` of one archived object, as its manifest describes it."""
    manifest = entry.manifest
    fields = {"source": entry.source, **entry.fields}
    return archived_records(str(manifest.get("format") or "txt"),
                            str(manifest.get("compression") or "none"), chunks, fields, where)
