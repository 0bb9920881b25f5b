"""Splunk HEC sink: conformance kit plus HEC specifics (ack, codes, raw, event shape)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import logarchive
from logarchive.plugins import default_registry
from logarchive.testing.record_sinks import RecordSinkKit, write_logs
from logarchive_splunk.testing import TOKEN, HecReceiver, hec_events


def test_discovered_through_its_entry_point():
    names = {ep.name: ep.value for ep in entry_points(group="logarchive")}
    assert names["splunk"] == "logarchive_splunk"
    registry = default_registry()
    assert registry.sinks["splunk"].cls.__module__ == "logarchive_splunk"


class TestSplunkConformance(RecordSinkKit):
    receiver_class = HecReceiver

    def sink_table(self, receiver, **overrides):
        return {"type": "splunk", "url": receiver.url, "token": TOKEN, **overrides}


class TestSplunkAckConformance(TestSplunkConformance):
    """The same kit with indexer acknowledgement on."""

    def sink_table(self, receiver, **overrides):
        receiver.ack_enabled = True
        return {"type": "splunk", "url": receiver.url, "token": TOKEN, "ack": True,
                "ack_poll_interval": 0.01, **overrides}


@pytest.fixture
def hec():
    server = HecReceiver().start()
    yield server
    server.stop()


def _config(tmp_path, hec, **sink):
    table = {"type": "splunk", "url": hec.url, "token": TOKEN, **sink,
             "http": {"retry": {"backoff_initial": 0.01, "backoff_max": 0.02}}}
    return logarchive.parse_config(
        {"logarchive": {"state_dir": str(tmp_path / "state"), "workers": 1},
         "sources": {"logs": {"type": "files", "url": str(tmp_path / "logs")}},
         "sinks": {"splunk": table}},
        base_dir=tmp_path,
    )


def test_event_shape_time_host_source_fields(tmp_path, hec):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "run-7.log").write_text("2024-05-01T12:00:01.250Z [WARN] hot\nno time here\n")
    config = _config(tmp_path, hec, index="ml", sourcetype="training", host="exp-1",
                     source="{source}/{run_id}", compression="none")
    assert logarchive.export(config).exit_code == 0
    [request] = hec.accepted
    assert not request.gzip
    assert request.headers["Authorization"] == f"Splunk {TOKEN}"
    first, second = (e.raw for e in hec.events())
    assert first["time"] == 1714564801.25
    assert first["host"] == "exp-1" and first["source"] == "logs/run-7"
    assert first["sourcetype"] == "training" and first["index"] == "ml"
    assert first["event"] == "2024-05-01T12:00:01.250Z [WARN] hot"
    assert first["fields"]["run_id"] == "run-7" and first["fields"]["source"] == "logs"
    assert first["fields"]["level"] == "warning" and first["fields"]["seq"] == "1"  # HEC indexed fields: strings
    # No timestamp in the line: the run's time (the file's mtime), in epoch seconds.
    run_time = (logs / "run-7.log").stat().st_mtime
    assert abs(second["time"] - run_time) < 0.01
    assert first["fields"]["event_id"] != second["fields"]["event_id"]


def test_events_are_concatenated_not_an_array(tmp_path, hec):
    write_logs(tmp_path / "logs", {"r": 5})
    assert logarchive.export(_config(tmp_path, hec)).exit_code == 0
    [request] = hec.server.requests
    body = gzip.decompress(request.body)
    assert body.startswith(b'{"time"') and b"}{" in body
    assert len(hec_events(body)) == 5


def test_event_format_record_sends_the_whole_record(tmp_path, hec):
    write_logs(tmp_path / "logs", {"r": 2})
    assert logarchive.export(_config(tmp_path, hec, event_format="record")).exit_code == 0
    event = hec.events()[0].raw["event"]
    assert event["seq"] == 1 and event["level"] == "info" and event["run_id"] == "r"
    assert event["message"].endswith("x" * 40) and event["event_id"]


def test_ack_waits_for_acknowledgement_then_records_progress(tmp_path, hec):
    hec.ack_enabled = True
    hec.ack_after_polls = 3
    write_logs(tmp_path / "logs", {"r": 50})
    config = _config(tmp_path, hec, ack=True, ack_poll_interval=0.01, batch_max_events=10)
    assert logarchive.export(config).exit_code == 0
    assert sorted(hec.seqs()) == list(range(1, 51))
    assert hec.ack_polls == 5 * 4  # every batch polled until acknowledged
    for request in hec.accepted:
        assert request.headers["X-Splunk-Request-Channel"]
    channels = {r.headers["X-Splunk-Request-Channel"] for r in hec.accepted}
    assert len(channels) == 1


def test_unacknowledged_batch_is_resent_after_ack_timeout(tmp_path, hec):
    hec.ack_enabled = True
    hec.drop_acks = 1  # the first batch's ackId is lost
    write_logs(tmp_path / "logs", {"r": 20})
    config = _config(tmp_path, hec, ack=True, ack_poll_interval=0.01, ack_timeout=0.1,
                     batch_max_events=10)
    summary = logarchive.export(config)
    assert summary.exit_code == 0
    seqs = hec.seqs()
    assert sorted(set(seqs)) == list(range(1, 21))
    assert len(seqs) == 30  # batch 1 was sent twice: counted, same event ids
    first_ids = [e.event_id for e in hec.accepted[0].events]
    assert first_ids == [e.event_id for e in hec.accepted[1].events]


def test_ack_disabled_on_the_token_fails_fast(tmp_path, hec):
    write_logs(tmp_path / "logs", {"r": 5, "s": 5})
    summary = logarchive.export(_config(tmp_path, hec, ack=True, ack_poll_interval=0.01))
    assert (summary.failed, summary.count("deferred")) == (1, 1)  # the sink is given up
    assert "ackId" in " ".join(r.error or "" for r in summary.results)
    assert len(hec.server.requests) == 1


def test_bad_data_names_the_event(tmp_path, hec):
    write_logs(tmp_path / "logs", {"r": 5})
    hec.fail_next("bad")  # code 6, invalid-event-number 1
    summary = logarchive.export(_config(tmp_path, hec))
    assert summary.failed == 1
    assert "line 2 " in summary.results[0].error
    assert "Invalid data format (code 6)" in summary.results[0].error


def test_wrong_token_message_and_no_retry(tmp_path, hec):
    write_logs(tmp_path / "logs", {"r": 5})
    config = _config(tmp_path, hec)
    hec.token = "another"
    summary = logarchive.export(config)
    assert summary.failed == 1
    assert "invalid token (code 4, HTTP 403)" in summary.results[0].error
    assert TOKEN not in summary.results[0].error
    assert len(hec.server.requests) == 1


def test_busy_code_9_is_retried(tmp_path, hec):
    write_logs(tmp_path / "logs", {"r": 5})
    hec.fail_next("busy", "busy", "busy")
    assert logarchive.export(_config(tmp_path, hec)).exit_code == 0
    assert sorted(hec.seqs()) == [1, 2, 3, 4, 5]
    assert len(hec.server.requests) == 4


def test_raw_endpoint_sends_lines_with_channel(tmp_path, hec):
    write_logs(tmp_path / "logs", {"r": 4})
    config = _config(tmp_path, hec, endpoint="raw", index="ml", source="{run_id}")
    assert logarchive.export(config).exit_code == 0
    messages = [e.message for e in hec.events()]
    assert len(messages) == 4 and messages[0].startswith("2024-05-01T12:00:01Z [INFO] r line")
    query = hec.events()[0].raw["query"]
    assert query["index"] == "ml" and query["source"] == "r" and query["channel"]


def test_unknown_template_field_is_a_clear_error(tmp_path, hec):
    write_logs(tmp_path / "logs", {"r": 2})
    summary = logarchive.export(_config(tmp_path, hec, source="{model_id}"))
    assert summary.failed == 1
    assert "model_id" in summary.results[0].sinks["splunk"]


@pytest.mark.parametrize("endpoint", ["event", "raw"])
def test_index_and_sourcetype_are_templates_of_run_fields(tmp_path, hec, endpoint):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "run-7.log").write_text("one line\n")
    config = _config(tmp_path, hec, endpoint=endpoint, index="ml_{run_id}",
                     sourcetype="training:{source}")
    assert logarchive.export(config).exit_code == 0
    [event] = (e.raw for e in hec.events())
    sent = event["query"] if endpoint == "raw" else event
    assert sent["index"] == "ml_run-7" and sent["sourcetype"] == "training:logs"


def _cli(cwd, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `logarchive` console script."""
    exe = Path(sys.executable).parent / "logarchive"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_raw_endpoint_skips_blank_lines_and_counts_them_exactly_across_a_resume(tmp_path, hec):
    """Through the CLI: the receiver keeps exactly the non-blank lines; the ledger, the summary
    and --json count the blank ones, the same after a resume as in one go."""
    lines = [f"step {n}" if n % 4 else ("", "   ", "\t")[n % 3] for n in range(1, 31)]
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run-1.log").write_text("\n".join(lines) + "\n")
    kept = [line for line in lines if line.strip()]
    blank = len(lines) - len(kept)
    (tmp_path / "c.toml").write_text(f"""
[logarchive]
state_dir = "state"
[sources.logs]
type = "files"
url = "logs"
[sinks.hec]
type = "splunk"
url = "{hec.url}"
token = "{TOKEN}"
endpoint = "raw"
batch_max_events = 3
http.retry = {{ backoff_initial = 0.01, backoff_max = 0.02 }}
""")
    hec.fail_next(None, None, None, "bad")  # three batches accepted, then refused: run failed
    first = _cli(tmp_path, "export", "-c", "c.toml")
    assert first.returncode == 1, first.stdout + first.stderr
    assert [e.message for e in hec.events()] == kept[:9]

    resumed = _cli(tmp_path, "export", "-c", "c.toml")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [e.message for e in hec.events()] == kept  # each non-blank line once, in order
    assert all(line.strip() for r in hec.server.requests
               for line in hec.body(r).decode().splitlines())  # no blank line was sent
    assert f"30 lines ({blank} not sent to hec: see its README)" in resumed.stdout

    shown = _cli(tmp_path, "ledger", "show", "-c", "c.toml", "--json")
    [row] = json.loads(shown.stdout)
    assert (row["status"], row["lines"], row["lines_skipped"]) == ("delivered", 30, blank)
    assert f"({blank} lines skipped)" in _cli(tmp_path, "ledger", "show", "-c", "c.toml").stdout

    again = _cli(tmp_path, "export", "-c", "c.toml", "--force", "--json")
    doc = json.loads(again.stdout)
    assert doc["lines_skipped"] == {"hec": blank}
    assert doc["runs"][0]["lines_skipped"] == {"hec": blank}


