"""Archive-side guarantees under hostile input (issue 13 review), through the real CLI: two sinks
never replace each other's objects, an unreadable archive time keeps an object under the
`min_age_days` floor, and one malformed manifest never stops plan, verify or rebuild."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import logarchive
from logarchive.pipeline import open_sink
from logarchive_testsupport.archives import (
    FIELDS, archive_config, archived_at_completion, make_runs, write_config,
)


def shared_root(tmp_path: Path, keep_path: str, short_path: str, short_url: str = "",
                sinks: tuple[str, ...] = ("keep", "short")) -> Path:
    make_runs(tmp_path / "logs", {"m/r1": 100, "m/r2": 100})
    root = str(tmp_path / "archive")
    document = {
        "logarchive": {"state_dir": str(tmp_path / "state")},
        "sources": {"s": {"type": "files", "url": str(tmp_path / "logs"), "fields": FIELDS}},
        "sinks": {
            "keep": {"type": "fs", "url": root, "path": keep_path, "immutable": True},
            "short": {"type": "fs", "url": short_url or root, "path": short_path,
                      "retention": {"max_age_days": 30}},
        },
        "pipelines": [{"name": "p", "source": "s", "sinks": list(sinks)}],
    }
    return write_config(tmp_path / "logarchive.toml", document)


def test_sinks_that_render_the_same_object_path_are_refused(tmp_path: Path,
                                                            run_cli: Any) -> None:
    path = shared_root(tmp_path, "{model_id}/{run_id}.{ext}", "{model_id}/{run_id}.{ext}")
    for args in (("config", "check"), ("export",)):
        result = run_cli(*args, "-c", str(path))
        assert result.returncode == 2, result.stderr
        assert ("sinks 'keep' and 'short' have the same root" in result.stderr
                and "give them different roots or path templates" in result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "archive").exists()
    # Nested: short's root is keep's root + "m", its template the rest of keep's.
    nested = shared_root(tmp_path, "m/{run_id}.{ext}", "{run_id}.txt",
                         short_url=str(tmp_path / "archive/m"))
    result = run_cli("config", "check", "-c", str(nested))
    assert result.returncode == 2 and "have nested roots" in result.stderr, result.stderr


@pytest.mark.scenario(
    'two sinks rendering one object path',
    "same root and same path template: refused at load (exit 2); templates that differ but render the same path: the second sink's commit is refused, the first sink's manifest and object stay, retention of the second deletes nothing of the first",
)
def test_a_commit_never_replaces_another_sinks_object(tmp_path: Path, run_cli: Any) -> None:
    # Not equal as templates, so the config passes; the rendered paths collide (model_id is m).
    templates = ("{model_id}/{run_id}.{ext}", "m/{run_id}.{ext}")
    path = shared_root(tmp_path, *templates, sinks=("keep",))
    assert run_cli("export", "-c", str(path)).returncode == 0  # keep first
    archived_at_completion(open_sink(logarchive.load_config(path), "keep"))
    path = shared_root(tmp_path, *templates)
    assert run_cli("config", "check", "-c", str(path)).returncode == 0
    export = run_cli("export", "-c", str(path))
    assert export.returncode != 0
    assert ("m/r1.txt is already archived by sink 'keep', not 'short'; two sinks render the "
            "same object path" in export.stdout + export.stderr)
    archive = tmp_path / "archive/m"
    for run in ("r1", "r2"):
        assert json.loads((archive / f"{run}.txt.manifest.json").read_text())["sink"] == "keep"
    apply = run_cli("retention", "apply", "--sink", "short", "-c", str(path))
    assert apply.returncode == 0 and "deleted 0, failed 0" in apply.stdout, apply.stderr
    verify = run_cli("verify", "--sink", "keep", "-c", str(path))
    assert verify.returncode == 0, verify.stdout
    assert {p.name for p in archive.glob("*.txt")} == {"r1.txt", "r2.txt"}


def aged_sink(tmp_path: Path, runs: dict[str, float], retention: dict[str, Any]) -> Path:
    make_runs(tmp_path / "logs", runs)
    document = archive_config(tmp_path, str(tmp_path / "archive"), source="s",
                              sink={"retention": retention, "path": "{model_id}/{run_id}.{ext}"})
    path = write_config(tmp_path / "logarchive.toml", document)
    config = logarchive.load_config(path)
    assert logarchive.export(config).exit_code == 0
    archived_at_completion(open_sink(config, "archive"))
    return path


def edit(tmp_path: Path, run: str, change: Any) -> None:
    manifest = tmp_path / f"archive/m/{run}.txt.manifest.json"
    document = json.loads(manifest.read_text())
    change(document)
    manifest.write_text(json.dumps(document))


UNREADABLE_TIMES: dict[str, Any] = {
    "garbage": "garbage", "minus1": -1, "leap": "2026-12-01T23:59:60Z", "missing": None,
}


@pytest.mark.scenario(
    'unreadable archive time under a floor',
    'exported_at garbage, -1, a leap second or missing with min_age_days set: the object is kept with the reason, only the readable old object is deleted',
)
def test_an_unreadable_archive_time_keeps_the_object(tmp_path: Path, run_cli: Any) -> None:
    path = aged_sink(tmp_path, {f"m/{r}": 400 for r in (*UNREADABLE_TIMES, "old")},
                     {"max_age_days": 30, "min_age_days": 365})
    for run, value in UNREADABLE_TIMES.items():
        edit(tmp_path, run, lambda d, v=value: d.pop("exported_at") if v is None
             else d.update(exported_at=v))
    plan = run_cli("retention", "plan", "--json", "-c", str(path))
    [doc] = json.loads(plan.stdout)["sinks"]
    assert [d["path"] for d in doc["delete"]] == ["m/old.txt"]  # a readable time, past the floor
    kept = {d["path"]: d for d in doc["keep"]}
    assert set(kept) == {f"m/{r}.txt" for r in UNREADABLE_TIMES}
    for entry in kept.values():
        assert entry["protected_by"] == "min_age_days"
        assert "archive time (exported_at)" in entry["reason"] and "unreadable" in entry["reason"]
    assert "(missing)" in kept["m/missing.txt"]["reason"] and "-1" in kept["m/minus1.txt"]["reason"]
    apply = run_cli("retention", "apply", "-c", str(path))
    assert apply.returncode == 0 and "deleted 1, failed 0" in apply.stdout, apply.stdout
    assert "archive_time_unreadable" in apply.stderr
    assert {p.stem for p in (tmp_path / "archive/m").glob("*.txt")} == set(UNREADABLE_TIMES)


MALFORMED: dict[str, Any] = {
    "notjson": None,  # the file is replaced by text that is not JSON
    "list": None,  # the file is replaced by a JSON list
    "run_null": lambda d: d.update(run=None),
    "object_str": lambda d: d.update(object="m/object_str.txt"),
    "size_str": lambda d: d["object"].update(size="12"),
    "huge_completed": lambda d: d["run"].update(completed=1e20),
    "huge_exported": lambda d: d.update(exported_at=1e300),
    "sink_list": lambda d: d.update(sink=["archive"]),
    "sink_missing": lambda d: d.pop("sink"),
    "fields_str": lambda d: d["run"].update(fields="x"),
}


@pytest.mark.scenario(
    'malformed manifests',
    'ten kinds of malformed manifest (not JSON, wrong types, completed 1e20, sink missing...): plan, apply, verify and rebuild list each with its reason and carry on with the rest; nothing of them is deleted',
)
def test_malformed_manifests_are_reported_and_the_rest_carries_on(tmp_path: Path,
                                                                  run_cli: Any) -> None:
    path = aged_sink(tmp_path, {f"m/{r}": 100 for r in (*MALFORMED, "good")},
                     {"max_age_days": 30})
    archive = tmp_path / "archive/m"
    (archive / "notjson.txt.manifest.json").write_text("{not json")
    (archive / "list.txt.manifest.json").write_text("[1, 2]")
    for run, change in MALFORMED.items():
        if change is not None:
            edit(tmp_path, run, change)
    bad = {f"m/{r}.txt.manifest.json" for r in MALFORMED}

    plan = run_cli("retention", "plan", "--json", "-c", str(path))
    assert plan.returncode == 0, plan.stderr
    [doc] = json.loads(plan.stdout)["sinks"]
    assert [d["path"] for d in doc["delete"]] == ["m/good.txt"]
    reasons = {b["path"]: b["error"] for b in doc["unreadable_manifests"]}
    assert set(reasons) == bad
    assert '"object" is ' in reasons["m/object_str.txt.manifest.json"]
    assert '"run.completed"' in reasons["m/huge_completed.txt.manifest.json"]
    assert "['archive']" in reasons["m/sink_list.txt.manifest.json"]
    assert "(missing)" in reasons["m/sink_missing.txt.manifest.json"]

    apply = run_cli("retention", "apply", "-c", str(path))
    assert apply.returncode == 0 and "deleted 1, failed 0" in apply.stdout, apply.stderr
    assert {p.stem for p in archive.glob("*.txt")} == set(MALFORMED)

    verify = run_cli("verify", "--json", "-c", str(path))
    assert verify.returncode == 1 and "Traceback" not in verify.stderr, verify.stderr
    [report] = json.loads(verify.stdout)["sinks"]
    assert {f["path"] for f in report["findings"] if f["kind"] == "corrupt"} == bad
    assert report["ok"] == 0 and report["objects"] == 0

    rebuild = run_cli("ledger", "rebuild", "--json", "-c", str(path))
    assert rebuild.returncode == 0, rebuild.stderr
    [sink] = json.loads(rebuild.stdout)["sinks"]
    assert {s["path"] for s in sink["skipped"]} == bad
