"""The engine end to end with the files source and the fs sink (real files, real ledger)."""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from pathlib import Path

import sys
import threading
from contextlib import contextmanager

import pytest

import logarchive
from logarchive import parse_config
from logarchive.ledger import SQLiteLedger
from logarchive.plugin_api import RunRef, Source, SourceError, hookimpl
from logarchive.plugins import Registry

from logarchive_testsupport.workspace import base_config, write_logs

LOGS = {
    "mdl-a/run-1.log": b"2026-03-13T10:00:00.123Z [INFO] start\n2026-03-13T10:00:01Z [WARN] w\n",
    "mdl-a/run-2.log": b"line without timestamp\r\nlast line without newline",
    "mdl-b/run-3.log": b"bad \xff utf8\n",
}


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return write_logs(tmp_path / "logs", LOGS)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_export_archives_every_run_once_with_manifests(tmp_path: Path, logs: Path) -> None:
    config = parse_config(base_config(tmp_path, sinks={
        "txt": {"type": "fs", "url": str(tmp_path / "txt"),
                "path": "{source}/{model_id}/{run_id}.{ext}"},
        "nd": {"type": "fs", "url": str(tmp_path / "nd"), "format": "ndjson",
               "compression": "gzip", "path": "{model_id}/{run_id}.{ext}"},
    }))
    summary = logarchive.export(config)
    assert (summary.exported, summary.skipped, summary.failed, summary.exit_code) == (3, 0, 0, 0)
    assert summary.lines == 5 and summary.bytes == sum(len(v) for v in LOGS.values())
    for name, data in LOGS.items():
        model, run = name[:-4].split("/")
        stored = (tmp_path / "txt" / "logs" / model / f"{run}.txt").read_bytes()
        assert stored == data
        manifest = json.loads((tmp_path / "txt" / "logs" / model / f"{run}.txt.manifest.json")
                              .read_text())
        assert manifest["object"]["sha256"] == sha(data) == manifest["source_bytes"]["sha256"]
        assert manifest["object"]["size"] == len(data)
        assert manifest["run"]["fields"] == {"model_id": model, "run_id": run}
        assert manifest["format"] == "txt" and manifest["compression"] == "none"
        assert manifest["logarchive_version"] == logarchive.__version__
        packed = (tmp_path / "nd" / model / f"{run}.ndjson.gz").read_bytes()
        nd_manifest = json.loads((tmp_path / "nd" / model / f"{run}.ndjson.gz.manifest.json")
                                 .read_text())
        assert nd_manifest["object"]["sha256"] == sha(packed)
        assert nd_manifest["source_bytes"]["sha256"] == sha(data)
        records = [json.loads(x) for x in gzip.decompress(packed).splitlines()]
        assert len(records) == nd_manifest["records"] == nd_manifest["source_bytes"]["lines"]
        assert all(r["run_id"] == run and r["model_id"] == model and r["source"] == "logs"
                   for r in records)
    bad = json.loads((tmp_path / "txt/logs/mdl-b/run-3.txt.manifest.json").read_text())
    assert bad["source_bytes"]["invalid_utf8"] == 1

    again = logarchive.export(config)
    assert (again.exported, again.skipped, again.exit_code) == (0, 3, 0)


def test_force_redelivers_and_new_runs_are_picked_up(tmp_path: Path, logs: Path) -> None:
    config = parse_config(base_config(tmp_path))
    assert logarchive.export(config).exported == 3
    write_logs(logs, {"mdl-b/run-4.log": b"new\n"})
    second = logarchive.export(config)
    assert (second.exported, second.skipped) == (1, 3)
    assert logarchive.export(config, force=True).exported == 4


def test_a_failing_sink_does_not_stop_other_sinks_or_runs(tmp_path: Path, logs: Path) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the archive wants a folder")
    config = parse_config(base_config(tmp_path, sinks={
        "good": {"type": "fs", "url": str(tmp_path / "good")},
        "bad": {"type": "fs", "url": str(blocker)},
    }))
    summary = logarchive.export(config)
    assert summary.failed == 3 and summary.exit_code == 1
    assert all(r.sinks["good"] == "delivered" for r in summary.results)
    assert all(r.sinks["bad"].startswith("failed") for r in summary.results)
    assert len(list((tmp_path / "good").rglob("*.manifest.json"))) == 3
    assert not list(tmp_path.rglob("*.partial"))
    # The failed sink is retried by the next export; the delivered one is not redone.
    blocker.unlink()
    retry = logarchive.export(config)
    assert retry.exported == 3 and retry.exit_code == 0
    assert all(list(r.sinks) == ["bad"] for r in retry.results)


