"""The ledger: what was delivered where, and where an interrupted delivery stopped.

Embedded default: SQLite (WAL, synchronous=FULL) under ``state_dir``; ``[logarchive] ledger =
"postgresql://..."`` shares one ledger between hosts (:mod:`logarchive.ledger_pg`, the
``postgres`` extra). Everything the engine needs goes through :class:`Ledger`, opened by
:func:`open_ledger`: the records, and the claims that keep two exports off one run
(:meth:`Ledger.claim`) and off one object name (:meth:`Ledger.object_lock`). SQLite's claims are
file locks under ``state_dir`` (:class:`RunLock`), dropped by the kernel when their process dies;
PostgreSQL's are rows with a lease (docs/scaling.md).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import importlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from logarchive.errors import ConfigError, LedgerError, StateDirFull, StateDirUnusable
from logarchive.runs import iso
from logarchive.secrets import database_place, redact
from logarchive.status import ExitCode, RunStatus

if TYPE_CHECKING:
    from logarchive.config import Config

SCHEMA_VERSION = 2  # 2: deliveries.lines_skipped

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
    lines_skipped INTEGER NOT NULL DEFAULT 0,
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
    lines_skipped: int = 0
    """Lines the sink does not send by design (Splunk raw: blank lines), counted in ``lines``."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Delivered:
    """A ``delivered`` record waiting for a group's transaction (:meth:`Ledger.delivered_many`):
    written through ``ledger``, the claimed view of ``run`` that fences its writes."""

    ledger: Ledger
    run: Any
    sink: str
    values: dict[str, Any]
    """:meth:`Ledger.delivered`'s keyword arguments."""


class Claim:
    """This process's claim on one run: while it holds, no other export delivers the run.

    Record the run's delivery through :attr:`ledger`. Where a claim can be lost (a lease that
    ran out and was taken over by another export), that ledger checks the claim in the same
    transaction as each write of this run and raises :class:`~logarchive.errors.LeaseLost`
    instead of writing; a file lock cannot be lost while its process lives."""

    ledger: Ledger

    def release(self) -> None:
        """Give the run back (a claim already lost is left to its new owner)."""
        raise NotImplementedError


class Ledger:
    """Interface of the delivery ledger."""

    path: Path | None = None
    """Where the ledger is stored, for messages (None: not in a file)."""
    created: bool = False
    """True when this process created the ledger empty (new or lost state directory): nothing
    is known delivered, so record sinks, which cannot be asked what they hold, get every run
    again. The export warns about it."""

    @property
    def where(self) -> str | None:
        """Where the ledger is, for messages (no credentials)."""
        return None if self.path is None else str(self.path)

    def get(self, run_key: str, sink: str) -> Delivery | None: ...
    def start(self, run: Any, sink: str) -> Delivery: ...
    def set_accepted(self, run_key: str, sink: str, ordinal: int) -> None: ...
    def delivered(self, run: Any, sink: str, *, object: str | None, sha256: str | None,
                  size: int | None, lines: int | None, accepted: int = 0,
                  status: RunStatus = RunStatus.DELIVERED, lines_skipped: int = 0) -> None: ...
    def failed(self, run: Any, sink: str, error: str, *,
               status: RunStatus = RunStatus.FAILED) -> None: ...

    def delivered_many(self, rows: list[Delivered]) -> list[Delivered]:
        """Write every row's ``delivered`` record in ONE transaction (a group commit); returns
        the rows not written because their run's claim was lost (each checked in that same
        transaction)."""
        raise NotImplementedError

    def deliveries(self, sink: str | None = None) -> Iterator[Delivery]: ...
    def event(self, kind: str, *, sink: str | None = None, run_key: str | None = None,
              **detail: Any) -> None: ...
    def events(self, kind: str | None = None) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...

    def claim(self, run: Any) -> Claim | None:
        """Claim ``run`` for this process; None when another export holds it."""
        raise NotImplementedError

    def object_lock(self, sink: str, path: str) -> AbstractContextManager[None]:
        """Serialise the check-then-commit of one object name between every export that shares
        this ledger, so two runs that a template maps to the same name cannot both see it
        free."""
        raise NotImplementedError

    def check_claim(self) -> None:
        """Raise :class:`~logarchive.errors.LeaseLost` when this is a claim's ledger and the
        claim was lost (checked between the chunks of a run); a ledger without a claim has
        nothing to lose."""


