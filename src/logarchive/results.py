"""What an export did: one :class:`RunResult` per run, the :class:`ExportSummary` of them all
(with its exit code and the one-line text the CLI prints), and the :class:`Progress` hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logarchive.runs import RunRef
from logarchive.status import ExitCode, RunStatus


@dataclass
class RunResult:
    """Outcome of one run in one pipeline."""

    pipeline: str
    run: RunRef
    status: RunStatus
    sinks: dict[str, str] = field(default_factory=dict)
    bytes: int = 0
    lines: int = 0
    seconds: float = 0.0
    error: str | None = None
    fatal: bool = False  # the source cannot serve any other run (invalid token...)
    lines_skipped: dict[str, int] = field(default_factory=dict)
    """Per sink, the lines it leaves out by design (Splunk raw: blank lines); never sent."""

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "run": self.run.key, "fields": self.run.fields,
            "status": self.status, "sinks": self.sinks, "bytes": self.bytes,
            "lines": self.lines, "lines_skipped": self.lines_skipped,
            "seconds": round(self.seconds, 3), "error": self.error,
        }


@dataclass
class ExportSummary:
    """What an export did; :attr:`exit_code` is the :class:`~logarchive.status.ExitCode`."""

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
        return self.count(RunStatus.EXPORTED)

    @property
    def skipped(self) -> int:
        return self.count(RunStatus.SKIPPED)

    @property
    def failed(self) -> int:
        return self.count(RunStatus.FAILED)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.results if r.status == RunStatus.EXPORTED)

    @property
    def lines(self) -> int:
        return sum(r.lines for r in self.results if r.status == RunStatus.EXPORTED)

    @property
    def lines_skipped(self) -> dict[str, int]:
        """Per sink, the lines of exported runs it left out by design (never sent)."""
        totals: dict[str, int] = {}
        for result in self.results:
            if result.status == RunStatus.EXPORTED:
                for sink, count in result.lines_skipped.items():
                    totals[sink] = totals.get(sink, 0) + count
        return totals

    @property
    def exit_code(self) -> int:
        """OK when everything was delivered or there was nothing to do, FAILED when some runs
        failed or were deferred (a sink given up), else LEASE_LOST when another export took a
        run over, 128 + the signal number when a signal stopped the export."""
        if self.interrupted_by is not None:
            return ExitCode.for_signal(self.interrupted_by)
        undelivered = self.failed or self.count(RunStatus.DEFERRED)
        if undelivered or self.errors:  # a run that really failed outranks one taken over
            return ExitCode.FAILED
        return ExitCode.LEASE_LOST if self.count(RunStatus.LEASE_LOST) else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "exported": self.exported, "skipped": self.skipped, "failed": self.failed,
            "not_ready": self.count(RunStatus.NOT_READY), "locked": self.count(RunStatus.LOCKED),
            "deferred": self.count(RunStatus.DEFERRED),
            "interrupted": self.count(RunStatus.INTERRUPTED),
            "lease_lost": self.count(RunStatus.LEASE_LOST), "bytes": self.bytes,
            "lines": self.lines, "lines_skipped": self.lines_skipped,
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
        for status, words in ((RunStatus.NOT_READY, "not ready"),
                              (RunStatus.LOCKED, "in progress elsewhere"),
                              (RunStatus.DEFERRED, "deferred to the next export"),
                              (RunStatus.INTERRUPTED, "interrupted"),
                              (RunStatus.LEASE_LOST, "lease lost (taken over by another export)")):
            if self.count(status):
                parts.append(f"{words} {self.count(status)}")
        if self.errors:  # the exit status counts them: so does the summary
            parts.append(f"{len(self.errors)} source error(s)")
        skipped = "".join(f" ({count} not sent to {sink}: see its README)"
                          for sink, count in sorted(self.lines_skipped.items()))
        return (
            ", ".join(parts)
            + f"; {human_bytes(self.bytes)}, {self.lines} lines{skipped} in {self.seconds:.2f}s"
        )


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class Progress:
    """Hooks the CLI uses to draw a progress bar; the default does nothing."""

    def start(self, total_runs: int, total_bytes: int | None = None) -> None:
        """``total_bytes``: the sum of the runs' ``size_hint`` when every run has one."""
    def advance(self, nbytes: int) -> None: ...
    def run_done(self, result: RunResult) -> None: ...
    def stop(self) -> None: ...
