"""``logarchive check`` for the fs sink: the folder or bucket exists and takes writes, and
nothing is left behind.

- local: a temp file created and removed in the archive's ``.logarchive-tmp`` folder (or, when
  the archive folder does not exist yet, in the nearest folder above it that does);
- S3: ``HeadBucket``, then a multipart upload created (with the sink's Object Lock settings) and
  aborted, so a bucket with default retention keeps no probe object; with ``object_lock`` the
  bucket's Object Lock configuration must be enabled;
- other backends (gs://, memory://): a small probe object written and deleted.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

from logarchive.plugin_api import SinkError

PROBE_PREFIX = ".logarchive-check-"


def check_local(root: Path, temp_dir_name: str) -> str:
    """Create and remove a temp file where the sink writes its temp files."""
    if not root.exists():
        parent = next(p for p in root.parents if p.exists())
        _probe_folder(parent)
        return f"{root} does not exist yet; {parent} is writable (created on first export)"
    if not root.is_dir():
        raise SinkError(f"{root} is not a folder")
    temp_dir = root / temp_dir_name
    created = not temp_dir.exists()
    try:
        temp_dir.mkdir(exist_ok=True)
        _probe_folder(temp_dir)
    except OSError as exc:
        raise SinkError(f"{root} is not writable: {exc}") from None
    finally:
        if created and temp_dir.exists() and not any(temp_dir.iterdir()):
            temp_dir.rmdir()
    return f"{root} is writable"


def _probe_folder(folder: Path) -> None:
    try:
        with tempfile.NamedTemporaryFile(prefix=PROBE_PREFIX, dir=folder):
            pass
    except OSError as exc:
        raise SinkError(f"{folder} is not writable: {exc}") from None


def check_s3(fs: Any, root: str, lock_kwargs: dict[str, Any], needs_lock: bool) -> str:
    """HeadBucket, Object Lock configuration, multipart upload created and aborted."""
    bucket, prefix, _ = fs.split_path(root)
    try:
        fs.call_s3("head_bucket", Bucket=bucket)
    except FileNotFoundError:
        raise SinkError(f"bucket {bucket!r} does not exist") from None
    except PermissionError as exc:
        raise SinkError(f"bucket {bucket!r}: access denied ({exc})") from None
    if needs_lock:
        _require_object_lock(fs, bucket)
    key = f"{prefix}/{PROBE_PREFIX}{uuid.uuid4().hex}".lstrip("/")
    try:
        upload = fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key, **lock_kwargs)
        fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload["UploadId"])
    except (OSError, ValueError) as exc:
        raise SinkError(f"bucket {bucket!r} does not take uploads under {prefix or '/'}: "
                        f"{exc}") from None
    words = "writable, Object Lock enabled" if needs_lock else "writable"
    return f"bucket {bucket} exists and is {words} (multipart upload created and aborted)"


def _require_object_lock(fs: Any, bucket: str) -> None:
    try:
        answer = fs.call_s3("get_object_lock_configuration", Bucket=bucket)
    except (OSError, ValueError) as exc:
        raise SinkError(f"bucket {bucket!r} has no Object Lock, which object_lock needs "
                        f"({exc})") from None
    if answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
        raise SinkError(f"bucket {bucket!r} has no Object Lock, which object_lock needs")


def check_other(fs: Any, root: str, shown: str) -> str:
    """Write and delete a small probe object under the root."""
    probe = f"{root}/{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    except (OSError, ValueError) as exc:
        raise SinkError(f"{shown} is not writable: {exc}") from None
    return f"{shown} is writable (probe object written and deleted)"
