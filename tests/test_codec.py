"""The line codec: properties over arbitrary bytes, and the documented edge cases."""

from __future__ import annotations

import gzip
import hashlib
import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logarchive.codec import (
    Compressor, FormatEncoder, LineSplitter, RecordBuilder, SourceStats, decompress_stream,
    encode_records, parse_level, parse_timestamp,
)

FIELDS = {"source": "t", "run_id": "r1"}


def split_chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


def expected_lines(data: bytes) -> list[str]:
    """The documented line model, computed the slow obvious way."""
    if not data:
        return []
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines = lines[:-1]
        return [ln[:-1].decode("utf-8", "replace") if ln.endswith(b"\r") else
                ln.decode("utf-8", "replace") for ln in lines]
    *full, last = lines
    out = [ln[:-1] if ln.endswith(b"\r") else ln for ln in full] + [last]
    return [ln.decode("utf-8", "replace") for ln in out]


def run_codec(data: bytes, cuts: list[int], fmt: str, compression: str, max_line: int
              ) -> tuple[bytes, RecordBuilder, SourceStats]:
    builder = RecordBuilder(FIELDS, max_line)
    stats = SourceStats()
    encoder = FormatEncoder(fmt)
    compressor = Compressor(compression)
    out = [compressor.compress(encoder.header())]
    for chunk in split_chunks(data, cuts):
        stats.update(chunk)
        batch = builder.feed(chunk)
        assert batch.encoded() == encode_records(batch.records())  # fast path == orjson
        body = encoder.encode_records(batch.encoded()) if fmt != "txt" else chunk
        out.append(compressor.compress(body))
    stats.finish()
    last = builder.finish()
    assert last.encoded() == encode_records(last.records())
    out.append(compressor.compress(encoder.encode_records(last.encoded())
                                   if fmt != "txt" else b""))
    out.append(compressor.compress(encoder.footer()))
    out.append(compressor.flush())
    stored = b"".join(decompress_stream(compression, iter(out)))
    return stored, builder, stats


def join_messages(records: list[dict]) -> list[str]:
    """Re-assemble split lines (parts) and return one message per source line."""
    lines: list[str] = []
    for record in records:
        if record.get("continuation"):
            lines[-1] += record["message"]
        else:
            lines.append(record["message"])
    return lines


log_bytes = st.one_of(
    st.binary(max_size=3000),
    st.lists(
        st.one_of(
            st.text(max_size=80).map(lambda s: s.encode()),
            st.sampled_from([b"\r", b"\n", b"\r\n", b"\xff", b"\xe2\x82", b"\x00", "é".encode(),
                             "日本".encode(), b"2026-03-13T10:00:00.123Z [INFO] x"]),
        ),
        max_size=60,
    ).map(b"".join),
)


@pytest.mark.scenario(
    "codec fuzz: ndjson records",
    "hypothesis bytes (invalid UTF-8, NULs, CR-only, CRLF, lines over the cap, empty logs) cut "
    "at random chunk boundaries: messages joined equal the decoded source lines, seq complete, "
    "parts never over the cap, invalid UTF-8 counted the same by both counters",
)
@settings(max_examples=300, deadline=None)
@given(data=log_bytes, cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=8),
       max_line=st.integers(min_value=4, max_value=64))
def test_ndjson_messages_equal_decoded_source_lines(data: bytes, cuts: list[int], max_line: int
                                                     ) -> None:
    stored, builder, stats = run_codec(data, cuts, "ndjson", "none", max_line)
    records = [orjson.loads(line) for line in stored.splitlines()]
    assert join_messages(records) == expected_lines(data)
    assert [r["seq"] for r in records if not r.get("continuation")] == list(
        range(1, stats.lines + 1)
    )
    assert stats.lines == len(expected_lines(data))
    assert builder.invalid_utf8 == stats.invalid_utf8
    for record in records:  # a piece never exceeds the cap
        assert len(record["message"].encode("utf-8")) <= max_line * 3 + 3
        assert record["run_id"] == "r1" and record["source"] == "t"


@pytest.mark.scenario(
    "codec fuzz: txt through every compression",
    "hypothesis bytes through txt with none, gzip and zstd: decompressed output byte-identical "
    "to the input, sha256 and size equal",
)
@settings(max_examples=200, deadline=None)
@given(data=log_bytes, cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=8),
       compression=st.sampled_from(["none", "gzip", "zstd"]))
def test_txt_output_equals_input_for_every_compression(data: bytes, cuts: list[int],
                                                       compression: str) -> None:
    stored, _, stats = run_codec(data, cuts, "txt", compression, 1024)
    assert stored == data
    assert stats.sha256 == hashlib.sha256(data).hexdigest()
    assert stats.size == len(data)


@pytest.mark.scenario(
    "codec fuzz: json array through every compression",
    "hypothesis bytes through json with none, gzip and zstd: json.load parses the array, one "
    "object per line, messages equal the decoded lines",
)
@settings(max_examples=150, deadline=None)
@given(data=log_bytes, cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=8),
       compression=st.sampled_from(["none", "gzip", "zstd"]))
