"""Source ``archive``: the runs of a logarchive archive (the root of any ``fs`` sink), replayed.

Every object with a readable manifest under ``url`` is one run. The replay is a run of this
source: its fields are the archived run's plus ``origin`` (the name of the source that first
exported it), so the ledger records it under this source's name and the original key; record
sinks receive the archived run itself (:attr:`RunRef.replays`), hence the original event ids.

Each object is checked against its manifest's sha256 before any byte of it is handed on: it
is copied to a private spool file while it is hashed, and only that verified copy is read. A
mismatch fails the run; nothing is delivered. A ``txt`` archive replays its bytes, byte for
byte; an ``ndjson``, ``json`` or ``parquet`` archive replays its records as they are (a
:class:`RecordStream`: original ``seq``, parts, timestamps and levels; a Parquet object is read
from the verified copy in batches of rows).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import Field

from logarchive.plugin_api import (
    Archived, ByteSink, RecordStream, RunRef, Source, SourceConfig, SourceError, SourceStream,
    StoredObject, archived_records, decompress_stream, display_url, hookimpl, list_stored,
    parquet_records, parse_time, read_archive, read_chunks, resolve,
)

ORIGIN = "origin"
RECORD_FORMATS = ("ndjson", "json")


class ArchiveConfig(SourceConfig):
    type: Literal["archive"] = "archive"
    url: str = Field(description="Root of the archive: the url of the fs sink that wrote it (a "
                     "path relative to the config file, s3://, gs://...).",
                     examples=["s3://acme-logs/training", "archive"])
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="Passed to fsspec, as for the fs sink (endpoint, "
        "credentials: masked in every output).", examples=[{"anon": False}])
    sink: str | None = Field(
        default=None, description="Only the objects of this sink (the name its manifests give): "
        "for a root that several sinks share.", examples=["archive"])
    where: dict[str, str] = Field(
        default_factory=dict, description="Globs on the archived runs' fields (fnmatch, case "
        "sensitive); `source` is the original source's name. Every one must match.",
        examples=[{"model_id": "mdl-7f*"}])
    statuses: list[Literal["completed", "failed", "killed", "unknown"]] | None = Field(
        default=None, description="Only archived runs with one of these statuses (default: "
        "all).", examples=[["completed", "failed"]])
    completed_since: datetime | None = Field(
        default=None, description="Only runs completed at or after this time (naive: UTC).",
        examples=["2026-01-01T00:00:00Z"])
    completed_until: datetime | None = Field(
        default=None, description="Only runs completed before this time (naive: UTC).",
        examples=["2026-07-01T00:00:00Z"])
    time: Literal["original", "replay"] = Field(
        default="original", description="original: records keep their timestamps; replay: "
        "every record's timestamp becomes the time the replay started (for intakes that refuse "
        "old times; the message keeps the original text). See docs/archive.md.",
        examples=["original"])


class _Reader(ByteSink):
    """The archive's root, read only: what :func:`read_archive` lists and reads."""

    def __init__(self, name: str, fs: Any, root: str, protocol: str, chunk_size: int) -> None:
        self.name, self.fs, self.root, self.protocol = name, fs, root, protocol
        self.chunk_size = chunk_size

    def full(self, path: str) -> str:
        return f"{self.root}/{path}"

    def describe(self, path: str) -> str:
        return display_url(self.protocol, self.full(path))

    def read(self, path: str) -> Any:
        return read_chunks(self.fs, self.contained(path), self.chunk_size)

    def contained(self, path: str) -> str:
        """The full path of ``path``; for a local root, refused (a :class:`SourceError`) when a
        symlink takes it outside the root."""
        full = self.full(path)
        if self.protocol in ("file", "local"):
            root = os.path.realpath(self.root)
            if os.path.commonpath([root, os.path.realpath(full)]) != root:
                raise SourceError(f"{self.describe(path)}: a symlink out of the archive root "
                                  f"{root}; refused")
        return full

    def list(self) -> Iterator[StoredObject]:
        return list_stored(self.fs, self.root)


