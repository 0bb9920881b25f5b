"""The fs sink on every backend: local, memory://, S3 (moto server), GCS (emulator)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest
import structlog

import logarchive
from logarchive.base import Context
from logarchive.plugins import default_registry
from logarchive.testing.byte_sinks import ByteSinkKit
from logarchive_fs import FsConfig, FsSink

BACKENDS = ["local", "memory", "s3", "gcs"]
BIG = 6 * 1024 * 1024  # above the 5 MiB part size: a real multipart/resumable upload


def make_sink(storage, **extra) -> FsSink:
    options = {"url": storage.url, "storage_options": storage.storage_options,
               "block_size": 5 * 1024 * 1024, **extra}
    config = FsConfig(type="fs", **options)
    return FsSink("archive", config, Context("archive", structlog.get_logger(),
                                             threading.Event()))


def test_discovered_through_its_entry_point() -> None:
    entry = default_registry().sinks["fs"]
    assert entry.cls is FsSink and entry.distribution == "logarchive-fs"


def backend_names(storage) -> list[str]:
    """Every name the backend holds under the storage's root (hidden temp objects included)."""
    fs = storage.fs()
    root = fs._strip_protocol(storage.url).rstrip("/")
    found = fs.find(root) if fs.exists(root) else []
    return sorted(name[len(root):].lstrip("/") for name in found)


@pytest.mark.parametrize("storage", BACKENDS, indirect=True)
class TestFsConformance(ByteSinkKit):
    """The byte-sink kit on every backend. The sink's root is three levels down the storage, so
    a path climbing out of it (up to three ``..``) would still be seen by ``outside_root``."""

    part_size = 5 * 1024 * 1024
    root = "a/b/root"

    @pytest.fixture
    def sink(self, storage) -> FsSink:
        self.storage = storage
        return make_sink(storage, url=f"{storage.url}/{self.root}")

    def leftovers(self, sink: FsSink) -> list[str]:
        listed = {f"{self.root}/{o.path}" for o in sink.list()}
        names = [n for n in backend_names(self.storage) if n not in listed]
        if self.storage.url.startswith("s3://"):
            import boto3

            client = boto3.client("s3", endpoint_url=self.storage.endpoint,
                                  region_name="us-east-1")
            uploads = client.list_multipart_uploads(Bucket=self.storage.name).get("Uploads", [])
            names += [f"multipart upload of {u['Key']}" for u in uploads]
        return names

    def outside_root(self, sink: FsSink) -> list[str]:
        return [n for n in backend_names(self.storage) if not n.startswith(f"{self.root}/")]


@pytest.mark.parametrize("storage", BACKENDS, indirect=True)
def test_exception_mid_write_through_the_engine_leaves_no_object(storage, tmp_path: Path) -> None:
    """A run whose source breaks after 6 MiB: nothing appears under its name on any backend."""
    from contextlib import contextmanager

    from logarchive.plugin_api import RunRef, Source, SourceError

    class Breaks(Source):
        type = "breaks"

        def discover(self):
            yield RunRef(self.name, {"run_id": "r"})

        @contextmanager
        def open(self, run):
            def chunks():
                yield b"x" * BIG
                raise SourceError("stream broke")
            yield chunks()

    from logarchive.engine import export_run
    from logarchive.pipeline import Pipeline
    from logarchive.config import PipelineConfig
    from logarchive.ledger import SQLiteLedger

    sink = make_sink(storage)
    source = Breaks("src", Breaks.Config(type="breaks"), Context("src", structlog.get_logger()))
    pipe = Pipeline(PipelineConfig(name="p", source="src", sinks=["archive"]), source,
                    {"archive": sink})
    ledger = SQLiteLedger(tmp_path / "state")
    result = export_run(pipe, next(iter(source.discover())), ["archive"], ledger=ledger,
                        state_dir=tmp_path / "state")
    assert result.status == "failed" and "stream broke" in result.error
    assert list(sink.list()) == []
    assert ledger.get(result.run.key, "archive").status == "failed"


