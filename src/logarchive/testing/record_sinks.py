"""Conformance kit for record sinks: the same assertions for every sink built on
:mod:`logarchive.batching` (batching limits, resume after interruption, no duplicates, retries
on busy/429/reset, permanent errors, bounded in-flight work).

A plugin provides a :class:`RecordingReceiver` subclass that speaks its protocol on a real
loopback socket and decodes what it receives, then runs the kit::

    class TestSplunkConformance(RecordSinkKit):
        receiver_class = HecReceiver

        def sink_table(self, receiver, **overrides):
            return {"type": "splunk", "url": receiver.url, "token": "t0k3n", **overrides}

Every test exports through the real engine (``logarchive.parse_config`` + ``logarchive.export``)
with the ``files`` source over log files in ``tmp_path``.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from logarchive.testing.servers import LoopbackServer, Request

FAST_RETRY = {"backoff_initial": 0.01, "backoff_max": 0.05, "max_retries": 4}  # http.retry


@dataclass
class Received:
    """One event as a receiver decoded it."""

    event_id: str | None
    seq: int | None
    part: int | None
    message: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class Accepted:
    """One accepted data request."""

    events: list[Received]
    body_bytes: int       # uncompressed
    gzip: bool
    headers: dict[str, str]


class RecordingReceiver:
    """A loopback receiver: real HTTP, a fault queue, and a record of what it accepted.

    Subclasses implement :meth:`handle` (route, auth check, decode, answer) and use
    :meth:`next_fault` / :meth:`answer_fault` for injected failures. Fault kinds: ``busy``
    (the receiver's throttling answer), ``throttle`` (429 with ``Retry-After``), ``reset``
    (connection reset before any answer), ``server_error`` (500), ``auth`` (invalid
    credentials), ``bad`` (400 bad data), ``too_large`` (413), ``slow`` (answer after
    ``slow_seconds``, then normally).
    """

    slow_seconds = 0.2

    def __init__(self) -> None:
        self.server = LoopbackServer(self._handle)
        self.lock = threading.Lock()
        self.accepted: list[Accepted] = []
        self.data_requests = 0
        self.faults: list[str] = []
        self.always: str | None = None
        self.retry_after = "0"
        self.delay = 0.0          # seconds every data request takes (to interrupt mid-delivery)
        self.on_accept: Callable[[int], None] | None = None

    # -- lifecycle
    def start(self) -> RecordingReceiver:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    # -- fault control
    def fail_next(self, *kinds: str) -> None:
        with self.lock:
            self.faults.extend(kinds)

    def next_fault(self) -> str | None:
        with self.lock:
            self.data_requests += 1
            if self.always:
                return self.always
            return self.faults.pop(0) if self.faults else None

    # -- what was received
    def events(self) -> list[Received]:
        with self.lock:
            return [e for a in self.accepted for e in a.events]

    def seqs(self) -> list[int]:
        return [e.seq for e in self.events() if e.seq is not None]

    def record(self, request: Request, events: list[Received]) -> int:
        body = self.body(request)
        with self.lock:
            self.accepted.append(Accepted(events, len(body), _gzipped(request),
                                          dict(request.headers.items())))
            count = len(self.accepted)
        if self.on_accept is not None:
            self.on_accept(count)
        return count

    @staticmethod
    def body(request: Request) -> bytes:
        if _gzipped(request):
            return gzip.decompress(request.body)
        return request.body

    # -- to implement
    def _handle(self, request: Request) -> None:
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus delayed ACK
        # add ~40 ms to every answer on loopback.
        request.raw.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.handle(request)

    def handle(self, request: Request) -> None:
        raise NotImplementedError

    def answer_fault(self, request: Request, kind: str) -> bool:
        """Answer an injected fault; True when the request is finished."""
        if kind == "reset":
            request.reset()
            return True
        if kind == "slow":
            time.sleep(self.slow_seconds)
            return False
        if kind == "throttle":
            request.send_json(429, {"error": "too many requests"},
                              {"Retry-After": self.retry_after})
            return True
        if kind == "server_error":
            request.send_json(500, {"error": "internal"})
            return True
        return False


def _gzipped(request: Request) -> bool:
    return (request.headers.get("Content-Encoding") or "").lower() == "gzip"


def write_logs(folder: Path, runs: dict[str, int], width: int = 40) -> dict[str, list[str]]:
    """Write ``<run>.log`` files of numbered lines; returns the lines per run."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for run, count in runs.items():
        lines = [f"2024-05-01T12:00:{i % 60:02d}Z [INFO] {run} line {i:06d} " + "x" * width
                 for i in range(1, count + 1)]
        (folder / f"{run}.log").write_text("\n".join(lines) + "\n")
        out[run] = lines
    return out


class RecordSinkKit:
    """Mix into a ``Test...`` class; set ``receiver_class`` and implement :meth:`sink_table`."""

    receiver_class: type[RecordingReceiver]
    max_in_flight = 1

    def sink_table(self, receiver: RecordingReceiver, **overrides: Any) -> dict[str, Any]:
        raise NotImplementedError

    @pytest.fixture
    def receiver(self) -> Iterator[RecordingReceiver]:
        server = self.receiver_class().start()
        yield server
        server.stop()

    # -- helpers
    def config(self, tmp_path: Path, receiver: RecordingReceiver, chunk_size: int = 4096,
               retry: dict[str, Any] | None = None, **overrides: Any) -> Any:
        import logarchive

        table = {"compression": "gzip", "http": {"retry": {**FAST_RETRY, **(retry or {})}},
                 **self.sink_table(receiver, **overrides)}
        return logarchive.parse_config(
            {"logarchive": {"state_dir": str(tmp_path / "state"), "workers": 1,
                            "chunk_size": chunk_size},
             "sources": {"logs": {"type": "files", "url": str(tmp_path / "logs")}},
             "sinks": {"agg": table},
             "pipelines": [{"name": "p", "source": "logs", "sinks": ["agg"]}]},
            base_dir=tmp_path,
        )

    def export(self, config: Any, **kwargs: Any) -> Any:
        import logarchive

        return logarchive.export(config, **kwargs)

    def ledger_accepted(self, tmp_path: Path, run: str) -> int | None:
        from logarchive.ledger import SQLiteLedger

        ledger = SQLiteLedger(tmp_path / "state")
        try:
            for delivery in ledger.deliveries("agg"):
                if delivery.run_key.endswith(f"run_id={run}"):
                    return delivery.accepted
        finally:
            ledger.close()
        return None

    # -- the kit
    def test_batches_respect_limits_and_deliver_every_line_once(self, tmp_path, receiver):
        write_logs(tmp_path / "logs", {"r1": 230})
        config = self.config(tmp_path, receiver, batch_max_events=40, batch_max_bytes=8192)
        summary = self.export(config)
        assert summary.exit_code == 0, summary.to_json()
        assert sorted(receiver.seqs()) == list(range(1, 231))
        assert len(receiver.accepted) >= 230 // 40
        for request in receiver.accepted:
            assert len(request.events) <= 40
            assert request.body_bytes <= 8192
            assert request.gzip
        ids = [e.event_id for e in receiver.events()]
        assert len(set(ids)) == len(ids)
        assert self.ledger_accepted(tmp_path, "r1") == 230

    def test_long_line_parts_arrive_once_in_order(self, tmp_path, receiver):
        logs = tmp_path / "logs"
        logs.mkdir()
        long = "y" * 3000
        (logs / "r1.log").write_text(f"first\n{long}\nlast\n")
        config = self.config(tmp_path, receiver, max_line_bytes=1024)
        assert self.export(config).exit_code == 0
        events = receiver.events()
        assert "".join(e.message for e in events if e.seq == 2) == long
        assert [e.seq for e in events if e.seq != 2] == [1, 3]
        assert len({e.event_id for e in events}) == len(events)

    def test_resume_after_interruption_delivers_each_line_once(self, tmp_path, receiver):
        write_logs(tmp_path / "logs", {"r1": 300})
        config = self.config(tmp_path, receiver, batch_max_events=20, chunk_size=4096)
        stop = threading.Event()
        receiver.on_accept = lambda count: stop.set() if count == 3 else None
        first = self.export(config, stop=stop)
        assert first.count("interrupted") == 1 or first.count("failed") == 1, first.to_json()
        delivered_first = len(receiver.seqs())
        assert 0 < delivered_first < 300
        accepted = self.ledger_accepted(tmp_path, "r1")
        assert accepted == delivered_first
        receiver.on_accept = None
        second = self.export(config)
        assert second.exit_code == 0, second.to_json()
        assert sorted(receiver.seqs()) == list(range(1, 301))  # no gap, no duplicate

    @pytest.mark.parametrize("fault", ["busy", "throttle", "reset", "server_error", "slow"])
    def test_transient_faults_are_retried(self, tmp_path, receiver, fault):
        write_logs(tmp_path / "logs", {"r1": 50})
        receiver.fail_next(fault, fault)
        config = self.config(tmp_path, receiver, batch_max_events=10)
        summary = self.export(config)
        assert summary.exit_code == 0, summary.to_json()
        assert sorted(receiver.seqs()) == list(range(1, 51))
        extra = 0 if fault == "slow" else 2
        assert receiver.data_requests == len(receiver.accepted) + extra

    @pytest.mark.timeout(30)
    def test_retry_after_is_honoured(self, tmp_path, receiver):
        # A backoff of minutes: only honouring Retry-After: 0 lets this finish in time.
        write_logs(tmp_path / "logs", {"r1": 5})
        receiver.fail_next("throttle", "throttle")
        config = self.config(tmp_path, receiver,
                             retry={"backoff_initial": 120, "backoff_max": 120})
        assert self.export(config).exit_code == 0
        assert sorted(receiver.seqs()) == [1, 2, 3, 4, 5]

    def test_invalid_credentials_fail_fast_for_every_run(self, tmp_path, receiver):
        write_logs(tmp_path / "logs", {"r1": 10, "r2": 10})
        receiver.always = "auth"
        summary = self.export(self.config(tmp_path, receiver))
        # The first run fails and gives the sink up; the second stays pending (deferred).
        assert (summary.failed, summary.count("deferred"), summary.exit_code) == (1, 1, 1)
        assert receiver.data_requests == 1  # no retry, and the second run sends nothing
        assert receiver.events() == []
        errors = " ".join(r.error or "" for r in summary.results)
        assert self.credential_word in errors.lower()

    credential_word = "token"

    def test_bad_data_fails_without_retry_naming_the_lines(self, tmp_path, receiver):
        write_logs(tmp_path / "logs", {"r1": 10})
        receiver.fail_next("bad")
        summary = self.export(self.config(tmp_path, receiver))
        assert summary.failed == 1
        assert receiver.data_requests == 1
        assert "line" in (summary.results[0].error or "")

    def test_busy_receiver_bounds_work_in_flight(self, tmp_path, receiver):
        # A receiver that stays busy: retries run out, the run fails, and no more than
        # max_in_flight distinct batches were ever sent (the source is not read ahead).
        write_logs(tmp_path / "logs", {"r1": 2000})
        receiver.always = "busy"
        config = self.config(tmp_path, receiver, batch_max_events=10, retry={"max_retries": 2})
        summary = self.export(config)
        assert summary.failed == 1
        assert receiver.data_requests == 3 * self.max_in_flight
        assert self.ledger_accepted(tmp_path, "r1") == 0

    def test_event_ids_are_deterministic(self, tmp_path, receiver):
        write_logs(tmp_path / "logs", {"r1": 30})
        config = self.config(tmp_path, receiver)
        assert self.export(config).exit_code == 0
        first = [e.event_id for e in receiver.events()]
        assert self.export(config, force=True).exit_code == 0
        second = [e.event_id for e in receiver.events()][len(first):]
        assert first == second
        assert Counter(first).most_common(1)[0][1] == 1
