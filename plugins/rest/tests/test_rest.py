"""The rest source against loopback servers that follow seed 000 and seed 002, through the real
engine (parse_config + export with an fs sink) and the CLI."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

import logarchive
from logarchive.base import Context
from logarchive.errors import ConfigError
from logarchive.plugins import default_registry
from logarchive.testing.servers import LoopbackServer
from logarchive.testing.sources import SourceCase, SourceKit
from logarchive_testsupport.workspace import archived
from logarchive_rest import RestSource
from logarchive_rest.testing import (
    SESSION, TOKEN, Fault, TrainingAPI, WorkflowAPI, default_lines, fast_http,
)

LOG = (b"2026-03-13T10:00:00.123Z [INFO] Initializing distributed training cluster.\n"
       b"2026-03-13T10:00:05.456Z [INFO] Successfully loaded dataset: 'churn_data_v2'. "
       b"Shape: (100000, 45)\n"
       b"2026-03-13T10:01:22.789Z [INFO] Epoch 1/50 - Loss: 0.6543 - Val_Loss: 0.6121\n"
       b"2026-03-13T10:02:45.012Z [WARN] Gradient clipping triggered on layer 'dense_2'.\n")


def big_log(lines: int = 3000, tag: str = "") -> bytes:
    return b"".join(f"2026-03-13T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z [INFO] step {i} {tag} "
                    f"loss=0.{i:04d}\n".encode() for i in range(lines))


def training_source(server: LoopbackServer, **extra: Any) -> dict[str, Any]:
    return {"type": "rest", "preset": "training-metrics", "base_url": server.url,
            "auth": {"bearer": TOKEN}, "http": fast_http(), **extra}


def workflow_source(server: LoopbackServer, **extra: Any) -> dict[str, Any]:
    return {"type": "rest", "preset": "workflow-jobs", "base_url": server.url,
            "auth": {"cookie": {"session": SESSION}}, "http": fast_http(), **extra}


def config_for(tmp_path: Path, source: dict[str, Any], *, fmt: str = "txt",
               path: str = "{source}/{run_path}.{ext}") -> logarchive.Config:
    return logarchive.parse_config({
        "logarchive": {"state_dir": str(tmp_path / "state"), "workers": 2},
        "sources": {"src": source},
        "sinks": {"archive": {"type": "fs", "url": str(tmp_path / "archive"), "format": fmt,
                              "path": path}},
    }, base_dir=tmp_path)


def make_source(config: dict[str, Any]) -> RestSource:
    cfg = RestSource.Config.model_validate(config)
    return RestSource("src", cfg, Context("src", structlog.get_logger(), threading.Event()))


# --- plugin discovery -------------------------------------------------------------------------

def test_discovered_through_its_entry_point() -> None:
    entry = default_registry().sources["rest"]
    assert entry.cls is RestSource and entry.distribution == "logarchive-rest"


class TestRestConformance(SourceKit):
    """The source kit over seed 000's loopback server (explicit runs, streamed downloads)."""

    @pytest.fixture
    def source_case(self, training: TrainingAPI, loopback: LoopbackServer) -> SourceCase:
        runs = {("mdl-1", "run-a"): big_log(3000, "a"), ("mdl-1", "run-b"): LOG,
                ("mdl-2", "run-c"): big_log(500, "c")}
        for (model, run), text in runs.items():
            training.add(model, run, text)
        source = make_source(training_source(
            loopback, runs=[{"model_id": m, "run_id": r} for m, r in runs]))
        return SourceCase(source, {f"src/model_id={m}/run_id={r}": text
                                   for (m, r), text in runs.items()}, backend=training)

    def remove_run(self, case: SourceCase, run: Any) -> None:
        server_runs = case.backend.models[run.fields["model_id"]]
        server_runs[:] = [r for r in server_runs if r.run_id != run.fields["run_id"]]


# --- seed 000: training-metrics ---------------------------------------------------------------

def test_explicit_run_archived_byte_for_byte_with_bearer(training: TrainingAPI,
                                                         loopback: LoopbackServer,
                                                         tmp_path: Path) -> None:
    training.add("mdl-7f3a", "run-20260313-a4b9c2", LOG)
    config = config_for(tmp_path, training_source(
        loopback, runs=[{"model_id": "mdl-7f3a", "run_id": "run-20260313-a4b9c2"}]))
    summary = logarchive.export(config)
    assert summary.exported == 1 and summary.exit_code == 0, summary.to_json()
    assert archived(tmp_path) == {"src/mdl-7f3a/run-20260313-a4b9c2.txt": LOG}
    request = loopback.requests[-1]
    assert request.path == "/api/v1/models/mdl-7f3a/training-metrics/logs/download"
    assert request.query == {"run_id": "run-20260313-a4b9c2", "format": "txt"}


