"""Retention: which archived objects the rules delete, and what protects the others.

Everything is read from the archive itself (the manifests beside the objects), so retention
works on archives the ledger never saw. A sink manages only the objects whose manifest names it
(see :mod:`logarchive.archive`). Age is the run's completion time from the manifest
(``run.completed``, else ``exported_at``), never the storage mtime, which a copy or a restore
would reset; the ``min_age_days`` floor counts from when the object was archived
(``exported_at``), so a source's odd clock never makes a new object deletable.

Rules (``[sinks.NAME.retention]``, :class:`~logarchive.base.RetentionConfig`):

- ``max_age_days`` selects objects older than that;
- ``keep_last`` ranks each ``group_by`` group newest first: alone it selects everything after the
  first N; with ``max_age_days`` it protects the newest N of a group from the age rule;
- protections, strongest first: ``legal_hold`` patterns (a run key or path equal to the pattern,
  or matching it as a glob), the ``min_age_days`` floor, and a live S3 Object Lock retention or
  legal hold on the object (asked from the server).

:func:`plan` decides; :func:`apply` deletes exactly the plan's ``delete`` set. Each deletion is
recorded before it starts (ledger event ``retention_delete_started``, the write-ahead record),
then object and manifest are deleted, then it is recorded done (``retention_delete``, structlog
``retention_deleted``). A stop request is honoured between objects; a deletion whose process died
is completed by the next ``apply``.
"""

from __future__ import annotations

import fnmatch
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from collections.abc import Iterable
from typing import Any

import structlog

from logarchive.archive import Archived, ArchiveListing, read_archive, unknown_sink_lines
from logarchive.base import ByteSink, RetentionConfig
from logarchive.errors import LogarchiveError
from logarchive.manifest import describe_value
from logarchive.runs import iso
from logarchive.secrets import redact
from logarchive.templates import render_template

log = structlog.get_logger("logarchive")

DELETE = "delete"
KEEP = "keep"


# --- planning -----------------------------------------------------------------------------


def render_group(template: str, sink: str, entry: Archived) -> str:
    """The ``keep_last`` group of ``entry``; a field the run lacks renders as ``-``."""
    values: dict[str, Any] = {"sink": sink, "source": entry.source, **entry.fields}
    if entry.completed is not None:
        values["completed"] = entry.completed
    return render_template(template, values, default="-")


@dataclass
class Decision:
    """What retention does with one archived object, and why."""

    path: str
    run_key: str
    group: str
    completed: datetime | None
    age_days: float | None
    rank: int  # 0 = newest of its group
    action: str = KEEP
    rule: str | None = None  # the rule that selects it for deletion
    protected_by: str | None = None  # what keeps a selected object
    reason: str = ""
    object_present: bool = True
    manifest_path: str = ""
    size: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "manifest": self.manifest_path, "run": self.run_key,
            "group": self.group, "completed": iso(self.completed),
            "age_days": None if self.age_days is None else round(self.age_days, 2),
            "rank_in_group": self.rank, "action": self.action, "rule": self.rule,
            "protected_by": self.protected_by, "reason": self.reason,
            "object_present": self.object_present, "size": self.size,
        }


@dataclass
class SinkPlan:
    sink: str
    where: str
    rules: RetentionConfig
    now: datetime
    decisions: list[Decision] = field(default_factory=list)
    orphan_objects: list[str] = field(default_factory=list)
    bad_manifests: list[tuple[str, str]] = field(default_factory=list)
    unknown_sinks: dict[str, list[str]] = field(default_factory=dict)  # sink name: manifests
    unmatched_holds: list[str] = field(default_factory=list)  # legal_hold patterns

    @property
    def warnings(self) -> list[str]:
        return [f"legal_hold pattern {p!r} matches no archived object of sink {self.sink}"
                for p in self.unmatched_holds]

    @property
    def deletions(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == DELETE]

    @property
    def protected(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == KEEP and d.protected_by]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for d in self.decisions:
            if d.action == DELETE:
                out["delete"] += 1
            elif d.protected_by:
                out[f"protected_by_{d.protected_by}"] += 1
            else:
                out["not_selected"] += 1
        return dict(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "sink": self.sink, "where": self.where, "now": iso(self.now),
            "rules": self.rules.model_dump(), "objects": len(self.decisions),
            "counts": self.counts(),
            "delete": [d.to_json() for d in self.deletions],
            "keep": [d.to_json() for d in self.decisions if d.action == KEEP],
            "unmanaged_objects": self.orphan_objects,
            "unreadable_manifests": [{"path": p, "error": e} for p, e in self.bad_manifests],
            "unknown_sinks": self.unknown_sinks, "warnings": self.warnings,
        }

    def text(self) -> str:
        counts = self.counts()
        lines = [f"sink {self.sink} ({self.where}): {len(self.decisions)} archived object(s), "
                 f"{counts.get('delete', 0)} to delete"]
        for d in self.deletions:
            lines.append(f"  DELETE  {d.path}  age {_days(d.age_days)}  group {d.group}  "
                         f"rule {d.rule}: {d.reason}")
        for d in self.protected:
            lines.append(f"  KEEP    {d.path}  age {_days(d.age_days)}  group {d.group}  "
                         f"protected by {d.protected_by}: {d.reason}")
        kept = [f"{n} {k.removeprefix('protected_by_').replace('_', ' ')}"
                for k, n in sorted(counts.items()) if k != "delete"]
        if kept:
            lines.append("  kept: " + ", ".join(kept))
        if self.orphan_objects:
            lines.append(f"  {len(self.orphan_objects)} object(s) without a manifest are not "
                         "managed by retention (see `logarchive verify`)")
        for path, error in self.bad_manifests:
            lines.append(f"  unreadable manifest {path}: {error}")
        lines += unknown_sink_lines(self.unknown_sinks, "not managed by retention")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _days(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}d"


