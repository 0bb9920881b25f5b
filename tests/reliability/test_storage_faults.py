"""Disk full, a sink that is down, a corrupt or lost ledger: clear errors, nothing lost."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from logarchive.testing.fixtures import s3_storage_options
from logarchive_testsupport.processes import (
    EXE, check_archive, make_logs, run_export, write_config,
)
from logarchive.testing.servers import free_port


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a real 'No space left on device' (needs root, as CI has here)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}): not root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def ledger_rows(state: Path) -> dict[str, str]:
    with sqlite3.connect(state / "ledger.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {f"{key}|{sink}": status for key, sink, status in
                db.execute("SELECT run_key, sink, status FROM deliveries")}


@pytest.mark.scenario(
    "disk full on the local archive",
    "a 2 MiB tmpfs archive receiving 4 runs of ~0.9 MiB: runs that do not fit fail with 'No "
    "space left on device', no partial object under a final name, nothing marked delivered that "
    "is not, the next export (space freed) delivers exactly the missing runs",
)
def test_disk_full_on_archive(tmp_path: Path, small_disk: Path, record) -> None:
    logs = make_logs(tmp_path / "logs", runs=4, lines_per_run=12000)
    config = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs",
                          {"disk": {"type": "fs", "url": str(small_disk / "archive"),
                                    "path": "{model_id}/{run_id}.{ext}"}}, workers=1)
    first = run_export(config)
    assert first.returncode == 1, first.stdout
    assert "No space left on device" in first.stdout
    fs = fsspec.filesystem("file")
    stored = [p for p in fs.find(str(small_disk)) if not p.endswith(".manifest.json")]
    assert not [p for p in stored if p.rsplit("/", 1)[-1].startswith(".")], "temp file left"
    delivered = {k for k, v in ledger_rows(tmp_path / "state").items() if v == "delivered"}
    for obj in stored:  # what the ledger calls delivered is exactly what is complete on disk
        run_id = obj.rsplit("/", 1)[-1].split(".")[0]
        assert any(run_id in key for key in delivered)
        assert fs.cat(obj) == logs[run_id]
    assert len(delivered) == len(stored) < 4
    record(f"{len(stored)} of 4 runs fit; {4 - len(stored)} failed with ENOSPC")
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    second = run_export(config)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"exported {4 - len(stored)} run(s), skipped {len(stored)}" in second.stdout
    assert check_archive(fs, str(small_disk / "archive"), logs, "txt") == []


@pytest.mark.scenario(
    "disk full on the state directory",
    "the ledger's disk fills up: a clear error naming the ledger, exit non-zero, the ledger "
    "still passes integrity_check, and no run is marked delivered that is not; after freeing "
    "space the next export completes",
)
def test_disk_full_on_state_dir(tmp_path: Path, small_disk: Path) -> None:
    logs = make_logs(tmp_path / "logs", runs=3, lines_per_run=200)
    state = small_disk / "state"
    config = write_config(tmp_path / "c.toml", state, tmp_path / "logs",
                          {"a": {"type": "fs", "url": str(tmp_path / "archive"),
                                 "path": "{model_id}/{run_id}.{ext}"}}, workers=1)
    assert run_export(config, "--run", "run-0").returncode == 0
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as handle:  # take every free byte
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    result = run_export(config)
    assert result.returncode != 0
    assert "ledger" in (result.stdout + result.stderr).lower()
    assert "Traceback" not in result.stderr
    filler.unlink()
    rows = ledger_rows(state)
    delivered = sorted(k.split("run_id=")[1].split("|")[0] for k, v in rows.items()
                       if v == "delivered")
    assert "run-0" in delivered
    for run_id in delivered:
        assert (tmp_path / "archive" / "m" / f"{run_id}.txt").read_bytes() == logs[run_id]
    again = run_export(config)
    assert again.returncode == 0, again.stdout + again.stderr
    assert check_archive(fsspec.filesystem("file"), str(tmp_path / "archive"), logs, "txt") == []


@pytest.mark.scenario(
    "S3 sink down for the whole export (connection refused)",
    "every run fails with a connection error after bounded retries, nothing is recorded as "
    "delivered, the next export (server up) delivers every run once",
)
def test_sink_down_for_the_whole_export(tmp_path: Path, s3: str) -> None:
    import boto3

    logs = make_logs(tmp_path / "logs", runs=3, lines_per_run=100)
    dead = f"http://127.0.0.1:{free_port()}"
    sink = {"type": "fs", "url": "s3://down/a", "path": "{model_id}/{run_id}.{ext}",
            "storage_options": {**s3_storage_options(dead),
                                "config_kwargs": {"retries": {"max_attempts": 2}}}}
    config = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs",
                          {"s3": sink})
    down = run_export(config)
    assert down.returncode == 1
    assert "failed 3" in down.stdout and "connect" in down.stdout.lower()
    assert not [v for v in ledger_rows(tmp_path / "state").values() if v == "delivered"]
    boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="down")
    sink["storage_options"] = s3_storage_options(s3)
    write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs", {"s3": sink})
    up = run_export(config)
    assert up.returncode == 0 and "exported 3 run(s)" in up.stdout
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **s3_storage_options(s3))
    assert check_archive(fs, "down/a", logs, "txt") == []


@pytest.mark.scenario(
    "corrupt ledger",
    "a ledger file overwritten with garbage: export refuses to run (exit 1) with a message naming "
    "the file and `logarchive ledger rebuild`; nothing is delivered; after rebuild from the "
    "manifests the next export delivers nothing twice",
)
def test_corrupt_ledger_is_a_clear_error_then_rebuild(tmp_path: Path) -> None:
    make_logs(tmp_path / "logs", runs=3, lines_per_run=50)
    config = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs",
                          {"a": {"type": "fs", "url": str(tmp_path / "archive"),
                                 "path": "{model_id}/{run_id}.{ext}"}})
    assert run_export(config).returncode == 0
    ledger = tmp_path / "state" / "ledger.sqlite3"
    for extra in ("-wal", "-shm"):
        Path(f"{ledger}{extra}").unlink(missing_ok=True)
    ledger.write_bytes(b"this is not a database" * 100)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "archive").rglob("*")}
    broken = run_export(config)
    assert broken.returncode == 1
    assert "ledger" in broken.stderr and "ledger rebuild" in broken.stderr
    assert "integrity check says it is corrupt" in broken.stderr  # only then: move it away
    assert "Traceback" not in broken.stderr
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "archive").rglob("*")} == before
    ledger.rename(tmp_path / "ledger.corrupt")
    rebuilt = subprocess.run([EXE, "ledger", "rebuild", "-c", str(config)],
                             capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    again = run_export(config)
    assert again.returncode == 0 and "exported 0 run(s), skipped 3" in again.stdout


@pytest.mark.scenario(
    "lost ledger with an aggregator sink",
    "with the state directory gone, an export that would re-deliver to a record sink says so "
    "(warning on stderr and in --json), it is never silent",
)
def test_lost_ledger_with_record_sink_is_never_silent(tmp_path: Path) -> None:
    make_logs(tmp_path / "logs", runs=1, lines_per_run=5)
    config = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs", {
        "splunk": {"type": "splunk", "url": f"http://127.0.0.1:{free_port()}",
                   "token": "00000000-0000-0000-0000-000000000000"},
    })
    result = subprocess.run([EXE, "export", "-c", str(config), "--dry-run", "--json"],
                            capture_output=True, text=True)
    if "unknown sink type 'splunk'" in result.stderr:
        pytest.skip("the splunk plugin is not installed")
    assert "new ledger" in result.stderr and "splunk" in result.stderr
    import json

    assert any("delivered to splunk" in w for w in json.loads(result.stdout)["warnings"])


@pytest.mark.scenario(
    "Splunk and Datadog down for the whole export (connection refused)",
    "both aggregator sinks point at closed ports: the first run to use up its retries gives each "
    "sink up (one message), the other run stays pending there (deferred), nothing "
    "is recorded as delivered (no accepted line either), the archive sink still delivers; the "
    "next export with the receivers up delivers every line exactly once",
)
def test_aggregators_down_for_the_whole_export(tmp_path: Path) -> None:
    splunk = pytest.importorskip("logarchive_splunk.testing")
    datadog = pytest.importorskip("logarchive_datadog.testing")
    from collections import Counter

    make_logs(tmp_path / "logs", runs=2, lines_per_run=300)
    fast = {"http": {"retry": {"backoff_initial": 0.01, "backoff_max": 0.02, "max_retries": 2}}}

    def sinks(hec_url: str, intake_url: str) -> dict:
        return {
            "archive": {"type": "fs", "url": str(tmp_path / "archive"),
                        "path": "{model_id}/{run_id}.{ext}"},
            "splunk": {"type": "splunk", "url": hec_url, "token": splunk.TOKEN, **fast},
            "datadog": {"type": "datadog", "url": intake_url, "api_key": datadog.API_KEY,
                        **fast},
        }

    config = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs",
                          sinks(f"http://127.0.0.1:{free_port()}",
                                f"http://127.0.0.1:{free_port()}"))
    down = run_export(config)
    assert down.returncode == 1, down.stdout
    with sqlite3.connect(tmp_path / "state" / "ledger.sqlite3") as db:
        rows = [(sink, status, accepted) for sink, status, accepted in
                db.execute("SELECT sink, status, accepted FROM deliveries")]
    for name in ("splunk", "datadog"):
        # One run used up its retries and gave the sink up; the other stays pending: deferred,
        # its ledger row as it was (none, or in_progress when it had started meanwhile).
        states = sorted(st for s, st, _ in rows if s == name)
        assert states in (["failed"], ["failed", "in_progress"]), (name, rows)
        assert sum("sink_given_up" in line and f'"{name}"' in line
                   for line in down.stderr.splitlines()) == 1
    assert all(accepted == 0 for sink, _, accepted in rows if sink != "archive")
    assert {st for s, st, _ in rows if s == "archive"} == {"delivered"}
    hec, intake = splunk.HecReceiver().start(), datadog.IntakeReceiver().start()
    try:
        write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs",
                     sinks(hec.url, intake.url))
        up = run_export(config)
        assert up.returncode == 0, up.stdout + up.stderr
        for receiver in (hec, intake):
            counts = Counter(e.event_id for e in receiver.events())
            assert len(counts) == 600 and set(counts.values()) == {1}
    finally:
        hec.stop()
        intake.stop()
