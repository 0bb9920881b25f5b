"""Real MLflow tracking servers for the tests (session-wide), started on 127.0.0.1.

- ``mlflow_proxy``: artifacts proxied by the server (``--artifacts-destination`` on a local
  folder); run artifact URIs are ``mlflow-artifacts:/...``.
- ``mlflow_s3``: artifacts in moto's S3 (``--default-artifact-root s3://bucket/mlruns``,
  ``--no-serve-artifacts``); the client and the server reach moto through
  ``MLFLOW_S3_ENDPOINT_URL``; run artifact URIs are ``s3://...``.

Both servers are launched together the first time either is needed (each takes about 10 s to
start), and stopped at the end of the session. Skipped only when ``mlflow`` is not installed
(``pip install -e plugins/mlflow[test]``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from logarchive.testing.servers import free_port

START_TIMEOUT = 120.0


from logarchive_mlflow.testing_server import MlflowServer


def _launch(kind: str, root: Path, env: dict[str, str], extra: list[str]) -> MlflowServer:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "server.log"
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--workers", "1", *extra,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=root, start_new_session=True)
    return MlflowServer(f"http://127.0.0.1:{port}", kind, process, log_path)


@pytest.fixture(scope="session")
def _mlflow_servers(s3: str, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[dict[str, MlflowServer]]:
    pytest.importorskip("mlflow")
    import boto3

    bucket = f"mlflow-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    s3_env = {"MLFLOW_S3_ENDPOINT_URL": s3, "AWS_ACCESS_KEY_ID": "testing",
              "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
              "MLFLOW_DISABLE_TELEMETRY": "true"}
    # The MLflow client in this process writes S3 artifacts directly: it needs the same env.
    saved = {k: os.environ.get(k) for k in s3_env}
    os.environ.update(s3_env)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("AWS_CA_BUNDLE", None)
    base = tmp_path_factory.mktemp("mlflow")
    proxy = _launch("proxy", base / "proxy", env,
                    ["--artifacts-destination", str(base / "proxy" / "artifacts")])
    s3_root = f"s3://{bucket}/mlruns"
    on_s3 = _launch("s3", base / "s3", env,
                    ["--default-artifact-root", s3_root, "--no-serve-artifacts"])
    on_s3.artifact_root = s3_root
    on_s3.storage_options = {"key": "testing", "secret": "testing",
                             "client_kwargs": {"endpoint_url": s3}}
    servers = {"proxy": proxy, "s3": on_s3}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.terminate()
        for server in servers.values():
            server.wait_stopped()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_proxy(_mlflow_servers: dict[str, MlflowServer]) -> MlflowServer:
    server = _mlflow_servers["proxy"]
    server.wait()
    return server


@pytest.fixture(scope="session")
def mlflow_s3(_mlflow_servers: dict[str, MlflowServer]) -> MlflowServer:
    server = _mlflow_servers["s3"]
    server.wait()
    return server


@pytest.fixture(params=["proxy", "s3"])
def mlflow_server(request: pytest.FixtureRequest) -> MlflowServer:
    """Each test that uses it runs once per artifact store."""
    return request.getfixturevalue(f"mlflow_{request.param}")
