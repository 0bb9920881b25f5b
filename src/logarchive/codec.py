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

import importlib.util
import os
import re
import zlib
from collections.abc import Iterable
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any, Literal

import orjson

from logarchive import parse
from logarchive.sourcestats import SourceStats  # noqa: F401  (moved; imported from here)

Format = Literal["txt", "json", "ndjson"]
Compression = Literal["none", "gzip", "zstd"]
FORMATS: tuple[str, ...] = ("txt", "json", "ndjson")
COMPRESSIONS: tuple[str, ...] = ("none", "gzip", "zstd")
RECORD_KEYS = frozenset(
    {"seq", "timestamp", "level", "message", "part", "partial", "continuation", "event_id"}
)
DEFAULT_MAX_LINE_BYTES = 1024 * 1024
_REPLACEMENT_UTF8 = "\ufffd".encode()


def extension(fmt: str, compression: str) -> str:
    """File extension for a format and compression: ``ndjson.gz``, ``txt.zst``, ``json``;
    ``parquet`` whatever the compression (Parquet compresses its columns, not the file)."""
    if fmt == "parquet":
        return "parquet"
    suffix = {"none": "", "gzip": ".gz", "zstd": ".zst"}[compression]
    return f"{fmt}{suffix}"


def parse_timestamp(text: str) -> str | None:
    """The line's timestamp, canonical UTC (:func:`logarchive.parse.timestamp`), else ``None``."""
    return parse.timestamp(text)


def timestamp_to_epoch(timestamp: str | None) -> float | None:
    """Epoch seconds of a timestamp produced by :func:`parse_timestamp` (naive = UTC)."""
    if timestamp is None:
        return None
    value = datetime.fromisoformat(timestamp)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def parse_level(text: str) -> str | None:
    """The line's level (:func:`logarchive.parse.level`), else ``None``."""
    return parse.level(text)


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
_LEVEL_JSON.update({name: b'"%s"' % name.encode() for name in parse.LEVELS})
_BOOL_JSON = {True: b"true", False: b"false"}

Row = tuple[int, int, bool, str, "str | None", "str | None"]

# --- the fast path ------------------------------------------------------------------------------
# Most lines of a training log have one of two shapes; runs of consecutive lines of one shape are
# recognised by one regex match (C) and encoded with C-level map/zip/%-formatting, without a
# Python call per line. Everything else (quotes, backslashes, control characters, non-ASCII,
# other timestamp forms, lines over max_line_bytes) takes the per-line path below, which defines
# the semantics; the fast path produces the very same bytes.
#
# Shape A: ``<canonical timestamp> [LEVEL]<clean ASCII>``: the timestamp is
# parse_timestamp's canonical form with a valid calendar date (Feb 29 is left to the slow path),
# the level an upper-case name right after it (so it is the first ``[`` of the line).
# Shape B: no timestamp (first byte not a digit) and no ``[`` in the first 80 bytes, and no level
# name anywhere (_MAYBE_LEVEL: the other level markers of logarchive.parse): both null.
_CLEAN = rb'[ !#-\[\]-~\x7f]'       # printable ASCII except " and \ : JSON-safe as is
_CLEAN_NB = rb'[ !#-Z\]-~\x7f]'     # the same without [
_FAST_DATE = (rb'(?!0000)\d{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-'
              rb'(?:29|30)|(?:0[13578]|1[02])-31)T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z')
_RUN_A = re.compile(rb'(?:' + _FAST_DATE + rb' \[(?:TRACE|DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|'
                    rb'ERR|CRITICAL|CRIT|FATAL)\]' + _CLEAN + rb'*\n)+')
_RUN_B = re.compile(rb'(?:(?![0-9])(?:' + _CLEAN_NB + rb'{0,79}\n|' + _CLEAN_NB + rb'{80}'
                    + _CLEAN + rb'*\n))+')
