"""`logarchive check -c FILE`: connectivity and permission checks, through the real CLI.

Real backends on 127.0.0.1: a folder, moto (S3, Object Lock), the strict HEC and Datadog fakes,
the rest source's fake API. A check writes no log line to an aggregator (the fakes record zero
events) and leaves nothing behind in a folder or a bucket."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from logarchive.testing.fixtures import s3_storage_options
from logarchive_datadog.testing import API_KEY, IntakeReceiver
from logarchive_splunk.testing import TOKEN, HecReceiver
from logarchive_testsupport.archives import write_config
from logarchive_testsupport.workspace import base_config, write_logs

SECRET_TOKEN = "99999999-8888-7777-6666-555555555555"


@pytest.fixture
def aggregators():
    hec, intake = HecReceiver(ack=True).start(), IntakeReceiver().start()
    yield hec, intake
    hec.stop()
    intake.stop()


def lock_bucket(endpoint: str, lock: bool) -> str:
    name = f"check-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
    return name


def s3_objects(endpoint: str, bucket: str) -> tuple[list, list]:
    """Every object version and every unfinished multipart upload in ``bucket``."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    versions = client.list_object_versions(Bucket=bucket).get("Versions", [])
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return versions, uploads


def config_for(tmp_path, hec, intake, s3, bucket, *, token=TOKEN, api_key=API_KEY, lock=True):
    write_logs(tmp_path / "logs", {"m/r1.log": b"one line\n"})
    document = base_config(tmp_path, sinks={
        "archive": {"type": "fs", "url": str(tmp_path / "archive")},
        "locked": {"type": "fs", "url": f"s3://{bucket}/logs",
                   "storage_options": s3_storage_options(s3),
                   **({"object_lock": {"mode": "GOVERNANCE", "days": 1}} if lock else {})},
        "splunk": {"type": "splunk", "url": hec.url, "token": token, "ack": True},
        "datadog": {"type": "datadog", "url": intake.url, "api_key": api_key},
    })
    return write_config(tmp_path / "config.toml", document)


def test_check_passes_every_component_and_leaves_nothing_behind(tmp_path, run_cli, s3,
                                                                aggregators):
    hec, intake = aggregators
    bucket = lock_bucket(s3, lock=True)
    config = config_for(tmp_path, hec, intake, s3, bucket)
    (tmp_path / "archive").mkdir()
    result = run_cli("check", "-c", str(config), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert {(c["kind"], c["name"]): c["status"] for c in report["checks"]} == {
        ("source", "logs"): "ok", ("sink", "archive"): "ok", ("sink", "locked"): "ok",
        ("sink", "splunk"): "ok", ("sink", "datadog"): "ok"}
    assert report["ok"] is True
    assert hec.events() == [] and intake.events() == []
    assert intake.validations == 1
    assert list((tmp_path / "archive").iterdir()) == []
    assert s3_objects(s3, bucket) == ([], [])
    assert "Traceback" not in result.stderr


def test_check_text_is_one_line_per_component(tmp_path, run_cli, s3, aggregators):
    hec, intake = aggregators
    config = config_for(tmp_path, hec, intake, s3, lock_bucket(s3, lock=True))
    result = run_cli("check", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert [line.split()[0] for line in lines] == ["ok"] * 5
    assert any("splunk" in line and "acknowledgement enabled" in line for line in lines)


def test_check_fails_on_bad_credentials_and_missing_lock(tmp_path, run_cli, s3, aggregators):
    hec, intake = aggregators
    hec.ack_enabled = False
    bucket = lock_bucket(s3, lock=False)
    config = config_for(tmp_path, hec, intake, s3, bucket, api_key="f" * 32)
    result = run_cli("check", "-c", str(config), "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["logs"]["status"] == "ok" and checks["archive"]["status"] == "ok"
    assert checks["locked"]["status"] == "failed"
    assert "Object Lock" in checks["locked"]["detail"]
    assert checks["splunk"]["status"] == "failed"
    assert "acknowledgement" in checks["splunk"]["detail"]
    assert checks["datadog"]["status"] == "failed"
    assert "api_key" in checks["datadog"]["detail"]
    assert "f" * 32 not in result.stdout + result.stderr
    assert hec.events() == [] and intake.events() == []
    assert s3_objects(s3, bucket) == ([], [])


def test_check_names_an_invalid_hec_token_without_showing_it(tmp_path, run_cli, s3,
                                                             aggregators):
    hec, intake = aggregators
    config = config_for(tmp_path, hec, intake, s3, lock_bucket(s3, lock=False),
                        token=SECRET_TOKEN, lock=False)
    result = run_cli("check", "-c", str(config))
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "splunk" in line)
    assert line.startswith("failed") and "token" in line
    assert SECRET_TOKEN not in result.stdout + result.stderr
    assert hec.events() == []


def test_check_reports_a_missing_folder_and_bucket(tmp_path, run_cli, s3, aggregators):
    hec, intake = aggregators
    config = config_for(tmp_path, hec, intake, s3, "no-such-bucket", lock=False)
    (tmp_path / "logs" / "m" / "r1.log").unlink()
    (tmp_path / "logs" / "m").rmdir()
    (tmp_path / "logs").rmdir()
    result = run_cli("check", "-c", str(config), "--json")
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["logs"]["status"] == "failed" and "does not exist" in checks["logs"]["detail"]
    assert checks["locked"]["status"] == "failed"
    assert "no-such-bucket" in checks["locked"]["detail"]
    # the archive folder does not exist yet: its parent is writable, the export creates it
    assert checks["archive"]["status"] == "ok" and not (tmp_path / "archive").exists()
