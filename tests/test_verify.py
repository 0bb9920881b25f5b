"""`logarchive verify`: objects re-read and checked against their manifests, on local, S3 and
GCS archives; every kind of mismatch found and reported, exit 1."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import logarchive
from logarchive import parse_config
from logarchive.cli import main
from logarchive.ledger import SQLiteLedger
from logarchive.pipeline import open_sink
from logarchive_testsupport.archives import archive_config, make_runs, write_config
from logarchive.testing.fixtures import Bucket
from logarchive.verify import verify

AGES = {"mdl-a/r01": 1, "mdl-a/r02": 2, "mdl-b/r01": 3, "mdl-b/r02": 4}


def setup_archive(tmp_path: Path, storage: Bucket, **sink: Any) -> logarchive.Config:
    make_runs(tmp_path / "logs", AGES)
    url = f"{storage.url}/archive" if "://" in storage.url else storage.url
    config = parse_config(archive_config(tmp_path, url, storage_options=storage.storage_options,
                                         sink=sink), base_dir=tmp_path)
    assert logarchive.export(config).exported == len(AGES)
    return config


@pytest.mark.parametrize("storage", ["local", "s3", "gcs"], indirect=True)
def test_verify_finds_every_kind_of_mismatch(tmp_path: Path, storage: Bucket) -> None:
    config = setup_archive(tmp_path, storage, format="ndjson", compression="gzip")
    sink = open_sink(config, "archive")
    ledger = SQLiteLedger(tmp_path / "state")
    clean = verify(sink, ledger=ledger)
    assert clean.passed and (clean.objects, clean.checked, clean.ok) == (4, 4, 4)

    def put(path: str, data: bytes) -> None:
        writer = sink.open_object(path)
        writer.write(data)
        writer.commit()

    # corrupt: same size, one byte flipped; another one truncated
    with sink.read("training/mdl-a/r01.ndjson.gz") as chunks:
        data = bytearray(b"".join(chunks))
    data[-5] ^= 0xFF
    put("training/mdl-a/r01.ndjson.gz", bytes(data))
    put("training/mdl-a/r02.ndjson.gz", bytes(data[:10]))
    # orphan manifest: its object is gone
    sink.delete("training/mdl-b/r01.ndjson.gz")
    # missing: object and manifest gone, the ledger says delivered
    sink.delete("training/mdl-b/r02.ndjson.gz")
    sink.delete("training/mdl-b/r02.ndjson.gz.manifest.json")
    # orphan object: nothing describes it; and an unreadable manifest
    put("training/stray.bin", b"who wrote this")
    put("training/mdl-c/r09.txt.manifest.json", b"{not json")
    if hasattr(sink.fs, "invalidate_cache"):
        sink.fs.invalidate_cache()

    report = verify(sink, ledger=ledger)
    found = {(f.kind, f.path) for f in report.findings}
    assert found == {
        ("corrupt", "training/mdl-a/r01.ndjson.gz"),
        ("corrupt", "training/mdl-a/r02.ndjson.gz"),
        ("orphan_manifest", "training/mdl-b/r01.ndjson.gz.manifest.json"),
        ("missing", sink.describe("training/mdl-b/r02.ndjson.gz")),
        ("orphan_object", "training/stray.bin"),
        ("corrupt", "training/mdl-c/r09.txt.manifest.json"),
    }
    details = {f.path: f.detail for f in report.findings}
    assert "sha256" in details["training/mdl-a/r01.ndjson.gz"]
    assert "size 10" in details["training/mdl-a/r02.ndjson.gz"]
    assert "unreadable manifest" in details["training/mdl-c/r09.txt.manifest.json"]
    assert not report.passed and report.by_kind() == {
        "missing": 1, "corrupt": 3, "orphan_manifest": 1, "orphan_object": 1}


def test_verify_cli_exit_codes_json_and_sample(tmp_path: Path) -> None:
    make_runs(tmp_path / "logs", AGES)
    path = write_config(tmp_path / "logarchive.toml",
                        archive_config(tmp_path, str(tmp_path / "archive")))
    assert logarchive.export(logarchive.load_config(path)).exit_code == 0
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", "-c", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "ok: 4 object(s) with a manifest, 4 re-read, 4 intact" in ok.stdout
    sampled = runner.invoke(main, ["verify", "-c", str(path), "--sample", "2", "--json"])
    doc = json.loads(sampled.stdout)
    assert sampled.exit_code == 0 and doc["passed"] is True
    assert (doc["sinks"][0]["objects"], doc["sinks"][0]["checked"]) == (4, 2)

    (tmp_path / "archive/training/mdl-a/r01.txt").write_bytes(b"tampered\n")
    bad = runner.invoke(main, ["verify", "-c", str(path), "--json"])
    assert bad.exit_code == 1
    doc = json.loads(bad.stdout)
    assert doc["passed"] is False
    assert doc["sinks"][0]["findings"] == [{
        "kind": "corrupt", "path": "training/mdl-a/r01.txt",
        "detail": doc["sinks"][0]["findings"][0]["detail"]}]
    text = runner.invoke(main, ["verify", "-c", str(path), "--sink", "archive"])
    assert text.exit_code == 1 and "MISMATCH" in text.stdout and "CORRUPT" in text.stdout
    # A sample of 1 re-reads one object; the listing checks stay complete.
    (tmp_path / "archive/training/mdl-b/r01.txt").unlink()
    sink = open_sink(logarchive.load_config(path), "archive")
    report = verify(sink, sample=1, rng=random.Random(7))
    assert report.checked == 1
    assert ("orphan_manifest", "training/mdl-b/r01.txt.manifest.json") in {
        (f.kind, f.path) for f in report.findings}


def test_verify_does_not_report_what_retention_deleted(tmp_path: Path) -> None:
    make_runs(tmp_path / "logs", {"mdl-a/r01": 500, "mdl-a/r02": 1})
    document = archive_config(tmp_path, str(tmp_path / "archive"),
                              sink={"retention": {"max_age_days": 100}})
    path = write_config(tmp_path / "logarchive.toml", document)
    assert logarchive.export(logarchive.load_config(path)).exit_code == 0
    runner = CliRunner()
    assert runner.invoke(main, ["retention", "apply", "-c", str(path)]).exit_code == 0
    result = runner.invoke(main, ["verify", "-c", str(path)])
    assert result.exit_code == 0, result.stdout
    assert "1 object(s) with a manifest" in result.stdout


def test_manifest_records_the_declared_size_and_verify_checks_it(tmp_path: Path) -> None:
    """The files source declares each log's size (its listing): the manifest records it, and a
    manifest whose source bytes differ from the declared size is reported from the manifest
    alone (a truncation an older logarchive could have committed)."""
    make_runs(tmp_path / "logs", {"mdl-a/r01": 1})
    config = parse_config(archive_config(tmp_path, str(tmp_path / "archive")), base_dir=tmp_path)
    assert logarchive.export(config).exported == 1
    sink = open_sink(config, "archive")
    path = "training/mdl-a/r01.txt.manifest.json"
    with sink.read(path) as chunks:
        manifest = json.loads(b"".join(chunks))
    size = (tmp_path / "logs/mdl-a/r01.log").stat().st_size
    assert manifest["source_declared"] == {"size": size}
    assert verify(sink).passed
    manifest["source_declared"]["size"] = size + 1000
    writer = sink.open_object(path)
    writer.write(json.dumps(manifest).encode())
    writer.commit()
    report = verify(sink)
    assert not report.passed
    assert [f.kind for f in report.findings] == ["corrupt"]
    assert f"declared {size + 1000} bytes" in report.findings[0].detail