_MAYBE_LEVEL = re.compile(rb"(?i:TRACE|DEBUG|INFO|NOTICE|WARN|ERR|CRIT|FATAL)")
_LEVEL3 = {b"TRA": b'"trace"', b"DEB": b'"debug"', b"INF": b'"info"', b"NOT": b'"notice"',
           b"WAR": b'"warning"', b"ERR": b'"error"', b"CRI": b'"critical"', b"FAT": b'"critical"'}
_TS_SLICE = itemgetter(slice(0, 24))
_LEVEL_SLICE = itemgetter(slice(26, 29))


def _run_b(region: bytes, pos: int, end: int) -> re.Match[bytes] | None:
    """A run of shape B from ``pos``, ending before the first line that names a level."""
    found = _RUN_B.match(region, pos, end)
    named = found and _MAYBE_LEVEL.search(region, pos, found.end())
    if named:
        stop = region.rfind(b"\n", pos, named.start()) + 1
        found = None if stop == pos else _RUN_B.match(region, pos, stop)
    return found


def _encode_rows(rows: list[Row], tail: bytes) -> bytes:
    """The per-line path's JSON: one object per row, as ``orjson.dumps(record)`` writes it."""
    dumps, levels = orjson.dumps, _LEVEL_JSON
    out = []
    for seq, part, last, text, ts, level in rows:
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
    return b"\n".join(out)


class LineBatch:
    """The records of one chunk, encoded once as JSON objects separated by ``\\n`` (records never
    hold a raw newline), rendered on demand: ``encoded()`` one JSON object per record (what
    ``orjson.dumps(record)`` writes), ``ndjson()`` / ``json_body()`` the bytes of an archive,
    ``records()`` as dicts for record sinks (decoded by orjson from the same bytes, so both
    renderings carry the same keys in the same order)."""

    __slots__ = ("blob", "count", "_records")
    columnar = False
    """True on batches of the columnar codec, whose :meth:`arrow` costs no conversion."""

    def __init__(self, blob: bytes, count: int) -> None:
        self.blob = blob
        self.count = count
        self._records: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return self.count

    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            self._records = (orjson.loads(b"[" + self.blob.replace(b"\n", b",") + b"]")
                             if self.count else [])
        return self._records

    def encoded(self) -> list[bytes]:
        return self.blob.split(b"\n") if self.count else []

    def ndjson(self) -> bytes:
        return self.blob + b"\n" if self.count else b""

    def json_body(self) -> bytes:
        """The records as elements of a JSON array, separated by ``,\\n``."""
        return self.blob.replace(b"\n", b",\n")

    def arrow(self) -> Any:
        """The records as a ``pyarrow.RecordBatch`` of :data:`logarchive.columnar.SCHEMA`
        (needs pyarrow; built from :meth:`records` here, from the columns themselves on the
        columnar codec's batches)."""
        from logarchive.columnar import records_batch

        return records_batch(self.records())