class ArchiveSource(Source):
    type = "archive"
    description = "A logarchive archive (any fs sink's root), for replay and migration."
    Config = ArchiveConfig

    def __init__(self, name: str, config: ArchiveConfig, context: Any) -> None:
        super().__init__(name, config, context)
        fs, root, protocol = resolve(config.url, context.settings.base_dir,
                                     config.storage_options, distribution="logarchive-archive")
        self.reader = _Reader(name, fs, root, protocol, context.settings.chunk_size)
        self.spool_dir = context.settings.state_dir

    def check(self) -> str:
        """The root exists and can be listed."""
        try:
            if not self.reader.fs.isdir(self.reader.root):
                raise SourceError(f"archive {self.config.url} does not exist")
        except OSError as exc:
            raise SourceError(f"cannot list {self.config.url}: {exc}") from None
        return f"archive {self.config.url} exists and can be listed"

    def discover(self) -> Iterator[RunRef]:
        listing = read_archive(self.reader)
        for path, why in listing.bad_manifests:
            self.skipped.append((f"{self.reader.describe(path)}: unreadable manifest ({why})",
                                 False))
        seen: dict[str, str] = {}
        for entry in sorted(listing.entries + listing.others, key=lambda e: e.path):
            if not self.selected(entry):
                continue
            if not entry.object_present:
                self.skipped.append((f"{self.reader.describe(entry.path)}: missing (its manifest "
                                     f"names it, run {entry.run_key}); nothing of it replayed",
                                     True))
                continue
            run = self.replay_of(entry)
            if run.key in seen:
                self.skipped.append((f"{self.reader.describe(entry.path)}: run "
                                     f"{run.replays.key} is archived at {seen[run.key]} too; "
                                     f"set sources.{self.name}.sink to choose", False))
                continue
            seen[run.key] = self.reader.describe(entry.path)
            yield run

    def selected(self, entry: Archived) -> bool:
        cfg = self.config
        values = {"source": entry.source, **entry.fields}
        if cfg.sink is not None and entry.sink != cfg.sink:
            return False
        if any(not fnmatch.fnmatchcase(values.get(k, ""), glob) for k, glob in cfg.where.items()):
            return False
        if cfg.statuses is not None and entry.run.get("status") not in cfg.statuses:
            return False
        completed = entry.completed
        since, until = _utc(cfg.completed_since), _utc(cfg.completed_until)
        if since is not None and (completed is None or completed < since):
            return False
        return until is None or (completed is not None and completed < until)

    def replay_of(self, entry: Archived) -> RunRef:
        """This source's run replaying ``entry``; a replayed replay keeps the first origin."""
        run, fields = entry.run, entry.fields
        origin = fields.pop(ORIGIN, None) or entry.source
        times = {"status": run.get("status") or "unknown",
                 "started": parse_time(run.get("started")), "completed": entry.completed}
        original = RunRef(origin, fields, metadata=run.get("metadata") or {}, **times)
        metadata = {**original.metadata, "replayed_from": {
            "source": entry.source, "key": entry.run_key, "object": self.reader.describe(
                entry.path), "sha256": entry.manifest["object"]["sha256"]}}
        return RunRef(self.name, {ORIGIN: origin, **fields}, metadata=metadata, locator=entry,
                      replays=original, **times)

    @contextmanager
    def open(self, run: RunRef) -> Iterator[Iterable[bytes]]:
        entry: Archived = run.locator
        fmt, compression = entry.manifest.get("format"), entry.manifest.get("compression")
        if fmt not in ("txt", "parquet", *RECORD_FORMATS):
            raise SourceError(f"{self.reader.describe(entry.path)}: format {fmt!r} cannot be "
                              "replayed (txt, ndjson, json and parquet can)")
        with self.verified(entry) as (fs, path):
            if fmt == "parquet":  # read in place (random access), a row group at a time
                with fs.open(path, "rb") as handle:
                    yield self.records(parquet_records(handle))
                return
            with read_chunks(fs, path, self.reader.chunk_size) as chunks:
                yield self.stream(run, str(fmt), str(compression or "none"), chunks)

    def stream(self, run: RunRef, fmt: str, compression: str,
               chunks: Iterable[bytes]) -> SourceStream:
        """A txt object's bytes, byte for byte; else (or to retime them) its records."""
        if fmt == "txt" and self.config.time == "original":
            return SourceStream(decompress_stream(compression, chunks))
        fields, where = run.record_fields(), self.reader.describe(run.locator.path)
        return self.records(archived_records(fmt, compression, chunks, fields, where))

    def records(self, batches: Iterable[list[dict[str, Any]]]) -> RecordStream:
        """The archived records as a stream, retimed if ``time = "replay"``."""
        replay_time = None
        if self.config.time == "replay":
            replay_time = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return RecordStream(_retimed(batches, replay_time))

    @contextmanager
    def verified(self, entry: Archived) -> Iterator[tuple[Any, str]]:
        """The object as a private local copy (``state_dir/spool``, removed afterwards), once the
        copy's sha256 and size match the manifest: the bytes hashed are the bytes delivered, even
        for a local object rewritten while it is read (no time-of-check/time-of-use gap)."""
        import fsspec

        reader = self.reader
        handle, spool = tempfile.mkstemp(prefix="replay-", dir=self._spool_dir())
        try:
            with os.fdopen(handle, "wb") as out:
                found = _digest(reader.read(entry.path), out.write)
            _check(entry, reader.describe(entry.path), found)
            yield fsspec.filesystem("file"), spool
        finally:
            os.unlink(spool)

    def _spool_dir(self) -> str | None:
        if self.spool_dir is None:
            return None
        folder = os.path.join(self.spool_dir, "spool")
        os.makedirs(folder, exist_ok=True)
        return folder


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def _digest(opened: Any, sink: Any = None) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with opened as chunks:
        for chunk in chunks:
            sha.update(chunk)
            size += len(chunk)
            if sink is not None:
                sink(chunk)
    return sha.hexdigest(), size


def _check(entry: Archived, where: str, found: tuple[str, int]) -> None:
    expected = entry.manifest["object"]
    if (expected["sha256"], expected["size"]) != found:
        raise SourceError(
            f"{where} does not match its manifest (sha256 {found[0]}, {found[1]} bytes; the "
            f"manifest says {expected['sha256']}, {expected['size']} bytes): corrupted or "
            "replaced, so nothing of run " + entry.run_key + " was delivered (logarchive "
            "verify lists every such object)")


def _retimed(batches: Iterable[list[dict[str, Any]]],
             replay_time: str | None) -> Iterator[list[dict[str, Any]]]:
    for rows in batches:
        if replay_time is not None:
            for row in rows:
                row["timestamp"] = replay_time
        yield rows


@hookimpl
def logarchive_register_sources(register: Any) -> None:
    register(ArchiveSource)
