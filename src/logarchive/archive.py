"""An archive as a sink holds it: objects paired with their manifests, and what does not pair up.

Retention, ``verify`` and ``ledger rebuild`` all start here: everything they know about an
archive is read from the archive itself (``ByteSink.list()`` and the manifests beside the
objects), never from the ledger.

A sink manages exactly the objects whose manifest names it (``"sink"``: the sink's name in the
config, its identity). Sinks may share a root or nest one root in another: a manifest naming
another sink, and the object beside it, belong to that sink and are listed apart
(:attr:`ArchiveListing.others`), never as this sink's entries or orphans.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from logarchive.base import ByteSink
from logarchive.errors import LogarchiveError
from logarchive.manifest import MANIFEST_SUFFIX, is_manifest, parse_manifest
from logarchive.runs import parse_time
from logarchive.secrets import redact

READ_WORKERS = 8


@dataclass
class Archived:
    """One archived object as its manifest describes it."""

    path: str  # object path relative to the sink's root
    manifest_path: str
    manifest: dict[str, Any]
    object_present: bool
    listed_size: int | None = None

    @property
    def run(self) -> dict[str, Any]:
        return self.manifest.get("run") or {}

    @property
    def run_key(self) -> str:
        return str(self.run.get("key") or "")

    @property
    def source(self) -> str:
        return str(self.run.get("source") or "")

    @property
    def fields(self) -> dict[str, str]:
        return dict(self.run.get("fields") or {})

    @property
    def sink(self) -> str | None:
        name = self.manifest.get("sink")
        return name if isinstance(name, str) else None

    @property
    def exported(self) -> datetime | None:
        """When the object was archived (the manifest's ``exported_at``)."""
        return parse_time(self.manifest.get("exported_at"))

    @property
    def completed(self) -> datetime | None:
        """The run's completion time; the export time when the source gave none."""
        return parse_time(self.run.get("completed")) or parse_time(self.manifest.get("exported_at"))


@dataclass
class ArchiveListing:
    """What a sink holds: objects with their manifests, and what does not pair up."""

    entries: list[Archived] = field(default_factory=list)  # manifests naming this sink
    others: list[Archived] = field(default_factory=list)  # manifests naming another sink
    orphan_objects: list[str] = field(default_factory=list)  # objects without a manifest
    bad_manifests: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    sizes: dict[str, int | None] = field(default_factory=dict)

    def unknown_sinks(self, known: Iterable[str]) -> dict[str, list[str]]:
        """Manifests naming a sink that ``known`` (the config's sink names) does not have, by
        that name: a renamed or removed sink. Nothing manages them until the name is back."""
        names = set(known)
        out: dict[str, list[str]] = defaultdict(list)
        for entry in self.others:
            if entry.sink not in names:
                out[str(entry.sink)].append(entry.manifest_path)
        return dict(out)


def unknown_sink_lines(unknown: dict[str, list[str]], consequence: str) -> list[str]:
    """Report lines for :meth:`ArchiveListing.unknown_sinks`."""
    return [f"  {len(paths)} manifest(s) name sink {name!r}, which the config does not have "
            f"(renamed or removed?): {consequence}; see docs/retention.md"
            for name, paths in sorted(unknown.items())]


def read_archive(sink: ByteSink) -> ArchiveListing:
    """List a sink and read every manifest in it (``ByteSink.list()`` / ``read()``); only the
    manifests naming ``sink`` (``sink.name``) become its entries."""
    listing = ArchiveListing()
    stored = {obj.path: obj for obj in sink.list()}
    listing.sizes = {p: o.size for p, o in stored.items()}
    manifests = sorted(p for p in stored if is_manifest(p))
    described: set[str] = set()

    def load(mpath: str) -> dict[str, Any] | str:
        try:
            with sink.read(mpath) as chunks:
                return parse_manifest(b"".join(chunks))
        except (ValueError, OSError, LogarchiveError) as exc:
            return redact(str(exc)) or type(exc).__name__

    # Manifests are small: on object stores the round trips dominate, so read several at once.
    with ThreadPoolExecutor(max_workers=READ_WORKERS, thread_name_prefix="manifest") as pool:
        documents = list(pool.map(load, manifests))
    for mpath, document in zip(manifests, documents):
        object_path = mpath[: -len(MANIFEST_SUFFIX)]
        described.add(object_path)  # an unreadable manifest's object is not an orphan either
        if isinstance(document, str):
            listing.bad_manifests.append((mpath, document))
            continue
        entry = Archived(
            path=object_path, manifest_path=mpath, manifest=document,
            object_present=object_path in stored, listed_size=listing.sizes.get(object_path),
        )
        (listing.entries if entry.sink == sink.name else listing.others).append(entry)
    listing.orphan_objects = sorted(
        p for p in stored if not is_manifest(p) and p not in described
    )
    return listing