class RecordBuilder:
    """Turns a byte stream into records (one per line, or per piece of a long line).

    ``fields`` (the run's identifying fields) are added to every record. ``feed`` and ``finish``
    return a :class:`LineBatch`.
    """

    def __init__(self, fields: dict[str, Any], max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 parse: parse.ParseSettings = parse.DEFAULT):
        self.splitter = LineSplitter(max_line_bytes)
        self.fields = fields
        self.parse = parse
        encoded_fields = orjson.dumps(fields)  # b'{"source":"x","run_id":"y"}'
        self._tail = b"," + encoded_fields[1:] if fields else b"}"
        escaped = self._tail.replace(b"%", b"%%")
        self._template_a = b'{"seq":%d,"timestamp":"%b","level":%b,"message":"%b"' + escaped
        self._template_b = b'{"seq":%d,"timestamp":null,"level":null,"message":"%b"' + escaped
        self.invalid_utf8 = 0
        self.records = 0

    def feed(self, chunk: bytes) -> LineBatch:
        splitter = self.splitter
        blobs: list[bytes] = []
        start = count = 0
        if splitter._buf or splitter._part:  # finish the pending line the slow way
            newline = chunk.find(b"\n")
            if newline == -1:
                return self._slow(chunk, blobs, 0)
            count += self._slow(chunk[:newline + 1], blobs)
            start = newline + 1
        last = chunk.rfind(b"\n")
        if last >= start:
            count += self._lines(chunk[start:last + 1] if start or last + 1 < len(chunk)
                                 else chunk, blobs)
            start = last + 1
        if start < len(chunk):
            count += self._slow(chunk[start:], blobs)
        return LineBatch(b"\n".join(blobs), count)

    def finish(self) -> LineBatch:
        rows = self._rows(self.splitter.finish())
        return LineBatch(_encode_rows(rows, self._tail), len(rows))

    def _lines(self, region: bytes, blobs: list[bytes]) -> int:
        """Complete lines (``region`` ends with ``\\n``): runs of fast shapes, else line by line."""
        count, pos, end = 0, 0, len(region)
        match_a = _RUN_A.match
        limit = self.splitter.max_line_bytes
        while pos < end:
            found = match_a(region, pos)
            template = self._template_a
            if found is None:
                found = _run_b(region, pos, end)
                template = self._template_b
            if found is not None:
                stop = found.end()
                lines = region[pos:stop - 1].split(b"\n")
                if stop - pos <= limit or max(map(len, lines)) <= limit:
                    first = self.splitter._seq + 1
                    seqs = range(first, first + len(lines))
                    if template is self._template_a:
                        levels = map(_LEVEL3.__getitem__, map(_LEVEL_SLICE, lines))
                        rows = zip(seqs, map(_TS_SLICE, lines), levels, lines)
                    else:
                        rows = zip(seqs, lines)
                    blobs.append(b"\n".join(map(template.__mod__, rows)))
                    self.splitter._seq += len(lines)
                    self.records += len(lines)
                    count += len(lines)
                    pos = stop
                    continue
                # a line over the cap in this run: the per-line path splits it into parts
            else:
                stop = region.index(b"\n", pos) + 1
            count += self._slow(region[pos:stop], blobs)
            pos = stop
        return count

    def _slow(self, data: bytes, blobs: list[bytes], count: int | None = None) -> Any:
        rows = self._rows(self.splitter.feed(data))
        if rows:
            blobs.append(_encode_rows(rows, self._tail))
        if count is not None:  # called for a whole chunk: return its LineBatch
            return LineBatch(b"\n".join(blobs), len(rows))
        return len(rows)

    def _rows(self, pieces: Iterable[tuple[int, int, bool, bytes]]) -> list[Row]:
        rows: list[Row] = []
        append, settings, parse_line = rows.append, self.parse, parse.line
        for seq, part, last, raw in pieces:
            text, bad = decode_line(raw)
            if bad:
                self.invalid_utf8 += bad
            if part <= 1:
                append((seq, part, last, text, *parse_line(text, settings)))
            else:
                append((seq, part, last, text, None, None))
        self.records += len(rows)
        return rows


# --- the columnar builder ------------------------------------------------------------------------
# Records of a chunk in columns (logarchive.columnar: Arrow kernels). A region of complete lines
# that is nearly all of the two fast shapes keeps the fast path above for its NDJSON (measured
# faster than the kernels on such lines) and needs no pyarrow until its columns are asked for:
# a log of such lines never imports pyarrow (start-up and ~90 MB of RSS saved).