def test_models_means_latest_completed_run_once_per_run(training: TrainingAPI,
                                                        loopback: LoopbackServer,
                                                        tmp_path: Path) -> None:
    training.add("mdl-7f3a", "run-1", b"first\n")
    training.add("mdl-7f3a", "run-2", LOG)
    training.add("mdl-7f3a", "run-3", b"still running\n", completed=False)
    training.add("mdl-91bc", "run-9", b"other model\n")
    config = config_for(tmp_path, training_source(loopback, models=["mdl-7f3a", "mdl-91bc"]))
    first = logarchive.export(config)
    assert first.exported == 2 and first.exit_code == 0, first.to_json()
    assert archived(tmp_path) == {"src/mdl-7f3a/run-2.txt": LOG,
                                  "src/mdl-91bc/run-9.txt": b"other model\n"}
    probes = [r for r in loopback.requests if "run_id" not in r.query]
    assert len(probes) == 2  # one headers-only GET per model
    # A cron export 5 minutes later: same latest runs, nothing downloaded again.
    before = len(loopback.requests)
    second = logarchive.export(config)
    assert second.exported == 0 and second.skipped == 2 and second.exit_code == 0
    assert all("run_id" not in r.query for r in loopback.requests[before:])
    # A newer run completes: exactly that one is archived.
    training.models["mdl-7f3a"][-1].completed = True
    third = logarchive.export(config)
    assert third.exported == 1 and third.skipped == 1
    assert archived(tmp_path)["src/mdl-7f3a/run-3.txt"] == b"still running\n"


def test_model_without_completed_run_is_skipped_with_a_warning(training: TrainingAPI,
                                                               loopback: LoopbackServer,
                                                               tmp_path: Path) -> None:
    training.add("mdl-7f3a", "run-1", LOG)
    config = config_for(tmp_path, training_source(loopback, models=["mdl-7f3a", "mdl-none"]))
    summary = logarchive.export(config)
    assert summary.exported == 1 and summary.exit_code == 0


def test_format_json_is_streamed_back_into_the_same_lines(training: TrainingAPI,
                                                          loopback: LoopbackServer,
                                                          tmp_path: Path) -> None:
    log = big_log(2000)
    training.add("mdl-7f3a", "run-json", log)
    config = config_for(tmp_path, training_source(loopback, models=["mdl-7f3a"], format="json"))
    summary = logarchive.export(config)
    assert summary.exported == 1, summary.to_json()
    assert archived(tmp_path) == {"src/mdl-7f3a/run-json.txt": log}
    assert loopback.requests[-1].query["format"] == "json"


def test_legacy_alias_path(training: TrainingAPI, loopback: LoopbackServer,
                           tmp_path: Path) -> None:
    training.add("mdl-7f3a", "run-1", LOG)
    config = config_for(tmp_path, training_source(loopback, models=["mdl-7f3a"],
                                                  legacy_path=True))
    assert logarchive.export(config).exported == 1
    assert {r.path for r in loopback.requests} == {
        "/api/v1/models/mdl-7f3a/training/metrics/logs/download"}


def test_401_fails_the_source_fast_without_retry_storm(training: TrainingAPI,
                                                       loopback: LoopbackServer,
                                                       tmp_path: Path) -> None:
    runs = [{"model_id": "mdl-7f3a", "run_id": f"run-{i}"} for i in range(6)]
    source = training_source(loopback, runs=runs)
    source["auth"] = {"bearer": "expired-token-value-123"}
    config = config_for(tmp_path, source)
    summary = logarchive.export(config, workers=1)
    assert summary.failed == 6 and summary.exit_code == 1
    assert all("token invalid or expired" in r.error for r in summary.results)
    assert len(loopback.requests) == 1  # one 401, no retries, no request per run


def test_401_during_discovery_of_models(training: TrainingAPI, loopback: LoopbackServer,
                                        tmp_path: Path) -> None:
    source = training_source(loopback, models=["mdl-7f3a"])
    source["auth"] = {"bearer": "expired-token-value-123"}
    summary = logarchive.export(config_for(tmp_path, source))
    assert summary.exit_code == 1 and "token invalid or expired" in summary.errors[0]
    assert len(loopback.requests) == 1


