"""Retention on generated archives: exact deleted sets for each rule combination, on local,
S3 (moto server) and GCS (emulator) archives, through the Python API and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import logarchive
from logarchive import parse_config
from logarchive.base import RetentionConfig
from logarchive.cli import main
from logarchive.ledger import SQLiteLedger
from logarchive.pipeline import open_sink
from logarchive.retention import apply, plan
from logarchive_testsupport.archives import (
    archive_config, archived_at_completion, make_runs, write_config,
)

AGES = {
    "mdl-a/r01": 10, "mdl-a/r02": 100, "mdl-a/r03": 200, "mdl-a/r04": 380, "mdl-a/r05": 500,
    "mdl-b/r01": 5, "mdl-b/r02": 450, "mdl-b/r03": 700,
}
ALL = {f"training/{name}.txt" for name in AGES}


def objs(*names: str) -> set[str]:
    return {f"training/{n}.txt" for n in names}


# (case, rules, deleted set, {path: protected_by} for selected-but-kept objects)
CASES: list[tuple[str, dict[str, Any], set[str], dict[str, str]]] = [
    ("age_only", {"max_age_days": 365},
     objs("mdl-a/r04", "mdl-a/r05", "mdl-b/r02", "mdl-b/r03"), {}),
    ("keep_last_only", {"keep_last": 2, "group_by": "{source}/{model_id}"},
     objs("mdl-a/r03", "mdl-a/r04", "mdl-a/r05", "mdl-b/r03"), {}),
    ("both", {"max_age_days": 365, "keep_last": 4, "group_by": "{source}/{model_id}"},
     objs("mdl-a/r05"),
     {"training/mdl-a/r04.txt": "keep_last", "training/mdl-b/r02.txt": "keep_last",
      "training/mdl-b/r03.txt": "keep_last"}),
    ("floor_beats_age", {"max_age_days": 150, "min_age_days": 400},
     objs("mdl-a/r05", "mdl-b/r02", "mdl-b/r03"),
     {"training/mdl-a/r03.txt": "min_age_days", "training/mdl-a/r04.txt": "min_age_days"}),
    ("floor_beats_keep_last", {"keep_last": 1, "group_by": "{model_id}", "min_age_days": 300},
     objs("mdl-a/r04", "mdl-a/r05", "mdl-b/r02", "mdl-b/r03"),
     {"training/mdl-a/r02.txt": "min_age_days", "training/mdl-a/r03.txt": "min_age_days"}),
    ("hold_beats_everything",
     {"max_age_days": 150, "keep_last": 0, "min_age_days": 250,
      "legal_hold": ["training/mdl-b/*", "*run_id=r05"]},
     objs("mdl-a/r04"),
     {"training/mdl-a/r03.txt": "min_age_days", "training/mdl-a/r05.txt": "legal_hold",
      "training/mdl-b/r02.txt": "legal_hold", "training/mdl-b/r03.txt": "legal_hold"}),
    ("hold_with_keep_last",
     {"keep_last": 1, "min_age_days": 1, "legal_hold": ["training/mdl-a/r0[45].txt"]},
     objs("mdl-a/r01", "mdl-a/r02", "mdl-a/r03", "mdl-b/r02", "mdl-b/r03"),
     {"training/mdl-a/r04.txt": "legal_hold", "training/mdl-a/r05.txt": "legal_hold"}),
    ("one_group", {"keep_last": 1}, ALL - objs("mdl-b/r01"), {}),
    ("group_per_model", {"keep_last": 1, "group_by": "{model_id}"},
     ALL - objs("mdl-a/r01", "mdl-b/r01"), {}),
    ("no_rules", {}, set(), {}),
]


def export_archive(tmp_path: Path, url: str, storage_options: dict[str, Any] | None = None,
                   retention: dict[str, Any] | None = None, **sink: Any) -> logarchive.Config:
    make_runs(tmp_path / "logs", AGES)
    document = archive_config(tmp_path, url, storage_options=storage_options,
                              sink={**sink, **({"retention": retention} if retention else {})})
    config = parse_config(document, base_dir=tmp_path)
    summary = logarchive.export(config)
    assert (summary.exported, summary.exit_code) == (len(AGES), 0)
    # As if each run had been archived when it completed: the floor counts from then.
    assert archived_at_completion(open_sink(config, "archive")) == len(AGES)
    return config


def check_plan(config: logarchive.Config, rules: dict[str, Any], deleted: set[str],
               protected: dict[str, str]) -> None:
    sink = open_sink(config, "archive")
    result = plan(sink, RetentionConfig(**rules))
    assert {d.path for d in result.deletions} == deleted
    assert {d.path: d.protected_by for d in result.protected} == protected
    assert {d.path for d in result.decisions} == ALL
    for d in result.deletions:
        assert d.rule in ("max_age_days", "keep_last") and d.reason and d.age_days is not None
        assert d.group


@pytest.fixture(scope="module")
def local_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, logarchive.Config]:
    tmp = tmp_path_factory.mktemp("archive")
    return tmp, export_archive(tmp, str(tmp / "archive"))


@pytest.mark.parametrize(("case", "rules", "deleted", "protected"), CASES,
                         ids=[c[0] for c in CASES])
def test_plan_selects_exactly(local_archive: Any, case: str, rules: dict[str, Any],
                              deleted: set[str], protected: dict[str, str]) -> None:
    _, config = local_archive
    check_plan(config, rules, deleted, protected)


@pytest.mark.parametrize(("case", "rules", "deleted", "protected"), CASES,
                         ids=[c[0] for c in CASES])
def test_apply_deletes_exactly_the_plan(tmp_path: Path, local_archive: Any, case: str,
                                        rules: dict[str, Any], deleted: set[str],
                                        protected: dict[str, str]) -> None:
    source_tmp, _ = local_archive
    shutil.copytree(source_tmp / "archive", tmp_path / "archive")
    config = parse_config(archive_config(tmp_path, str(tmp_path / "archive")), base_dir=tmp_path)
    sink = open_sink(config, "archive")
    ledger = SQLiteLedger(tmp_path / "state")
    result = apply(sink, plan(sink, RetentionConfig(**rules)), ledger=ledger)
    assert result.ok and {d.path for d in result.deleted} == deleted
    left = {p.relative_to(tmp_path / "archive").as_posix()
            for p in (tmp_path / "archive").rglob("*") if p.is_file()}
    kept = ALL - deleted
    assert left == kept | {f"{p}.manifest.json" for p in kept}
    events = ledger.events("retention_delete")
    assert {e["path"] for e in events} == deleted
    assert all(e["sink"] == "archive" and e["run_key"].startswith("training/") for e in events)
    # Applying again finds nothing more to delete (the rules are idempotent).
    assert plan(sink, RetentionConfig(**rules)).deletions == []


def test_age_comes_from_the_manifest_not_the_storage_mtime(tmp_path: Path) -> None:
    config = export_archive(tmp_path, str(tmp_path / "archive"))
    rules = RetentionConfig(max_age_days=365)
    # A restore or copy resets mtimes: retention must not care.
    old = time.time() - 3000 * 86400
    for path in (tmp_path / "archive").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))
    sink = open_sink(config, "archive")
    assert {d.path for d in plan(sink, rules).deletions} == objs(
        "mdl-a/r04", "mdl-a/r05", "mdl-b/r02", "mdl-b/r03")
    # Without a completion time, the export time in the manifest is the age.
    manifest = tmp_path / "archive/training/mdl-a/r01.txt.manifest.json"
    doc = json.loads(manifest.read_text())
    doc["run"]["completed"] = None
    doc["exported_at"] = "2020-01-01T00:00:00Z"
    manifest.write_text(json.dumps(doc))
    decisions = {d.path: d for d in plan(sink, rules).decisions}
    assert decisions["training/mdl-a/r01.txt"].action == "delete"
    assert decisions["training/mdl-a/r01.txt"].completed.year == 2020


def test_objects_without_manifest_are_never_deleted(tmp_path: Path) -> None:
    config = export_archive(tmp_path, str(tmp_path / "archive"))
    stray = tmp_path / "archive/training/mdl-a/stray.txt"
    stray.write_bytes(b"not ours")
    os.utime(stray, (0, 0))
    sink = open_sink(config, "archive")
    result = plan(sink, RetentionConfig(keep_last=0))
    assert result.orphan_objects == ["training/mdl-a/stray.txt"]
    apply(sink, result)
    assert stray.exists()
    assert "not managed by retention" in result.text()


def test_manifest_left_by_a_half_done_delete_is_selected_again(tmp_path: Path) -> None:
    config = export_archive(tmp_path, str(tmp_path / "archive"))
    (tmp_path / "archive/training/mdl-b/r03.txt").unlink()  # object gone, manifest left
    sink = open_sink(config, "archive")
    result = plan(sink, RetentionConfig(max_age_days=600))
    [only] = result.deletions
    assert only.path == "training/mdl-b/r03.txt" and not only.object_present
    assert "manifest only" in only.reason
    assert apply(sink, result).ok
    assert not (tmp_path / "archive/training/mdl-b/r03.txt.manifest.json").exists()


# --- the CLI ------------------------------------------------------------------------------


def cli_config(tmp_path: Path, retention: dict[str, Any]) -> Path:
    make_runs(tmp_path / "logs", AGES)
    document = archive_config(tmp_path, str(tmp_path / "archive"),
                              sink={"retention": retention})
    path = write_config(tmp_path / "logarchive.toml", document)
    config = logarchive.load_config(path)
    assert logarchive.export(config).exit_code == 0
    assert archived_at_completion(open_sink(config, "archive")) == len(AGES)
    return path


RULES = {"max_age_days": 400, "keep_last": 1, "group_by": "{source}/{model_id}",
         "min_age_days": 365, "legal_hold": ["training/mdl-b/r03.txt"]}
# mdl-a: r05 (500d) goes; r04 (380d) is not older than 400. mdl-b: r02 (450d) goes, r03 held.
EXPECTED = objs("mdl-a/r05", "mdl-b/r02")


def test_cli_plan_text_and_json(tmp_path: Path) -> None:
    path = cli_config(tmp_path, RULES)
    runner = CliRunner()
    result = runner.invoke(main, ["retention", "plan", "-c", str(path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "8 archived object(s), 2 to delete" in out
    assert "DELETE  training/mdl-a/r05.txt  age 500.0d  group training/mdl-a  rule max_age_days" \
        in out
    assert "KEEP    training/mdl-b/r03.txt" in out and "legal_hold" in out
    result = runner.invoke(main, ["retention", "plan", "-c", str(path), "--json"])
    doc = json.loads(result.stdout)
    [sink] = doc["sinks"]
    assert {d["path"] for d in sink["delete"]} == EXPECTED
    assert sink["counts"] == {"delete": 2, "protected_by_legal_hold": 1, "not_selected": 5}
    first = sink["delete"][0]
    assert set(first) >= {"path", "age_days", "group", "rule", "reason", "run", "completed"}
    dry = runner.invoke(main, ["retention", "apply", "--dry-run", "-c", str(path), "--json"])
    assert dry.exit_code == 0 and json.loads(dry.stdout)["sinks"][0]["delete"] == sink["delete"]
    assert len(list((tmp_path / "archive").rglob("*.manifest.json"))) == 8


def test_cli_apply_audits_each_deletion(tmp_path: Path, run_cli: Any) -> None:
    path = cli_config(tmp_path, RULES)
    shutil.rmtree(tmp_path / "state")  # an archive the ledger never saw
    proc = run_cli("retention", "apply", "-c", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "deleted 2, failed 0" in proc.stdout
    audit = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    audit = [a for a in audit if a["event"] == "retention_deleted"]
    assert {a["path"] for a in audit} == EXPECTED
    assert all(a["sink"] == "archive" and a["rule"] == "max_age_days" and a["age_days"] > 400
               and a["object"].endswith(a["path"]) for a in audit)
    left = {p.relative_to(tmp_path / "archive").as_posix()
            for p in (tmp_path / "archive").rglob("*.txt")}
    assert left == ALL - EXPECTED
    shown = run_cli("ledger", "show", "--events", "--json", "-c", str(path))
    events = [e for e in json.loads(shown.stdout) if e["kind"] == "retention_delete"]
    assert {e["path"] for e in events} == EXPECTED
    again = run_cli("retention", "plan", "-c", str(path))
    assert "0 to delete" in again.stdout


def test_cli_errors(tmp_path: Path) -> None:
    path = cli_config(tmp_path, RULES)
    runner = CliRunner()
    result = runner.invoke(main, ["retention", "plan", "-c", str(path), "--sink", "nope"])
    assert result.exit_code == 2 and "no sink named 'nope'" in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace("max_age_days", "max_age_dayz"))
    result = runner.invoke(main, ["retention", "plan", "-c", str(bad)])
    assert result.exit_code == 2 and "sinks.archive.retention.max_age_dayz" in result.stderr


# --- S3 and GCS ---------------------------------------------------------------------------


SAMPLE_CASES = [c for c in CASES if c[0] in ("age_only", "both", "floor_beats_age",
                                            "hold_beats_everything", "group_per_model")]


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_retention_on_object_stores(tmp_path: Path, request: pytest.FixtureRequest,
                                    backend: str) -> None:
    bucket = request.getfixturevalue(f"{backend}_bucket")
    url = f"{bucket.url}/archive"
    config = export_archive(tmp_path, url, bucket.storage_options)
    for _case, rules, deleted, protected in SAMPLE_CASES:
        check_plan(config, rules, deleted, protected)
    shutil.rmtree(tmp_path / "state")  # the ledger never saw this archive
    sink = open_sink(config, "archive")
    rules = RetentionConfig(max_age_days=150, min_age_days=400)
    ledger = SQLiteLedger(tmp_path / "state")
    result = apply(sink, plan(sink, rules), ledger=ledger)
    expected = objs("mdl-a/r05", "mdl-b/r02", "mdl-b/r03")
    assert result.ok and {d.path for d in result.deleted} == expected
    fs = bucket.fs()
    left = {p[len(f"{bucket.name}/archive/"):] for p in fs.find(f"{bucket.name}/archive")}
    kept = ALL - expected
    assert left == kept | {f"{p}.manifest.json" for p in kept}
    assert {e["path"] for e in ledger.events("retention_delete")} == expected

