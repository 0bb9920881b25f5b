"""Rebuild the ledger from the manifests of every object-storing sink.

After the state directory is lost, the archive still proves what was delivered: each manifest
names its run (source and fields, hence the ledger key), the sha256, size and line count. A run
whose object and manifest are both there is recorded as delivered to that sink, so the next
export does not deliver it again. A sink is credited only with the manifests that name it: sinks
sharing a root never receive each other's runs; manifests naming a sink the config no longer
has (renamed or removed) are reported, never credited.

Record sinks (Splunk, Datadog) keep no manifests: their deliveries cannot be restored; the
report names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logarchive.config import Config
from logarchive.status import RunStatus
from logarchive.archive import read_archive, unknown_sink_lines
from logarchive.pipeline import byte_sink_names, open_sink
from logarchive.runs import RunRef, parse_time


@dataclass
class SinkRebuild:
    sink: str
    where: str
    restored: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    unknown_sinks: dict[str, list[str]] = field(default_factory=dict)  # sink name: manifests

    def to_json(self) -> dict[str, Any]:
        return {"sink": self.sink, "where": self.where, "restored": self.restored,
                "unchanged": self.unchanged,
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
                "unknown_sinks": self.unknown_sinks}


@dataclass
class RebuildReport:
    sinks: list[SinkRebuild] = field(default_factory=list)
    not_rebuildable: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"sinks": [s.to_json() for s in self.sinks],
                "not_rebuildable": self.not_rebuildable}

    def text(self) -> str:
        lines = []
        for s in self.sinks:
            lines.append(f"sink {s.sink} ({s.where}): restored {s.restored}, already in the "
                         f"ledger {s.unchanged}, skipped {len(s.skipped)}")
            lines += [f"  skipped {p}: {r}" for p, r in s.skipped]
            lines += unknown_sink_lines(s.unknown_sinks, "not credited")
        for name in self.not_rebuildable:
            lines.append(f"sink {name}: a record sink keeps no manifests; its deliveries cannot "
                         "be rebuilt (runs not in another sink's manifests would be sent again)")
        return "\n".join(lines)


def run_from_manifest(manifest: dict[str, Any]) -> RunRef:
    run = manifest["run"]
    return RunRef(
        source=run["source"], fields={str(k): str(v) for k, v in run["fields"].items()},
        status=run.get("status") or "completed", started=parse_time(run.get("started")),
        completed=parse_time(run.get("completed")), metadata=run.get("metadata") or {},
    )


def rebuild(config: Config, ledger: Any, sinks: list[str] | None = None) -> RebuildReport:
    """Record as delivered every run whose object and manifest are in a byte sink's archive."""
    report = RebuildReport()
    names = sinks or byte_sink_names(config)
    report.not_rebuildable = [n for n in config.sinks if n not in byte_sink_names(config)
                              and (sinks is None or n in sinks)]
    for name in names:
        sink = open_sink(config, name)
        try:
            listing = read_archive(sink)
            result = SinkRebuild(name, sink.describe("").rstrip("/"),
                                 unknown_sinks=listing.unknown_sinks(config.sinks))
            for path, why in listing.bad_manifests:
                result.skipped.append((path, f"unreadable manifest: {why}"))
            for entry in listing.entries:
                if not entry.object_present:
                    result.skipped.append((entry.manifest_path, "its object is not there"))
                    continue
                try:
                    run = run_from_manifest(entry.manifest)
                except (KeyError, TypeError, ValueError) as exc:
                    result.skipped.append((entry.manifest_path, f"no usable run in it: {exc}"))
                    continue
                if entry.run_key and run.key != entry.run_key:
                    result.skipped.append((entry.manifest_path,
                                           f"run key {entry.run_key!r} does not match its fields"))
                    continue
                obj = entry.manifest.get("object") or {}
                current = ledger.get(run.key, name)
                if (current is not None and current.status == RunStatus.DELIVERED
                        and current.sha256 == obj.get("sha256")):
                    result.unchanged += 1
                    continue
                ledger.delivered(run, name, object=sink.describe(entry.path),
                                 sha256=obj.get("sha256"), size=obj.get("size"),
                                 lines=(entry.manifest.get("source_bytes") or {}).get("lines"))
                result.restored += 1
            ledger.event("ledger_rebuilt", sink=name, restored=result.restored,
                         unchanged=result.unchanged, skipped=len(result.skipped))
            report.sinks.append(result)
        finally:
            sink.close()
    return report
