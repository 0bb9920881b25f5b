"""One exception hierarchy; the CLI turns each into one message and a documented exit code."""

from __future__ import annotations

from logarchive.secrets import redact
from logarchive.status import ExitCode


class LogarchiveError(Exception):
    """Base of every error logarchive raises on purpose.

    ``str(error)`` is always redacted: secrets registered with :mod:`logarchive.secrets` and
    presigned query strings never appear in it.
    """

    exit_code: int = ExitCode.FAILED
    endpoint: str | None = None
    """``host:port`` of a peer that gave no answer at all (refused, reset, timed out): set on
    network errors, so a caller can tell "unreachable" from "answered no"."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(LogarchiveError):
    """The configuration is invalid. Raised before any network call; exit status 2."""

    exit_code: int = ExitCode.USAGE

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class PluginError(LogarchiveError):
    """A plugin could not be loaded or declares something invalid."""

    exit_code: int = ExitCode.USAGE


class SourceError(LogarchiveError):
    """A source could not list runs or stream a log.

    ``retriable`` says whether the same request may succeed later (the core retry loop uses it);
    ``fatal_for_source`` stops every other run of the same source (an invalid token, say), so a
    broken credential does not turn into one failure per run.
    """

    def __init__(
        self, message: str, *, retriable: bool = False, fatal_for_source: bool = False
    ) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.fatal_for_source = fatal_for_source


class RunNotReady(SourceError):
    """The run exists but has no final log yet (still running); skipped, picked up later."""


class RunGone(SourceError):
    """The run or its log does not exist (any more) at the source: recorded, not retried forever."""


class SinkError(LogarchiveError):
    """A sink could not store or deliver. ``fatal_for_sink`` gives the sink up for the rest of
    this export (an invalid token, a receiver that stays unreachable): its other runs are not
    attempted and stay pending for the next export."""

    def __init__(
        self, message: str, *, retriable: bool = False, fatal_for_sink: bool = False
    ) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.fatal_for_sink = fatal_for_sink


class LedgerError(LogarchiveError):
    """The ledger cannot be read or written."""


class StateDirFull(LedgerError):
    """The filesystem of ``state_dir`` has no space or no inodes left: the export stops at once,
    exit status 3 (:attr:`ExitCode.STATE_FULL`)."""

    exit_code: int = ExitCode.STATE_FULL


class StateDirUnusable(LedgerError):
    """``state_dir`` cannot hold the ledger and the locks (a file where the folder should be, a
    file named ``locks`` in it, not writable), found before any run starts: a configuration
    error, exit status 2. The same failure in the middle of a run is that run's failure."""

    exit_code: int = ExitCode.USAGE


class Interrupted(LogarchiveError):
    """The export was asked to stop (SIGTERM/SIGINT) before this run finished."""


class LeaseLost(LogarchiveError):
    """This export's claim on a run was taken over by another export after its lease ran out
    (a PostgreSQL ledger; this process was paused or cut off for longer than
    ``lease_seconds``). The run is stopped without another ledger write: its new owner delivers
    it. The export exits with :attr:`ExitCode.LEASE_LOST`."""
