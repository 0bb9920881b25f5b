"""An index of one sink's manifests in SQLite (under ``state_dir``), so that listing and
filtering runs never reads the manifests again.

Built when ``serve`` starts and refreshed every ``refresh_seconds``: the sink is listed
(``ByteSink.list()``, one listing, no reads) and only the manifests that are new, or whose size or
modification time changed, are read (all of them when the store gives no modification time).
Rows of manifests that are gone are dropped; an object that disappeared is marked absent. The
index survives restarts: a second start reads only what changed.

Only manifests naming the served sink are runs (see :mod:`logarchive.archive`); unreadable ones
and those naming another sink are remembered apart so they are not read again.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from logarchive.archive import manifest_problem
from logarchive.base import ByteSink, StoredObject
from logarchive.errors import LogarchiveError
from logarchive.manifest import MANIFEST_SUFFIX, is_manifest, parse_manifest
from logarchive.runs import iso, parse_time
from logarchive.secrets import redact
from logarchive.serve.logs import StoredLog

READ_WORKERS = 8
SCHEMA_VERSION = 1  # the index is a cache: another version is dropped and rebuilt
SORTS = {"completed": "completed_ts", "started": "started_ts", "exported": "exported_ts",
         "run": "run_key", "source": "source", "status": "status", "lines": "lines",
         "size": "size", "format": "format"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, manifest_path TEXT UNIQUE, msize INTEGER, mtime REAL,
  object_path TEXT, present INTEGER, source TEXT, run_key TEXT, status TEXT,
  started_ts REAL, completed_ts REAL, exported_ts REAL, format TEXT, compression TEXT,
  sha256 TEXT, size INTEGER, lines INTEGER, fields TEXT, verified INTEGER, verified_at TEXT);
CREATE TABLE IF NOT EXISTS manifests (id TEXT PRIMARY KEY, document TEXT);
CREATE TABLE IF NOT EXISTS run_fields (id TEXT, name TEXT, value TEXT);
CREATE INDEX IF NOT EXISTS run_fields_nv ON run_fields (name, value);
CREATE INDEX IF NOT EXISTS run_fields_id ON run_fields (id);
CREATE INDEX IF NOT EXISTS runs_completed ON runs (completed_ts);
CREATE TABLE IF NOT EXISTS skipped (manifest_path TEXT PRIMARY KEY, msize INTEGER, mtime REAL,
  why TEXT);
"""
_COLUMNS = ("id, manifest_path, object_path, present, source, run_key, status, started_ts, "
            "completed_ts, exported_ts, format, compression, sha256, size, lines, fields, "
            "verified, verified_at")


def run_id_of(manifest_path: str) -> str:
    """A run's id in URLs: opaque, stable, and never a storage path."""
    return hashlib.sha256(manifest_path.encode()).hexdigest()[:20]


@dataclass
class RunRow:
    """One archived run as the index holds it."""

    id: str
    manifest_path: str
    object_path: str
    present: bool
    source: str
    run_key: str
    status: str
    started: float | None
    completed: float | None
    exported: float | None
    format: str
    compression: str
    sha256: str
    size: int
    lines: int | None
    fields: dict[str, str]
    verified: bool | None = None
    verified_at: str | None = None

    @classmethod
    def from_db(cls, row: tuple[Any, ...]) -> RunRow:
        values = list(row)
        values[3] = bool(values[3])
        values[15] = orjson.loads(values[15])
        values[16] = None if values[16] is None else bool(values[16])
        return cls(*values)

    def stored(self) -> StoredLog:
        return StoredLog(self.object_path, self.format, self.compression, self.sha256, self.size,
                         self.fields, self.source)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "run_key": self.run_key,
                "fields": self.fields, "status": self.status, "started": _iso(self.started),
                "completed": _iso(self.completed), "exported": _iso(self.exported),
                "format": self.format, "compression": self.compression, "size": self.size,
                "lines": self.lines, "sha256": self.sha256, "object_present": self.present,
                "verified": self.verified, "verified_at": self.verified_at}


def _iso(epoch: float | None) -> str | None:
    from datetime import datetime, timezone

    return None if epoch is None else iso(datetime.fromtimestamp(epoch, tz=timezone.utc))


