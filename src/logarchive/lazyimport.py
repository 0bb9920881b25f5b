"""Keep an export's start-up short: import a library without the terminal extras it never uses."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

TERMINAL_ONLY = ("rich", "pygments")


@contextmanager
def rich_hidden() -> Iterator[None]:
    """Imports inside see rich and pygments as not installed when stderr is not a terminal:
    structlog imports rich for terminal tracebacks and httpx both for its command-line client
    (~0.15 s together), and neither is used off a terminal (cron, pipes). Both stay importable
    afterwards."""
    hidden = [name for name in TERMINAL_ONLY if name not in sys.modules]
    if "rich" in sys.modules or (sys.stderr is not None and sys.stderr.isatty()):
        hidden = []
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            del sys.modules[name]
