"""Sink ``fs``: one object per run on a local path, ``s3://``, ``gs://`` or ``memory://``.

Objects become visible under their final name only on commit:

- local: a hidden temp file in the same folder, fsync, ``rename``, fsync of the folder;
- S3 and GCS: a multipart (S3) or resumable (GCS) upload that is completed only at commit and
  aborted otherwise; small objects are a single PUT at commit;
- other fsspec backends: a hidden temp object, then a move.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from logarchive.plugin_api import (
    ByteSink, ByteSinkConfig, ObjectWriter, SinkError, StoredObject, hookimpl,
)
from logarchive.storage import LOCAL_PROTOCOLS, display_url, read_chunks, resolve

TEMP_SUFFIX = ".partial"
DEFERRED_COMMIT = ("s3", "s3a", "gs", "gcs")


def is_temp(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") and base.endswith(TEMP_SUFFIX)


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


class FsSink(ByteSink):
    type = "fs"
    description = "Objects on a local path, s3:// (s3fs), gs:// (gcsfs) or memory://."
    Config = FsConfig

    def __init__(self, name: str, config: FsConfig, context: Any) -> None:
        super().__init__(name, config, context)
        self.fs, self.root, self.protocol = resolve(
            config.url, context.settings.get("base_dir"), config.storage_options
        )
        self.chunk_size = context.settings.get("chunk_size", 1 << 20)

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}"

    def describe(self, path: str) -> str:
        return display_url(self.protocol, self._full(path))

    def open_object(self, path: str) -> ObjectWriter:
        full = self._full(path)
        try:
            if self.protocol in LOCAL_PROTOCOLS:
                return LocalWriter(Path(full))
            if self.protocol in DEFERRED_COMMIT:
                return DeferredCommitWriter(self.fs, full, self.config.block_size)
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
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        for full, info in sorted(found.items()):
            relative = full[len(self.root):].lstrip("/")
            if not relative or is_temp(relative) or info.get("type") == "directory":
                continue
            mtime = info.get("mtime") or info.get("LastModified") or info.get("updated")
            yield StoredObject(relative, info.get("size"), mtime if isinstance(mtime, float) else None)

    def delete(self, path: str) -> None:
        self.fs.rm(self._full(path))


class LocalWriter(ObjectWriter):
    """Temp file in the same folder, fsync, atomic rename, fsync of the folder."""

    def __init__(self, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        self.final = final
        self.temp = final.parent / f".{final.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"
        self._file = open(self.temp, "xb")  # noqa: SIM115 - closed in commit/abort

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp, self.final)
        fd = os.open(self.final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.temp.unlink(missing_ok=True)


class DeferredCommitWriter(ObjectWriter):
    """S3/GCS: an fsspec file opened with ``autocommit=False``.

    Parts are uploaded as data comes (memory stays at one block); the multipart (S3) or resumable
    (GCS) upload is completed only by :meth:`commit`, and :meth:`abort` cancels it, so nothing
    ever appears under the final key unless the whole object was written.
    """

    def __init__(self, fs: Any, path: str, block_size: int) -> None:
        self.path = path
        self._file = fs.open(path, "wb", autocommit=False, block_size=block_size)

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        # With autocommit on, close() flushes the last part and completes the upload (or does
        # the single PUT for a small object).
        self._file.autocommit = True
        self._file.close()

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
