"""Request bodies of both aggregator sinks, through the real engine with either codec, against a
reference written here: every record encoded by its protocol's ``encode`` (the per-record
reference the columnar payloads are fuzzed against), events cut into requests one by one by the
documented limits (bytes before compression, events per request; the events of one record in
one request whenever they fit). Whole-line records travel packed in one buffer, the others as
events: both paths, and batches mixing them, must send exactly these bytes."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

import logarchive
from logarchive.batching import EventIds
from logarchive.codec import RecordBuilder
from logarchive.pipeline import open_any_sink, open_source
from logarchive_datadog.testing import API_KEY, IntakeReceiver

splunk_testing = pytest.importorskip("logarchive_splunk.testing")


def write_log(path: Path, seed: int) -> bytes:
    """Lines of every kind the payloads treat apart: plain, blank, before 1970, quotes and
    non-ASCII, long enough to be split into pieces (Datadog) or parts (max_line_bytes)."""
    rng = random.Random(seed)
    lines = []
    for n in range(rng.randrange(120, 300)):
        kind = rng.random()
        if kind < 0.05:
            lines.append(b" " * rng.randrange(3))
        elif kind < 0.08:
            lines.append(b"1969-12-31T23:59:59.500Z [INFO] early %d" % n)
        elif kind < 0.11:
            lines.append(b"x" * rng.randrange(900, 4000))
        else:
            text = "".join(rng.choice('ab "\\\tü€ ') for _ in range(rng.randrange(60, 300)))
            stamp = f"2026-03-13T10:{n % 60:02d}:00.{n % 1000:03d}Z " if rng.random() < 0.8 else ""
            level = rng.choice(["[INFO] ", "[WARN] ", ""])
            lines.append(f"{stamp}{level}{text}".encode())
    data = b"\n".join(lines) + (b"\n" if seed % 2 else b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def expected_bodies(protocol, records, max_bytes: int, max_events: int) -> list[bytes]:
    bodies: list[bytes] = []
    current: list[bytes] = []
    sep = len(protocol.separator)
    size = 0

    def flush() -> None:
        nonlocal current
        if current:
            bodies.append(protocol.body_prefix + protocol.separator.join(current)
                          + protocol.body_suffix)
        current = []

    for record in records:
        if protocol.skips(record):
            continue
        encoded = protocol.encode(record)
        if current and (size + sum(len(e) + sep for e in encoded) > max_bytes
                        or len(current) + len(encoded) > max_events):
            flush()
        for event in encoded:
            if current and (size + len(event) + sep > max_bytes or len(current) >= max_events):
                flush()
            if not current:
                size = len(protocol.body_prefix) + len(protocol.body_suffix) - sep
            current.append(event)
            size += len(event) + sep
    flush()
    return bodies


SINKS = {
    "datadog": lambda url: {"type": "datadog", "url": url, "api_key": API_KEY,
                            "max_entry_bytes": 1024},
    "splunk": lambda url: {"type": "splunk", "url": url, "token": splunk_testing.TOKEN,
                           "index": "ml"},
    "splunk-raw": lambda url: {"type": "splunk", "url": url, "token": splunk_testing.TOKEN,
                               "endpoint": "raw"},
}


@pytest.mark.parametrize("codec", ["per-line", "columnar"])
@pytest.mark.parametrize("seed", [1, 2])
def test_request_bodies_equal_the_per_record_reference(tmp_path, monkeypatch, codec, seed):
    if codec == "columnar":
        pytest.importorskip("pyarrow")
        monkeypatch.setenv("LOGARCHIVE_CODEC", "columnar")
    data = write_log(tmp_path / "logs" / "r1.log", seed)
    rng = random.Random(seed)
    limits = {"batch_max_bytes": rng.choice([1024, 2048, 9000]),
              "batch_max_events": rng.choice([1, 7, 40]), "max_line_bytes": 3000,
              "compression": "none"}
    hec, intake = splunk_testing.HecReceiver().start(), IntakeReceiver().start()
    try:
        urls = {"datadog": intake.url, "splunk": hec.url, "splunk-raw": hec.url}
        for name, sink in SINKS.items():
            config = logarchive.parse_config(
                {"logarchive": {"state_dir": str(tmp_path / f"state-{name}"),
                                "chunk_size": rng.choice([4096, 8192, 65536])},
                 "sources": {"logs": {"type": "files", "url": str(tmp_path / "logs")}},
                 "sinks": {name: {**sink(urls[name]), **limits}}}, base_dir=tmp_path)
            receiver = intake if name == "datadog" else hec
            before = len(receiver.server.requests)
            assert logarchive.export(config).exit_code == 0
            got = [r.body for r in receiver.server.requests[before:]
                   if "/ack" not in r.path]
            [run] = list(open_source(config, "logs").discover())
            protocol = open_any_sink(config, name).protocol(run)
            builder = RecordBuilder(run.record_fields(), limits["max_line_bytes"])
            records = builder.feed(data).records() + builder.finish().records()
            assert got == expected_bodies(protocol, records, limits["batch_max_bytes"],
                                          limits["batch_max_events"]), name
    finally:
        hec.stop()
        intake.stop()


def test_event_ids_keep_their_scheme() -> None:
    """Downstream deduplication depends on the ids: sha256 of source, run key, seq, part (and
    piece when there is one) joined by U+001F, hex, first 32 characters."""
    def scheme(*values: object) -> str:
        return hashlib.sha256("\x1f".join(map(str, values)).encode()).hexdigest()[:32]

    ids = EventIds("logs", "logs/run_id=ü")
    assert ids(7) == scheme("logs", "logs/run_id=ü", 7, 0)
    assert ids(7, 2) == scheme("logs", "logs/run_id=ü", 7, 2)
    assert ids(7, None, 3) == scheme("logs", "logs/run_id=ü", 7, 0, 3)
    assert ids.many([5, 6, 1234567]) == [ids(5), ids(6), ids(1234567)]
