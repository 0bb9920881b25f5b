"""pytest fixtures shared by core and plugin tests: real backends on 127.0.0.1.

Loaded for the whole repository with ``-p logarchive.testing.fixtures`` (root pyproject).

- ``s3``: a moto server (S3 protocol) for the session; ``s3_bucket`` a fresh bucket per test.
- ``gcs``: a gcp-storage-emulator server for the session; ``gcs_bucket`` a fresh bucket.
- ``loopback``: a threaded HTTP server whose handler the test writes (see ``LoopbackServer``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from logarchive.storage import filesystem
from logarchive.testing.servers import LoopbackServer, free_port, wait_for_port


@dataclass
class Bucket:
    """A bucket on a loopback server, with what fsspec and a config need to reach it."""

    url: str
    name: str
    storage_options: dict[str, Any]
    endpoint: str
    extra: dict[str, Any] = field(default_factory=dict)

    def fs(self) -> Any:
        protocol = self.url.split("://", 1)[0] if "://" in self.url else "file"
        return filesystem(protocol, skip_instance_cache=True, **self.storage_options)


@pytest.fixture(scope="session")
def s3() -> Iterator[str]:
    """Endpoint URL of a moto S3 server on 127.0.0.1 (session-wide)."""
    from moto.server import ThreadedMotoServer

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(key, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    wait_for_port(port)
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_storage_options(endpoint: str) -> dict[str, Any]:
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}


@pytest.fixture
def s3_bucket(s3: str) -> Bucket:
    """A new empty S3 bucket on the moto server."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(
        Bucket=name
    )
    return Bucket(f"s3://{name}", name, s3_storage_options(s3), s3)


@pytest.fixture(scope="session")
def gcs() -> Iterator[str]:
    """Endpoint URL of a gcp-storage-emulator on 127.0.0.1 (session-wide, in memory)."""
    from gcp_storage_emulator.server import create_server

    _emulate_upload_cancel()
    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    wait_for_port(port)
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _emulate_upload_cancel() -> None:
    """Teach the emulator what real GCS does for ``DELETE`` on a resumable upload session:
    drop the session and answer 499 (gcsfs' ``discard``). Without it the emulator answers 501
    and an aborted upload cannot be cancelled the way it is in production."""
    from types import SimpleNamespace

    from gcp_storage_emulator import server as emulator

    def cancel(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
        upload_id = (request.query.get("upload_id") or [None])[0]
        if upload_id and upload_id in storage.resumable:
            storage.delete_resumable_file_obj(upload_id)
        response.status = SimpleNamespace(value=499, phrase="Client Closed Request")

    for _regex, handlers in emulator.HANDLERS:
        if handlers.get(emulator.PUT) is emulator.objects.upload_partial:
            handlers.setdefault(emulator.DELETE, cancel)


def gcs_storage_options(endpoint: str) -> dict[str, Any]:
    return {"endpoint_url": endpoint, "token": "anon", "project": "test"}


@pytest.fixture
def gcs_bucket(gcs: str) -> Bucket:
    """A new empty GCS bucket on the emulator."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    fs = filesystem("gs", skip_instance_cache=True, **gcs_storage_options(gcs))
    fs.mkdir(name)
    return Bucket(f"gs://{name}", name, gcs_storage_options(gcs), gcs)


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    """A threaded HTTP server on 127.0.0.1; set ``loopback.handler`` to a function of the
    request handler (``http.server.BaseHTTPRequestHandler``)."""
    server = LoopbackServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def storage(request: pytest.FixtureRequest, tmp_path: Any) -> Bucket:
    """Parametrise with ``indirect=True`` over "local", "memory", "s3", "gcs"."""
    kind = request.param
    if kind == "local":
        root = tmp_path / "store"
        return Bucket(str(root), "", {}, "")
    if kind == "memory":
        name = f"mem-{uuid.uuid4().hex[:12]}"
        return Bucket(f"memory://{name}", name, {}, "")
    if kind == "s3":
        return request.getfixturevalue("s3_bucket")
    if kind == "gcs":
        return request.getfixturevalue("gcs_bucket")
    raise ValueError(kind)
