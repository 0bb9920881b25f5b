"""The engine: resolve runs, skip what is delivered, read each log once, feed every sink, commit.

``export_run`` is a plain function of (pipeline objects, RunRef): it is the unit a distributed
scheduler would run.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import structlog

from logarchive import __version__
from logarchive.base import ByteSink, ObjectWriter, RecordDelivery, RecordSink, StopEvent
from logarchive.codec import Compressor, FormatEncoder, RecordBuilder, SourceStats, extension
from logarchive.config import Config
from logarchive.errors import (
    ConfigError, Interrupted, LedgerError, LogarchiveError, RunGone, RunNotReady, SinkError,
    SourceError,
)
from logarchive.ledger import DELIVERED, GONE, Ledger, RunLock, SQLiteLedger, object_lock
from logarchive.manifest import build_manifest, manifest_path, parse_manifest
from logarchive.paths import render
from logarchive.pipeline import Pipeline, instantiate
from logarchive.runs import RunRef
from logarchive.secrets import redact

log = structlog.get_logger("logarchive")

EXPORTED = "exported"
SKIPPED = "skipped"
FAILED = "failed"
NOT_READY = "not_ready"
LOCKED = "locked"
INTERRUPTED = "interrupted"


@dataclass
class RunResult:
    """Outcome of one run in one pipeline."""

    pipeline: str
    run: RunRef
    status: str
    sinks: dict[str, str] = field(default_factory=dict)
    bytes: int = 0
    lines: int = 0
    seconds: float = 0.0
    error: str | None = None
    fatal: bool = False  # the source cannot serve any other run (invalid token...)

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "run": self.run.key, "fields": self.run.fields,
            "status": self.status, "sinks": self.sinks, "bytes": self.bytes,
            "lines": self.lines, "seconds": round(self.seconds, 3), "error": self.error,
        }


@dataclass
class ExportSummary:
    """What an export did. ``exit_code``: 0 all delivered or nothing to do, 1 some runs failed,
    130/143 stopped by SIGINT/SIGTERM."""

    results: list[RunResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False
    interrupted_by: int | None = None

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def exported(self) -> int:
        return self.count(EXPORTED)

    @property
    def skipped(self) -> int:
        return self.count(SKIPPED)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.results if r.status == EXPORTED)

    @property
    def lines(self) -> int:
        return sum(r.lines for r in self.results if r.status == EXPORTED)

    @property
    def exit_code(self) -> int:
        if self.interrupted_by is not None:
            return 128 + self.interrupted_by
        return 1 if (self.failed or self.errors) else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "exported": self.exported, "skipped": self.skipped, "failed": self.failed,
            "not_ready": self.count(NOT_READY), "locked": self.count(LOCKED),
            "interrupted": self.count(INTERRUPTED), "bytes": self.bytes, "lines": self.lines,
            "seconds": round(self.seconds, 3), "dry_run": self.dry_run,
            "errors": self.errors, "warnings": self.warnings, "exit_code": self.exit_code,
            "runs": [r.to_json() for r in self.results],
        }

    def text(self) -> str:
        head = "would export" if self.dry_run else "exported"
        parts = [
            f"{head} {self.exported} run(s)",
            f"skipped {self.skipped} (already delivered)",
            f"failed {self.failed}",
        ]
        if self.count(NOT_READY):
            parts.append(f"not ready {self.count(NOT_READY)}")
        if self.count(LOCKED):
            parts.append(f"in progress elsewhere {self.count(LOCKED)}")
        if self.count(INTERRUPTED):
            parts.append(f"interrupted {self.count(INTERRUPTED)}")
        return (
            ", ".join(parts)
            + f"; {_human_bytes(self.bytes)}, {self.lines} lines in {self.seconds:.2f}s"
        )


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class Progress:
    """Hooks the CLI uses to draw a progress bar; the default does nothing."""

    def start(self, total_runs: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def run_done(self, result: RunResult) -> None: ...
    def stop(self) -> None: ...


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
    runs the ledger has. Setting ``stop`` (from another thread) stops the export gracefully; a
    :class:`~logarchive.base.StopEvent` with its ``signal_number`` set makes the exit code
    128 + that number. Returns an :class:`ExportSummary`; raises only for configuration or
    ledger errors (one run's failure never stops the others).
    """
    started = time.monotonic()
    stop = stop or threading.Event()
    progress = progress or Progress()
    selected = [config.pipeline(pipeline)] if pipeline else list(config.pipelines)
    selectors = list(runs or [])
    workers = workers or config.settings.workers
    if workers < 1:
        raise ConfigError("--workers must be at least 1", key="workers")
    own_ledger = ledger is None
    ledger = ledger or SQLiteLedger(config.state_dir)
    summary = ExportSummary(dry_run=dry_run)
    record_sinks = sorted({name for p in selected for name in p.sinks
                           if config.sinks[name].plugin.kind == "records"})
    if ledger.created and record_sinks:
        # Aggregators cannot be asked what they already hold: with a new ledger every finished
        # run goes to them again. Say so loudly; an archive's manifests can restore byte sinks.
        summary.warnings.append(
            f"new ledger at {ledger.path or config.state_dir}: every run the sources "
            f"list will be delivered to {', '.join(record_sinks)}, including runs delivered "
            "before; if the state directory was lost, stop and restore it (or run `logarchive "
            "ledger rebuild` for archives, and export with --since to limit re-delivery)"
        )
        log.warning("ledger_new", sinks=record_sinks, detail=summary.warnings[-1])
    live: list[Pipeline] = []
    jobs: list[tuple[Pipeline, RunRef, list[str]]] = []
    try:
        for pipe_cfg in selected:
            pipe = instantiate(config, pipe_cfg, stop)
            live.append(pipe)
            try:
                discovered = list(pipe.source.discover())
            except LogarchiveError as exc:
                message = f"pipeline {pipe_cfg.name}: source {pipe_cfg.source}: {exc}"
                summary.errors.append(message)
                log.error("discovery_failed", pipeline=pipe_cfg.name, error=str(exc))
                continue
            log.info("runs_discovered", pipeline=pipe_cfg.name, runs=len(discovered))
            for run in discovered:
                if selectors and not any(run.matches(s) for s in selectors):
                    continue
                finished = run.completed or run.started
                if since and finished and finished < since:
                    continue
                pending = _pending_sinks(ledger, run, pipe_cfg.sinks, force)
                if pending is None:
                    continue  # gone at source, recorded earlier
                if not pending:
                    summary.results.append(RunResult(pipe_cfg.name, run, SKIPPED))
                    continue
                if run.status not in pipe.source.config.include_statuses:
                    summary.results.append(RunResult(pipe_cfg.name, run, NOT_READY))
                    log.info("run_not_ready", run=run.key, status=run.status)
                    continue
                jobs.append((pipe, run, pending))
        if dry_run:
            summary.results.extend(
                RunResult(p.config.name, r, EXPORTED, dict.fromkeys(names, "would deliver"))
                for p, r, names in jobs
            )
        else:
            _run_jobs(jobs, ledger, config, workers, force, stop, progress, summary)
    finally:
        for pipe in live:
            pipe.close()
        if own_ledger:
            ledger.close()
    summary.results.sort(key=lambda r: (r.pipeline, r.run.key))
    summary.seconds = time.monotonic() - started
    if stop.is_set() and summary.interrupted_by is None:
        summary.interrupted_by = stop.signal_number if isinstance(stop, StopEvent) else None
    return summary


