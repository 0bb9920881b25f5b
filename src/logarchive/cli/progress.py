"""The export progress bar (rich), imported only when stderr is a terminal: a piped or cron
export never imports rich."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress as Bar, ProgressColumn, TextColumn, TimeElapsedColumn,
)
from rich.text import Text

from logarchive.results import Progress, RunResult


class RichProgress(Progress):
    """A rich progress bar on a terminal (stderr): runs done of total, bytes (of the total when
    the sources know their runs' sizes) and the byte rate."""

    def __init__(self, console: Any = None) -> None:
        self._bar = Bar(
            TextColumn("[progress.description]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("runs"), _BytesColumn(), TimeElapsedColumn(),
            transient=True, console=console or Console(stderr=True),
        )
        self._task: Any = None
        self._bytes = 0
        self._lock = threading.Lock()

    def start(self, total_runs: int, total_bytes: int | None = None) -> None:
        if total_runs:
            self._bar.start()
            self._task = self._bar.add_task("exporting", total=total_runs, bytes=0,
                                            total_bytes=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            with self._lock:
                self._bytes += nbytes
                self._bar.update(self._task, bytes=self._bytes)

    def run_done(self, result: RunResult) -> None:
        if self._task is not None:
            self._bar.advance(self._task)

    def refresh(self) -> None:
        self._bar.refresh()

    def stop(self) -> None:
        if self._task is not None:
            self._bar.stop()


class _BytesColumn(ProgressColumn):
    """``1.5 MB / 3.0 MB  750.0 kB/s``: bytes read (of the known total) and the rate."""

    def render(self, task: Any) -> Text:
        done, total = task.fields.get("bytes", 0), task.fields.get("total_bytes")
        elapsed = task.elapsed or 0
        rate = f"{decimal(int(done / elapsed))}/s" if elapsed > 0 else "?/s"
        text = decimal(done) + (f" / {decimal(total)}" if total else "")
        return Text(f"{text}  {rate}", style="progress.download")
