"""SIGKILL and SIGTERM of a real `logarchive export` process, then run again."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from pathlib import Path

import fsspec
import pytest

from logarchive.testing.fixtures import gcs_storage_options, s3_storage_options

from logarchive.testing.processes import check_archive, kill_after, make_logs, run_export, start_export, write_config

SWEEPS = int(os.environ.get("LOGARCHIVE_KILL_SWEEPS", "4"))


def sinks_for(tmp: Path, s3: str, gcs: str, tag: str) -> tuple[dict, list]:
    """An fs sink on local, S3 and GCS; returns the config tables and (fs, root, format)."""
    import boto3
    import gcsfs

    bucket = f"kill-{tag}"
    boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    gcs_fs = gcsfs.GCSFileSystem(skip_instance_cache=True, **gcs_storage_options(gcs))
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


@pytest.mark.scenario(
    "SIGKILL mid-export, fs sink on local + S3 + GCS",
    "random kill points during a 6-run export to 3 sinks, then a second export: every run "
    "archived exactly once per sink, bytes equal to the source, every object with its manifest, "
    "no partial object under a final name, ledger says delivered",
)
def test_sigkill_at_random_points_then_rerun(tmp_path: Path, s3: str, gcs: str, record) -> None:
    rng = random.Random(int(os.environ.get("LOGARCHIVE_KILL_SEED", "20261123")))
    logs = make_logs(tmp_path / "logs", runs=6, lines_per_run=15000)
    # Calibrate: how long a whole export takes here, so kill points fall inside it.
    sinks, _ = sinks_for(tmp_path / "calibrate", s3, gcs, uuid.uuid4().hex[:8])
    config = write_config(tmp_path / "calibrate.toml", tmp_path / "calibrate-state",
                          tmp_path / "logs", sinks)
    started = time.monotonic()
    first = run_export(config)
    duration = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    killed = 0
    points = []
    for sweep in range(SWEEPS):
        work = tmp_path / f"sweep-{sweep}"
        work.mkdir()
        sinks, checks = sinks_for(work, s3, gcs, uuid.uuid4().hex[:8])
        config = write_config(work / "c.toml", work / "state", tmp_path / "logs", sinks)
        point = rng.uniform(0.05, duration)
        process = start_export(config)
        if kill_after(process, point):
            killed += 1
            points.append(f"{point:.2f}")
        second = run_export(config)
        assert second.returncode == 0, second.stdout + second.stderr
        for fs, root, fmt in checks:
            assert check_archive(fs, root, logs, fmt) == [], (sweep, point, root)
        third = run_export(config)
        assert "exported 0 run(s), skipped 6" in third.stdout
    record(f"{SWEEPS} sweeps, {killed} killed mid-export at {', '.join(points)} s "
           f"(full export {duration:.1f} s)")
    assert killed >= max(1, SWEEPS // 2)


@pytest.mark.scenario(
    "SIGTERM mid-export",
    "clean stop: exit 143, no partial object, interrupted runs recorded, next export delivers "
    "the rest exactly once",
)
def test_sigterm_stops_cleanly(tmp_path: Path, record) -> None:
    logs = make_logs(tmp_path / "logs", runs=8, lines_per_run=30000)
    config = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs",
                          {"local": {"type": "fs", "url": str(tmp_path / "out"),
                                     "path": "{model_id}/{run_id}.{ext}", "format": "ndjson"}},
                          workers=1, chunk_size=4096)
    process = start_export(config)
    time.sleep(0.8)
    if process.poll() is not None:
        pytest.fail("export finished before it could be signalled; make the logs bigger")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "received SIGTERM" in err
    fs = fsspec.filesystem("file")
    partial = [p for p in fs.find(str(tmp_path / "out")) if p.rsplit("/", 1)[-1].startswith(".")]
    assert partial == []
    done = len(list((tmp_path / "out").rglob("*.manifest.json")))
    record(f"{done} of 8 runs complete at SIGTERM")
    again = run_export(config)
    assert again.returncode == 0
    assert check_archive(fs, str(tmp_path / "out"), logs, "ndjson") == []
