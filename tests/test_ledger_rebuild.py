"""`logarchive ledger show` and `ledger rebuild`: after the state directory (or the ledger's
database) is lost, the ledger comes back from the manifests and the next export delivers nothing
twice. On both ledger backends."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import logarchive
from logarchive.cli import main
import psycopg

from logarchive.ledger import existing_ledger
from logarchive_testsupport.archives import archive_config, make_runs, write_config
from logarchive.testing.fixtures import Bucket

AGES = {"mdl-a/r01": 1, "mdl-a/r02": 2, "mdl-b/r01": 3}


def two_sink_config(tmp_path: Path, storage: Bucket, ledger: str | None = None) -> Path:
    make_runs(tmp_path / "logs", AGES)
    url = f"{storage.url}/archive" if "://" in storage.url else storage.url
    document = archive_config(tmp_path, url, storage_options=storage.storage_options)
    if ledger:
        document["logarchive"]["ledger"] = ledger
    document["sinks"]["records"] = {
        "type": "fs", "url": str(tmp_path / "records"), "format": "ndjson",
        "compression": "zstd", "path": "{model_id}/{completed:%Y}/{run_id}.{ext}",
    }
    return write_config(tmp_path / "logarchive.toml", document)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest) -> str | None:
    """None: the SQLite ledger in state_dir; else a new PostgreSQL database's URL."""
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else None


def snapshot(path: Path) -> list[tuple[Any, ...]]:
    ledger = existing_ledger(logarchive.load_config(path))
    assert ledger is not None
    with contextlib.closing(ledger):
        return [(d.run_key, d.sink, d.status, d.object, d.sha256, d.size, d.lines, d.fields,
                 d.source) for d in ledger.deliveries()]


def events(path: Path) -> list[str]:
    ledger = existing_ledger(logarchive.load_config(path))
    assert ledger is not None
    with contextlib.closing(ledger):
        return [e["kind"] for e in ledger.events()]


def lose_ledger(tmp_path: Path, ledger_url: str | None) -> None:
    """The state directory is lost (and the ledger's database emptied, when there is one)."""
    shutil.rmtree(tmp_path / "state", ignore_errors=True)
    if ledger_url:
        with psycopg.connect(ledger_url) as conn:
            conn.execute("DROP SCHEMA logarchive CASCADE")


@pytest.mark.parametrize("storage,ledger_url", [
    ("local", "sqlite"), ("s3", "sqlite"), ("gcs", "sqlite"), ("local", "postgresql")],
    indirect=True)
def test_rebuild_restores_deliveries_and_nothing_is_delivered_twice(
        tmp_path: Path, storage: Bucket, ledger_url: str | None) -> None:
    path = two_sink_config(tmp_path, storage, ledger_url)
    config = logarchive.load_config(path)
    assert logarchive.export(config).exported == 3
    before = snapshot(path)
    assert len(before) == 6
    runner = CliRunner()
    shown = runner.invoke(main, ["ledger", "show", "-c", str(path), "--json"])
    assert shown.exit_code == 0 and len(json.loads(shown.stdout)) == 6

    lose_ledger(tmp_path, ledger_url)
    gone = runner.invoke(main, ["ledger", "show", "-c", str(path)])
    assert gone.exit_code == 0 and "no ledger" in gone.stderr
    rebuilt = runner.invoke(main, ["ledger", "rebuild", "-c", str(path)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "sink archive" in rebuilt.stdout and "restored 3" in rebuilt.stdout
    assert "sink records" in rebuilt.stdout
    assert snapshot(path) == before

    again = logarchive.export(logarchive.load_config(path))
    assert (again.exported, again.skipped, again.failed) == (0, 3, 0)
    # Rebuilding twice changes nothing.
    twice = runner.invoke(main, ["ledger", "rebuild", "-c", str(path), "--json"])
    doc = json.loads(twice.stdout)
    assert [(s["sink"], s["restored"], s["unchanged"]) for s in doc["sinks"]] == [
        ("archive", 0, 3), ("records", 0, 3)]


def test_rebuild_skips_manifests_without_objects(tmp_path: Path, ledger_url: str | None) -> None:
    path = two_sink_config(tmp_path, Bucket(str(tmp_path / "archive"), "", {}, ""), ledger_url)
    assert logarchive.export(logarchive.load_config(path)).exported == 3
    (tmp_path / "archive/training/mdl-a/r02.txt").unlink()
    (tmp_path / "archive/training/junk.txt.manifest.json").write_text("[]")
    lose_ledger(tmp_path, ledger_url)
    result = CliRunner().invoke(main, ["ledger", "rebuild", "-c", str(path), "--sink", "archive"])
    assert result.exit_code == 0
    assert "restored 2" in result.stdout and "skipped 2" in result.stdout
    assert "its object is not there" in result.stdout
    assert events(path) == ["ledger_rebuilt"]
    # The run whose object is gone is delivered again to that sink, and only to that sink.
    again = logarchive.export(logarchive.load_config(path))
    exported = [r for r in again.results if r.status == "exported"]
    assert [(r.run.key, r.sinks) for r in exported] == [
        ("training/model_id=mdl-a/run_id=r01", {"records": "delivered"}),
        ("training/model_id=mdl-a/run_id=r02", {"archive": "delivered", "records": "delivered"}),
        ("training/model_id=mdl-b/run_id=r01", {"records": "delivered"}),
    ]
