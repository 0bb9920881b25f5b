"""The columnar line codec: a chunk of source bytes becomes columns (seq, timestamp, level,
message, part flags) computed by Arrow compute kernels, and every output is rendered from them.

Needs pyarrow (``pip install 'logarchive[parquet]'``); :func:`logarchive.codec.new_builder`
uses it when pyarrow is installed and falls back to :class:`logarchive.codec.RecordBuilder`
otherwise. That per-line builder defines the semantics: :class:`ColumnarBuilder` produces the
very same records and the very same NDJSON bytes (fuzzed in ``tests/test_codec_fuzz.py``).

How a chunk goes through (no Python call per line on the common path):

1. The line pending from the previous chunk (and any line longer than ``max_line_bytes``, which
   becomes parts) goes through the per-line reference; the region of complete lines is columnar.
2. The region is decoded once (strict UTF-8; only a region with invalid bytes is decoded with
   replacement and re-encoded: ``\\n`` never belongs to an invalid sequence, so this equals
   decoding line by line) and split on ``\\n`` by one ``split_pattern`` kernel; one CR before
   ``\\n`` is dropped.
3. Timestamps and levels: :func:`parse_columns` (RE2 kernels for the common forms, the
   reference parser for the rare lines no kernel decides).
4. JSON: messages that need escaping get it from ``replace_substring`` kernels (orjson per line
   for the rare control characters other than tab and CR); one ``binary_join_element_wise``
   writes every record, and the NDJSON of the chunk is the data buffer of that array.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from logarchive import codec
from logarchive.codec import LineBatch, RecordBuilder

SCHEMA = pa.schema([
    ("seq", pa.int64()), ("timestamp", pa.string()), ("level", pa.string()),
    ("message", pa.string()), ("part", pa.int32()), ("partial", pa.bool_()),
    ("continuation", pa.bool_()),
])
"""Columns of :meth:`ColumnBatch.arrow`: ``part``, ``partial`` and ``continuation`` are null on
a line that was not split (the record has no such keys)."""

# --- timestamps and levels ----------------------------------------------------------------------
# Two timestamp shapes are decided by kernels (the canonical ``2026-03-13T10:00:00.123Z`` and
# Python logging's ``2026-03-13 10:00:00,123`` followed by no offset); a line that starts with a
# digit (or a non-ASCII character) in any other way is handed to the reference parser.
_HOUR_MINUTE = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_SHAPE_Z = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T%s:[0-5][0-9]\.[0-9]{3}Z(?:[^0-9]|$)" % _HOUR_MINUTE
_SHAPE_PY = (r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2}) (?P<time>%s:[0-5][0-9]),(?P<ms>[0-9]{3})"
             r"(?P<end>$|[^0-9Zz+\- ]| $| [^+\-]| [+\-]$| [+\-][^0-9])" % _HOUR_MINUTE)
_MAYBE_TS = r"^([0-9]|[^\x00-\x7f])"


def _letter(upper: str) -> str:
    """A regex class of the characters whose ``str.upper()`` is ``upper`` (``I``: ``Iiı``)."""
    extra = "".join(chr(cp) for cp in range(0x80, 0x2000) if chr(cp).upper() == upper)
    return f"[{upper}{upper.lower()}{extra}]"


def _level_names() -> str:
    names = sorted(codec._LEVEL_NAMES, key=len, reverse=True)
    return "|".join("".join(_letter(c) for c in name) for name in names)


# A level bracket whose ``[`` is among the first 80 characters (DFA match, no capture), and the
# name of the leftmost level bracket (which is then that one, or an earlier one).
_HAS_LEVEL = r"^.{0,%d}\[(?:%s)\]" % (codec._LEVEL_WINDOW - 1, _level_names())
_LEVEL = r"\[(?P<name>%s)\]" % _level_names()


def reference_columns(messages: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Timestamps and levels by the per-line reference (``parse_timestamp`` / ``parse_level``)."""
    texts = messages.to_pylist()
    return (pa.array([codec.parse_timestamp(t) for t in texts], pa.string()),
            pa.array([codec.parse_level(t) for t in texts], pa.string()))


def parse_columns(messages: pa.Array, settings: Any = None) -> tuple[pa.Array, pa.Array]:
    """Timestamp and level of every message, as the reference parser gives them, vectorised.

    The adapter of the shape ``logarchive.parse.columns`` will have: (string array) ->
    (timestamps, levels), both string arrays with nulls. ``settings`` is unused until then.
    """
    return _timestamps(messages), _levels(messages)


