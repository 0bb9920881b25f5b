"""The obs source against a ModelArts API (seed 001) and an OBS-like storage on loopback, through
the real engine and the CLI."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

import logarchive
import logarchive.cli
from logarchive.base import Context
from logarchive.plugins import default_registry
from logarchive.testing.servers import LoopbackServer
from logarchive.testing.sources import SourceCase, SourceKit
from logarchive_testsupport.workspace import archived
from logarchive_obs import ObsSource
from logarchive_obs.testing import ACCESS_KEY, TOKEN, Fault, ModelArtsAPI, OBSStorage

PROJECT = "0a1b2c"
JOB = "2cd88daa-31a4-40a8-a58f-d186b0e93e4f"


def task_log(task: str, lines: int = 3000) -> bytes:
    return b"".join(f"2026-03-13T10:00:{i % 60:02d}.000Z [INFO] {task} step {i} "
                    f"throughput=12{i}\n".encode() for i in range(lines))


@pytest.fixture
def storage() -> Iterator[OBSStorage]:
    obs = OBSStorage()
    server = LoopbackServer(obs).start()
    obs.url = server.url
    yield obs
    server.stop()


@pytest.fixture
def modelarts(loopback: LoopbackServer, storage: OBSStorage) -> ModelArtsAPI:
    api = ModelArtsAPI(PROJECT, storage)
    api.url = loopback.url
    loopback.handler = api
    return api


def fast_http(**extra: Any) -> dict[str, Any]:
    return {"connect_timeout": 2, "read_timeout": 0.5,
            "retry": {"max_retries": 3, "backoff_initial": 0.01, "backoff_max": 0.05}, **extra}


def obs_source(server: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "obs", "endpoint": server.url, "project_id": PROJECT, "token": TOKEN,
            "http": fast_http(), **extra}


def config_for(tmp_path: Path, source: dict[str, Any], **sink: Any) -> logarchive.Config:
    return logarchive.parse_config({
        "logarchive": {"state_dir": str(tmp_path / "state"), "workers": 2},
        "sources": {"modelarts": source},
        "sinks": {"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                              "path": "{training_job_id}/{task_id}.{ext}", **sink}},
    }, base_dir=tmp_path)


def test_discovered_through_its_entry_point() -> None:
    entry = default_registry().sources["obs"]
    assert entry.cls is ObsSource and entry.distribution == "logarchive-obs"


class TestObsConformance(SourceKit):
    """The source kit over seed 001's API and the OBS-like storage (presigned downloads)."""

    @pytest.fixture
    def source_case(self, modelarts: ModelArtsAPI, storage: OBSStorage) -> SourceCase:
        logs = {"worker-0": task_log("worker-0"), "worker-1": task_log("worker-1", 40)}
        modelarts.add(JOB, logs, tasks=list(logs))
        source = make_source(obs_source(modelarts, training_jobs=[JOB]))
        run_key = f"m/project_id={PROJECT}/training_job_id={JOB}/task_id="
        return SourceCase(source, {run_key + task: data for task, data in logs.items()},
                          backend=modelarts)

    def remove_run(self, case: SourceCase, run: Any) -> None:
        key = case.backend.key(run.fields["training_job_id"], run.fields["task_id"])
        del case.backend.storage.objects[key]


def test_one_run_per_task_streamed_from_the_download_link(modelarts: ModelArtsAPI,
                                                          storage: OBSStorage,
                                                          tmp_path: Path) -> None:
    logs = {f"worker-{i}": task_log(f"worker-{i}") for i in range(3)}
    modelarts.add(JOB, logs, tasks=list(logs))
    summary = logarchive.export(config_for(tmp_path, obs_source(
        modelarts, training_jobs=[JOB])))
    assert summary.exported == 3, summary.to_json()
    assert archived(tmp_path) == {f"{JOB}/{t}.txt": data for t, data in logs.items()}
    assert all(r.headers.get("Content-Type") == "application/octet-stream"
               for r in modelarts.link_requests)
    # The token goes to the API only, never to the storage.
    assert all("X-Auth-Token" not in r.headers for r in storage.requests)
    run = next(r for r in summary.results if r.run.fields["task_id"] == "worker-1").run
    assert run.fields == {"project_id": PROJECT, "training_job_id": JOB, "task_id": "worker-1"}
    assert run.completed is not None and run.metadata["phase"] == "Completed"