def _pending_sinks(ledger: Ledger, run: RunRef, sinks: list[str], force: bool) -> list[str] | None:
    pending = []
    for sink in sinks:
        delivery = ledger.get(run.key, sink)
        if delivery is not None and delivery.status == GONE and not force:
            return None
        if force or delivery is None or delivery.status != DELIVERED:
            pending.append(sink)
    return pending


def _run_jobs(jobs: list[tuple[Pipeline, RunRef, list[str]]], ledger: Ledger, config: Config,
              workers: int, force: bool, stop: threading.Event, progress: Progress,
              summary: ExportSummary) -> None:
    progress.start(len(jobs))
    dead_sources: dict[int, str] = {}
    lock = threading.Lock()

    def work(pipe: Pipeline, run: RunRef, sinks: list[str]) -> RunResult:
        if stop.is_set():
            return RunResult(pipe.config.name, run, INTERRUPTED, error="export stopped")
        with lock:
            dead = dead_sources.get(id(pipe.source))
        if dead:
            return RunResult(pipe.config.name, run, FAILED, error=dead)
        result = export_run(pipe, run, sinks, ledger=ledger, state_dir=config.state_dir,
                            force=force, stop=stop, progress=progress)
        if result.fatal:
            with lock:
                dead_sources[id(pipe.source)] = result.error
        return result

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export") as pool:
            futures = [pool.submit(work, *job) for job in jobs]
            for future in as_completed(futures):
                result = future.result()
                summary.results.append(result)
                progress.run_done(result)
    finally:
        progress.stop()


