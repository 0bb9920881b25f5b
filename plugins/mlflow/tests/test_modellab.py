"""api = "modellab" against a loopback Model Lab that follows seeds 003/004, with artifacts
really stored where each run's mlflow_artifact_location points (local folder, moto S3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import logarchive
from logarchive import parse_config

from logarchive_mlflow.testing_modellab import API, ModelLabFake, error_object, write_artifacts

API_KEY = "dd-api-key-0123456789"
APP_KEY = "dd-app-key-9876543210"
FAST_RETRY = {"retry": {"max_retries": 3, "backoff_initial": 0.01, "backoff_max": 0.02}}
LOGS = {
    "logs/train.log": b"2026-03-13T10:00:00Z [INFO] epoch 1\n" * 5000,
    "logs/eval/rank-0.log": b"eval \xff\xfe bytes\r\nno newline at end",
    "stdout.txt": b"hello\n",
    "model/weights.pt": b"\x00\x01" * 512,
    "model/config.json": b"{}",
}
EXPORTED = ("logs/train.log", "logs/eval/rank-0.log", "stdout.txt")


@pytest.fixture
def lab(loopback: Any) -> ModelLabFake:
    fake = ModelLabFake(API_KEY, APP_KEY)
    loopback.handler = fake
    fake.url = loopback.url  # type: ignore[attr-defined]
    return fake


def make_config(tmp_path: Path, lab: ModelLabFake, **source: Any) -> Any:
    api_key = source.pop("_key", API_KEY)
    table = {"type": "mlflow", "api": "modellab", "base_url": lab.url,  # type: ignore[attr-defined]
             "api_key": "${DD_API_KEY}", "application_key": "${DD_APP_KEY}",
             "artifacts": ["logs/**/*.log", "*.txt"], "http": FAST_RETRY, **source}
    return parse_config({
        "logarchive": {"state_dir": str(tmp_path / "state"), "workers": 3},
        "sources": {"lab": table},
        "sinks": {"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                              "path": "{source}/{run_id}/{artifact_path:path}"}},
    }, environ={"DD_API_KEY": api_key, "DD_APP_KEY": APP_KEY})


def stored(tmp_path: Path, run_id: int, path: str) -> tuple[bytes, dict[str, Any]]:
    target = tmp_path / "archive" / "lab" / str(run_id) / path
    return target.read_bytes(), json.loads(Path(f"{target}.manifest.json").read_text())


def test_export_from_local_artifact_location(tmp_path: Path, lab: ModelLabFake) -> None:
    statuses = {42: "completed", 43: "failed", 44: "running", 45: "unresponsive",
                46: "paused", 47: "pending", 48: "killed"}
    for run_id, status in statuses.items():
        location = (tmp_path / "artifacts" / str(run_id)).as_uri()  # file:///...
        write_artifacts(location, LOGS)
        lab.add_run(run_id, status, location)
    # "/*.txt": top-level .txt files only, so the model/ folder can hold no log.
    config = make_config(tmp_path, lab, runs=list(statuses), artifacts=["logs/**/*.log", "/*.txt"])
    summary = logarchive.export(config)
    assert summary.errors == [] and summary.failed == 0, summary.to_json()
    by_run: dict[str, set[str]] = {}
    for result in summary.results:
        by_run.setdefault(result.run.fields["run_id"], set()).add(result.status)
    assert by_run == {"42": {"exported"}, "43": {"exported"}, "45": {"exported"},
                      "48": {"exported"}, "44": {"not_ready"}, "46": {"not_ready"},
                      "47": {"not_ready"}}
    assert summary.exported == 4 * len(EXPORTED)
    for path in EXPORTED:
        data, manifest = stored(tmp_path, 42, path)
        assert data == LOGS[path]
        run = manifest["run"]
        assert run["fields"] == {"project_id": "101", "run_id": "42", "artifact_path": path}
        assert run["status"] == "completed"
        assert run["started"] == "2026-03-13T10:00:00Z"
        assert run["completed"] == "2026-03-13T11:00:00Z"
        meta = run["metadata"]
        assert meta["name"] == "training-run-42" and meta["project_id"] == 101
        assert meta["owner_id"] == "3f2b9c1e-0000-4000-8000-00000000abcd"
        assert meta["params"] == {"algorithm": "gpt4", "lr": "0.01"}
        assert meta["tags"] == {"model": "opus"}
        assert meta["metric_summaries"][0]["key"] == "accuracy"
        assert meta["status"] == "completed" and meta["path_in_project"] == "runs/42"
        assert meta["file_size"] == len(LOGS[path])
    assert stored(tmp_path, 43, "stdout.txt")[1]["run"]["status"] == "failed"
    unresponsive = stored(tmp_path, 45, "stdout.txt")[1]["run"]
    assert unresponsive["status"] == "failed" and unresponsive["metadata"]["status"] == "unresponsive"
    assert not (tmp_path / "archive" / "lab" / "42" / "model").exists()
    # The model/ folder can match no pattern: it is never even listed.
    assert not any("path=model" in r for r in lab.requests)
    serialized = (tmp_path / "archive").rglob("*.manifest.json")
    assert all(API_KEY not in p.read_text() and APP_KEY not in p.read_text() for p in serialized)

    # A running run ends: the next export delivers it and skips everything delivered.
    lab.runs[44]["status"] = "completed"
    lab.runs[44]["completed_at"] = "2026-03-13T12:00:00Z"
    again = logarchive.export(config)
    exported = {(r.run.fields["run_id"], r.status) for r in again.results if r.status != "skipped"}
    assert exported == {("44", "exported"), ("46", "not_ready"), ("47", "not_ready")}
    assert stored(tmp_path, 44, "logs/train.log")[0] == LOGS["logs/train.log"]


def test_export_from_s3_artifact_location(tmp_path: Path, lab: ModelLabFake,
                                          s3_bucket: Any) -> None:
    location = f"{s3_bucket.url}/projects/101/runs/7/artifacts"
    write_artifacts(location, LOGS, s3_bucket.storage_options)
    lab.storage_options = s3_bucket.storage_options
    lab.add_run(7, "completed", location)
    config = make_config(tmp_path, lab, runs=[7], storage_options=s3_bucket.storage_options)
    summary = logarchive.export(config)
    assert summary.exported == len(EXPORTED) and summary.failed == 0, summary.to_json()
    for path in EXPORTED:
        data, manifest = stored(tmp_path, 7, path)
        assert data == LOGS[path]
        assert manifest["run"]["metadata"]["mlflow_artifact_location"] == location


def test_unresponsive_can_wait(tmp_path: Path, lab: ModelLabFake) -> None:
    location = (tmp_path / "a").as_uri()
    write_artifacts(location, {"stdout.txt": b"x\n"})
    lab.add_run(5, "unresponsive", location)
    summary = logarchive.export(make_config(tmp_path, lab, runs=[5], unresponsive="running"))
    assert [(r.status, r.run.status) for r in summary.results] == [("not_ready", "running")]


def test_discovery_by_project_is_paginated(tmp_path: Path, lab: ModelLabFake) -> None:
    for run_id in range(1, 8):
        location = (tmp_path / "a" / str(run_id)).as_uri()
        write_artifacts(location, {"stdout.txt": b"run %d\n" % run_id})
        lab.add_run(run_id, "completed", location, project_id=101 if run_id != 4 else 202)
    config = make_config(tmp_path, lab, projects=[101], runs=[4],
                         discover={"page_size": 2})
    summary = logarchive.export(config)
    assert sorted(int(r.run.fields["run_id"]) for r in summary.results) == list(range(1, 8))
    assert summary.exported == 7
    pages = [r for r in lab.requests if r.startswith(f"{API}/runs?")]
    assert len(pages) == 4  # 6 runs of project 101 in pages of 2, then an empty page
    assert all("filter%5Bproject_id%5D=101" in p and "page%5Bsize%5D=2" in p for p in pages)
    assert stored(tmp_path, 6, "stdout.txt")[0] == b"run 6\n"


def test_forbidden_names_both_key_headers_and_stops_the_source(tmp_path: Path,
                                                               lab: ModelLabFake) -> None:
    lab.add_run(42, "completed", (tmp_path / "a").as_uri())
    summary = logarchive.export(make_config(tmp_path, lab, runs=[42], _key="wrong-key"))
    assert summary.exit_code == 1 and len(summary.errors) == 1
    error = summary.errors[0]
    assert "HTTP 403: Forbidden" in error
    assert "DD-API-KEY" in error and "DD-APPLICATION-KEY" in error
    assert "wrong-key" not in error and APP_KEY not in error
    assert len(lab.requests) == 1  # not retried


def test_not_found_run_is_skipped_with_a_warning(tmp_path: Path, lab: ModelLabFake) -> None:
    location = (tmp_path / "a").as_uri()
    write_artifacts(location, {"stdout.txt": b"ok\n"})
    lab.add_run(42, "completed", location)
    summary = logarchive.export(make_config(tmp_path, lab, runs=[404, 42]))
    assert summary.errors == [] and summary.exported == 1


def test_bad_request_surfaces_title_and_detail(tmp_path: Path, lab: ModelLabFake) -> None:
    lab.add_run(42, "completed", (tmp_path / "a").as_uri())
    lab.fail(f"{API}/runs/42/artifacts", 400,
             error_object(400, "Bad Request", "Missing required attribute in body",
                          parameter="path"))
    summary = logarchive.export(make_config(tmp_path, lab, runs=[42]))
    assert len(summary.errors) == 1
    assert ("HTTP 400: Bad Request: Missing required attribute in body (parameter: path)"
            in summary.errors[0])


@pytest.mark.timeout(60)
def test_429_honours_retry_after(tmp_path: Path, lab: ModelLabFake) -> None:
    """Backoff is set to 300 s: only the server's Retry-After: 0 lets this finish in time."""
    location = (tmp_path / "a").as_uri()
    write_artifacts(location, {"stdout.txt": b"ok\n"})
    lab.add_run(42, "completed", location)
    lab.fail(f"{API}/runs/42", 429, {"errors": ["Too many requests"]}, {"Retry-After": "0"},
             times=2)
    slow = {"retry": {"max_retries": 3, "backoff_initial": 300, "backoff_max": 300}}
    summary = logarchive.export(make_config(tmp_path, lab, runs=[42], http=slow))
    assert summary.exported == 1 and summary.errors == []
    assert lab.requests.count(f"{API}/runs/42") == 3


