from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def write_logs(root: Path, logs: dict[str, bytes]) -> Path:
    for name, data in logs.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def base_config(tmp_path: Path, *, sinks: dict[str, dict[str, Any]] | None = None,
                source: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "logarchive": {"state_dir": str(tmp_path / "state"), "workers": 2},
        "sources": {"logs": source or {
            "type": "files", "url": str(tmp_path / "logs"),
            "fields": r"(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$",
        }},
        "sinks": sinks or {"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                                       "path": "{source}/{model_id}/{run_id}.{ext}"}},
    }


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
