"""Sink ``fs``: one object per run on a local path, ``s3://``, ``gs://`` or ``memory://``.

Objects become visible under their final name only on commit:

- local: a hidden temp file in the same folder, fsync, ``rename``, fsync of the folder;
- S3 and GCS: a multipart (S3) or resumable (GCS) upload that is completed only at commit and
  aborted otherwise; small objects are a single PUT at commit;
- other fsspec backends: a hidden temp object, then a move.

S3 Object Lock (``object_lock = { mode = "COMPLIANCE", days = 365 }``): every upload carries
``ObjectLockMode`` and ``ObjectLockRetainUntilDate``; botocore's default flexible checksum
(CRC32 on PutObject/UploadPart) is the integrity header S3 requires for locked uploads.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from logarchive.plugin_api import (
    LOCAL_PROTOCOLS, ByteSink, ByteSinkConfig, ObjectWriter, SinkError, StoredObject,
    TEMP_DIR, TEMP_SUFFIX, display_url, hookimpl, list_stored, read_chunks, resolve,
)

from logarchive_fs import check

DEFERRED_COMMIT = ("s3", "s3a", "gs", "gcs")
DELETE_BATCH = 1000  # versions per DeleteObjects request (the S3 maximum)


def _writer_alive(temp_name: str) -> bool:
    """Whether the process that named this temp file (``.<tag>.<pid>-<id>.partial``) still
    runs."""
    tag = temp_name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
    pid_text = tag.split("-", 1)[0]
    if not pid_text.isdigit():
        return False  # not one of ours
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temp_dir(temp_dir: Path) -> int:
    """Remove the temp files of writers that died (SIGKILL, power loss); returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(temp_dir))
    except OSError:  # no such folder yet, or the root is unusable: writes will say so
        return 0
    for entry in entries:
        if entry.name.endswith(TEMP_SUFFIX) and not _writer_alive(entry.name):
            try:
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