class SQLLedger(Ledger):
    """The records, in SQL that SQLite and PostgreSQL both run (``?`` placeholders): a backend
    supplies :meth:`_write`, :meth:`_fetch`, and may fence the writes of a claimed run in
    :meth:`_write_run`."""

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _write_run(self, run_key: str, sql: str, params: tuple[Any, ...], *,
                   sync: bool = True) -> None:
        """A write of ``run_key``'s records (the claim's fence goes here). ``sync=False``: the
        write need not be durable on its own (it is visible at once, and durable with the
        next durable commit)."""
        self._write(sql, params)

    def _write_group(self, writes: list[tuple[Ledger, str, str, tuple[Any, ...]]]
                     ) -> list[int]:
        """``(claimed ledger, run_key, sql, params)`` writes in one transaction; the indexes of
        those not written because their claim was lost."""
        raise NotImplementedError

    def get(self, run_key: str, sink: str) -> Delivery | None:
        rows = self._fetch(f"SELECT {_COLUMNS} FROM deliveries WHERE run_key=? AND sink=?",
                           (run_key, sink))
        return _delivery(rows[0]) if rows else None

    def start(self, run: Any, sink: str) -> Delivery:
        # Not worth an fsync of its own: a start lost to a crash leaves the run undelivered
        # either way, and the run's next durable write (resume point, delivered) syncs it.
        self._write_run(run.key, _START, (run.key, sink, run.source, json.dumps(run.fields),
                                          RunStatus.IN_PROGRESS, iso(run.completed), _now()),
                        sync=False)
        found = self.get(run.key, sink)
        assert found is not None
        return found

    def set_accepted(self, run_key: str, sink: str, ordinal: int) -> None:
        self._write_run(run_key,
                        "UPDATE deliveries SET accepted=?, updated_at=? WHERE run_key=? AND sink=?",
                        (ordinal, _now(), run_key, sink))

    def delivered(self, run: Any, sink: str, *, object: str | None, sha256: str | None,
                  size: int | None, lines: int | None, accepted: int = 0,
                  status: RunStatus = RunStatus.DELIVERED, lines_skipped: int = 0) -> None:
        self._write_run(run.key, _DELIVERED, _delivered_params(
            run, sink, _now(), object=object, sha256=sha256, size=size, lines=lines,
            accepted=accepted, status=status, lines_skipped=lines_skipped))

    def delivered_many(self, rows: list[Delivered]) -> list[Delivered]:
        now = _now()
        lost = self._write_group([(row.ledger, row.run.key, _DELIVERED,
                                   _delivered_params(row.run, row.sink, now, **row.values))
                                  for row in rows])
        return [rows[i] for i in lost]

    def failed(self, run: Any, sink: str, error: str, *,
               status: RunStatus = RunStatus.FAILED) -> None:
        self._write_run(run.key, _FAILED, (run.key, sink, run.source, json.dumps(run.fields),
                                           status, redact(error)[:2000], iso(run.completed),
                                           _now()))

    def deliveries(self, sink: str | None = None) -> Iterator[Delivery]:
        if sink is None:
            rows = self._fetch(f"SELECT {_COLUMNS} FROM deliveries ORDER BY run_key, sink")
        else:
            rows = self._fetch(
                f"SELECT {_COLUMNS} FROM deliveries WHERE sink=? ORDER BY run_key", (sink,))
        return iter([_delivery(r) for r in rows])

    def event(self, kind: str, *, sink: str | None = None, run_key: str | None = None,
              **detail: Any) -> None:
        self._write(
            "INSERT INTO events (time, kind, sink, run_key, detail) VALUES (?, ?, ?, ?, ?)",
            (_now(), kind, sink, run_key, redact(json.dumps(detail, default=str))),
        )

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        rows = self._fetch("SELECT time, kind, sink, run_key, detail FROM events"
                           + (" WHERE kind=?" if kind else "") + " ORDER BY id",
                           (kind,) if kind else ())
        return [
            {"time": t, "kind": k, "sink": s, "run_key": r, **json.loads(d)}
            for t, k, s, r, d in rows
        ]


