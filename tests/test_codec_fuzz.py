"""The columnar codec against the per-line reference: same records, same NDJSON bytes, same
counters, on random byte streams cut at random chunk boundaries; and record-sink payloads built
from a batch's columns (``encode_columns``) against the same payloads built record by record."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from logarchive.base import Context
from logarchive.codec import LineBatch, RecordBuilder, encode_records, new_builder
from logarchive.parse import DEFAULT, ParseSettings
from logarchive.runs import RunRef

pa = pytest.importorskip("pyarrow")
from logarchive.codec import ColumnarBuilder  # noqa: E402
from logarchive.columnar import SCHEMA  # noqa: E402
from logarchive_datadog import DatadogConfig, DatadogSink, IntakeProtocol  # noqa: E402
from logarchive_splunk import HecProtocol, SplunkConfig, SplunkSink  # noqa: E402

FIELDS = {"source": "t", "run_id": "r1"}

# Pieces that reach every branch of both codecs: the timestamp shapes (and near misses), level
# markers (and near misses, lowercase, a dotless i), JSON escapes, control characters, CR/LF,
# non-ASCII, invalid UTF-8 and a genuine U+FFFD.
FRAGMENTS = [
    b"2026-03-13T10:00:00.123Z", b"2026-03-15 09:30:00,120", b"2026-03-15 09:30:00.120",
    b"2026-02-30T10:00:00.000Z", b"2026-03-13T24:00:00.000Z", b"0000-01-01T00:00:00.000Z",
    b"2026-03-13T10:00:00.1234Z", b"2026-03-13T10:00:00+01:00", b"2026-03-13 10:00:00 +0100",
    b"2026-03-13T10:00", b"2026-03-15 09:30:00,120 -0100", b"2026-03-15 09:30:00,120 - x",
    b"2026-03-15 09:30:00,120Z", b"2026-03-15 09:30:00,1205", b"\xd9\xa2026-03-13T10:00",
    b" [INFO] ", b"[ERROR]", b"[warn]", b"[Crit]", b"[[DEBUG]", b"[\xc4\xb1nfo]", b"[INFO",
    b"[NOTICE ]", b"[FATAL]x", b"x" * 70, b" - INFO - ", b"NCCL INFO", b'"', b"\\", b"\t",
    b"\r", b"\r\n", b"\n", b"\n\n", b"\x00", b"\x1f", b"\x08", b"\x0c", b"\x7f", b"\xe2\x80\xa8",
    b"caf\xc3\xa9", b"\xe6\xa8\xa1\xe5\x9e\x8b", b"\xf0\x9f\x98\x80", b"\xff", b"\xc3",
    b"\xe6\xa8", b"\xed\xa0\x80", b"\xef\xbf\xbd", b"{'loss': 0.3}", b'{"ts": "x"}', b" ",
    # logarchive.parse's other level markers and JSON lines (fields, epochs, a message field)
    b"level=warn", b'level="ERROR" ', b"| DEBUG |", b"WARNING:root:", b" ERROR ", b"info:",
    b'{"level": "warn", "msg": "2026-03-13 10:00:00 x"}', b'{"time": 1773396000123}',
    b'{"t": "2026-10-25 02:30:00", "message": "[INFO] y"}', b"[2026-03-29 02:30:00]",
]
# The run's [logarchive.parse]: the defaults, and a zone with DST and other field names.
PARSE = [DEFAULT, ParseSettings(timezone="Europe/Berlin", timestamp_fields=("t", "time"),
                                level_fields=("lvl",), message_fields=("message",))]

streams = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b"".join),
    st.binary(max_size=300),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=8)),
             max_size=40).map(b"".join),
)


def chunks_of(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def reference_batches(data: bytes, cuts: list[int], max_line: int,
                      parse: ParseSettings = DEFAULT) -> tuple[list[bytes], RecordBuilder]:
    """The per-line definition: every chunk through the splitter, every row through the
    reference parser (logarchive.parse.line) and orjson (none of RecordBuilder's fast paths)."""
    builder = RecordBuilder(FIELDS, max_line, parse)
    out = []
    for chunk in chunks_of(data, cuts):
        out.append(builder._slow(chunk, [], 0).ndjson())
    rows = builder._rows(builder.splitter.finish())
    out.append(LineBatch(_encode(rows, builder), len(rows)).ndjson())
    return out, builder


def _encode(rows, builder):  # noqa: ANN001, ANN202
    from logarchive.codec import _encode_rows

    return _encode_rows(rows, builder._tail)


def columnar_batches(data: bytes, cuts: list[int], max_line: int,
                     parse: ParseSettings = DEFAULT) -> tuple[list[LineBatch], ColumnarBuilder]:
    builder = ColumnarBuilder(FIELDS, max_line, parse)
    batches = [builder.feed(chunk) for chunk in chunks_of(data, cuts)]
    return [*batches, builder.finish()], builder


def table_records(batch: LineBatch) -> list[dict]:
    """The records as the Arrow columns hold them, in the NDJSON records' form."""
    out = []
    for row in batch.arrow().to_pylist():
        record = {k: row[k] for k in ("seq", "timestamp", "level", "message")}
        if row["part"] is not None:
            record.update(part=row["part"], partial=row["partial"],
                          continuation=row["continuation"])
        out.append({**record, **FIELDS})
    return out


@settings(max_examples=250, deadline=None)
@given(data=streams, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
       max_line=st.sampled_from([4, 9, 24, 64, 1 << 20]), parse=st.sampled_from(PARSE))
def test_columnar_equals_the_per_line_reference(data: bytes, cuts: list[int], max_line: int,
                                                parse: ParseSettings) -> None:
    expected, reference = reference_batches(data, cuts, max_line, parse)
    batches, builder = columnar_batches(data, cuts, max_line, parse)
    assert [b.ndjson() for b in batches] == expected
    assert builder.records == reference.records
    assert builder.invalid_utf8 == reference.invalid_utf8
    assert builder.splitter.lines == reference.splitter.lines
    for batch in batches:
        assert batch.encoded() == encode_records(batch.records())
        assert table_records(batch) == batch.records()
        assert batch.arrow().schema == SCHEMA
        assert batch.arrow().equals(LineBatch.arrow(batch))  # columns == records converted


@settings(max_examples=100, deadline=None)
@given(data=streams, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
       parse=st.sampled_from(PARSE))
def test_columnar_equals_record_builder(data: bytes, cuts: list[int],
                                        parse: ParseSettings) -> None:
    """The same against the current per-line codec with its fast paths (the fallback)."""
    fallback = RecordBuilder(FIELDS, 64, parse)
    columnar = ColumnarBuilder(FIELDS, 64, parse)
    for chunk in chunks_of(data, cuts):
        assert columnar.feed(chunk).ndjson() == fallback.feed(chunk).ndjson()
    assert columnar.finish().ndjson() == fallback.finish().ndjson()
    assert columnar.invalid_utf8 == fallback.invalid_utf8


@settings(max_examples=60, deadline=None)
@given(data=streams, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
       parse=st.sampled_from(PARSE))
def test_regions_built_in_two_threads_equal_the_reference(data: bytes, cuts: list[int],
                                                          parse: ParseSettings) -> None:
    """LOGARCHIVE_CODEC_THREADS=2, every region cut in two (no size floor): same bytes,
    counters and columns as the per-line reference."""
    from logarchive import columnar

    expected, reference = reference_batches(data, cuts, 1 << 20, parse)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(columnar, "THREADS", 2)
        patch.setattr(columnar, "_SPLIT_BYTES", 0)
        batches, builder = columnar_batches(data, cuts, 1 << 20, parse)
    assert [b.ndjson() for b in batches] == expected
    assert (builder.records, builder.invalid_utf8) == (reference.records, reference.invalid_utf8)
    for batch in batches:
        assert table_records(batch) == batch.records()


def test_mixed_log_lines_round_trip() -> None:
    """Every line shape of the benchmark's mixed log, in one chunk, equals the reference."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from genmixed import entries
    finally:
        sys.path.pop(0)
    stream = entries()
    data = b"".join(next(stream) for _ in range(3000))
    expected, _ = reference_batches(data, [len(data) // 3], 1 << 20)
    batches, builder = columnar_batches(data, [len(data) // 3], 1 << 20)
    assert [b.ndjson() for b in batches] == expected
    records = [r for b in batches for r in b.records()]
    assert sum(r["timestamp"] is not None for r in records) > len(records) // 3
    assert {r["level"] for r in records} >= {"info", "debug", "warning", "error"}
    assert builder.invalid_utf8 > 0


# Lines of the fast path's two shapes, and lines that look like them but name a level in one of
# logarchive.parse's other forms (the fast path must hand those to the parser).
FAST_LINES = [
    b"2026-03-13T10:00:00.123Z [INFO] step 1 loss 0.5", b"epoch 3 done", b"x" * 90,
    b"2026-03-13T10:00:00.123Z [WARN] level=error in", b"NCCL INFO Init COMPLETE",
    b"worker level=warn ok", b"WARNING:root:slow", b"app - ERROR - boom", b"| debug | x",
    b"fatal: no", b"Error: no", b"INFORMATION only",
]


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(st.sampled_from(FAST_LINES), min_size=1, max_size=80),
       parse=st.sampled_from(PARSE))
def test_fast_shape_regions_agree_with_the_parser(lines: list[bytes],
                                                  parse: ParseSettings) -> None:
    """A region of (nearly) fast shapes keeps the fast path; its NDJSON and its columns are the
    reference's, level markers in parse's other forms included."""
    data = b"\n".join(lines * 4) + b"\n"
    expected, _ = reference_batches(data, [], 1 << 20, parse)
    batches, _ = columnar_batches(data, [], 1 << 20, parse)
    assert [b.ndjson() for b in batches] == expected
    for batch in batches:
        assert table_records(batch) == batch.records()


def test_new_builder_is_columnar_with_its_extra_unless_per_line_is_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(new_builder(FIELDS), ColumnarBuilder)  # pyarrow and numpy are installed
    monkeypatch.setenv("LOGARCHIVE_CODEC", "per-line")
    assert type(new_builder(FIELDS)) is RecordBuilder
    monkeypatch.setenv("LOGARCHIVE_CODEC", "columnar")
    assert isinstance(new_builder(FIELDS), ColumnarBuilder)
    monkeypatch.delenv("LOGARCHIVE_CODEC")
    assert isinstance(new_builder(FIELDS, columnar=True), ColumnarBuilder)
    assert type(new_builder(FIELDS, columnar=False)) is RecordBuilder
    tokyo = ParseSettings(timezone="Asia/Tokyo")
    assert new_builder(FIELDS, parse=tokyo).parse == tokyo
    assert new_builder(FIELDS, columnar=False, parse=tokyo).parse == tokyo
    assert new_builder(FIELDS, columnar=True, parse=tokyo).parse == tokyo


def python(script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter (what it imports is then its own)."""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=check)


