from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from logarchive_testsupport.postgres import pg_url, postgres_server  # noqa: F401 (fixtures)
from logarchive_testsupport.workspace import FILES_TO_FS_TOML

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


@pytest.fixture
def files_to_fs(tmp_path: Path):
    """``write(runs=1, extra="")``: ``logs/run-N.log`` files and ``c.toml`` (a files source, an fs
    sink ``archive`` and ``extra`` TOML) in ``tmp_path``, which it returns."""

    def write(runs: int = 1, extra: str = "") -> Path:
        (tmp_path / "logs").mkdir(exist_ok=True)
        for n in range(1, runs + 1):
            (tmp_path / "logs" / f"run-{n}.log").write_text(f"run {n} step 1\nrun {n} step 2\n")
        (tmp_path / "c.toml").write_text(FILES_TO_FS_TOML + extra)
        return tmp_path

    return write