class BrokenStreamSource(Source):
    """A third-party-style source whose stream breaks after some bytes, for runs named "bad"."""

    type = "broken-stream"
    description = "test source"

    def discover(self):
        for run_id in ("good", "bad"):
            yield RunRef(self.name, {"run_id": run_id})

    @contextmanager
    def open(self, run):
        def chunks():
            yield b"first line\n"
            if run.fields["run_id"] == "bad" and not FIXED.is_set():
                raise SourceError("connection reset by peer")
            yield b"second line\n"
        yield chunks()


FIXED = threading.Event()


@hookimpl
def logarchive_register_sources(register):
    register(BrokenStreamSource)


def test_source_failure_leaves_no_object_and_is_retried(tmp_path: Path) -> None:
    registry = Registry()
    registry.load_entry_points()
    registry.register(sys.modules[__name__], name="test-broken")
    config = parse_config(base_config(tmp_path, source={"type": "broken-stream"}, sinks={
        "txt": {"type": "fs", "url": str(tmp_path / "txt"), "path": "{run_id}.{ext}"},
        "nd": {"type": "fs", "url": str(tmp_path / "nd"), "format": "ndjson",
               "path": "{run_id}.{ext}"},
    }), registry=registry)
    FIXED.clear()
    summary = logarchive.export(config)
    assert summary.exit_code == 1
    by_run = {r.run.fields["run_id"]: r for r in summary.results}
    assert by_run["good"].status == "exported" and by_run["bad"].status == "failed"
    assert "connection reset by peer" in by_run["bad"].error
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and "state" not in str(p)) \
        == ["good.ndjson", "good.ndjson.manifest.json", "good.txt", "good.txt.manifest.json"]
    FIXED.set()
    retry = logarchive.export(config)
    assert (retry.exported, retry.skipped, retry.exit_code) == (1, 1, 0)
    assert (tmp_path / "txt" / "bad.txt").read_bytes() == b"first line\nsecond line\n"


def test_run_selection_dry_run_and_since(tmp_path: Path, logs: Path) -> None:
    config = parse_config(base_config(tmp_path))
    dry = logarchive.export(config, dry_run=True)
    assert dry.exported == 3 and not (tmp_path / "archive").exists()
    assert "would export 3 run(s)" in dry.text()
    only = logarchive.export(config, runs=["run-2"])
    assert only.exported == 1 and only.results[0].run.fields["run_id"] == "run-2"
    by_field = logarchive.export(config, runs=["model_id=mdl-b"])
    assert [r.run.fields["run_id"] for r in by_field.results] == ["run-3"]
    from datetime import datetime, timedelta, timezone

    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert logarchive.export(config, since=future).results == []


