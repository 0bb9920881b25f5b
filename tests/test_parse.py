"""Timestamp and level detection (logarchive.parse): one test row per documented form."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logarchive import parse
from logarchive.codec import RecordBuilder
from logarchive.config import Config, load_config
from logarchive.errors import ConfigError
from logarchive.parse import ParseSettings
from logarchive.pipeline import runtime_settings
from logarchive_testsupport.workspace import FILES_TO_FS_TOML

BERLIN = ParseSettings(timezone="Europe/Berlin")


@pytest.mark.parametrize("line,expected", [
    # ISO 8601 with T or a space, . or , fractions, Z / z
    ("2026-03-13T10:00:00.123Z [INFO] x", "2026-03-13T10:00:00.123Z"),
    ("2026-03-13 10:00:00.123Z x", "2026-03-13T10:00:00.123Z"),
    ("2026-03-13T10:00:00,5z x", "2026-03-13T10:00:00.500Z"),
    ("2026-03-13T10:00:00.123999999Z x", "2026-03-13T10:00:00.123Z"),  # truncated, not rounded
    ("2026-03-13T10:00 x", "2026-03-13T10:00:00.000Z"),                # no seconds
    # offsets: +01:00, +0100, +01, and after one space
    ("2026-03-13T12:00:00+02:00 [INFO] x", "2026-03-13T10:00:00.000Z"),
    ("2026-03-13T10:00:00+0100 x", "2026-03-13T09:00:00.000Z"),
    ("2026-03-13T10:00:00+01 x", "2026-03-13T09:00:00.000Z"),
    ("2026-03-13T10:00:00 +0100 [INFO] x", "2026-03-13T09:00:00.000Z"),
    ("2026-03-13 10:00:00.5 -05:30 x", "2026-03-13T15:30:00.500Z"),
    ("2026-03-13T00:30:00+01:00 x", "2026-03-12T23:30:00.000Z"),       # crosses midnight
    # Python logging's default asctime; DeepSpeed's bracketed one
    ("2026-03-15 09:30:00,120 - INFO - trainer - step 1", "2026-03-15T09:30:00.120Z"),
    ("[2026-03-15 09:30:00,120] [INFO] [engine.py:12] x", "2026-03-15T09:30:00.120Z"),
    # naive: taken in the zone (UTC by default); a spaced offset running into digits is none
    ("2026-03-13T10:00:00 +01000 x", "2026-03-13T10:00:00.000Z"),
    ("2026-03-13T10:00:00 +01 x", "2026-03-13T10:00:00.000Z"),
    # not a timestamp
    ("2026-02-29T10:00:00Z leap day of a common year", None),
    ("2024-02-29T10:00:00Z x", "2024-02-29T10:00:00.000Z"),
    ("2026-03-13T24:00:00Z x", None),
    ("2026-03-13T10:00:60Z x", None),
    ("0000-01-01T00:00:00Z x", None),
    ("2026-03-13T10:00:00+24:00 x", None),
    ("0001-01-01T00:00:00+00:01 x", None),   # before year 1 in UTC (used to raise)
    ("9999-12-31T23:59:59-00:01 x", None),   # after year 9999 in UTC
    ("x 2026-03-13T10:00:00Z", None),        # not at the start
    ("Processing records: batch 1/10", None),
    ("", None),
])
def test_timestamp_forms(line: str, expected: str | None) -> None:
    assert parse.timestamp(line) == expected


@pytest.mark.parametrize("line,expected", [
    ("2026-01-15 09:30:00,120 - INFO - x", "2026-01-15T08:30:00.120Z"),   # CET, +01:00
    ("2026-07-15 09:30:00 x", "2026-07-15T07:30:00.000Z"),                # CEST, +02:00
    ("2026-07-15T09:30:00Z x", "2026-07-15T09:30:00.000Z"),               # an offset wins
    ("2026-03-29 02:30:00 skipped by the change", "2026-03-29T01:30:00.000Z"),  # fold=0
    ("2026-10-25 02:30:00 happens twice", "2026-10-25T00:30:00.000Z"),    # the first one
])
def test_naive_timestamps_are_taken_in_the_configured_zone(line: str, expected: str) -> None:
    assert parse.timestamp(line, BERLIN) == expected


@pytest.mark.parametrize("line,expected", [
    ("2026-03-13T10:02:45.012Z [WARN] Gradient clipping", "warning"),
    ("[ERROR] boom", "error"),
    ("x [debug] y", "debug"),
    ("[Warning] y", "warning"),
    ("2026-03-13 [FATAL] z", "critical"),
    ("[CRIT] [ERR] [TRACE] [NOTICE]", "critical"),
    ("[0] [notice]", "notice"),
    ("2026-03-15 09:30:00,120 - INFO - trainer - step", "info"),
    ("2026-03-15 09:30:00,120 - trainer - WARNING - step", "warning"),
    ("2026-03-15 09:30:00,120 - trainer - ERROR    - padded", "error"),
    ("2026-03-15 09:30:00.120 | DEBUG    | mod:fn:12 - loguru", "debug"),
    ("INFO:root:basicConfig's format", "info"),
    ("warning: lower case at the start", "warning"),
    ("time=2026-03-13T10:00:00Z level=info msg=x", "info"),
    ('time=2026-03-13T10:00:00Z level="warn" msg=x', "warning"),
    ("level=error", "error"),
    ("node-0:4002:4107 [0] NCCL INFO Channel 00/02 : 0 1", "info"),
    ("node-0:4002:4107 [0] NCCL WARN Cuda failure", "warning"),
    ("2026-03-15 09:30:00 ERROR: disk full", "error"),
    ("TRACE entering", "trace"),
    ("x - ERROR - then [INFO]", "error"),     # the first marker wins
    # not a level marker
    ("no marker here INFO", None),           # a bare name needs a space or ':' after it
    ("an info message, an error: lower case mid-line", None),
    ("[INFORMATION] x", None),
    ("level=informative", None),
    ("Epoch 1: 45%|####5     | 450/1000 [00:10<00:12, 44.1it/s]", None),
    ("{'loss': 0.31, 'grad_norm': 2.1, 'epoch': 0.5}", None),
])
def test_level_forms(line: str, expected: str | None) -> None:
    assert parse.level(line) == expected


def test_a_level_marker_must_start_within_80_characters() -> None:
    assert parse.level("x" * 79 + "[ERROR]") == "error"
    assert parse.level("x" * 80 + "[ERROR]") is None
    assert parse.level("x" * 78 + " ERROR ") == "error"
    assert parse.level("x" * 80 + " ERROR ") is None


@pytest.mark.parametrize("fields,expected", [
    ({"ts": "2026-03-15T09:30:00.5+01:00", "level": "warn", "event": "x"},
     ("2026-03-15T08:30:00.500Z", "warning")),
    ({"time": "2026-03-15 09:30:00", "severity": "ERROR"}, ("2026-03-15T09:30:00.000Z", "error")),
    ({"@timestamp": "2026-03-15T09:30:00Z", "levelname": "Critical"},
     ("2026-03-15T09:30:00.000Z", "critical")),
    ({"timestamp": 1773567000}, ("2026-03-15T09:30:00.000Z", None)),            # seconds
    ({"ts": 1773567000.1234}, ("2026-03-15T09:30:00.123Z", None)),              # rounded
    ({"ts": 1773567000123}, ("2026-03-15T09:30:00.123Z", None)),                # milliseconds
    ({"ts": 1773567000123456}, ("2026-03-15T09:30:00.123Z", None)),             # microseconds
    ({"ts": 1773567000123456789}, ("2026-03-15T09:30:00.123Z", None)),          # nanoseconds
    ({"ts": True, "level": 20}, (None, None)),                                  # wrong types
    ({"ts": "yesterday", "level": "loud"}, (None, None)),
    ({"msg": "2026-03-15T09:30:00Z [ERROR] x"}, ("2026-03-15T09:30:00.000Z", "error")),
    ({"level": "info", "message": "[ERROR] the field wins"}, (None, "info")),
    ({"ts": "2026-03-15T09:30:00Z", "event": "tab\there \"quoted\" 日本"},
     ("2026-03-15T09:30:00.000Z", None)),
])
def test_json_lines_use_their_fields(fields: dict, expected: tuple) -> None:
    line = orjson.dumps(fields).decode()
    assert parse.line(line) == expected
    assert parse.line("  " + json.dumps(fields, ensure_ascii=False) + "\t") == expected


def test_json_field_names_are_configurable() -> None:
    line = '{"t": "2026-03-15T09:30:00Z", "lvl": "debug", "ts": "2020-01-01T00:00:00Z"}'
    custom = ParseSettings(timestamp_fields=("t",), level_fields=("lvl",))
    assert parse.line(line, custom) == ("2026-03-15T09:30:00.000Z", "debug")
    assert parse.line(line) == ("2020-01-01T00:00:00.000Z", None)


def test_a_line_that_is_not_a_json_object_is_text() -> None:
    assert parse.line('{"ts": "2026-03-15T09:30:00Z", broken [ERROR]') == (None, "error")
    assert parse.line('{"a": 1} [ERROR] trailing') == (None, "error")


def test_the_record_message_stays_the_whole_line() -> None:
    lines = ['{"ts": "2026-03-15T09:30:00Z", "level": "info", "msg": "hi"}',
             "2026-03-15 09:30:00,120 - INFO - trainer - step"]
    builder = RecordBuilder({"run_id": "r"})
    records = builder.feed("\n".join(lines).encode() + b"\n").records()
    assert [r["message"] for r in records] == lines
    assert [(r["timestamp"], r["level"]) for r in records] == [
        ("2026-03-15T09:30:00.000Z", "info"), ("2026-03-15T09:30:00.120Z", "info")]


def test_the_codec_uses_the_configured_zone() -> None:
    builder = RecordBuilder({}, parse=BERLIN)
    records = builder.feed(b"2026-07-15 09:30:00 INFO x\n").records()
    assert records[0]["timestamp"] == "2026-07-15T07:30:00.000Z"


def test_unknown_zone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        ParseSettings(timezone="Mars/Olympus")


GOOD = FILES_TO_FS_TOML + """
[[pipelines]]
name = "training"
source = "training"
sinks = ["archive"]
"""


def load(tmp_path: Path, table: str) -> Config:
    path = tmp_path / "logarchive.toml"
    path.write_text(f"[logarchive.parse]\n{table}\n" + GOOD)
    return load_config(path, environ={})


def test_config_table_reaches_the_settings(tmp_path: Path) -> None:
    config = load(tmp_path, 'timezone = "America/New_York"\ntimestamp_fields = ["when"]')
    expected = ParseSettings(timezone="America/New_York", timestamp_fields=("when",))
    assert config.settings.parse.settings() == expected
    assert runtime_settings(config).parse == expected
    assert load(tmp_path, "").settings.parse.settings() == parse.DEFAULT


@pytest.mark.parametrize("table,key,hint", [
    ('timezone = "Nowhere/City"', "logarchive.parse.timezone", "unknown time zone"),
    ('level_fields = "level"', "logarchive.parse.level_fields", "valid list"),
    ('zone = "UTC"', "logarchive.parse.zone", "timezone"),
])
def test_bad_parse_config_names_the_key(tmp_path: Path, table: str, key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, table)
    assert key in str(info.value) and hint in str(info.value)
    assert info.value.exit_code == 2


def test_the_per_line_reference_needs_no_pyarrow() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["pyarrow"] = None
        from logarchive import parse
        from logarchive.errors import ConfigError
        assert parse.line("2026-03-15 09:30:00,120 - INFO - x") == (
            "2026-03-15T09:30:00.120Z", "info")
        try:
            parse.columns(["x"])
        except ConfigError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'logarchive[parquet]'" in out.stdout


# --- the codec's fast path agrees with the per-line reference on every form -------------------

FORM_LINES = [
    "2026-03-13T10:00:00.123Z [INFO] fast shape A", "plain text, fast shape B",
    "INFO:root:B-like but a level", "x - ERROR - B-like", "level=debug B-like",
    "node-0:4002:4107 [0] NCCL INFO Channel", "host NCCL WARN B-like", "| TRACE |",
    "2026-03-15 09:30:00,120 - INFO - trainer - step", '{"ts": 1773567000, "level": "error"}',
    "{'loss': 0.31}", "Epoch 1: 45%|####5     | 450/1000", "", "\r", "error: lower",
]


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(st.one_of(st.sampled_from(FORM_LINES), st.text(max_size=90)), max_size=40),
       cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=6))
def test_codec_records_carry_the_reference_timestamp_and_level(lines: list[str],
                                                               cuts: list[int]) -> None:
    data = "\n".join(lines).encode() + b"\n"
    builder = RecordBuilder({})
    records: list[dict] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in zip(points, points[1:]):
        records += builder.feed(data[start:end]).records()
    records += builder.finish().records()
    for record in records:
        expected = parse.line(record["message"]) if not record.get("continuation") else (None,
                                                                                         None)
        assert (record["timestamp"], record["level"]) == expected


# --- what parsed before issue 15 still parses to the same string (naive ones now gain the Z) ---

_OLD = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?"
                  r"(?:Z|z|[+-]\d{2}(?::?\d{2})?| [+-]\d{2}:?\d{2}(?!\d))?")


def old_timestamp(text: str) -> str | None:
    """The codec's parse_timestamp before issue 15 (regex + datetime.fromisoformat)."""
    match = _OLD.match(text)
    if match is None:
        return None
    raw = match.group(0).replace(",", ".").replace(" +", "+").replace(" -", "-")
    try:
        value = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.isoformat(timespec="milliseconds")
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:  # the old code raised here
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@settings(max_examples=300, deadline=None)
@given(text=st.from_regex(r"\A[0-9]{4}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-6][0-9]"
                          r"(:[0-6][0-9]([.,][0-9]{1,10})?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?"
                          r"| [+-][0-9]{2}:?[0-9]{2})?[0-9 x]?\Z"))
def test_timestamps_that_parsed_before_keep_their_canonical_string(text: str) -> None:
    old = old_timestamp(text)
    if old is not None:
        assert parse.timestamp(text) == (old if old.endswith("Z") else old + "Z")
