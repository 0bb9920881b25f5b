"""api = "mlflow" against a REAL MLflow tracking server (proxied local store and moto S3).

Runs and their log artifacts are created with the MLflow client; logarchive exports them to an
fs sink; the archived bytes must be the artifact bytes and the manifest must carry the run.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import logarchive
from logarchive import parse_config

from logarchive_mlflow.testing_server import MlflowServer

pytest.importorskip("mlflow")

BIG = b"".join(b"2026-03-13T10:00:%02dZ [INFO] step %06d loss=0.25\n" % (i % 60, i)
               for i in range(60_000))  # ~2.7 MB: several chunks


def make_run(server: MlflowServer, experiment_id: str, files: dict[str, bytes], tmp: Path, *,
             status: str | None = "FINISHED", name: str = "run") -> str:
    """A run with params, tags, a metric and the given artifacts (path -> bytes)."""
    client = server.client()
    run = client.create_run(experiment_id, run_name=name, tags={"team": "ml"})
    run_id = run.info.run_id
    client.log_param(run_id, "lr", "0.01")
    client.log_metric(run_id, "loss", 0.25)
    for path, data in files.items():
        local = tmp / uuid.uuid4().hex / Path(path).name
        local.parent.mkdir(parents=True)
        local.write_bytes(data)
        folder = str(Path(path).parent)
        client.log_artifact(run_id, str(local), None if folder == "." else folder)
    if status is not None:
        client.set_terminated(run_id, status)
    return run_id


def config(tmp_path: Path, server: MlflowServer, **source: Any) -> Any:
    table = {"type": "mlflow", "api": "mlflow", "tracking_uri": server.url,
             "artifacts": ["logs/**/*.log", "*.txt"], **source}
    if server.storage_options:
        table.setdefault("storage_options", server.storage_options)
    return parse_config({
        "logarchive": {"state_dir": str(tmp_path / "state"), "workers": 3},
        "sources": {"tracking": table},
        "sinks": {"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                              "path": "{source}/{run_id}/{artifact_path:path}"}},
    })


def archived(tmp_path: Path, run_id: str, path: str) -> tuple[bytes, dict[str, Any]]:
    target = tmp_path / "archive" / "tracking" / run_id / path
    manifest = json.loads(Path(f"{target}.manifest.json").read_text())
    return target.read_bytes(), manifest


def test_export_real_server_artifacts_byte_for_byte(mlflow_server: MlflowServer,
                                                    tmp_path: Path) -> None:
    client = mlflow_server.client()
    name = f"churn-training-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name)
    finished = {
        "logs/train.log": BIG,
        "logs/workers/worker-1.log": b"worker \xff invalid utf8\r\nlast line without newline",
        "stdout.txt": b"hello\n",
        "model/weights.bin": b"\x00" * 1000,          # not a log: not exported
        "model/requirements.log.bak": b"nope\n",      # not matching either
    }
    run_ok = make_run(mlflow_server, experiment_id, finished, tmp_path, name="ok")
    run_failed = make_run(mlflow_server, experiment_id, {"logs/train.log": b"boom\n"}, tmp_path,
                          status="FAILED", name="failed")
    run_live = make_run(mlflow_server, experiment_id, {"logs/train.log": b"still going\n"},
                        tmp_path, status=None, name="live")

    # max_results=1: runs/search really paginates through next_page_token.
    cfg = config(tmp_path, mlflow_server, experiments=[name], max_results=1)
    summary = logarchive.export(cfg)
    assert summary.errors == [] and summary.failed == 0, summary.to_json()
    assert summary.exported == 4  # 3 logs of the finished run, 1 of the failed one
    for path in ("logs/train.log", "logs/workers/worker-1.log", "stdout.txt"):
        data, manifest = archived(tmp_path, run_ok, path)
        assert data == finished[path]
        assert manifest["source_bytes"]["size"] == len(finished[path])
        run = manifest["run"]
        assert run["fields"] == {"experiment_id": experiment_id, "run_id": run_ok,
                                 "artifact_path": path}
        assert run["status"] == "completed" and run["started"] and run["completed"]
        meta = run["metadata"]
        assert meta["experiment_name"] == name and meta["run_name"] == "ok"
        assert meta["params"] == {"lr": "0.01"} and meta["tags"]["team"] == "ml"
        assert meta["metrics"] == {"loss": 0.25} and meta["status"] == "FINISHED"
        assert meta["file_size"] == len(finished[path])
    data, manifest = archived(tmp_path, run_failed, "logs/train.log")
    assert data == b"boom\n" and manifest["run"]["status"] == "failed"
    assert not (tmp_path / "archive" / "tracking" / run_ok / "model").exists()
    assert not (tmp_path / "archive" / "tracking" / run_live).exists()

    # The running run is not searched (terminal statuses only); once it ends it is exported.
    client.set_terminated(run_live, "KILLED")
    again = logarchive.export(cfg)
    assert (again.exported, again.skipped, again.failed) == (1, 4, 0), again.to_json()
    data, manifest = archived(tmp_path, run_live, "logs/train.log")
    assert data == b"still going\n" and manifest["run"]["status"] == "killed"


def test_running_run_is_listed_not_ready_then_exported(mlflow_proxy: MlflowServer,
                                                       tmp_path: Path) -> None:
    client = mlflow_proxy.client()
    experiment_id = client.create_experiment(f"live-{uuid.uuid4().hex[:8]}")
    run_id = make_run(mlflow_proxy, experiment_id, {"logs/a.log": b"a\n"}, tmp_path, status=None)
    cfg = config(tmp_path, mlflow_proxy, experiments=[int(experiment_id)],
                 statuses=["RUNNING", "FINISHED", "FAILED", "KILLED"])
    first = logarchive.export(cfg)
    assert [r.status for r in first.results] == ["not_ready"]
    assert first.results[0].run.status == "running" and first.exit_code == 0
    client.set_terminated(run_id, "FINISHED")
    second = logarchive.export(cfg)
    assert [r.status for r in second.results] == ["exported"]
    assert archived(tmp_path, run_id, "logs/a.log")[0] == b"a\n"


def test_cli_runs_shows_status_per_run(mlflow_proxy: MlflowServer, tmp_path: Path) -> None:
    from logarchive.cli import main

    client = mlflow_proxy.client()
    name = f"cli-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name)
    done = make_run(mlflow_proxy, experiment_id, {"logs/done.log": b"ok\n"}, tmp_path)
    live = make_run(mlflow_proxy, experiment_id, {"logs/live.log": b"..\n"}, tmp_path,
                    status=None)
    (tmp_path / "logarchive.toml").write_text(f"""