def hold_matches(pattern: str, entry: Archived) -> bool:
    """A hold protects an object whose run key or path equals the pattern (a key copied from
    ``ledger show`` may contain ``[``, ``*``, ``?``) or matches it as a glob."""
    return any(value == pattern or fnmatch.fnmatchcase(value, pattern)
               for value in (entry.run_key, entry.path) if value)


def _held(rules: RetentionConfig, entry: Archived) -> str | None:
    return next((p for p in rules.legal_hold if hold_matches(p, entry)), None)


def plan(sink: ByteSink, rules: RetentionConfig | None = None, *, now: datetime | None = None,
         check_locks: bool = True, known_sinks: Iterable[str] | None = None) -> SinkPlan:
    """Decide, for every archived object of ``sink``, whether ``rules`` delete it.

    ``check_locks`` asks the store (S3 ``head_object``) whether an object the rules select is
    still under Object Lock retention or legal hold; such objects are kept with the reason.
    ``known_sinks`` (the config's sink names) reports manifests naming a sink not among them.
    """
    rules = rules or sink.config.retention or RetentionConfig()
    now = now or datetime.now(timezone.utc)
    listing = read_archive(sink)
    result = SinkPlan(sink.name, sink.describe("").rstrip("/"), rules, now,
                      orphan_objects=listing.orphan_objects, bad_manifests=listing.bad_manifests,
                      unmatched_holds=_unmatched_holds(rules, listing))
    if known_sinks is not None:
        result.unknown_sinks = listing.unknown_sinks(known_sinks)
    for pattern in result.unmatched_holds:
        log.warning("legal_hold_matches_nothing", sink=sink.name, pattern=pattern)
    groups: dict[str, list[Archived]] = defaultdict(list)
    for entry in listing.entries:
        groups[render_group(rules.group_by, sink.name, entry)].append(entry)
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    lock_status = sink.object_lock_status if check_locks else None
    for group, members in sorted(groups.items()):
        members.sort(key=lambda e: (e.completed or epoch, e.path), reverse=True)
        for rank, entry in enumerate(members):
            completed = entry.completed
            age = None if completed is None else (now - completed).total_seconds() / 86400
            d = Decision(entry.path, entry.run_key, group, completed, age, rank,
                         object_present=entry.object_present, manifest_path=entry.manifest_path,
                         size=entry.listed_size)
            result.decisions.append(d)
            _decide(d, rules, entry, lock_status, now)
    result.decisions.sort(key=lambda d: d.path)
    return result


def _unmatched_holds(rules: RetentionConfig, listing: ArchiveListing) -> list[str]:
    return [p for p in rules.legal_hold if not any(hold_matches(p, e) for e in listing.entries)]


def _archived_days(entry: Archived, now: datetime, age_days: float) -> float | None:
    """Days since the object was archived (``exported_at``): the clock of the ``min_age_days``
    floor. The younger of that and the run's age, so no source time shortens the floor; None
    when the archive time cannot be read (the source's time never stands in for it)."""
    exported = entry.exported
    if exported is None:
        return None
    return min(age_days, (now - exported).total_seconds() / 86400)


