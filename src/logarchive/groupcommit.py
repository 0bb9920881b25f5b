"""Group commit: many runs' objects made durable, then ONE ledger transaction recording them.

A run delivered with ``export_run(..., group=True)`` comes back :class:`~logarchive.delivery.
Published`: its objects and manifests are written, fsynced and renamed to their final names,
its run still claimed. :meth:`GroupCommit.commit` then, for every run waiting:

1. runs each distinct durability step once (the fsync of a folder many objects were renamed
   into, and of the folders above it);
2. writes every ``delivered`` record in one ledger transaction (each run's claim checked in it:
   a run whose lease was lost is not recorded and is reported ``lease_lost``);
3. releases the claims, and only then hands back the results (a run is never reported exported
   before its record is committed).

A crash between 1 and 2 leaves objects the ledger does not know: the next export finds the
identical bytes archived and records them (see ``_keep_existing`` in :mod:`logarchive.delivery`).
Record sinks are never grouped: their resume points and records are written as they come.
"""

from __future__ import annotations

from typing import Any

import structlog

from logarchive.delivery import Published, Recorded
from logarchive.ledger import Ledger, LedgerUnreachable
from logarchive.results import RunResult
from logarchive.secrets import redact
from logarchive.status import RunStatus

log = structlog.get_logger("logarchive")

MAX_RUNS = 256
"""The most runs one group commit records (bounds how long a finished run waits)."""


def max_runs(workers: int) -> int:
    """:data:`MAX_RUNS`, fewer under a low open-file limit. A run waiting for its group keeps
    its claim (an open lock file with the SQLite ledger) while ``workers`` runs in flight hold
    a few files each (claim, temp object, connection): the group gets what is left of the limit
    after those and a reserve (1,024 files and 4 workers: 256 runs; 64 files and 16 workers: 1,
    a commit per run as without grouping)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):  # no such limit here (Windows)
        return MAX_RUNS
    if soft == resource.RLIM_INFINITY:
        return MAX_RUNS
    return max(1, min(MAX_RUNS, (soft - 32 - 4 * workers) // 2))


class GroupCommit:
    """The published runs waiting for one commit (see the module docstring)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.runs: list[Published] = []

    def __len__(self) -> int:
        return len(self.runs)

    def add(self, published: Published) -> None:
        self.runs.append(published)

    def commit(self) -> list[RunResult]:
        """Make every waiting run durable and recorded; their results, now final."""
        runs, self.runs = self.runs, []
        if not runs:
            return []
        try:
            rows = _sync([(row, run.result) for run in runs for row in run.rows])
            lost = {id(row) for row in self.ledger.delivered_many([row for row, _ in rows])}
            for row, result in rows:
                if id(row) in lost:
                    _lost(row, result)
                else:
                    log.info("run_exported", **row.event)
        except LedgerUnreachable as exc:  # nothing recorded: failed, not exported
            for run in runs:
                run.result.status, run.result.error = RunStatus.FAILED, str(exc)
                run.result.sinks = {name: f"failed: {exc}" for name in run.result.sinks}
            log.error("ledger_unreachable", error=str(exc), runs=len(runs),
                      detail="the group's runs are archived but not recorded; the next "
                      "export records them")
        finally:
            for run in runs:
                run.claim.release()
        return [run.result for run in runs]

    def abandon(self) -> None:
        """Leave the waiting runs unrecorded (the export failed): release their claims; the
        next export finds their objects and records them."""
        runs, self.runs = self.runs, []
        for run in runs:
            run.claim.release()


def _sync(rows: list[tuple[Recorded, RunResult]]) -> list[tuple[Recorded, RunResult]]:
    """Run each distinct step of ``rows`` once; the rows whose steps all succeeded (the others
    are recorded failed at their sink)."""
    failed: dict[Any, OSError] = {}
    for step in dict.fromkeys(step for row, _ in rows for step in row.steps):
        try:
            step.sync()
        except OSError as exc:
            failed[step] = exc
    good = []
    for row, result in rows:
        errors = [failed[step] for step in row.steps if step in failed]
        if not errors:
            good.append((row, result))
            continue
        message = redact(f"cannot make the object durable: {errors[0]}")
        result.sinks[row.sink] = f"failed: {message}"
        result.status, result.error = RunStatus.FAILED, f"{row.sink}: failed: {message}"
        row.ledger.failed(row.run, row.sink, message)
        log.error("sink_failed", run=row.run.key, sink=row.sink, error=message)
    return good


def _lost(row: Recorded, result: RunResult) -> None:
    """Another export took the run over before its record was written: nothing recorded."""
    result.status = RunStatus.LEASE_LOST
    result.error = f"run {row.run.key}: the claim was lost before the group commit"
    result.sinks[row.sink] = f"{RunStatus.LEASE_LOST}: {result.error}"
    log.warning("run_lease_lost", run=row.run.key, error=result.error)