@dataclass
class _ByteTarget:
    name: str
    sink: ByteSink
    path: str
    writer: ObjectWriter
    encoder: FormatEncoder
    compressor: Compressor
    sha: Any = field(default_factory=hashlib.sha256)
    size: int = 0

    @property
    def verbatim(self) -> bool:
        """Stored bytes are the source bytes (txt, no compression): their sha256 is the
        source's, computed once by SourceStats instead of twice."""
        return self.encoder.format == "txt" and self.compressor.name == "none"

    def put(self, data: bytes) -> None:
        if not data:
            return
        out = self.compressor.compress(data)
        if out:
            if not self.verbatim:
                self.sha.update(out)
            self.size += len(out)
            self.writer.write(out)

    def digest(self, stats: SourceStats) -> str:
        return stats.sha256 if self.verbatim else self.sha.hexdigest()


@dataclass
class _RecordTarget:
    name: str
    sink: RecordSink
    delivery: RecordDelivery
    resume_after: int


def export_run(pipe: Pipeline, run: RunRef, sinks: list[str], *, ledger: Ledger, state_dir: Any,
               force: bool = False, stop: threading.Event | None = None,
               progress: Progress | None = None) -> RunResult:
    """Export one run to the named sinks of its pipeline: one read of the source, one atomic
    commit per sink. Never raises for a run's own failure; the result says what happened."""
    stop = stop or threading.Event()
    progress = progress or Progress()
    started = time.monotonic()
    result = RunResult(pipe.config.name, run, EXPORTED)
    lock = RunLock(state_dir, run.key_hash)
    if not lock.acquire():
        result.status = LOCKED
        log.info("run_locked", run=run.key, reason="another export is delivering it")
        return result
    try:
        # Re-check under the lock: a concurrent export may have delivered it meanwhile.
        sinks = _pending_sinks(ledger, run, sinks, force) or []
        if not sinks:
            result.status = SKIPPED
            return result
        _export_locked(pipe, run, sinks, ledger, force, stop, progress, result, state_dir)
    except LedgerError:
        raise
    finally:
        lock.release()
        result.seconds = time.monotonic() - started
    return result


