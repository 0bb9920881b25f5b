"""The export progress bar counts runs in its run column and bytes (with a total and a rate)
in its byte column."""

from __future__ import annotations

import io
import re

from rich.console import Console

from logarchive.cli.progress import RichProgress
from logarchive.results import RunResult
from logarchive.runs import RunRef
from logarchive.status import RunStatus


def _drive(total_bytes: int | None) -> str:
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=150)
    progress = RichProgress(console=console)
    progress.start(4, total_bytes)
    progress.advance(1_500_000)
    progress.advance(500_000)
    run = RunRef(source="s", fields={"run_id": "r1"})
    progress.run_done(RunResult("p", run, RunStatus.EXPORTED))
    progress.refresh()
    text = console.export_text()
    progress.stop()
    return text.splitlines()[-1] if text.strip() else text


def test_bar_shows_runs_bytes_total_and_rate() -> None:
    line = _drive(8_000_000)
    assert "1/4 runs" in line
    assert "2.0 MB / 8.0 MB" in line  # bytes read of the runs' size hints
    assert re.search(r"[\d.]+ [kMG]?B/s", line), line


def test_bar_without_size_hints_shows_bytes_alone() -> None:
    line = _drive(None)
    assert "1/4 runs" in line and "2.0 MB " in line and " / " not in line.split("runs")[1]