def test_tasks_fall_back_to_worker_0_and_only_finished_jobs(modelarts: ModelArtsAPI,
                                                            tmp_path: Path) -> None:
    modelarts.add("job-single", {"worker-0": b"single node\n"}, tasks=None)
    modelarts.add("job-running", {"worker-0": b"not yet\n"}, phase="Running")
    modelarts.add("job-failed", {"worker-0": b"boom\n"}, phase="Failed")
    modelarts.add("job-stopped", {"worker-0": b"stopped\n"}, phase="Terminated")
    source = obs_source(modelarts,
                        training_jobs=["job-single", "job-running", "job-failed", "job-stopped",
                                       "job-missing"])
    summary = logarchive.export(config_for(tmp_path, source))
    assert summary.exported == 3 and summary.count("not_ready") == 1 and summary.exit_code == 0
    assert archived(tmp_path) == {"job-single/worker-0.txt": b"single node\n",
                                  "job-failed/worker-0.txt": b"boom\n",
                                  "job-stopped/worker-0.txt": b"stopped\n"}
    statuses = {r.run.fields["training_job_id"]: r.run.status for r in summary.results}
    assert statuses["job-failed"] == "failed" and statuses["job-stopped"] == "killed"


def test_discovery_from_the_paginated_job_list(modelarts: ModelArtsAPI, tmp_path: Path) -> None:
    for i in range(7):
        modelarts.add(f"job-{i}", {"worker-0": f"job {i}\n".encode(),
                                   "worker-1": f"job {i} w1\n".encode()},
                      tasks=["worker-0", "worker-1"])
    summary = logarchive.export(config_for(tmp_path, obs_source(
        modelarts, page_size=3)))
    assert summary.exported == 14, summary.to_json()
    searches = [r for r in modelarts.requests if r.path.endswith("/training-job-searches")]
    assert [json.loads(r.body)["offset"] for r in searches] == [0, 1, 2]
    assert archived(tmp_path)["job-6/worker-1.txt"] == b"job 6 w1\n"


def test_expired_link_mid_download_asks_a_fresh_one_and_resumes(modelarts: ModelArtsAPI,
                                                                storage: OBSStorage,
                                                                tmp_path: Path) -> None:
    log = task_log("worker-0", 6000)
    modelarts.add(JOB, {"worker-0": log}, tasks=["worker-0"])
    storage.faults.append(Fault("expire", after=100_000))
    summary = logarchive.export(config_for(tmp_path, obs_source(
        modelarts, training_jobs=[JOB])))
    assert summary.exported == 1, summary.to_json()
    assert archived(tmp_path) == {f"{JOB}/worker-0.txt": log}
    assert len(modelarts.link_requests) >= 2  # a fresh link after the expiry
    assert storage.range_requests and storage.range_requests[-1] != "bytes=0-"


def test_link_expired_before_first_byte_is_refreshed(modelarts: ModelArtsAPI,
                                                     storage: OBSStorage,
                                                     tmp_path: Path) -> None:
    modelarts.add(JOB, {"worker-0": b"hello\n"}, tasks=["worker-0"])
    original = storage.sign
    calls = {"n": 0}

    def sign_first_expired(key: str) -> str:
        link = original(key)
        calls["n"] += 1
        if calls["n"] == 1:
            storage.expire_all()
        return link

    storage.sign = sign_first_expired  # type: ignore[method-assign]
    summary = logarchive.export(config_for(tmp_path, obs_source(
        modelarts, training_jobs=[JOB])))
    assert summary.exported == 1 and calls["n"] == 2


@pytest.mark.parametrize("faults", [
    [Fault("reset", after=50_000)],
    [Fault("stall", after=30_000, seconds=1.2)],
    [Fault("short", after=40_000)],
    [Fault("status", status=500), Fault("status", status=429, headers={"Retry-After": "0"})],
], ids=["reset", "stall", "short", "5xx-429"])
def test_faults_resume_to_equal_bytes(modelarts: ModelArtsAPI, storage: OBSStorage,
                                      tmp_path: Path, faults: list[Fault]) -> None:
    log = task_log("worker-0", 4000)
    modelarts.add(JOB, {"worker-0": log}, tasks=["worker-0"])
    storage.faults.extend(faults)
    summary = logarchive.export(config_for(tmp_path, obs_source(
        modelarts, training_jobs=[JOB], http=fast_http(read_timeout=0.3))))
    assert summary.exported == 1, summary.to_json()
    assert archived(tmp_path) == {f"{JOB}/worker-0.txt": log}