@dataclass
class RunQuery:
    """Filters, order and page of a listing."""

    fields: dict[str, str] = field(default_factory=dict)  # exact value, or a glob with * ? [
    source: str | None = None
    statuses: tuple[str, ...] = ()
    text: str | None = None  # substring of the run key
    since: float | None = None  # completion time (the export time without one)
    until: float | None = None
    sort: str = "completed"
    descending: bool = True
    limit: int = 50
    offset: int = 0

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = ["present = 1"], []
        for name, value in self.fields.items():
            op = "GLOB" if any(c in value for c in "*?[") else "="
            clauses.append(f"id IN (SELECT id FROM run_fields WHERE name = ? AND value {op} ?)")
            args += [name, value]
        if self.source:
            clauses.append("source = ?")
            args.append(self.source)
        if self.statuses:
            clauses.append(f"status IN ({','.join('?' * len(self.statuses))})")
            args += list(self.statuses)
        if self.text:
            clauses.append("instr(run_key, ?) > 0")
            args.append(self.text)
        for op, value in ((">=", self.since), ("<", self.until)):
            if value is not None:
                clauses.append(f"completed_ts {op} ?")
                args.append(value)
        return " AND ".join(clauses), args


@dataclass
class RefreshStats:
    manifests: int = 0
    read: int = 0
    removed: int = 0
    skipped: int = 0
    seconds: float = 0.0


@dataclass
class _Read:
    path: str
    listed: StoredObject
    document: dict[str, Any] | None = None
    why: str | None = None


