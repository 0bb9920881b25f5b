"""Run delivery: one read of a run's log, fed to every sink target, one commit per target.

``export_run`` is a plain function of (pipeline objects, RunRef): it is the unit a distributed
scheduler would run. Every sink becomes a :class:`Target` with one interface:

- ``feed(piece)``: the next piece of the log (a chunk of source bytes and the records built from
  it); a byte target encodes, compresses and writes it, a record target sends the records past
  its resume point;
- ``commit(delivery)``: make the delivery final and record it in the ledger as delivered (a byte
  target writes the footer, the object and its manifest; a record target waits for every
  acknowledgement);
- ``abort()``: throw away what is not committed.

A target that fails is aborted and recorded as failed without stopping the others; a failure of
the source (or a signal) ends every target of the run.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import structlog

from logarchive.version import __version__
from logarchive.base import ByteSink, ObjectWriter, RecordDelivery, RecordSink
from logarchive.codec import (
    Compressor, FormatEncoder, LineBatch, RecordBuilder, SourceStats, encode_records, extension,
    new_builder,
)
from logarchive.errors import (
    Interrupted, LeaseLost, LedgerError, LogarchiveError, RunGone, RunNotReady, SinkError,
    SourceError,
)
from logarchive.ledger import Claim, Delivered, Delivery, Ledger
from logarchive.manifest import build_manifest, describe_value, manifest_path, parse_manifest
from logarchive.paths import check_name_lengths, not_a_manifest_name, render
from logarchive.pipeline import Pipeline
from logarchive.results import Progress, RunResult
from logarchive.runs import RunRef
from logarchive.secrets import redact
from logarchive.sourcestream import (
    Declared, RecordChunk, SourceStream, StreamLimits, check_declared, declared_of, limited,
)
from logarchive.status import RunStatus

log = structlog.get_logger("logarchive")
DEFERRED = RunStatus.DEFERRED.value
_GIVE_UP = threading.Lock()


def pending_sinks(ledger: Ledger, run: RunRef, sinks: list[str], force: bool) -> list[str] | None:
    """The sinks of ``sinks`` that still need ``run``; None when the run is gone at its source."""
    pending = []
    for sink in sinks:
        delivery = ledger.get(run.key, sink)
        if delivery is not None and delivery.status == RunStatus.GONE and not force:
            return None
        if force or delivery is None or delivery.status != RunStatus.DELIVERED:
            pending.append(sink)
    return pending


def export_run(pipe: Pipeline, run: RunRef, sinks: list[str], *, ledger: Ledger, state_dir: Any,
               force: bool = False, stop: threading.Event | None = None,
               progress: Progress | None = None, group: bool = False) -> RunResult | Published:
    """Export one run to the named sinks of its pipeline: one read of the source, one atomic
    commit per sink. Never raises for a run's own failure; the result says what happened.

    With ``group``, a byte sink's object is published but its durability (folder fsync) and
    its ``delivered`` record are left to a group commit (:mod:`logarchive.groupcommit`): the
    run comes back :class:`Published`, still claimed, and is not exported until that commit."""
    started = time.monotonic()
    result = RunResult(pipe.config.name, run, RunStatus.EXPORTED)
    claim = ledger.claim(run)
    if claim is None:
        result.status = RunStatus.LOCKED
        log.info("run_locked", run=run.key, reason="another export is delivering it")
        return result
    delivery = RunDelivery(pipe, run, claim.ledger, result, state_dir, stop or threading.Event(),
                           group=group)
    published = None  # its claim is released by the group commit
    try:
        # Re-check under the claim: a concurrent export may have delivered it meanwhile.
        sinks = pending_sinks(claim.ledger, run, sinks, force) or []
        if not sinks:
            result.status = RunStatus.SKIPPED
            return result
        delivery.deliver(sinks, force, progress or Progress())
        if delivery.pending:
            published = Published(result, claim, delivery.pending)
    except LeaseLost as exc:
        delivery.lose(exc)
    finally:
        result.seconds = time.monotonic() - started
        if published is None:
            claim.release()
    return published or result


@dataclass
class Recorded(Delivered):
    """A byte sink's delivery waiting for its group commit: the steps that make its object and
    manifest durable (:meth:`~logarchive.base.ObjectWriter.publish`), then its ``delivered``
    record; ``event`` is the ``run_exported`` log line, said once recorded."""

    steps: list[Any] = field(default_factory=list)
    event: dict[str, Any] = field(default_factory=dict)


@dataclass
class Published:
    """A run whose objects are published, still claimed, waiting for its group commit."""

    result: RunResult
    claim: Claim
    rows: list[Recorded]


@dataclass
class Piece:
    """One step of the log: a chunk of source bytes (None at the end) and the records built
    from it (``batch``, None when no target needs records); ``first`` is the ordinal of the
    batch's first record."""

    chunk: bytes | None
    batch: Any
    first: int


