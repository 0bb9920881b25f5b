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
        return orjson.dumps(obj, default=str).decode(), True
    return orjson.dumps(obj, default=str).decode(), True


def json_array_lines(chunks: Iterable[bytes], key: str = "message") -> Iterator[bytes]:
    """Turn a streamed JSON array of line objects (seed 000 ``format=json``) back into text
    lines, one element at a time: ``obj[key]`` (or message/line/text/msg/log) plus ``\\n``;
    an element with ``"partial": true`` continues on the next one. Never holds the array."""
    found: list[Any] = ijson.sendable_list() if hasattr(ijson, "sendable_list") else []
    coro = ijson.items_coro(found, "item", use_float=True)
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
            for obj in found:
                text, ends = _line_of(obj, key)
                out += text.encode("utf-8", "replace")
                if ends:
                    out += b"\n"
            del found[:]
            if len(out) >= OUT_CHUNK:
                yield bytes(out)
                out.clear()
        coro.close()
    except ijson.JSONError as exc:
        detail = " ".join(str(exc).split())[:160]
        raise SourceError(f"format=json: invalid JSON in the response ({detail})") from None
    for obj in found:
        text, ends = _line_of(obj, key)
        out += text.encode("utf-8", "replace") + (b"\n" if ends else b"")
    if out:
        yield bytes(out)


WORKFLOW_TRAILER = b"--- ERROR: failed to fetch logs ---"


class TrailerFilter:
    """Holds back an error trailer (seed 002: ``--- ERROR: failed to fetch logs ---`` and the
    reason, appended inside a 200 stream) so it never reaches a sink as log lines.

    The last incomplete line is held until its newline arrives (bounded by ``max_hold``); a line
    holding the marker (at its start, or at its end when the log's last line had no newline)
    starts the trailer: it and everything after are held. At the end of the stream a held
    trailer raises :class:`SourceError` with the reason. A "trailer" followed by more than
    ``max_hold`` bytes is log content after all and is released.
    """

    def __init__(self, marker: bytes = WORKFLOW_TRAILER, max_hold: int = 64 * 1024) -> None:
        self.marker = marker
        self.max_hold = max(max_hold, len(marker) * 2)
        self.held = bytearray()
        self.in_trailer = False

    def feed(self, chunk: bytes) -> bytes:
        self.held += chunk
        out = bytearray()
        start = 0
        held = self.held
        if not self.in_trailer:
            while True:
                newline = held.find(b"\n", start)
                if newline < 0:
                    break
                line = held[start:newline]
                at = line.find(self.marker)
                if at >= 0 and line[at + len(self.marker):].strip() == b"":
                    out += held[start:start + at]
                    start += at
                    self.in_trailer = True
                    break
                out += held[start:newline + 1]
                start = newline + 1
            if not self.in_trailer:
                tail = len(held) - start
                if tail > self.max_hold:  # a very long line: keep only what could be a marker
                    keep = len(self.marker)
                    out += held[start:len(held) - keep]
                    start = len(held) - keep
            del held[:start]
        elif len(held) > self.max_hold:
            self._release(out)
        return bytes(out)

    def _release(self, out: bytearray) -> None:
        # Too much after the marker for a trailer: it was log text. Emit up to after the marker
        # line and look for another trailer in the rest.
        rest = bytes(self.held)
        self.held.clear()
        self.in_trailer = False
        first = rest.find(b"\n") + 1
        out += rest[:first]
        out += self.feed(rest[first:])

    def finish(self) -> bytes:
        """The held tail of a clean stream; raises SourceError when it ends with a trailer."""
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