def test_400_names_format_403_names_permissions_404_is_gone(training: TrainingAPI,
                                                            loopback: LoopbackServer,
                                                            tmp_path: Path) -> None:
    training.add("mdl-ok", "run-1", LOG)
    training.add("mdl-secret", "run-2", LOG)
    training.forbidden.add("mdl-secret")
    runs = [{"model_id": "mdl-secret", "run_id": "run-2"},
            {"model_id": "mdl-ok", "run_id": "run-purged"}]
    config = config_for(tmp_path, training_source(loopback, runs=runs))
    summary = logarchive.export(config)
    errors = {r.run.fields["run_id"]: r.error for r in summary.results}
    assert "model:read" in errors["run-2"] and "organization:viewer" in errors["run-2"]
    assert "not found or purged at source" in errors["run-purged"]
    assert summary.exit_code == 1
    # 404 is recorded as gone: the next export does not ask again.
    before = len(loopback.requests)
    again = logarchive.export(config)
    assert [r.run.fields["run_id"] for r in again.results] == ["run-2"]
    assert all(r.query.get("run_id") != "run-purged" for r in loopback.requests[before:])
    # 400: the server does not accept the format -> a configuration message naming `format`.
    training.formats = {"txt"}
    bad = config_for(tmp_path / "b", training_source(
        loopback, runs=[{"model_id": "mdl-ok", "run_id": "run-1"}], format="json"))
    result = logarchive.export(bad)
    assert result.failed == 1 and "format" in result.results[0].error
    assert "sources.src.format" in result.results[0].error


@pytest.mark.parametrize("header", [
    'attachment; filename="training-log-../../etc/passwd.txt"',
    'attachment; filename="training-log-run\\"x.txt"',
    'attachment; filename="something-else.txt"',
    "attachment",
])
def test_run_id_from_content_disposition_is_validated(training: TrainingAPI,
                                                      loopback: LoopbackServer, tmp_path: Path,
                                                      header: str) -> None:
    training.add("mdl-7f3a", "run-1", LOG)
    training.disposition["run-1"] = header
    summary = logarchive.export(config_for(tmp_path, training_source(loopback,
                                                                     models=["mdl-7f3a"])))
    assert summary.exit_code == 1 and summary.exported == 0
    assert "Content-Disposition" in summary.errors[0]
    assert archived(tmp_path) == {}


def test_run_id_with_rfc6266_filename_star(training: TrainingAPI, loopback: LoopbackServer,
                                           tmp_path: Path) -> None:
    training.add("mdl-7f3a", "run-77", LOG)
    training.disposition["run-77"] = "attachment; filename*=UTF-8''training-log-run-77.txt"
    assert logarchive.export(config_for(tmp_path, training_source(
        loopback, models=["mdl-7f3a"]))).exported == 1
    assert "src/mdl-7f3a/run-77.txt" in archived(tmp_path)


# --- faults (seed 000 server: Content-Length and Range) ----------------------------------------

def export_one_training(training: TrainingAPI, loopback: LoopbackServer, tmp_path: Path,
                        log: bytes, faults: list[Fault], **http: Any) -> Any:
    training.add("mdl-7f3a", "run-1", log)
    training.faults.extend(faults)
    source = training_source(loopback, runs=[{"model_id": "mdl-7f3a", "run_id": "run-1"}])
    if http:
        source["http"] = fast_http(**http)
    return logarchive.export(config_for(tmp_path, source))


@pytest.mark.scenario(
    "source connection reset mid-stream",
    "a seed-000 server resets the connection twice mid-body: the download resumes with Range "
    "and the archive equals the source byte for byte",
)
def test_reset_mid_stream_resumes_with_range(training: TrainingAPI, loopback: LoopbackServer,
                                             tmp_path: Path) -> None:
    log = big_log(5000)
    summary = export_one_training(training, loopback, tmp_path, log,
                                  [Fault("reset", after=70_000), Fault("reset", after=50_000)])
    assert summary.exported == 1, summary.to_json()
    assert archived(tmp_path)["src/mdl-7f3a/run-1.txt"] == log
    assert training.range_requests[0].startswith("bytes=") and len(training.range_requests) == 2


@pytest.mark.scenario(
    "source reset without Range support",
    "the server ignores Range: the download restarts, skips the delivered prefix after "
    "checking it is unchanged, archive byte-equal",
)
def test_reset_without_range_support_restarts_and_skips_prefix(training: TrainingAPI,
                                                               loopback: LoopbackServer,
                                                               tmp_path: Path) -> None:
    training.ranges = False
    log = big_log(5000)
    summary = export_one_training(training, loopback, tmp_path, log, [Fault("reset", after=90_000)])
    assert summary.exported == 1, summary.to_json()
    assert archived(tmp_path)["src/mdl-7f3a/run-1.txt"] == log


@pytest.mark.scenario(
    "wrong Content-Length (short body)",
    "every answer stops before Content-Length: the run fails after bounded retries, nothing "
    "archived, ledger not delivered",
)
def test_short_body_is_never_a_complete_archive(training: TrainingAPI, loopback: LoopbackServer,
                                                tmp_path: Path) -> None:
    training.ranges = False  # every answer stops at the same byte: no progress is possible
    log = big_log(2000)
    faults = [Fault("short", after=10_000) for _ in range(10)]
    summary = export_one_training(training, loopback, tmp_path, log, faults)
    assert summary.failed == 1 and summary.exported == 0
    assert "10000 bytes received" in summary.results[0].error
    assert archived(tmp_path) == {}
    ledger = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    statuses = [row[0] for row in ledger.execute("select status from deliveries")]
    assert statuses and "delivered" not in statuses