def _export_locked(pipe: Pipeline, run: RunRef, sinks: list[str], ledger: Ledger, force: bool,
                   stop: threading.Event, progress: Progress, result: RunResult,
                   state_dir: Any) -> None:
    exported_at = datetime.now(timezone.utc)
    byte_targets: list[_ByteTarget] = []
    record_targets: list[_RecordTarget] = []

    def fail_target(name: str, error: BaseException) -> None:
        message = redact(str(error)) or type(error).__name__
        if getattr(error, "fatal_for_sink", False):
            pipe.dead_sinks.setdefault(name, message)
        result.sinks[name] = f"failed: {message}"
        ledger.failed(run, name, message)
        log.error("sink_failed", run=run.key, sink=name, error=message)

    for name in sinks:
        sink = pipe.sinks[name]
        if name in pipe.dead_sinks:  # e.g. an invalid token: no request is worth making
            message = f"not attempted: {pipe.dead_sinks[name]}"
            result.sinks[name] = f"failed: {message}"
            ledger.failed(run, name, message)
            continue
        previous = ledger.get(run.key, name)
        ledger.start(run, name)
        try:
            if isinstance(sink, ByteSink):
                cfg = sink.config
                path = render(cfg.path, run, ext=extension(cfg.format, cfg.compression),
                              exported=exported_at)
                writer = sink.open_object(path)
                target = _ByteTarget(name, sink, path, writer, FormatEncoder(cfg.format),
                                     Compressor(cfg.compression, cfg.compression_level))
                target.put(target.encoder.header())
                byte_targets.append(target)
            else:
                resume_after = 0 if (force or previous is None) else previous.accepted
                delivery = sink.start(
                    run, resume_after=resume_after,
                    on_accepted=lambda ordinal, _n=name: ledger.set_accepted(run.key, _n, ordinal),
                )
                record_targets.append(_RecordTarget(name, sink, delivery, resume_after))
        except Exception as exc:  # one sink that cannot start must not stop the others
            fail_target(name, exc)

    needs_records = bool(record_targets) or any(t.encoder.needs_records for t in byte_targets)
    max_line = min(
        [t.sink.config.max_line_bytes for t in [*byte_targets, *record_targets]] or [1 << 20]
    )
    builder = RecordBuilder(run.record_fields(), max_line) if needs_records else None
    stats = SourceStats()

    def feed(chunk: bytes | None) -> None:
        if chunk is not None:
            stats.update(chunk)
            batch = builder.feed(chunk) if builder else None
        else:
            stats.finish()
            batch = builder.finish() if builder else None
        for target in list(byte_targets):
            try:
                if not target.encoder.needs_records:
                    if chunk is not None:
                        target.put(chunk)
                elif batch:
                    target.put(target.encoder.encode_batch(batch))
            except Exception as exc:  # one sink's failure must not stop the others
                _abort(target.writer)
                byte_targets.remove(target)
                fail_target(target.name, exc)
        if batch and record_targets:
            records = batch.records()
            last = builder.records if builder else 0
            first = last - len(records) + 1
            for target in list(record_targets):
                skip = target.resume_after - first + 1
                selected = records[skip:] if skip > 0 else records
                if not selected:
                    continue
                try:
                    target.delivery.send(selected, max(first, target.resume_after + 1))
                except Interrupted:
                    raise
                except Exception as exc:
                    target.delivery.abort()
                    record_targets.remove(target)
                    fail_target(target.name, exc)

    try:
        if not byte_targets and not record_targets:
            raise SinkError("no sink could start: " + "; ".join(
                f"{name} {state}" for name, state in result.sinks.items()))
        with pipe.source.open(run) as stream:
            for chunk in stream:
                if stop.is_set():
                    raise Interrupted("export stopped before the run finished")
                if chunk:
                    feed(chunk)
                    progress.advance(len(chunk))
                if not byte_targets and not record_targets:
                    break
        if not byte_targets and not record_targets:
            raise SinkError("every sink failed: " + "; ".join(
                f"{name} {state}" for name, state in result.sinks.items()))
        feed(None)
    except BaseException as exc:
        for target in byte_targets:
            _abort(target.writer)
        for rtarget in record_targets:
            rtarget.delivery.abort()
        message = redact(str(exc)) or type(exc).__name__
        result.error = message
        if isinstance(exc, RunNotReady):
            result.status, ledger_status = NOT_READY, NOT_READY
        elif isinstance(exc, (Interrupted, KeyboardInterrupt)):
            result.status, ledger_status = INTERRUPTED, INTERRUPTED
        else:
            result.status = FAILED
            ledger_status = GONE if isinstance(exc, RunGone) else FAILED
        result.fatal = isinstance(exc, SourceError) and exc.fatal_for_source
        for target in [*byte_targets, *record_targets]:
            result.sinks[target.name] = f"{result.status}: {message}"
            ledger.failed(run, target.name, message, status=ledger_status)
        if not isinstance(exc, Exception):
            raise
        if isinstance(exc, LogarchiveError):
            level = "info" if result.status in (NOT_READY, INTERRUPTED) else "error"
            getattr(log, level)("run_" + result.status, run=run.key, error=message)
        else:  # a bug, not a classified failure: keep the traceback
            log.error("run_failed", run=run.key, error=message, exc_info=True)
        return
    # Commit: objects, then manifests, then the ledger. A crash between leaves no object that
    # the ledger calls delivered; the next export rewrites it (same bytes, same name).
    for target in byte_targets:
        try:
            target.put(target.encoder.footer())
            tail = target.compressor.flush()
            if tail:
                target.sha.update(tail)
                target.size += len(tail)
                target.writer.write(tail)
            digest = target.digest(stats)
            cfg = target.sink.config
            manifest = build_manifest(
                run=run, sink=target.name, object_path=target.path,
                object_sha256=digest, object_size=target.size,
                source_sha256=stats.sha256, source_size=stats.size, lines=stats.lines,
                invalid_utf8=stats.invalid_utf8,
                records=builder.records if (builder and target.encoder.needs_records) else None,
                fmt=cfg.format, compression=cfg.compression, exported=exported_at,
                version=__version__,
            )
            with object_lock(state_dir, target.name, target.path):
                keep = _keep_existing(target, run, digest)
                if keep:
                    _abort(target.writer)  # identical bytes are archived already
                else:
                    target.writer.commit()
                if not (keep and target.sink.exists(manifest_path(target.path))):
                    mwriter = target.sink.open_object(manifest_path(target.path))
                    try:
                        mwriter.write(manifest)
                        mwriter.commit()
                    except BaseException:
                        _abort(mwriter)
                        raise
            ledger.delivered(run, target.name, object=target.sink.describe(target.path),
                             sha256=digest, size=target.size, lines=stats.lines)
            result.sinks[target.name] = "delivered"
            log.info("run_exported", run=run.key, sink=target.name,
                     object=target.sink.describe(target.path), bytes=stats.size,
                     stored_bytes=target.size, lines=stats.lines)
        except LedgerError:
            raise
        except Exception as exc:
            _abort(target.writer)
            fail_target(target.name, exc)
    for rtarget in record_targets:
        if stop.is_set():
            rtarget.delivery.abort()
            result.status = INTERRUPTED
            result.sinks[rtarget.name] = "interrupted: export stopped before all batches were accepted"
            ledger.failed(run, rtarget.name, "export stopped", status=INTERRUPTED)
            continue
        try:
            rtarget.delivery.finish()
            total = builder.records if builder else 0
            ledger.delivered(run, rtarget.name, object=None, sha256=stats.sha256,
                             size=stats.size, lines=stats.lines, accepted=total)
            result.sinks[rtarget.name] = "delivered"
            log.info("run_exported", run=run.key, sink=rtarget.name, records=total,
                     resumed_after=rtarget.resume_after, lines=stats.lines)
        except LedgerError:
            raise
        except Interrupted as exc:
            rtarget.delivery.abort()
            result.status = INTERRUPTED
            result.sinks[rtarget.name] = f"interrupted: {exc}"
            ledger.failed(run, rtarget.name, str(exc), status=INTERRUPTED)
        except Exception as exc:
            rtarget.delivery.abort()
            fail_target(rtarget.name, exc)
    result.bytes = stats.size
    result.lines = stats.lines
    if result.status == EXPORTED and any(v != "delivered" for v in result.sinks.values()):
        result.status = FAILED
        result.error = "; ".join(f"{k}: {v}" for k, v in result.sinks.items() if v != "delivered")