def _delivered_params(run: Any, sink: str, now: str, *, object: str | None,
                      sha256: str | None, size: int | None, lines: int | None,
                      accepted: int = 0, status: RunStatus = RunStatus.DELIVERED,
                      lines_skipped: int = 0) -> tuple[Any, ...]:
    return (run.key, sink, run.source, json.dumps(run.fields), status, object, sha256, size,
            lines, accepted, iso(run.completed), now, now, lines_skipped)


_COLUMNS = ("run_key, sink, source, fields, status, object, sha256, size, lines, accepted, "
            "attempts, error, completed, updated_at, delivered_at, lines_skipped")
_START = """INSERT INTO deliveries (run_key, sink, source, fields, status, accepted, attempts,
                completed, updated_at)
            VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?)
            ON CONFLICT (run_key, sink) DO UPDATE SET
                status=excluded.status, attempts=deliveries.attempts+1, error=NULL,
                updated_at=excluded.updated_at"""
_DELIVERED = """INSERT INTO deliveries (run_key, sink, source, fields, status, object, sha256,
                    size, lines, accepted, attempts, completed, updated_at, delivered_at,
                    lines_skipped)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)
                ON CONFLICT (run_key, sink) DO UPDATE SET
                    status=excluded.status, object=excluded.object, sha256=excluded.sha256,
                    size=excluded.size, lines=excluded.lines, accepted=excluded.accepted,
                    error=NULL, updated_at=excluded.updated_at,
                    delivered_at=excluded.delivered_at, lines_skipped=excluded.lines_skipped"""
_FAILED = """INSERT INTO deliveries (run_key, sink, source, fields, status, attempts, error,
                 completed, updated_at)
             VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)
             ON CONFLICT (run_key, sink) DO UPDATE SET
                 status=excluded.status, error=excluded.error, updated_at=excluded.updated_at"""


