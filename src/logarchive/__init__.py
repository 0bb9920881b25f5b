"""logarchive: export ML training and job logs to archives and log aggregators, exactly once.

Python API (what the CLI is a thin layer over)::

    import logarchive

    config = logarchive.load_config("logarchive.toml")
    summary = logarchive.export(config, pipeline="training", since="7d")
    print(summary.exported, summary.failed, summary.exit_code)
    reports = logarchive.verify(config)            # one VerifyReport per byte sink
    plans = logarchive.retention_plan(config)      # what retention would delete; deletes nothing

Log events go to stderr (JSON lines unless stderr is a terminal) until the program configures
structlog itself.
"""

from __future__ import annotations

from logarchive.version import __version__  # first: delivery.py still imports it from here

from logarchive import logsetup
from logarchive.api import export, retention_apply, retention_plan, verify
from logarchive.config import Config, load_config, parse_config
from logarchive.engine import ExportSummary, RunResult
from logarchive.errors import (
    ConfigError, LedgerError, LogarchiveError, SinkError, SourceError,
)

logsetup.default_to_stderr()  # an embedding program's stdout stays its own

__all__ = [
    "Config", "ConfigError", "ExportSummary", "LedgerError", "LogarchiveError", "RunResult",
    "SinkError", "SourceError", "__version__", "export", "load_config", "parse_config",
    "retention_apply", "retention_plan", "verify",
]