def _keep_existing(target: _ByteTarget, run: RunRef, new_sha: str) -> bool:
    """Check what is already stored under the target's name before replacing it.

    Raises when another run owns the name (a path template that maps two runs to one object
    would silently overwrite an archive) or when an immutable object would change. Returns True
    when an immutable object already holds exactly these bytes.
    """
    sink, path = target.sink, target.path
    where = sink.describe(path)
    if sink.exists(manifest_path(path)):
        with sink.read(manifest_path(path)) as chunks:
            try:
                existing = parse_manifest(b"".join(chunks))
            except ValueError as exc:
                raise SinkError(f"{where}: existing manifest is unreadable ({exc})") from None
        owner = existing.get("run", {}).get("key")
        if owner != run.key:
            raise SinkError(
                f"{where} already holds run {owner}; the path template {sink.config.path!r} maps "
                f"two runs to one object: add a field that tells them apart"
            )
        old_sha = existing.get("object", {}).get("sha256")
    elif sink.config.immutable and sink.exists(path):
        # An object without its manifest: a delivery that stopped between the two commits.
        digest = hashlib.sha256()
        with sink.read(path) as chunks:
            for chunk in chunks:
                digest.update(chunk)
        old_sha = digest.hexdigest()
    else:
        return False
    if not sink.config.immutable:
        return False
    if old_sha == new_sha:
        return True
    raise SinkError(
        f"{where} is immutable and already archived with sha256 {old_sha}; the new export has "
        f"sha256 {new_sha}. Nothing was overwritten."
    )


def _abort(writer: ObjectWriter) -> None:
    try:
        writer.abort()
    except Exception as exc:  # best effort: the object is not visible either way
        log.warning("abort_failed", error=redact(str(exc)))


