"""Both aggregator sinks together, through the real engine and the real CLI process:
one read of the source for every sink, and exactly-once delivery across SIGTERM and SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

import logarchive
from logarchive.plugin_api import hookimpl
from logarchive.plugins import Registry
from logarchive.testing.record_sinks import write_logs
from logarchive_datadog.testing import API_KEY, IntakeReceiver
from logarchive_files import FilesSource

splunk_testing = pytest.importorskip("logarchive_splunk.testing")
HecReceiver, TOKEN = splunk_testing.HecReceiver, splunk_testing.TOKEN
CLI = str(Path(sys.executable).parent / "logarchive")


class CountingFiles(FilesSource):
    """The files source, counting how often a log is opened and how many bytes are read."""

    type = "counting-files"
    opened = 0
    read = 0

    class Config(FilesSource.Config):
        type: str = "counting-files"  # type: ignore[assignment]

    @contextmanager
    def open(self, run):
        CountingFiles.opened += 1
        with super().open(run) as chunks:
            def counted():
                for chunk in chunks:
                    CountingFiles.read += len(chunk)
                    yield chunk
            yield counted()


class _CountingPlugin:
    @hookimpl
    def logarchive_register_sources(self, register):
        register(CountingFiles)


@contextmanager
def receivers():
    hec, intake = HecReceiver(ack=True).start(), IntakeReceiver().start()
    try:
        yield hec, intake
    finally:
        hec.stop()
        intake.stop()


def sinks(hec, intake, **common):
    fast = {"http": {"retry": {"backoff_initial": 0.01, "backoff_max": 0.05}}, **common}
    return {
        "splunk": {"type": "splunk", "url": hec.url, "token": TOKEN, "ack": True,
                   "ack_poll_interval": 0.01, **fast},
        "datadog": {"type": "datadog", "url": intake.url, "api_key": API_KEY, **fast},
    }


@pytest.mark.scenario(
    "one read of the source for three sinks",
    "a pipeline with an fs sink, Splunk and Datadog opens the log once and reads exactly its "
    "size",
)
def test_fs_and_both_aggregators_read_the_source_once(tmp_path):
    lines = write_logs(tmp_path / "logs", {"r1": 400})["r1"]
    registry = Registry()
    registry.load_entry_points()
    registry.register(_CountingPlugin(), name="counting")
    CountingFiles.opened = CountingFiles.read = 0
    with receivers() as (hec, intake):
        config = logarchive.parse_config(
            {"logarchive": {"state_dir": str(tmp_path / "state"), "chunk_size": 4096},
             "sources": {"logs": {"type": "counting-files", "url": str(tmp_path / "logs")}},
             "sinks": {"archive": {"type": "fs", "url": str(tmp_path / "archive")},
                       **sinks(hec, intake, batch_max_events=50)}},
            registry=registry, base_dir=tmp_path,
        )
        summary = logarchive.export(config)
        assert summary.exit_code == 0, summary.to_json()
        size = (tmp_path / "logs" / "r1.log").stat().st_size
        assert CountingFiles.opened == 1 and CountingFiles.read == size
        assert (tmp_path / "archive" / "logs" / "r1.txt").read_text().splitlines() == lines
        assert sorted(hec.seqs()) == list(range(1, 401))
        assert sorted(intake.seqs()) == list(range(1, 401))


def _write_config(tmp_path, hec, intake, batch: int = 20, extra=None) -> Path:
    import json

    def toml_value(value):
        if isinstance(value, dict):  # an inline table
            return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
        return json.dumps(value)

    def toml_table(name, table):
        body = "\n".join(f"{k} = {toml_value(v)}" for k, v in table.items())
        return f"[sinks.{name}]\n{body}\n"

    text = (f'[logarchive]\nstate_dir = "{tmp_path / "state"}"\nworkers = 1\nchunk_size = 4096\n'
            f'[sources.logs]\ntype = "files"\nurl = "{tmp_path / "logs"}"\n'
            + "".join(toml_table(n, t) for n, t in
                      {**sinks(hec, intake, batch_max_events=batch, compression="gzip"),
                       **(extra or {})}.items()))
    path = tmp_path / "logarchive.toml"
    path.write_text(text)
    return path


def _interrupt(tmp_path, signum, lines=2000):
    write_logs(tmp_path / "logs", {"r1": lines}, width=10)
    with receivers() as (hec, intake):
        hec.delay = intake.delay = 0.01  # slow enough to be caught mid-delivery
        config = _write_config(tmp_path, hec, intake)
        process = subprocess.Popen([CLI, "export", "-c", str(config)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while len(hec.accepted) < 5 or len(intake.accepted) < 5:
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signum)
        output = process.communicate(timeout=60)[0].decode()
        time.sleep(0.5)  # a request the killed process had on the wire is still being answered
        first = {"splunk": len(hec.accepted), "datadog": len(intake.accepted)}
        assert first["splunk"] < lines // 20 and first["datadog"] < lines // 20, output
        hec.delay = intake.delay = 0
        _write_config(tmp_path, hec, intake, batch=500)  # batch size may change between runs
        rerun = subprocess.run([CLI, "export", "-c", str(config)], capture_output=True,
                               timeout=120)
        assert rerun.returncode == 0, rerun.stdout.decode() + rerun.stderr.decode()
        return process.returncode, output, hec, intake, first


@pytest.mark.scenario(
    "SIGTERM during delivery to Splunk (ack) and Datadog",
    "a real export is stopped mid-delivery and run again: every line reaches each receiver "
    "exactly once",
)
@pytest.mark.timeout(180)
def test_sigterm_then_rerun_delivers_every_line_exactly_once(tmp_path):
    code, output, hec, intake, _ = _interrupt(tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, output
    for receiver in (hec, intake):
        assert sorted(receiver.seqs()) == list(range(1, 2001))
        ids = [e.event_id for e in receiver.events()]
        assert len(ids) == len(set(ids)) == 2000


@pytest.mark.scenario(
    "SIGKILL during delivery to Splunk (ack) and Datadog",
    "a real export is killed mid-delivery and run again: no line missing at either receiver; "
    "duplicates only from the one request in flight per sink, each with its deterministic "
    "event id",
)
@pytest.mark.timeout(180)
def test_sigkill_then_rerun_leaves_no_gap_and_duplicates_only_the_batch_in_flight(tmp_path):
    code, output, hec, intake, first = _interrupt(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL, output
    for name, receiver in (("splunk", hec), ("datadog", intake)):
        assert sorted(set(receiver.seqs())) == list(range(1, 2001))  # no gap
        counts = Counter(e.event_id for e in receiver.events())
        duplicated = {i for i, n in counts.items() if n > 1}
        assert all(n <= 2 for n in counts.values())
        print(f"{name}: {len(duplicated)} events delivered twice after SIGKILL")
        if duplicated:
            # Every duplicate comes from one request of the killed export: its batch in flight.
            killed = receiver.accepted[:first[name]]
            owners = [r for r in killed if duplicated <= {e.event_id for e in r.events}]
            assert len(owners) == 1, name


def _log_entries(output):
    import json

    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _log_with_blank_lines(tmp_path, count):
    lines = []
    for i in range(1, count + 1):
        blank = "" if i % 7 == 0 else "   \t " if i % 11 == 0 else None
        lines.append(blank if blank is not None else f"2024-05-01T12:00:00Z [INFO] line {i}")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "r1.log").write_text("\n".join(lines) + "\n")
    return lines


@pytest.mark.scenario(
    "blank lines to strict Splunk (ack, event and raw) and Datadog",
    "a log with empty and whitespace-only lines is exported by the CLI to receivers that refuse "
    "what the real ones refuse: every line arrives once; HEC events carry a blank line as "
    "{\"message\": ...}, the raw endpoint skips it",
)
@pytest.mark.timeout(120)
def test_blank_lines_reach_every_aggregator_as_documented(tmp_path):
    lines = _log_with_blank_lines(tmp_path, 300)
    with receivers() as (hec, intake):
        raw = HecReceiver().start()
        try:
            extra = {"splunk_raw": {"type": "splunk", "url": raw.url, "token": TOKEN,
                                    "endpoint": "raw", "batch_max_events": 20}}
            config = _write_config(tmp_path, hec, intake, extra=extra)
            result = subprocess.run([CLI, "export", "-c", str(config)], capture_output=True,
                                    timeout=120)
        finally:
            raw.stop()
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, output
    assert hec.refused == [] and raw.refused == []
    blank = sum(1 for line in lines if not line.strip())
    skipped = {entry["sink"]: entry["skipped"] for entry in _log_entries(output)
               if entry.get("event") == "records_delivered"}
    assert skipped == {"splunk": 0, "datadog": 0, "splunk_raw": blank}
    for receiver in (hec, intake):
        assert sorted(receiver.seqs()) == list(range(1, 301))  # seq exact, blank lines included
        by_seq = {e.seq: e.message for e in receiver.events()}
        assert [by_seq[i] for i in range(1, 301)] == lines
        ids = [e.event_id for e in receiver.events()]
        assert len(set(ids)) == 300
    blank_events = [e.raw["event"] for e in hec.events() if not e.message.strip()]
    assert len(blank_events) == sum(1 for line in lines if not line.strip())
    assert all(isinstance(event, dict) for event in blank_events)
    assert [e.message for e in raw.events()] == [line for line in lines if line.strip()]


@pytest.mark.scenario(
    "blank lines skipped by Splunk's raw endpoint, then a resume",
    "an export to the raw endpoint of a log with blank lines is stopped after 4 batches and "
    "run again: every non-blank line arrives once, in order; skipped lines never shift a resume "
    "and the resumed export counts every one of them",
)
@pytest.mark.timeout(120)
def test_blank_lines_keep_resume_exact_after_an_interruption(tmp_path):
    import threading

    _log_with_blank_lines(tmp_path, 400)
    with receivers() as (hec, intake):
        raw = HecReceiver().start()
        try:
            config = logarchive.parse_config(
                {"logarchive": {"state_dir": str(tmp_path / "state"), "workers": 1,
                                "chunk_size": 4096},
                 "sources": {"logs": {"type": "files", "url": str(tmp_path / "logs")}},
                 "sinks": {"raw": {"type": "splunk", "url": raw.url, "token": TOKEN,
                                   "endpoint": "raw", "batch_max_events": 7,
                                   "http": {"retry": {"backoff_initial": 0.01}}}}},
                base_dir=tmp_path,
            )
            stop = threading.Event()
            raw.on_accept = lambda count: stop.set() if count == 4 else None
            first = logarchive.export(config, stop=stop)
            assert first.count("interrupted") == 1, first.to_json()
            assert 0 < len(raw.events()) < 300
            raw.on_accept = None
            second = logarchive.export(config)
            assert second.exit_code == 0
            messages = [e.message for e in raw.events()]
        finally:
            raw.stop()
    expected = [f"2024-05-01T12:00:00Z [INFO] line {i}" for i in range(1, 401)
                if i % 7 and i % 11]
    assert messages == expected  # no gap, no duplicate, in order
    # The count covers the whole run, the blank lines before the resume point included.
    assert second.lines_skipped == {"raw": 400 - len(expected)}