def test_without_pyarrow_the_per_line_codec_exports() -> None:
    """A core install without pyarrow: the per-line builder, same bytes; pyarrow never loaded
    for the CLI's --help."""
    script = (
        "import sys\n"
        "sys.modules['pyarrow'] = None  # the injected fault: pyarrow is not installed\n"
        "from logarchive.codec import RecordBuilder, new_builder\n"
        "b = new_builder({'source': 't'})\n"
        "assert type(b) is RecordBuilder, type(b)\n"
        "print(b.feed(b'2026-03-13T10:00:00.123Z [INFO] x\\n').ndjson().decode(), end='')\n"
    )
    assert orjson.loads(python(script).stdout) == {"seq": 1, "timestamp": "2026-03-13T10:00:00.123Z",
                                         "level": "info", "message":
                                         "2026-03-13T10:00:00.123Z [INFO] x", "source": "t"}
    forced = python("import sys; sys.modules['pyarrow'] = None\n"
                    "from logarchive.codec import new_builder\n"
                    "new_builder({}, columnar=True)", check=False)
    assert forced.returncode != 0 and "pip install 'logarchive[parquet]'" in forced.stderr
    help_run = python("import sys\nfrom logarchive.cli import main\n"
                      "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                      "print('pyarrow' in sys.modules, file=sys.stderr)")
    assert help_run.stderr.strip().endswith("False")


# --- payloads ------------------------------------------------------------------------------------

RUN = RunRef("src", {"model_id": 'm"1', "run_id": "r/ü"},
             completed=datetime(2026, 3, 13, 10, 0, 0, 123456, tzinfo=timezone.utc))
EXTRA = [b"1969-12-31T23:59:59.500Z x", b"1970-01-01T00:00:00.000Z", b"9999-12-31T23:59:59.999Z",
         b"0001-01-01 00:00:00,001 - INFO - a", b"\xe3\x80\x80", b"\x1c", b"  ", b"x" * 1500]
STREAMS = st.lists(st.sampled_from(FRAGMENTS + EXTRA), max_size=50).map(b"".join)


def context(name: str) -> Context:
    return Context(name, structlog.get_logger(), threading.Event())


def protocols() -> list:
    datadog = DatadogSink("dd", DatadogConfig(type="datadog", api_key="k" * 32, service="svc",
                                              ddtags="env:{run_id}", max_entry_bytes=1024),
                          context("dd"))
    splunk = SplunkSink("hec", SplunkConfig(type="splunk", url="http://127.0.0.1:1",
                                            token="t" * 36, index="ml_{model_id}"),
                        context("hec"))
    plain = SplunkSink("hec2", SplunkConfig(type="splunk", url="http://127.0.0.1:1",
                                            token="t" * 36, host="h"), context("hec2"))
    return [IntakeProtocol(datadog, RUN), HecProtocol(splunk, RUN), HecProtocol(plain, RUN)]


@settings(max_examples=40, deadline=None)
@given(data=STREAMS, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=4),
       max_line=st.sampled_from([16, 1 << 20]))