def test_short_bodies_resumed_with_range_until_complete(training: TrainingAPI,
                                                       loopback: LoopbackServer,
                                                       tmp_path: Path) -> None:
    """Each answer stops short, but each resumes where the last stopped: more drops than the
    retry budget, yet every one made progress, so the log completes, byte for byte."""
    log = big_log(2000)
    faults = [Fault("short", after=10_000) for _ in range(8)]
    summary = export_one_training(training, loopback, tmp_path, log, faults)
    assert summary.exported == 1 and archived(tmp_path)["src/mdl-7f3a/run-1.txt"] == log
    assert len(training.range_requests) == 8


@pytest.mark.scenario(
    "stalled source stream",
    "the server stops sending mid-body: read timeout, retried with Range, archive byte-equal",
)
def test_stalled_stream_times_out_and_is_retried(training: TrainingAPI, loopback: LoopbackServer,
                                                 tmp_path: Path) -> None:
    log = big_log(2000)
    summary = export_one_training(training, loopback, tmp_path, log,
                                  [Fault("stall", after=20_000, seconds=1.5)], read_timeout=0.3)
    assert summary.exported == 1, summary.to_json()
    assert archived(tmp_path)["src/mdl-7f3a/run-1.txt"] == log


@pytest.mark.scenario(
    "source 500 then recovering, 429 with Retry-After",
    "500, 429 (Retry-After) and 503 before the log: retried and exported byte for byte in 4 "
    "requests",
)
def test_500_then_recover_and_429_with_retry_after(training: TrainingAPI,
                                                   loopback: LoopbackServer,
                                                   tmp_path: Path) -> None:
    faults = [Fault("status", status=500, body=b'{"error":"Internal"}'),
              Fault("status", status=429, headers={"Retry-After": "0"},
                    body=b'{"error":"Too Many Requests"}'),
              Fault("status", status=503)]
    summary = export_one_training(training, loopback, tmp_path, LOG, faults)
    assert summary.exported == 1, summary.to_json()
    assert archived(tmp_path)["src/mdl-7f3a/run-1.txt"] == LOG
    assert len(loopback.requests) == 4


@pytest.mark.scenario(
    "slow-drip source",
    "the server sends 2 KiB every 20 ms (never idle long enough to stall): the export waits, "
    "completes, and the archive equals the source",
)
def test_slow_drip_completes(training: TrainingAPI, loopback: LoopbackServer,
                             tmp_path: Path) -> None:
    log = big_log(1500)
    summary = export_one_training(training, loopback, tmp_path, log,
                                  [Fault("drip", after=2048, seconds=0.02)], read_timeout=0.5)
    assert summary.exported == 1, summary.to_json()
    assert archived(tmp_path)["src/mdl-7f3a/run-1.txt"] == log
    assert training.range_requests == []  # never counted as a stall


@pytest.mark.scenario(
    "429 storm with Retry-After",
    "12 consecutive 429s with Retry-After: within a retry budget of 15 the run completes after "
    "exactly 13 requests; past the budget it fails cleanly (nothing archived) and the next export "
    "delivers it",
)
def test_429_storm_with_retry_after(training: TrainingAPI, loopback: LoopbackServer,
                                    tmp_path: Path) -> None:
    storm = [Fault("status", status=429, headers={"Retry-After": "0"},
                   body=b'{"error":"Too Many Requests"}') for _ in range(12)]
    summary = export_one_training(training, loopback, tmp_path, LOG, storm,
                                  retry={"max_retries": 15})
    assert summary.exported == 1, summary.to_json()
    assert len(loopback.requests) == 13
    other = tmp_path / "budget"
    other.mkdir()
    storm = [Fault("status", status=429, headers={"Retry-After": "0"}) for _ in range(12)]
    failed = export_one_training(training, loopback, other, LOG, storm,
                                 retry={"max_retries": 3})
    assert failed.failed == 1 and "HTTP 429" in failed.results[0].error
    assert archived(other) == {}
    training.faults.clear()
    again = export_one_training(training, loopback, other, LOG, [])
    assert again.exported == 1 and archived(other)["src/mdl-7f3a/run-1.txt"] == LOG


def test_retries_exhausted_is_a_failure(training: TrainingAPI, loopback: LoopbackServer,
                                        tmp_path: Path) -> None:
    faults = [Fault("status", status=500) for _ in range(10)]
    summary = export_one_training(training, loopback, tmp_path, LOG, faults)
    assert summary.failed == 1 and "HTTP 500" in summary.results[0].error
    assert archived(tmp_path) == {}


# --- seed 002: workflow-jobs ------------------------------------------------------------------