class ColumnBatch(LineBatch):
    """A :class:`LineBatch` whose records are also columns (:meth:`arrow`, built on demand
    from what each region of the chunk kept: Arrow columns, a fast-path region, or reference
    rows). ``ndjson`` (each record ending with ``\\n``) is kept as built: no copy to render."""

    __slots__ = ("_parts", "_ndjson")
    columnar = True

    def __init__(self, ndjson: bytes, count: int, parts: list[Any]) -> None:
        self.count = count
        self._records = None
        self._ndjson = ndjson
        self._parts = parts

    @property  # type: ignore[override]
    def blob(self) -> bytes:
        """The records separated by ``\\n`` (what :class:`LineBatch` keeps)."""
        return self._ndjson[:-1]

    def ndjson(self) -> bytes:
        return self._ndjson

    def arrow(self) -> Any:
        """The records as a ``pyarrow.RecordBatch`` of :data:`logarchive.columnar.SCHEMA`
        (run fields are not columns: they are the same for every record of a run)."""
        from logarchive import columnar

        self._parts = [columnar.as_columns(part) for part in self._parts]
        return columnar.concat(self._parts)

    @property
    def columns_ready(self) -> bool:
        """Whether :meth:`arrow` costs no conversion: no region took the per-line fast path
        (its columns would be built from scratch)."""
        return not any(isinstance(part, FastRegion) for part in self._parts)


class FastRegion:
    """A region encoded by the fast path; its columns are built when first asked for."""

    __slots__ = ("region", "first", "num_rows", "max_line_bytes", "parse")

    def __init__(self, region: bytes, first: int, count: int, max_line_bytes: int,
                 parse: parse.ParseSettings) -> None:
        self.region, self.first, self.num_rows = region, first, count
        self.max_line_bytes, self.parse = max_line_bytes, parse

    def rows(self) -> list[Row]:
        """The region's rows by the per-line reference (a long line in it became parts)."""
        builder = RecordBuilder({}, self.max_line_bytes, parse=self.parse)
        builder.splitter._seq = self.first - 1
        return builder._rows(builder.splitter.feed(self.region))


class RowsPart(list):  # type: ignore[type-arg]
    """Rows of the per-line reference path (a pending line, parts of a long line)."""

    @property
    def num_rows(self) -> int:
        return len(self)


_SAMPLE = 16 * 1024


def fast_shapes(region: bytes) -> bool:
    """Whether 90% of the region's first 64 KiB are runs of the fast path's two shapes."""
    end = region.rfind(b"\n", 0, _SAMPLE) + 1 or len(region)
    pos = missed = 0
    match_a = _RUN_A.match
    while pos < end:
        found = match_a(region, pos, end) or _run_b(region, pos, end)
        if found is not None:
            pos = found.end()
        else:
            stop = region.find(b"\n", pos, end) + 1 or end
            missed += stop - pos
            if missed > 0.1 * end:  # decided: stop early (on a mixed log, after a few lines)
                return False
            pos = stop
    return True


