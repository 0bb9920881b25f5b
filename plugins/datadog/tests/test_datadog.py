"""Datadog logs intake sink: conformance kit plus intake specifics (limits, split, codes)."""

from __future__ import annotations

import gzip
import json
from importlib.metadata import entry_points

import pytest

import logarchive
from logarchive.plugins import default_registry
from logarchive.testing.record_sinks import RecordSinkKit, write_logs
from logarchive_datadog import SITES, DatadogSink
from logarchive_datadog.testing import API_KEY, IntakeReceiver


def test_discovered_through_its_entry_point():
    names = {ep.name: ep.value for ep in entry_points(group="logarchive")}
    assert names["datadog"] == "logarchive_datadog"
    assert default_registry().sinks["datadog"].cls is DatadogSink


class TestDatadogConformance(RecordSinkKit):
    receiver_class = IntakeReceiver
    credential_word = "api key"

    def sink_table(self, receiver, **overrides):
        return {"type": "datadog", "url": receiver.url, "api_key": API_KEY, **overrides}


@pytest.fixture
def intake():
    server = IntakeReceiver().start()
    yield server
    server.stop()


def _config(tmp_path, intake, **sink):
    table = {"type": "datadog", "url": intake.url, "api_key": API_KEY, **sink,
             "http": {"retry": {"backoff_initial": 0.01, "backoff_max": 0.02}}}
    return logarchive.parse_config(
        {"logarchive": {"state_dir": str(tmp_path / "state"), "workers": 1},
         "sources": {"logs": {"type": "files", "url": str(tmp_path / "logs")}},
         "sinks": {"dd": table}},
        base_dir=tmp_path,
    )


def test_entry_shape(tmp_path, intake):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "run-3.log").write_text("2024-05-01T12:00:01.250Z [ERROR] boom\nplain\n")
    config = _config(tmp_path, intake, service="training", ddsource="logarchive",
                     ddtags="env:prod,team:ml", hostname="exp-1")
    assert logarchive.export(config).exit_code == 0
    [request] = intake.accepted
    assert request.gzip and request.headers["DD-API-KEY"] == API_KEY
    assert request.headers["Content-Type"] == "application/json"
    first, second = (e.raw for e in intake.events())
    assert first["message"] == "2024-05-01T12:00:01.250Z [ERROR] boom"
    assert first["ddsource"] == "logarchive" and first["ddtags"] == "env:prod,team:ml"
    assert first["hostname"] == "exp-1" and first["service"] == "training"
    assert first["timestamp"] == 1714564801250 and first["status"] == "error"
    assert first["run_id"] == "run-3" and first["logarchive_source"] == "logs"
    assert first["seq"] == 1 and first["event_id"]
    assert "timestamp" not in second and "status" not in second


@pytest.mark.parametrize("site", list(SITES))
def test_site_maps_to_intake_host(site):
    config = logarchive.parse_config(
        {"sources": {"l": {"type": "files", "url": "."}},
         "sinks": {"dd": {"type": "datadog", "site": site, "api_key": API_KEY}}})
    from logarchive.base import Context
    from logarchive.engine import log

    sink = DatadogSink("dd", config.sinks["dd"].config, Context("dd", log))
    assert sink.base_url() == f"https://http-intake.logs.{site}"
    assert SITES["datadoghq.eu"] == "https://http-intake.logs.datadoghq.eu"


def test_limits_are_validated_before_any_request():
    for key, value in (("batch_max_events", 1001), ("batch_max_bytes", 5_000_001),
                       ("max_entry_bytes", 1_000_001)):
        with pytest.raises(logarchive.ConfigError) as info:
            logarchive.parse_config(
                {"sources": {"l": {"type": "files", "url": "."}},
                 "sinks": {"dd": {"type": "datadog", "api_key": API_KEY, key: value}}})
        assert key in str(info.value)


def test_at_most_1000_entries_per_request(tmp_path, intake):
    write_logs(tmp_path / "logs", {"r": 2500}, width=5)
    assert logarchive.export(_config(tmp_path, intake)).exit_code == 0
    assert [len(r.events) for r in intake.accepted] == [1000, 1000, 500]
    assert sorted(intake.seqs()) == list(range(1, 2501))


def test_at_most_5mb_per_request_and_1mb_per_entry(tmp_path, intake):
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [f"{i:03d} " + "z" * 900_000 for i in range(12)]
    (logs / "r.log").write_text("\n".join(lines) + "\n")
    assert logarchive.export(_config(tmp_path, intake)).exit_code == 0
    assert len(intake.accepted) >= 3
    for request in intake.accepted:
        assert request.body_bytes <= 5_000_000
    assert intake.truncated == 0
    assert [e.message for e in intake.events()] == lines