def _timestamps(messages: pa.Array) -> pa.Array:
    out = pa.nulls(len(messages), pa.string())
    maybe = pc.match_substring_regex(messages, _MAYBE_TS)
    if not pc.any(maybe).as_py():
        return out
    canonical = pc.and_(maybe, pc.match_substring_regex(messages, _SHAPE_Z))
    python = pc.and_(maybe, pc.match_substring_regex(messages, _SHAPE_PY))
    decided = pc.or_(canonical, python)
    values = pc.if_else(canonical, pc.utf8_slice_codeunits(messages, 0, 24), out)
    parts = pc.extract_regex(pc.filter(messages, python), _SHAPE_PY)
    if len(parts):
        day, clock, millis, _ = parts.flatten()
        joined = pc.binary_join_element_wise(day, "T", clock, ".", millis, "")
        values = pc.replace_with_mask(values, python, joined)
    # The calendar (Feb 30, year 0): the few distinct dates of a chunk, checked by Python.
    dates = pc.utf8_slice_codeunits(values, 0, 10)
    distinct = pc.unique(dates).drop_null().to_pylist()
    good = pa.array([d for d in distinct if _valid_date(d)], pa.string())
    valid = pc.fill_null(pc.is_in(dates, good), False)
    values = pc.if_else(valid, values, out)
    undecided = pc.and_(maybe, pc.invert(pc.and_(decided, valid)))
    if pc.any(undecided).as_py():
        rest = pc.filter(messages, undecided).to_pylist()
        values = pc.replace_with_mask(values, undecided,
                                      pa.array(map(codec.parse_timestamp, rest), pa.string()))
    return values


def _valid_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _levels(messages: pa.Array) -> pa.Array:
    has = pc.match_substring_regex(messages, _HAS_LEVEL)
    if not pc.any(has).as_py():
        return pa.nulls(len(messages), pa.string())
    found = pc.extract_regex(pc.filter(messages, has), _LEVEL).flatten()[0]
    names = pc.unique(found).to_pylist()
    canonical = pa.array([codec._LEVEL_NAMES[name.upper()] for name in names], pa.string())
    levels = pc.take(canonical, pc.index_in(found, pa.array(names, pa.string())))
    return pc.replace_with_mask(pa.nulls(len(messages), pa.string()), has, levels)


# --- JSON ---------------------------------------------------------------------------------------
_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\t", "\\t"), ("\r", "\\r")]
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
_OTHER_CONTROL = r"[\x00-\x08\x0a-\x0c\x0e-\x1f]"


def json_strings(messages: pa.Array) -> pa.Array:
    """The body of each message as a JSON string (without the quotes), as orjson writes it."""
    needs = pc.match_substring_regex(messages, _NEEDS_ESCAPE)
    if not pc.any(needs).as_py():
        return messages
    subset = pc.filter(messages, needs)
    for raw, escaped in _ESCAPES:
        subset = pc.replace_substring(subset, raw, escaped)
    other = pc.match_substring_regex(subset, _OTHER_CONTROL)
    if pc.any(other).as_py():
        originals = pc.filter(pc.filter(messages, needs), other).to_pylist()
        subset = pc.replace_with_mask(
            subset, other, pa.array([orjson.dumps(t)[1:-1].decode() for t in originals]))
    return pc.replace_with_mask(messages, needs, subset)


def _quoted_or_null(values: pa.Array) -> pa.Array:
    return pc.fill_null(pc.binary_join_element_wise('"', values, '"', ""), "null")


# --- batches ------------------------------------------------------------------------------------

class ColumnBatch(LineBatch):
    """A :class:`LineBatch` that also holds its records as Arrow columns (:meth:`arrow`)."""

    __slots__ = ("_tables",)

    def __init__(self, blob: bytes, count: int, tables: list[pa.RecordBatch]) -> None:
        super().__init__(blob, count)
        self._tables = tables

    def arrow(self) -> pa.RecordBatch:
        """The batch's records as a record batch of :data:`SCHEMA` (run fields are not
        columns; they are the same for every record of a run)."""
        if len(self._tables) == 1:
            return self._tables[0]
        if not self._tables:
            return pa.RecordBatch.from_pylist([], schema=SCHEMA)
        return pa.concat_batches(self._tables)


