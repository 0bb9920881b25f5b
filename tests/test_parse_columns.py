"""parse.columns (RE2 kernels over Arrow arrays) equals parse.line on every input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logarchive import parse
from logarchive.parse import ParseSettings

pa = pytest.importorskip("pyarrow")

ZONES = ["UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kolkata", "Australia/Lord_Howe",
         "America/Santiago"]
NAMES = ["TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERR", "ERROR", "CRIT",
         "CRITICAL", "FATAL", "INFORMATION", "WARNINGS", "ERRO", "LEVEL"]


def digits(n: int, top: int | None = None) -> st.SearchStrategy[str]:
    if top is None:
        return st.text("0123456789", min_size=n, max_size=n)
    return st.integers(0, top).map(lambda v: str(v).zfill(n))


@st.composite
def stamps(draw: st.DrawFn) -> str:
    """Timestamps of every documented form, valid and not quite."""
    year = draw(st.one_of(st.sampled_from(["2026", "2024", "1970", "0000", "0001", "9999", "1900",
                                           "2037", "2100", "1582"]), digits(4)))
    date = f"{year}-{draw(digits(2, 13))}-{draw(digits(2, 32))}"
    text = date + draw(st.sampled_from(["T", " ", "t", "_"])) + draw(digits(2, 25)) + ":"
    text += draw(digits(2, 61))
    if draw(st.booleans()):
        text += ":" + draw(digits(2, 61))
        if draw(st.booleans()):
            # three digits (with Z or no offset: the sliced layouts) as often as any other count
            text += draw(st.sampled_from(".,")) + draw(st.one_of(
                digits(3), st.text("0123456789", min_size=0, max_size=11)))
    offset = draw(st.sampled_from(["", "", "Z", "z", "+{h}", "-{h}", "+{h}{m}", "-{h}:{m}",
                                   " +{h}{m}", " -{h}:{m}", " +{h}", "+{h}:", " Z"]))
    text += offset.format(h=draw(digits(2, 25)), m=draw(digits(2, 99)))
    tail = draw(st.sampled_from(["", " ", "0", "5 x", "] ", " [INFO] x", " - ERROR - y"]))
    return draw(st.sampled_from(["", "[", " "])) + text + tail


def cased(name: str, how: int) -> str:
    return [name, name.lower(), name.title(), name[:1].lower() + name[1:]][how]


@st.composite
def levels(draw: st.DrawFn) -> str:
    """A level marker of every documented form, at a random column near the 80-character window."""
    name = cased(draw(st.sampled_from(NAMES)), draw(st.integers(0, 3)))
    marker = draw(st.sampled_from([
        "[{n}]", " - {n} - ", " - {n}      - ", "| {n}    |", " level={n} ", " level={n}",
        ' level="{n}" ', "level={n}", "{n}:", "{n} ", " {n} ", " {n}:", " {n}", "[ {n} ]",
        " -{n}- ", "NCCL {n} "]))
    width = draw(st.sampled_from([0, 1, 5, 40, 76, 77, 78, 79, 80, 81, 85]))
    filler = draw(st.sampled_from(["x", " ", "-", "[", "|", "é", "日"]))
    return filler * width + marker.format(n=name) + draw(st.text(max_size=20))


json_values = st.one_of(
    stamps(), levels(), st.text(max_size=20), st.integers(-10**19, 2**64 - 1),
    st.floats(allow_nan=False), st.sampled_from([True, False, None, 1773567000, 1773567000.5,
                                                 1773567000123, 1e300, -62135596801, [], {}]),
    st.sampled_from(NAMES).map(str.lower),
)
json_keys = st.sampled_from(["ts", "time", "timestamp", "@timestamp", "level", "severity",
                             "levelname", "msg", "message", "event", "other", "t", "lvl"])


@st.composite
def json_lines(draw: st.DrawFn) -> str:
    obj = draw(st.dictionaries(json_keys, json_values, max_size=5))
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    spoil = draw(st.sampled_from(["", "", "", "pad", "cut", "tail", "single"]))
    if spoil == "pad":
        text = " \t" + text + " "
    elif spoil == "cut":
        text = text[:-1]
    elif spoil == "tail":
        text += " [ERROR] x"
    elif spoil == "single":
        text = text.replace('"', "'")
    return text


lines = st.one_of(
    st.builds(lambda a, b: a + b, stamps(), st.one_of(levels(), st.text(max_size=30))),
    stamps(), levels(), json_lines(), st.text(max_size=120),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=5), stamps(), levels()),
    st.builds(lambda a, b: a + b, levels(), levels()),  # "[ERRO] x [INFO]": the second counts
)


@settings(max_examples=150, deadline=None)
@given(batch=st.lists(lines, min_size=1, max_size=25), zone=st.sampled_from(ZONES),
       custom=st.booleans())
def test_columns_equal_the_per_line_reference(batch: list[str], zone: str, custom: bool) -> None:
    config = ParseSettings(timezone=zone, timestamp_fields=("t", "ts") if custom else
                           parse.DEFAULT.timestamp_fields,
                           level_fields=("lvl",) if custom else parse.DEFAULT.level_fields)
    got = parse.columns(pa.array(batch, pa.string()), config)
    expected = [parse.line(text, config) for text in batch]
    assert list(zip(got.timestamp.to_pylist(), got.level.to_pylist())) == expected
    instants = [None if t is None else t.isoformat(timespec="milliseconds")[:-6] + "Z"
                for t in got.instant.to_pylist()]
    assert instants == [t for t, _ in expected]


def test_columns_accept_chunked_and_large_strings() -> None:
    texts = ["2026-03-15 09:30:00,120 - INFO - x", '{"ts": 1773567000, "level": "warn"}', "x"]
    expected = [parse.line(t) for t in texts]
    for array in (pa.chunked_array([texts[:1], texts[1:]]), pa.array(texts, pa.large_string())):
        got = parse.columns(array)
        assert list(zip(got.timestamp.to_pylist(), got.level.to_pylist())) == expected
    assert str(got.instant.type) == "timestamp[ms, tz=UTC]"


@settings(max_examples=60, deadline=None)
@given(year=st.integers(1, 9999), month=st.integers(1, 12), day=st.integers(1, 28),
       hour=st.integers(0, 23), minute=st.integers(0, 59), zone=st.sampled_from(ZONES))
def test_every_wall_clock_time_of_every_year_agrees(year: int, month: int, day: int, hour: int,
                                                     minute: int, zone: str) -> None:
    text = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:07,5 x"
    config = ParseSettings(timezone=zone)
    assert parse.columns(pa.array([text]), config).timestamp[0].as_py() == parse.timestamp(
        text, config)


def test_re2_case_folding_of_level_names_stays_ascii() -> None:
    """The RE2 patterns spell level names with (?i); Python's with [Ii] classes. They agree only
    if RE2 folds no non-ASCII character onto a letter of a level name (Python's (?i) folds "ı"
    onto "i" and "K" onto "k", hence the classes there)."""
    import pyarrow.compute as pc

    letters = sorted(set("".join(parse.NAMES)))
    others = pa.array([chr(c) for c in range(0x80, 0x110000) if not 0xD800 <= c < 0xE000])
    folded = pc.match_substring_regex(others, "(?i)^[%s]$" % "".join(letters))
    assert pc.sum(folded).as_py() == 0
    assert pc.sum(pc.match_substring_regex(pa.array(list("traceDBUGinfoWL")),
                                           "(?i)^[%s]$" % "".join(letters))).as_py() == 15


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_fixed_layouts_and_look_alike_markers(zone: str) -> None:
    """Rows read by slicing (milliseconds then Z or no offset) and rows whose first
    marker-shaped word is not a level ("[Debugs]") agree with the reference."""
    texts = [
        "2026-03-15 09:30:00,120 - INFO - trainer - x", "2026-03-15T09:30:00.120Z [WARN] x",
        "2026-03-15T09:30:00.120z x", "2026-03-15T09:30:00.120", "2026-03-15T09:30:00.1200 x",
        "2026-03-15T09:30:00.120 +0100 x", "2026-03-15T09:30:00.120 +01000 x",
        "2026-03-15T09:30:00.120 - 5", "2026-03-15T09:30:00.120-05 x", "2026-02-29T09:30:00.120Z",
        "2026-03-15T24:30:00.120Z", "2026-03-15T09:30:60.120Z", "0000-03-15T09:30:00.120Z",
        "2026-03-29 02:30:00.000 x", "9999-12-31 23:59:59.999 x", "0001-01-01 00:00:00.000 x",
        "[Debugs] x [INFO] y", "[ERRO] - ERROR - y", "Warnings: [info] x", "level=erro [CRIT]",
        "x" * 70 + " [Infos] [debug]" + "y" * 10, "x" * 75 + " [Infos] [debug]",
    ]
    config = ParseSettings(timezone=zone)
    got = parse.columns(pa.array(texts, pa.string()), config)
    assert list(zip(got.timestamp.to_pylist(), got.level.to_pylist())) == [
        parse.line(text, config) for text in texts]