class ColumnarBuilder(RecordBuilder):
    """:class:`RecordBuilder`'s records and bytes, a chunk at a time in columns: regions of
    other lines go through :func:`logarchive.columnar.region_records` (Arrow kernels)."""

    def __init__(self, fields: dict[str, Any], max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 parse: parse.ParseSettings = parse.DEFAULT):
        super().__init__(fields, max_line_bytes, parse)
        self._tail_text = self._tail.decode() + "\n"

    def feed(self, chunk: bytes) -> ColumnBatch:
        blobs: list[bytes] = []
        parts: list[Any] = []
        start = 0
        if self.splitter._buf or self.splitter._part:  # finish the pending line the slow way
            newline = chunk.find(b"\n")
            start = len(chunk) if newline == -1 else newline + 1
            self._reference(chunk[:start], blobs, parts)
        last = chunk.rfind(b"\n")
        if last >= start:
            self._region(chunk[start:last + 1] if start or last + 1 < len(chunk) else chunk,
                         blobs, parts)
            start = last + 1
        if start < len(chunk):
            self._reference(chunk[start:], blobs, parts)
        return self._batch(blobs, parts)

    def finish(self) -> ColumnBatch:
        blobs: list[bytes] = []
        parts: list[Any] = []
        rows = self._rows(self.splitter.finish())
        if rows:
            blobs.append(_encode_rows(rows, self._tail) + b"\n")
            parts.append(RowsPart(rows))
        return self._batch(blobs, parts)

    @staticmethod
    def _batch(blobs: list[bytes], parts: list[Any]) -> ColumnBatch:
        count = sum(p.num_rows for p in parts)
        return ColumnBatch(blobs[0] if len(blobs) == 1 else b"".join(blobs), count, parts)

    def _reference(self, data: bytes, blobs: list[bytes], parts: list[Any]) -> None:
        rows = self._rows(self.splitter.feed(data))
        if rows:
            blobs.append(_encode_rows(rows, self._tail) + b"\n")
            parts.append(RowsPart(rows))

    def _region(self, region: bytes, blobs: list[bytes], parts: list[Any]) -> None:
        """Complete lines (``region`` ends with ``\\n``)."""
        first = self.splitter._seq + 1
        if fast_shapes(region):
            pieces: list[bytes] = []
            count = self._lines(region, pieces)
            pieces.append(b"")  # the final LF, without copying the region's NDJSON again
            blobs.append(b"\n".join(pieces))
            parts.append(FastRegion(region, first, count, self.splitter.max_line_bytes,
                                    self.parse))
            return
        from logarchive import columnar

        built = columnar.region_records(region, first, self.splitter.max_line_bytes,
                                        self._tail_text, self.parse)
        if built is None:  # a line over the cap becomes parts: the reference does it
            self._reference(region, blobs, parts)
            return
        for piece in built:
            blobs.append(piece.ndjson)
            parts.append(piece.columns)
            self.invalid_utf8 += piece.invalid
            self.splitter._seq += piece.columns.num_rows
            self.records += piece.columns.num_rows


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # blocked (None in sys.modules) or a broken install
        return False


def new_builder(fields: dict[str, Any], max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                columnar: bool | None = None, *,
                parse: parse.ParseSettings = parse.DEFAULT) -> RecordBuilder:
    """The record builder of a run: the columnar one (:class:`ColumnarBuilder`, Arrow kernels)
    when pyarrow and numpy are installed (the ``[parquet]`` extra), else this module's per-line
    :class:`RecordBuilder`. Both produce the same records and bytes (fuzzed). Measured on a quiet
    machine (docs/benchmarks.md), the columnar one is ~2x faster on mixed real-world logs (0.71x
    against 0.36x jq) for ~130 MB peak RSS (per-line: ~70 MB), and the same on the fast shapes,
    where it keeps the per-line fast path and imports no pyarrow. ``columnar`` (or
    ``LOGARCHIVE_CODEC=columnar`` / ``per-line``) forces one; forcing the columnar one without
    its extra is an ImportError naming it. ``parse``: how timestamps and levels are found
    (``[logarchive.parse]``)."""
    if columnar is None:
        chosen = os.environ.get("LOGARCHIVE_CODEC", "")
        columnar = (chosen == "columnar" or chosen != "per-line" and _installed("pyarrow")
                    and _installed("numpy"))
    if columnar:
        if _installed("pyarrow") and _installed("numpy"):
            return ColumnarBuilder(fields, max_line_bytes, parse)
        raise ImportError("the columnar codec needs pyarrow and numpy: "
                          "pip install 'logarchive[parquet]'")
    return RecordBuilder(fields, max_line_bytes, parse)


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

    def encode_batch(self, batch: LineBatch) -> bytes:
        """Same bytes as ``encode_records(batch.encoded())``, without splitting the batch."""
        if not batch.count:
            return b""
        if self.format == "ndjson":
            return batch.ndjson()
        body = batch.json_body()
        if self._first:
            self._first = False
            return b"\n" + body
        return b",\n" + body

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
    """orjson-encode record dicts (what :meth:`LineBatch.encoded` produces without the dicts)."""
    dumps = orjson.dumps
    return [dumps(r) for r in records]
