"""logarchive: export ML training and job logs to archives and log aggregators, exactly once.

Python API (what the CLI is a thin layer over)::

    import logarchive

    config = logarchive.load_config("logarchive.toml")
    summary = logarchive.export(config, pipeline="training")
    print(summary.exported, summary.failed, summary.exit_code)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("logarchive")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

from logarchive.config import Config, load_config, parse_config  # noqa: E402
from logarchive.engine import ExportSummary, RunResult, export  # noqa: E402
from logarchive.errors import (  # noqa: E402
    ConfigError, LedgerError, LogarchiveError, SinkError, SourceError,
)

__all__ = [
    "Config", "ConfigError", "ExportSummary", "LedgerError", "LogarchiveError", "RunResult",
    "SinkError", "SourceError", "__version__", "export", "load_config", "parse_config",
]
