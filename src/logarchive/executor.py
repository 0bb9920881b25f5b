"""Executors: where the runs of an export are delivered (``[logarchive.executor]``).

The engine discovers the runs and asks the ledger which are pending; an executor then delivers
each pending run with :func:`logarchive.delivery.export_run` and hands every
:class:`~logarchive.results.RunResult` back, in the order they finish.

- :class:`ThreadExecutor` (``type = "threads"``, the default): a pool of ``workers`` threads in
  this process.
- :class:`DaskExecutor` (``type = "dask"``): one Dask task per run, on a scheduler at
  ``address`` or on a LocalCluster of ``processes`` worker processes started for the export.
  The task (:func:`export_task`, module level so a worker can import it) rebuilds the config
  and the pipeline on its worker from the config document it carries (secrets travel only
  inside the task: use Dask TLS on a cluster), delivers the run, writes resume points and
  deliveries to the ledger as a local export does, and returns the result. Dask may run a task
  twice (a worker died) and keeps nothing across a scheduler restart: correctness lives in the
  ledger, so a task run again resumes or skips exactly as a second export would.

A stop (SIGTERM/SIGINT) takes no new run and interrupts the runs in flight at their next chunk,
in both executors.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from logarchive.base import ByteSink, ByteSinkConfig
from logarchive.config import Config, parse_config
from logarchive.delivery import Published, export_run
from logarchive.errors import ConfigError, LedgerError
from logarchive.groupcommit import GroupCommit, max_runs
from logarchive.ledger import Ledger, LedgerUnreachable, open_ledger
from logarchive.pipeline import Pipeline, instantiate, open_sink
from logarchive.results import Progress, RunResult
from logarchive.runs import RunRef
from logarchive.secrets import redact
from logarchive.slots import bind_worker
from logarchive.status import RunStatus
from logarchive.verify import HashMany, Hashed, hash_object, hash_objects

log = structlog.get_logger("logarchive")

Job = tuple[Pipeline, RunRef, list[str]]  # a run and the sinks it is pending at
DASK_EXTRA = "pip install 'logarchive[dask]'"
QUIET_WORKERS = {
    # A Dask worker samples its threads' stacks every 10 ms and wakes its event loop every
    # 20 ms; beside a CPU-bound run each wake-up takes the GIL. Measured on 32 runs of
    # txt -> ndjson + gzip in one worker: 4.1 s of CPU with the defaults, 2.6 s with these,
    # 2.1 s in a plain process. The LocalCluster the export starts uses them.
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    # Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes glibc's mmap
    # threshold at 128 KiB: every chunk-sized buffer of a conversion is then mmapped, faulted
    # in and unmapped. Measured on 48 runs of txt -> ndjson + gzip (threads executor, same
    # process): 35k minor faults and 0.3 s of system CPU without it, 725k and 2.3 s with it.
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}


@dataclass
class Batch:
    """The runs one export hands an executor, and what they share."""

    jobs: list[Job]
    config: Config
    ledger: Ledger
    force: bool
    stop: threading.Event
    progress: Progress
    dead_sources: dict[str, str | None] = field(default_factory=dict)
    ledger_down: str | None = None  # the ledger's database stopped answering: no run starts

    def refused(self, pipe: Pipeline, run: RunRef) -> RunResult | None:
        """The result of a run not started: the export is stopping, or its source failed for
        good in this export (an invalid token...)."""
        if self.stop.is_set():
            return RunResult(pipe.config.name, run, RunStatus.INTERRUPTED, error="export stopped")
        dead = self.dead_sources.get(pipe.config.name) or self.ledger_down
        if dead:
            return RunResult(pipe.config.name, run, RunStatus.FAILED, error=dead)
        return None

    def finished(self, result: RunResult) -> None:
        """Note a run's result: a source fatal error refuses the source's other runs."""
        if result.fatal:
            self.dead_sources.setdefault(result.pipeline, result.error)

    def ledger_gone(self, pipe: Pipeline, run: RunRef, exc: LedgerUnreachable) -> RunResult:
        """A run stopped by a ledger database that stopped answering: no other run starts
        (each is reported failed), the summary says what was exported."""
        if self.ledger_down is None:
            self.ledger_down = f"not started, the ledger stopped answering: {exc}"
            log.error("ledger_unreachable", error=str(exc), detail="no other run starts")
        return RunResult(pipe.config.name, run, RunStatus.FAILED, error=str(exc))

    def start_progress(self) -> None:
        hints = [run.size_hint for _, run, _ in self.jobs]
        self.progress.start(len(self.jobs), sum(h for h in hints if h is not None)
                            if hints and None not in hints else None)


class Executor:
    """Delivers a :class:`Batch`, yielding each run's result as it finishes."""

    def deliver(self, batch: Batch) -> Iterator[RunResult]:
        raise NotImplementedError

    def hash_many(self, config: Config) -> HashMany:
        """How ``verify`` re-reads and hashes many objects on this executor."""
        return hash_objects

    def close(self) -> None:
        """Release what the executor started (threads, a LocalCluster)."""


