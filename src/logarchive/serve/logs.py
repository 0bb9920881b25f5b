"""A run's log from the archive, in any format, streamed and checked against its manifest.

Every object is read once, chunk by chunk: its sha256 and size are computed on the way and
compared with the manifest at the end; a mismatch raises :class:`IntegrityError` after the last
chunk (a streamed response then ends broken, or with seed 002's error trailer), never silently.

Renderings (``txt``, ``ndjson``, ``json``) of each stored format:

- ``txt`` from a ``txt`` archive is the stored bytes (decompressed): byte for byte the source's;
- ``txt`` from an ``ndjson`` / ``json`` / ``parquet`` archive is **rebuilt** from the records (each line's
  message, the parts of a split line joined, one ``\\n`` after each line): a CR before a newline,
  invalid UTF-8 and a missing last newline of the original are not restored;
- ``ndjson`` / ``json`` from a ``txt`` archive are built by the line codec (the records an
  ``ndjson`` export of the same log holds); from a records archive they are its records (a
  ``parquet`` object is spooled to a temporary file, checked, then read a row group at a time:
  :func:`logarchive.parquet.spooled_records`).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from logarchive.base import ByteSink
from logarchive.codec import DEFAULT_MAX_LINE_BYTES, FormatEncoder, RecordBuilder
from logarchive.errors import LogarchiveError
from logarchive.parquet import spooled_records

RENDERINGS = ("txt", "ndjson", "json")
OUT_CHUNK = 1 << 20  # most bytes one decompression step yields
RECORD_FORMATS = ("ndjson", "json")
MEDIA_TYPES = {"txt": "text/plain", "ndjson": "application/x-ndjson", "json": "application/json"}


class IntegrityError(LogarchiveError):
    """The archived object is not what its manifest says (size or sha256), or cannot be read."""


@dataclass(frozen=True)
class StoredLog:
    """One archived object as the index knows it: enough to read and check it."""

    object_path: str
    format: str
    compression: str
    sha256: str
    size: int
    fields: dict[str, str]
    source: str

    @property
    def record_fields(self) -> dict[str, str]:
        return {"source": self.source, **self.fields}

    def origin(self, rendering: str) -> str:
        """How ``rendering`` is made from this object (the ``X-Logarchive-Origin`` header)."""
        if rendering == self.format:
            return "archived"
        if rendering == "txt":
            return "rebuilt-from-records"
        return "encoded-from-txt" if self.format == "txt" else "converted-from-records"


def checked_chunks(sink: ByteSink, stored: StoredLog,
                   on_checked: Callable[[bool], None] | None = None) -> Iterator[bytes]:
    """The stored bytes of ``stored``; :class:`IntegrityError` after the last one if they are
    not what the manifest says. ``on_checked(ok)`` learns the outcome of a complete read."""
    digest, size = hashlib.sha256(), 0
    try:
        with sink.read(stored.object_path) as chunks:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                yield chunk
    except (OSError, LogarchiveError) as exc:
        if isinstance(exc, IntegrityError):
            raise
        raise IntegrityError(f"the archived object cannot be read: {exc}") from None
    ok = size == stored.size and digest.hexdigest() == stored.sha256
    if on_checked is not None:
        on_checked(ok)
    if not ok:
        raise IntegrityError(f"the archived object does not match its manifest: {size} bytes, "
                             f"sha256 {digest.hexdigest()}; the manifest says {stored.size} "
                             f"bytes, sha256 {stored.sha256}")


def decompressed(compression: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The stored bytes decompressed, at most :data:`OUT_CHUNK` bytes at a time whatever the
    ratio: a 1 MiB chunk of a gzip'd log of repeated lines can hold 100 MiB."""
    if compression == "none":
        yield from chunks
    elif compression == "gzip":
        inflater = zlib.decompressobj(31)
        for chunk in chunks:
            while chunk:
                out = inflater.decompress(chunk, OUT_CHUNK)
                if out:
                    yield out
                chunk = inflater.unconsumed_tail
        yield inflater.flush()
    elif compression == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(_Reader(chunks),
                                                            read_across_frames=True)
        yield from iter(lambda: reader.read(OUT_CHUNK), b"")
    else:
        raise IntegrityError(f"compression {compression!r} cannot be read (none, gzip, zstd)")


class _Reader:
    """A file-like ``read(n)`` over an iterator of chunks (for zstandard's stream reader)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        cut = len(self._buffer) if size < 0 else size
        out, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return out


def record_lines(data: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The encoded records (one JSON object each) of an ``ndjson`` or ``json`` object, a chunk's
    worth at a time: the fs sink writes one record per line; a json array adds ``[``, ``]`` and
    the commas."""
    rest = b""
    for chunk in data:
        if not chunk:
            continue
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield _records_of(lines)
    if rest:
        yield _records_of([rest])


def _records_of(lines: list[bytes]) -> list[bytes]:
    out = []
    for line in lines:
        line = line.strip().rstrip(b",")
        if line and line not in (b"[", b"]", b"[]"):
            out.append(line)
    return out


def encoded_records(stored: StoredLog, chunks: Iterable[bytes],
                    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[list[bytes]]:
    """The records of the object, encoded, a chunk's worth at a time (see the module doc)."""
    if stored.format == "parquet":  # compressed by column, never as a stream
        for rows in spooled_records(chunks):
            yield [orjson.dumps(row) for row in rows]
        return
    data = decompressed(stored.compression, chunks)
    if stored.format in RECORD_FORMATS:
        yield from record_lines(data)
        return
    if stored.format != "txt":
        raise IntegrityError(f"format {stored.format!r} cannot be served (txt, ndjson, json "
                             "and parquet can)")
    builder = RecordBuilder(stored.record_fields, max_line_bytes)
    for chunk in data:
        yield builder.feed(chunk).encoded()
    yield builder.finish().encoded()


def records(stored: StoredLog, chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The records of the object as dicts, one at a time."""
    for encoded in encoded_records(stored, chunks):
        yield from (orjson.loads(item) for item in encoded)


def render(stored: StoredLog, rendering: str, chunks: Iterable[bytes],
           max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[bytes]:
    """The log as ``rendering`` (``txt``, ``ndjson`` or ``json``), streamed."""
    if rendering == stored.format:
        yield from decompressed(stored.compression, chunks)
        return
    batches = encoded_records(stored, chunks, max_line_bytes)
    if rendering == "txt":
        for encoded in batches:
            yield b"".join(_text_of(item) for item in encoded)
        return
    encoder = FormatEncoder(rendering)
    yield encoder.header()
    for encoded in batches:
        yield encoder.encode_records(encoded)
    yield encoder.footer()


def _text_of(encoded: bytes) -> bytes:
    record = orjson.loads(encoded)
    text = str(record.get("message") or "").encode("utf-8", "replace")
    return text if record.get("partial") else text + b"\n"
