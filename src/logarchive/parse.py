"""Timestamp and level detection: a per-line reference and a vectorised twin over Arrow arrays.

API (stable; the codec calls it)
    ``ParseSettings(timezone="UTC", timestamp_fields=(...), level_fields=(...),
    message_fields=(...))``: the ``[logarchive.parse]`` table; ``DEFAULT`` is all defaults.

    Per line (pure Python, no pyarrow): ``timestamp(text, settings=DEFAULT) -> str | None``,
    ``level(text, settings=DEFAULT) -> str | None``, and ``line(text, settings=DEFAULT) ->
    (timestamp, level)`` (both at once; a JSON line is decoded once).

    Vectorised (needs pyarrow, the ``[parquet]`` extra): ``columns(messages, settings=DEFAULT)
    -> Columns(timestamp, level, instant)`` for a ``pa.StringArray`` (or ``large_string`` /
    ``ChunkedArray``) of messages: ``timestamp`` a string array in the canonical form below,
    ``level`` a string array of the names below, ``instant`` the same timestamps as
    ``timestamp[ms, tz=UTC]`` (for Parquet); null where nothing was found. Row ``i`` of each
    equals ``line(messages[i], settings)`` exactly (``tests/test_parse_columns.py`` fuzzes it).
    Continuation parts of a long line get no timestamp or level: the caller masks those rows.

Canonical forms
    A timestamp is UTC, millisecond precision, ``Z``: ``2026-03-13T10:00:00.123Z`` (fractions
    beyond milliseconds are truncated, as ``datetime.isoformat(timespec="milliseconds")`` does).
    A level is one of ``trace debug info notice warning error critical``.

Text lines
    Timestamp, at the very start of the line (after at most one ``[``): ``YYYY-MM-DD``, ``T`` or a
    space, ``hh:mm``, optionally ``:ss`` and a ``.``/``,`` fraction of 1-9 digits, optionally an
    offset: ``Z``/``z``, ``+hh``, ``+hhmm``, ``+hh:mm``, or after one space ``+hhmm``/``+hh:mm``
    (not followed by a digit). The calendar date and time must be valid (hours 0-23, seconds
    0-59, year 0001-9999, offset under 24 h) and so must the UTC result. Without an offset the
    time is taken in ``settings.timezone`` (a zoneinfo name; a time that is ambiguous or skipped at
    a DST change is read with the offset in force before the change, Python's ``fold=0``).

    Level, the first of these markers that starts within the first 80 characters, where NAME is
    TRACE DEBUG INFO NOTICE WARN WARNING ERR ERROR CRIT CRITICAL FATAL in any ASCII case, and
    UPPER is the same names in upper case only:
    ``[NAME]``; `` - NAME - `` (Python logging, padding allowed before the second ``-``);
    ``| NAME |`` (loguru, padded); ``level=NAME`` or ``level="NAME"`` (logfmt, at the start or
    after a space, ending the line or followed by a space); ``NAME:`` at the very start of the
    line (``WARNING:root:...``); ``UPPER`` at the start or after a space and followed by a space or
    ``:`` (``... NCCL INFO ...``, ``2026-03-15 09:30:00 ERROR x``). WARN → warning, ERR → error,
    CRIT and FATAL → critical.

JSON lines
    A line that is a JSON object (``{`` then ``"`` or ``}`` after optional blanks, ending in ``}``,
    decoded by orjson) takes its timestamp from the first of ``settings.timestamp_fields`` present
    with a string (parsed as above) or a number (epoch seconds; a magnitude of 1e11 or more is
    milliseconds, 1e14 microseconds, 1e17 nanoseconds; rounded to the millisecond), and its level
    from the first of ``settings.level_fields`` present with a string that is a NAME. What a field
    does not give is looked for in the text of the first of ``settings.message_fields`` present
    with a string value. The record's ``message`` stays the whole line (the line model does not
    change); only ``timestamp`` and ``level`` come from the fields. A line that does not decode is
    a text line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

LEVELS: tuple[str, ...] = ("trace", "debug", "info", "notice", "warning", "error", "critical")
NAMES: dict[str, str] = {
    "TRACE": "trace", "DEBUG": "debug", "INFO": "info", "NOTICE": "notice", "WARNING": "warning",
    "WARN": "warning", "ERROR": "error", "ERR": "error", "CRITICAL": "critical",
    "CRIT": "critical", "FATAL": "critical",
}
LEVEL_WINDOW = 80


@lru_cache(maxsize=32)
def zone_of(name: str) -> Any:
    """The tzinfo for a zone name (``None`` for UTC); ValueError naming an unknown zone."""
    if name in ("UTC", "Etc/UTC"):
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; expected an IANA name such as "
                         "'UTC' or 'Europe/Berlin'") from None


@dataclass(frozen=True)
class ParseSettings:
    """How timestamps and levels are found (the ``[logarchive.parse]`` config table)."""

    timezone: str = "UTC"
    timestamp_fields: tuple[str, ...] = ("ts", "time", "timestamp", "@timestamp")
    level_fields: tuple[str, ...] = ("level", "severity", "levelname")
    message_fields: tuple[str, ...] = ("msg", "message", "event")

    def __post_init__(self) -> None:
        zone_of(self.timezone)  # a clear ValueError now rather than on the first naive line


DEFAULT = ParseSettings()


# --- the patterns (Python re and RE2 read them alike: ASCII classes, no look-around) -----------

_ORDER = sorted(NAMES, key=lambda n: (-len(n), n))  # longest first: WARNING before WARN
_UPPER = "(?:" + "|".join(_ORDER) + ")"


def _markers(name: str) -> tuple[str, str]:
    """Markers that start a line (each begins with a letter) and markers anywhere (each begins
    with ``[``, a space or ``|``): at the start of a line at most one family can match."""
    start = (r"level=(?P<k0>%s)(?: |$)|level=\"(?P<q0>%s)\"(?: |$)|(?P<c>%s):|(?P<w0>%s)[ :]"
             % (name, name, name, _UPPER))
    anywhere = (r"\[(?P<b>%s)\]| - (?P<d>%s) {1,10}- |\| (?P<p>%s) {1,10}\|"
                r"| level=(?P<k>%s)(?: |$)| level=\"(?P<q>%s)\"(?: |$)| (?P<w>%s)[ :]"
                % (name, name, name, name, name, _UPPER))
    return start, anywhere


# Python spells ASCII case-insensitivity out ((?i) would also match "ı" and "İ" there); RE2's
# (?i) folds the letters of these names to ASCII only (tests/test_parse_columns.py checks it),
# and its automaton is smaller.
_LEVEL_START, _LEVEL_ANYWHERE = _markers(
    "(?:" + "|".join("".join(f"[{c}{c.lower()}]" for c in n) for n in _ORDER) + ")")
_RE2_START, _RE2_ANYWHERE = (re.sub(r"\(\?P<\w+>", "(?:", part) for part in _markers(
    "(?i:" + "|".join(_ORDER) + ")"))
# The whole rule as one RE2 pattern (the vectorised path); Python runs its two halves, faster.
LEVEL_PATTERN = r"(?s)^(?:%s|.{0,%d}?(?:%s))" % (_RE2_START, LEVEL_WINDOW - 1, _RE2_ANYWHERE)
# For extraction, one group holding the whole leftmost marker (one output column, not nine):
# the name is what is left once ``level=`` and the delimiters are taken off.
_LEVEL_MARKER = r"(?P<marker>^(?:%s)|%s)" % (_RE2_START, _RE2_ANYWHERE)
# The same with any 3-8 letters in place of each case-insensitive NAME (UPPER stays): its
# automaton is a fraction of the size, so extraction (RE2 runs a backtracker whose cost grows
# with the pattern) is about twice as fast. Every marker matches it too, so when the leftmost
# match of this one holds a NAME, it is the leftmost marker; when it does not (``[Debugs]``
# before a marker), the row is extracted again with :data:`_LEVEL_MARKER`.
_LEVEL_MARKER_ANY = _LEVEL_MARKER.replace(
    "(?i:" + "|".join(_ORDER) + ")", "[A-Za-z]{3,8}")
_LEVEL_SPAN = LEVEL_WINDOW + 40  # no marker starting in the window ends past this
_D2 = "[0-9]{2}"
TIMESTAMP_PATTERN = (
    r"^\[?(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ](?P<hm>[0-9]{2}:[0-9]{2})"
    r"(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]{1,9}))?)?"
    r"(?P<off>[Zz]|[+-]%s(?::?%s)?| [+-]%s:?%s)?(?P<next>[0-9]?)" % (_D2, _D2, _D2, _D2)
)
JSON_PATTERN = r"^[ \t]*\{[ \t]*[\"}].*\}[ \t]*$"


def _python(pattern: str) -> re.Pattern[str]:
    # RE2's ``$`` (no multi-line) is Python's ``\Z``; lines never hold ``\n`` but be exact.
    return re.compile(pattern.replace("$", r"\Z"))


_LEVEL_START_RE = _python(_LEVEL_START)
_LEVEL_ANYWHERE_RE = _python(_LEVEL_ANYWHERE)
_TIMESTAMP_RE = _python(TIMESTAMP_PATTERN)
_CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)
_MIN_MS = -62135596800000        # 0001-01-01T00:00:00.000Z
_MAX_MS = 253402300799999        # 9999-12-31T23:59:59.999Z
_ARROW_ZONES = (-2208988800000, 2145916800000)  # 1900-01-01, 2038-01-01: see _zone_column


# --- per line ---------------------------------------------------------------------------------

def line(text: str, settings: ParseSettings = DEFAULT) -> tuple[str | None, str | None]:
    """``(timestamp, level)`` of one line (see the module docstring)."""
    if text and text[0] in "{ \t" and _is_json_object(text):
        found = _json_line(text, settings)
        if found is not None:
            return found
    return _text_timestamp(text, settings), _text_level(text)


def _is_json_object(text: str) -> bool:
    """:data:`JSON_PATTERN` without a regex: ``{``, then ``"`` or ``}``, ..., ``}``, no LF."""
    rest = text.lstrip(" \t")
    if rest[:1] != "{" or "\n" in text:
        return False
    rest = rest[1:].lstrip(" \t")
    return rest[:1] in ('"', "}") and rest[1:].rstrip(" \t").endswith("}")


def timestamp(text: str, settings: ParseSettings = DEFAULT) -> str | None:
    """The line's timestamp in the canonical UTC form, else ``None``."""
    return line(text, settings)[0]


def level(text: str, settings: ParseSettings = DEFAULT) -> str | None:
    """The line's level, one of :data:`LEVELS`, else ``None``."""
    return line(text, settings)[1]


def _text_timestamp(text: str, settings: ParseSettings) -> str | None:
    if len(text) < 16 or not ("0" <= text[0] <= "9" or text[0] == "["):
        return None
    # Fast path: already canonical (``2026-03-13T10:00:00.123Z``), the usual training-log form.
    if len(text) >= 24 and text[23] == "Z" and text[17:19] < "60" and _CANONICAL.match(text):
        return text[:24] if _minute_ms(text[:10], text[11:16]) is not None else None
    found = _TIMESTAMP_RE.match(text)
    if found is None:
        return None
    date, hm, sec, frac, off, after = found.group("date", "hm", "s", "f", "off", "next")
    minute = _minute_ms(date, hm)
    if minute is None or (sec is not None and sec >= "60"):
        return None
    if off and off[0] == " " and after:
        off = None  # `` +0100`` must not run into a digit: then it is no offset
    frac = ((frac or "") + "000")[:3]
    if off in ("Z", "z") or off is None and zone_of(settings.timezone) is None:
        return f"{date}T{hm}:{sec or '00'}.{frac}Z"
    local = minute + int(sec or 0) * 1000 + int(frac)
    if off is None:
        return format_ms(_zone_ms(local, settings.timezone))
    shift = _offset_minutes(off)
    return None if shift is None else format_ms(local - shift * 60000)


@lru_cache(maxsize=4096)
def _minute_ms(date: str, hm: str) -> int | None:
    """Epoch milliseconds of a wall-clock minute read as UTC; None if not a valid date/time."""
    try:
        value = datetime(int(date[:4]), int(date[5:7]), int(date[8:10]), int(hm[:2]),
                         int(hm[3:5]), tzinfo=timezone.utc)
    except ValueError:
        return None
    return (value - _EPOCH) // _ONE_MS


@lru_cache(maxsize=4096)
def _minute_text(minute: int) -> str:
    return (_EPOCH + timedelta(minutes=minute)).isoformat(timespec="minutes")[:-6]


def _offset_minutes(off: str) -> int | None:
    off = off.strip().replace(":", "")
    minutes = int(off[1:3]) * 60 + int(off[3:5] or 0)
    if minutes >= 1440:
        return None
    return -minutes if off[0] == "-" else minutes


def _zone_ms(local: int, zone_name: str) -> int:
    """UTC milliseconds of a wall-clock time (given as UTC ms) in a zone, read with ``fold=0``."""
    wall = (_EPOCH + timedelta(milliseconds=local)).replace(tzinfo=zone_of(zone_name))
    return local - wall.utcoffset() // _ONE_MS  # type: ignore[operator]


def format_ms(ms: int | None) -> str | None:
    """The canonical form of epoch milliseconds; None outside years 0001-9999."""
    if ms is None or not _MIN_MS <= ms <= _MAX_MS:
        return None
    minute, rest = divmod(ms, 60000)
    return f"{_minute_text(minute)}:{rest // 1000:02d}.{rest % 1000:03d}Z"


def _text_level(text: str) -> str | None:
    # Cheap test first: every marker starting in the window has its name in the first
    # _LEVEL_SPAN characters (str.upper() only adds false positives, which the regex rejects).
    head = text[:_LEVEL_SPAN].upper()
    if not ("INFO" in head or "ERR" in head or "WARN" in head or "DEBUG" in head
            or "TRACE" in head or "NOTICE" in head or "CRIT" in head or "FATAL" in head):
        return None  # the shortest spelling of each name is in every longer one
    found = _LEVEL_START_RE.match(text) if text[:1].isalpha() else None
    if found is None:
        found = _LEVEL_ANYWHERE_RE.search(text, 0, _LEVEL_SPAN)
        if found is None or found.start() >= LEVEL_WINDOW:
            return None
    return NAMES[found.group(found.lastindex or 0).upper()]


# --- JSON lines -------------------------------------------------------------------------------

class JsonFields(NamedTuple):
    """What a JSON object line offers: the raw timestamp and level values and the message text."""

    timestamp: str | int | float | None
    level: str | None
    message: str | None


def json_fields(text: str | bytes, settings: ParseSettings) -> JsonFields | None:
    """The configured fields of a JSON-object line (None when it does not decode)."""
    return json_fields_of([text], settings)[0]


_STAMP_TYPES = frozenset({str, int, float})  # exact types: a bool is not a number here


def json_fields_of(lines: list[str | bytes], settings: ParseSettings) -> list[JsonFields | None]:
    """:func:`json_fields` of each line, in one loop (the vectorised path's: per-row calls were
    half its cost)."""
    loads, error, out = orjson.loads, orjson.JSONDecodeError, []
    append = out.append
    stamp_names, level_names = settings.timestamp_fields, settings.level_fields
    message_names = settings.message_fields
    for line in lines:
        try:
            obj = loads(line)
        except error:
            append(None)
            continue
        if type(obj) is not dict:
            append(None)
            continue
        get = obj.get
        stamp = level = message = None
        for name in stamp_names:
            if type(value := get(name)) in _STAMP_TYPES:
                stamp = value
                break
        for name in level_names:
            if type(value := get(name)) is str:
                level = value
                break
        for name in message_names:
            if type(value := get(name)) is str:
                message = value
                break
        append(JsonFields(stamp, level, message))
    return out


def _json_line(text: str, settings: ParseSettings) -> tuple[str | None, str | None] | None:
    got = json_fields(text, settings)
    if got is None:
        return None
    stamp = got.timestamp
    ts = (_text_timestamp(stamp, settings) if isinstance(stamp, str)
          else format_ms(epoch_ms(stamp)) if stamp is not None else None)
    lvl = NAMES.get(got.level.upper()) if got.level is not None and got.level.isascii() else None
    if got.message is not None:
        if ts is None:
            ts = _text_timestamp(got.message, settings)
        if lvl is None:
            lvl = _text_level(got.message)
    return ts, lvl


def epoch_ms(value: int | float) -> int | None:
    """Epoch milliseconds of a JSON number: seconds, or ms/us/ns by magnitude (>= 1e11/14/17)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    size = abs(value)
    if size < 1e11:
        ms = value * 1000 if isinstance(value, int) else round(value * 1000)
    else:
        divisor = 1 if size < 1e14 else 1000 if size < 1e17 else 1000000
        ms = value // divisor if isinstance(value, int) else round(value / divisor)
    return ms if _MIN_MS <= ms <= _MAX_MS else None


# --- vectorised (pyarrow compute; RE2 runs the patterns above) --------------------------------

class Columns(NamedTuple):
    """What :func:`columns` returns; row ``i`` of each is ``line(messages[i])``."""

    timestamp: Any  # pa.StringArray, the canonical form
    level: Any      # pa.StringArray, one of LEVELS
    instant: Any    # pa.TimestampArray, timestamp[ms, tz=UTC]


def _arrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        from logarchive.errors import ConfigError

        raise ConfigError("columnar parsing needs pyarrow: pip install 'logarchive[parquet]'")
    return pa, pc


def columns(messages: Any, settings: ParseSettings = DEFAULT) -> Columns:
    """Timestamps and levels of an Arrow string array of messages (see the module docstring)."""
    pa, pc = _arrow()
    if isinstance(messages, pa.ChunkedArray):
        messages = messages.combine_chunks()
    if messages.type != pa.string():
        messages = messages.cast(pa.string())
    ms, levels = _stamps(messages, settings), _levels(messages)
    json_rows = pc.fill_null(pc.match_substring_regex(messages, JSON_PATTERN), False)
    if pc.any(json_rows).as_py():
        ms, levels = _json_rows(messages, json_rows, ms, levels, settings)
    text = pc.utf8_replace_slice(ms.cast(pa.timestamp("ms")).cast(pa.string()), 10, 11, "T")
    return Columns(pc.binary_join_element_wise(text, "Z", ""), levels,
                   ms.cast(pa.timestamp("ms", tz="UTC")))


def _only_where(texts: Any, pattern: str, compute: Any, kind: Any) -> Any:
    """``compute`` run on the texts ``pattern`` matches (a DFA pass), null elsewhere."""
    pa, pc = _arrow()
    if texts.null_count == len(texts):  # each regex call compiles its pattern: skip it
        return pa.nulls(len(texts), kind)
    rows = pc.fill_null(pc.match_substring_regex(texts, pattern), False)
    hits = pc.sum(rows).as_py() or 0
    if hits == len(texts):
        return compute(texts)
    empty = pa.nulls(len(texts), kind)
    return pc.replace_with_mask(empty, rows, compute(pc.filter(texts, rows))) if hits else empty


def _timestamp_ms(texts: Any, settings: ParseSettings) -> Any:
    """int64 epoch milliseconds of each text's timestamp (null where there is none)."""
    pa, pc = _arrow()
    found = pc.extract_regex(texts, TIMESTAMP_PATTERN)
    date, hm, sec, frac, off, after = (pc.struct_field(found, [i]) for i in range(6))
    sec = pc.if_else(pc.equal(sec, ""), "00", sec)
    wall = pc.binary_join_element_wise(date, " ", hm, ":", sec, "")
    seconds = pc.strptime(wall, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)
    # strptime rolls Feb 30 over to March: a valid time prints back as it was read.
    valid = pc.and_(pc.equal(seconds.cast(pa.string()), wall),
                    pc.not_equal(pc.utf8_slice_codeunits(date, 0, 4), "0000"))
    millis = pc.cast(pc.utf8_slice_codeunits(pc.binary_join_element_wise(frac, "000", ""), 0, 3),
                     pa.int64())
    local = pc.add(pc.multiply(seconds.cast(pa.int64()), 1000), millis)
    local = pc.if_else(valid, local, None)
    blocked = pc.and_(pc.starts_with(off, " "), pc.not_equal(after, ""))
    off = pc.if_else(blocked, "", off)
    naive = pc.equal(off, "")
    utc = pc.if_else(naive, _zone_column(local, settings.timezone),
                     pc.subtract(local, pc.multiply(_offset_column(pc.if_else(naive, None, off)),
                                                    60000)))
    in_range = pc.and_(pc.greater_equal(utc, _MIN_MS), pc.less_equal(utc, _MAX_MS))
    return pc.if_else(in_range, utc, None)


def _offset_column(off: Any) -> Any:
    """Offset minutes east of UTC for ``Z``/``+hh``/``+hhmm``/``+hh:mm`` (null if >= 24 h)."""
    pa, pc = _arrow()
    bare = pc.replace_substring(pc.utf8_trim(off, " "), ":", "")
    bare = pc.if_else(pc.match_substring_regex(bare, "^[Zz]$"), "+00", bare)
    hours = pc.cast(pc.utf8_slice_codeunits(bare, 1, 3), pa.int64())
    tail = pc.utf8_slice_codeunits(bare, 3, 5)
    minutes = pc.add(pc.multiply(hours, 60),
                     pc.cast(pc.if_else(pc.equal(tail, ""), "0", tail), pa.int64()))
    minutes = pc.if_else(pc.less(minutes, 1440), minutes, None)
    return pc.if_else(pc.starts_with(bare, "-"), pc.negate(minutes), minutes)


def _zone_column(local: Any, zone_name: str) -> Any:
    """UTC ms of wall-clock times (as UTC ms) in a zone, ``fold=0`` as :func:`_zone_ms`."""
    if zone_of(zone_name) is None:
        return local
    pa, pc = _arrow()
    # The instant assume_timezone gives for a skipped time ("earliest") is the last one before
    # the change, so its offset is the one in force before it, which is what fold=0 reads.
    walls = local.cast(pa.timestamp("ms"))
    try:
        instants = pc.assume_timezone(walls, timezone=zone_name, ambiguous="earliest",
                                      nonexistent="earliest")
    except pa.ArrowInvalid:  # a zone zoneinfo knows and Arrow's database does not
        return _zone_rows(local, pc.is_valid(local), zone_name)
    offset = pc.subtract(pc.local_timestamp(instants).cast(pa.int64()),
                         instants.cast(pa.int64()))
    utc = pc.subtract(local, offset)
    # Arrow's zone rules end in 2037 (no extrapolation): outside the years where it agrees with
    # zoneinfo, the rows (rare) are converted one by one.
    outside = pc.fill_null(pc.or_(pc.less(local, _ARROW_ZONES[0]),
                                  pc.greater_equal(local, _ARROW_ZONES[1])), False)
    return _zone_rows(utc, outside, zone_name, local) if pc.any(outside).as_py() else utc


def _zone_rows(utc: Any, rows: Any, zone_name: str, local: Any = None) -> Any:
    """``utc`` with the ``rows`` converted by :func:`_zone_ms` from ``local`` (default: utc)."""
    pa, pc = _arrow()
    wall = pc.filter(utc if local is None else local, rows).to_pylist()
    return pc.replace_with_mask(utc, rows,
                                pa.array([_zone_ms(v, zone_name) for v in wall], pa.int64()))


def _level_column(texts: Any) -> Any:
    """The level of texts that all have a marker in the window (:data:`LEVEL_PATTERN`)."""
    pa, pc = _arrow()
    # The leftmost marker then starts in the window: an unanchored search finds it, faster.
    names = _marker_names(texts, _LEVEL_MARKER_ANY)
    other = pc.is_null(names)
    if pc.any(other).as_py():
        names = pc.replace_with_mask(names, other,
                                     _marker_names(pc.filter(texts, other), _LEVEL_MARKER))
    return names


def _marker_names(texts: Any, pattern: str) -> Any:
    """The level of the leftmost match of a marker ``pattern`` (null if no NAME is in it)."""
    pa, pc = _arrow()
    marker = pc.struct_field(pc.extract_regex(texts, pattern), [0])
    return _level_names(pc.utf8_trim(pc.replace_substring(marker, "level=", ""), ' []|-:"'))


def _level_names(names: Any) -> Any:
    """Canonical level of each exact NAME (ASCII case-insensitive), else null."""
    pa, pc = _arrow()
    index = pc.index_in(pc.ascii_upper(names), value_set=pa.array(list(NAMES)))
    return pc.take(pa.array(list(NAMES.values())), index)


def _json_rows(messages: Any, rows: Any, ms: Any, levels: Any,
               settings: ParseSettings) -> tuple[Any, Any]:
    """Replace the results of the rows that decode as JSON objects by their fields'."""
    pa, pc = _arrow()
    got = json_fields_of(pc.filter(messages, rows).view(pa.binary()).to_pylist(), settings)
    fields = [g for g in got if g is not None]
    if not fields:
        return ms, levels
    stamps = [f.timestamp for f in fields]
    field_ms = pc.coalesce(
        _stamps(pa.array([s if isinstance(s, str) else None for s in stamps], pa.string()),
                settings),
        pa.array([None if s is None or isinstance(s, str) else epoch_ms(s) for s in stamps],
                 pa.int64()),
    )
    field_levels = _level_names(pa.array([f.level for f in fields], pa.string()))
    texts = pa.array([f.message for f in fields], pa.string())
    new_ms = pc.coalesce(field_ms, _stamps(pc.if_else(pc.is_null(field_ms), texts, None),
                                           settings))
    new_levels = pc.coalesce(field_levels,
                             _levels(pc.if_else(pc.is_null(field_levels), texts, None)))
    mask = pc.replace_with_mask(rows, rows, pa.array([g is not None for g in got]))
    return pc.replace_with_mask(ms, mask, new_ms), pc.replace_with_mask(levels, mask, new_levels)


# The usual layouts (ISO 8601 with milliseconds, ``Z`` or naive; Python logging's default)
# have every field at a fixed place: ``YYYY-MM-DD?hh:mm:ss?mmm`` then ``Z``/``z`` or no offset
# (not a digit, ``+``/``-`` offset or spaced offset). Those rows are read by slicing, without the
# extraction regex; every other row that :data:`TIMESTAMP_PATTERN` matches by :func:`_timestamp_ms`.
_FIXED = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}[.,][0-9]{3}"
          r"(?:[Zz]|$|[^0-9Zz +-]|[+-](?:$|[^0-9]|[0-9](?:$|[^0-9]))"
          r"| (?:$|[^+-]|[+-](?:$|[^0-9]|[0-9](?:$|[^0-9]))))")