@pytest.mark.parametrize("keys", [{}, {"index": "ml_{model_id}", "host": "h\"1"}])
def test_fast_event_encoding_equals_the_dict_encoding(keys) -> None:
    """The byte-level encoding of a whole line's message event is the same JSON, key for key,
    as orjson of the event's dict (timestamps, levels, quotes, non-ASCII, no timestamp)."""
    import threading

    import orjson
    import structlog

    from logarchive.base import Context
    from logarchive.codec import RecordBuilder
    from logarchive.runs import RunRef
    from logarchive_splunk import HecProtocol, SplunkConfig, SplunkSink

    run = RunRef("src", {"model_id": "m\"1", "run_id": "r/ü"})
    sink = SplunkSink("hec", SplunkConfig(type="splunk", url="http://127.0.0.1:1",
                                          token="t" * 36, **keys),
                      Context("hec", structlog.get_logger(), threading.Event()))
    protocol = HecProtocol(sink, run)
    lines = ('2026-03-13T10:00:00.123Z [WARN] a "quoted" line\\n\tü\n'
             "no timestamp nor level\n2026-03-13 10:00:00,5 [error] other form\n"
             "1969-12-31T23:59:59.500Z [INFO] before 1970\n").encode()
    builder = RecordBuilder(run.record_fields())
    records = builder.feed(lines).records() + builder.finish().records()
    assert len(records) == 4
    for record in records:
        assert protocol.encode(record) == [orjson.dumps(protocol.document(record))]
        assert protocol._message_event(record, record["message"]) == orjson.dumps(
            protocol.document(record))
