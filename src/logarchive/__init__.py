"""logarchive: export ML training and job logs to archives and log aggregators, exactly once.

Python API (what the CLI is a thin layer over)::

    import logarchive

    config = logarchive.load_config("logarchive.toml")
    summary = logarchive.export(config, pipeline="training")
    print(summary.exported, summary.failed, summary.exit_code)
"""

from __future__ import annotations

from logarchive.version import __version__  # first: delivery.py still imports it from here

from logarchive.config import Config, load_config, parse_config
from logarchive.engine import ExportSummary, RunResult, export
from logarchive.errors import (
    ConfigError, LedgerError, LogarchiveError, SinkError, SourceError,
)

__all__ = [
    "Config", "ConfigError", "ExportSummary", "LedgerError", "LogarchiveError", "RunResult",
    "SinkError", "SourceError", "__version__", "export", "load_config", "parse_config",
]
