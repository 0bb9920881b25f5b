"""Stream transforms of the ``rest`` source: JSON array -> lines, error-trailer detection,
``Content-Disposition`` file names. Each holds at most one chunk plus a bounded tail."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from email.message import Message
from typing import Any

import ijson
import orjson

from logarchive.plugin_api import SourceError

OUT_CHUNK = 64 * 1024
_FALLBACK_KEYS = ("message", "line", "text", "msg", "log")


def _line_of(obj: Any, key: str) -> tuple[str, bool]:
    """(text, ends_line) for one element of the JSON array."""
    if isinstance(obj, str):
        return obj, True
    if isinstance(obj, dict):
        ends = obj.get("partial") is not True
        for name in (key, *_FALLBACK_KEYS):
            value = obj.get(name)
            if isinstance(value, str):
                return value, ends
        return _dumps(obj), True
    return _dumps(obj), True


def _dumps(obj: Any) -> str:
    try:
        return orjson.dumps(obj, default=str).decode()
    except (orjson.JSONEncodeError, RecursionError):
        raise SourceError("format=json: an element of the log array nests deeper than can be "
                          "written as a line (255 levels); this run fails, the others go on"
                          ) from None


MAX_JSON_DEPTH = 128  # levels inside one element of a json-array log


class _Elements:
    """Builds the elements of a top-level JSON array from ijson's basic events (no prefixes:
    those grow with depth), refusing an element nested deeper than ``max_depth`` at the event
    that goes too deep, so a hostile log fails fast instead of stalling the export."""

    def __init__(self, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.max_depth = max_depth
        self.stack: list[Any] = []      # containers being built; [0] is the top-level array
        self.keys: list[Any] = []
        self.ready: list[Any] = []      # finished elements, in order

    def event(self, name: str, value: Any) -> None:
        if name in ("start_map", "start_array"):
            if len(self.stack) > self.max_depth:
                raise SourceError(f"format=json: element {len(self.ready) + 1} of the log "
                                  f"array nests deeper than {self.max_depth} levels; this run "
                                  "fails, the others go on")
            self.stack.append({} if name == "start_map" else [])
            self.keys.append(None)
        elif name in ("end_map", "end_array"):
            self.keys.pop()
            self._add(self.stack.pop())
        elif name == "map_key":
            self.keys[-1] = value
        else:
            self._add(value)

    def _add(self, value: Any) -> None:
        if not self.stack:
            return  # the top-level array itself ended
        if len(self.stack) == 1:
            self.ready.append(value)
        elif isinstance(self.stack[-1], dict):
            self.stack[-1][self.keys[-1]] = value
        else:
            self.stack[-1].append(value)


def json_array_lines(chunks: Iterable[bytes], key: str = "message") -> Iterator[bytes]:
    """Turn a streamed JSON array of line objects (seed 000 ``format=json``) back into text
    lines, one element at a time: ``obj[key]`` (or message/line/text/msg/log) plus ``\\n``;
    an element with ``"partial": true`` continues on the next one. Never holds the array; an
    element nested deeper than :data:`MAX_JSON_DEPTH` fails the run."""
    events: list[Any] = ijson.sendable_list()
    coro = ijson.basic_parse_coro(events, use_float=True)
    elements = _Elements()
    out = bytearray()
    checked = False
    try:
        for chunk in chunks:
            if not chunk:
                continue
            if not checked:
                head = chunk.lstrip()
                if not head:
                    continue
                checked = True
                if not head.startswith(b"["):
                    raise SourceError("format=json: the response is not a JSON array")
            coro.send(chunk)
            _lines(events, elements, key, out)
            if len(out) >= OUT_CHUNK:
                yield bytes(out)
                out.clear()
        coro.close()
    except ijson.JSONError as exc:
        detail = " ".join(str(exc).split())[:160]
        raise SourceError(f"format=json: invalid JSON in the response ({detail})") from None
    _lines(events, elements, key, out)
    if out:
        yield bytes(out)


def _lines(events: list[Any], elements: _Elements, key: str, out: bytearray) -> None:
    """Feed parsed ``events`` to ``elements`` and append the finished elements' lines."""
    for name, value in events:
        elements.event(name, value)
    del events[:]
    for obj in elements.ready:
        text, ends = _line_of(obj, key)
        out += text.encode("utf-8", "replace")
        if ends:
            out += b"\n"
    elements.ready.clear()


WORKFLOW_TRAILER = b"--- ERROR: failed to fetch logs ---"


