"""Prometheus metrics of one export, for schedulers and cron alerting.

``export --metrics-file PATH`` writes them in the text exposition format for node_exporter's
textfile collector (a temp file in the same folder, then a rename: the collector never reads half a
file); ``export --pushgateway URL`` pushes the same registry to a Pushgateway (job
``logarchive``). Both need the ``metrics`` extra (``pip install 'logarchive[metrics]'``).

The time of the last successful export of each pipeline (no failed, interrupted or locked run)
outlives the run that set it: it is kept in ``STATE_DIR/metrics.json`` and written again by every
later export, so an alert on ``time() - logarchive_last_success_timestamp_seconds`` works even
when the last runs failed.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from logarchive.config import Config
from logarchive.errors import ConfigError
from logarchive.results import ExportSummary, RunResult
from logarchive.secrets import redact_url
from logarchive.status import RunStatus

JOB = "logarchive"
STATE_FILE = "metrics.json"
_UNSUCCESSFUL = (RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.LOCKED,
                 RunStatus.LEASE_LOST)


def require_client() -> None:
    """Fail before exporting when the ``metrics`` extra is not installed."""
    if importlib.util.find_spec("prometheus_client") is None:
        raise ConfigError("--metrics-file and --pushgateway need prometheus_client: "
                          "pip install 'logarchive[metrics]'")


def sink_status(result: RunResult, sink: str) -> str:
    """What happened to ``result``'s run at ``sink``: the run's status unless the sink's own
    outcome says otherwise (``delivered`` counts as exported)."""
    outcome = result.sinks.get(sink)
    if outcome is None:
        return str(result.status)
    word = outcome.split(":", 1)[0]
    return RunStatus.EXPORTED.value if word == RunStatus.DELIVERED else word


def last_success(summary: ExportSummary, pipelines: dict[str, list[str]], state_dir: Path,
                 now: float) -> dict[str, float]:
    """Per pipeline, the time of its last successful export, updated with this one and saved."""
    path = state_dir / STATE_FILE
    try:
        known: dict[str, float] = orjson.loads(path.read_bytes())
    except (OSError, ValueError):
        known = {}
    if summary.interrupted_by is None and not summary.dry_run and not summary.errors:
        for name in pipelines:
            if not any(r.pipeline == name and r.status in _UNSUCCESSFUL for r in summary.results):
                known[name] = now
    atomic_write(path, orjson.dumps(known))
    return {name: known[name] for name in pipelines if name in known}


def registry(summary: ExportSummary, pipelines: dict[str, list[str]],
             successes: dict[str, float]) -> Any:
    """A prometheus_client registry with this export's metrics; ``pipelines`` maps each
    exported pipeline to its sinks."""
    from prometheus_client import CollectorRegistry, Gauge

    reg = CollectorRegistry()
    runs = Gauge("logarchive_runs", "Runs in the last export by outcome, per pipeline and sink",
                 ["pipeline", "sink", "status"], registry=reg)
    per_pipeline = {
        "bytes": Gauge("logarchive_exported_bytes", "Bytes exported by the last export",
                       ["pipeline"], registry=reg),
        "lines": Gauge("logarchive_exported_lines", "Lines exported by the last export",
                       ["pipeline"], registry=reg),
    }
    for name, sinks in pipelines.items():
        results = [r for r in summary.results if r.pipeline == name]
        for sink in sinks:
            for status in ("exported", "skipped", "failed", "not_ready"):
                runs.labels(name, sink, status).set(0)
            for result in results:
                runs.labels(name, sink, sink_status(result, sink)).inc()
        exported = [r for r in results if r.status == RunStatus.EXPORTED]
        per_pipeline["bytes"].labels(name).set(sum(r.bytes for r in exported))
        per_pipeline["lines"].labels(name).set(sum(r.lines for r in exported))
    Gauge("logarchive_export_duration_seconds", "Duration of the last export",
          registry=reg).set(summary.seconds)
    Gauge("logarchive_export_exit_code", "Exit status of the last export",
          registry=reg).set(summary.exit_code)
    success = Gauge("logarchive_last_success_timestamp_seconds",
                    "Unix time of the last export of the pipeline with no failed run",
                    ["pipeline"], registry=reg)
    for name, when in successes.items():
        success.labels(name).set(when)
    return reg


def publish_for(summary: ExportSummary, config: Config, pipeline: str | None, *,
                metrics_file: str | None, pushgateway: str | None) -> str | None:
    """Write ``metrics_file`` and/or push to ``pushgateway`` the metrics of the pipelines the
    export ran; the error message when that failed (the export itself is done)."""
    from prometheus_client import generate_latest, push_to_gateway

    chosen = [config.pipeline(pipeline)] if pipeline else config.pipelines
    pipelines = {p.name: list(p.sinks) for p in chosen}
    try:
        when = last_success(summary, pipelines, config.state_dir, time.time())
        reg = registry(summary, pipelines, when)
        if metrics_file:
            atomic_write(Path(metrics_file), generate_latest(reg))
    except OSError as exc:
        return f"cannot write metrics file {metrics_file}: {exc}"
    if pushgateway:
        try:
            push_to_gateway(pushgateway, job=JOB, registry=reg)
        except OSError as exc:
            return f"cannot push metrics to pushgateway {redact_url(pushgateway)}: {exc}"
    return None


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
