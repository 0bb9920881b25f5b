"""A running MLflow tracking server, as the plugin's tests start it (see tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START_TIMEOUT = 120.0

@dataclass
class MlflowServer:
    """A running ``mlflow server``: its URL and, for S3, where artifacts live."""

    url: str
    kind: str  # "proxy" | "s3"
    process: subprocess.Popen[bytes]
    log_path: Path
    storage_options: dict[str, Any] = field(default_factory=dict)
    artifact_root: str = ""

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url)

    def wait(self, timeout: float = START_TIMEOUT) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"mlflow server not up after {timeout}s: "
                           f"{self.log_path.read_text()[-3000:]}")

    def terminate(self) -> None:
        # The server runs in its own session: signal its process group (uvicorn included).
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def wait_stopped(self) -> None:
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=15)