class RunIndex:
    """The SQLite index of one sink's manifests (see the module doc). Thread-safe."""

    def __init__(self, path: Path, sink: ByteSink) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sink = sink
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        if self._db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            for (table,) in self._db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                self._db.execute(f'DROP TABLE "{table}"')
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def refresh(self) -> RefreshStats:
        """Bring the index up to date with the sink (see the module doc)."""
        started = time.monotonic()
        stored = {obj.path: obj for obj in self.sink.list()}
        manifests = {p: o for p, o in stored.items() if is_manifest(p)}
        with self._lock:
            known = {p: (size, mtime) for p, size, mtime in self._db.execute(
                "SELECT manifest_path, msize, mtime FROM runs "
                "UNION ALL SELECT manifest_path, msize, mtime FROM skipped")}
        stale = [_Read(p, o) for p, o in manifests.items()
                 if o.mtime is None or known.get(p) != (o.size, o.mtime)]
        with ThreadPoolExecutor(READ_WORKERS, thread_name_prefix="manifest") as pool:
            reads = list(pool.map(self._load, stale))
        gone = [p for p in known if p not in manifests]
        with self._lock:
            self._write(reads, gone, stored)
        count = self._db.execute("SELECT count(*) FROM runs").fetchone()[0]
        return RefreshStats(count, len(reads), len(gone), sum(r.why is not None for r in reads),
                            time.monotonic() - started)

    def _load(self, item: _Read) -> _Read:
        try:
            with self.sink.read(item.path) as chunks:
                document = parse_manifest(b"".join(chunks))
        except (ValueError, OSError, LogarchiveError) as exc:
            item.why = redact(str(exc)) or type(exc).__name__
            return item
        item.why = manifest_problem(document)
        if item.why is None and document.get("sink") != self.sink.name:
            item.why = f"names sink {document.get('sink')!r}"
        if item.why is None:
            item.document = document
        return item

    def _write(self, reads: list[_Read], gone: list[str], stored: dict[str, StoredObject]) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            for path in gone + [r.path for r in reads]:
                ident = run_id_of(path)
                db.execute("DELETE FROM runs WHERE id = ?", (ident,))
                db.execute("DELETE FROM run_fields WHERE id = ?", (ident,))
                db.execute("DELETE FROM manifests WHERE id = ?", (ident,))
                db.execute("DELETE FROM skipped WHERE manifest_path = ?", (path,))
            for item in reads:
                if item.document is None:
                    db.execute("INSERT INTO skipped VALUES (?, ?, ?, ?)",
                               (item.path, item.listed.size, item.listed.mtime, item.why))
                else:
                    self._insert(item, stored)
            for ident, object_path, present in db.execute(
                    "SELECT id, object_path, present FROM runs").fetchall():
                if bool(present) != (object_path in stored):
                    db.execute("UPDATE runs SET present = ? WHERE id = ?",
                               (int(object_path in stored), ident))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _insert(self, item: _Read, stored: dict[str, StoredObject]) -> None:
        doc = item.document
        assert doc is not None
        run, obj = doc["run"], doc["object"]
        object_path = item.path[: -len(MANIFEST_SUFFIX)]
        fields = {str(k): str(v) for k, v in run["fields"].items()}
        exported = _epoch(doc.get("exported_at"))
        ident = run_id_of(item.path)
        self._db.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (ident, item.path, item.listed.size, item.listed.mtime, object_path,
             int(object_path in stored), str(run.get("source") or ""), run["key"],
             str(run.get("status") or "unknown"), _epoch(run.get("started")),
             _epoch(run.get("completed")) or exported, exported, str(doc.get("format") or "txt"),
             str(doc.get("compression") or "none"), obj["sha256"], obj["size"],
             (doc.get("source_bytes") or {}).get("lines"), orjson.dumps(fields).decode(),
             None, None))
        self._db.execute("INSERT INTO manifests VALUES (?, ?)", (ident, orjson.dumps(doc).decode()))
        self._db.executemany("INSERT INTO run_fields VALUES (?, ?, ?)",
                             [(ident, k, v) for k, v in fields.items()])

    def query(self, query: RunQuery) -> tuple[list[RunRow], int]:
        """One page of the runs matching ``query``, and how many match in all."""
        where, args = query.where()
        order = SORTS.get(query.sort, "completed_ts")
        direction = "DESC" if query.descending else "ASC"
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM runs WHERE {where}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE {where} ORDER BY {order} {direction} "
                f"NULLS LAST, exported_ts {direction}, id LIMIT ? OFFSET ?",
                [*args, query.limit, query.offset]).fetchall()
        return [RunRow.from_db(r) for r in rows], total

    def latest(self, fields: dict[str, str], statuses: Iterable[str] = ()) -> RunRow | None:
        """The most recently completed present run with exactly these field values."""
        exact = {k: v.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")
                 for k, v in fields.items()}
        rows, _ = self.query(RunQuery(fields=exact, statuses=tuple(statuses), limit=1))
        return rows[0] if rows else None

    def get(self, ident: str) -> RunRow | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM runs WHERE id = ?",
                                   (ident,)).fetchone()
        return RunRow.from_db(row) if row else None

    def manifest(self, ident: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT document FROM manifests WHERE id = ?",
                                   (ident,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def record_check(self, ident: str, ok: bool) -> None:
        """Remember the outcome of a complete read of a run's object against its manifest."""
        with self._lock:
            self._db.execute("UPDATE runs SET verified = ?, verified_at = ? WHERE id = ?",
                             (int(ok), iso(_now()), ident))

    def mark_absent(self, ident: str) -> None:
        """The run's object was found missing (the next refresh confirms or undoes it)."""
        with self._lock:
            self._db.execute("UPDATE runs SET present = 0 WHERE id = ?", (ident,))

    def facets(self) -> dict[str, list[str]]:
        """Sources, statuses and field names present in the index (the UI's filter choices)."""
        with self._lock:
            return {
                "sources": [r[0] for r in self._db.execute(
                    "SELECT DISTINCT source FROM runs ORDER BY 1")],
                "statuses": [r[0] for r in self._db.execute(
                    "SELECT DISTINCT status FROM runs ORDER BY 1")],
                "fields": [r[0] for r in self._db.execute(
                    "SELECT DISTINCT name FROM run_fields ORDER BY 1")],
            }

    def skipped(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._db.execute("SELECT manifest_path, why FROM skipped ORDER BY 1"))


def _epoch(value: Any) -> float | None:
    try:
        parsed = parse_time(value)
    except ValueError:
        return None
    return parsed.timestamp() if parsed else None


def _now() -> Any:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)
