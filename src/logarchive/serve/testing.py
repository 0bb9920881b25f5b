"""For tests: run the real ``logarchive serve`` in a subprocess on 127.0.0.1 and learn its URL
from the line it prints at start (``listen = "127.0.0.1:0"``: any free port)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_READY = re.compile(r"serving sink .* on (http://\S+)/")


class ServeProcess:
    """A running ``logarchive serve``; ``url`` has no trailing slash; ``stderr`` what it
    printed so far."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.url = ""
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            match = _READY.search(line)
            if match and not self._ready.is_set():
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()  # exited without serving

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 60) -> None:
        if not self._ready.wait(timeout) or not self.url:
            self.stop()
            raise RuntimeError(f"logarchive serve did not start:\n{self.stderr}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@contextmanager
def serving(config: Path, env: dict[str, str], *args: str) -> Iterator[ServeProcess]:
    """``logarchive serve -c config`` with ``env`` added to the environment, until the block
    ends (SIGTERM)."""
    exe = Path(sys.executable).parent / "logarchive"
    process = subprocess.Popen([str(exe), "serve", "-c", str(config), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **env})
    server = ServeProcess(process)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
