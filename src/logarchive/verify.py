"""Verify an archive against its manifests: re-read objects, recompute sha256 and size.

Only the objects whose manifest names the sink are its archive (sinks may share a root; see
:mod:`logarchive.archive`). Findings, per sink:

- ``corrupt``: an object whose size or sha256 differs from its manifest, a manifest whose
  source bytes differ in length from what the source declared (``source_declared.size``: a
  truncated log), or a manifest that is not a readable logarchive manifest;
- ``orphan_manifest``: a manifest whose object is not there;
- ``orphan_object``: an object without a manifest (nothing proves what it is);
- ``missing``: the ledger says the run was delivered here, but neither the object nor its
  manifest exists (and retention did not delete it, nor start to: a deletion's write-ahead
  record counts).

``sample`` re-reads only N objects chosen at random; the listing checks (orphans, missing) are
always complete because they cost no reads.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from logarchive.base import ByteSink
from logarchive.errors import LogarchiveError
from logarchive.archive import read_archive
from logarchive.secrets import redact

KINDS = ("missing", "corrupt", "orphan_manifest", "orphan_object")


@dataclass
class Finding:
    kind: str
    path: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.path, "detail": self.detail}


@dataclass
class VerifyReport:
    sink: str
    where: str
    objects: int = 0  # objects with a manifest
    checked: int = 0  # objects re-read and hashed
    ok: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings

    def by_kind(self) -> dict[str, int]:
        return {k: sum(1 for f in self.findings if f.kind == k) for k in KINDS}

    def to_json(self) -> dict[str, Any]:
        return {"sink": self.sink, "where": self.where, "objects": self.objects,
                "checked": self.checked, "ok": self.ok, "passed": self.passed,
                "counts": self.by_kind(), "findings": [f.to_json() for f in self.findings]}

    def text(self) -> str:
        head = "ok" if self.passed else "MISMATCH"
        counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in self.by_kind().items())
        lines = [f"sink {self.sink} ({self.where}): {head}: {self.objects} object(s) with a "
                 f"manifest, {self.checked} re-read, {self.ok} intact; {counts}"]
        lines += [f"  {f.kind.upper():<16} {f.path}  {f.detail}" for f in self.findings]
        return "\n".join(lines)


Hashed = tuple[int, str] | str  # (size, sha256) of an object, or why it cannot be read
HashMany = Callable[[ByteSink, list[str]], Iterable[Hashed]]


def hash_object(sink: ByteSink, path: str) -> Hashed:
    """The size and sha256 of one stored object, or why it cannot be read."""
    digest = hashlib.sha256()
    size = 0
    try:
        with sink.read(path) as chunks:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
    except (OSError, LogarchiveError) as exc:
        return redact(str(exc))
    return size, digest.hexdigest()


def hash_objects(sink: ByteSink, paths: list[str]) -> list[Hashed]:
    """:func:`hash_object` of each path, one after the other (the executors fan it out)."""
    return [hash_object(sink, path) for path in paths]


def verify(sink: ByteSink, *, ledger: Any = None, sample: int | None = None,
           rng: random.Random | None = None, hash_many: HashMany | None = None) -> VerifyReport:
    """Check every object of ``sink`` (or a random ``sample`` of them) against its manifest.
    ``hash_many`` re-reads the objects (default: :func:`hash_objects`, in this thread)."""
    listing = read_archive(sink)
    report = VerifyReport(sink.name, sink.describe("").rstrip("/"))
    for path, error in listing.bad_manifests:
        report.findings.append(Finding("corrupt", path, f"unreadable manifest: {error}"))
    present = [e for e in listing.entries if e.object_present]
    report.objects = len(present)
    for entry in listing.entries:
        if not entry.object_present:
            report.findings.append(Finding(
                "orphan_manifest", entry.manifest_path,
                f"its object {entry.path} is not there (run {entry.run_key})"))
    to_check = present
    if sample is not None and sample < len(present):
        to_check = sorted((rng or random.Random()).sample(present, sample), key=lambda e: e.path)
    hashed = (hash_many or hash_objects)(sink, [e.path for e in to_check])
    for entry, outcome in zip(to_check, hashed, strict=True):
        expected = entry.manifest.get("object") or {}
        report.checked += 1
        if isinstance(outcome, str):
            report.findings.append(Finding("corrupt", entry.path, f"cannot be read: {outcome}"))
            continue
        size, sha = outcome
        problems = _declared_problems(entry.manifest)
        if expected.get("size") != size:
            problems.append(f"size {size}, manifest says {expected.get('size')}")
        if expected.get("sha256") != sha:
            problems.append(f"sha256 {sha}, manifest says {expected.get('sha256')}")
        if problems:
            report.findings.append(Finding("corrupt", entry.path, "; ".join(problems)))
        else:
            report.ok += 1
    for path in listing.orphan_objects:
        report.findings.append(Finding("orphan_object", path, "no manifest beside it"))
    if ledger is not None:
        report.findings.extend(_missing(sink, ledger, listing))
    return report


def _declared_problems(manifest: dict[str, Any]) -> list[str]:
    """A log whose length differs from what its source declared, from the manifest alone."""
    declared = (manifest.get("source_declared") or {}).get("size")
    received = (manifest.get("source_bytes") or {}).get("size")
    if declared is None or declared == received:
        return []
    return [f"the source declared {declared} bytes, the archive holds {received} (truncated?)"]


def _missing(sink: ByteSink, ledger: Any, listing: Any) -> list[Finding]:
    """Deliveries the ledger records for this sink whose object and manifest are both gone."""
    known = {sink.describe(e.path) for e in listing.entries}
    known |= {sink.describe(p) for p in listing.orphan_objects}
    known |= {sink.describe(p[: -len(".manifest.json")]) for p, _ in listing.bad_manifests}
    deleted = {e.get("object") for kind in ("retention_delete", "retention_delete_started")
               for e in ledger.events(kind) if e["sink"] == sink.name}
    out = []
    for delivery in ledger.deliveries(sink.name):
        if delivery.status != "delivered" or not delivery.object:
            continue
        if delivery.object in known or delivery.object in deleted:
            continue
        out.append(Finding("missing", delivery.object,
                           f"the ledger says run {delivery.run_key} was delivered here "
                           f"({delivery.delivered_at}); neither object nor manifest exists"))
    return out