def test_workflow_job_archived_with_session_cookie(workflows: WorkflowAPI,
                                                   loopback: LoopbackServer,
                                                   tmp_path: Path) -> None:
    workflows.add("01JGXYZ", "01JGABC")
    workflows.add("01JGXYZ", "01JGFAIL", status="FAILED", lines=["Starting job", "boom"])
    jobs = [{"workflow_id": "01JGXYZ", "job_id": "01JGABC"},
            {"workflow_id": "01JGXYZ", "job_id": "01JGFAIL"}]
    summary = logarchive.export(config_for(tmp_path, workflow_source(loopback, jobs=jobs)))
    assert summary.exported == 2, summary.to_json()
    expected = "".join(f"{line}\n" for line in default_lines("01JGABC")).encode()
    assert archived(tmp_path) == {"src/01JGXYZ/01JGABC.txt": expected,
                                  "src/01JGXYZ/01JGFAIL.txt": b"Starting job\nboom\n"}
    assert {r.path for r in loopback.requests} == {"/workflows/01JGXYZ/jobs/01JGABC/logs/raw",
                                                   "/workflows/01JGXYZ/jobs/01JGFAIL/logs/raw"}


def test_workflow_job_not_finished_is_skipped_then_picked_up(workflows: WorkflowAPI,
                                                             loopback: LoopbackServer,
                                                             tmp_path: Path) -> None:
    job = workflows.add("01JGXYZ", "01JGRUN", status="RUNNING")
    config = config_for(tmp_path, workflow_source(
        loopback, jobs=[{"workflow_id": "01JGXYZ", "job_id": "01JGRUN"}]))
    first = logarchive.export(config)
    assert first.exit_code == 0 and first.count("not_ready") == 1 and first.exported == 0
    assert archived(tmp_path) == {}
    job.status = "COMPLETED"
    second = logarchive.export(config)
    assert second.exported == 1 and second.exit_code == 0


@pytest.mark.scenario(
    "error trailer inside a 200 stream (seed 002)",
    "the run fails with the reason, nothing committed to any sink, retried and delivered next"
    " time",
)
def test_error_trailer_fails_the_run_and_nothing_is_committed(workflows: WorkflowAPI,
                                                              loopback: LoopbackServer,
                                                              tmp_path: Path) -> None:
    job = workflows.add("01JGXYZ", "01JGERR", error="context deadline exceeded")
    config = config_for(tmp_path, workflow_source(
        loopback, jobs=[{"workflow_id": "01JGXYZ", "job_id": "01JGERR"}]), fmt="ndjson")
    summary = logarchive.export(config)
    assert summary.failed == 1 and summary.exit_code == 1
    error = summary.results[0].error
    assert "failed to fetch logs" in error and "context deadline exceeded" in error
    assert archived(tmp_path) == {}
    ledger = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    rows = list(ledger.execute("select status, error from deliveries"))
    assert rows and rows[0][0] == "failed" and "context deadline exceeded" in rows[0][1]
    # Retried by the next export; this time the storage answers.
    job.error = None
    again = logarchive.export(config)
    assert again.exported == 1
    lines = [json.loads(x)["message"] for x in
             archived(tmp_path)["src/01JGXYZ/01JGERR.ndjson"].splitlines()]
    assert lines == default_lines("01JGERR")


def test_error_trailer_never_reaches_a_record_sink(workflows: WorkflowAPI) -> None:
    """The trailer lines are held back from the stream: a consumer (a record sink) sees only
    the log lines, then the failure."""
    from logarchive_rest.streams import TrailerFilter

    workflows.add("w", "j", lines=["a", "b"], error="context deadline exceeded")
    body = workflows.body(workflows.jobs[("w", "j")])
    for size in (1, 3, 7, len(body)):
        trailer = TrailerFilter()
        out = b"".join(trailer.feed(body[i:i + size]) for i in range(0, len(body), size))
        with pytest.raises(logarchive.SourceError, match="context deadline exceeded"):
            trailer.finish()
        assert out == b"a\nb\n"


def test_workflow_401_is_fatal_and_404_is_gone(workflows: WorkflowAPI, loopback: LoopbackServer,
                                               tmp_path: Path) -> None:
    jobs = [{"workflow_id": "w1", "job_id": f"j{i}"} for i in range(4)]
    source = workflow_source(loopback, jobs=jobs)
    source["auth"] = {"cookie": {"session": "stale-session-000"}}
    summary = logarchive.export(config_for(tmp_path, source), workers=1)
    assert summary.failed == 4 and len(loopback.requests) == 1
    assert "session invalid or expired" in summary.results[0].error
    gone = logarchive.export(config_for(tmp_path / "g", workflow_source(
        loopback, jobs=[{"workflow_id": "w1", "job_id": "nope"}])))
    assert gone.failed == 1 and "not found" in gone.results[0].error