class ObjectLockConfig(BaseModel):
    """S3 Object Lock retention set on every upload (the bucket must have Object Lock enabled)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["GOVERNANCE", "COMPLIANCE"] = Field(
        description="COMPLIANCE: nobody can delete or shorten it before the date; GOVERNANCE: "
        "only with s3:BypassGovernanceRetention.", examples=["COMPLIANCE"],
    )
    days: int = Field(ge=1, description="Retain-until = upload time + days.", examples=[365])


class FsConfig(ByteSinkConfig):
    type: Literal["fs"] = "fs"
    url: str = Field(description="Archive root: a path (relative to the config file) or an "
                     "fsspec URL.", examples=["archive", "s3://acme-logs/training"])
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to fsspec: s3fs (client_kwargs.endpoint_url, key, secret...), gcsfs "
        "(project, token, endpoint_url...).",
        examples=[{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}],
    )
    block_size: int = Field(
        default=8 * 1024 * 1024, ge=5 * 1024 * 1024,
        description="Upload part size for S3/GCS (bytes, at least 5 MiB).", examples=[8388608],
    )
    object_lock: ObjectLockConfig | None = Field(
        default=None, description="S3 only: Object Lock mode and retention days set on every "
        "upload (objects and manifests).", examples=[{"mode": "COMPLIANCE", "days": 365}],
    )

    @model_validator(mode="after")
    def _lock_needs_s3(self) -> FsConfig:
        if self.object_lock is not None and not self.url.startswith(("s3://", "s3a://")):
            raise ValueError("object_lock needs an s3:// url (S3 Object Lock)")
        return self


class FsSink(ByteSink):
    type = "fs"
    description = "Objects on a local path, s3:// (s3fs), gs:// (gcsfs) or memory://."
    Config = FsConfig

    def __init__(self, name: str, config: FsConfig, context: Any) -> None:
        super().__init__(name, config, context)
        self.fs, self.root, self.protocol = resolve(
            config.url, context.settings.base_dir, config.storage_options,
            distribution="logarchive-fs",
        )
        self.chunk_size = context.settings.chunk_size
        if self.protocol in LOCAL_PROTOCOLS:
            self.temp_dir = Path(self.root) / TEMP_DIR
            removed = sweep_temp_dir(self.temp_dir)
            if removed:
                self.log.info("temp_files_removed", count=removed, folder=str(self.temp_dir),
                              reason="left by writers that died")

    @classmethod
    def durable(cls, config: FsConfig) -> bool:  # type: ignore[override]
        """``memory://`` keeps objects in this process only: they vanish when it exits."""
        return config.url.partition("://")[0].lower() != "memory"

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}"

    def check(self) -> str:
        """The folder or bucket exists and takes writes; nothing is left behind (check.py)."""
        if self.protocol in LOCAL_PROTOCOLS:
            return check.check_local(Path(self.root), TEMP_DIR)
        if self.protocol in ("s3", "s3a"):
            return check.check_s3(self.fs, self.root, self._lock_kwargs(),
                                  self.config.object_lock is not None)
        return check.check_other(self.fs, self.root, display_url(self.protocol, self.root))

    def describe(self, path: str) -> str:
        return display_url(self.protocol, self._full(path))

    def name_limits(self) -> tuple[int | None, int | None]:
        """Local: 255 bytes per name, 4095 per full path (Linux NAME_MAX, PATH_MAX); S3/GCS:
        1024 bytes per key, the root's prefix included; memory: none."""
        if self.protocol in LOCAL_PROTOCOLS:
            return (255, 4095 - len(self.root.encode()) - 1)
        if self.protocol == "memory":
            return (None, None)
        prefix = self.root.partition("/")[2]  # the key prefix after the bucket
        return (None, 1024 - len(prefix.encode()) - (1 if prefix else 0))

    def open_object(self, path: str) -> ObjectWriter:
        full = self._full(path)
        try:
            if self.protocol in LOCAL_PROTOCOLS:
                return LocalWriter(Path(full), self.temp_dir)
            if self.protocol in DEFERRED_COMMIT:
                return DeferredCommitWriter(self.fs, full, self.config.block_size,
                                            **self._lock_kwargs())
            return TempMoveWriter(self.fs, full)
        except OSError as exc:
            raise SinkError(f"cannot write {self.describe(path)}: {exc}") from None

    def exists(self, path: str) -> bool:
        return self.fs.exists(self._full(path))

    @contextmanager
    def read(self, path: str) -> Iterator[Iterator[bytes]]:
        with read_chunks(self.fs, self._full(path), self.chunk_size) as chunks:
            yield chunks

    def list(self) -> Iterator[StoredObject]:
        return list_stored(self.fs, self.root)

    def delete(self, path: str) -> None:
        """Delete ``path`` for good. On S3 every version of the key is deleted by id (all pages
        of ``list_object_versions``, delete markers and the ``null`` version of objects written
        before versioning was enabled), so the server enforces Object Lock retention and no bytes
        stay behind a delete marker; the key is listed again afterwards and any version left is
        an error, never a silent success."""
        full = self._full(path)
        if self.protocol in ("s3", "s3a"):
            self._delete_every_version(path)
            return
        try:
            self.fs.rm(full)
        except PermissionError as exc:
            raise SinkError(f"{self.describe(path)}: the server refused the delete: {exc}") from None

    def _versions(self, path: str) -> list[str]:
        """Every version id of ``path``'s key (``"null"`` included), across all pages."""
        bucket, key, _ = self.fs.split_path(self._full(path))
        ids: list[str] = []
        page: dict[str, Any] = {"Bucket": bucket, "Prefix": key}
        while True:
            try:
                listing = self.fs.call_s3("list_object_versions", **page)
            except OSError as exc:
                raise SinkError(f"cannot list versions of {self.describe(path)}: {exc}") from None
            ids += [v.get("VersionId") or "null"
                    for v in (*listing.get("Versions", []), *listing.get("DeleteMarkers", []))
                    if v.get("Key") == key]
            if not listing.get("IsTruncated"):
                return ids
            page = {"Bucket": bucket, "Prefix": key, "KeyMarker": listing["NextKeyMarker"],
                    "VersionIdMarker": listing.get("NextVersionIdMarker") or ""}

    def _delete_every_version(self, path: str) -> None:
        full = self._full(path)
        bucket, key, _ = self.fs.split_path(full)
        versions = self._versions(path)
        for start in range(0, len(versions), DELETE_BATCH):
            batch = [{"Key": key, "VersionId": v} for v in versions[start:start + DELETE_BATCH]]
            try:
                answer = self.fs.call_s3("delete_objects", Bucket=bucket,
                                         Delete={"Objects": batch, "Quiet": True})
            except OSError as exc:
                raise SinkError(f"cannot delete {self.describe(path)}: {exc}") from None
            errors = answer.get("Errors") or []
            if any(e.get("Code") == "AccessDenied" for e in errors):
                raise SinkError(f"{self.describe(path)}: the server refused the delete (Object "
                                f"Lock or legal hold): {errors[0].get('Message')}")
            if errors:
                raise SinkError(f"cannot delete {len(errors)} version(s) of "
                                f"{self.describe(path)}: {errors[0].get('Code')} "
                                f"{errors[0].get('Message')}")
        self.fs.invalidate_cache(full)
        left = self._versions(path)
        if left:
            raise SinkError(f"{self.describe(path)}: {len(left)} version(s) still there after "
                            f"deleting {len(versions)}: not deleted")

    def object_lock_status(self, path: str) -> dict[str, Any] | None:
        """The S3 Object Lock retention or legal hold on ``path`` (``head_object``), or None when
        nothing protects it (or the store has no Object Lock)."""
        if self.protocol not in ("s3", "s3a"):
            return None
        bucket, key, _ = self.fs.split_path(self._full(path))
        try:
            head = self.fs.call_s3("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return None
        mode = head.get("ObjectLockMode")
        until = head.get("ObjectLockRetainUntilDate")
        hold = head.get("ObjectLockLegalHoldStatus") == "ON"
        if isinstance(until, str):
            until = datetime.fromisoformat(until.replace("Z", "+00:00"))
        active = until is not None and until > datetime.now(timezone.utc)
        if not (active or hold):
            return None
        return {"mode": mode, "retain_until": until.isoformat() if until else None,
                "legal_hold": hold}

    def _lock_kwargs(self) -> dict[str, Any]:
        lock = self.config.object_lock
        if lock is None or self.protocol not in ("s3", "s3a"):
            return {}
        until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=lock.days)
        return {"ObjectLockMode": lock.mode, "ObjectLockRetainUntilDate": until}


