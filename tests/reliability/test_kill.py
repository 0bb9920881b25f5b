"""SIGKILL and SIGTERM of a real `logarchive export` process, then run again."""

from __future__ import annotations

import os
import random
from collections import Counter
import signal
import time
import uuid
from pathlib import Path

import fsspec
import pytest

from logarchive.storage import filesystem
from logarchive.testing.fixtures import gcs_storage_options, s3_storage_options
from logarchive_testsupport.processes import (
    check_archive, kill_after, ledger_statuses, make_logs, run_export, start_export,
    write_config,
)

SWEEPS = int(os.environ.get("LOGARCHIVE_KILL_SWEEPS", "4"))


def sinks_for(tmp: Path, s3: str, gcs: str, tag: str) -> tuple[dict, list]:
    """An fs sink on local, S3 and GCS; returns the config tables and (fs, root, format)."""
    import boto3

    bucket = f"kill-{tag}"
    boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    gcs_fs = filesystem("gs", skip_instance_cache=True, **gcs_storage_options(gcs))
    gcs_fs.mkdir(bucket)
    sinks = {
        "local": {"type": "fs", "url": str(tmp / "local"), "path": "{model_id}/{run_id}.{ext}"},
        "s3": {"type": "fs", "url": f"s3://{bucket}/a", "format": "ndjson",
               "compression": "gzip", "storage_options": s3_storage_options(s3),
               "path": "{model_id}/{run_id}.{ext}"},
        "gcs": {"type": "fs", "url": f"gs://{bucket}/a", "compression": "zstd",
                "storage_options": gcs_storage_options(gcs), "path": "{model_id}/{run_id}.{ext}"},
    }
    checks = [
        (fsspec.filesystem("file"), str(tmp / "local"), "txt"),
        (fsspec.filesystem("s3", skip_instance_cache=True, **s3_storage_options(s3)),
         f"{bucket}/a", "ndjson"),
        (gcs_fs, f"{bucket}/a", "txt"),
    ]
    return sinks, checks


def aggregators() -> tuple[dict, list]:
    """Splunk (with indexer acknowledgement) and Datadog receivers on loopback, when their
    plugins are installed; returns the sink tables and the receivers."""
    try:
        from logarchive_datadog.testing import API_KEY, IntakeReceiver
        from logarchive_splunk.testing import TOKEN, HecReceiver
    except ImportError:
        return {}, []
    hec, intake = HecReceiver(ack=True).start(), IntakeReceiver().start()
    fast = {"http": {"retry": {"backoff_initial": 0.01, "backoff_max": 0.05}},
            "batch_max_events": 200}
    return {
        "splunk": {"type": "splunk", "url": hec.url, "token": TOKEN, "ack": True,
                   "ack_poll_interval": 0.01, **fast},
        "datadog": {"type": "datadog", "url": intake.url, "api_key": API_KEY, **fast},
    }, [("splunk", hec), ("datadog", intake)]


def check_receiver(name: str, receiver, logs: dict[str, bytes], killed_requests: int,
                   workers: int) -> tuple[list[str], int]:
    """Every line at least once; duplicates only from requests the killed export had in flight
    (one per run being delivered, so at most `workers`), each carrying its event id."""
    from logarchive.batching import event_id

    expected = {event_id("logs", f"logs/model_id=m/run_id={run}", seq)
                for run, data in logs.items() for seq in range(1, data.count(b"\n") + 1)}
    events = receiver.events()
    counts = Counter(e.event_id for e in events)
    problems = []
    missing = expected - set(counts)
    if missing:
        problems.append(f"{name}: {len(missing)} lines missing")
    if None in counts or set(counts) - expected:
        problems.append(f"{name}: events without or with unknown ids")
    duplicated = {i for i, n in counts.items() if n > 1}
    if any(n > 2 for n in counts.values()):
        problems.append(f"{name}: an event arrived more than twice")
    if duplicated:
        owners = [r for r in receiver.accepted[:killed_requests]
                  if {e.event_id for e in r.events} & duplicated]
        if len(owners) > workers:
            problems.append(f"{name}: duplicates from {len(owners)} requests (> {workers})")
    return problems, len(duplicated)