def _decide(d: Decision, rules: RetentionConfig, entry: Archived, lock_status: Any,
            now: datetime) -> None:
    if d.age_days is None:
        d.reason = "no completion or export time in the manifest: age unknown, never deleted"
        return
    why = _selected(d, rules)
    if why is None or _protected(d, rules, entry, lock_status, why, now):
        return
    d.action = DELETE
    d.reason = why if entry.object_present else why + "; object already gone, manifest only"


def _selected(d: Decision, rules: RetentionConfig) -> str | None:
    """Why a deleting rule selects ``d`` (the rule in ``d.rule``); None, with ``d.reason``, when
    none does."""
    old = rules.max_age_days is not None and d.age_days > rules.max_age_days
    beyond = rules.keep_last is not None and d.rank >= rules.keep_last
    if rules.max_age_days is not None and rules.keep_last is not None:
        if old and not beyond:
            d.protected_by = "keep_last"
            d.reason = (f"older than {rules.max_age_days:g}d, but one of the newest "
                        f"{rules.keep_last} of its group (#{d.rank + 1})")
            return None
        selected = old and beyond
        d.rule = "max_age_days"
        why = (f"older than {rules.max_age_days:g}d and not one of the newest "
               f"{rules.keep_last} of its group (#{d.rank + 1})")
    elif rules.max_age_days is not None:
        selected, d.rule = old, "max_age_days"
        why = f"older than {rules.max_age_days:g}d"
    elif rules.keep_last is not None:
        selected, d.rule = beyond, "keep_last"
        why = f"#{d.rank + 1} of its group, only the newest {rules.keep_last} are kept"
    else:
        selected, why = False, ""
    if not selected:
        d.rule = None
        if rules.max_age_days is None and rules.keep_last is None:
            d.reason = "no deleting rule (max_age_days, keep_last) is set"
        elif rules.max_age_days is not None and not old:
            d.reason = f"younger than max_age_days {rules.max_age_days:g}"
        else:
            d.reason = f"one of the newest {rules.keep_last} of its group (#{d.rank + 1})"
        return None
    return why


def _protected(d: Decision, rules: RetentionConfig, entry: Archived, lock_status: Any,
               why: str, now: datetime) -> bool:
    """True, with ``d.protected_by`` and ``d.reason``, when a protection keeps a selected
    archive: a legal hold pattern, the min_age_days floor or the object's S3 Object Lock."""
    hold = _held(rules, entry)
    if hold is not None:
        d.protected_by, d.reason = "legal_hold", f"matches legal_hold pattern {hold!r} ({why})"
        return True
    archived = _archived_days(entry, now, d.age_days)
    if archived is None and rules.min_age_days > 0:
        d.protected_by = "min_age_days"
        d.reason = (f"archive time (exported_at) {describe_value(entry.manifest, 'exported_at')} "
                    f"is unreadable: the floor min_age_days {rules.min_age_days:g} cannot be "
                    f"checked, kept ({why})")
        log.warning("archive_time_unreadable", sink=entry.sink, object=entry.path,
                    reason=d.reason)
        return True
    if archived is not None and archived < rules.min_age_days:
        d.protected_by = "min_age_days"
        d.reason = (f"archived {archived:.1f}d ago, within the floor min_age_days "
                    f"{rules.min_age_days:g} ({why})")
        return True
    if lock_status is not None and entry.object_present:
        try:
            lock = lock_status(entry.path)
        except Exception as exc:  # cannot prove it is free: keep it
            d.protected_by = "object_lock"
            d.reason = f"cannot read its Object Lock status ({redact(str(exc))}): kept"
            return True
        if lock:
            d.protected_by = "object_lock"
            parts = []
            if lock.get("retain_until"):
                parts.append(f"{lock.get('mode')} retention until {lock['retain_until']}")
            if lock.get("legal_hold"):
                parts.append("S3 legal hold ON")
            d.reason = "S3 Object Lock: " + " and ".join(parts) + f"; the server would refuse " \
                       f"the delete ({why})"
            return True
    return False


# --- applying -----------------------------------------------------------------------------