def test_entry_over_1mb_is_split_into_parts_never_truncated(tmp_path, intake):
    logs = tmp_path / "logs"
    logs.mkdir()
    # Control characters escape to six bytes each in JSON: the split must count that.
    long = ("\x01" * 100 + "é" * 1000 + "w" * 20_000) * 120
    (logs / "r.log").write_text(f"head\n{long}\ntail\n")
    config = _config(tmp_path, intake, max_line_bytes=8_000_000)
    assert logarchive.export(config).exit_code == 0
    assert intake.truncated == 0
    pieces = [e.raw for e in intake.events() if e.seq == 2]
    assert len(pieces) > 2
    assert "".join(p["message"] for p in pieces) == long
    assert [p["piece"] for p in pieces] == list(range(1, len(pieces) + 1))
    assert all(p["partial"] for p in pieces[:-1]) and not pieces[-1]["partial"]
    assert not pieces[0]["continuation"] and all(p["continuation"] for p in pieces[1:])
    assert len({p["event_id"] for p in pieces}) == len(pieces)
    for piece in pieces:
        assert len(json.dumps(piece, ensure_ascii=False, separators=(",", ":")).encode()) <= 1_000_000


def test_413_splits_the_batch_and_sends_the_halves(tmp_path, intake):
    intake.max_body = 3000  # a receiver with a smaller limit than configured
    write_logs(tmp_path / "logs", {"r": 40})
    summary = logarchive.export(_config(tmp_path, intake, batch_max_bytes=100_000))
    assert summary.exit_code == 0, summary.to_json()
    assert sorted(intake.seqs()) == list(range(1, 41))  # each once: halves, never whole again
    assert len(intake.accepted) > 1
    assert len(intake.server.requests) > len(intake.accepted)  # the 413s


def test_403_names_the_api_key_and_is_not_retried(tmp_path, intake):
    write_logs(tmp_path / "logs", {"r": 3})
    intake.api_key = "something-else"
    summary = logarchive.export(_config(tmp_path, intake))
    assert summary.failed == 1
    error = summary.results[0].error
    assert "api_key" in error and "403" in error and API_KEY not in error
    assert len(intake.server.requests) == 1


def test_400_is_permanent(tmp_path, intake):
    write_logs(tmp_path / "logs", {"r": 3})
    intake.fail_next("bad")
    summary = logarchive.export(_config(tmp_path, intake))
    assert summary.failed == 1
    assert "lines 1..3" in summary.results[0].error
    assert len(intake.server.requests) == 1


def test_uncompressed_when_configured(tmp_path, intake):
    write_logs(tmp_path / "logs", {"r": 3})
    assert logarchive.export(_config(tmp_path, intake, compression="none")).exit_code == 0
    [request] = intake.server.requests
    assert "Content-Encoding" not in request.headers
    assert json.loads(request.body)[0]["seq"] == 1
    with pytest.raises(OSError):
        gzip.decompress(request.body)


def test_fast_entry_encoding_equals_the_dict_encoding() -> None:
    """The byte-level encoding of a whole line is the same JSON, key for key, as the dict one."""
    import threading

    import orjson
    import structlog

    from logarchive.base import Context
    from logarchive.codec import RecordBuilder
    from logarchive.runs import RunRef
    from logarchive_datadog import DatadogConfig, DatadogSink, IntakeProtocol

    run = RunRef("src", {"model_id": "m\"1", "run_id": "r/ü"})
    sink = DatadogSink("dd", DatadogConfig(type="datadog", api_key="k" * 32, service="svc",
                                            ddtags="env:test"),
                       Context("dd", structlog.get_logger(), threading.Event()))
    protocol = IntakeProtocol(sink, run)
    lines = ('2026-03-13T10:00:00.123Z [WARN] a "quoted" line\\n\tü\n'
             "no timestamp nor level\n2026-03-13 10:00:00,5 [error] other form\n\n").encode()
    builder = RecordBuilder(run.record_fields())
    for record in builder.feed(lines).records() + builder.finish().records():
        fast = protocol._whole_line(record)
        slow = orjson.dumps(protocol._entry(record, record["message"], None, 0, 1))
        assert fast == slow


def test_service_and_tags_are_templates_of_run_fields(tmp_path, intake):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "run-7.log").write_text("one line\n")
    config = _config(tmp_path, intake, service="train-{run_id}",
                     ddtags="env:prod,run:{run_id},src:{source}")
    assert logarchive.export(config).exit_code == 0
    [entry] = (e.raw for e in intake.events())
    assert entry["service"] == "train-run-7"
    assert entry["ddtags"] == "env:prod,run:run-7,src:logs"
