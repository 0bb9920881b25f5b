from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

@pytest.fixture
def run_cli(tmp_path: Path):
    """Run the real `logarchive` console script in a subprocess."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        exe = Path(sys.executable).parent / "logarchive"
        return subprocess.run([str(exe), *args], capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, cwd=cwd or tmp_path,
                              timeout=timeout)

    return run