def test_workflow_drop_mid_stream_restarts_without_range(workflows: WorkflowAPI,
                                                         loopback: LoopbackServer,
                                                         tmp_path: Path) -> None:
    lines = [f"Processing records: line {i}" for i in range(20_000)]
    workflows.add("w", "j", lines=lines)
    workflows.faults.append(Fault("reset", after=120_000))
    summary = logarchive.export(config_for(tmp_path, workflow_source(
        loopback, jobs=[{"workflow_id": "w", "job_id": "j"}])))
    assert summary.exported == 1, summary.to_json()
    assert archived(tmp_path)["src/w/j.txt"] == "".join(f"{x}\n" for x in lines).encode()


def test_workflow_500_retried_then_fails(workflows: WorkflowAPI, loopback: LoopbackServer,
                                         tmp_path: Path) -> None:
    workflows.add("w", "j")
    workflows.faults.extend(Fault("status", status=500, body=b"Streaming not supported\n")
                            for _ in range(10))
    summary = logarchive.export(config_for(tmp_path, workflow_source(
        loopback, jobs=[{"workflow_id": "w", "job_id": "j"}])))
    assert summary.failed == 1 and len(loopback.requests) == 4  # 1 + 3 retries


# --- discovery from a list endpoint ------------------------------------------------------------

def test_training_discovery_lists_models_by_next_token(training: TrainingAPI,
                                                       loopback: LoopbackServer,
                                                       tmp_path: Path) -> None:
    for i in range(5):
        training.add(f"mdl-{i}", f"run-{i}", f"log of model {i}\n".encode())
    source = training_source(loopback, discover={
        "url": "/api/v1/models", "items": "/data", "fields": {"model_id": "/id"},
        "next_token": "/next_page_token", "token_param": "page_token",
        "metadata": {"name": "/name"}})
    summary = logarchive.export(config_for(tmp_path, source))
    assert summary.exported == 5, summary.to_json()
    assert archived(tmp_path)["src/mdl-3/run-3.txt"] == b"log of model 3\n"
    assert len([r for r in loopback.requests if r.path == "/api/v1/models"]) == 3
    # A new model appears: found without editing the config.
    training.add("mdl-new", "run-new", b"new\n")
    assert logarchive.export(config_for(tmp_path, source)).exported == 1


def test_workflow_discovery_by_link_header_with_status(workflows: WorkflowAPI,
                                                       loopback: LoopbackServer,
                                                       tmp_path: Path) -> None:
    workflows.add("01JGXYZ", "a")
    workflows.add("01JGXYZ", "b", status="FAILED")
    workflows.add("01JGXYZ", "c", status="RUNNING")
    workflows.add("01JGXYZ", "d", status="PENDING")
    workflows.add("01JGXYZ", "e")
    source = workflow_source(loopback, discover={
        "url": "/workflows/01JGXYZ/jobs", "items": "/jobs",
        "fields": {"workflow_id": "/workflow/id", "job_id": "/id"}, "status": "/status"})
    src = make_source(source)
    runs = {r.fields["job_id"]: r.status for r in src.discover()}
    assert runs == {"a": "completed", "b": "failed", "c": "running", "d": "pending",
                    "e": "completed"}
    summary = logarchive.export(config_for(tmp_path, source))
    assert summary.exported == 3 and summary.count("not_ready") == 2 and summary.exit_code == 0
    assert not any(r.path.endswith("/c/logs/raw") for r in loopback.requests)


def test_list_endpoint_next_page_on_another_host_is_refused(loopback: LoopbackServer) -> None:
    def handler(req: Any) -> None:
        req.send_json(200, {"items": [{"id": "r1"}]},
                      {"Link": '<http://evil.example:9/steal>; rel="next"'})

    loopback.handler = handler
    src = make_source({"type": "rest", "base_url": loopback.url, "url": "/logs/{run_id}",
                       "discover": {"url": "/runs", "fields": {"run_id": "/id"}},
                       "http": fast_http()})
    with pytest.raises(logarchive.SourceError, match="another host"):
        list(src.discover())


# --- generic form -----------------------------------------------------------------------------