@dataclass(frozen=True)
class FolderSync:
    """The fsync of one local folder: what makes the renames into it (and the folders created
    in it) durable. Hashable, so a group commit syncs each folder once."""

    path: Path

    def sync(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalWriter(ObjectWriter):
    """A temp file in the archive's ``.logarchive-tmp`` folder, fsync, atomic rename to the
    final name, fsync of the final folder (and of the parent of each folder it created). Temp
    files are named after the writer's pid, so the next export removes those of dead writers
    without listing the archive.

    :meth:`publish` leaves the folder fsyncs to a group commit: the final folder and every
    folder up to the archive root (another writer may have created one of them and not synced
    it yet), each synced once for the whole group."""

    def __init__(self, final: Path, temp_dir: Path) -> None:
        self.created = _make_folders(final.parent)
        temp_dir.mkdir(exist_ok=True)
        self.final = final
        self.root = temp_dir.parent
        tag = hashlib.sha256(str(final).encode()).hexdigest()[:16]
        self.temp = temp_dir / f".{tag}.{os.getpid()}-{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"
        self._file = open(self.temp, "xb")  # noqa: SIM115 - closed in commit/abort

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        self._rename()
        for folder in {self.final.parent, *(created.parent for created in self.created)}:
            FolderSync(folder).sync()

    def publish(self) -> list[FolderSync]:
        self._rename()
        return self.durability()

    def durability(self) -> list[FolderSync]:
        folders = [self.final.parent]
        while folders[-1] != self.root and self.root in folders[-1].parents:
            folders.append(folders[-1].parent)
        return [FolderSync(folder) for folder in folders]

    def _rename(self) -> None:
        """The data made durable (fsync), then visible under the final name (rename)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp, self.final)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.temp.unlink(missing_ok=True)


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the folders this call created."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        each.mkdir(exist_ok=True)  # another writer may create it at the same time
    return missing


_STARTED = datetime.now(timezone.utc)


def abort_stale_uploads(fs: Any, path: str) -> None:
    """Abort unfinished multipart uploads of exactly this key left by an export that was killed
    mid-upload (started before this process: the run's lock makes them ours now). Nothing of
    them is visible, but S3 bills their parts until they are aborted."""
    bucket, key, _ = fs.split_path(path)
    try:
        listing = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)
    except Exception:  # listing needs s3:ListBucketMultipartUploads; cleanup is best effort
        return
    for upload in listing.get("Uploads", []):
        initiated = upload.get("Initiated")
        if upload.get("Key") == key and initiated is not None and initiated < _STARTED:
            try:
                fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key,
                           UploadId=upload["UploadId"])
            except Exception:  # already completed or aborted by someone else
                pass


class DeferredCommitWriter(ObjectWriter):
    """S3/GCS: an fsspec file opened with ``autocommit=False``.

    Parts are uploaded as data comes (memory stays at one block); the multipart (S3) or resumable
    (GCS) upload is completed only by :meth:`commit`, and :meth:`abort` cancels it, so nothing
    ever appears under the final key unless the whole object was written.
    """

    def __init__(self, fs: Any, path: str, block_size: int, **upload_kwargs: Any) -> None:
        self.fs = fs
        self.path = path
        self.upload_kwargs = upload_kwargs
        protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
        if {"s3", "s3a"} & set(protocols):
            abort_stale_uploads(fs, path)
        self._file = fs.open(path, "wb", autocommit=False, block_size=block_size,
                             **upload_kwargs)

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        # With autocommit on, close() flushes the last part and completes the upload (or does
        # the single PUT for a small object).
        self._file.autocommit = True
        self._file.close()
        if self.upload_kwargs.get("ObjectLockMode") and getattr(self._file, "mpu", None):
            # S3 applies the lock headers of CreateMultipartUpload; some S3-compatible stores
            # (moto among them) drop them, so state the same retention once more.
            bucket, key, _ = self.fs.split_path(self.path)
            self.fs.call_s3("put_object_retention", Bucket=bucket, Key=key, Retention={
                "Mode": self.upload_kwargs["ObjectLockMode"],
                "RetainUntilDate": self.upload_kwargs["ObjectLockRetainUntilDate"],
            })

    def abort(self) -> None:
        if self._file.closed:
            return
        try:
            self._file.discard()
        finally:
            self._file.closed = True  # never let close() complete the upload


class TempMoveWriter(ObjectWriter):
    """Other backends: write a hidden temp object, then move it to the final name."""

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.path = path
        parent, _, name = path.rpartition("/")
        self.temp = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"
        self._file = fs.open(self.temp, "wb")

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        self._file.close()
        self.fs.mv(self.temp, self.path)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self.fs.exists(self.temp):
            self.fs.rm(self.temp)


@hookimpl
def logarchive_register_sinks(register: Any) -> None:
    register(FsSink)
