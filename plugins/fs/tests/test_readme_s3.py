"""The README's S3 section, run as written against a moto S3 server: credentials from the
environment, an Object Lock bucket, server-side encryption, storage class and object tags."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import boto3

README = Path(__file__).resolve().parents[1] / "README.md"


def _s3_toml() -> str:
    text = README.read_text()
    section = text[text.index("## S3: credentials"):]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


def test_readme_s3_section_runs_as_written(tmp_path: Path, s3: str) -> None:
    bucket = f"acme-logs-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run-1.log").write_text("step 1\nstep 2\n")
    (tmp_path / "logarchive.toml").write_text(_s3_toml())
    env = {"ARCHIVE_BUCKET": bucket, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "S3_ENDPOINT_URL": s3, "PATH": ""}
    exe = Path(sys.executable).parent / "logarchive"
    result = subprocess.run([str(exe), "export"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "exported 1 run(s)" in result.stdout
    key = "training/training/run-1.txt.gz"
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ObjectLockMode"] == "GOVERNANCE"
    tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "ml", "retention": "long"}
    assert "testing" not in result.stdout + result.stderr  # the secret is never printed
