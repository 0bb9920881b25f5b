"""Conformance kit for byte sinks: the same assertions for every sink that stores a run as one
object (:class:`logarchive.plugin_api.ByteSink`): atomic commit, abort leaves nothing, the
list/read/exists/delete round trip, objects larger than the upload part size, and paths of
hostile run fields that stay inside the sink's root.

A plugin overrides the ``sink`` fixture (parametrise it, or the class, over its backends) and,
where its backend can show more than :meth:`~logarchive.plugin_api.ByteSink.list` does, the
:meth:`ByteSinkKit.leftovers` and :meth:`ByteSinkKit.outside_root` hooks::

    class TestMySinkConformance(ByteSinkKit):
        part_size = 5 * 1024 * 1024      # the sink uploads in parts of this size (or None)

        @pytest.fixture
        def sink(self, tmp_path):
            return MySink("archive", MyConfig(type="mine", url=str(tmp_path / "root")),
                          Context("archive", structlog.get_logger()))
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
import pytest

from logarchive.paths import render
from logarchive.plugin_api import ByteSink, RunRef

HOSTILE_FIELDS = ["../../etc/passwd", "/abs/path", "..\\..\\win", "%2e%2e%2fup", "..", ".hidden",
                  "a/../../b", "~user", "nul\x00byte", "sp ace"]
# Rendered by the engine's path templates: {run_id} as one segment, {run_id:path} as a path.
HOSTILE_TEMPLATE = "{source}/{run_id}/{run_id:path}.{ext}"
MIB = 1024 * 1024


def write_object(sink: ByteSink, path: str, chunks: list[bytes], *, commit: bool = True) -> None:
    """Write ``chunks`` to ``path``; commit, or abort when ``commit`` is false."""
    writer = sink.open_object(path)
    for chunk in chunks:
        writer.write(chunk)
    if commit:
        writer.commit()
    else:
        writer.abort()


def read_object(sink: ByteSink, path: str) -> bytes:
    with sink.read(path) as chunks:
        parts = list(chunks)
    assert all(isinstance(part, bytes) for part in parts), f"{path}: read yields non-bytes"
    return b"".join(parts)


def digest_object(sink: ByteSink, path: str) -> tuple[int, str]:
    """Size and sha256 of a stored object, streamed."""
    digest = hashlib.sha256()
    size = 0
    with sink.read(path) as chunks:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _filler(size: int) -> Iterator[bytes]:
    """``size`` bytes in chunks of at most 1 MiB, varied so a lost part shows up."""
    sent = 0
    index = 0
    while sent < size:
        chunk = bytes([index % 251]) * min(MIB, size - sent)
        sent += len(chunk)
        index += 1
        yield chunk


class ByteSinkKit:
    """Mix into a ``Test...`` class and override the ``sink`` fixture."""

    part_size: int | None = None
    """Upload part size of the sink (multipart/resumable uploads); an object larger than it is
    written, aborted and read back. None: the sink does not upload in parts."""

    @pytest.fixture
    def sink(self) -> ByteSink:
        raise NotImplementedError("override the sink fixture: a fresh sink over an empty root")

    def leftovers(self, sink: ByteSink) -> list[str]:
        """What the backend still holds for ``sink`` that ``list()`` does not show: hidden temp
        objects, unfinished multipart uploads... Override to look; the default sees nothing."""
        return []

    def outside_root(self, sink: ByteSink) -> list[str]:
        """Objects the backend holds beside (not under) ``sink``'s root. Override to look; the
        default sees nothing."""
        return []

    # -- the kit
    def test_object_is_invisible_until_commit(self, sink: ByteSink) -> None:
        writer = sink.open_object("runs/r1.txt")
        writer.write(b"first part\n")
        writer.write(b"second part\n")
        assert not sink.exists("runs/r1.txt")
        assert [o.path for o in sink.list()] == []
        writer.commit()
        assert sink.exists("runs/r1.txt")
        assert read_object(sink, "runs/r1.txt") == b"first part\nsecond part\n"
        assert [(o.path, o.size) for o in sink.list()] == [("runs/r1.txt", 23)]

    def test_abort_leaves_nothing(self, sink: ByteSink) -> None:
        sizes = [10] + ([self.part_size + 10] if self.part_size else [])
        for index, size in enumerate(sizes):
            write_object(sink, f"runs/aborted-{index}.txt", list(_filler(size)), commit=False)
            assert not sink.exists(f"runs/aborted-{index}.txt")
        assert list(sink.list()) == []
        assert self.leftovers(sink) == []

    def test_abort_keeps_the_object_already_committed(self, sink: ByteSink) -> None:
        write_object(sink, "runs/r1.txt", [b"archived\n"])
        write_object(sink, "runs/r1.txt", [b"half of a new vers"], commit=False)
        assert read_object(sink, "runs/r1.txt") == b"archived\n"
        assert self.leftovers(sink) == []

    def test_list_read_exists_delete_round_trip(self, sink: ByteSink) -> None:
        objects = {"a/r1.txt": b"one\n", "a/r1.txt.manifest.json": b"{}",
                   "b/c/r2.txt.gz": bytes(range(256)) * 40, "r3.txt": b""}
        for path, data in objects.items():
            write_object(sink, path, [data])
        assert sorted(o.path for o in sink.list()) == sorted(objects)
        for path, data in objects.items():
            assert sink.exists(path) and read_object(sink, path) == data
        assert not sink.exists("a/r9.txt")
        sink.delete("a/r1.txt")
        assert not sink.exists("a/r1.txt")
        assert sorted(o.path for o in sink.list()) == sorted(set(objects) - {"a/r1.txt"})
        assert read_object(sink, "a/r1.txt.manifest.json") == b"{}"

    def test_commit_replaces_an_object_atomically(self, sink: ByteSink) -> None:
        write_object(sink, "runs/r1.txt", [b"version 1\n"])
        writer = sink.open_object("runs/r1.txt")
        writer.write(b"version 2\n")
        assert read_object(sink, "runs/r1.txt") == b"version 1\n"
        writer.commit()
        assert read_object(sink, "runs/r1.txt") == b"version 2\n"
        assert [o.path for o in sink.list()] == ["runs/r1.txt"]

    def test_object_larger_than_a_part_arrives_whole(self, sink: ByteSink) -> None:
        if self.part_size is None:
            pytest.skip("the sink does not upload in parts (part_size = None)")
        size = self.part_size + MIB // 2 + 7
        expected = hashlib.sha256()
        writer = sink.open_object("runs/big.txt")
        for chunk in _filler(size):
            expected.update(chunk)
            writer.write(chunk)
        assert not sink.exists("runs/big.txt")
        writer.commit()
        assert digest_object(sink, "runs/big.txt") == (size, expected.hexdigest())
        assert self.leftovers(sink) == []

    def test_sanitised_paths_stay_inside_the_root(self, sink: ByteSink) -> None:
        paths = {render(HOSTILE_TEMPLATE, RunRef("src", {"run_id": v}), ext="txt"): v
                 for v in HOSTILE_FIELDS}
        assert len(paths) == len(HOSTILE_FIELDS)
        for path, value in paths.items():
            write_object(sink, path, [value.encode()])
        stored = sorted(o.path for o in sink.list())
        assert stored == sorted(paths)
        for path in stored:
            assert ".." not in path.split("/") and not path.startswith("/")
            assert read_object(sink, path) == paths[path].encode()
        assert self.outside_root(sink) == []

