"""Parquet archives: ``format = "parquet"`` in a byte sink, one ``.parquet`` object per run.

The records are the NDJSON records of the same log, as columns (docs/parquet.md):

=================  ==============================  ============================================
column             type                            value
=================  ==============================  ============================================
``seq``            int64                           line number, 1-based
``timestamp``      timestamp[us, tz=UTC], null     the parsed timestamp (naive = UTC)
``level``          dictionary<int32, string>, null the parsed level (``info``, ``warning``...)
``message``        string                          the line, invalid UTF-8 as U+FFFD
``part``           int32, null                     1..n on the pieces of a long line, else null
``partial``        bool, null                      true on all pieces but the last, else null
``continuation``   bool, null                      true on all pieces but the first, else null
``source`` + the   dictionary<int32, string>       the run's identifying fields, one value per
run's fields                                       file
=================  ==============================  ============================================

Run fields are columns, not file metadata: a query over many runs (``read_parquet('**/*.parquet')
WHERE run_id = ...``) needs them as columns, and a dictionary-encoded constant column costs a few
bytes per row group.

``compression`` is the column codec (``zstd``, ``gzip``, ``none``); the object is never wrapped in
another compressed stream. Records are buffered until a row group holds
:data:`ROW_GROUP_BYTES` of message text or :data:`ROW_GROUP_ROWS` records, then written; what the
writer emits goes straight to the sink, so memory is bounded by one row group whatever the size
of the log.

Reading: :func:`read_records` (and :func:`spooled_records` for an object given as its stored
bytes) yields the records back in the NDJSON record shape, one row group at a time; the
``archive`` source, ``logarchive search`` and ``logarchive serve`` all read Parquet through it.

pyarrow is the ``parquet`` extra (``pip install 'logarchive[parquet]'``), imported only here and
only when a sink writes Parquet or a Parquet object is read.
"""

from __future__ import annotations

import importlib.util
import io
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from logarchive.errors import LogarchiveError

EXTRA = "pip install 'logarchive[parquet]'"
CODECS = {"zstd": "zstd", "gzip": "gzip", "none": "none"}
ROW_GROUP_BYTES = 4 * 1024 * 1024  # ~30k-60k lines; larger ones measured no smaller, more RSS
ROW_GROUP_ROWS = 250_000
ZSTD_LEVEL = 6  # 23-25% smaller than NDJSON+gzip-6 (level 3: 15-20%), ~+10% export CPU
RECORD_COLUMNS = ("seq", "timestamp", "level", "message", "part", "partial", "continuation")


def missing_extra() -> str | None:
    """Why Parquet cannot be written here (pyarrow is not installed), else None. Does not
    import pyarrow."""
    if importlib.util.find_spec("pyarrow") is None:
        return f"format 'parquet' needs pyarrow: {EXTRA}"
    return None


def schema(field_names: list[str]) -> Any:
    """The Arrow schema of an archive whose runs carry ``field_names`` (``source`` first)."""
    import pyarrow as pa

    labels = pa.dictionary(pa.int32(), pa.string())
    return pa.schema(
        [("seq", pa.int64()), ("timestamp", pa.timestamp("us", "UTC")), ("level", labels),
         ("message", pa.string()), ("part", pa.int32()), ("partial", pa.bool_()),
         ("continuation", pa.bool_())]
        + [(name, labels) for name in field_names]
    )


class _Collector(io.RawIOBase):
    """The file the Parquet writer writes to: keeps what it wrote until :meth:`drain`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class ParquetEncoder:
    """Encodes one run into a Parquet file, with the interface of ``codec.FormatEncoder``:
    ``header()``, then ``encode_batch(batch)`` per :class:`~logarchive.codec.LineBatch`, then
    ``footer()``; each returns the bytes of the file that are ready (often none until a row
    group is complete). The rows are the batches' columns (``batch.arrow()``: no conversion on
    the columnar codec's batches, which the delivery picks for a Parquet target)."""

    format = "parquet"
    needs_records = True

    def __init__(self, compression: str, level: int | None, fields: dict[str, str], *,
                 row_group_bytes: int = ROW_GROUP_BYTES) -> None:
        import pyarrow.parquet as pq

        from logarchive import columnar  # noqa: F401  pyarrow as the codec sets it up: the C
        # allocator, and no pandas import on the first conversion (~40 MB of RSS each)

        self.schema = schema(list(fields))
        self._columns = _Columns(self.schema, fields)
        self._out = _Collector()
        self._writer = pq.ParquetWriter(
            self._out, self.schema, compression=CODECS[compression],
            compression_level=_level(compression, level), use_dictionary=["level", *fields],
            write_statistics=["seq", "timestamp", "level"],
            # seq and timestamps grow: deltas bit-packed are 6% of the file smaller than plain
            column_encoding={"seq": "DELTA_BINARY_PACKED", "timestamp": "DELTA_BINARY_PACKED"},
        )
        self._row_group_bytes = row_group_bytes
        self._pending: list[Any] = []
        self._rows = 0
        self._text_bytes = 0

    def header(self) -> bytes:
        return b""

    def encode_batch(self, batch: Any) -> bytes:
        if not len(batch):
            return b""
        columns = self._columns(batch)
        self._pending.append(columns)
        self._rows += columns.num_rows
        self._text_bytes += columns.column(3).nbytes
        if self._rows >= ROW_GROUP_ROWS or self._text_bytes >= self._row_group_bytes:
            self._write_row_group()
        return self._out.drain()

    def footer(self) -> bytes:
        self._write_row_group()
        self._writer.close()
        return self._out.drain()

    def _write_row_group(self) -> None:
        """The pending batches as one row group, written column by column from them as they
        are (no copy into one batch first)."""
        if not self._pending:
            return
        import pyarrow as pa

        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._pending, self._rows, self._text_bytes = [], 0, 0
        self._writer.write_table(table, row_group_size=table.num_rows)


