"""SourceStats and the invalid-UTF-8 counter: the count is what decoding each line with
``errors="replace"`` replaces, wherever the stream is cut into chunks and windows."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from logarchive.codec import SourceStats as FromCodec, decode_line
from logarchive.sourcestats import WINDOW, InvalidUtf8Counter, SourceStats

pieces = st.lists(
    st.one_of(
        st.text(max_size=40).map(lambda s: s.encode()),
        st.sampled_from([b"\n", b"\xff", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3", b"\xa9",
                         "😀".encode(), "é".encode(), "\ufffd".encode(), b"\xed\xa0\x80",
                         b"plain ascii text "]),
    ),
    max_size=80,
).map(b"".join)


def reference_count(data: bytes) -> int:
    """The codec's per-line count: each line decoded on its own."""
    return sum(decode_line(line)[1] for line in data.split(b"\n"))


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=300, deadline=None)
@given(data=pieces, cuts=st.lists(st.integers(0, 2000), max_size=10),
       window=st.integers(1, 64))
def test_count_equals_per_line_decoding_wherever_cut(data: bytes, cuts: list[int],
                                                      window: int) -> None:
    counter = InvalidUtf8Counter(window)
    total = sum(counter.feed(chunk) for chunk in split_at(data, cuts)) + counter.finish()
    assert total == reference_count(data)


# Any bytes, high ones as likely as ASCII: lead bytes cut from their continuations, overlong
# forms, surrogates, stray continuations, at every position relative to chunk and window ends.
random_bytes = st.one_of(
    st.binary(max_size=600),
    st.lists(st.sampled_from([b"a", b"\n", b"\x80", b"\xbf", b"\xc0", b"\xc2", b"\xe0",
                              b"\xed", b"\xef", b"\xf0", b"\xf4", b"\xf5", b"\xff",
                              b"\xef\xbf\xbd", "é".encode(), "模".encode(), "😀".encode()]),
             max_size=300).map(b"".join),
)


@settings(max_examples=400, deadline=None)
@given(data=random_bytes, cuts=st.lists(st.integers(0, 700), max_size=12),
       window=st.one_of(st.integers(1, 40), st.just(WINDOW)))
def test_count_on_random_bytes_equals_the_reference(data: bytes, cuts: list[int],
                                                     window: int) -> None:
    counter = InvalidUtf8Counter(window)
    total = sum(counter.feed(chunk) for chunk in split_at(data, cuts)) + counter.finish()
    assert total == reference_count(data)
    whole = data.decode("utf-8", "replace").count("\ufffd") - data.count("\ufffd".encode())
    assert total == whole  # lines change nothing: a newline ends any sequence


def test_valid_non_ascii_counts_nothing_and_a_cut_character_waits() -> None:
    text = ("température 模型训练 😀\n" * 500).encode()
    counter = InvalidUtf8Counter(window=7)
    cut = text.index("😀".encode()) + 2  # inside the emoji
    assert counter.feed(text[:cut]) == 0
    assert counter.feed(text[cut:]) == 0
    assert counter.finish() == 0


def test_incomplete_character_at_the_end_is_one_invalid_sequence() -> None:
    counter = InvalidUtf8Counter()
    assert counter.feed(b"ok \xf0\x9f") == 0  # may still complete
    assert counter.finish() == 1


def test_stats_of_a_stream() -> None:
    data = b"a\xffb\nsecond \xe2\x82 line\r\nno newline at the end"
    stats = SourceStats()
    for chunk in split_at(data, [3, 9, 10]):
        stats.update(chunk)
    stats.finish()
    assert (stats.size, stats.lines, stats.invalid_utf8) == (len(data), 3, 2)
    assert stats.sha256 == hashlib.sha256(data).hexdigest()
    assert FromCodec is SourceStats  # the old import path still works
