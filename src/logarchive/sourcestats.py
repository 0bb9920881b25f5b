"""What an archive's manifest says about the raw source bytes: sha256, size, line count and the
number of invalid UTF-8 sequences, computed chunk by chunk with no per-line work.

This runs on every export, txt included (where it is nearly all the work besides the copy), so
it is written for speed: lines are counted with ``bytes.count``; a pure-ASCII chunk or window
of a chunk is never decoded; any other window is decoded once, with the ``replace`` handler,
whose replacement characters are counted.
"""

from __future__ import annotations

import codecs
import hashlib

_REPLACEMENT_UTF8 = "\ufffd".encode()
WINDOW = 16384


class SourceStats:
    """sha256, size, line count and invalid-UTF-8 count of the raw source bytes, chunk by chunk.

    ``invalid_utf8`` counts what decoding each line with ``errors="replace"`` replaces (one
    U+FFFD per maximal invalid subpart), the same count as the codec's per-line decoding.
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0
        self._newlines = 0
        self._last_byte = b"\n"
        self.invalid_utf8 = 0
        self._counter = InvalidUtf8Counter()

    def update(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._sha.update(chunk)
        self.size += len(chunk)
        self._newlines += chunk.count(b"\n")
        self._last_byte = chunk[-1:]
        self.invalid_utf8 += self._counter.feed(chunk)

    def finish(self) -> None:
        self.invalid_utf8 += self._counter.finish()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def lines(self) -> int:
        return self._newlines + (0 if self._last_byte == b"\n" else 1)


class InvalidUtf8Counter:
    """Counts invalid UTF-8 sequences of a byte stream fed in chunks of any size.

    A character cut by a chunk boundary is carried to the next chunk (at most 3 bytes), so the
    count does not depend on where the stream was cut; at the end, an incomplete character is
    one invalid sequence.
    """

    def __init__(self, window: int = WINDOW) -> None:
        self._pending = b""
        self._window = window

    def feed(self, chunk: bytes) -> int:
        if not self._pending and chunk.isascii():
            return 0
        data = self._pending + chunk if self._pending else chunk
        count, self._pending = count_invalid(data, False, self._window)
        return count

    def finish(self) -> int:
        count, _ = count_invalid(self._pending, True, self._window) if self._pending else (0, b"")
        self._pending = b""
        return count


def count_invalid(data: bytes, final: bool, window: int = WINDOW) -> tuple[int, bytes]:
    """Invalid sequences in ``data`` and the incomplete tail to carry (empty when ``final``).

    The bytes are checked in windows of ``window`` bytes: a pure-ASCII window costs a
    ``bytes.isascii``; any other is decoded once with ``replace``, where every U+FFFD that was
    not an encoded U+FFFD in the bytes (``EF BF BD`` always decodes as itself) is one invalid
    sequence. A character cut by a window's end starts the next window. Windows, rather than
    one decode of the whole chunk, because a str holds every character at the width of its
    widest one: one emoji makes a 1 MiB chunk a 4 MiB str, and a mostly-ASCII chunk decoded
    whole costs as much as one that is not ASCII at all (measured in docs/benchmarks.md).
    """
    pos, count, size = 0, 0, len(data)
    while pos < size:
        end = min(pos + max(window, 4), size)  # 4: room for one character
        piece = data[pos:end]
        if piece.isascii():
            pos = end
            continue
        text, used = codecs.utf_8_decode(piece, "replace", final and end == size)
        count += text.count("\ufffd") - piece.count(_REPLACEMENT_UTF8, 0, used)
        if end == size:
            return count, piece[used:]
        pos += used
    return count, b""
