"""Column kernels of the line codec: a region of complete lines becomes columns (seq,
timestamp, level, message, part flags) computed by Arrow compute kernels, and the NDJSON and
record-sink payloads are rendered from them.

Needs pyarrow and numpy (``pip install 'logarchive[parquet]'``). The builder that uses these
kernels, :class:`logarchive.codec.ColumnarBuilder`, is chosen by
:func:`logarchive.codec.new_builder` when they are installed; the per-line
:class:`logarchive.codec.RecordBuilder` defines the semantics and is the fallback: both produce
the very same records and bytes (fuzzed in ``tests/test_codec_fuzz.py``).

How a region goes through (no Python call per line on the common path):

1. numpy finds the LFs; the lines are one Arrow array over the region's bytes (one slice
   kernel drops the LFs, another one CR before them). A line over ``max_line_bytes`` (it becomes
   parts) sends the region to the per-line reference.
2. A region that is valid UTF-8 (one strict decode) is used as it is; otherwise only its
   non-ASCII lines are decoded line by line, invalid sequences replaced and counted.
3. Timestamps and levels: :func:`logarchive.parse.columns` (RE2 kernels), which gives each
   line what :func:`logarchive.parse.line` does under the run's ``[logarchive.parse]``.
4. JSON: messages that need escaping get it from ``replace_substring`` kernels (orjson per line
   for the rare control characters other than tab and CR); one ``binary_join_element_wise``
   writes every record, and the NDJSON of the region is the data buffer of that array.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from logarchive import codec, parse

# The kernels allocate and free a few MiB per chunk; pyarrow's default pool (mimalloc) keeps
# freed pages, which measured +60 MB of peak RSS on a 64 MiB NDJSON export (227 MB against
# 167 MB with the C allocator, same speed). Peak RSS is a target (issue 15: <= 150 MB).
pa.set_memory_pool(pa.system_memory_pool())


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ImportError("not imported by the columnar codec")


def _skip_pandas() -> None:
    """pyarrow imports pandas (when it is installed, e.g. with MLflow) the first time it converts
    a Python object (``pa.array``, a scalar argument), to recognise pandas objects. The codec
    never passes one, and that import measured +41 MB of peak RSS and ~0.3 s. Its one attempt is
    made to fail here, so pyarrow takes pandas for absent; what asks for pandas itself later
    (``to_pandas``) still gets it: pyarrow tries the import again then."""
    if "pandas" in sys.modules:
        return
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.scalar(0)
    finally:
        sys.meta_path.remove(blocker)


_skip_pandas()

SCHEMA = pa.schema([
    ("seq", pa.int64()), ("timestamp", pa.string()), ("level", pa.string()),
    ("message", pa.string()), ("part", pa.int32()), ("partial", pa.bool_()),
    ("continuation", pa.bool_()),
])
"""Columns of :meth:`ColumnBatch.arrow`: ``part``, ``partial`` and ``continuation`` are null on
a line that was not split (the record has no such keys)."""

# --- timestamps and levels ----------------------------------------------------------------------

def parse_columns(messages: pa.Array, settings: parse.ParseSettings = parse.DEFAULT
                  ) -> tuple[pa.Array, pa.Array]:
    """Timestamp and level of every message (string arrays, null where none), row ``i``
    equal to ``logarchive.parse.line(messages[i], settings)``: :func:`logarchive.parse.columns`."""
    found = parse.columns(messages, settings)
    return found.timestamp, found.level


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

def records_batch(records: list[dict[str, Any]]) -> pa.RecordBatch:
    """Record dicts (as :meth:`LineBatch.records` gives them) as a record batch of
    :data:`SCHEMA`."""
    names = SCHEMA.names
    return pa.RecordBatch.from_pylist([{k: r.get(k) for k in names} for r in records],
                                      schema=SCHEMA)


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


class Built(NamedTuple):
    """The records of a region of complete lines: columns, NDJSON, invalid UTF-8 replaced."""

    columns: pa.RecordBatch
    ndjson: bytes
    invalid: int


def region_records(region: bytes, first: int, max_line_bytes: int, tail: str,
                   settings: parse.ParseSettings = parse.DEFAULT) -> list[Built] | None:
    """A region of complete lines as :class:`Built` pieces, in order (``tail``: see
    :func:`ndjson`); None when a line (its CR included) is over ``max_line_bytes`` (it becomes
    parts: the per-line reference's job). A big region is cut in two at a line boundary and the
    second half is built in a worker thread while this one builds the first: the kernels release
    the GIL, so both cores work; order and ``seq`` are kept by construction."""
    ends = np.flatnonzero(np.frombuffer(region, np.uint8) == 10)
    if len(region) > max_line_bytes and _longest(ends) > max_line_bytes:
        return None
    half = len(ends) // 2
    if THREADS < 2 or len(region) < _SPLIT_BYTES or half == 0:
        return [_built(region, ends, first, tail, settings)]
    cut = int(ends[half - 1]) + 1
    second = _worker().submit(_built, region[cut:], ends[half:] - cut, first + half, tail,
                              settings)
    return [_built(region[:cut], ends[:half], first, tail, settings), second.result()]


def _built(region: bytes, ends: Any, first: int, tail: str,
           settings: parse.ParseSettings) -> Built:
    columns, invalid = _columns(region, ends, first, settings)
    return Built(columns, ndjson(columns, tail), invalid)


THREADS = int(os.environ.get("LOGARCHIVE_CODEC_THREADS", "1"))
"""Threads building one region (``LOGARCHIVE_CODEC_THREADS``, default 1: docs/benchmarks.md)."""
_SPLIT_BYTES = 256 * 1024  # below this, one thread: a kernel call's fixed cost would dominate


@lru_cache(maxsize=1)
def _worker() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="logarchive-columns")


def region_columns(region: bytes, first: int, max_line_bytes: int,
                   settings: parse.ParseSettings = parse.DEFAULT
                   ) -> tuple[pa.RecordBatch, int] | None:
    """The records of a region of complete lines as columns, and how many invalid UTF-8
    sequences were replaced; None when a line (its CR included) is over ``max_line_bytes``
    (it becomes parts: the per-line reference's job)."""
    ends = np.flatnonzero(np.frombuffer(region, np.uint8) == 10)
    if len(region) > max_line_bytes and _longest(ends) > max_line_bytes:
        return None
    return _columns(region, ends, first, settings)


def _columns(region: bytes, ends: Any, first: int, settings: parse.ParseSettings
             ) -> tuple[pa.RecordBatch, int]:
    lines, invalid = _decode(region, _drop_cr(_split_lines(region, ends)))
    seqs = pc.add(pa.array(np.arange(len(lines), dtype=np.int64)), first)
    stamps, levels = parse_columns(lines, settings)
    return pa.record_batch({
        "seq": seqs, "timestamp": stamps, "level": levels, "message": lines,
        "part": pa.nulls(len(lines), pa.int32()), "partial": pa.nulls(len(lines), pa.bool_()),
        "continuation": pa.nulls(len(lines), pa.bool_()),
    }, schema=SCHEMA), invalid


def as_columns(part: Any) -> pa.RecordBatch:
    """One part of a :class:`~logarchive.codec.ColumnBatch` as columns."""
    if isinstance(part, pa.RecordBatch):
        return part
    if isinstance(part, codec.FastRegion):
        built = region_columns(part.region, part.first, part.max_line_bytes, part.parse)
        return built[0] if built is not None else rows_table(part.rows())
    return rows_table(part)


def concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=SCHEMA)
    return pa.concat_batches(batches)


def ndjson(columns: pa.RecordBatch, tail: str) -> bytes:
    """The NDJSON of whole-line records (``tail``: the run fields, ``}`` and LF)."""
    body = pc.binary_join_element_wise(
        '{"seq":', pc.cast(columns.column("seq"), pa.string()), ',"timestamp":',
        _quoted_or_null(columns.column("timestamp")), ',"level":',
        _quoted_or_null(columns.column("level")), ',"message":"',
        json_strings(columns.column("message")), '"' + tail, "")
    return _data(body)


def _decode(region: bytes, lines: pa.Array) -> tuple[pa.Array, int]:
    """The lines as strings: a region that is valid UTF-8 as it is (one strict decode); else
    its non-ASCII lines decoded one by one as the reference does (invalid sequences replaced by
    U+FFFD, and counted)."""
    if region.isascii():
        return lines.view(pa.string()), 0
    try:
        region.decode("utf-8")
        return lines.view(pa.string()), 0
    except UnicodeDecodeError:
        pass
    wide = pc.invert(pc.string_is_ascii(lines.view(pa.string())))
    texts, invalid = [], 0
    for raw in pc.filter(lines, wide).to_pylist():
        text, bad = codec.decode_line(raw)
        invalid += bad
        texts.append(text)
    return pc.replace_with_mask(lines.view(pa.string()), wide,
                                pa.array(texts, pa.string())), invalid


def _longest(ends: Any) -> int:
    """The longest line (its CR included) of a region, from the offsets of its LFs."""
    if not len(ends):
        return 0
    return int(max(ends[0], np.diff(ends).max(initial=0) - 1))


def _split_lines(data: bytes, ends: Any) -> pa.Array:
    """The lines of ``data`` (ending with ``\\n``) without their LF, as a binary array that
    shares ``data``'s memory until one slice kernel drops the LFs."""
    offsets = np.empty(len(ends) + 1, np.int32)
    offsets[0] = 0
    offsets[1:] = ends + 1
    with_lf = pa.Array.from_buffers(pa.binary(), len(ends),
                                    [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return pc.binary_slice(with_lf, 0, -1)


def _drop_cr(lines: pa.Array) -> pa.Array:
    """One CR at the end of a line (before its LF) is not part of the message."""
    crlf = pc.ends_with(lines, b"\r")
    if pc.any(crlf).as_py():
        return pc.if_else(crlf, pc.binary_slice(lines, 0, -1), lines)
    return lines


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
    milliseconds and are UTC (``Z``)."""
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


@lru_cache(maxsize=1)
def _blank_pattern() -> str:
    """Empty or only what ``str.isspace`` calls whitespace (built on first use: scanning every
    code point took ~0.1 s of each export's start-up)."""
    return f"^[{_python_spaces()}]*$"


def _python_spaces() -> str:
    spaces = "".join(chr(cp) for cp in range(0x110000) if chr(cp).isspace())
    return "".join(f"\\x{{{ord(c):x}}}" for c in spaces)


def is_blank(messages: pa.Array) -> pa.Array:
    """Empty or whitespace only, as Python's ``str.isspace`` defines whitespace."""
    return pc.match_substring_regex(messages, _blank_pattern())


def row_records(columns: pa.RecordBatch) -> list[dict[str, Any]]:
    """The rows of a table of :data:`SCHEMA` as the codec's record dicts (without run fields):
    ``part``, ``partial`` and ``continuation`` only on the pieces of a split line."""
    out = []
    for row in columns.to_pylist():
        if row["part"] is None:
            del row["part"], row["partial"], row["continuation"]
        out.append(row)
    return out