def rows_table(rows: list[codec.Row]) -> pa.RecordBatch:
    """The reference path's rows as a record batch of :data:`SCHEMA`."""
    seqs, parts, lasts, texts, stamps, levels = zip(*rows) if rows else ([],) * 6
    return pa.record_batch({
        "seq": pa.array(seqs, pa.int64()), "timestamp": pa.array(stamps, pa.string()),
        "level": pa.array(levels, pa.string()), "message": pa.array(texts, pa.string()),
        "part": pa.array([p or None for p in parts], pa.int32()),
        "partial": pa.array([(not last) if p else None for p, last in zip(parts, lasts)],
                            pa.bool_()),
        "continuation": pa.array([(p > 1) if p else None for p in parts], pa.bool_()),
    }, schema=SCHEMA)


class ColumnarBuilder(RecordBuilder):
    """:class:`RecordBuilder`'s records, built by Arrow kernels a chunk at a time."""

    def __init__(self, fields: dict[str, Any],
                 max_line_bytes: int = codec.DEFAULT_MAX_LINE_BYTES) -> None:
        super().__init__(fields, max_line_bytes)
        self._tail_text = self._tail.decode() + "\n"
        self._counter = pa.array([], pa.int64())

    def feed(self, chunk: bytes) -> ColumnBatch:
        blobs: list[bytes] = []
        tables: list[pa.RecordBatch] = []
        start = 0
        if self.splitter._buf or self.splitter._part:  # finish the pending line the slow way
            newline = chunk.find(b"\n")
            start = len(chunk) if newline == -1 else newline + 1
            self._reference(chunk[:start], blobs, tables)
        last = chunk.rfind(b"\n")
        if last >= start:
            self._region(chunk[start:last + 1] if start or last + 1 < len(chunk) else chunk,
                         blobs, tables)
            start = last + 1
        if start < len(chunk):
            self._reference(chunk[start:], blobs, tables)
        return self._batch(blobs, tables)

    def finish(self) -> ColumnBatch:
        blobs: list[bytes] = []
        tables: list[pa.RecordBatch] = []
        rows = self._rows(self.splitter.finish())
        if rows:
            blobs.append(codec._encode_rows(rows, self._tail) + b"\n")
            tables.append(rows_table(rows))
        return self._batch(blobs, tables)

    @staticmethod
    def _batch(blobs: list[bytes], tables: list[pa.RecordBatch]) -> ColumnBatch:
        count = sum(t.num_rows for t in tables)
        blob = b"".join(blobs)
        return ColumnBatch(blob[:-1], count, tables)

    def _reference(self, data: bytes, blobs: list[bytes], tables: list[pa.RecordBatch]) -> None:
        rows = self._rows(self.splitter.feed(data))
        if rows:
            blobs.append(codec._encode_rows(rows, self._tail) + b"\n")
            tables.append(rows_table(rows))

    def _region(self, region: bytes, blobs: list[bytes], tables: list[pa.RecordBatch]) -> None:
        """Complete lines (``region`` ends with ``\\n``), all in columns."""
        invalid = self.invalid_utf8
        lines = _split_lines(self._decode(region))
        limit = self.splitter.max_line_bytes
        if len(region) > limit and pc.max(pc.binary_length(lines)).as_py() + 1 > limit:
            # A line (with its CR) over the cap is cut on raw bytes into parts: the reference
            # does it, and counts the region's invalid bytes itself. (Decoded lines are never
            # shorter than raw ones: the test only sends more regions there than needed.)
            self.invalid_utf8 = invalid
            self._reference(region, blobs, tables)
            return
        first = self.splitter._seq + 1
        seqs = pc.add(self._range(len(lines)), first)
        stamps, levels = parse_columns(lines)
        body = pc.binary_join_element_wise(
            '{"seq":', pc.cast(seqs, pa.string()), ',"timestamp":', _quoted_or_null(stamps),
            ',"level":', _quoted_or_null(levels), ',"message":"', json_strings(lines),
            '"' + self._tail_text, "")
        blobs.append(_data(body))
        tables.append(pa.record_batch({
            "seq": seqs, "timestamp": stamps, "level": levels, "message": lines,
            "part": pa.nulls(len(lines), pa.int32()),
            "partial": pa.nulls(len(lines), pa.bool_()),
            "continuation": pa.nulls(len(lines), pa.bool_()),
        }, schema=SCHEMA))
        self.splitter._seq += len(lines)
        self.records += len(lines)

    def _decode(self, region: bytes) -> bytes:
        """``region`` as valid UTF-8: invalid sequences replaced by U+FFFD and counted."""
        if region.isascii():
            return region
        try:
            region.decode("utf-8")
            return region
        except UnicodeDecodeError:
            text = region.decode("utf-8", "replace")
        self.invalid_utf8 += text.count("\ufffd") - region.count(codec._REPLACEMENT_UTF8)
        return text.encode("utf-8")

    def _range(self, n: int) -> pa.Array:
        """0..n-1 as int64 (Arrow has no arange kernel: one array, grown by doubling)."""
        if len(self._counter) < n:
            size = max(n, 2 * len(self._counter), 1024)
            self._counter = pa.array(range(size), pa.int64())
        return self._counter.slice(0, n)