_FIXED_ZULU = r"^.{23}[Zz]"


def _stamps(texts: Any, settings: ParseSettings) -> Any:
    pa, _ = _arrow()
    return _only_where(texts, TIMESTAMP_PATTERN, lambda found: _stamps_found(found, settings),
                       pa.int64())


def _stamps_found(texts: Any, settings: ParseSettings) -> Any:
    """:func:`_timestamp_ms` of texts that all match :data:`TIMESTAMP_PATTERN`, the fixed
    layouts by slicing."""
    pa, pc = _arrow()
    fixed = pc.match_substring_regex(texts, _FIXED)
    count = pc.sum(fixed).as_py() or 0
    if count == 0:
        return _timestamp_ms(texts, settings)
    if count == len(texts):
        return _fixed_ms(texts, settings)
    rest = pc.invert(fixed)
    ms = pc.replace_with_mask(pa.nulls(len(texts), pa.int64()), fixed,
                              _fixed_ms(pc.filter(texts, fixed), settings))
    return pc.replace_with_mask(ms, rest, _timestamp_ms(pc.filter(texts, rest), settings))


def _fixed_ms(texts: Any, settings: ParseSettings) -> Any:
    """Epoch ms of texts in a fixed layout (:data:`_FIXED`): the minutes through a dictionary of
    the distinct ones (a few per chunk), seconds and milliseconds by slicing."""
    pa, pc = _arrow()
    minutes = pc.dictionary_encode(pc.utf8_slice_codeunits(texts, 0, 16))
    minute_ms = pa.array([_minute_ms(m[:10], m[11:16]) for m in minutes.dictionary.to_pylist()],
                         pa.int64())
    seconds = pc.cast(pc.utf8_slice_codeunits(texts, 17, 19), pa.int64())
    millis = pc.cast(pc.utf8_slice_codeunits(texts, 20, 23), pa.int64())
    local = pc.add(pc.take(minute_ms, minutes.indices),
                   pc.add(pc.multiply(seconds, 1000), millis))
    local = pc.if_else(pc.less(seconds, 60), local, None)
    if zone_of(settings.timezone) is None:
        return local
    zulu = pc.match_substring_regex(texts, _FIXED_ZULU)
    utc = pc.if_else(zulu, local, _zone_column(local, settings.timezone))
    return pc.if_else(pc.and_(pc.greater_equal(utc, _MIN_MS), pc.less_equal(utc, _MAX_MS)),
                      utc, None)


def _levels(texts: Any) -> Any:
    pa, _ = _arrow()
    return _only_where(texts, LEVEL_PATTERN, _level_column, pa.string())
