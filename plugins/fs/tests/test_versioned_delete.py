""""Deleted" means no version is left: retention on a versioned S3 bucket (moto server) whose key
has more versions than one page of ``list_object_versions`` (1,000) and whose objects were written
before versioning was enabled (version id ``null``), through `logarchive retention apply`."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from logarchive.cli import main
from logarchive.ledger import SQLiteLedger
from logarchive_testsupport.archives import exported_archive
from logarchive.testing.fixtures import Bucket, s3_storage_options


def every_version(client: Any, bucket: str, prefix: str) -> list[tuple[str, str]]:
    """(key, version id) of every version and delete marker under ``prefix``, all pages."""
    found = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                       Prefix=prefix):
        found += [(v["Key"], v["VersionId"])
                  for v in (*page.get("Versions", []), *page.get("DeleteMarkers", []))]
    return found


@pytest.mark.scenario(
    'retention on a versioned bucket',
    '1,101 versions of one key (the first a null version from before versioning): apply deletes every version of every page, a listing shows none left',
)
def test_apply_deletes_every_version_of_every_page(tmp_path: Path, s3_bucket: Bucket) -> None:
    # Written before versioning is enabled: version id "null".
    path = exported_archive(tmp_path, f"{s3_bucket.url}/archive",
                            {"mdl/r1": 100, "mdl/r2": 100, "mdl/r3": 1},
                            storage_options=s3_bucket.storage_options,
                            sink={"retention": {"max_age_days": 30}})
    client = boto3.client("s3", endpoint_url=s3_bucket.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.put_bucket_versioning(Bucket=s3_bucket.name,
                                 VersioningConfiguration={"Status": "Enabled"})
    key = "archive/training/mdl/r1.txt"
    for i in range(1100):
        client.put_object(Bucket=s3_bucket.name, Key=key, Body=f"version {i}\n".encode())
    versions = every_version(client, s3_bucket.name, key)
    assert len([v for v in versions if v[0] == key]) == 1101
    assert (key, "null") in versions

    result = CliRunner().invoke(main, ["retention", "apply", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "deleted 2, failed 0" in result.stdout
    left = {k for k, _ in every_version(client, s3_bucket.name, "archive/")}
    assert left == {"archive/training/mdl/r3.txt", "archive/training/mdl/r3.txt.manifest.json"}
    ledger = SQLiteLedger(tmp_path / "state")
    try:
        assert {e["path"] for e in ledger.events("retention_delete")} == {
            "training/mdl/r1.txt", "training/mdl/r2.txt"}
    finally:
        ledger.close()


def test_a_version_that_cannot_be_deleted_is_a_failure(tmp_path: Path, s3: str) -> None:
    """An old version under an S3 legal hold behind a newer, unheld one (the plan asks the newest
    version): the deletion is FAILED, never "deleted", and the held bytes are still there."""
    name = f"lock-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    path = exported_archive(tmp_path, f"s3://{name}/archive", {"mdl/r1": 100},
                            storage_options=s3_storage_options(s3),
                            sink={"retention": {"max_age_days": 30}})
    key = "archive/training/mdl/r1.txt"
    [held] = [v for k, v in every_version(client, name, key) if k == key]
    client.put_object_legal_hold(Bucket=name, Key=key, VersionId=held,
                                 LegalHold={"Status": "ON"})
    client.put_object(Bucket=name, Key=key, Body=b"a newer copy\n",
                      ChecksumAlgorithm="CRC32")
    result = CliRunner().invoke(main, ["retention", "apply", "-c", str(path)])
    assert result.exit_code == 1, result.output
    assert "deleted 0, failed 1" in result.stdout
    assert "FAILED  training/mdl/r1.txt" in result.stdout
    assert (key, held) in every_version(client, name, key)