class TrailerFilter:
    """Holds back an error trailer (seed 002: ``--- ERROR: failed to fetch logs ---`` and the
    reason, *appended* inside a 200 stream) so it never reaches a sink as log lines.

    The trailer counts only at the end of the stream. A line whose text ends with the marker
    (the marker alone on its line, or after the log's last line when that had no newline)
    starts a candidate: it and what follows are held. If the stream ends with at most
    ``max_reason_lines`` lines (and ``max_hold`` bytes) after the marker, that is the trailer:
    :meth:`finish` raises :class:`SourceError` with the reason and nothing is committed. Any
    more after the marker means it was log text: the candidate is released byte for byte and
    the search goes on, so a marker followed by ordinary log lines never fails a job.
    """

    def __init__(self, marker: bytes = WORKFLOW_TRAILER, max_hold: int = 4096,
                 max_reason_lines: int = 3) -> None:
        self.marker = marker
        self.max_hold = max(max_hold, len(marker) * 2)
        self.max_reason_lines = max_reason_lines
        self.held = bytearray()
        self.in_trailer = False

    def feed(self, chunk: bytes) -> bytes:
        self.held += chunk
        out = bytearray()
        if self.in_trailer:
            if self._too_long():
                self._release(out)
            return bytes(out)
        start = self._scan(out)
        if not self.in_trailer:
            tail = len(self.held) - start
            if tail > self.max_hold:  # a very long line: keep only what could be a marker
                keep = len(self.marker)
                out += self.held[start:len(self.held) - keep]
                start = len(self.held) - keep
        del self.held[:start]
        if self.in_trailer and self._too_long():
            self._release(out)
        return bytes(out)

    def _scan(self, out: bytearray) -> int:
        """Emit complete lines up to the first that ends with the marker; the offset reached."""
        held, start = self.held, 0
        while True:
            newline = held.find(b"\n", start)
            if newline < 0:
                return start
            line = held[start:newline]
            at = line.find(self.marker)
            if at >= 0 and line[at + len(self.marker):].strip() == b"":
                out += held[start:start + at]
                self.in_trailer = True
                return start + at
            out += held[start:newline + 1]
            start = newline + 1

    def _too_long(self) -> bool:
        """More after the marker line than a trailer's reason: it is log text."""
        first = self.held.find(b"\n")
        return len(self.held) > self.max_hold or (
            first >= 0 and self.held.count(b"\n", first + 1) > self.max_reason_lines)

    def _release(self, out: bytearray) -> None:
        # Emit the marker line as log text and look for another trailer in the rest.
        rest = bytes(self.held)
        self.held.clear()
        self.in_trailer = False
        first = rest.find(b"\n") + 1
        out += rest[:first]
        out += self.feed(rest[first:])

    def finish(self) -> bytes:
        """The held tail of a clean stream; raises SourceError when it ends with a trailer."""
        at = self.held.find(self.marker)
        if not self.in_trailer and at >= 0 and self.held[at + len(self.marker):].strip() == b"":
            del self.held[:at]  # the marker on the last line, without a newline
            self.in_trailer = True
        if self.in_trailer:
            text = bytes(self.held[len(self.marker):]).decode("utf-8", "replace").strip()
            reason = " ".join(text.split())[:500] or "no reason given"
            raise SourceError(
                f"the server reported an error inside the log stream "
                f"({self.marker.decode()} {reason}); nothing was committed, retried next export",
                retriable=True,
            )
        out = bytes(self.held)
        self.held.clear()
        return out


def filter_trailer(chunks: Iterable[bytes], marker: bytes = WORKFLOW_TRAILER) -> Iterator[bytes]:
    trailer = TrailerFilter(marker)
    for chunk in chunks:
        out = trailer.feed(chunk)
        if out:
            yield out
    tail = trailer.finish()
    if tail:
        yield tail


def disposition_filename(value: str | None) -> str | None:
    """The ``filename`` (or RFC 6266 ``filename*``) of a ``Content-Disposition`` header."""
    if not value:
        return None
    message = Message()
    message["content-disposition"] = value
    try:
        name = message.get_filename()
    except (ValueError, LookupError):
        return None
    return name


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_TRAINING_FILE = re.compile(r"training-log-(?P<run_id>.+)\.(?P<ext>txt|json)")


def run_id_from_disposition(value: str | None) -> str:
    """Run id from seed 000's ``attachment; filename="training-log-<run_id>.<ext>"``.

    The value comes from the network: anything but a plain id (quotes, slashes, ``..``,
    control characters) is refused rather than cleaned, so the ledger never keys on a guess.
    """
    name = disposition_filename(value)
    if name is None:
        raise SourceError("the response has no Content-Disposition file name, so the latest "
                          "run id is unknown; list runs explicitly (runs = [...])")
    match = _TRAINING_FILE.fullmatch(name)
    if match is None:
        raise SourceError(f"unexpected Content-Disposition file name {name[:120]!r} (expected "
                          "training-log-<run_id>.<txt|json>)")
    run_id = match.group("run_id")
    if not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise SourceError(f"refusing run id {run_id[:120]!r} from Content-Disposition: not a "
                          "plain identifier")
    return run_id
