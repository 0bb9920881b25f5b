"""Several "hosts" (real `logarchive export` processes, each with its own state_dir) sharing one
PostgreSQL ledger, against the same source, a local archive, Splunk (with indexer
acknowledgement) and Datadog on loopback: every line delivered once; a SIGKILLed export's runs
finished by the next one after its lease, resumed where it stopped; a paused export (SIGSTOP
past its lease) records nothing once another took its run over, and exits 4."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import psycopg
import pytest

from logarchive.batching import event_id
from logarchive.results import ExportSummary, RunResult
from logarchive.runs import RunRef
from logarchive.status import ExitCode, RunStatus
from logarchive_datadog.testing import API_KEY, IntakeReceiver
from logarchive_splunk.testing import TOKEN, HecReceiver
from logarchive_testsupport.postgres import CuttableProxy
from logarchive_testsupport.processes import (
    EXE, check_archive, make_logs, run_export, start_export, write_config,
)

BATCH = 200
MAX_IN_FLIGHT = 2


@pytest.fixture
def receivers() -> Iterator[dict[str, Any]]:
    found = {"splunk": HecReceiver(ack=True).start(), "datadog": IntakeReceiver().start()}
    yield found
    for receiver in found.values():
        receiver.stop()


def host(tmp_path: Path, name: str, pg_url: str, receivers: dict[str, Any], *,
         lease: int = 60, workers: int = 2) -> Path:
    """The config of one host: its own state_dir, the shared ledger and sinks."""
    fast = {"http": {"retry": {"backoff_initial": 0.01, "backoff_max": 0.05}},
            "batch_max_events": BATCH, "max_in_flight": MAX_IN_FLIGHT}
    sinks = {
        "archive": {"type": "fs", "url": str(tmp_path / "archive"),
                    "path": "{model_id}/{run_id}.{ext}"},
        "splunk": {"type": "splunk", "url": receivers["splunk"].url, "token": TOKEN,
                   "ack": True, "ack_poll_interval": 0.01, **fast},
        "datadog": {"type": "datadog", "url": receivers["datadog"].url, "api_key": API_KEY,
                    **fast},
    }
    path = write_config(tmp_path / f"{name}.toml", tmp_path / f"state-{name}", tmp_path / "logs",
                        sinks, workers=workers, chunk_size=16384)
    text = path.read_text().replace(
        "[logarchive]\n",
        f"[logarchive]\nledger = {json.dumps(pg_url)}\nlease_seconds = {lease}\n", 1)
    path.write_text(text)
    return path


def duplicated(receiver: Any, logs: dict[str, bytes]) -> set[str]:
    """The event ids the receiver got more than once; asserts none is missing or unknown."""
    expected = {event_id("logs", f"logs/model_id=m/run_id={run}", seq)
                for run, data in logs.items() for seq in range(1, data.count(b"\n") + 1)}
    counts = Counter(e.event_id for e in receiver.events())
    assert set(counts) == expected, f"{len(expected - set(counts))} lines missing"
    return {i for i, n in counts.items() if n > 1}


def rows(pg_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET search_path TO logarchive")
        return conn.execute(sql, params).fetchall()


def deliveries(pg_url: str) -> list[tuple[Any, ...]]:
    return rows(pg_url, "SELECT run_key, sink, status, accepted, attempts, delivered_at "
                "FROM deliveries ORDER BY run_key, sink")


def wait_mid_run(process: subprocess.Popen[str], pg_url: str) -> None:
    """Until ``process`` holds a claim on a run that an aggregator has part of."""
    mid = ("SELECT 1 FROM claims c JOIN deliveries d USING (run_key) WHERE c.owner LIKE %s "
           "AND d.status = 'in_progress' AND d.accepted > 0")
    deadline = time.monotonic() + 120
    while not _ledger_ready(pg_url) or not rows(pg_url, mid, f"%:{process.pid}:%"):
        assert process.poll() is None, "the export finished before it could be stopped"
        assert time.monotonic() < deadline, "the export never got mid-run"
        time.sleep(0.02)


def _ledger_ready(pg_url: str) -> bool:
    return rows(pg_url, "SELECT to_regclass('logarchive.claims') IS NOT NULL")[0][0]


def wait_leases_out(pg_url: str, pid: int) -> None:
    """Until every claim of process ``pid`` is past its lease (the database's clock)."""
    live = ("SELECT 1 FROM claims WHERE owner LIKE %s AND expires_at >= clock_timestamp()")
    deadline = time.monotonic() + 60
    while rows(pg_url, live, f"%:{pid}:%"):
        assert time.monotonic() < deadline, "the lease never ran out"
        time.sleep(0.05)


def exported(process_output: str) -> int:
    """The run count of the summary line (``exported N run(s), ...``)."""
    found = re.search(r"^exported (\d+) run\(s\)", process_output, re.MULTILINE)
    assert found is not None, process_output
    return int(found[1])


@pytest.mark.scenario(
    "two hosts at once sharing a PostgreSQL ledger",
    "two exports (own state_dir each, one database) started together on 6 runs to a local "
    "archive, Splunk (ack) and Datadog: both exit 0, each run exported by exactly one of them, "
    "every line at each receiver exactly once, one ledger row per run and sink, attempt 1",
)
def test_two_hosts_at_once_deliver_every_line_once(tmp_path: Path, pg_url: str,
                                                   receivers: dict[str, Any], record) -> None:
    logs = make_logs(tmp_path / "logs", runs=6, lines_per_run=2000)
    configs = [host(tmp_path, name, pg_url, receivers) for name in ("a", "b")]
    processes = [subprocess.Popen([EXE, "export", "-c", str(c)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for c in configs]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert sum(exported(out) for out, _ in outputs) == 6  # each run by exactly one host
    record("runs exported per host: " + ", ".join(str(exported(out)) for out, _ in outputs))
    assert check_archive(fsspec.filesystem("file"), str(tmp_path / "archive"), logs, "txt") == []
    for receiver in receivers.values():
        assert duplicated(receiver, logs) == set()
    recorded = deliveries(pg_url)
    assert len(recorded) == 18
    assert {(status, attempts) for _, _, status, _, attempts, _ in recorded} == {("delivered", 1)}
    shown = subprocess.run([EXE, "ledger", "show", "-c", str(configs[1]), "--json"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and len(json.loads(shown.stdout)) == 18


@pytest.mark.scenario(
    "a host SIGKILLed mid-run, PostgreSQL ledger (lease 2 s)",
    "of two exports sharing the ledger, one is killed while it holds a run an aggregator has "
    "part of; after its lease the next export takes the run over: the archive holds every run "
    "once byte for byte, every line reaches each receiver, at most max_in_flight batches per "
    "run being delivered are resent",
)
def test_a_killed_host_s_runs_are_finished_after_its_lease(tmp_path: Path, pg_url: str,
                                                          receivers: dict[str, Any],
                                                          record) -> None:
    logs = make_logs(tmp_path / "logs", runs=4, lines_per_run=6000)
    victim, other = (host(tmp_path, name, pg_url, receivers, lease=2) for name in ("a", "b"))
    killed = start_export(victim)
    survivor = start_export(other)
    wait_mid_run(killed, pg_url)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    out, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, out + err
    wait_leases_out(pg_url, killed.pid)
    after = run_export(other)  # the next export takes the killed one's runs over
    assert after.returncode == 0, after.stdout + after.stderr
    assert check_archive(fsspec.filesystem("file"), str(tmp_path / "archive"), logs, "txt") == []
    for name, receiver in receivers.items():
        # Resent: only what the killed export had in flight (max_in_flight batches per run).
        twice = len(duplicated(receiver, logs))
        assert twice <= MAX_IN_FLIGHT * 2 * BATCH
        record(f"{name}: {twice} events twice (bound {MAX_IN_FLIGHT * 2 * BATCH})")
    assert {row[2] for row in deliveries(pg_url)} == {"delivered"}


@pytest.mark.scenario(
    "a host paused past its lease (SIGSTOP), PostgreSQL ledger (lease 2 s)",
    "another export takes the paused one's run over and delivers it; after SIGCONT the paused "
    "export writes nothing to the ledger (rows unchanged), exits 4 with the run lease_lost and "
    "no traceback; the archive holds every run once, every line reaches each receiver",
)
def test_a_paused_owner_records_no_second_delivery(tmp_path: Path, pg_url: str,
                                                   receivers: dict[str, Any], record) -> None:
    logs = make_logs(tmp_path / "logs", runs=2, lines_per_run=6000)
    paused_cfg, other = (host(tmp_path, name, pg_url, receivers, lease=2, workers=1)
                         for name in ("a", "b"))
    paused = start_export(paused_cfg)
    try:
        wait_mid_run(paused, pg_url)
        paused.send_signal(signal.SIGSTOP)
        wait_leases_out(pg_url, paused.pid)
        takeover = run_export(other)
        assert takeover.returncode == 0, takeover.stdout + takeover.stderr
        settled = deliveries(pg_url)
        assert {row[2] for row in settled} == {"delivered"}
    finally:
        paused.send_signal(signal.SIGCONT)
    out, err = paused.communicate(timeout=120)
    assert paused.returncode == ExitCode.LEASE_LOST == 4, out + err
    assert "lease lost (taken over by another export) 1" in out
    assert "Traceback" not in err
    assert deliveries(pg_url) == settled  # not one write after it lost the claim
    assert check_archive(fsspec.filesystem("file"), str(tmp_path / "archive"), logs, "txt") == []
    for name, receiver in receivers.items():
        twice = len(duplicated(receiver, logs))
        assert twice <= MAX_IN_FLIGHT * BATCH
        record(f"{name}: {twice} events twice (bound {MAX_IN_FLIGHT * BATCH})")


def test_a_database_gone_mid_export_stops_it_fast_with_the_summary(
        tmp_path: Path, pg_url: str) -> None:
    """Before: every ledger call waited 60 s for the pool (4 min in all), then one error line
    and no summary. The proxy is cut when the export claims its second run (workers = 1)."""
    make_logs(tmp_path / "logs", runs=3, lines_per_run=10)
    proxy = CuttableProxy.to(pg_url, b"INSERT INTO claims", after=2)
    sinks = {"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                         "path": "{model_id}/{run_id}.{ext}"}}
    path = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs", sinks,
                        workers=1)
    url = proxy.url
    path.write_text(path.read_text().replace(
        "[logarchive]\n", f"[logarchive]\nledger = {json.dumps(url)}\n", 1))
    try:
        result = subprocess.run([EXE, "export", "-c", str(path)], capture_output=True,
                                text=True, timeout=100)  # was 241 s
    finally:
        proxy.close()
    assert result.returncode == ExitCode.FAILED, result.stdout + result.stderr
    # The first run's record is group-committed by the export loop while the worker claims
    # the second run: it is exported if its transaction won that race, else failed (archived,
    # not recorded: the next export records it), never reported exported without a record.
    done = exported(result.stdout)
    assert done in (0, 1) and f"failed {3 - done}" in result.stdout
    place = f"ledger postgresql://***@127.0.0.1:{proxy.port}/{proxy.database}"
    failed = [line for line in result.stdout.splitlines() if line.startswith("failed ")]
    assert len(failed) == 3 - done and all(place in line for line in failed), result.stdout
    assert any("not started, the ledger stopped answering: " in line for line in failed)
    assert "Traceback" not in result.stderr and "psycopg.pool" not in result.stderr


def test_a_stuck_object_lock_fails_the_run_at_that_sink_and_says_so(
        tmp_path: Path, pg_url: str) -> None:
    """A paused or cut-off writer's session keeps the object's advisory lock: the export that
    took its run over waited for it without a word, for hours after a split. Now it says it
    waits, gives up after 3 x lease_seconds, and the next export delivers."""
    logs = make_logs(tmp_path / "logs", runs=1, lines_per_run=10)
    sinks = {"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                         "path": "{model_id}/{run_id}.{ext}"}}
    path = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs", sinks)
    path.write_text(path.read_text().replace(
        "[logarchive]\n", f"[logarchive]\nledger = {json.dumps(pg_url)}\nlease_seconds = 1\n",
        1))
    [name] = logs
    key = int.from_bytes(hashlib.sha256(f"archive\0m/{name}.txt".encode()).digest()[:4], "big",
                         signed=True)
    with psycopg.connect(pg_url) as holder:  # the stuck writer, inside its transaction
        holder.execute("SELECT pg_advisory_xact_lock(%s::int4, %s::int4)",
                       (int.from_bytes(b"loga", "big"), key))
        stuck = run_export(path)
    assert stuck.returncode == ExitCode.FAILED, stuck.stdout + stuck.stderr
    assert "object_lock_wait" in stuck.stderr
    assert "held this object's lock for 3 s" in stuck.stdout + stuck.stderr
    after = run_export(path)
    assert after.returncode == 0, after.stdout + after.stderr
    assert check_archive(fsspec.filesystem("file"), str(tmp_path / "archive"), logs, "txt") == []


def test_a_run_that_failed_outranks_a_lease_lost_in_the_exit_status() -> None:
    """Exit 4 says "another export delivered it": wrong when a run of this export failed."""
    def result(run_id: str, status: RunStatus) -> RunResult:
        return RunResult("logs", RunRef("logs", {"run_id": run_id}), status)

    lost = ExportSummary(results=[result("a", RunStatus.LEASE_LOST),
                                  result("b", RunStatus.EXPORTED)])
    assert lost.exit_code == ExitCode.LEASE_LOST
    both = ExportSummary(results=[result("a", RunStatus.LEASE_LOST),
                                  result("b", RunStatus.FAILED)])
    assert both.exit_code == ExitCode.FAILED
    deferred = ExportSummary(results=[result("a", RunStatus.LEASE_LOST),
                                      result("b", RunStatus.DEFERRED)])
    assert deferred.exit_code == ExitCode.FAILED


def test_a_new_postgresql_ledger_warns_about_the_database_not_state_dir(
        tmp_path: Path, pg_url: str, receivers: dict[str, Any]) -> None:
    make_logs(tmp_path / "logs", runs=1, lines_per_run=5)
    path = host(tmp_path, "a", pg_url, receivers)
    result = run_export(path)
    assert result.returncode == 0, result.stdout + result.stderr
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert "new ledger at postgresql://***@/" in warning
    assert "if the ledger's database was lost" in warning and "state directory" not in warning
