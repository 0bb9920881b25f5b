"""`logarchive ledger show` and `ledger rebuild`: after the state directory is lost, the ledger
comes back from the manifests and the next export delivers nothing twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import logarchive
from logarchive.cli import main
from logarchive.ledger import SQLiteLedger
from logarchive_testsupport.archives import archive_config, make_runs, write_config
from logarchive.testing.fixtures import Bucket

AGES = {"mdl-a/r01": 1, "mdl-a/r02": 2, "mdl-b/r01": 3}


def two_sink_config(tmp_path: Path, storage: Bucket) -> Path:
    make_runs(tmp_path / "logs", AGES)
    url = f"{storage.url}/archive" if "://" in storage.url else storage.url
    document = archive_config(tmp_path, url, storage_options=storage.storage_options)
    document["sinks"]["records"] = {
        "type": "fs", "url": str(tmp_path / "records"), "format": "ndjson",
        "compression": "zstd", "path": "{model_id}/{completed:%Y}/{run_id}.{ext}",
    }
    return write_config(tmp_path / "logarchive.toml", document)


def snapshot(tmp_path: Path) -> list[tuple[Any, ...]]:
    ledger = SQLiteLedger(tmp_path / "state")
    try:
        return [(d.run_key, d.sink, d.status, d.object, d.sha256, d.size, d.lines, d.fields,
                 d.source) for d in ledger.deliveries()]
    finally:
        ledger.close()


@pytest.mark.parametrize("storage", ["local", "s3", "gcs"], indirect=True)
def test_rebuild_restores_deliveries_and_nothing_is_delivered_twice(
        tmp_path: Path, storage: Bucket) -> None:
    path = two_sink_config(tmp_path, storage)
    config = logarchive.load_config(path)
    assert logarchive.export(config).exported == 3
    before = snapshot(tmp_path)
    assert len(before) == 6
    runner = CliRunner()
    shown = runner.invoke(main, ["ledger", "show", "-c", str(path), "--json"])
    assert shown.exit_code == 0 and len(json.loads(shown.stdout)) == 6

    shutil.rmtree(tmp_path / "state")
    gone = runner.invoke(main, ["ledger", "show", "-c", str(path)])
    assert gone.exit_code == 0 and "no ledger" in gone.stderr
    rebuilt = runner.invoke(main, ["ledger", "rebuild", "-c", str(path)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "sink archive" in rebuilt.stdout and "restored 3" in rebuilt.stdout
    assert "sink records" in rebuilt.stdout
    assert snapshot(tmp_path) == before

    again = logarchive.export(logarchive.load_config(path))
    assert (again.exported, again.skipped, again.failed) == (0, 3, 0)
    # Rebuilding twice changes nothing.
    twice = runner.invoke(main, ["ledger", "rebuild", "-c", str(path), "--json"])
    doc = json.loads(twice.stdout)
    assert [(s["sink"], s["restored"], s["unchanged"]) for s in doc["sinks"]] == [
        ("archive", 0, 3), ("records", 0, 3)]


def test_rebuild_skips_manifests_without_objects(tmp_path: Path) -> None:
    path = two_sink_config(tmp_path, Bucket(str(tmp_path / "archive"), "", {}, ""))
    assert logarchive.export(logarchive.load_config(path)).exported == 3
    (tmp_path / "archive/training/mdl-a/r02.txt").unlink()
    (tmp_path / "archive/training/junk.txt.manifest.json").write_text("[]")
    shutil.rmtree(tmp_path / "state")
    result = CliRunner().invoke(main, ["ledger", "rebuild", "-c", str(path), "--sink", "archive"])
    assert result.exit_code == 0
    assert "restored 2" in result.stdout and "skipped 2" in result.stdout
    assert "its object is not there" in result.stdout
    ledger = SQLiteLedger(tmp_path / "state")
    assert [e["kind"] for e in ledger.events()] == ["ledger_rebuilt"]
    ledger.close()
    # The run whose object is gone is delivered again to that sink, and only to that sink.
    again = logarchive.export(logarchive.load_config(path))
    exported = [r for r in again.results if r.status == "exported"]
    assert [(r.run.key, r.sinks) for r in exported] == [
        ("training/model_id=mdl-a/run_id=r01", {"records": "delivered"}),
        ("training/model_id=mdl-a/run_id=r02", {"archive": "delivered", "records": "delivered"}),
        ("training/model_id=mdl-b/run_id=r01", {"records": "delivered"}),
    ]