def test_server_errors_are_retried_then_reported(tmp_path: Path, lab: ModelLabFake) -> None:
    location = (tmp_path / "a").as_uri()
    write_artifacts(location, {"stdout.txt": b"ok\n"})
    lab.add_run(42, "completed", location)
    lab.fail(f"{API}/runs/42/artifacts", 500,
             error_object(500, "Internal Server Error", "listing backend unavailable"), times=1)
    summary = logarchive.export(make_config(tmp_path, lab, runs=[42]))
    assert summary.exported == 1  # one 500, then the retry succeeded

    lab.fail(f"{API}/runs/42", 500,
             error_object(500, "Internal Server Error", "database timeout"), times=10)
    failed = logarchive.export(make_config(tmp_path / "again", lab, runs=[42]))
    assert len(failed.errors) == 1
    assert "HTTP 500: Internal Server Error: database timeout" in failed.errors[0]
    assert lab.requests.count(f"{API}/runs/42") == 1 + 4  # first export, then 1 + 3 retries

    lab.faults.clear()
    lab.fail(f"{API}/runs/42", 429, {"errors": ["Rate limit exceeded"]}, {"Retry-After": "0"},
             times=10)
    limited = logarchive.export(make_config(tmp_path / "limited", lab, runs=[42]))
    assert "HTTP 429: Rate limit exceeded" in limited.errors[0]