def test_ledger_records_what_was_delivered_where(tmp_path: Path, logs: Path) -> None:
    config = parse_config(base_config(tmp_path))
    logarchive.export(config)
    ledger = SQLiteLedger(tmp_path / "state")
    rows = list(ledger.deliveries())
    ledger.close()
    assert len(rows) == 3 and {r.status for r in rows} == {"delivered"}
    row = next(r for r in rows if r.fields["run_id"] == "run-1")
    assert row.sha256 == sha(LOGS["mdl-a/run-1.log"]) and row.lines == 2
    assert row.object.endswith("archive/logs/mdl-a/run-1.txt")
    # WAL + FULL sync: another connection sees it at once.
    with sqlite3.connect(tmp_path / "state" / "ledger.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 3


def test_two_runs_mapped_to_one_object_is_an_error_not_an_overwrite(tmp_path: Path, logs: Path
                                                                   ) -> None:
    config = parse_config(base_config(tmp_path, sinks={
        "flat": {"type": "fs", "url": str(tmp_path / "flat"), "path": "{model_id}.{ext}"},
    }))
    summary = logarchive.export(config)
    assert summary.exported == 2 and summary.failed == 1
    failure = next(r for r in summary.results if r.status == "failed")
    assert "maps two runs to one object" in failure.error
    owner = json.loads((tmp_path / "flat" / "mdl-a.txt.manifest.json").read_text())["run"]["key"]
    assert (tmp_path / "flat" / "mdl-a.txt").read_bytes() == LOGS[
        f"mdl-a/{owner.rsplit('=', 1)[1]}.log"]


def test_immutable_same_bytes_is_a_noop_different_bytes_an_error(tmp_path: Path, logs: Path
                                                                ) -> None:
    config = parse_config(base_config(tmp_path, sinks={
        "vault": {"type": "fs", "url": str(tmp_path / "vault"), "immutable": True,
                  "path": "{model_id}/{run_id}.{ext}"},
    }))
    assert logarchive.export(config).exported == 3
    assert logarchive.export(config, force=True).exported == 3  # same content: no-op
    (logs / "mdl-a" / "run-1.log").write_bytes(b"rewritten history\n")
    changed = logarchive.export(config, force=True, runs=["run-1"])
    assert changed.failed == 1
    assert sha(LOGS["mdl-a/run-1.log"]) in changed.results[0].error
    assert sha(b"rewritten history\n") in changed.results[0].error
    assert (tmp_path / "vault/mdl-a/run-1.txt").read_bytes() == LOGS["mdl-a/run-1.log"]


@pytest.mark.parametrize("workers", [1, 4])
def test_workers_export_many_runs(tmp_path: Path, workers: int) -> None:
    write_logs(tmp_path / "logs", {f"m/run-{i}.log": f"line {i}\n".encode() * (i + 1)
                                   for i in range(25)})
    config = parse_config(base_config(tmp_path))
    summary = logarchive.export(config, workers=workers)
    assert summary.exported == 25
    assert sum(r.lines for r in summary.results) == sum(i + 1 for i in range(25))


def test_traversing_run_ids_stay_inside_the_sink_root(tmp_path: Path) -> None:
    write_logs(tmp_path / "logs", {"..%2f..%2fescape.log": b"x\n", "a/..log": b"y\n"})
    config = parse_config(base_config(tmp_path, source={
        "type": "files", "url": str(tmp_path / "logs"), "fields": r"^(?P<run_id>.+)\.log$",
    }, sinks={"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                          "path": "{run_id}/{run_id}.{ext}"}}))
    summary = logarchive.export(config)
    assert summary.exported == 2
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".txt", ".json"):
            assert (tmp_path / "archive") in path.parents


def test_summary_json_shape(tmp_path: Path, logs: Path) -> None:
    config = parse_config(base_config(tmp_path))
    doc = logarchive.export(config).to_json()
    assert {k: doc[k] for k in ("exported", "skipped", "failed", "exit_code")} == {
        "exported": 3, "skipped": 0, "failed": 0, "exit_code": 0}
    assert doc["runs"][0]["sinks"] == {"archive": "delivered"}


def test_statuses_and_exit_codes_are_the_shared_enums(tmp_path: Path, logs: Path) -> None:
    from logarchive.base import StopEvent
    from logarchive.status import ExitCode, RunStatus

    config = parse_config(base_config(tmp_path))
    summary = logarchive.export(config)
    assert summary.exit_code is ExitCode.OK
    assert {r.status for r in summary.results} == {RunStatus.EXPORTED}
    with sqlite3.connect(tmp_path / "state" / "ledger.sqlite3") as db:  # same strings as before
        assert db.execute("SELECT DISTINCT status FROM deliveries").fetchall() == [("delivered",)]
    (logs / "mdl-b" / "run-4.log").write_bytes(b"new\n")
    stop = StopEvent()
    stop.signal_number = 15  # what the CLI's handler sets
    stop.set()
    stopped = logarchive.export(config, stop=stop)
    assert stopped.exit_code is ExitCode.SIGTERM and stopped.exit_code == 143
    assert stopped.count(RunStatus.INTERRUPTED) == 1 and stopped.skipped == 3
    assert json.loads(json.dumps(stopped.to_json()))["exit_code"] == 143
    assert "interrupted 1" in stopped.text()
