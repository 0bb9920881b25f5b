"""The engine: resolve runs, skip what is delivered, deliver the rest on a pool of workers.

Discovery, selection and the ledger's pending checks happen here; the delivery of one run (one
read of its log, every sink fed and committed) is :func:`logarchive.delivery.export_run`, and
what an export did is in :mod:`logarchive.results`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from contextlib import ExitStack, closing
from datetime import datetime

import structlog

from logarchive.base import ByteSinkConfig, StopEvent
from logarchive.codec import extension
from logarchive.config import Config, PipelineConfig
from logarchive.delivery import export_run, pending_sinks
from logarchive.errors import ConfigError, LogarchiveError
from logarchive.executor import Batch, Job, check_executor, executor_for
from logarchive.ledger import Ledger, existing_ledger, open_ledger
from logarchive.paths import render
from logarchive.pipeline import Pipeline, instantiate
from logarchive.results import ExportSummary, Progress, RunResult
from logarchive.runs import RunRef
from logarchive.status import RunStatus

__all__ = ["ExportSummary", "Progress", "RunResult", "export", "export_run"]

log = structlog.get_logger("logarchive")

def export(
    config: Config,
    pipeline: str | None = None,
    *,
    runs: Iterable[str] | None = None,
    since: datetime | None = None,
    dry_run: bool = False,
    force: bool = False,
    workers: int | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    ledger: Ledger | None = None,
) -> ExportSummary:
    """Export every finished, not yet delivered run of the config's pipelines.

    ``pipeline`` restricts to one pipeline; ``runs`` to runs matching a field value, a run key or
    ``field=value``; ``since`` to runs completed at or after that time. ``force`` re-delivers
    runs the ledger has. Returns an :class:`ExportSummary`; raises only for configuration or
    ledger errors (one run's failure never stops the others).
    """
    started = time.monotonic()
    stop = stop or threading.Event()
    selected = [config.pipeline(pipeline)] if pipeline else list(config.pipelines)
    selectors = list(runs or [])
    if workers is not None and workers < 1:
        raise ConfigError("--workers must be at least 1", key="workers")
    check_executor(config)
    summary = ExportSummary(dry_run=dry_run)
    with ExitStack() as cleanup:  # closes every pipeline, then the ledger if opened here
        if ledger is None:
            ledger = cleanup.enter_context(closing(_ledger_for(config, dry_run)))
        _warn_new_ledger(config, selected, ledger, summary)
        jobs: list[Job] = []
        for pipe_cfg in selected:
            pipe = instantiate(config, pipe_cfg, stop)
            cleanup.callback(pipe.close)
            jobs += _pending_jobs(pipe, ledger, selectors, since, force, summary)
        if dry_run:
            summary.results.extend(
                RunResult(p.config.name, r, RunStatus.EXPORTED,
                          {name: _would_do(config, name, r) for name in names})
                for p, r, names in jobs
            )
        else:
            _run_jobs(jobs, ledger, config, workers, force, stop, progress or Progress(), summary)
    summary.results.sort(key=lambda r: (r.pipeline, r.run.key))
    summary.seconds = time.monotonic() - started
    if stop.is_set() and summary.interrupted_by is None:
        summary.interrupted_by = stop.signal_number if isinstance(stop, StopEvent) else None
    return summary


def _ledger_for(config: Config, dry_run: bool) -> Ledger:
    """The config's ledger; a dry run creates none (nor ``state_dir``): it reads the existing
    ledger, or takes every run as undelivered when there is none."""
    if not dry_run:
        return open_ledger(config)
    found = existing_ledger(config)
    if found is None:
        found = Ledger()  # the interface alone: knows no delivery, records nothing
        found.created = True
    return found


def _would_do(config: Config, sink: str, run: RunRef) -> str:
    """What a delivery of ``run`` to ``sink`` would do (``--dry-run``): the object path it would
    write, or the aggregator it would send to."""
    cfg = config.sinks[sink].config
    if not isinstance(cfg, ByteSinkConfig):
        return f"would send to {config.sinks[sink].plugin.type}"
    try:
        return "would write " + render(cfg.path, run, ext=extension(cfg.format, cfg.compression))
    except LogarchiveError as exc:
        return f"would fail: {exc}"


def _warn_new_ledger(config: Config, selected: list[PipelineConfig], ledger: Ledger,
                     summary: ExportSummary) -> None:
    """Aggregators cannot be asked what they already hold: with a new ledger every finished run
    goes to them again. Say so loudly; an archive's manifests can restore byte sinks."""
    record_sinks = sorted({name for p in selected for name in p.sinks
                           if config.sinks[name].plugin.kind == "records"})
    if not (ledger.created and record_sinks):
        return
    lost = "the state directory" if config.settings.ledger is None else "the ledger's database"
    summary.warnings.append(
        f"new ledger at {ledger.where or config.state_dir}: every run the sources "
        f"list will be delivered to {', '.join(record_sinks)}, including runs delivered "
        f"before; if {lost} was lost, stop and restore it (or run `logarchive "
        "ledger rebuild` for archives, and export with --since to limit re-delivery)"
    )
    log.warning("ledger_new", sinks=record_sinks, detail=summary.warnings[-1])


def _pending_jobs(pipe: Pipeline, ledger: Ledger, selectors: list[str], since: datetime | None,
                  force: bool, summary: ExportSummary) -> list[Job]:
    """The runs of one pipeline that are selected, finished and pending at some sink; the
    others are recorded in ``summary`` (skipped, not ready) or left out (gone, not selected)."""
    pipe_cfg = pipe.config
    try:
        discovered = list(pipe.source.discover())
    except LogarchiveError as exc:
        summary.errors.append(f"pipeline {pipe_cfg.name}: source {pipe_cfg.source}: {exc}")
        log.error("discovery_failed", pipeline=pipe_cfg.name, error=str(exc))
        return []
    for problem, failed in pipe.source.skipped:
        (summary.errors if failed else summary.warnings).append(
            f"pipeline {pipe_cfg.name}: source {pipe_cfg.source}: {problem}")
    log.info("runs_discovered", pipeline=pipe_cfg.name, runs=len(discovered))
    include = pipe.source.config.include_statuses
    jobs: list[Job] = []
    for run in discovered:
        if selectors and not any(run.matches(s) for s in selectors):
            log.debug("run_skipped", run=run.key, reason="not selected by --run")
            continue
        finished = run.completed or run.started
        if since and finished and finished < since:
            log.debug("run_skipped", run=run.key, reason="finished before --since",
                      finished=finished.isoformat())
            continue
        pending = pending_sinks(ledger, run, pipe_cfg.sinks, force)
        if pending is None:
            log.debug("run_skipped", run=run.key, reason="the ledger marks it gone at the source")
            continue  # gone at source, recorded earlier
        if not pending:
            log.debug("run_skipped", run=run.key, reason="delivered to every sink (ledger)",
                      sinks=pipe_cfg.sinks)
            summary.results.append(RunResult(pipe_cfg.name, run, RunStatus.SKIPPED))
        elif run.status not in include:
            summary.results.append(RunResult(pipe_cfg.name, run, RunStatus.NOT_READY))
            log.info("run_not_ready", run=run.key, status=run.status)
        else:
            jobs.append((pipe, run, pending))
    return jobs


def _run_jobs(jobs: list[Job], ledger: Ledger, config: Config, workers: int | None,
              force: bool, stop: threading.Event, progress: Progress,
              summary: ExportSummary) -> None:
    """Deliver the pending runs on the config's executor (:mod:`logarchive.executor`)."""
    batch = Batch(jobs, config, ledger, force, stop, progress)
    batch.start_progress()
    executor = executor_for(config, workers) if jobs else None
    try:
        for result in executor.deliver(batch) if executor else ():
            summary.results.append(result)
            progress.run_done(result)
    finally:
        progress.stop()
        if executor is not None:
            executor.close()
