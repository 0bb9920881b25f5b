"""An archive as a sink holds it: objects paired with their manifests, and what does not pair up.

Retention, ``verify`` and ``ledger rebuild`` all start here: everything they know about an
archive is read from the archive itself (``ByteSink.list()`` and the manifests beside the
objects), never from the ledger.

A sink manages exactly the objects whose manifest names it (``"sink"``: the sink's name in the
config, its identity). Sinks may share a root or nest one root in another: a manifest naming
another sink, and the object beside it, belong to that sink and are listed apart
(:attr:`ArchiveListing.others`), never as this sink's entries or orphans.

A manifest that cannot be used (not JSON, or a shape or time that does not parse: see
:func:`manifest_problem`) is listed in :attr:`ArchiveListing.bad_manifests` with the reason, and
its object is neither an entry nor an orphan: retention never deletes it, ``verify`` reports it,
``ledger rebuild`` skips it; the rest of the sink carries on.
"""

from __future__ import annotations

import reprlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from logarchive.base import ByteSink, StoredObject
from logarchive.errors import LogarchiveError
from logarchive.manifest import MANIFEST_SUFFIX, describe_value, is_manifest, parse_manifest
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
        """When the object was archived (the manifest's ``exported_at``, an ISO-8601 string as
        logarchive writes it); None when that cannot be read (missing, a number, a leap second)."""
        value = self.manifest.get("exported_at")
        return _time(value) if isinstance(value, str) else None

    @property
    def completed(self) -> datetime | None:
        """The run's completion time; the export time when the source gave none."""
        return _time(self.run.get("completed")) or _time(self.manifest.get("exported_at"))


def _time(value: Any) -> datetime | None:
    try:
        return parse_time(value)
    except Exception:  # read_archive lists manifests with such times as unreadable
        return None


def manifest_problem(document: dict[str, Any]) -> str | None:
    """Why a parsed manifest cannot be used (its shape or times are wrong), or None."""
    obj, run, sink = document.get("object"), document.get("run"), describe_value(document, "sink")
    checks = [
        (isinstance(obj, dict), f'"object" is {_shown(obj)}, not a mapping'),
        (isinstance(obj, dict) and isinstance(obj.get("sha256"), str),
         '"object.sha256" is not a string'),
        (isinstance(obj, dict) and _is_size(obj.get("size")),
         '"object.size" is not a non-negative integer'),
        (isinstance(run, dict), f'"run" is {_shown(run)}, not a mapping'),
        (isinstance(run, dict) and isinstance(run.get("key"), str), '"run.key" is not a string'),
        (isinstance(run, dict) and isinstance(run.get("fields"), dict),
         '"run.fields" is not a mapping'),
        (isinstance(document.get("sink"), str),
         f'"sink" is {sink}, not a sink name'),
    ]
    problem = next((why for ok, why in checks if not ok), None)
    if problem is not None:
        return problem
    times = {"exported_at": document.get("exported_at"), "run.started": run.get("started"),
             "run.completed": run.get("completed")}
    for name, value in times.items():
        try:
            parse_time(value)
        except Exception as exc:  # any value the parser chokes on (1e20: OverflowError, OSError)
            return f'"{name}" {_shown(value)} is not a time ({type(exc).__name__})'
    return None


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shown(value: Any) -> str:
    return "missing or null" if value is None else redact(reprlib.repr(value))


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


TEMP_SUFFIX = ".partial"
TEMP_DIR = ".logarchive-tmp"  # an fs sink's local writes in progress, one folder per root


def in_progress(path: str) -> bool:
    """Whether ``path`` (relative to an fs sink's root) is a write in progress: in the temp
    folder, or a ``.<name>...partial`` beside its final name."""
    base = path.rsplit("/", 1)[-1]
    return path.startswith(f"{TEMP_DIR}/") or (base.startswith(".") and base.endswith(TEMP_SUFFIX))


def list_stored(fs: Any, root: str) -> Iterator[StoredObject]:
    """Every object under ``root`` of an fsspec filesystem (what ``ByteSink.list()`` returns),
    in path order, but writes in progress (:func:`in_progress`)."""
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        return
    for full, info in sorted(found.items()):
        relative = full[len(root):].lstrip("/")
        if not relative or in_progress(relative) or info.get("type") == "directory":
            continue
        mtime = info.get("mtime") or info.get("LastModified") or info.get("updated")
        yield StoredObject(relative, info.get("size"), mtime if isinstance(mtime, float) else None)


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
                document = parse_manifest(b"".join(chunks))
        except (ValueError, OSError, LogarchiveError) as exc:
            return redact(str(exc)) or type(exc).__name__
        return manifest_problem(document) or document

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