def test_json_array_parses_with_json_load(data: bytes, cuts: list[int], compression: str) -> None:
    stored, _, stats = run_codec(data, cuts, "json", compression, 4096)
    document = json.loads(stored)
    assert isinstance(document, list)
    assert [r["message"] for r in document] == expected_lines(data)
    assert len(document) == stats.lines


def test_crlf_and_last_line_without_newline() -> None:
    builder = RecordBuilder(FIELDS)
    records = (builder.feed(b"a\r\nb\r\n").records() + builder.feed(b"c\rd").records()
               + builder.finish().records())
    assert [r["message"] for r in records] == ["a", "b", "c\rd"]
    assert [r["seq"] for r in records] == [1, 2, 3]


def test_empty_log_has_no_lines_and_an_empty_json_array() -> None:
    stored, builder, stats = run_codec(b"", [], "json", "none", 1024)
    assert json.loads(stored) == []
    assert builder.records == 0 and stats.lines == 0


def test_long_line_becomes_parts_marked_as_continuations() -> None:
    line = "x" * 10 + "é" * 10  # 30 bytes
    builder = RecordBuilder(FIELDS, max_line_bytes=8)
    records = builder.feed(line.encode() + b"\nshort\n").records() + builder.finish().records()
    parts = [r for r in records if r["seq"] == 1]
    assert len(parts) > 3
    assert [p["part"] for p in parts] == list(range(1, len(parts) + 1))
    assert all(p["partial"] for p in parts[:-1]) and not parts[-1]["partial"]
    assert not parts[0]["continuation"] and all(p["continuation"] for p in parts[1:])
    assert "".join(p["message"] for p in parts) == line  # never split inside a character
    assert "\ufffd" not in "".join(p["message"] for p in parts)
    assert records[-1] == {"seq": 2, "timestamp": None, "level": None, "message": "short",
                           **FIELDS}


def test_line_over_cap_does_not_grow_memory_beyond_the_cap() -> None:
    splitter = LineSplitter(max_line_bytes=1024)
    emitted = 0
    for _ in range(2000):  # a 2 MB line without a newline, fed in 1 KiB chunks
        emitted += len(splitter.feed(b"y" * 1024))
        assert len(splitter._buf) <= 1024
    assert emitted >= 1998


def test_invalid_utf8_is_replaced_and_counted() -> None:
    data = b"ok \xff\xfe\n\xe2\x82 cut\nfine \xef\xbf\xbd genuine replacement char\n"
    stored, builder, stats = run_codec(data, [5, 9], "ndjson", "none", 1024)
    messages = [orjson.loads(x)["message"] for x in stored.splitlines()]
    assert messages[0] == "ok \ufffd\ufffd"
    assert builder.invalid_utf8 == stats.invalid_utf8 == 3  # the genuine U+FFFD is not counted


# A timestamp without an offset is taken in [logarchive.parse] timezone (UTC by default).
@pytest.mark.parametrize("line,timestamp", [
    ("2026-03-13T10:00:00.123Z [INFO] x", "2026-03-13T10:00:00.123Z"),
    ("2026-03-13T12:00:00+02:00 [INFO] x", "2026-03-13T10:00:00.000Z"),
    ("2026-03-15 09:30:00,120 [INFO] Job completed", "2026-03-15T09:30:00.120Z"),
    ("2026-03-13T10:00:00 +0100 [INFO] x", "2026-03-13T09:00:00.000Z"),
    ("2026-03-13 10:00:00.5 -05:30 x", "2026-03-13T15:30:00.500Z"),
    ("2026-03-13T10:00:00 +01 x", "2026-03-13T10:00:00.000Z"),
    ("2026-03-13T10:00:00 +01000 x", "2026-03-13T10:00:00.000Z"),
    ("2026-13-45T10:00:00Z not a date", None),
    ("Processing records: batch 1/10", None),
    ("", None),
])
def test_timestamp_parsing(line: str, timestamp: str | None) -> None:
    assert parse_timestamp(line) == timestamp


@pytest.mark.parametrize("line,level", [
    ("2026-03-13T10:02:45.012Z [WARN] Gradient clipping", "warning"),
    ("[ERROR] boom", "error"),
    ("x [debug] y", "debug"),
    ("2026-03-13 [FATAL] z", "critical"),
    ("no marker here INFO", None),
])
def test_level_parsing(line: str, level: str | None) -> None:
    assert parse_level(line) == level


def test_gzip_output_is_deterministic_and_standard() -> None:
    def compress() -> bytes:
        c = Compressor("gzip")
        return c.compress(b"hello\n" * 100) + c.flush()

    assert compress() == compress()
    assert gzip.decompress(compress()) == b"hello\n" * 100


def test_unknown_format_and_compression_are_errors() -> None:
    with pytest.raises(ValueError, match="format"):
        FormatEncoder("xml")
    with pytest.raises(ValueError, match="compression"):
        Compressor("lz4")