class _Columns:
    """Turns a batch of records into a record batch of the archive's schema: timestamps as UTC
    instants, levels and the run's fields dictionary-encoded against dictionaries fixed for the
    file (every level name; each run field one value, its indices all 0), so every row group
    has the same dictionaries.

    The records come from the batch's columns when it has them (``batch.arrow()`` of the
    columnar codec's regions: no conversion); otherwise, from its NDJSON through Arrow's JSON
    reader: on lines of the per-line fast path's shapes (whose columns are not built) that
    measured ~25% less export CPU than building the columns, on other lines ~15% more."""

    def __init__(self, target: Any, fields: dict[str, str]) -> None:
        import pyarrow as pa

        from logarchive.parse import LEVELS

        self.target = target
        self.levels = pa.array(LEVELS, pa.string())
        self.fields = [pa.array([value], pa.string()) for value in fields.values()]
        self.zero = pa.scalar(0, pa.int32())
        self.read_options = _json_options(target)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        if _has_columns(batch):
            records = batch.arrow()
            columns = [records.column(name) for name in RECORD_COLUMNS]
            columns[1] = _instants(columns[1])
        else:
            records = _read_ndjson(batch.ndjson(), self.read_options)
            columns = [records.column(name).combine_chunks() for name in RECORD_COLUMNS]
        columns[2] = pa.DictionaryArray.from_arrays(
            pc.index_in(columns[2], value_set=self.levels), self.levels)
        zeros = pa.repeat(self.zero, records.num_rows)
        columns += [pa.DictionaryArray.from_arrays(zeros, value) for value in self.fields]
        return pa.RecordBatch.from_arrays(columns, schema=self.target)


def _has_columns(batch: Any) -> bool:
    """Whether ``batch.arrow()`` costs no conversion: a columnar codec's batch none of whose
    regions took the per-line fast path (their columns would be built from scratch)."""
    return bool(batch.columnar and batch.columns_ready)


def _json_options(target: Any) -> Any:
    import pyarrow as pa
    import pyarrow.json as pj

    levels = pa.field("level", pa.string())
    records = pa.schema([levels if name == "level" else target.field(name)
                         for name in RECORD_COLUMNS])
    return pj.ParseOptions(explicit_schema=records, unexpected_field_behavior="ignore")


def _read_ndjson(data: bytes, options: Any) -> Any:
    import pyarrow.json as pj

    read = pj.ReadOptions(use_threads=False, block_size=len(data) + 1)
    return pj.read_json(io.BytesIO(data), read_options=read, parse_options=options)


def _instants(stamps: Any) -> Any:
    """The codec's canonical timestamps (``2026-03-15T09:30:00.120Z``, always UTC with
    milliseconds) as ``timestamp[us, UTC]``; null stays null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    whole = pc.strptime(pc.utf8_slice_codeunits(stamps, 0, 19), "%Y-%m-%dT%H:%M:%S", "us")
    millis = pc.cast(pc.utf8_slice_codeunits(stamps, 20, 23), pa.int64())
    micros = pc.add(pc.cast(whole, pa.int64()), pc.multiply(millis, 1000))
    return pc.cast(micros, pa.timestamp("us", "UTC"))


def _level(compression: str, level: int | None) -> int | None:
    if compression == "none":
        return None
    if level is None and compression == "zstd":
        return ZSTD_LEVEL
    return level


READ_BATCH_ROWS = 8192


def read_records(file: Any) -> Iterator[list[dict[str, Any]]]:
    """The records of a Parquet object (a path or a seekable binary file), at most
    ``READ_BATCH_ROWS`` at a time (memory: one such batch as dicts, not a row group), each a dict in the shape of the NDJSON record of the same line:
    ``seq``, ``timestamp`` (canonical, millisecond ``Z``), ``level``, ``message``, then ``part``,
    ``partial`` and ``continuation`` on the pieces of a long line only, then the run's fields in
    the file's column order."""
    if (why := missing_extra()) is not None:
        raise LogarchiveError(f"cannot read a Parquet archive: {why}")
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(file)
    fields = [n for n in parquet.schema_arrow.names if n not in RECORD_COLUMNS]
    for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS):
        yield [_record(row, fields) for row in batch.to_pylist()]


def _record(row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    stamp = row["timestamp"]
    out = {"seq": row["seq"], "timestamp": None if stamp is None else
           stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
           "level": row["level"], "message": row["message"]}
    if row["part"] is not None:
        out.update(part=row["part"], partial=bool(row["partial"]),
                   continuation=bool(row["continuation"]))
    out.update((name, row[name]) for name in fields)
    return out


def spooled_records(chunks: Iterable[bytes],
                    spool_dir: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """:func:`read_records` of an object given as its stored bytes: Parquet needs random access
    (the footer first), so they are written to an anonymous temporary file first. Every chunk is
    consumed before the first record is yielded: a reader that checks the bytes on the way (and
    raises after the last) refuses a corrupted object before any of its records is handed on."""
    with tempfile.TemporaryFile(prefix="logarchive-parquet-", dir=spool_dir) as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.seek(0)
        yield from read_records(spool)