def test_generic_template_params_headers_and_api_key_auth(loopback: LoopbackServer,
                                                          tmp_path: Path) -> None:
    seen: list[Any] = []

    def handler(req: Any) -> None:
        seen.append(req)
        if req.headers.get("DD-API-KEY") != "dd-api-key-value-1234":
            req.send(403, b'{"errors":["Forbidden"]}', {"Content-Type": "application/json"})
            return
        if req.path == "/api/runs":
            req.send_json(200, {"runs": [{"project": "p1", "id": "r/1", "state": "SUCCEEDED"},
                                         {"project": "p1", "id": "r2", "state": "RUNNING"}]})
            return
        req.send(200, f"log of {req.path} attempt={req.query.get('attempt')}\n".encode(),
                 {"Content-Type": "text/plain"})

    loopback.handler = handler
    source = {"type": "rest", "base_url": loopback.url, "url": "/api/projects/{project}/runs/"
              "{run_id}/log", "params": {"attempt": "1", "tail": "{run_id}"},
              "headers": {"Accept": "text/plain"},
              "auth": {"headers": {"DD-API-KEY": "dd-api-key-value-1234"}},
              "runs": [{"project": "p0", "run_id": "r0"}],
              "discover": {"url": "/api/runs", "items": "/runs",
                           "fields": {"project": "/project", "run_id": "/id"}, "status": "/state"},
              "http": fast_http()}
    summary = logarchive.export(config_for(tmp_path, source))
    assert summary.exported == 2 and summary.count("not_ready") == 1, summary.to_json()
    files = archived(tmp_path)
    assert files["src/p0/r0.txt"] == b"log of /api/projects/p0/runs/r0/log attempt=1\n"
    # A slash in a server-given id is URL-quoted: it cannot change the request path.
    assert files["src/p1/r_1.txt"] == b"log of /api/projects/p1/runs/r%2F1/log attempt=1\n"
    assert all(r.headers.get("Accept") == "text/plain" for r in seen)


def test_generic_basic_auth_and_statuses(loopback: LoopbackServer, tmp_path: Path) -> None:
    import base64

    expected = "Basic " + base64.b64encode(b"svc:pw-secret-42").decode()

    def handler(req: Any) -> None:
        if req.headers.get("Authorization") != expected:
            req.send(401, b"no")
        elif req.path.endswith("/busy"):
            req.send(409, b"not finished")
        elif req.path.endswith("/old"):
            req.send(410, b"gone")
        else:
            req.send(200, b"ok\n")

    loopback.handler = handler
    source = {"type": "rest", "base_url": loopback.url, "url": "/logs/{run_id}",
              "auth": {"basic": {"username": "svc", "password": "pw-secret-42"}},
              "not_ready_status": [409],
              "runs": [{"run_id": "ok"}, {"run_id": "busy"}, {"run_id": "old"}],
              "http": fast_http()}
    summary = logarchive.export(config_for(tmp_path, source))
    status = {r.run.fields["run_id"]: r.status for r in summary.results}
    assert status == {"ok": "exported", "busy": "not_ready", "old": "failed"}


def test_generic_json_array_with_error_trailer(loopback: LoopbackServer, tmp_path: Path) -> None:
    def handler(req: Any) -> None:
        req.send(200, json.dumps([{"text": "one"}, {"text": "two"}]).encode(),
                 {"Content-Type": "application/json"})

    loopback.handler = handler
    source = {"type": "rest", "base_url": loopback.url, "url": "/logs/{run_id}",
              "response": "json-array", "json_line_field": "text",
              "error_trailer": "!! FAILED !!", "runs": [{"run_id": "r"}], "http": fast_http()}
    assert logarchive.export(config_for(tmp_path, source)).exported == 1
    assert archived(tmp_path) == {"src/r.txt": b"one\ntwo\n"}


