"""Signals during `logarchive retention apply`: every deletion has its audit record, SIGTERM
finishes the current object, and a re-run completes a deletion whose process died.

The controlled point is a moto S3 server behind a gate: the first DELETE of a chosen key waits
until the test opens the gate, so the signal lands while that deletion is in progress."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from logarchive.ledger import SQLiteLedger
from logarchive_testsupport.archives import exported_archive
from logarchive.testing.fixtures import s3_storage_options

RUNS = {"mdl/r1": 100, "mdl/r2": 100, "mdl/r3": 100, "mdl/r4": 100}
KEYS = {f"archive/training/{name}.txt" for name in RUNS}
GUARD = 120  # seconds: only so that a broken test fails instead of hanging


class Gate:
    """WSGI middleware: the first delete of a key ending with ``suffix`` waits for ``opened``;
    with ``drop`` it is then answered 503 without reaching the store."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.suffix: str | None = None
        self.drop = False
        self.arrived = threading.Event()
        self.opened = threading.Event()
        self.passed = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.suffix and not self.arrived.is_set() and self._deletes(environ, self.suffix):
            self.arrived.set()
            self.opened.wait(GUARD)
            try:
                if self.drop:
                    start_response("503 Service Unavailable", [("Content-Length", "0")])
                    return [b""]
                return list(self.app(environ, start_response))
            finally:
                self.passed.set()
        return self.app(environ, start_response)

    @staticmethod
    def _deletes(environ: dict[str, Any], suffix: str) -> bool:
        """A DeleteObject of a key ending with ``suffix``, or a DeleteObjects naming one."""
        if environ["REQUEST_METHOD"] == "DELETE":
            return str(environ.get("PATH_INFO", "")).endswith(suffix)
        if environ["REQUEST_METHOD"] != "POST" or "delete" not in environ.get("QUERY_STRING", ""):
            return False
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        return f"{suffix}</Key>".encode() in body


@pytest.fixture
def gated_s3() -> Iterator[tuple[str, Gate]]:
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    gate = Gate(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, gate, True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", gate
    gate.opened.set()
    server.shutdown()
    thread.join()


def setup(tmp_path: Path, endpoint: str) -> tuple[Path, Any]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = f"sig-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    path = exported_archive(tmp_path, f"s3://{bucket}/archive", RUNS,
                            storage_options=s3_storage_options(endpoint),
                            sink={"retention": {"max_age_days": 30}})
    return path, lambda: {v["Key"] for page in client.get_paginator("list_object_versions")
                          .paginate(Bucket=bucket) for v in (*page.get("Versions", []),
                                                            *page.get("DeleteMarkers", []))}


def start_apply(path: Path) -> subprocess.Popen[str]:
    exe = Path(sys.executable).parent / "logarchive"
    return subprocess.Popen([str(exe), "retention", "apply", "-c", str(path)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=path.parent)


def events(tmp_path: Path, kind: str) -> list[dict[str, Any]]:
    ledger = SQLiteLedger(tmp_path / "state")
    try:
        return ledger.events(kind)
    finally:
        ledger.close()


def run_apply(path: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "logarchive"
    return subprocess.run([str(exe), "retention", "apply", "-c", str(path)], text=True,
                          capture_output=True, cwd=path.parent, timeout=GUARD)


@pytest.mark.scenario(
    'SIGTERM during retention apply',
    'moto S3 holding the first delete: SIGTERM finishes the current object (exit 143), the rest are not started, every deletion has its write-ahead and completion records, a re-run deletes the rest',
)
def test_sigterm_finishes_the_current_deletion_and_a_rerun_does_the_rest(
        tmp_path: Path, gated_s3: tuple[str, Gate]) -> None:
    endpoint, gate = gated_s3
    path, stored = setup(tmp_path, endpoint)
    gate.suffix = "training/mdl/r1.txt"  # the first deletion's object
    proc = start_apply(path)
    assert gate.arrived.wait(GUARD)
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the handler ran: the stop is requested before r1 is done
        seen.append(line)
        if "received SIGTERM: finishing the current deletion" in line:
            break
    gate.opened.set()
    out, err = proc.communicate(timeout=GUARD)
    assert proc.returncode == 143, "".join(seen) + err
    assert "deleted 1, failed 0" in out and "stopped: 3 deletion(s) not started" in out
    assert stored() & KEYS == KEYS - {"archive/training/mdl/r1.txt"}
    assert "archive/training/mdl/r1.txt.manifest.json" not in stored()
    assert [e["path"] for e in events(tmp_path, "retention_delete_started")] == [
        "training/mdl/r1.txt"]
    assert [e["path"] for e in events(tmp_path, "retention_delete")] == ["training/mdl/r1.txt"]

    again = run_apply(path)
    assert again.returncode == 0, again.stderr
    assert "deleted 3, failed 0" in again.stdout
    assert stored() == set()
    done = [e["path"] for e in events(tmp_path, "retention_delete")]
    assert sorted(done) == sorted(k.removeprefix("archive/") for k in KEYS)


@pytest.mark.scenario(
    'SIGKILL during retention apply',
    'killed between the object and its manifest: the write-ahead record is there, verify reports nothing missing, a re-run completes the deletion',
)
@pytest.mark.parametrize("manifest", ["deleted", "left"])
def test_a_rerun_completes_a_deletion_whose_process_was_killed(
        tmp_path: Path, gated_s3: tuple[str, Gate], run_cli: Any, manifest: str) -> None:
    """SIGKILL while the first manifest's DELETE is in flight: the store then deletes it (or
    not). Either way the write-ahead record is there, and the next apply completes it."""
    endpoint, gate = gated_s3
    path, stored = setup(tmp_path, endpoint)
    gate.suffix = "training/mdl/r1.txt.manifest.json"
    gate.drop = manifest == "left"
    proc = start_apply(path)
    assert gate.arrived.wait(GUARD)
    proc.kill()
    proc.communicate(timeout=GUARD)
    gate.opened.set()
    assert gate.passed.wait(GUARD)
    assert "archive/training/mdl/r1.txt" not in stored()
    assert (("archive/training/mdl/r1.txt.manifest.json" in stored()) == (manifest == "left"))
    [started] = events(tmp_path, "retention_delete_started")
    assert started["path"] == "training/mdl/r1.txt"
    assert events(tmp_path, "retention_delete") == []
    if manifest == "deleted":  # nothing left: not "missing", retention was deleting it
        checked = run_cli("verify", "--json", "-c", str(path))
        missing = [f for s in json.loads(checked.stdout)["sinks"] for f in s["findings"]
                   if f["kind"] == "missing"]
        assert missing == []

    again = run_apply(path)
    assert again.returncode == 0, again.stderr
    assert stored() == set()
    done = {e["path"]: e for e in events(tmp_path, "retention_delete")}
    assert set(done) == {k.removeprefix("archive/") for k in KEYS}
    if manifest == "deleted":
        assert "completed the interrupted deletion of s3://" in again.stdout
        assert done["training/mdl/r1.txt"]["completed_after_interruption"] is True
        assert "deleted 3, failed 0" in again.stdout
    else:  # the leftover manifest is selected again and deleted
        assert "deleted 4, failed 0" in again.stdout