def test_artifact_paths_that_climb_out_are_refused(tmp_path: Path, lab: ModelLabFake) -> None:
    (tmp_path / "secret.txt").write_bytes(b"do not read\n")
    lab.add_run(42, "completed", (tmp_path / "run").as_uri())
    lab.listing_override[42] = [{"file_size": 12, "is_dir": False, "path": "../secret.txt"}]
    summary = logarchive.export(make_config(tmp_path, lab, runs=[42]))
    assert summary.exported == 0 and "refusing it" in summary.errors[0]


def test_missing_or_changed_artifact_fails_the_run_only(tmp_path: Path, lab: ModelLabFake) -> None:
    location = (tmp_path / "a").as_uri()
    write_artifacts(location, {"stdout.txt": b"ok\n"})
    lab.add_run(42, "completed", location)
    lab.listing_override[42] = [
        {"file_size": 3, "is_dir": False, "path": "stdout.txt"},
        {"file_size": 999, "is_dir": False, "path": "gone.txt"},
    ]
    write_artifacts(location, {"short.txt": b"abc"})
    lab.listing_override[42].append({"file_size": 10, "is_dir": False, "path": "short.txt"})
    summary = logarchive.export(make_config(tmp_path, lab, runs=[42]))
    outcome = {r.run.fields["artifact_path"]: (r.status, r.error or "") for r in summary.results}
    assert outcome["stdout.txt"][0] == "exported"
    assert outcome["gone.txt"][0] == "failed" and "not found" in outcome["gone.txt"][1]
    assert outcome["short.txt"][0] == "failed" and "declared 10" in outcome["short.txt"][1]
    assert not (tmp_path / "archive" / "lab" / "42" / "short.txt").exists()