@pytest.mark.parametrize("source, message", [
    ({"preset": "training-metrics", "jobs": [{"workflow_id": "w", "job_id": "j"}]}, "jobs"),
    ({"preset": "training-metrics", "runs": [{"model_id": "m"}]}, "model_id and run_id"),
    ({"preset": "workflow-jobs", "models": ["m"]}, "training-metrics"),
    ({"preset": "workflow-jobs", "url": "/x"}, "generic form"),
    ({"url": "/logs/{run_id}", "runs": [{"job": "x"}]}, "run_id"),
    ({"models": ["m"], "url": "/x"}, "preset"),
    ({"preset": "training-metrics", "format": "xml"}, "format"),
    ({"preset": "nope"}, "preset"),
])
def test_config_errors_name_the_key(source: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        config_for(tmp_path, {"type": "rest", "base_url": "http://127.0.0.1:9", **source})


# --- CLI --------------------------------------------------------------------------------------

def test_cli_runs_and_export(training: TrainingAPI, loopback: LoopbackServer,
                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from logarchive.cli import main

    training.add("mdl-7f3a", "run-20260313-a4b9c2", LOG)
    (tmp_path / "logarchive.toml").write_text(f"""
[logarchive]
state_dir = "state"

[sources.training]
type = "rest"
preset = "training-metrics"
base_url = "{loopback.url}"
auth = {{ bearer = "${{TRAINING_API_TOKEN}}" }}
models = ["mdl-7f3a"]
http = {{ read_timeout = 2, retry = {{ max_retries = 2, backoff_initial = 0.01 }} }}

[sinks.archive]
type = "fs"
url = "archive"
path = "{{source}}/{{model_id}}/{{run_id}}.{{ext}}"
""")
    monkeypatch.setenv("TRAINING_API_TOKEN", TOKEN)
    runner = CliRunner()
    config = str(tmp_path / "logarchive.toml")
    listed = runner.invoke(main, ["runs", "-c", config, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r["fields"] for r in rows] == [{"model_id": "mdl-7f3a",
                                            "run_id": "run-20260313-a4b9c2"}]
    exported = runner.invoke(main, ["export", "-c", config])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "archive/training/mdl-7f3a/run-20260313-a4b9c2.txt").read_bytes() == LOG
    assert TOKEN not in exported.output and TOKEN not in listed.output


def test_token_never_appears_in_outputs(training: TrainingAPI, loopback: LoopbackServer,
                                        tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    training.add("mdl-7f3a", "run-1", LOG)
    training.forbidden.add("mdl-x")
    training.faults.extend([Fault("status", status=500), Fault("reset", after=100)])
    runs = [{"model_id": "mdl-7f3a", "run_id": "run-1"}, {"model_id": "mdl-x", "run_id": "r"}]
    summary = logarchive.export(config_for(tmp_path, training_source(loopback, runs=runs)))
    assert summary.exported == 1 and summary.failed == 1
    captured = capsys.readouterr()
    ledger = (tmp_path / "state" / "ledger.sqlite3").read_bytes().decode("latin-1")
    manifests = "".join(p.read_text() for p in (tmp_path / "archive").rglob("*.manifest.json"))
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for text in (captured.out, captured.err, logs, ledger, manifests,
                 json.dumps(summary.to_json())):
        assert TOKEN not in text


# --- logarchive check ---------------------------------------------------------------------------

def checked(tmp_path: Path, source: dict[str, Any]) -> dict[str, Any]:
    from logarchive.check import run_checks

    (tmp_path / "archive").mkdir(exist_ok=True)
    return {r.name: r for r in run_checks(config_for(tmp_path, source))}


def test_check_asks_headers_only_and_accepts_not_found(training: TrainingAPI,
                                                       loopback: LoopbackServer,
                                                       tmp_path: Path) -> None:
    training.add("mdl-7f3a", "run-1", big_log())
    result = checked(tmp_path, training_source(loopback, models=["mdl-7f3a"]))["src"]
    assert result.status == "ok", result.detail
    gone = checked(tmp_path, training_source(
        loopback, runs=[{"model_id": "mdl-none", "run_id": "run-9"}]))["src"]
    assert gone.status == "ok" and "credentials accepted" in gone.detail
    listed = checked(tmp_path, training_source(loopback, discover={
        "url": "/api/v1/models", "items": "/data", "fields": {"model_id": "/id"}}))
    assert listed["src"].status == "ok", listed["src"].detail
    assert [r.path for r in loopback.requests] == [
        "/api/v1/models/mdl-7f3a/training-metrics/logs/download",
        "/api/v1/models/mdl-none/training-metrics/logs/download", "/api/v1/models"]


def test_check_fails_on_an_expired_token(training: TrainingAPI, loopback: LoopbackServer,
                                         tmp_path: Path) -> None:
    source = training_source(loopback, models=["mdl-7f3a"])
    source["auth"] = {"bearer": "expired-token-value-123"}
    result = checked(tmp_path, source)["src"]
    assert result.status == "failed" and "token invalid or expired" in result.detail
    assert "expired-token-value-123" not in result.detail


MARKER = b"--- ERROR: failed to fetch logs ---"


def _filtered(body: bytes, size: int) -> tuple[bytes, str | None]:
    from logarchive_rest.streams import TrailerFilter

    trailer = TrailerFilter()
    out = b"".join(trailer.feed(body[i:i + size]) for i in range(0, len(body), size))
    try:
        out += trailer.finish()
    except logarchive.SourceError as exc:
        return out, str(exc)
    return out, None


@pytest.mark.parametrize("size", [1, 5, 64, 100_000])
def test_trailer_counts_only_at_the_end_of_the_stream(size: int) -> None:
    ordinary = b"".join(b"step %d\n" % i for i in range(6))
    for body in (b"a " + MARKER + b"\n" + ordinary,           # mid-log, at a line's end
                 MARKER + b"\n" + ordinary,                   # mid-log, alone on its line
                 ordinary + MARKER + b" said the server\n" + ordinary,
                 b"x" * 70_000 + MARKER + b"\n" + b"y" * 70_000 + b"\n"):
        assert _filtered(body, size) == (body, None)
    for body, reason in ((ordinary + MARKER + b"\ncontext deadline exceeded\n",
                          "context deadline exceeded"),
                         (ordinary + MARKER, "no reason given"),
                         (ordinary[:-1] + MARKER + b"\nquota\nexceeded", "quota exceeded")):
        out, error = _filtered(body, size)
        assert out == ordinary[:-1] + (b"\n" if body.startswith(ordinary) else b"")
        assert error is not None and reason in error