class ThreadExecutor(Executor):
    """``workers`` threads of this process, each delivering one run at a time."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def hash_many(self, config: Config) -> HashMany:
        def run(sink: ByteSink, paths: list[str]) -> list[Hashed]:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="verify") as pool:
                return list(pool.map(lambda path: hash_object(sink, path), paths))
        return run

    def deliver(self, batch: Batch) -> Iterator[RunResult]:
        """Deliver the runs on the threads; archives are group-committed here, between the
        runs finishing (:mod:`logarchive.groupcommit`): when no run has just finished (or
        :func:`~logarchive.groupcommit.max_runs` wait), every run published meanwhile is made
        durable and recorded in one ledger transaction, then reported."""
        lock = threading.Lock()
        group, group_max = GroupCommit(batch.ledger), max_runs(self.workers)
        # A published run keeps its claim until its group commits: no more than this many runs
        # may be claimed at once (in flight, finished and queued, or waiting in the group).
        claimed, closing = threading.Semaphore(self.workers + group_max), threading.Event()

        def work(pipe: Pipeline, run: RunRef, sinks: list[str]) -> RunResult | Published | None:
            with lock:
                refused = batch.refused(pipe, run)
            if refused:
                return refused
            claimed.acquire()
            if closing.is_set():  # the export ended with an error meanwhile: start nothing
                return None
            try:
                outcome = export_run(pipe, run, sinks, ledger=batch.ledger,
                                     state_dir=batch.config.state_dir, force=batch.force,
                                     stop=batch.stop, progress=batch.progress, group=True)
            except LedgerUnreachable as exc:  # start no other run; the summary says the rest
                claimed.release()
                with lock:
                    return batch.ledger_gone(pipe, run, exc)
            if not isinstance(outcome, Published):
                claimed.release()
            with lock:
                batch.finished(outcome.result if isinstance(outcome, Published) else outcome)
            return outcome

        def commit() -> list[RunResult]:
            results = group.commit()
            if results:
                claimed.release(len(results))
            return results

        finished: queue.SimpleQueue[Future[RunResult | Published | None]] = queue.SimpleQueue()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="export") as pool:
            for job in batch.jobs:
                pool.submit(work, *job).add_done_callback(finished.put)
            try:
                for _ in batch.jobs:
                    while True:
                        try:  # wait for a run only when no published run waits
                            outcome = finished.get(block=not group).result()
                            break
                        except queue.Empty:
                            yield from commit()
                    if isinstance(outcome, Published):
                        group.add(outcome)
                    elif outcome is not None:
                        yield outcome
                    if len(group) >= group_max:
                        yield from commit()
                yield from commit()
            except BaseException:  # a ledger or state_dir error: start no other run
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            finally:
                group.abandon()  # runs not committed (an error): not reported, not recorded
                closing.set()  # workers waiting for a claim slot return without a run
                claimed.release(self.workers)


def check_executor(config: Config) -> None:
    """Refuse, before anything runs, an executor that cannot work: Dask without its extra, or
    a scheduler on another host with state only this host can see."""
    settings = config.settings.executor
    if settings.type != "dask":
        return
    require_distributed()
    if settings.address is None or on_this_host(settings.address):
        return
    problems = [f"the ledger is SQLite in state_dir {config.state_dir}"] if uses_local_ledger(
        config) else []
    problems += [f"sink {name!r} archives to the local path {root}"
                 for name, root in local_archives(config)]
    if problems:
        raise ConfigError(
            f"the Dask scheduler {settings.address} is not on this host, but "
            + "; ".join(problems) + ": workers on other machines cannot share them (use a "
            "PostgreSQL ledger and object storage, or a scheduler on 127.0.0.1)",
            file=config.path, key="logarchive.executor.address")


def require_distributed() -> Any:
    """The ``distributed`` module, or a config error naming the extra that installs it."""
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"executor type 'dask' needs Dask: {DASK_EXTRA}",
                          key="logarchive.executor.type") from None
    return distributed


def uses_local_ledger(config: Config) -> bool:
    """True when the ledger lives in ``state_dir`` on this host (SQLite, no ``ledger`` URL)."""
    return config.settings.ledger is None


def local_archives(config: Config) -> list[tuple[str, str]]:
    """(sink name, path) of the byte sinks whose root is a path on this host."""
    out = []
    for name, sink in config.sinks.items():
        url = getattr(sink.config, "url", None)  # the fs sink's root; other sinks store remotely
        if isinstance(sink.config, ByteSinkConfig) and isinstance(url, str):
            scheme, sep, _ = url.partition("://")
            if not sep or scheme.lower() in ("file", "local"):
                out.append((name, url))
    return out


def on_this_host(address: str) -> bool:
    """True when the scheduler ``address`` (``tcp://host:port``, ``tls://...``, ``host:port``)
    names this machine: a loopback address or one of this host's own."""
    host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""
    try:
        wanted = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    own = set()
    for name in {socket.gethostname(), socket.getfqdn()}:
        try:
            own |= {info[4][0] for info in socket.getaddrinfo(name, None)}
        except OSError:
            pass
    return all(ipaddress.ip_address(ip.split("%")[0]).is_loopback or ip in own for ip in wanted)


def executor_for(config: Config, workers: int | None) -> Executor:
    """The executor the config asks for; ``workers`` (``--workers``) overrides the config's."""
    settings = config.settings
    if settings.executor.type == "dask":
        explicit = workers or ("workers" in settings.model_fields_set and settings.workers) or None
        return DaskExecutor(config, explicit)
    return ThreadExecutor(workers or settings.workers)


# --- Dask --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConfigSpec:
    """What a worker rebuilds the config from: the interpolated document (secrets included,
    hence TLS between clients, scheduler and workers), and the export it belongs to."""

    export_id: str
    document: dict[str, Any] = field(repr=False)  # never in a log line of a failed task
    path: str
    base_dir: str
    log_level: int

    @classmethod
    def of(cls, config: Config, export_id: str) -> ConfigSpec:
        return cls(export_id, config.document, config.path, str(config.base_dir), _log_level())

    def load(self) -> Config:
        return parse_config(escape_dollars(self.document), path=self.path,
                            base_dir=Path(self.base_dir), environ={})


@dataclass(frozen=True)
class Task:
    """One run's delivery as a Dask task carries it."""

    spec: ConfigSpec
    pipeline: str
    run: RunRef
    sinks: list[str]
    force: bool
    given_up: dict[str, str] = field(default_factory=dict)  # sinks of the pipeline given up


class DaskExecutor(Executor):
    """One Dask task per run; at most ``in_flight`` runs delivered at once."""

    def __init__(self, config: Config, workers: int | None) -> None:
        self.distributed = require_distributed()
        _quiet_dask_logs()
        settings = config.settings.executor
        self.cluster = None
        if settings.address is None:
            processes = settings.processes or os.cpu_count() or 1
            per_process = math.ceil((workers or config.settings.workers) / processes)
            import dask

            with dask.config.set(QUIET_WORKERS):
                self.cluster = self.distributed.LocalCluster(
                    n_workers=processes, threads_per_worker=per_process, processes=True,
                    dashboard_address=None, silence_logs=40)
            self.client = self.distributed.Client(self.cluster)
        else:
            self.client = self.distributed.Client(settings.address, timeout="30s")
        threads = sum(self.client.nthreads().values())
        self.in_flight = max(1, workers or threads)
        # When the cluster's threads cap the runs in flight, as many more tasks wait on the
        # scheduler, so a thread that finishes a run starts the next without a round trip to
        # this process (tiny runs were bound by that latency).
        self.submitted = self.in_flight + (threads if threads <= self.in_flight else 0)
        self.export_id = uuid.uuid4().hex
        self.stopping = False  # the workers were told to interrupt this export's runs
        self.given_up: dict[str, dict[str, str]] = {}  # per pipeline, sinks given up
        log.info("dask_connected", scheduler=self.client.scheduler.address, threads=threads,
                 in_flight=self.in_flight, local_cluster=self.cluster is not None)

    def deliver(self, batch: Batch) -> Iterator[RunResult]:
        pending = iter(batch.jobs)
        futures: dict[Any, Job] = {}
        spec = ConfigSpec.of(batch.config, self.export_id)
        try:
            while True:
                while len(futures) < self.submitted and not batch.stop.is_set():
                    job = next(pending, None)
                    if job is None:
                        break
                    refused = batch.refused(job[0], job[1])
                    if refused:
                        yield refused
                        continue
                    futures[self._submit(spec, batch.force, job)] = job
                if not futures:
                    break
                for future in self._wait(futures, batch.stop):
                    result = self._result(future, futures.pop(future), batch)
                    batch.finished(result)
                    batch.progress.advance(result.bytes)  # a worker's bytes, once per run
                    yield result
            for pipe, run, _ in pending:  # stopped: the runs never submitted
                yield RunResult(pipe.config.name, run, RunStatus.INTERRUPTED,
                                error="export stopped")
        finally:
            self._stop_tasks(futures)

    def _submit(self, spec: ConfigSpec, force: bool, job: Job) -> Any:
        pipe, run, sinks = job
        task = Task(spec, pipe.config.name, run, sinks, force,
                    self.given_up.get(pipe.config.name, {}))
        return self.client.submit(export_task, task, pure=False, retries=0,
                                  key=f"logarchive-{run.key_hash}-{uuid.uuid4().hex[:8]}")

    def hash_many(self, config: Config) -> HashMany:
        """``verify``'s re-reading of objects as Dask tasks, a few objects per task."""
        spec = ConfigSpec.of(config, self.export_id)

        def run(sink: ByteSink, paths: list[str]) -> list[Hashed]:
            size = max(1, math.ceil(len(paths) / (4 * self.in_flight)))
            futures = [self.client.submit(hash_task, spec, sink.name, paths[i:i + size],
                                          pure=False) for i in range(0, len(paths), size)]
            return [h for part in self.client.gather(futures) for h in part]
        return run

    def _wait(self, futures: dict[Any, Job], stop: threading.Event) -> list[Any]:
        """The futures done within a moment; on a stop, tell the workers to interrupt this
        export's runs (they record it in the ledger and return their results)."""
        try:
            done, _ = self.distributed.wait(list(futures), timeout=0.5,
                                            return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        if stop.is_set() and not self.stopping:
            self.stopping = True
            self.client.run(stop_export, self.export_id)
        return list(done)

    def _result(self, future: Any, job: Job, batch: Batch) -> RunResult:
        pipe, run, _ = job
        try:
            result, given_up = future.result()
        except LedgerUnreachable as exc:  # start no other run; the summary says the rest
            return batch.ledger_gone(pipe, run, exc)
        except LedgerError:  # the ledger or state_dir is unusable: stop, as a local export does
            raise
        except Exception as exc:  # the task died with its workers (KilledWorker) or a bug
            message = f"{type(exc).__name__}: {redact(str(exc))}"
            log.error("run_failed", run=run.key, error=message, executor="dask")
            return RunResult(pipe.config.name, run, RunStatus.FAILED, error=message)
        self._give_up(pipe.config.name, given_up)
        return result

    def _give_up(self, pipeline: str, sinks: dict[str, str]) -> None:
        """A worker gave sinks up (a fatal error: an invalid token): every later task of the
        export says so, and the workers hear it now, for the runs they hold already."""
        known = self.given_up.setdefault(pipeline, {})
        if sinks.keys() - known.keys():
            known.update({k: v for k, v in sinks.items() if k not in known})
            self.client.run(give_up_sinks, self.export_id, pipeline, dict(known))

    def _stop_tasks(self, futures: dict[Any, Job]) -> None:
        """Leaving with tasks still submitted (an error, or the consumer stopped): cancel
        them, and interrupt those already running."""
        if futures:
            self.client.cancel(list(futures))
            self.client.run(stop_export, self.export_id)

    def close(self) -> None:
        try:
            self.client.run(close_export, self.export_id)
            if self.cluster is not None:
                _wait_idle(self.client, self.export_id)
        finally:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


def _wait_idle(client: Any, export_id: str, limit: float = 30.0) -> None:
    """Before a LocalCluster is closed, let its interrupted tasks record their outcome."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not any(client.run(running_tasks, export_id).values()):
            return
        time.sleep(0.1)


def _quiet_dask_logs() -> None:
    """Dask logs every connection at INFO: keep its loggers at WARNING unless ``-vv``."""
    if logging.getLogger().level > logging.DEBUG:
        for name in ("distributed", "dask"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _log_level() -> int:
    """The coordinator's structlog level, for the workers' logs."""
    wrapper = structlog.get_config().get("wrapper_class")
    try:
        return int(wrapper.get_effective_level(wrapper))  # a filtering bound logger
    except (AttributeError, TypeError, ValueError):
        return logging.INFO


# --- on a Dask worker --------------------------------------------------------------------------

@dataclass
class WorkerExport:
    """One export's state in a worker process: its config, pipelines, ledger and stop."""

    config: Config
    ledger: Ledger | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    running: int = 0
    # per pipeline, its dead_sinks: the sinks given up anywhere in the cluster (the coordinator
    # passes on what a worker gave up)
    given_up: dict[str, dict[str, str]] = field(default_factory=dict)

    def pipeline(self, name: str) -> Pipeline:
        if name not in self.pipelines:
            pipe = instantiate(self.config, self.config.pipeline(name), self.stop)
            pipe.dead_sinks = self.dead_sinks(name)
            self.pipelines[name] = pipe
        return self.pipelines[name]

    def dead_sinks(self, pipeline: str, known: dict[str, str] | None = None) -> dict[str, str]:
        """The sinks of ``pipeline`` given up in this export (anywhere), with ``known``."""
        dead = self.given_up.setdefault(pipeline, {})
        for sink, error in (known or {}).items():
            dead.setdefault(sink, error)
        return dead

    def close(self) -> None:
        self.stop.set()
        for pipe in self.pipelines.values():
            pipe.close()
        if self.ledger is not None:
            self.ledger.close()


_EXPORTS: dict[str, WorkerExport] = {}
_EXPORTS_LOCK = threading.Lock()
_STOPPED: set[str] = set()  # exports told to stop: a task of theirs still queued starts no run


def export_task(task: Task) -> tuple[RunResult, dict[str, str]]:
    """Deliver one run on a Dask worker (the task of :class:`DaskExecutor`); the result, and
    the sinks of its pipeline given up so far (the coordinator tells the cluster)."""
    state = _worker_export(task.spec)
    pipe_name, run = task.pipeline, task.run
    with _EXPORTS_LOCK:
        dead = state.dead_sinks(pipe_name, task.given_up)
        if state.stop.is_set() or task.spec.export_id in _STOPPED:
            return RunResult(pipe_name, run, RunStatus.INTERRUPTED, error="export stopped"), {}
        state.running += 1
        pipe = state.pipeline(pipe_name)
    try:
        assert state.ledger is not None
        result = export_run(pipe, run, task.sinks, ledger=state.ledger,
                            state_dir=state.config.state_dir, force=task.force,
                            stop=_TaskStop(state.stop))
        return result, dict(dead)
    finally:
        with _EXPORTS_LOCK:
            state.running -= 1


def hash_task(spec: ConfigSpec, sink_name: str, paths: list[str]) -> list[Hashed]:
    """Re-read and hash a few objects of a byte sink on a Dask worker (``verify``)."""
    sink = open_sink(_worker_export(spec, ledger=False).config, sink_name)
    try:
        return hash_objects(sink, paths)
    finally:
        sink.close()


def _worker_export(spec: ConfigSpec, ledger: bool = True) -> WorkerExport:
    """This export's state in this worker process, built by its first task."""
    with _EXPORTS_LOCK:
        state = _EXPORTS.get(spec.export_id)
        if state is None:
            _configure_logging(spec.log_level)
            bind_worker(_current_worker())
            config = spec.load()
            state = _EXPORTS[spec.export_id] = WorkerExport(config)
            _close_idle(keep=spec.export_id)
        if ledger and state.ledger is None:
            state.ledger = open_ledger(state.config)
        return state


def _close_idle(keep: str) -> None:
    """Close the state of exports whose coordinator went away without closing it (caller holds
    the lock)."""
    for export_id, state in list(_EXPORTS.items()):
        if export_id != keep and state.running == 0:
            del _EXPORTS[export_id]
            state.close()


def _configure_logging(level: int) -> None:
    from logarchive import logsetup

    verbosity = {40: -2, 30: -1, 20: 0}.get(level, 1)
    logsetup.configure(verbosity, json=True)
    _quiet_dask_logs()


class _TaskStop(threading.Event):
    """A run's stop on a worker: the export's stop, or this task released by the scheduler
    (its coordinator died or cancelled it)."""

    def __init__(self, export_stop: threading.Event) -> None:
        super().__init__()
        self.export_stop = export_stop
        self.key = _current_key()

    def is_set(self) -> bool:
        return self.export_stop.is_set() or _released(self.key)


def _current_worker() -> Any:
    from distributed import get_worker

    return get_worker()


def _current_key() -> str | None:
    from distributed.worker import thread_state

    return getattr(thread_state, "key", None)


def _released(key: str | None) -> bool:
    if key is None:
        return False
    from distributed import get_worker

    try:
        task = get_worker().state.tasks.get(key)
    except ValueError:  # not on a worker
        return False
    return task is None or task.state in ("cancelled", "released", "forgotten")


def stop_export(export_id: str) -> None:
    """On every worker (``client.run``): interrupt the export's runs at their next chunk."""
    with _EXPORTS_LOCK:
        _STOPPED.add(export_id)
        state = _EXPORTS.get(export_id)
        if state is not None:
            state.stop.set()


def give_up_sinks(export_id: str, pipeline: str, sinks: dict[str, str]) -> None:
    """On every worker: the sinks of ``pipeline`` given up by this export elsewhere; the runs
    that reach them here are left pending for the next export, without a request."""
    with _EXPORTS_LOCK:
        state = _EXPORTS.get(export_id)
        if state is not None:
            state.dead_sinks(pipeline, sinks)


def running_tasks(export_id: str | None = None) -> int:
    """On every worker: how many runs of the export (of any export) are being delivered."""
    with _EXPORTS_LOCK:
        return sum(state.running for key, state in _EXPORTS.items()
                   if export_id in (None, key))


def close_export(export_id: str) -> None:
    """On every worker: the export ended; close its pipelines and ledger once idle."""
    with _EXPORTS_LOCK:
        state = _EXPORTS.get(export_id)
        if state is not None and state.running == 0:
            del _EXPORTS[export_id]
            state.close()


def escape_dollars(value: Any) -> Any:
    """An interpolated document made safe to parse again: every ``$`` written ``$$``."""
    if isinstance(value, dict):
        return {k: escape_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_dollars(v) for v in value]
    return value.replace("$", "$$") if isinstance(value, str) else value