class SQLiteLedger(SQLLedger):
    """The embedded ledger: ``<state_dir>/ledger.sqlite3``."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / "ledger.sqlite3"
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            if not os.access(self.state_dir, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "not writable", str(self.state_dir))
            (self.state_dir / "locks").mkdir(exist_ok=True)
            # Overlapping exports (cron) on a fresh state_dir: one creates and migrates the
            # ledger, the others wait their turn instead of failing with "database is locked".
            with _directory_lock(self.state_dir):
                self.created = not self.path.exists()  # new (or lost): nothing known delivered
                self._db = self._open()
        except OSError as exc:  # before any run: a configuration error (exit 2)
            raise StateDirUnusable(state_error(self.state_dir, exc)) from None
        self._lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        """Connect, then create or migrate the schema (the caller holds the open lock)."""
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                             isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise LedgerError(f"{self.path}: written by a newer logarchive (schema {row[0]})")
            if row is None or int(row[0]) < SCHEMA_VERSION:
                _migrate(db)
        except sqlite3.DatabaseError as exc:
            advice = _corruption_advice(db)
            db.close()
            raise LedgerError(f"ledger {self.path} cannot be opened: {exc}. {advice}") from None
        except BaseException:
            db.close()
            raise
        return db

    def _write(self, sql: str, params: tuple[Any, ...], sync: bool = True) -> None:
        try:
            with self._lock:
                if sync:
                    self._db.execute(sql, params)
                    return
                # WAL with synchronous=NORMAL: committed and visible, not fsynced; the next
                # synchronous=FULL commit fsyncs the log up to and including it.
                self._db.execute("PRAGMA synchronous=NORMAL")
                try:
                    self._db.execute(sql, params)
                finally:
                    self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger {self.path}: write failed: {exc}") from None

    def _write_run(self, run_key: str, sql: str, params: tuple[Any, ...], *,
                   sync: bool = True) -> None:
        self._write(sql, params, sync)  # a file lock cannot be lost: nothing to fence

    def _write_group(self, writes: list[tuple[Ledger, str, str, tuple[Any, ...]]]
                     ) -> list[int]:
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for _, _, sql, params in writes:
                        self._db.execute(sql, params)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger {self.path}: write failed: {exc}") from None
        return []

    def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def claim(self, run: Any) -> Claim | None:
        lock = RunLock(self.state_dir, run.key_hash)
        try:
            claimed = lock.acquire()
        except OSError as exc:  # e.g. a file named `locks` in state_dir
            raise LedgerError(state_error(self.state_dir, exc)) from None
        return _FileClaim(self, lock) if claimed else None

    def object_lock(self, sink: str, path: str) -> AbstractContextManager[None]:
        return object_lock(self.state_dir, sink, path)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _FileClaim(Claim):
    """A :class:`RunLock`: held until released or until its process dies."""

    def __init__(self, ledger: Ledger, lock: RunLock) -> None:
        self.ledger = ledger
        self._lock = lock

    def release(self) -> None:
        self._lock.release()


class LedgerUnusable(LedgerError):
    """The ledger's database cannot be used at all when the export starts (unknown host, wrong
    password, no such database): nothing was done, exit status 2."""

    exit_code: int = ExitCode.USAGE


class LedgerUnreachable(LedgerError):
    """The ledger's database stopped answering during the export: no other run starts, the
    summary says what was exported (exit status 1)."""


def open_ledger(config: Config) -> Ledger:
    """The ledger ``config`` names: PostgreSQL for a ``ledger`` URL, else SQLite in
    ``state_dir``; created (or migrated) if need be."""
    url = config.settings.ledger
    if url is None:
        return SQLiteLedger(config.state_dir)
    found = _postgres().open_ledger(url.get_secret_value(),
                                    lease_seconds=config.settings.lease_seconds)
    assert found is not None
    return found


def existing_ledger(config: Config) -> Ledger | None:
    """The config's ledger if there is one; None, and nothing created, if not (read-only use)."""
    url = config.settings.ledger
    if url is None:
        path = config.state_dir / "ledger.sqlite3"
        return SQLiteLedger(config.state_dir) if path.exists() else None
    return _postgres().open_ledger(url.get_secret_value(),
                                   lease_seconds=config.settings.lease_seconds, create=False)


def ledger_place(config: Config) -> str:
    """Where ``config``'s ledger is, for messages: its database URL without credentials, or
    its state_dir."""
    url = config.settings.ledger
    return str(config.state_dir) if url is None else database_place(url.get_secret_value())


def _postgres() -> Any:
    """:mod:`logarchive.ledger_pg`, imported when a config names a PostgreSQL ledger."""
    try:
        ledger_pg = importlib.import_module("logarchive.ledger_pg")
    except ImportError as exc:
        raise ConfigError(
            f"the PostgreSQL ledger needs the postgres extra ({exc.name or exc} is not "
            "installed): pip install 'logarchive[postgres]'", key="logarchive.ledger") from None
    return ledger_pg


def state_error(state_dir: Path, exc: OSError) -> str:
    """One line for an OSError on the state directory, naming the path that failed."""
    where = exc.filename if exc.filename is not None else state_dir
    reason = "exists and is not a directory" if isinstance(exc, FileExistsError) else (
        exc.strerror or str(exc))
    return f"state_dir {state_dir} is not usable: {where}: {reason}"


@contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive, blocking ``flock`` on ``directory`` itself (released by the kernel if we
    die). Locking the folder needs no file, so it leaves nothing behind and works on a state
    filesystem that has no inode left."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _corruption_advice(db: sqlite3.Connection) -> str:
    """Advise moving the ledger away only when SQLite itself says it is corrupt: a lost ledger
    re-delivers every run to aggregators, so a busy or unreadable ledger is never moved."""
    try:
        verdict = db.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.DatabaseError as exc:
        if "malformed" not in str(exc) and "not a database" not in str(exc):
            return (f"Its integrity could not be checked ({exc}): do not move it away unless "
                    "`PRAGMA integrity_check` reports corruption; retry when it is free.")
        verdict = (str(exc),)
    if verdict and verdict[0] == "ok":
        return "The integrity check passed: do not move it away; retry when it is free."
    return ("The integrity check says it is corrupt: move it away and run `logarchive ledger "
            "rebuild` to restore it from the archive manifests (aggregators cannot be rebuilt: "
            "runs delivered to them are sent again).")


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a ledger written by an older logarchive to :data:`SCHEMA_VERSION` (in place: a
    column added with its default; an older logarchive refuses the newer schema)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(deliveries)")}
    if "lines_skipped" not in columns:  # schema 1 -> 2
        db.execute("ALTER TABLE deliveries ADD COLUMN lines_skipped INTEGER NOT NULL DEFAULT 0")
    db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))


def _delivery(row: tuple[Any, ...]) -> Delivery:
    (run_key, sink, source, fields, status, obj, sha, size, lines, accepted, attempts, error,
     completed, updated_at, delivered_at, lines_skipped) = row
    return Delivery(run_key, sink, source, json.loads(fields), status, obj, sha, size, lines,
                    accepted, attempts, error, completed, updated_at, delivered_at,
                    lines_skipped)


_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def state_dir_full(state_dir: str | os.PathLike[str], error: BaseException) -> StateDirFull | None:
    """The error to report when ``error`` (or what caused it: an ``OSError`` or a SQLite error)
    is the filesystem of ``state_dir`` out of space or inodes; None for any other error."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in _FULL_ERRNOS:
            break
        if getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            break
        cause = cause.__cause__ or cause.__context__
    try:
        stats = os.statvfs(state_dir)
    except OSError:
        stats = None
    no_inodes = stats is not None and stats.f_files > 0 and stats.f_favail == 0
    no_space = stats is not None and stats.f_bavail == 0
    if cause is None and not (no_inodes or no_space):
        return None
    what = ("no inodes left" if no_inodes else "no space left" if no_space
            else "no space or inodes left")  # ENOSPC is both; some may be free again by now
    return StateDirFull(
        f"state_dir {state_dir} is full ({what}): the ledger and the run locks cannot be "
        "written, so the export stopped. What the ledger records as delivered is archived; "
        "the next export delivers the rest. Free space and inodes there, or set "
        "[logarchive] state_dir to a larger filesystem."
    )


def _lock_file(path: Path, blocking: bool) -> int | None:
    """Open and ``flock`` the lock file ``path``; its descriptor, or None when another process
    holds it (``blocking=False``).

    Lock files are removed by their holder on release (:func:`_unlock_file`), so the state
    directory holds a lock file only while a run or an object is being delivered. The usual race
    of unlink after flock is handled here: a process that got the lock on a file its holder has
    just unlinked finds that the path no longer names its inode, and tries again on a new file.
    """
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise state_dir_full(path.parent.parent, exc) or exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            return fd
        os.close(fd)  # the previous holder removed this file after we opened it


def _unlock_file(path: Path, fd: int) -> None:
    """Remove the lock file, then release it: whoever waits on the old inode retries."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def object_lock(state_dir: Path, sink: str, path: str) -> Iterator[None]:
    """Serialise the check-then-commit of one object name across threads and processes, so two
    runs that a template maps to the same name cannot both see it free."""
    digest = hashlib.sha256(f"{sink}\0{path}".encode()).hexdigest()[:32]
    lock_path = Path(state_dir) / "locks" / f"object-{digest}.lock"
    fd = _lock_file(lock_path, blocking=True)
    assert fd is not None
    try:
        yield
    finally:
        _unlock_file(lock_path, fd)


class RunLock:
    """An exclusive, non-blocking claim on one run across processes (``fcntl.flock``).

    The kernel drops the lock when the process dies, even by SIGKILL, so a crashed export never
    leaves a run claimed forever (its lock file stays until the next holder releases it).
    """

    def __init__(self, state_dir: Path, key_hash: str) -> None:
        self.path = Path(state_dir) / "locks" / f"{key_hash}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        self._fd = _lock_file(self.path, blocking=False)
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            _unlock_file(self.path, self._fd)
            self._fd = None