[logarchive]
state_dir = "state"

[sources.tracking]
type = "mlflow"
api = "mlflow"
tracking_uri = "{mlflow_proxy.url}"
experiments = ["{name}"]
artifacts = ["logs/*.log"]
statuses = ["RUNNING", "FINISHED", "FAILED", "KILLED"]

[sinks.archive]
type = "fs"
url = "archive"
path = "{{source}}/{{run_id}}/{{artifact_path:path}}"
""")
    result = CliRunner().invoke(main, ["runs", "-c", str(tmp_path / "logarchive.toml")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:2] == ["completed", "pending"] and done in line
               and "artifact_path=logs/done.log" in line for line in lines), result.output
    assert any(line.split()[:2] == ["running", "pending"] and live in line for line in lines)
    assert "2 run(s)" in result.output

    exported = CliRunner().invoke(main, ["export", "-c", str(tmp_path / "logarchive.toml")])
    assert exported.exit_code == 0, exported.output
    listed = CliRunner().invoke(main, ["runs", "--json", "-c", str(tmp_path / "logarchive.toml")])
    rows = {row["fields"]["run_id"]: row for row in json.loads(listed.output)}
    assert rows[done]["delivered"] is True and rows[done]["status"] == "completed"
    assert rows[live]["delivered"] is False and rows[live]["status"] == "running"


def test_unknown_experiment_is_a_warning_not_a_failure(mlflow_proxy: MlflowServer,
                                                       tmp_path: Path) -> None:
    cfg = config(tmp_path, mlflow_proxy, experiments=["no-such-experiment", "999999"])
    summary = logarchive.export(cfg)
    assert summary.results == [] and summary.errors == [] and summary.exit_code == 0


def test_s3_artifact_uri_is_read_straight_from_s3(mlflow_s3: MlflowServer,
                                                  tmp_path: Path) -> None:
    """With --no-serve-artifacts the run's artifact_uri is s3://...: no proxy involved."""
    client = mlflow_s3.client()
    experiment_id = client.create_experiment(f"s3-{uuid.uuid4().hex[:8]}")
    run_id = make_run(mlflow_s3, experiment_id, {"logs/s3.log": b"from s3\n"}, tmp_path)
    assert client.get_run(run_id).info.artifact_uri.startswith(mlflow_s3.artifact_root)
    wrong = config(tmp_path / "wrong", mlflow_s3, experiments=[int(experiment_id)],
                   storage_options={"key": "testing", "secret": "testing", "client_kwargs": {
                       "endpoint_url": os.environ["MLFLOW_S3_ENDPOINT_URL"] + "/nowhere"}})
    bad = logarchive.export(wrong)
    assert bad.failed == 1 and bad.exit_code == 1
    good = logarchive.export(config(tmp_path, mlflow_s3, experiments=[int(experiment_id)]))
    assert good.exported == 1
    assert archived(tmp_path, run_id, "logs/s3.log")[0] == b"from s3\n"


def test_check_asks_the_tracking_server_for_an_experiment(mlflow_proxy: MlflowServer,
                                                          tmp_path: Path) -> None:
    from logarchive.check import run_checks

    name = f"check-{uuid.uuid4().hex[:8]}"
    mlflow_proxy.client().create_experiment(name)
    result = run_checks(config(tmp_path, mlflow_proxy, experiments=[name]))[0]
    assert result.status == "ok" and name in result.detail, result.detail
    down = run_checks(config(tmp_path, mlflow_proxy, tracking_uri="http://127.0.0.1:9",
                             http={"retry": {"max_retries": 0}}))[0]
    assert down.status == "failed"
