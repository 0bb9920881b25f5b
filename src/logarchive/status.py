"""The words logarchive uses for what happened: run statuses and exit codes, defined once.

:class:`RunStatus` is shared by the engine (the outcome of a run in one export), the ledger (the
state of a run at one sink) and the CLI (what it prints and counts). Members are ``str``, so they
compare equal to, serialise as, and are stored in the ledger as their plain values
(``RunStatus.DELIVERED == "delivered"``).

:class:`ExitCode` is every exit status a command can produce.
"""

from __future__ import annotations

import enum


class RunStatus(enum.StrEnum):
    """Outcome of a run in one export, and state of a run at one sink in the ledger."""

    # Outcomes of a run in one export (RunResult.status).
    EXPORTED = "exported"          # delivered to every sink it was pending at
    SKIPPED = "skipped"            # every sink had it already
    LOCKED = "locked"              # another export is delivering it right now
    DEFERRED = "deferred"          # a sink it is pending at was given up in this export
    LEASE_LOST = "lease_lost"      # its claim ran out and another export took the run over
    # Both an outcome and a ledger state.
    FAILED = "failed"              # retried by the next export
    NOT_READY = "not_ready"        # the source says it is not finished: picked up later
    INTERRUPTED = "interrupted"    # stopped by a signal: resumed by the next export
    # Ledger states of a run at one sink.
    IN_PROGRESS = "in_progress"    # a delivery started and has not ended (or its process died)
    DELIVERED = "delivered"        # committed (objects) or every record accepted (aggregators)
    VOLATILE = "volatile"          # committed to a sink that forgets it (allow_non_durable):
                                   # never counted as delivered, so every export delivers again
    GONE = "gone"                  # purged at the source: never asked again


class ExitCode(enum.IntEnum):
    """Exit status of every ``logarchive`` command."""

    OK = 0                 # everything delivered, or nothing to do; the check or report passed
    FAILED = 1             # some runs (or checks, deletions) failed; the rest were done
    USAGE = 2              # usage or configuration error: nothing was done
    STATE_FULL = 3         # the state directory's filesystem is full (space or inodes): stopped
    LEASE_LOST = 4         # a run's claim was taken over (lease ran out): another export has it
    SIGHUP = 129           # stopped by SIGHUP (128 + 1)
    SIGINT = 130           # stopped by SIGINT (Ctrl-C): 128 + 2
    SIGTERM = 143          # stopped by SIGTERM (128 + 15)

    @classmethod
    def for_signal(cls, signum: int) -> int:
        """The shell convention for a process stopped by signal ``signum``: 128 + signum."""
        try:
            return cls(128 + signum)
        except ValueError:
            return 128 + signum

    @classmethod
    def epilog(cls) -> str:
        """The table shown at the end of ``logarchive --help``."""
        words = {
            cls.OK: "everything delivered, or nothing to do",
            cls.FAILED: "some runs, checks or deletions failed (the rest were done)",
            cls.USAGE: "usage or configuration error, an unusable state_dir included (nothing was done)",
            cls.STATE_FULL: "state_dir is full (no space or inodes left): stopped",
            cls.LEASE_LOST: "a run's lease ran out and another export took it over",
            cls.SIGHUP: "stopped by SIGHUP", cls.SIGINT: "stopped by SIGINT (Ctrl-C)",
            cls.SIGTERM: "stopped by SIGTERM",
        }
        return "Exit status:\n\n" + "\n".join(f"  {int(c):>3}  {words[c]}" for c in cls)