@dataclass
class ApplyResult:
    plan: SinkPlan
    deleted: list[Decision] = field(default_factory=list)
    failed: list[tuple[Decision, str]] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)  # interrupted deletions finished now
    stopped: int = 0  # deletions not started because a stop was requested

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "sink": self.plan.sink, "where": self.plan.where,
            "deleted": [d.to_json() for d in self.deleted],
            "failed": [{**d.to_json(), "error": e} for d, e in self.failed],
            "completed_interrupted": self.completed, "not_started_stop_requested": self.stopped,
            "counts": self.plan.counts(), "warnings": self.plan.warnings,
        }

    def text(self) -> str:
        lines = [f"sink {self.plan.sink} ({self.plan.where}): deleted {len(self.deleted)}, "
                 f"failed {len(self.failed)}"]
        lines += [f"  deleted {d.path}  age {_days(d.age_days)}  rule {d.rule}"
                  for d in self.deleted]
        lines += [f"  FAILED  {d.path}: {e}" for d, e in self.failed]
        lines += [f"  completed the interrupted deletion of {o}" for o in self.completed]
        if self.stopped:
            lines.append(f"  stopped: {self.stopped} deletion(s) not started (run apply again)")
        lines += [f"  warning: {w}" for w in self.plan.warnings]
        return "\n".join(lines)


def _audit(sink: ByteSink, d: Decision) -> dict[str, Any]:
    return {
        "object": sink.describe(d.path), "manifest": sink.describe(d.manifest_path),
        "path": d.path, "group": d.group, "rule": d.rule, "reason": d.reason,
        "completed": iso(d.completed),
        "age_days": None if d.age_days is None else round(d.age_days, 2),
    }


def apply(sink: ByteSink, sink_plan: SinkPlan, *, ledger: Any = None,
          stop: threading.Event | None = None) -> ApplyResult:
    """Delete exactly ``sink_plan.deletions``: the object, then its manifest (so a failure
    between the two leaves a manifest that the next plan selects again, never an object that no
    manifest describes).

    Write-ahead audit: ledger event ``retention_delete_started`` before anything is deleted, then
    ``retention_delete`` (and structlog ``retention_deleted``) once both are gone; failures are
    ``retention_delete_failed``. ``stop`` (SIGTERM/SIGINT) is checked between objects, so the
    current one is always finished. A started deletion whose process died is completed here:
    the plan selects its leftover manifest again, or, when nothing is left, its record is
    completed from the write-ahead record."""
    result = ApplyResult(sink_plan)
    if ledger is not None:
        result.completed = _complete_interrupted(sink, sink_plan, ledger)
    for index, d in enumerate(sink_plan.deletions):
        if stop is not None and stop.is_set():
            result.stopped = len(sink_plan.deletions) - index
            log.warning("retention_stopped", sink=sink.name, not_started=result.stopped)
            break
        _delete_one(sink, d, ledger, result)
    return result


def _delete_one(sink: ByteSink, d: Decision, ledger: Any, result: ApplyResult) -> None:
    audit = _audit(sink, d)
    if ledger is not None:
        ledger.event("retention_delete_started", sink=sink.name, run_key=d.run_key, **audit)
    try:
        if d.object_present:
            sink.delete(d.path)
        sink.delete(d.manifest_path)
    except Exception as exc:  # one failure must not stop the others
        message = redact(str(exc)) or type(exc).__name__
        result.failed.append((d, message))
        log.error("retention_delete_failed", sink=sink.name, run=d.run_key, error=message,
                  **audit)
        if ledger is not None:
            ledger.event("retention_delete_failed", sink=sink.name, run_key=d.run_key,
                         error=message, **audit)
        return
    result.deleted.append(d)
    if ledger is not None:
        ledger.event("retention_delete", sink=sink.name, run_key=d.run_key, **audit)
    log.info("retention_deleted", sink=sink.name, run=d.run_key, **audit)


def _complete_interrupted(sink: ByteSink, sink_plan: SinkPlan, ledger: Any) -> list[str]:
    """Record as done the started deletions of ``sink`` that never ended, whose object and
    manifest are both gone (a deletion with something left is in the plan again, or kept by a
    rule now and reported by ``verify``)."""
    last: dict[str, dict[str, Any]] = {}  # object: its latest retention event
    for event in ledger.events():
        if event["sink"] == sink.name and event["kind"] in (
                "retention_delete_started", "retention_delete", "retention_delete_failed"):
            last[str(event.get("object"))] = event
    present = {sink.describe(d.path) for d in sink_plan.decisions}
    present |= {sink.describe(p) for p in sink_plan.orphan_objects}
    done = []
    for obj, event in last.items():
        if event["kind"] != "retention_delete_started" or obj in present:
            continue
        detail = {k: v for k, v in event.items() if k not in ("time", "kind", "sink", "run_key")}
        ledger.event("retention_delete", sink=sink.name, run_key=event["run_key"],
                     completed_after_interruption=True, **detail)
        log.info("retention_deleted", sink=sink.name, run=event["run_key"],
                 completed_after_interruption=True, **detail)
        done.append(obj)
    return done
