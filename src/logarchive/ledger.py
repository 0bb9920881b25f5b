"""The ledger: what was delivered where, and where an interrupted delivery stopped.

Embedded default: SQLite (WAL, synchronous=FULL) under ``state_dir``. Everything the engine
needs goes through :class:`Ledger`, so a shared store can replace SQLite for sharded exports.
Per-run claims between concurrent processes are file locks (:class:`RunLock`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from logarchive.errors import ConfigError, LedgerError
from logarchive.runs import iso
from logarchive.secrets import redact
from logarchive.status import RunStatus

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    run_key     TEXT NOT NULL,
    sink        TEXT NOT NULL,
    source      TEXT NOT NULL,
    fields      TEXT NOT NULL,
    status      TEXT NOT NULL,
    object      TEXT,
    sha256      TEXT,
    size        INTEGER,
    lines       INTEGER,
    accepted    INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    completed   TEXT,
    updated_at  TEXT NOT NULL,
    delivered_at TEXT,
    PRIMARY KEY (run_key, sink)
);
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    time    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    sink    TEXT,
    run_key TEXT,
    detail  TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Delivery:
    run_key: str
    sink: str
    source: str
    fields: dict[str, str]
    status: str
    object: str | None
    sha256: str | None
    size: int | None
    lines: int | None
    accepted: int
    attempts: int
    error: str | None
    completed: str | None
    updated_at: str
    delivered_at: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Ledger:
    """Interface of the delivery ledger."""

    path: Path | None = None
    """Where the ledger is stored, for messages (None: not in a file)."""
    created: bool = False
    """True when this process created the ledger empty (new or lost state directory): nothing
    is known delivered, so record sinks, which cannot be asked what they hold, get every run
    again. The export warns about it."""

    def get(self, run_key: str, sink: str) -> Delivery | None: ...
    def start(self, run: Any, sink: str) -> Delivery: ...
    def set_accepted(self, run_key: str, sink: str, ordinal: int) -> None: ...
    def delivered(self, run: Any, sink: str, *, object: str | None, sha256: str | None,
                  size: int | None, lines: int | None, accepted: int = 0) -> None: ...
    def failed(self, run: Any, sink: str, error: str, *,
               status: RunStatus = RunStatus.FAILED) -> None: ...
    def deliveries(self, sink: str | None = None) -> Iterator[Delivery]: ...
    def event(self, kind: str, *, sink: str | None = None, run_key: str | None = None,
              **detail: Any) -> None: ...
    def close(self) -> None: ...


class SQLiteLedger(Ledger):
    """The embedded ledger: ``<state_dir>/ledger.sqlite3``."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / "ledger.sqlite3"
        self.created = not self.path.exists()  # a new (or lost) ledger: nothing is known delivered
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                                 (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise LedgerError(f"{self.path}: written by a newer logarchive (schema {row[0]})")
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"ledger {self.path} cannot be opened: {exc}. If it is corrupt, move it away and "
                "run `logarchive ledger rebuild` to restore it from the archive manifests."
            ) from None
        except OSError as exc:  # a config error (exit 2): the setting names a place we cannot use
            raise ConfigError(f"{self.state_dir} is not usable: {exc.strerror}",
                              key="logarchive.state_dir") from None
        self._lock = threading.Lock()

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        try:
            with self._lock:
                self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger {self.path}: write failed: {exc}") from None

    def get(self, run_key: str, sink: str) -> Delivery | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM deliveries WHERE run_key=? AND sink=?", (run_key, sink)
            ).fetchone()
        return None if row is None else _delivery(row)

    def start(self, run: Any, sink: str) -> Delivery:
        now = _now()
        self._write(
            """INSERT INTO deliveries (run_key, sink, source, fields, status, accepted, attempts,
                   completed, updated_at)
               VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?)
               ON CONFLICT (run_key, sink) DO UPDATE SET
                   status=excluded.status, attempts=attempts+1, error=NULL,
                   updated_at=excluded.updated_at""",
            (run.key, sink, run.source, json.dumps(run.fields), RunStatus.IN_PROGRESS,
             iso(run.completed), now),
        )
        found = self.get(run.key, sink)
        assert found is not None
        return found

    def set_accepted(self, run_key: str, sink: str, ordinal: int) -> None:
        self._write(
            "UPDATE deliveries SET accepted=?, updated_at=? WHERE run_key=? AND sink=?",
            (ordinal, _now(), run_key, sink),
        )

    def delivered(self, run: Any, sink: str, *, object: str | None, sha256: str | None,
                  size: int | None, lines: int | None, accepted: int = 0) -> None:
        now = _now()
        self._write(
            """INSERT INTO deliveries (run_key, sink, source, fields, status, object, sha256, size,
                   lines, accepted, attempts, completed, updated_at, delivered_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)
               ON CONFLICT (run_key, sink) DO UPDATE SET
                   status=excluded.status, object=excluded.object, sha256=excluded.sha256,
                   size=excluded.size, lines=excluded.lines, accepted=excluded.accepted,
                   error=NULL, updated_at=excluded.updated_at,
                   delivered_at=excluded.delivered_at""",
            (run.key, sink, run.source, json.dumps(run.fields), RunStatus.DELIVERED, object, sha256,
             size, lines, accepted, iso(run.completed), now, now),
        )

    def failed(self, run: Any, sink: str, error: str, *,
               status: RunStatus = RunStatus.FAILED) -> None:
        self._write(
            """INSERT INTO deliveries (run_key, sink, source, fields, status, attempts, error,
                   completed, updated_at)
               VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)
               ON CONFLICT (run_key, sink) DO UPDATE SET
                   status=excluded.status, error=excluded.error, updated_at=excluded.updated_at""",
            (run.key, sink, run.source, json.dumps(run.fields), status, redact(error)[:2000],
             iso(run.completed), _now()),
        )

    def deliveries(self, sink: str | None = None) -> Iterator[Delivery]:
        with self._lock:
            if sink is None:
                rows = self._db.execute("SELECT * FROM deliveries ORDER BY run_key, sink").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM deliveries WHERE sink=? ORDER BY run_key", (sink,)
                ).fetchall()
        return iter([_delivery(r) for r in rows])

    def event(self, kind: str, *, sink: str | None = None, run_key: str | None = None,
              **detail: Any) -> None:
        self._write(
            "INSERT INTO events (time, kind, sink, run_key, detail) VALUES (?, ?, ?, ?, ?)",
            (_now(), kind, sink, run_key, redact(json.dumps(detail, default=str))),
        )

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT time, kind, sink, run_key, detail FROM events"
                + (" WHERE kind=?" if kind else "") + " ORDER BY id",
                (kind,) if kind else (),
            ).fetchall()
        return [
            {"time": t, "kind": k, "sink": s, "run_key": r, **json.loads(d)}
            for t, k, s, r, d in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _delivery(row: tuple[Any, ...]) -> Delivery:
    (run_key, sink, source, fields, status, obj, sha, size, lines, accepted, attempts, error,
     completed, updated_at, delivered_at) = row
    return Delivery(run_key, sink, source, json.loads(fields), status, obj, sha, size, lines,
                    accepted, attempts, error, completed, updated_at, delivered_at)


@contextmanager
def object_lock(state_dir: Path, sink: str, path: str) -> Iterator[None]:
    """Serialise the check-then-commit of one object name across threads and processes, so two
    runs that a template maps to the same name cannot both see it free."""
    digest = hashlib.sha256(f"{sink}\0{path}".encode()).hexdigest()[:32]
    lock_path = Path(state_dir) / "locks" / f"object-{digest}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class RunLock:
    """An exclusive, non-blocking claim on one run across processes (``fcntl.flock``).

    The kernel drops the lock when the process dies, even by SIGKILL, so a crashed export never
    leaves a run claimed forever.
    """

    def __init__(self, state_dir: Path, key_hash: str) -> None:
        self.path = Path(state_dir) / "locks" / f"{key_hash}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
