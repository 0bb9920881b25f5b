"""``logarchive check``: connectivity and permission checks of every source and sink in a
config, without exporting (like Vector's sink health checks).

Each component's plugin ``check()`` runs once (sources: the service answers and accepts the
credentials; sinks: the folder or bucket exists and takes writes, the aggregator's token is valid),
on its own: one failure does not stop the others; a PostgreSQL ledger is connected to. A check
exports nothing, writes no log line to an aggregator and leaves nothing behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logarchive.config import Config
from logarchive.errors import LogarchiveError
from logarchive.ledger import existing_ledger, ledger_place
from logarchive.pipeline import close_all, open_any_sink, open_source
from logarchive.secrets import redact


@dataclass
class CheckResult:
    """The outcome of one component's check: ``ok``, ``failed`` or ``skipped`` (no check)."""

    kind: str  # "source" | "sink"
    name: str
    type: str
    status: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "type": self.type, "status": self.status,
                "detail": self.detail}

    def text(self) -> str:
        return f"{self.status:<7} {self.kind} {self.name} ({self.type}): {self.detail}"


def run_checks(config: Config, pipeline: str | None = None) -> list[CheckResult]:
    """Check the sources and sinks of ``pipeline`` (every pipeline when None), each once."""
    pipelines = [config.pipeline(pipeline)] if pipeline else config.pipelines
    sources = list(dict.fromkeys(p.source for p in pipelines))
    sinks = list(dict.fromkeys(s for p in pipelines for s in p.sinks))
    stop = threading.Event()
    results = [check_one("source", n, config.sources[n].plugin.type,
                         lambda n=n: open_source(config, n, stop)) for n in sources]
    results += [check_one("sink", n, config.sinks[n].plugin.type,
                          lambda n=n: open_any_sink(config, n, stop)) for n in sinks]
    if config.settings.ledger is not None:
        results.append(check_ledger(config))
    return results


def check_ledger(config: Config) -> CheckResult:
    """Connect to the PostgreSQL ledger and check its schema (creating nothing)."""
    try:
        ledger = existing_ledger(config)
    except LogarchiveError as exc:
        return CheckResult("ledger", "ledger", "postgresql", "failed", str(exc))
    if ledger is None:
        detail = "connected; no ledger there yet (the first export creates it)"
    else:
        ledger.close()
        detail = "connected; the ledger's schema is usable"
    return CheckResult("ledger", "ledger", "postgresql", "ok", f"{ledger_place(config)}: {detail}")


def check_one(kind: str, name: str, type_: str, opener: Callable[[], Any]) -> CheckResult:
    """Open one plugin instance and run its check; errors become a ``failed`` result."""
    plugin = None
    try:
        plugin = opener()
        return CheckResult(kind, name, type_, "ok", redact(plugin.check()))
    except NotImplementedError:
        return CheckResult(kind, name, type_, "skipped", "the plugin has no check")
    except LogarchiveError as exc:
        return CheckResult(kind, name, type_, "failed", str(exc))
    except Exception as exc:  # a plugin's unexpected error is that component's failure
        return CheckResult(kind, name, type_, "failed",
                           redact(f"{type(exc).__name__}: {exc}"))
    finally:
        if plugin is not None:
            close_all([plugin])
