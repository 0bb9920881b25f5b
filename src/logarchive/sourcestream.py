"""A run's log as a source streams it: what the source declared about it, and the bounds core
puts around every source stream.

- :class:`Declared`: the length, ETag or checksum the source announced for the log (HTTP
  ``Content-Length`` / ``Content-Range`` total, a listing's ``file_size``, ``size_hint``). Core
  never commits a log whose length differs from it, and writes it into the manifest so a
  truncation is provable from the manifest alone.
- :class:`SourceStream`: an iterator of byte chunks carrying its :class:`Declared` (filled as
  the source learns it: an HTTP download knows its length only after the first response).
- :class:`RecordStream`: a stream of records instead of bytes (``records = True``), for a
  source whose logs are records already (the ``archive`` source replaying an NDJSON archive):
  the delivery passes them to every sink as they are (their ``seq``, ``part``, timestamps and
  levels are kept, never re-parsed) instead of running the line codec; their text lines
  (:class:`RecordChunk`) stand for the source bytes (sha256, size and lines in the manifest,
  the bytes a ``txt`` sink stores).
- :class:`StreamLimits` / :func:`limited`: ``max_log_bytes``, ``run_timeout`` and
  ``min_bytes_per_second`` over ``min_rate_window``, keys of every source, enforced once here
  around whatever a plugin streams. Hitting one fails the run with the key named.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from logarchive.errors import SourceError


@dataclass
class Declared:
    """What the source declared about a log before sending it (None: not declared)."""

    size: int | None = None
    etag: str | None = None
    checksum: str | None = None  # "algorithm:hex", e.g. "md5:..." from a listing

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in (("size", self.size), ("etag", self.etag),
                                  ("checksum", self.checksum)) if v is not None}


class SourceStream(Iterator[bytes]):
    """Chunks of a log plus the live :class:`Declared` of their source.

    A plugin that wraps a download's chunks (filters, size checks) keeps the declaration by
    wrapping the result again: ``SourceStream(filtered, chunks.declared)``. Only wrap when the
    bytes passed on are the bytes the declaration describes (not after a JSON-to-lines
    transform)."""

    records: ClassVar[bool] = False
    """True: the chunks are :class:`RecordChunk` (see :class:`RecordStream`)."""

    def __init__(self, chunks: Iterable[bytes], declared: Declared | None = None) -> None:
        self._chunks = iter(chunks)
        self.declared = declared if declared is not None else Declared()

    def __next__(self) -> bytes:
        return next(self._chunks)


class RecordChunk(bytes):
    """Records of a :class:`RecordStream`; as bytes, their text: each record's ``message``
    followed by a newline unless the record is ``partial`` (a piece of a long line)."""

    rows: list[dict[str, Any]]

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> RecordChunk:
        text = "".join(r["message"] if r.get("partial") else r["message"] + "\n" for r in rows)
        chunk = cls(text.encode("utf-8", "replace"))
        chunk.rows = rows
        return chunk


class RecordStream(SourceStream):
    """A stream of records, one list of them at a time. Each record is a dict as the line codec
    writes it: ``seq`` (ordinal lines, 1-based, ascending), ``timestamp``, ``level``,
    ``message``, ``part``/``partial``/``continuation`` for pieces of a long line, and the run's
    fields. Sinks receive them unchanged: a record sink in order, an ``ndjson`` or ``json``
    sink as they are, a ``txt`` sink their text."""

    records: ClassVar[bool] = True

    def __init__(self, batches: Iterable[list[dict[str, Any]]],
                 declared: Declared | None = None) -> None:
        super().__init__((RecordChunk.of(rows) for rows in batches if rows), declared)


def declared_of(stream: Iterable[bytes], size_hint: int | None) -> Declared:
    """The declaration of a stream (empty for a plain iterator), with the run's ``size_hint``
    as its size when the stream declared none."""
    declared = stream.declared if isinstance(stream, SourceStream) else Declared()
    if declared.size is None and size_hint is not None:
        return Declared(size_hint, declared.etag, declared.checksum)
    return declared


def check_declared(source: str, declared: Declared, received: int, size_hint: int | None) -> None:
    """Raise when the log's length differs from what the source declared (its stream's
    declaration or the run's ``size_hint``): a truncated or padded log is never committed."""
    for size in (declared.size, size_hint):
        if size is not None and size != received:
            raise SourceError(
                f"received {received} bytes but the source declared {size}; nothing was "
                f"committed (sources.{source}: the log is cut short or changed at the source)",
                retriable=True,
            )


@dataclass(frozen=True)
class StreamLimits:
    """The bounds of one source's streams (0 turns a bound off)."""

    source: str
    max_log_bytes: int = 0
    run_timeout: float = 0
    min_bytes_per_second: float = 0
    min_rate_window: float = 300

    @classmethod
    def of(cls, source: str, config: Any) -> StreamLimits:
        return cls(source, config.max_log_bytes, config.run_timeout,
                   config.min_bytes_per_second, config.min_rate_window)

    def exceeded(self, key: str, detail: str) -> SourceError:
        return SourceError(f"sources.{self.source}.{key} {detail}; the run failed, nothing was "
                           f"committed (raise sources.{self.source}.{key}, 0 turns it off)")


def limited(chunks: Iterable[bytes], limits: StreamLimits,
            clock: Callable[[], float] = time.monotonic) -> Iterator[bytes]:
    """Pass ``chunks`` through while they stay within ``limits``; raise the named error when
    one is hit. The rate counts only the time spent waiting for the source (not the time the
    sinks take to consume a chunk), in consecutive windows of ``min_rate_window`` seconds."""
    started = clock()
    waited = window_start = 0.0
    total = window_bytes = 0
    iterator = iter(chunks)
    while True:
        before = clock()
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        now = clock()
        waited += now - before
        total += len(chunk)
        window_bytes += len(chunk)
        if limits.max_log_bytes and total > limits.max_log_bytes:
            raise limits.exceeded("max_log_bytes", f"({limits.max_log_bytes} bytes) exceeded: "
                                  f"the log is longer")
        if limits.run_timeout and now - started > limits.run_timeout:
            raise limits.exceeded("run_timeout", f"({limits.run_timeout:g} s) reached after "
                                  f"{total} bytes")
        if limits.min_bytes_per_second and waited - window_start >= limits.min_rate_window:
            rate = window_bytes / (waited - window_start)
            if rate < limits.min_bytes_per_second:
                raise limits.exceeded(
                    "min_bytes_per_second",
                    f"({limits.min_bytes_per_second:g}) not met: {rate:.1f} bytes/s over the "
                    f"last {waited - window_start:.0f} s (min_rate_window), {total} bytes so far")
            window_start, window_bytes = waited, 0
        yield chunk