def test_storage_without_range_restarts_from_the_start(modelarts: ModelArtsAPI,
                                                       storage: OBSStorage,
                                                       tmp_path: Path) -> None:
    storage.ranges = False
    log = task_log("worker-0", 4000)
    modelarts.add(JOB, {"worker-0": log}, tasks=["worker-0"])
    storage.faults.append(Fault("reset", after=60_000))
    summary = logarchive.export(config_for(tmp_path, obs_source(
        modelarts, training_jobs=[JOB])))
    assert summary.exported == 1 and archived(tmp_path) == {f"{JOB}/worker-0.txt": log}


def test_short_body_without_progress_fails_and_commits_nothing(modelarts: ModelArtsAPI,
                                                               storage: OBSStorage,
                                                               tmp_path: Path) -> None:
    storage.ranges = False
    modelarts.add(JOB, {"worker-0": task_log("worker-0")}, tasks=["worker-0"])
    storage.faults.extend(Fault("short", after=5_000) for _ in range(10))
    summary = logarchive.export(config_for(tmp_path, obs_source(
        modelarts, training_jobs=[JOB])))
    assert summary.failed == 1 and archived(tmp_path) == {}


def test_invalid_token_fails_the_source_fast(modelarts: ModelArtsAPI, tmp_path: Path) -> None:
    modelarts.add(JOB, {"worker-0": b"x\n"})
    source = obs_source(modelarts, training_jobs=[JOB])
    source["token"] = "expired-token-0000"
    summary = logarchive.export(config_for(tmp_path, source))
    assert summary.exit_code == 1 and "token invalid or expired" in summary.errors[0]
    assert len(modelarts.requests) == 1


def test_missing_log_object_is_gone(modelarts: ModelArtsAPI, storage: OBSStorage,
                                    tmp_path: Path) -> None:
    modelarts.add(JOB, {"worker-0": b"x\n"}, tasks=["worker-0"])
    storage.objects.clear()
    summary = logarchive.export(config_for(tmp_path, obs_source(
        modelarts, training_jobs=[JOB])))
    assert summary.failed == 1 and "not found or purged" in summary.results[0].error