def test_events_from_columns_equal_events_from_records(data: bytes, cuts: list[int],
                                                       max_line: int) -> None:
    builder = ColumnarBuilder(RUN.record_fields(), max_line)
    batches = [builder.feed(chunk) for chunk in chunks_of(data, cuts)] + [builder.finish()]
    for protocol in protocols():
        for batch in batches:
            expected = [protocol.encode(record) for record in batch.records()]
            got = protocol.encode_columns(batch.arrow())
            assert [[e] if type(e) is bytes else e for e in got] == expected


def test_splunk_raw_and_record_events_keep_the_per_record_path() -> None:
    raw = SplunkSink("raw", SplunkConfig(type="splunk", url="http://127.0.0.1:1", token="t" * 36,
                                         endpoint="raw"), context("raw"))
    record = SplunkSink("rec", SplunkConfig(type="splunk", url="http://127.0.0.1:1",
                                            token="t" * 36, event_format="record"),
                        context("rec"))
    batch = ColumnarBuilder(RUN.record_fields()).feed(b"a\n\nb\n")
    for sink in (raw, record):
        assert HecProtocol(sink, RUN).encode_columns(batch.arrow()) is None


def test_a_log_of_the_fast_shapes_never_imports_pyarrow() -> None:
    """Regions of the per-line fast path's shapes keep it; pyarrow loads only when a region
    needs the kernels (or a consumer asks for columns)."""
    script = (
        "import sys\n"
        "from logarchive.codec import ColumnarBuilder, new_builder\n"
        "b = new_builder({'source': 't'}, columnar=True)\n"
        "assert isinstance(b, ColumnarBuilder)\n"
        "line = b'2026-03-13T10:00:00.123Z [INFO] step 1 loss=0.5\\n'\n"
        "batch = b.feed(line * 5000 + b'no timestamp nor bracket\\n' * 100)\n"
        "print(len(batch), 'pyarrow' in sys.modules, end=' ')\n"
        "print(batch.arrow().num_rows, 'pyarrow' in sys.modules)\n"
    )
    assert python(script).stdout.split() == ["5100", "False", "5100", "True"]


def test_the_columnar_codec_does_not_import_pandas() -> None:
    """pyarrow would import pandas (+41 MB) on its first conversion of a Python object; the codec
    declines it, and whoever asks for pandas afterwards still gets it."""
    pytest.importorskip("pandas")
    script = (
        "import sys\n"
        "from logarchive.codec import ColumnarBuilder\n"
        "b = ColumnarBuilder({'source': 't'})\n"
        "batch = b.feed(b'2026-03-15 09:30:00,120 - INFO - x\\n{\"level\": \"warn\"}\\n')\n"
        "print(len(batch), batch.arrow().num_rows, 'pandas' in sys.modules, end=' ')\n"
        "import pyarrow as pa\n"
        "print(type(pa.table({'a': [1.5, None]}).to_pandas()).__name__)\n"
    )
    assert python(script).stdout.split() == ["2", "2", "False", "DataFrame"]


def test_logarchive_codec_columnar_chooses_the_columnar_builder(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("LOGARCHIVE_CODEC", "columnar")
    assert isinstance(new_builder(FIELDS), ColumnarBuilder)
    assert type(new_builder(FIELDS, columnar=False)) is RecordBuilder
