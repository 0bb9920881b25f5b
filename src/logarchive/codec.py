"""The line codec: source bytes in, txt / json / ndjson (optionally compressed) out, streaming.

Nothing here ever holds more than one chunk plus one partial line (itself capped at
``max_line_bytes``) in memory.

Line model
    The source is split on ``\\n``. A trailing ``\\n`` ends the last line (no empty line after
    it); a last line without a newline is still a line; an empty source has no line. One ``\\r``
    right before ``\\n`` (CRLF) is not part of the message. A line longer than ``max_line_bytes``
    becomes several records with the same ``seq``, numbered ``part`` 1..n, with ``partial: true``
    on all but the last and ``continuation: true`` on all but the first. Cuts never split a UTF-8
    character. Invalid UTF-8 is replaced with U+FFFD and counted.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Literal

import orjson

Format = Literal["txt", "json", "ndjson"]
Compression = Literal["none", "gzip", "zstd"]
FORMATS: tuple[str, ...] = ("txt", "json", "ndjson")
COMPRESSIONS: tuple[str, ...] = ("none", "gzip", "zstd")
RECORD_KEYS = frozenset(
    {"seq", "timestamp", "level", "message", "part", "partial", "continuation", "event_id"}
)
DEFAULT_MAX_LINE_BYTES = 1024 * 1024
_REPLACEMENT_UTF8 = "\ufffd".encode()

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|z|[+-]\d{2}(?::?\d{2})?)?"
)
_LEVEL_NAMES = {
    "TRACE": "trace", "DEBUG": "debug", "INFO": "info", "NOTICE": "notice", "WARN": "warning",
    "WARNING": "warning", "ERROR": "error", "ERR": "error", "CRITICAL": "critical",
    "CRIT": "critical", "FATAL": "critical",
}
_LEVEL_WINDOW = 80


def extension(fmt: str, compression: str) -> str:
    """File extension for a format and compression: ``ndjson.gz``, ``txt.zst``, ``json``."""
    suffix = {"none": "", "gzip": ".gz", "zstd": ".zst"}[compression]
    return f"{fmt}{suffix}"


_last_minute = ""
_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def parse_timestamp(text: str) -> str | None:
    """ISO-8601 timestamp at the very start of a line, normalised (UTC ``Z`` when it has an
    offset), else ``None``."""
    if len(text) < 16 or not text[:4].isdigit():
        return None
    # Fast path: already canonical (``2026-03-13T10:00:00.123Z``), the usual training-log form.
    # The date, hour and minute are validated once per distinct minute (consecutive lines share
    # them); only the seconds are checked per line.
    global _last_minute
    if len(text) >= 24 and text[23] == "Z" and _CANONICAL.match(text) and text[17:19] < "60":
        if len(text) == 24 or not text[24].isdigit():
            minute = text[:16]
            if minute != _last_minute:
                try:
                    datetime.fromisoformat(minute)
                except ValueError:
                    return None
                _last_minute = minute
            return text[:24]
    match = _TIMESTAMP.match(text)
    if match is None:
        return None
    raw = match.group(0).replace(",", ".")
    try:
        value = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.isoformat(timespec="milliseconds")
    value = value.astimezone(timezone.utc)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timestamp_to_epoch(timestamp: str | None) -> float | None:
    """Epoch seconds of a timestamp produced by :func:`parse_timestamp` (naive = UTC)."""
    if timestamp is None:
        return None
    value = datetime.fromisoformat(timestamp)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def parse_level(text: str) -> str | None:
    """Level from an ``[INFO]``-style marker near the start of a line, lower-cased and
    canonical (``warn`` → ``warning``), else ``None``."""
    start = text.find("[", 0, _LEVEL_WINDOW)
    while start != -1:
        end = text.find("]", start + 1, start + 11)
        if end != -1:
            name = _LEVEL_NAMES.get(text[start + 1:end].upper())
            if name is not None:
                return name
        start = text.find("[", start + 1, _LEVEL_WINDOW)
    return None


def _utf8_cut(data: bytes | bytearray, limit: int) -> int:
    """Largest cut position <= limit that does not split a UTF-8 character (>= 1)."""
    cut = limit
    # Step back over at most 3 continuation bytes to the lead byte of the last character.
    for back in range(1, 4):
        pos = limit - back
        if pos <= 0:
            break
        byte = data[pos]
        if byte & 0xC0 != 0x80:  # not a continuation byte: ASCII or a lead byte
            if byte >= 0xC0:
                need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
                if back < need:  # the character starting at pos is not complete before limit
                    cut = pos
            break
    return cut if cut > 0 else limit


class LineSplitter:
    """Splits a byte stream into lines, capping each piece at ``max_line_bytes``.

    ``feed`` and ``finish`` return ``(seq, part, last, raw)`` tuples: ``part`` is 0 for a line
    that was not split, else 1..n; ``last`` is True on the final piece of a line; ``raw`` excludes
    the ``\\n`` and a CR right before it.
    """

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 4:
            raise ValueError("max_line_bytes must be at least 4")
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()
        self._seq = 0
        self._part = 0

    def feed(self, chunk: bytes) -> list[tuple[int, int, bool, bytes]]:
        out: list[tuple[int, int, bool, bytes]] = []
        if not chunk:
            return out
        pieces = chunk.split(b"\n")
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            if index < last:
                if self._buf:
                    self._buf += piece
                    self._emit_long(out)
                    line = bytes(self._buf)
                    self._buf.clear()
                elif len(piece) > self.max_line_bytes:
                    self._buf += piece
                    self._emit_long(out)
                    line = bytes(self._buf)
                    self._buf.clear()
                else:
                    line = piece
                if line.endswith(b"\r"):
                    line = line[:-1]
                self._seq += 1
                out.append((self._seq, self._part + 1 if self._part else 0, True, line))
                self._part = 0
            elif piece:
                self._buf += piece
                self._emit_long(out)
        return out

    def _emit_long(self, out: list[tuple[int, int, bool, bytes]]) -> None:
        limit = self.max_line_bytes
        while len(self._buf) > limit:
            cut = _utf8_cut(self._buf, limit)
            if self._buf[cut - 1] == 0x0D and cut > 1:  # keep a CR with what follows (CRLF)
                cut -= 1
            piece = bytes(self._buf[:cut])
            del self._buf[:cut]
            self._part += 1
            out.append((self._seq + 1, self._part, False, piece))

    def finish(self) -> list[tuple[int, int, bool, bytes]]:
        """Flush the last line if the stream did not end with a newline."""
        if not self._buf and not self._part:
            return []
        line = bytes(self._buf)  # no LF follows, so a trailing CR is content
        self._buf.clear()
        self._seq += 1
        piece = (self._seq, self._part + 1 if self._part else 0, True, line)
        self._part = 0
        return [piece]

    @property
    def lines(self) -> int:
        return self._seq


def decode_line(raw: bytes) -> tuple[str, int]:
    """Decode one line; returns the text and how many invalid sequences were replaced."""
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        return text, text.count("\ufffd") - raw.count(_REPLACEMENT_UTF8)


_LEVEL_JSON: dict[str | None, bytes] = {None: b"null"}
_LEVEL_JSON.update({name: b'"%s"' % name.encode() for name in set(_LEVEL_NAMES.values())})
_BOOL_JSON = {True: b"true", False: b"false"}

Row = tuple[int, int, bool, str, "str | None", "str | None"]


class Batch:
    """The records of one chunk, parsed once (text, timestamp, level), rendered on demand:
    ``records()`` as dicts (record sinks), ``encoded()`` as JSON bytes (json/ndjson objects).
    Both renderings carry the same keys in the same order."""

    __slots__ = ("rows", "_fields", "_tail", "_records", "_encoded")

    def __init__(self, rows: list[Row], fields: dict[str, Any], tail: bytes) -> None:
        self.rows = rows
        self._fields = fields
        self._tail = tail
        self._records: list[dict[str, Any]] | None = None
        self._encoded: list[bytes] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            fields = self._fields
            out = []
            for seq, part, last, text, ts, level in self.rows:
                record: dict[str, Any] = {
                    "seq": seq, "timestamp": ts, "level": level, "message": text,
                }
                if part:
                    record["part"] = part
                    record["partial"] = not last
                    record["continuation"] = part > 1
                record.update(fields)
                out.append(record)
            self._records = out
        return self._records

    def encoded(self) -> list[bytes]:
        """One JSON object per record, as ``orjson.dumps(record)`` would write it, without
        building the dicts (the hot path of json/ndjson archives)."""
        if self._encoded is None:
            dumps, tail, levels = orjson.dumps, self._tail, _LEVEL_JSON
            out = []
            for seq, part, last, text, ts, level in self.rows:
                stamp = b"null" if ts is None else b'"%b"' % ts.encode()
                if part:
                    out.append(
                        b'{"seq":%d,"timestamp":%b,"level":%b,"message":%b,"part":%d,'
                        b'"partial":%b,"continuation":%b%b'
                        % (seq, stamp, levels[level], dumps(text), part, _BOOL_JSON[not last],
                           _BOOL_JSON[part > 1], tail)
                    )
                else:
                    out.append(b'{"seq":%d,"timestamp":%b,"level":%b,"message":%b%b'
                               % (seq, stamp, levels[level], dumps(text), tail))
            self._encoded = out
        return self._encoded


class RecordBuilder:
    """Turns a byte stream into records (one per line, or per piece of a long line).

    ``fields`` (the run's identifying fields) are added to every record. ``feed`` and ``finish``
    return a :class:`Batch`.
    """

    def __init__(self, fields: dict[str, Any], max_line_bytes: int = DEFAULT_MAX_LINE_BYTES):
        self.splitter = LineSplitter(max_line_bytes)
        self.fields = fields
        encoded_fields = orjson.dumps(fields)  # b'{"source":"x","run_id":"y"}'
        self._tail = b"," + encoded_fields[1:] if fields else b"}"
        self.invalid_utf8 = 0
        self.records = 0

    def feed(self, chunk: bytes) -> Batch:
        return self._build(self.splitter.feed(chunk))

    def finish(self) -> Batch:
        return self._build(self.splitter.finish())

    def _build(self, pieces: Iterable[tuple[int, int, bool, bytes]]) -> Batch:
        rows: list[Row] = []
        append = rows.append
        for seq, part, last, raw in pieces:
            text, bad = decode_line(raw)
            if bad:
                self.invalid_utf8 += bad
            if part <= 1:
                append((seq, part, last, text, parse_timestamp(text), parse_level(text)))
            else:
                append((seq, part, last, text, None, None))
        self.records += len(rows)
        return Batch(rows, self.fields, self._tail)


class SourceStats:
    """sha256, size, line count and invalid-UTF-8 count of the raw source bytes, chunk by chunk.

    No per-line work: lines are counted with ``bytes.count``; UTF-8 is only decoded for chunks
    that are not pure ASCII.
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0
        self._newlines = 0
        self._last_byte = b"\n"
        self.invalid_utf8 = 0
        self._decoder = _IncrementalReplaceCounter()

    def update(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._sha.update(chunk)
        self.size += len(chunk)
        self._newlines += chunk.count(b"\n")
        self._last_byte = chunk[-1:]
        self.invalid_utf8 += self._decoder.feed(chunk)

    def finish(self) -> None:
        self.invalid_utf8 += self._decoder.finish()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def lines(self) -> int:
        return self._newlines + (0 if self._last_byte == b"\n" else 1)


class _IncrementalReplaceCounter:
    """Counts invalid UTF-8 sequences across chunk boundaries (same count as decode_line)."""

    def __init__(self) -> None:
        import codecs

        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._tail = b""
        self._ascii = True

    def feed(self, chunk: bytes) -> int:
        if self._ascii and chunk.isascii():
            return 0
        self._ascii = False
        text = self._decoder.decode(chunk)
        genuine = (self._tail + chunk).count(_REPLACEMENT_UTF8)
        self._tail = chunk[-2:]
        return text.count("\ufffd") - genuine

    def finish(self) -> int:
        if self._ascii:
            return 0
        return self._decoder.decode(b"", final=True).count("\ufffd")


class Compressor:
    """Streaming compressor: ``compress(data)`` then ``flush()`` once."""

    def __init__(self, name: str, level: int | None = None) -> None:
        self.name = name
        if name == "none":
            self._obj = None
        elif name == "gzip":
            # wbits=31: gzip container, mtime 0, so the same input gives the same bytes.
            self._obj = zlib.compressobj(6 if level is None else level, zlib.DEFLATED, 31)
        elif name == "zstd":
            import zstandard

            self._obj = zstandard.ZstdCompressor(level=3 if level is None else level).compressobj()
        else:
            raise ValueError(f"unknown compression {name!r}; expected one of {COMPRESSIONS}")

    def compress(self, data: bytes) -> bytes:
        return data if self._obj is None else self._obj.compress(data)

    def flush(self) -> bytes:
        return b"" if self._obj is None else self._obj.flush()


def decompress_stream(name: str, chunks: Iterable[bytes]) -> Iterable[bytes]:
    """Inverse of :class:`Compressor`, streaming (used by verify and tests)."""
    if name == "none":
        yield from chunks
        return
    if name == "gzip":
        obj = zlib.decompressobj(31)
        for chunk in chunks:
            yield obj.decompress(chunk)
        yield obj.flush()
        return
    if name == "zstd":
        import zstandard

        zobj = zstandard.ZstdDecompressor().decompressobj()
        for chunk in chunks:
            yield zobj.decompress(chunk)
        return
    raise ValueError(f"unknown compression {name!r}")


class FormatEncoder:
    """Encodes one run into one output format; feed it raw chunks (txt) or records (json/ndjson).

    ``header()`` / ``footer()`` frame the json array so an empty log is ``[]``.
    """

    def __init__(self, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
        self.format = fmt
        self.needs_records = fmt != "txt"
        self._first = True

    def header(self) -> bytes:
        return b"[" if self.format == "json" else b""

    def encode_chunk(self, chunk: bytes) -> bytes:
        return chunk

    def encode_records(self, encoded: list[bytes]) -> bytes:
        if not encoded:
            return b""
        if self.format == "ndjson":
            return b"\n".join(encoded) + b"\n"
        body = b",\n".join(encoded)
        if self._first:
            self._first = False
            return b"\n" + body
        return b",\n" + body

    def footer(self) -> bytes:
        if self.format != "json":
            return b""
        return b"]\n" if self._first else b"\n]\n"


def encode_records(records: list[dict[str, Any]]) -> list[bytes]:
    """orjson-encode record dicts (what :meth:`Batch.encoded` produces without the dicts)."""
    dumps = orjson.dumps
    return [dumps(r) for r in records]
