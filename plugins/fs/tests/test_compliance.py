"""Compliance archiving with the fs sink: immutable objects (local, S3, GCS) and S3 Object Lock
(moto server: the server itself refuses deletes before the retain-until date)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import logarchive
from logarchive import parse_config
from logarchive.base import RetentionConfig
from logarchive.cli import main
from logarchive.errors import ConfigError, SinkError
from logarchive.ledger import SQLiteLedger
from logarchive.pipeline import open_sink
from logarchive.retention import apply, plan
from logarchive_testsupport.archives import archive_config, make_runs, write_config
from logarchive.testing.fixtures import Bucket, s3_storage_options

# --- immutable ----------------------------------------------------------------------------


@pytest.mark.parametrize("storage", ["local", "s3", "gcs"], indirect=True)
def test_immutable_never_overwrites(tmp_path: Path, storage: Bucket) -> None:
    logs = tmp_path / "logs"
    contents = make_runs(logs, {"mdl-a/r01": 3})
    url = f"{storage.url}/archive" if "://" in storage.url else storage.url
    config = parse_config(archive_config(tmp_path, url, storage_options=storage.storage_options,
                                         sink={"immutable": True}), base_dir=tmp_path)
    assert logarchive.export(config).exported == 1
    sink = open_sink(config, "archive")
    path = "training/mdl-a/r01.txt"

    def stored() -> bytes:
        with sink.read(path) as chunks:
            return b"".join(chunks)

    def manifest() -> dict[str, Any]:
        with sink.read(path + ".manifest.json") as chunks:
            return json.loads(b"".join(chunks))

    original = manifest()
    # Same bytes again: a no-op.
    again = logarchive.export(config, force=True)
    assert (again.exported, again.failed, again.exit_code) == (1, 0, 0)
    assert stored() == contents["mdl-a/r01"]
    assert manifest()["object"] == original["object"]
    # Different bytes under the same name: refused, naming both hashes; nothing overwritten.
    changed = b"rewritten history\n"
    (logs / "mdl-a/r01.log").write_bytes(changed)
    refused = logarchive.export(config, force=True)
    assert (refused.failed, refused.exit_code) == (1, 1)
    error = refused.results[0].error
    old_sha = hashlib.sha256(contents["mdl-a/r01"]).hexdigest()
    new_sha = hashlib.sha256(changed).hexdigest()
    assert old_sha in error and new_sha in error and "immutable" in error
    assert stored() == contents["mdl-a/r01"]
    assert manifest()["object"] == original["object"]


# --- S3 Object Lock -------------------------------------------------------------------------


@pytest.fixture
def lock_bucket(s3: str) -> Bucket:
    """A bucket created with Object Lock enabled (and so versioned). Its lock configuration
    must exist before any object does (moto cannot add it later)."""
    import boto3

    name = f"lock-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return Bucket(f"s3://{name}", name, s3_storage_options(s3), s3, {"client": client})


def locked_config(tmp_path: Path, bucket: Bucket, ages: dict[str, float],
                  lock: dict[str, Any] | None, **sink: Any) -> logarchive.Config:
    make_runs(tmp_path / "logs", ages, size=sink.pop("size", 200))
    extra = {"object_lock": lock} if lock else {}
    document = archive_config(tmp_path, f"{bucket.url}/archive",
                              storage_options=bucket.storage_options, sink={**extra, **sink})
    return parse_config(document, base_dir=tmp_path)


def head(bucket: Bucket, key: str) -> dict[str, Any]:
    return bucket.extra["client"].head_object(Bucket=bucket.name, Key=f"archive/{key}")


def test_object_lock_needs_an_s3_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="object_lock needs an s3:// url"):
        parse_config(archive_config(tmp_path, str(tmp_path / "a"),
                                    sink={"object_lock": {"mode": "COMPLIANCE", "days": 1}}))
    with pytest.raises(ConfigError, match="object_lock.mode"):
        parse_config(archive_config(tmp_path, "s3://b/a",
                                    sink={"object_lock": {"mode": "FOREVER", "days": 1}}))


@pytest.mark.parametrize("size", [200, 6 * 1024 * 1024], ids=["single-put", "multipart"])
def test_uploads_carry_mode_and_retain_until(tmp_path: Path, lock_bucket: Bucket,
                                             size: int) -> None:
    config = locked_config(tmp_path, lock_bucket, {"mdl-a/r01": 1},
                           {"mode": "COMPLIANCE", "days": 30}, size=size)
    before = datetime.now(timezone.utc)
    assert logarchive.export(config).exit_code == 0
    for key in ("training/mdl-a/r01.txt", "training/mdl-a/r01.txt.manifest.json"):
        meta = head(lock_bucket, key)
        assert meta["ObjectLockMode"] == "COMPLIANCE"
        until = meta["ObjectLockRetainUntilDate"]
        assert before + timedelta(days=29) < until <= datetime.now(timezone.utc) + timedelta(days=30)
    assert head(lock_bucket, "training/mdl-a/r01.txt")["ContentLength"] >= min(size, 200)


def test_locked_put_carries_an_integrity_checksum(tmp_path: Path, lock_bucket: Bucket) -> None:
    """S3 rejects a PUT with Object Lock parameters without Content-MD5 or x-amz-checksum-*."""
    config = locked_config(tmp_path, lock_bucket, {}, {"mode": "GOVERNANCE", "days": 1})
    sink = open_sink(config, "archive")
    sink.fs.call_s3("list_buckets")  # starts the client
    seen: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append({k.lower(): v.decode() if isinstance(v, bytes) else v
                     for k, v in request.headers.items()})

    sink.fs.s3.meta.events.register("before-send.s3.PutObject", capture)
    writer = sink.open_object("probe.txt")
    writer.write(b"probe")
    writer.commit()
    [headers] = seen
    assert headers["x-amz-object-lock-mode"] == "GOVERNANCE"
    assert "x-amz-object-lock-retain-until-date" in headers
    assert any(k.startswith("x-amz-checksum-") or k == "content-md5"
               or (k == "x-amz-trailer" and "checksum" in v) for k, v in headers.items())


@pytest.mark.parametrize("mode", ["COMPLIANCE", "GOVERNANCE"])
def test_server_refuses_delete_before_retain_until(tmp_path: Path, lock_bucket: Bucket,
                                                   mode: str) -> None:
    from botocore.exceptions import ClientError

    config = locked_config(tmp_path, lock_bucket, {"mdl-a/r01": 1}, {"mode": mode, "days": 2})
    assert logarchive.export(config).exit_code == 0
    key = "archive/training/mdl-a/r01.txt"
    client = lock_bucket.extra["client"]
    version = client.head_object(Bucket=lock_bucket.name, Key=key)["VersionId"]
    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=lock_bucket.name, Key=key, VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # The sink's own delete removes versions by id, so it meets the same refusal, loudly.
    sink = open_sink(config, "archive")
    with pytest.raises(SinkError, match="refused the delete"):
        sink.delete("training/mdl-a/r01.txt")
    assert client.head_object(Bucket=lock_bucket.name, Key=key)["VersionId"] == version


def test_retention_skips_locked_objects_with_a_reason(tmp_path: Path, lock_bucket: Bucket
                                                      ) -> None:
    ages = {"mdl-a/r01": 500, "mdl-a/r02": 450, "mdl-a/r03": 10}
    config = locked_config(tmp_path, lock_bucket, ages, {"mode": "COMPLIANCE", "days": 1})
    assert logarchive.export(config).exit_code == 0
    sink = open_sink(config, "archive")
    result = plan(sink, RetentionConfig(max_age_days=365))
    assert result.deletions == []
    protected = {d.path: d for d in result.protected}
    assert set(protected) == {"training/mdl-a/r01.txt", "training/mdl-a/r02.txt"}
    for d in protected.values():
        assert d.protected_by == "object_lock"
        assert "S3 Object Lock: COMPLIANCE retention until" in d.reason
        assert "server would refuse" in d.reason
    applied = apply(sink, result)
    assert applied.ok and applied.deleted == []
    assert len(lock_bucket.fs().find(f"{lock_bucket.name}/archive")) == 6


def test_retention_deletes_every_version_of_unlocked_objects(tmp_path: Path,
                                                             lock_bucket: Bucket) -> None:
    """In a versioned bucket a plain DELETE only hides an object behind a delete marker; retention
    must really remove it."""
    config = locked_config(tmp_path, lock_bucket, {"mdl-a/r01": 500, "mdl-a/r02": 10}, None)
    assert logarchive.export(config).exit_code == 0
    sink = open_sink(config, "archive")
    result = apply(sink, plan(sink, RetentionConfig(max_age_days=365)))
    assert [d.path for d in result.deleted] == ["training/mdl-a/r01.txt"]
    versions = lock_bucket.extra["client"].list_object_versions(
        Bucket=lock_bucket.name, Prefix="archive/training/mdl-a/r01")
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []


def test_apply_exits_nonzero_when_the_server_refuses(tmp_path: Path, lock_bucket: Bucket) -> None:
    ages = {"mdl-a/r01": 500, "mdl-a/r02": 400}
    make_runs(tmp_path / "logs", ages)
    document = archive_config(tmp_path, f"{lock_bucket.url}/archive",
                              storage_options=lock_bucket.storage_options,
                              sink={"retention": {"max_age_days": 365}})
    path = write_config(tmp_path / "logarchive.toml", document)
    assert logarchive.export(logarchive.load_config(path)).exit_code == 0
    # A legal hold put on one manifest by someone else: the object goes, the manifest stays.
    lock_bucket.extra["client"].put_object_legal_hold(
        Bucket=lock_bucket.name, Key="archive/training/mdl-a/r01.txt.manifest.json",
        LegalHold={"Status": "ON"})
    result = CliRunner().invoke(main, ["retention", "apply", "-c", str(path)])
    assert result.exit_code == 1
    assert "deleted 1, failed 1" in result.stdout
    assert "FAILED  training/mdl-a/r01.txt" in result.stdout
    assert "refused the delete" in result.stdout
    ledger = SQLiteLedger(tmp_path / "state")
    assert [e["path"] for e in ledger.events("retention_delete")] == ["training/mdl-a/r02.txt"]
    assert [e["path"] for e in ledger.events("retention_delete_failed")] == [
        "training/mdl-a/r01.txt"]
    # The next plan selects the left-over manifest again (object already gone).
    sink = open_sink(logarchive.load_config(path), "archive")
    [again] = plan(sink).deletions
    assert again.path == "training/mdl-a/r01.txt" and not again.object_present
