"""The files source: discovery by glob and regex, readiness, any fsspec URL."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import structlog

import logarchive
from logarchive.base import Context, RuntimeSettings
from logarchive.plugins import default_registry
from logarchive.testing.sources import SourceCase, SourceKit
from logarchive_files import FilesConfig, FilesSource


def make_source(settings: RuntimeSettings | None = None, **config) -> FilesSource:
    context = Context("logs", structlog.get_logger(), threading.Event(),
                      settings or RuntimeSettings())
    return FilesSource("logs", FilesConfig(type="files", **config), context)


def test_discovered_through_its_entry_point() -> None:
    entry = default_registry().sources["files"]
    assert entry.cls is FilesSource and entry.distribution == "logarchive-files"


@pytest.mark.parametrize("storage", ["local", "memory", "s3"], indirect=True)
class TestFilesConformance(SourceKit):
    """The source kit over a folder (local, memory://, S3) of logs a few 4 KiB chunks long."""

    @pytest.fixture
    def source_case(self, storage) -> SourceCase:
        fs = storage.fs()
        root = fs._strip_protocol(storage.url).rstrip("/")
        logs = {}
        for model, run, lines in (("m1", "run-1", 400), ("m1", "run-2", 1), ("m2", "run-3", 90)):
            data = b"".join(f"2026-01-01T00:00:00Z [INFO] {run} line {i}\n".encode()
                            for i in range(lines))
            fs.makedirs(f"{root}/logs/{model}", exist_ok=True)
            fs.pipe(f"{root}/logs/{model}/{run}.log", data)
            logs[f"logs/model_id={model}/run_id={run}"] = data
        source = make_source(RuntimeSettings(chunk_size=4096), url=f"{storage.url}/logs",
                             storage_options=storage.storage_options,
                             fields=r"^(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$")
        return SourceCase(source, logs)

    def remove_run(self, case: SourceCase, run) -> None:
        case.source.fs.rm(run.locator)


def test_runs_and_fields_from_paths(tmp_path: Path) -> None:
    for name in ("m1/run-1.log", "m1/run-2.log", "m2/sub/run-3.log", "m2/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    source = make_source(url=str(tmp_path), fields=r"^(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$")
    runs = list(source.discover())
    assert [r.fields for r in runs] == [
        {"model_id": "m1", "run_id": "run-1"}, {"model_id": "m1", "run_id": "run-2"}]
    default = list(make_source(url=str(tmp_path)).discover())
    assert sorted(r.fields["run_id"] for r in default) == ["run-1", "run-2", "run-3"]
    assert all(r.status == "completed" and r.completed is not None for r in default)


def test_recently_modified_files_are_still_running(tmp_path: Path) -> None:
    (tmp_path / "old.log").write_text("done\n")
    old = time.time() - 3600
    os.utime(tmp_path / "old.log", (old, old))
    (tmp_path / "live.log").write_text("still writing\n")
    runs = {r.fields["run_id"]: r.status for r in
            make_source(url=str(tmp_path), min_age_seconds=600).discover()}
    assert runs == {"live": "running", "old": "completed"}
    config = logarchive.parse_config({
        "logarchive": {"state_dir": str(tmp_path / "state")},
        "sources": {"s": {"type": "files", "url": str(tmp_path), "min_age_seconds": 600}},
        "sinks": {"a": {"type": "fs", "url": str(tmp_path / "out")}},
    })
    summary = logarchive.export(config)
    assert summary.exported == 1 and summary.count("not_ready") == 1 and summary.exit_code == 0


def test_missing_folder_is_a_clear_discovery_error(tmp_path: Path) -> None:
    config = logarchive.parse_config({
        "logarchive": {"state_dir": str(tmp_path / "state")},
        "sources": {"s": {"type": "files", "url": str(tmp_path / "nope")}},
        "sinks": {"a": {"type": "fs", "url": str(tmp_path / "out")}},
    })
    summary = logarchive.export(config)
    assert summary.exit_code == 1 and summary.results == []
    assert summary.errors == [f"pipeline s: source s: folder {tmp_path / 'nope'} does not exist"]


@pytest.mark.parametrize("storage", ["s3", "gcs", "memory"], indirect=True)
def test_reads_logs_from_object_storage(storage, tmp_path: Path) -> None:
    fs = storage.fs()
    root = storage.url.split("://", 1)[1]
    payload = b"".join(f"2026-01-01T00:00:{i % 60:02d}Z [INFO] line {i}\n".encode()
                       for i in range(20000))
    fs.pipe(f"{root}/logs/m/run-9.log", payload)
    config = logarchive.parse_config({
        "logarchive": {"state_dir": str(tmp_path / "state"), "chunk_size": 65536},
        "sources": {"s": {"type": "files", "url": f"{storage.url}/logs",
                          "storage_options": storage.storage_options}},
        "sinks": {"a": {"type": "fs", "url": str(tmp_path / "out"), "path": "{run_id}.{ext}"}},
    })
    summary = logarchive.export(config)
    assert summary.exported == 1, summary.to_json()
    assert (tmp_path / "out" / "run-9.txt").read_bytes() == payload
