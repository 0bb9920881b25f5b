"""Conformance kit for sources: the same assertions for every
:class:`logarchive.plugin_api.Source`: discovery yields well-formed runs, ``open`` streams each
whole log byte for byte, a second ``open`` gives the same bytes, a run that is gone raises
:class:`~logarchive.plugin_api.SourceError` (``RunGone`` is one), and a stream closed early
leaks no file or socket.

A plugin overrides the ``source_case`` fixture: a source over a backend (a ``tmp_path`` folder,
a loopback server) holding runs whose logs the test knows, and implements :meth:`remove_run`::

    class TestMySourceConformance(SourceKit):
        @pytest.fixture
        def source_case(self, tmp_path):
            (tmp_path / "r1.log").write_bytes(b"line 1\\n")
            source = MySource("logs", MyConfig(type="mine", url=str(tmp_path)), context)
            return SourceCase(source, {"logs/run_id=r1": b"line 1\\n"}, backend=tmp_path)

        def remove_run(self, case, run):
            (case.backend / "r1.log").unlink()

Give the runs several chunks' worth of bytes (more than the source's chunk size) so early
closing and resuming are exercised.
"""

from __future__ import annotations

import gc
import hashlib
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from logarchive.plugin_api import STATUSES, RunRef, Source, SourceError


@dataclass
class SourceCase:
    """A source, the whole log of every run it should discover (by run key), and whatever
    :meth:`SourceKit.remove_run` needs to change the backend (a folder, a loopback API)."""

    source: Source
    logs: dict[str, bytes]
    backend: Any = None


def stream_digest(source: Source, run: RunRef) -> tuple[int, str]:
    """Size and sha256 of a run's log, streamed chunk by chunk (never held whole)."""
    digest = hashlib.sha256()
    size = 0
    with source.open(run) as chunks:
        for chunk in chunks:
            assert isinstance(chunk, bytes), f"{run.key}: open yields {type(chunk).__name__}"
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def expected_digest(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


def open_descriptors() -> int | None:
    """Open file descriptors of this process (sockets included); None where unknown."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def settled_descriptors(baseline: int, wait: float = 10.0) -> int | None:
    """Descriptors once in-process servers have closed their side (bounded wait)."""
    deadline = time.monotonic() + wait
    count = open_descriptors()
    while count is not None and count > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
        gc.collect()
        count = open_descriptors()
    return count


class SourceKit:
    """Mix into a ``Test...`` class; override ``source_case`` and :meth:`remove_run`."""

    early_closes = 5
    """How many streams the early-close test opens and abandons after the first chunk."""

    @pytest.fixture
    def source_case(self) -> SourceCase:
        raise NotImplementedError("override the source_case fixture")

    def remove_run(self, case: SourceCase, run: RunRef) -> None:
        """Make ``run``'s log disappear from the backend (delete the file, forget the run)."""
        raise NotImplementedError

    # -- helpers
    def runs(self, case: SourceCase) -> dict[str, RunRef]:
        return {run.key: run for run in case.source.discover()}

    def known_runs(self, case: SourceCase) -> Iterator[RunRef]:
        runs = self.runs(case)
        missing = sorted(set(case.logs) - set(runs))
        assert not missing, f"discover did not yield {missing}; it yielded {sorted(runs)}"
        for key in case.logs:
            yield runs[key]

    # -- the kit
    def test_discover_yields_runs_with_keys_and_statuses(self, source_case: SourceCase) -> None:
        source = source_case.source
        runs = list(source.discover())
        assert runs, "discover yielded nothing"
        keys = [run.key for run in runs]
        assert len(set(keys)) == len(keys), f"duplicate run keys: {keys}"
        for run in runs:
            assert isinstance(run, RunRef)
            assert run.source == source.name and run.key.startswith(f"{source.name}/")
            assert run.status in STATUSES
        assert set(source_case.logs) <= set(keys)

    def test_open_streams_the_whole_log_byte_exact(self, source_case: SourceCase) -> None:
        for run in self.known_runs(source_case):
            expected = expected_digest(source_case.logs[run.key])
            assert stream_digest(source_case.source, run) == expected, run.key

    def test_second_open_gives_the_same_bytes(self, source_case: SourceCase) -> None:
        for run in self.known_runs(source_case):
            first = stream_digest(source_case.source, run)
            assert stream_digest(source_case.source, run) == first, run.key
        for run in self.known_runs(source_case):  # a fresh discovery opens the same logs too
            assert stream_digest(source_case.source, run) == expected_digest(
                source_case.logs[run.key]), run.key

    def test_missing_run_raises_a_source_error(self, source_case: SourceCase) -> None:
        run = next(self.known_runs(source_case))
        self.remove_run(source_case, run)
        with pytest.raises(SourceError) as caught:
            stream_digest(source_case.source, run)
        assert str(caught.value), "the error says nothing"

    def test_stream_closed_early_leaks_nothing(self, source_case: SourceCase) -> None:
        source = source_case.source
        run = next(self.known_runs(source_case))
        expected = expected_digest(source_case.logs[run.key])
        assert stream_digest(source, run) == expected  # warm up pools and caches
        gc.collect()
        baseline = open_descriptors()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            for _ in range(self.early_closes):
                self._abandon_after_first_chunk(source, run)
            gc.collect()
        leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert leaked == []
        if baseline is not None:
            assert settled_descriptors(baseline) <= baseline
        assert stream_digest(source, run) == expected  # and the source still works

    @staticmethod
    def _abandon_after_first_chunk(source: Source, run: Any) -> None:
        with source.open(run) as chunks:
            for _chunk in chunks:
                break