def _split_lines(data: bytes) -> pa.Array:
    """The lines of ``data`` (valid UTF-8 ending with ``\\n``), one CR before ``\\n`` dropped:
    the offsets come from numpy, the array shares ``data``; one slice kernel drops the LF."""
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    offsets = np.empty(len(ends) + 1, np.int32)
    offsets[0] = 0
    offsets[1:] = ends + 1
    with_lf = pa.Array.from_buffers(pa.binary(), len(ends),
                                    [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    lines = pc.binary_slice(with_lf, 0, -1)
    crlf = pc.ends_with(lines, b"\r")
    if pc.any(crlf).as_py():
        lines = pc.if_else(crlf, pc.binary_slice(lines, 0, -1), lines)
    return lines.view(pa.string())


def _data(array: pa.Array) -> bytes:
    """The concatenated values of a string array without nulls (its data buffer)."""
    offsets = memoryview(array.buffers()[1]).cast("i")
    begin, end = offsets[array.offset], offsets[array.offset + len(array)]
    return array.buffers()[2][begin:end].to_pybytes()


# --- payload kernels (record sinks build their events from a batch's columns) ------------------

def json_quoted(values: pa.Array) -> pa.Array:
    """Each string as a JSON string literal (quotes included), as ``orjson.dumps`` writes it."""
    return pc.binary_join_element_wise('"', json_strings(values), '"', "")


def epoch_millis(timestamps: pa.Array) -> pa.Array:
    """Epoch milliseconds (int64, null for null) of the codec's timestamps, which always have
    milliseconds and are UTC (``Z``) or naive (taken as UTC)."""
    seconds = pc.strptime(pc.utf8_slice_codeunits(timestamps, 0, 19), "%Y-%m-%dT%H:%M:%S", "s",
                          error_is_null=True)
    millis = pc.cast(pc.utf8_slice_codeunits(timestamps, 20, 23), pa.int64())
    return pc.add(pc.multiply(pc.cast(seconds, pa.int64()), 1000), millis)


def epoch_text(millis: pa.Array) -> pa.Array:
    """``round(epoch_seconds, 3)`` as orjson writes the float (``1773396000.1``,
    ``1773396000.0``); null for null and for times before 1970 (left to the caller)."""
    millis = pc.if_else(pc.less(millis, 0), pa.scalar(None, pa.int64()), millis)
    whole = pc.divide(millis, 1000)  # integer division: millis is not negative here
    seconds = pc.cast(whole, pa.string())
    fraction = pc.cast(pc.add(pc.subtract(millis, pc.multiply(whole, 1000)), 1000), pa.string())
    fraction = pc.replace_substring_regex(pc.utf8_slice_codeunits(fraction, 1, 4), "0+$", "")
    fraction = pc.if_else(pc.equal(fraction, ""), "0", fraction)
    return pc.binary_join_element_wise(seconds, fraction, ".")


def _python_spaces() -> str:
    spaces = "".join(chr(cp) for cp in range(0x110000) if chr(cp).isspace())
    return "".join(f"\\x{{{ord(c):x}}}" for c in spaces)


_BLANK = f"^[{_python_spaces()}]*$"


def is_blank(messages: pa.Array) -> pa.Array:
    """Empty or whitespace only, as Python's ``str.isspace`` defines whitespace."""
    return pc.match_substring_regex(messages, _BLANK)


def row_records(columns: pa.RecordBatch) -> list[dict[str, Any]]:
    """The rows of a table of :data:`SCHEMA` as the codec's record dicts (without run fields):
    ``part``, ``partial`` and ``continuation`` only on the pieces of a split line."""
    out = []
    for row in columns.to_pylist():
        if row["part"] is None:
            del row["part"], row["partial"], row["continuation"]
        out.append(row)
    return out
