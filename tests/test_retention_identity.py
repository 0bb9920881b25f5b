"""Which objects a sink manages: the ones whose manifest names it. Two sinks on one root and
nested roots, through the real CLI (`retention`, `verify`, `ledger rebuild`, `config check`);
legal holds naming a run key verbatim; the `min_age_days` floor against a source's odd clock."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import logarchive
from logarchive.pipeline import open_sink
from logarchive_testsupport.archives import (
    FIELDS, archive_config, archived_at_completion, make_runs, write_config,
)

A_RUNS = {"mdl/r1": 100, "mdl/r2": 200}  # source a: delivered to hot and cold
B_RUNS = {"mdl/r3": 300}  # source b: delivered to cold only


def two_sinks(tmp_path: Path, hot_url: str, cold_url: str, *, cold: str = "cold") -> Path:
    make_runs(tmp_path / "logs-a", A_RUNS)
    make_runs(tmp_path / "logs-b", B_RUNS)
    document = {
        "logarchive": {"state_dir": str(tmp_path / "state")},
        "sources": {name: {"type": "files", "url": str(tmp_path / f"logs-{name}"),
                           "fields": FIELDS} for name in ("a", "b")},
        "sinks": {
            "hot": {"type": "fs", "url": hot_url, "path": "hot/{source}-{run_id}.{ext}",
                    "retention": {"max_age_days": 30}},
            cold: {"type": "fs", "url": cold_url, "path": "cold/{source}-{run_id}.{ext}"},
        },
        "pipelines": [{"name": "a", "source": "a", "sinks": ["hot", cold]},
                      {"name": "b", "source": "b", "sinks": [cold]}],
    }
    path = write_config(tmp_path / "logarchive.toml", document)
    config = logarchive.load_config(path)
    assert logarchive.export(config).exit_code == 0
    for name in ("hot", cold):
        archived_at_completion(open_sink(config, name))
    return path


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and ".logarchive-tmp" not in p.parts}


HOT = {"hot/a-r1.txt", "hot/a-r2.txt"}
COLD = {"cold/a-r1.txt", "cold/a-r2.txt", "cold/b-r3.txt"}


def with_manifests(paths: set[str], prefix: str = "") -> set[str]:
    return {prefix + p for p in paths} | {f"{prefix}{p}.manifest.json" for p in paths}


@pytest.mark.scenario(
    'retention, verify and rebuild on shared and nested roots',
    "two fs sinks on one root and on nested roots (hot: max_age_days 30, cold: no retention): config check warns, retention apply on hot deletes exactly hot's objects and none of cold's, verify of each sink sees only its own, ledger rebuild credits each sink only with its own manifests",
)
@pytest.mark.parametrize("layout", ["shared", "nested"])
def test_each_sink_sees_only_its_own_objects(tmp_path: Path, run_cli: Any, layout: str) -> None:
    archive = tmp_path / "archive"
    cold_url = str(archive) if layout == "shared" else str(archive / "deep")
    path = two_sinks(tmp_path, str(archive), cold_url)
    cold_prefix = "" if layout == "shared" else "deep/"
    assert files(archive) == with_manifests(HOT) | with_manifests(COLD, cold_prefix)

    check = run_cli("config", "check", "-c", str(path))
    assert check.returncode == 0, check.stderr
    how = "the same root" if layout == "shared" else "nested roots"
    assert f"warning: sinks 'cold' and 'hot' have {how}" in check.stderr

    plan = run_cli("retention", "plan", "--json", "-c", str(path))
    [doc] = json.loads(plan.stdout)["sinks"]
    assert {d["path"] for d in doc["delete"]} == HOT and doc["objects"] == 2
    assert doc["unmanaged_objects"] == [] and doc["unknown_sinks"] == {}

    apply = run_cli("retention", "apply", "--sink", "hot", "-c", str(path))
    assert apply.returncode == 0, apply.stderr
    assert "deleted 2, failed 0" in apply.stdout
    assert files(archive) == with_manifests(COLD, cold_prefix)

    verify = run_cli("verify", "--json", "-c", str(path))
    assert verify.returncode == 0, verify.stdout
    reports = {s["sink"]: s for s in json.loads(verify.stdout)["sinks"]}
    assert (reports["hot"]["objects"], reports["hot"]["findings"]) == (0, [])
    assert (reports["cold"]["objects"], reports["cold"]["findings"]) == (3, [])

    shutil.rmtree(tmp_path / "state")
    rebuilt = run_cli("ledger", "rebuild", "--json", "-c", str(path))
    assert rebuilt.returncode == 0, rebuilt.stderr
    counts = {s["sink"]: s["restored"] for s in json.loads(rebuilt.stdout)["sinks"]}
    assert counts == {"hot": 0, "cold": 3}
    shown = json.loads(run_cli("ledger", "show", "--json", "-c", str(path)).stdout)
    credited = {(d["sink"], d["run_key"]) for d in shown}
    assert credited == {("cold", "a/model_id=mdl/run_id=r1"), ("cold", "a/model_id=mdl/run_id=r2"),
                        ("cold", "b/model_id=mdl/run_id=r3")}


def test_rebuild_credits_each_sink_only_with_its_runs(tmp_path: Path, run_cli: Any) -> None:
    archive = tmp_path / "archive"
    path = two_sinks(tmp_path, str(archive), str(archive))
    shutil.rmtree(tmp_path / "state")
    assert run_cli("ledger", "rebuild", "-c", str(path)).returncode == 0
    shown = json.loads(run_cli("ledger", "show", "--json", "-c", str(path)).stdout)
    by_sink: dict[str, set[str]] = {}
    for d in shown:
        by_sink.setdefault(d["sink"], set()).add(d["object"].rsplit("/", 2)[-2] + "/"
                                                 + d["object"].rsplit("/", 1)[-1])
    assert by_sink == {"hot": HOT, "cold": COLD}
    # The next export delivers nothing (hot never received b's run, and is not asked to).
    again = run_cli("export", "--json", "-c", str(path))
    assert again.returncode == 0 and json.loads(again.stdout)["exported"] == 0


def test_manifests_of_a_renamed_sink_are_reported_and_never_touched(tmp_path: Path,
                                                                    run_cli: Any) -> None:
    archive = tmp_path / "archive"
    path = two_sinks(tmp_path, str(archive), str(archive))
    path.write_text(path.read_text().replace('"cold"', '"frozen"'))  # cold renamed frozen
    plan = run_cli("retention", "plan", "-c", str(path))
    assert "3 manifest(s) name sink 'cold', which the config does not have" in plan.stdout
    [doc] = json.loads(run_cli("retention", "plan", "--json", "-c", str(path)).stdout)["sinks"]
    assert sorted(doc["unknown_sinks"]["cold"]) == sorted(f"{p}.manifest.json" for p in COLD)
    assert run_cli("retention", "apply", "-c", str(path)).returncode == 0
    assert files(archive) == with_manifests(COLD)
    shutil.rmtree(tmp_path / "state")
    rebuilt = run_cli("ledger", "rebuild", "-c", str(path))
    assert "3 manifest(s) name sink 'cold', which the config does not have" in rebuilt.stdout
    assert "not credited" in rebuilt.stdout
    shown = json.loads(run_cli("ledger", "show", "--json", "-c", str(path)).stdout)
    assert shown == []


# --- legal holds and floors ----------------------------------------------------------------


def one_sink(tmp_path: Path, ages: dict[str, float], retention: dict[str, Any]) -> Path:
    make_runs(tmp_path / "logs", ages)
    document = archive_config(tmp_path, str(tmp_path / "archive"), source="s",
                              sink={"retention": retention, "path": "{model_id}/{run_id}.{ext}"})
    path = write_config(tmp_path / "logarchive.toml", document)
    assert logarchive.export(logarchive.load_config(path)).exit_code == 0
    return path


@pytest.mark.scenario(
    'legal hold naming a run key verbatim',
    'a hold copied from ledger show (s/model_id=m/run_id=exp[1]) holds that run (and, as a glob, exp1: holding too much is the safe direction); a hold matching nothing warns in plan and apply',
)
def test_a_hold_naming_a_run_key_verbatim_holds_that_run(tmp_path: Path, run_cli: Any) -> None:
    path = one_sink(tmp_path, {"m/exp[1]": 100, "m/exp1": 100, "m/exp2": 100},
                    {"max_age_days": 30})
    archived_at_completion(open_sink(logarchive.load_config(path), "archive"))
    keys = {d["run_key"] for d in json.loads(run_cli("ledger", "show", "--json",
                                                     "-c", str(path)).stdout)}
    held = "s/model_id=m/run_id=exp[1]"  # copied from `ledger show`
    assert held in keys
    text = path.read_text().replace('"max_age_days" = 30',
                                    f'"max_age_days" = 30\n"legal_hold" = ["{held}", "none/*"]')
    path.write_text(text)
    plan = run_cli("retention", "plan", "--json", "-c", str(path))
    [doc] = json.loads(plan.stdout)["sinks"]
    kept = {d["run"]: d["protected_by"] for d in doc["keep"]}
    # Equal to the pattern: held. Its glob reading ("exp" + one of "1") also holds exp1: holding
    # too much is the safe direction. exp2 matches neither and goes.
    assert kept == {held: "legal_hold", "s/model_id=m/run_id=exp1": "legal_hold"}
    assert [d["run"] for d in doc["delete"]] == ["s/model_id=m/run_id=exp2"]
    assert doc["warnings"] == ["legal_hold pattern 'none/*' matches no archived object of sink "
                               "archive"]
    applied = run_cli("retention", "apply", "-c", str(path))
    assert applied.returncode == 0, applied.stderr
    assert "warning: legal_hold pattern 'none/*' matches no archived object" in applied.stdout
    assert "deleted 1, failed 0" in applied.stdout
    assert {p.name for p in (tmp_path / "archive/m").glob("*.txt")} == {"exp_1_.txt", "exp1.txt"}


@pytest.mark.scenario(
    "min_age_days floor against the source's clock",
    'a run whose source completion time is 1970: the just-archived object is kept by min_age_days (the floor counts from exported_at)',
)
def test_the_floor_counts_from_archiving_not_the_source_clock(tmp_path: Path,
                                                              run_cli: Any) -> None:
    path = one_sink(tmp_path, {"m/new": 1}, {"max_age_days": 30, "min_age_days": 365})
    log = tmp_path / "logs/m/new.log"
    os.utime(log, (86400, 86400))  # the source now says the run completed in 1970
    assert run_cli("export", "--force", "-c", str(path)).returncode == 0
    manifest = json.loads((tmp_path / "archive/m/new.txt.manifest.json").read_text())
    assert manifest["run"]["completed"].startswith("1970-01-02")
    [doc] = json.loads(run_cli("retention", "plan", "--json", "-c", str(path)).stdout)["sinks"]
    [kept] = doc["keep"]
    assert kept["protected_by"] == "min_age_days" and kept["age_days"] > 20000
    assert "archived 0.0d ago" in kept["reason"]
    assert run_cli("retention", "apply", "-c", str(path)).returncode == 0
    assert (tmp_path / "archive/m/new.txt").exists()