def test_token_and_presigned_query_never_appear_in_any_output(
        modelarts: ModelArtsAPI, storage: OBSStorage, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """Export with faults that make every layer talk (retries, expired links, a failed run),
    then search logs, errors, the ledger and the manifests for the token and the signature."""
    caplog.set_level(logging.DEBUG)
    modelarts.add(JOB, {"worker-0": task_log("worker-0", 5000),
                        "worker-1": task_log("worker-1")}, tasks=["worker-0", "worker-1"])
    modelarts.add("job-gone", {"worker-0": b"x\n"}, tasks=["worker-0"])
    del storage.objects[modelarts.key("job-gone", "worker-0")]
    storage.faults.extend([Fault("expire", after=80_000), Fault("reset", after=1000),
                           Fault("status", status=503, body=b"busy")])
    issued: list[str] = []
    original = storage.sign

    def remember(key: str) -> str:
        link = original(key)
        issued.append(link)
        return link

    storage.sign = remember  # type: ignore[method-assign]
    config = config_for(tmp_path, obs_source(modelarts,
                                             training_jobs=[JOB, "job-gone"]))
    summary = logarchive.export(config)
    assert summary.exported == 2 and summary.failed == 1
    runner = CliRunner()
    (tmp_path / "c.toml").write_text(toml_config(tmp_path, modelarts.url))
    cli = runner.invoke(logarchive.cli.main, ["-v", "export", "-c", str(tmp_path / "c.toml"),
                                              "--force", "--json"],
                        env={"MODELARTS_TOKEN": TOKEN})
    assert issued
    signatures = {link.split("Signature=")[1] for link in issued}
    secrets = {TOKEN, ACCESS_KEY, *signatures}
    captured = capsys.readouterr()
    outputs = {
        "stdout": captured.out, "stderr": captured.err,
        "logging": "\n".join(r.getMessage() for r in caplog.records),
        "summary": json.dumps(summary.to_json()), "cli": cli.output,
        "ledger": "\n".join(str(row) for table in ("deliveries",) for row in sqlite3.connect(
            tmp_path / "state" / "ledger.sqlite3").execute(f"select * from {table}")),
        "ledger_bytes": (tmp_path / "state" / "ledger.sqlite3").read_bytes().decode("latin-1"),
    }
    for manifest in (tmp_path / "archive").rglob("*.manifest.json"):
        outputs[str(manifest)] = manifest.read_text()
    assert any("manifest" in k for k in outputs)
    for name, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"{secret[:6]}... leaked in {name}"


def toml_config(tmp_path: Path, url: str) -> str:
    return f"""
[logarchive]
state_dir = "{tmp_path / 'state'}"

[sources.modelarts]
type = "obs"
endpoint = "{url}"
project_id = "{PROJECT}"
token = "${{MODELARTS_TOKEN}}"
training_jobs = ["{JOB}", "job-gone"]
http = {{ read_timeout = 2, retry = {{ max_retries = 2, backoff_initial = 0.01 }} }}

[sinks.archive]
type = "fs"
url = "{tmp_path / 'archive'}"
path = "{{training_job_id}}/{{task_id}}.{{ext}}"
"""


def test_cli_runs_lists_one_run_per_task(modelarts: ModelArtsAPI, tmp_path: Path) -> None:
    modelarts.add(JOB, {"worker-0": b"a\n", "worker-1": b"b\n"}, tasks=["worker-0", "worker-1"])
    modelarts.add("job-gone", {"worker-0": b"x\n"}, tasks=["worker-0"])
    (tmp_path / "c.toml").write_text(toml_config(tmp_path, modelarts.url))
    result = CliRunner().invoke(logarchive.cli.main, ["runs", "-c", str(tmp_path / "c.toml"),
                                                      "--json"], env={"MODELARTS_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted(r["fields"]["task_id"] for r in rows) == ["worker-0", "worker-0", "worker-1"]


def make_source(config: dict[str, Any]) -> ObsSource:
    cfg = ObsSource.Config.model_validate(config)
    return ObsSource("m", cfg, Context("m", structlog.get_logger(), threading.Event()))


def test_phase_mapping() -> None:
    from logarchive_obs import _status

    assert {p: _status(p) for p in ("Completed", "Failed", "Abnormal", "Terminated", "Running",
                                    "Pending", "Creating", "Terminating", "Weird")} == {
        "Completed": "completed", "Failed": "failed", "Abnormal": "failed",
        "Terminated": "killed", "Running": "running", "Pending": "pending",
        "Creating": "pending", "Terminating": "running", "Weird": "unknown"}


def test_tasks_as_objects_and_task_override(modelarts: ModelArtsAPI) -> None:
    modelarts.add(JOB, {}, tasks=[{"task": "worker-0"}, {"task": "worker-1"}])  # type: ignore[list-item]
    runs = list(make_source(obs_source(modelarts, training_jobs=[JOB])).discover())
    assert [r.fields["task_id"] for r in runs] == ["worker-0", "worker-1"]
    assert all(r.status == "completed" for r in runs)
    only = list(make_source(obs_source(modelarts, training_jobs=[JOB],
                                       tasks=["worker-1"])).discover())
    assert [r.fields["task_id"] for r in only] == ["worker-1"]


def test_check_asks_the_job_or_the_list_and_no_log_link(modelarts: ModelArtsAPI,
                                                       storage: OBSStorage,
                                                       loopback: LoopbackServer,
                                                       tmp_path: Path) -> None:
    from logarchive.check import run_checks

    modelarts.add(JOB, {"worker-0": task_log("worker-0", 10)})
    for source, words in ((obs_source(modelarts, training_jobs=[JOB]), f"training job {JOB}"),
                          (obs_source(modelarts, training_jobs=["gone-job"]), "credentials"),
                          (obs_source(modelarts), "training job list")):
        result = run_checks(config_for(tmp_path, source))[0]
        assert result.status == "ok" and words in result.detail, result.detail
    assert modelarts.link_requests == [] and len(modelarts.requests) == 3
    bad = obs_source(modelarts, training_jobs=[JOB], token="expired-obs-token-value")
    result = run_checks(config_for(tmp_path, bad))[0]
    assert result.status == "failed" and "token invalid or expired" in result.detail
    assert "expired-obs-token-value" not in result.detail