@dataclass
class RunDelivery:
    """The delivery of one run to its targets: what every target shares, and the loop."""

    pipe: Pipeline
    run: RunRef
    ledger: Ledger
    result: RunResult
    state_dir: Any
    stop: threading.Event
    exported_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    stats: SourceStats = field(default_factory=SourceStats)
    builder: RecordBuilder | None = None
    targets: list[Target] = field(default_factory=list)
    declared: Declared = field(default_factory=Declared)
    group: bool = False
    pending: list[Recorded] = field(default_factory=list)

    def deliver(self, sinks: list[str], force: bool, progress: Progress) -> None:
        """Start a target per sink, feed them the log, commit each; record every outcome."""
        self.targets = [t for t in (self.start(name, force) for name in sinks) if t]
        if not self.targets and self.result.sinks and all(
                state.startswith(DEFERRED) for state in self.result.sinks.values()):
            self.result.status = RunStatus.DEFERRED  # nothing to feed: the source is not read
            self.result.error = "; ".join(f"{k}: {v}" for k, v in self.result.sinks.items())
            return
        # Archives commit before aggregators, whose commit waits for acknowledgements.
        self.targets.sort(key=lambda t: isinstance(t, RecordTarget))
        if any(t.needs_records for t in self.targets):
            max_line = min(t.max_line_bytes for t in self.targets)
            parquet = any(getattr(t, "encoder", None) and t.encoder.format == "parquet"
                          for t in self.targets)  # its rows are the columnar codec's columns
            self.builder = new_builder(self.run.record_fields(), max_line, parquet or None,
                                       parse=self.pipe.source.context.settings.parse)
        try:
            self.read(progress)
        except BaseException as exc:
            self.end_all(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for target in self.targets:
            self.commit(target)
        self.result.bytes = self.stats.size
        self.result.lines = self.stats.lines
        undelivered = {k: v for k, v in self.result.sinks.items() if v != "delivered"}
        if self.result.status == RunStatus.EXPORTED and undelivered:
            deferred = all(v.startswith(DEFERRED) for v in undelivered.values())
            self.result.status = RunStatus.DEFERRED if deferred else RunStatus.FAILED
            self.result.error = "; ".join(f"{k}: {v}" for k, v in undelivered.items())

    def start(self, name: str, force: bool) -> Target | None:
        """The target of sink ``name``, or None (recorded as failed) when it cannot start."""
        if name in self.pipe.dead_sinks:  # an invalid token, unreachable: no request is worth it
            self.defer(name)
            return None
        sink = self.pipe.sinks[name]
        previous = self.ledger.get(self.run.key, name)
        self.ledger.start(self.run, name)
        try:
            if isinstance(sink, ByteSink):
                return ByteTarget.open(name, sink, self, previous)
            resume_after = 0 if (force or previous is None) else previous.accepted
            log.debug("run_resume_point", run=self.run.key, sink=name, resume_after=resume_after,
                      reason="--force" if force else "ledger" if previous else "first delivery")
            return RecordTarget.open(name, sink, self, resume_after)
        except Exception as exc:  # one sink that cannot start must not stop the others
            self.fail(name, exc)
            return None

    def read(self, progress: Progress) -> None:
        """Read the run's log once, feeding every live target; raise when none is left."""
        if not self.targets:
            raise SinkError("no sink could start: " + self._states())
        source = self.pipe.source
        with source.open(self.run) as stream:
            if isinstance(stream, SourceStream) and stream.records:
                self.builder = RecordPassthrough()  # records as the source gave them
            for chunk in limited(stream, StreamLimits.of(source.name, source.config)):
                if self.stop.is_set():
                    raise Interrupted("export stopped before the run finished")
                self.ledger.check_claim()
                if chunk:
                    self.feed(chunk)
                    progress.advance(len(chunk))
                if not self.targets:
                    break
        if not self.targets:
            raise SinkError("every sink failed: " + self._states())
        self.declared = declared_of(stream, self.run.size_hint)
        check_declared(source.name, self.declared, self.stats.size, self.run.size_hint)
        self.feed(None)

    def feed(self, chunk: bytes | None) -> None:
        """Feed one chunk (None: the end of the log) to every live target."""
        if chunk is not None:
            self.stats.update(chunk)
            batch = self.builder.feed(chunk) if self.builder else None
        else:
            self.stats.finish()
            batch = self.builder.finish() if self.builder else None
        last = self.builder.records if self.builder else 0
        piece = Piece(chunk, batch, last - (len(batch) if batch else 0) + 1)
        for target in list(self.targets):
            try:
                target.feed(piece)
            except (Interrupted, LeaseLost):
                raise
            except Exception as exc:  # one sink's failure must not stop the others
                target.abort()
                self.targets.remove(target)
                self.fail(target.name, exc)

    def commit(self, target: Target) -> None:
        """Commit one target; a failure is recorded for that target alone."""
        try:
            self.ledger.check_claim()
            target.commit(self)
        except (LedgerError, LeaseLost):  # the state is unusable (full state_dir...) or the
            # run was taken over: stop, nothing partial
            for each in self.targets:  # aborting a committed target changes nothing
                each.abort()
            raise
        except Interrupted as exc:
            target.abort()
            self.result.status = RunStatus.INTERRUPTED
            self.result.sinks[target.name] = f"interrupted: {exc}"
            self.ledger.failed(self.run, target.name, str(exc), status=RunStatus.INTERRUPTED)
        except Exception as exc:
            target.abort()
            self.fail(target.name, exc)

    def delivered(self, name: str, *, object: str | None, sha256: str | None = None,
                  size: int | None = None, accepted: int = 0, durable: bool = True,
                  lines_skipped: int = 0, steps: list[Any] | None = None,
                  event: dict[str, Any] | None = None) -> None:
        """Record that ``name`` has the run (called by a target's commit); ``sha256`` and
        ``size`` default to the source's. A sink that forgets what it holds (not ``durable``)
        is recorded ``volatile``: the next export delivers the run again. ``lines_skipped``:
        the lines a record sink leaves out by design (:attr:`RecordDelivery.skipped`).
        ``steps`` (a byte sink's publish, in a group): the record waits for the group commit;
        ``event``: the ``run_exported`` log line, said once recorded."""
        values = dict(object=object, sha256=self.stats.sha256 if sha256 is None else sha256,
                      size=self.stats.size if size is None else size, lines=self.stats.lines,
                      accepted=accepted, lines_skipped=lines_skipped,
                      status=RunStatus.DELIVERED if durable else RunStatus.VOLATILE)
        if steps is not None and self.group:
            self.pending.append(Recorded(self.ledger, self.run, name, values, steps,
                                         event or {}))
        else:
            self.ledger.delivered(self.run, name, **values)
            if event:
                log.info("run_exported", **event)
        self.result.sinks[name] = RunStatus.DELIVERED.value
        if lines_skipped:
            self.result.lines_skipped[name] = lines_skipped

    def fail(self, name: str, error: BaseException) -> None:
        """Record that sink ``name`` failed this run; an error fatal for the sink gives it up
        for the rest of the export (said once; its other runs are deferred)."""
        message = redact(str(error)) or type(error).__name__
        self.result.sinks[name] = f"failed: {message}"
        if isinstance(error, SinkError) and error.fatal_for_sink:
            with _GIVE_UP:  # runs of one pipeline fail in parallel: one gives the sink up
                first = name not in self.pipe.dead_sinks
                self.pipe.dead_sinks.setdefault(name, message)
            if not first:
                self.defer(name)  # another run gave it up meanwhile: this one stays pending
                return
            self.ledger.failed(self.run, name, message)
            log.error("sink_given_up", run=self.run.key, sink=name, endpoint=error.endpoint,
                      error=message, detail=f"sink {name!r} is given up for the rest of this "
                      "export; its other runs stay pending for the next export")
            return
        self.ledger.failed(self.run, name, message)
        log.error("sink_failed", run=self.run.key, sink=name, error=message)

    def defer(self, name: str) -> None:
        """Leave the run pending at sink ``name``, given up in this export: the ledger keeps
        what it had, the next export delivers it."""
        self.result.sinks[name] = f"{DEFERRED} (sink given up in this export)"

    def end_all(self, exc: BaseException) -> None:
        """The run itself failed (source error, signal, nothing left to feed): abort every
        live target and record the run's outcome at each."""
        if isinstance(exc, LeaseLost):
            raise exc  # nothing may be recorded: export_run ends the run (see lose)
        for target in self.targets:
            target.abort()
        message = redact(str(exc)) or type(exc).__name__
        status, ledger_status = _outcome(exc)
        self.result.status, self.result.error = status, message
        self.result.fatal = isinstance(exc, SourceError) and exc.fatal_for_source
        for target in self.targets:
            self.result.sinks[target.name] = f"{status}: {message}"
            self.ledger.failed(self.run, target.name, message, status=ledger_status)
        if not isinstance(exc, Exception):
            return
        if isinstance(exc, LogarchiveError):
            quiet = status in (RunStatus.NOT_READY, RunStatus.INTERRUPTED)
            (log.info if quiet else log.error)("run_" + status, run=self.run.key, error=message)
        else:  # a bug, not a classified failure: keep the traceback
            log.error("run_failed", run=self.run.key, error=message, exc_info=True)

    def lose(self, exc: LeaseLost) -> None:
        """Another export took the run over (this one's lease ran out): abort every target
        and record nothing; the run's ledger records are the new owner's."""
        for target in self.targets:
            target.abort()  # aborting a committed target changes nothing
        self.result.status, self.result.error = RunStatus.LEASE_LOST, str(exc)
        for target in self.targets:
            self.result.sinks.setdefault(target.name, f"{RunStatus.LEASE_LOST}: {exc}")
        log.warning("run_lease_lost", run=self.run.key, error=str(exc))

    def _states(self) -> str:
        return "; ".join(f"{name} {state}" for name, state in self.result.sinks.items())


def _outcome(exc: BaseException) -> tuple[RunStatus, RunStatus]:
    """The run's status in the result and in the ledger when ``exc`` ended it."""
    if isinstance(exc, RunNotReady):
        return RunStatus.NOT_READY, RunStatus.NOT_READY
    if isinstance(exc, (Interrupted, KeyboardInterrupt)):
        return RunStatus.INTERRUPTED, RunStatus.INTERRUPTED
    return RunStatus.FAILED, RunStatus.GONE if isinstance(exc, RunGone) else RunStatus.FAILED


class Target:
    """A sink's side of one run's delivery (see the module docstring)."""

    name: str
    sink: ByteSink | RecordSink
    needs_records: bool

    @property
    def max_line_bytes(self) -> int:
        return self.sink.config.max_line_bytes

    def feed(self, piece: Piece) -> None:
        raise NotImplementedError

    def commit(self, delivery: RunDelivery) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


@dataclass
class ByteTarget(Target):
    """One object (plus its manifest) in a byte sink: encoder, compressor, sha256, writer."""

    name: str
    sink: ByteSink
    path: str
    writer: ObjectWriter
    encoder: Any  # FormatEncoder or ParquetEncoder
    compressor: Compressor
    sha: Any = field(default_factory=hashlib.sha256)
    size: int = 0

    @classmethod
    def open(cls, name: str, sink: ByteSink, delivery: RunDelivery,
             previous: Delivery | None = None) -> ByteTarget:
        """Start the object: where the ledger says the run is archived (a re-export replaces it
        there, even if the template now renders elsewhere), else where the template says. Both
        names are checked against the store's limits before anything is written."""
        cfg = sink.config
        path = archived_path(sink, previous) or render(
            cfg.path, delivery.run, ext=extension(cfg.format, cfg.compression),
            exported=delivery.exported_at)
        check_name_lengths(path, cfg.path, sink.name_limits(), f"sink {name!r}")
        encoder, compressor = _encoding(cfg, delivery.run.record_fields())
        target = cls(name, sink, path, sink.open_object(path), encoder, compressor)
        target.put(target.encoder.header())
        return target

    @property
    def needs_records(self) -> bool:
        return self.encoder.needs_records

    @property
    def verbatim(self) -> bool:
        """Stored bytes are the source bytes (txt, no compression): their sha256 is the
        source's, computed once by SourceStats instead of twice."""
        return self.encoder.format == "txt" and self.compressor.name == "none"

    def feed(self, piece: Piece) -> None:
        if not self.needs_records:
            if piece.chunk is not None:
                self.put(piece.chunk)
        elif piece.batch:
            self.put(self.encoder.encode_batch(piece.batch))

    def put(self, data: bytes) -> None:
        if not data:
            return
        out = self.compressor.compress(data)
        if out:
            if not self.verbatim:
                self.sha.update(out)
            self.size += len(out)
            self.writer.write(out)

    def commit(self, delivery: RunDelivery) -> None:
        """Object, then manifest, then ledger. A crash between leaves no object that the ledger
        calls delivered; the next export rewrites it (same bytes, same name)."""
        self.put(self.encoder.footer())
        tail = self.compressor.flush()
        if tail:
            self.sha.update(tail)
            self.size += len(tail)
            self.writer.write(tail)
        stats = delivery.stats
        digest = stats.sha256 if self.verbatim else self.sha.hexdigest()
        steps: list[Any] = []
        with delivery.ledger.object_lock(self.name, self.path):
            keep = _keep_existing(self.sink, self.path, delivery.run, digest)
            if keep:  # identical bytes are archived already
                steps += _kept(self.writer, delivery.group)
            else:
                steps += _commit(self.writer, delivery.group)
            if not (keep and self.sink.exists(manifest_path(self.path))):
                steps += self._write_manifest(delivery, digest)
        where = self.sink.describe(self.path)
        delivery.delivered(self.name, object=where, sha256=digest, size=self.size,
                           durable=self.sink.durable(self.sink.config), steps=steps,
                           event=dict(run=delivery.run.key, sink=self.name, object=where,
                                      bytes=stats.size, stored_bytes=self.size,
                                      lines=stats.lines))

    def _write_manifest(self, delivery: RunDelivery, digest: str) -> list[Any]:
        stats, cfg, builder = delivery.stats, self.sink.config, delivery.builder
        manifest = build_manifest(
            run=delivery.run, sink=self.name, object_path=self.path,
            object_sha256=digest, object_size=self.size,
            source_sha256=stats.sha256, source_size=stats.size, lines=stats.lines,
            invalid_utf8=stats.invalid_utf8,
            records=builder.records if (builder and self.needs_records) else None,
            fmt=cfg.format, compression=cfg.compression, exported=delivery.exported_at,
            version=__version__, declared=delivery.declared.to_json(),
        )
        writer = self.sink.open_object(manifest_path(self.path))
        try:
            writer.write(manifest)
            return _commit(writer, delivery.group)
        except BaseException:
            _abort(writer)
            raise

    def abort(self) -> None:
        _abort(self.writer)


@dataclass
class RecordTarget(Target):
    """One run's records in a record sink, resumed after what an earlier export delivered."""

    name: str
    sink: RecordSink
    delivery: RecordDelivery
    resume_after: int
    needs_records = True

    @classmethod
    def open(cls, name: str, sink: RecordSink, delivery: RunDelivery,
             resume_after: int) -> RecordTarget:
        run, ledger = delivery.run, delivery.ledger
        started = sink.start(
            run.replays or run,  # a replay's events are the replayed run's (same event ids)
            resume_after=resume_after,
            on_accepted=lambda ordinal: ledger.set_accepted(run.key, name, ordinal),
        )
        return cls(name, sink, started, resume_after)

    def feed(self, piece: Piece) -> None:
        """Send the piece's records past the resume point."""
        if not piece.batch:
            return
        skip = max(0, self.resume_after - piece.first + 1)
        if skip:
            self.delivery.passed(piece.batch.records()[:skip])  # counted in skipped, not sent
        if skip < len(piece.batch):
            self.delivery.send_batch(piece.batch, piece.first + skip, skip)

    def commit(self, delivery: RunDelivery) -> None:
        """Wait for every acknowledgement, then record the run delivered."""
        if delivery.stop.is_set():
            raise Interrupted("export stopped before all batches were accepted")
        self.delivery.finish()
        total = delivery.builder.records if delivery.builder else 0
        delivery.delivered(self.name, object=None, accepted=total,
                           lines_skipped=self.delivery.skipped)
        log.info("run_exported", run=delivery.run.key, sink=self.name, records=total,
                 resumed_after=self.resume_after, lines=delivery.stats.lines,
                 lines_skipped=self.delivery.skipped)

    def abort(self) -> None:
        self.delivery.abort()


def _encoding(cfg: Any, fields: dict[str, str]) -> tuple[Any, Compressor]:
    """The encoder and the stream compressor of a byte sink's objects: Parquet compresses its
    columns itself, so its object is never wrapped in a compressed stream."""
    if cfg.format == "parquet":
        from logarchive.parquet import ParquetEncoder

        return ParquetEncoder(cfg.compression, cfg.compression_level, fields), Compressor("none")
    return FormatEncoder(cfg.format), Compressor(cfg.compression, cfg.compression_level)


class RecordPassthrough:
    """The builder of a :class:`~logarchive.sourcestream.RecordStream`: its records, unchanged
    (no line codec), as the :class:`~logarchive.codec.LineBatch` every target reads."""

    def __init__(self) -> None:
        self.records = 0

    def feed(self, chunk: bytes) -> LineBatch:
        rows = chunk.rows if isinstance(chunk, RecordChunk) else []
        batch = LineBatch(b"\n".join(encode_records(rows)), len(rows))
        batch._records = rows
        self.records += len(rows)
        return batch

    def finish(self) -> LineBatch:
        return LineBatch(b"", 0)


def archived_path(sink: ByteSink, previous: Delivery | None) -> str | None:
    """The path (relative to the sink's root) of the object the ledger records for this run,
    if that object's manifest is still there (and the path is not one 0.1.0 let collide with
    a manifest)."""
    if previous is None or not previous.object:
        return None
    prefix = sink.describe("")
    path = previous.object[len(prefix):] if previous.object.startswith(prefix) else ""
    if (not path or not_a_manifest_name(path) != path or sink.describe(path) != previous.object
            or not sink.exists(manifest_path(path))):
        return None
    return path


def _keep_existing(sink: ByteSink, path: str, run: RunRef, new_sha: str) -> bool:
    """Check what is already stored under ``path`` before replacing it.

    Raises when another run owns the name (a path template that maps two runs to one object
    would silently overwrite an archive) or when an immutable object would change. Returns True
    when an immutable object already holds exactly these bytes.
    """
    where = sink.describe(path)
    if sink.exists(manifest_path(path)):
        existing = _read_manifest(sink, path)
        _check_owner_sink(sink, path, existing)
        owner = existing.get("run", {}).get("key")
        # Release 0.1.0 masked credential-looking run ids in manifests (``basic ***``):
        # such a manifest is still this run's.
        if owner not in (run.key, redact(run.key)):
            raise SinkError(
                f"{where} already holds run {owner}; the path template {sink.config.path!r} maps "
                f"two runs to one object: add a field that tells them apart"
            )
        old_sha = existing.get("object", {}).get("sha256")
        if not sink.exists(path):  # renames not yet durable when a crash came: write it again
            return False
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


def _check_owner_sink(sink: ByteSink, path: str, existing: dict[str, Any]) -> None:
    """Refuse to replace an object or manifest that another sink owns (two sinks whose roots and
    path templates render the same object path): that sink's retention would manage it."""
    if existing.get("sink") == sink.name:
        return
    owner = describe_value(existing, "sink")
    raise SinkError(
        f"{sink.describe(path)} is already archived by sink {owner}, not {sink.name!r}; two "
        "sinks render the same object path: give them different roots or path templates. "
        "Nothing was overwritten."
    )


def _read_manifest(sink: ByteSink, path: str) -> dict[str, Any]:
    with sink.read(manifest_path(path)) as chunks:
        try:
            return parse_manifest(b"".join(chunks))
        except ValueError as exc:
            raise SinkError(f"{sink.describe(path)}: existing manifest is unreadable ({exc})") from None


def _commit(writer: ObjectWriter, group: bool) -> list[Any]:
    """Commit ``writer``; in a group, only publish it: the steps left to make it durable."""
    if group:
        return writer.publish()
    writer.commit()
    return []


def _kept(writer: ObjectWriter, group: bool) -> list[Any]:
    """Abort ``writer``, keeping the object found under its name: the steps that make that
    object durable (its writer may have died before them), left to the group or run now."""
    steps = writer.durability()
    _abort(writer)
    if group:
        return steps
    for step in steps:
        step.sync()
    return []


def _abort(writer: ObjectWriter) -> None:
    try:
        writer.abort()
    except Exception as exc:  # best effort: the object is not visible either way
        log.warning("abort_failed", error=redact(str(exc)))