@pytest.mark.scenario(
    "SIGKILL mid-export: fs on local + S3 + GCS, Splunk (ack) and Datadog",
    "random kill points during a 6-run export to 5 sinks, then a second export: every run "
    "archived exactly once per fs sink, bytes equal to the source, every object with its "
    "manifest, no partial object under a final name; each receiver holds every line at least "
    "once, duplicates only from the requests in flight at the kill (one per run being "
    "delivered), each with its deterministic event id",
)
def test_sigkill_at_random_points_then_rerun(tmp_path: Path, s3: str, gcs: str, record) -> None:
    rng = random.Random(int(os.environ.get("LOGARCHIVE_KILL_SEED", "20261123")))
    workers = 2
    logs = make_logs(tmp_path / "logs", runs=6, lines_per_run=15000)
    # Calibrate: how long a whole export takes here, so kill points fall inside it.
    sinks, _ = sinks_for(tmp_path / "calibrate", s3, gcs, uuid.uuid4().hex[:8])
    extra, receivers = aggregators()
    config = write_config(tmp_path / "calibrate.toml", tmp_path / "calibrate-state",
                          tmp_path / "logs", {**sinks, **extra}, workers=workers)
    started = time.monotonic()
    first = run_export(config)
    duration = time.monotonic() - started
    for _, receiver in receivers:
        receiver.stop()
    assert first.returncode == 0, first.stderr
    killed = 0
    points, duplicates = [], Counter()
    for sweep in range(SWEEPS):
        work = tmp_path / f"sweep-{sweep}"
        work.mkdir()
        sinks, checks = sinks_for(work, s3, gcs, uuid.uuid4().hex[:8])
        extra, receivers = aggregators()
        config = write_config(work / "c.toml", work / "state", tmp_path / "logs",
                              {**sinks, **extra}, workers=workers)
        point = rng.uniform(0.05, duration)
        process = start_export(config)
        try:
            if kill_after(process, point):
                killed += 1
                points.append(f"{point:.2f}")
            time.sleep(0.3)  # a request the killed process had on the wire is still answered
            in_flight = {name: len(r.accepted) for name, r in receivers}
            second = run_export(config)
            assert second.returncode == 0, second.stdout + second.stderr
            for fs, root, fmt in checks:
                assert check_archive(fs, root, logs, fmt) == [], (sweep, point, root)
            for name, receiver in receivers:
                problems, twice = check_receiver(name, receiver, logs, in_flight[name], workers)
                assert problems == [], (sweep, point)
                duplicates[name] += twice
            third = run_export(config)
            assert "exported 0 run(s), skipped 6" in third.stdout
        finally:
            for _, receiver in receivers:
                receiver.stop()
    record(f"{SWEEPS} sweeps, {killed} killed mid-export at {', '.join(points)} s "
           f"(full export {duration:.1f} s); events delivered twice in total: "
           + (", ".join(f"{k} {v}" for k, v in sorted(duplicates.items())) or "none"))
    assert killed >= max(1, SWEEPS // 2)


@pytest.mark.scenario(
    "SIGTERM or SIGHUP mid-export",
    "clean stop (SIGHUP is handled like SIGTERM): exit 143 (129), no partial object, the run "
    "under way recorded interrupted, next export delivers the rest exactly once",
)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_stops_cleanly(tmp_path: Path, record, sig: signal.Signals) -> None:
    logs = make_logs(tmp_path / "logs", runs=8, lines_per_run=30000)
    state = tmp_path / "state"
    config = write_config(tmp_path / "c.toml", state, tmp_path / "logs",
                          {"local": {"type": "fs", "url": str(tmp_path / "out"),
                                     "path": "{model_id}/{run_id}.{ext}", "format": "ndjson"}},
                          workers=1, chunk_size=4096)
    process = start_export(config)
    # Signal mid-export, not during start-up (a cold interpreter can take over a second to
    # import): a run archived and the next one under way, as the ledger says.
    deadline = time.monotonic() + 60
    while not {"delivered", "in_progress"} <= set(ledger_statuses(state)):
        assert process.poll() is None and time.monotonic() < deadline, "export never started"
        time.sleep(0.01)
    if process.poll() is not None:
        pytest.fail("export finished before it could be signalled; make the logs bigger")
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + sig, err
    assert f"received {sig.name}" in err and "Traceback" not in err
    fs = fsspec.filesystem("file")
    partial = [p for p in fs.find(str(tmp_path / "out")) if p.rsplit("/", 1)[-1].startswith(".")]
    assert partial == []
    assert "interrupted" in ledger_statuses(state)
    done = len(list((tmp_path / "out").rglob("*.manifest.json")))
    record(f"{done} of 8 runs complete at {sig.name}")
    again = run_export(config)
    assert again.returncode == 0
    assert check_archive(fs, str(tmp_path / "out"), logs, "ndjson") == []
    assert "exported 0 run(s), skipped 8" in run_export(config).stdout


KILLS = 5
MAX_IN_FLIGHT = 2


def settled(receivers, quiet: float = 0.5, limit: float = 15.0) -> None:
    """Wait until no receiver has accepted a new request for ``quiet`` seconds (at most
    ``limit``): what the killed process had on the wire is answered and counted in this kill's
    window, not the next one's (a fixed pause was too short on a loaded machine)."""
    deadline = time.monotonic() + limit
    last = [len(r.accepted) for _, r in receivers]
    calm_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = [len(r.accepted) for _, r in receivers]
        if now != last:
            last, calm_since = now, time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return


def resent_per_kill(receiver, marks: list[int]) -> list[int]:
    """Per kill, the requests the receiver accepted before it (since the previous one) whose
    events arrived again later: what that kill made the next export resend."""
    first_request: dict[str, int] = {}
    again: set[str] = set()
    for n, request in enumerate(receiver.accepted):
        for event in request.events:
            if event.event_id in first_request:
                again.add(event.event_id)
            else:
                first_request[event.event_id] = n
    resent = {first_request[i] for i in again}
    return [len([n for n in resent if start <= n < end])
            for start, end in zip([0, *marks], marks)]


@pytest.mark.scenario(
    f"{KILLS} SIGKILLs in one export of logs with blank lines, then a clean export",
    f"local archive, Splunk (ack) and Datadog, max_in_flight = {MAX_IN_FLIGHT}, 2 workers: "
    "every line (blank and whitespace-only ones as the sinks' READMEs say) reaches each "
    "receiver, none missing; per kill, at most max_in_flight batches per run being delivered "
    "are resent, per sink; the archive holds every run once, byte for byte",
)
def test_five_sigkills_then_clean_export(tmp_path: Path, record) -> None:
    extra, receivers = aggregators()
    if not receivers:
        pytest.skip("the splunk and datadog plugins are not installed")
    workers = 2
    logs = make_logs(tmp_path / "logs", runs=4, lines_per_run=12000, blank_every=9)
    for table in extra.values():
        table["max_in_flight"] = MAX_IN_FLIGHT
    sinks = {"local": {"type": "fs", "url": str(tmp_path / "out"),
                       "path": "{model_id}/{run_id}.{ext}"}, **extra}
    config = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs", sinks,
                          workers=workers)
    total = sum(data.count(b"\n") for data in logs.values()) // 200  # batches per sink
    rng = random.Random(int(os.environ.get("LOGARCHIVE_KILL_SEED", "20261201")))
    marks: dict[str, list[int]] = {name: [] for name, _ in receivers}
    kills = 0
    try:
        for _ in range(3 * KILLS):
            if kills == KILLS:
                break
            start = {name: len(r.accepted) for name, r in receivers}
            step = max(1, int(total * rng.uniform(0.04, 0.12)))
            process = start_export(config)
            while process.poll() is None and all(
                    len(r.accepted) - start[name] < step for name, r in receivers):
                time.sleep(0.005)
            if process.poll() is not None:
                continue  # finished before the kill point: nothing in flight to count
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            kills += 1
            settled(receivers)  # a request the killed process had on the wire is still answered
            for name, receiver in receivers:
                marks[name].append(len(receiver.accepted))
        clean = run_export(config)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "Traceback" not in clean.stderr
        assert check_archive(fsspec.filesystem("file"), str(tmp_path / "out"), logs, "txt") == []
        resent = {}
        for name, receiver in receivers:
            resent[name] = resent_per_kill(receiver, marks[name])
            # No line missing, ids as expected; the bound on duplicates is per kill, below.
            problems, _ = check_receiver(name, receiver, logs, 0, MAX_IN_FLIGHT * workers)
            assert problems == [], (problems, resent)
            assert all(n <= MAX_IN_FLIGHT * workers for n in resent[name]), resent
    finally:
        for _, receiver in receivers:
            receiver.stop()
    assert kills == KILLS
    record(f"{kills} kills; batches resent per kill: "
           + "; ".join(f"{k} {v}" for k, v in sorted(resent.items())))