@pytest.mark.parametrize("storage", BACKENDS, indirect=True)
def test_export_to_backend_with_manifest(storage, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "m1").mkdir(parents=True)
    data = b"2026-03-13T10:00:00Z [INFO] hello\n" * 1000
    (logs / "m1" / "run-1.log").write_bytes(data)
    durable = not storage.url.startswith("memory://")
    extra = {} if durable else {"allow_non_durable": True}  # refused without it
    config = logarchive.parse_config({
        "logarchive": {"state_dir": str(tmp_path / "state")},
        "sources": {"s": {"type": "files", "url": str(logs),
                          "fields": r"(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$"}},
        "sinks": {
            "raw": {"type": "fs", "url": storage.url + "/raw",
                    "storage_options": storage.storage_options, "compression": "zstd", **extra},
            "nd": {"type": "fs", "url": storage.url + "/nd", "format": "ndjson",
                   "storage_options": storage.storage_options,
                   "path": "{model_id}/{completed:%Y}/{run_id}.{ext}", **extra},
        },
    })
    summary = logarchive.export(config)
    assert summary.exported == 1 and summary.exit_code == 0, summary.to_json()
    sink = make_sink(storage)
    paths = sorted(o.path for o in sink.list())
    assert len(paths) == 4 and "raw/s/m1/run-1.txt.zst" in paths
    with sink.read("raw/s/m1/run-1.txt.zst.manifest.json") as chunks:
        manifest = json.loads(b"".join(chunks))
    with sink.read("raw/s/m1/run-1.txt.zst") as chunks:
        stored = b"".join(chunks)
    import zstandard

    assert zstandard.ZstdDecompressor().decompressobj().decompress(stored) == data
    assert manifest["object"]["sha256"] == hashlib.sha256(stored).hexdigest()
    assert manifest["source_bytes"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["source_bytes"]["lines"] == 1000 and manifest["compression"] == "zstd"
    again = logarchive.export(config)
    # memory:// forgets what it holds: never recorded as delivered, so delivered again.
    assert (again.skipped, again.exported) == ((1, 0) if durable else (0, 1))


def test_storage_credentials_never_reach_logs_or_manifests(s3_bucket, tmp_path: Path, capsys
                                                          ) -> None:
    from logarchive import logsetup as lalog

    lalog.configure(1, json=True)
    secret_value = "sekr1t-storage-credential"
    options = {**s3_bucket.storage_options, "secret": secret_value}  # moto accepts any secret
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "r.log").write_bytes(b"x\n")
    config = logarchive.parse_config({
        "logarchive": {"state_dir": str(tmp_path / "state")},
        "sources": {"s": {"type": "files", "url": str(tmp_path / "logs")}},
        "sinks": {"a": {"type": "fs", "url": s3_bucket.url, "storage_options": options}},
    })
    assert logarchive.export(config).exported == 1
    out = capsys.readouterr()
    assert "run_exported" in out.out + out.err
    assert secret_value not in out.out + out.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret_value.encode() not in path.read_bytes()


def test_temp_files_left_by_a_killed_writer_are_removed_by_the_next_export(tmp_path: Path
                                                                         ) -> None:
    from logarchive_fs import TEMP_DIR

    storage = type("Local", (), {"url": str(tmp_path / "root"), "storage_options": {}})()
    temp_dir = tmp_path / "root" / TEMP_DIR
    temp_dir.mkdir(parents=True)
    dead = 4194304 + 7  # above the kernel's pid limit: no such process
    leftover = temp_dir / f".0123456789abcdef.{dead}-0123456789ab.partial"
    leftover.write_bytes(b"half a log")
    live = temp_dir / f".0123456789abcdef.{os.getpid()}-ba9876543210.partial"
    live.write_bytes(b"another thread of this process is writing")
    sink = make_sink(storage)
    assert not leftover.exists() and live.exists()
    writer = sink.open_object("runs/r[1].txt")
    writer.write(b"whole log\n")
    assert [o.path for o in sink.list()] == []  # temp files are never listed as objects
    writer.commit()
    assert (tmp_path / "root" / "runs" / "r[1].txt").read_bytes() == b"whole log\n"
    assert [o.path for o in sink.list()] == ["runs/r[1].txt"]
    assert sorted(p.name for p in temp_dir.iterdir()) == [live.name]


def test_multipart_upload_left_by_a_killed_export_is_aborted(s3_bucket, tmp_path: Path) -> None:
    """An export killed mid-upload leaves an unfinished multipart upload (invisible, but billed);
    the next export of the same object aborts it."""
    import subprocess
    import sys

    import boto3

    client = boto3.client("s3", endpoint_url=s3_bucket.endpoint, region_name="us-east-1")
    key = "a/logs/r.txt"
    stale = client.create_multipart_upload(Bucket=s3_bucket.name, Key=key)["UploadId"]
    other = client.create_multipart_upload(Bucket=s3_bucket.name, Key=key + ".other")["UploadId"]
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "r.log").write_bytes(b"x\n")
    config = tmp_path / "c.toml"
    options = s3_bucket.storage_options
    config.write_text(f"""
[logarchive]
state_dir = "{tmp_path / 'state'}"
[sources.logs]
type = "files"
url = "{tmp_path / 'logs'}"
[sinks.a]
type = "fs"
url = "{s3_bucket.url}/a"
storage_options = {{ key = "{options['key']}", secret = "{options['secret']}", client_kwargs = {{ endpoint_url = "{s3_bucket.endpoint}" }} }}
""")
    result = subprocess.run([str(Path(sys.executable).parent / "logarchive"), "export", "-c",
                             str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    left = {u["UploadId"] for u in
            client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", [])}
    assert stale not in left and other in left
    assert client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read() == b"x\n"
