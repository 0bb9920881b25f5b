"""The PostgreSQL ledger: one database shared by every host that exports the same sources.

``[logarchive] ledger = "postgresql://USER:${PASSWORD}@HOST/DATABASE"`` (the ``postgres`` extra:
psycopg 3 and its pool; imported only when a config names such a ledger). The records are the
SQLite ledger's, written by the same SQL (:class:`~logarchive.ledger.SQLLedger`) into the schema
``logarchive`` of that database. Claims are rows of ``logarchive.claims`` with an owner and a
lease, on the database's clock (the hosts' clocks play no part):

- a run is claimed with one ``INSERT ... ON CONFLICT (run_key) DO UPDATE ... WHERE expires_at <
  clock_timestamp()``: a run nobody holds, or whose holder's lease ran out, goes to exactly one
  of the exports that ask at once (the row lock serialises them);
- a live export renews its claims every third of ``lease_seconds`` (one thread per ledger); a
  dead one's lease runs out, and the next export takes the run over and resumes it at the last
  aggregator position recorded;
- every write of a claimed run's records (start, resume point, delivered, failed) first renews
  the claim ``WHERE owner = <this claim>`` in the same transaction: when another export has
  taken it over, nothing is written and the run stops with :class:`~logarchive.errors.LeaseLost`.
  A lease that ran out but was not taken over is still held: the row lock makes the check and
  the write one step, so a claimant waits for the write and then finds the lease renewed;
- object names are serialised with transaction-scoped advisory locks, tried every half second;
  one held for three leases belongs to a stuck writer: the run fails at that sink (next export).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from functools import lru_cache
from typing import Any

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from logarchive.errors import LeaseLost, LedgerError, LogarchiveError
from logarchive.ledger import (
    SCHEMA_VERSION, Claim, Ledger, LedgerUnreachable, LedgerUnusable, SQLLedger,
)
from logarchive.secrets import database_place

log = structlog.get_logger("logarchive")
if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # shown with -vv only: the
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # ledger's errors say it all

_TABLES = """
CREATE SCHEMA IF NOT EXISTS logarchive;
CREATE TABLE IF NOT EXISTS logarchive.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logarchive.deliveries (
    run_key      TEXT COLLATE "C" NOT NULL,
    sink         TEXT COLLATE "C" NOT NULL,
    source       TEXT NOT NULL,
    fields       TEXT NOT NULL,
    status       TEXT NOT NULL,
    object       TEXT,
    sha256       TEXT,
    size         BIGINT,
    lines        BIGINT,
    accepted     BIGINT NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    completed    TEXT,
    updated_at   TEXT NOT NULL,
    delivered_at TEXT,
    lines_skipped BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_key, sink)
);
CREATE TABLE IF NOT EXISTS logarchive.events (
    id      BIGSERIAL PRIMARY KEY,
    time    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    sink    TEXT,
    run_key TEXT,
    detail  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS logarchive.claims (
    run_key    TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
"""
MIGRATIONS: dict[int, str] = {
    2: "ALTER TABLE logarchive.deliveries ADD COLUMN IF NOT EXISTS lines_skipped BIGINT NOT NULL "
       "DEFAULT 0",
}
"""``{version: SQL}``: what brings a ledger at ``version - 1`` to ``version`` (the same steps as
the SQLite ledger's, so both backends share :data:`~logarchive.ledger.SCHEMA_VERSION`)."""

CONNECT_TIMEOUT = 5
"""Seconds to connect (libpq's ``connect_timeout``; a ``connect_timeout`` in the URL wins)."""
POOL_TIMEOUT = 5
"""Seconds to wait for a pooled connection before checking whether the database answers."""
LOCK_WAIT = 0.5
"""Seconds between two tries of a busy object lock."""

_SCHEMA_LOCK = int.from_bytes(b"logarchv", "big")  # advisory lock held while creating/migrating
_OBJECT_LOCKS = int.from_bytes(b"loga", "big")      # first key of every object lock

_CLAIM = """
WITH previous AS (SELECT owner FROM claims WHERE run_key = %(run)s)
INSERT INTO claims AS c (run_key, owner, claimed_at, expires_at)
VALUES (%(run)s, %(owner)s, clock_timestamp(), clock_timestamp() + %(lease)s)
ON CONFLICT (run_key) DO UPDATE SET owner = EXCLUDED.owner, claimed_at = EXCLUDED.claimed_at,
    expires_at = EXCLUDED.expires_at
WHERE c.expires_at < clock_timestamp()
RETURNING (SELECT owner FROM previous)"""
_FENCE = """UPDATE claims SET expires_at = clock_timestamp() + %s
            WHERE run_key = %s AND owner = %s RETURNING 1"""
_RENEW = """UPDATE claims SET expires_at = clock_timestamp() + %s
            WHERE owner = ANY(%s) RETURNING owner"""
_RELEASE = "DELETE FROM claims WHERE run_key = %s AND owner = %s"


def open_ledger(url: str, *, lease_seconds: int = 60,
                create: bool = True) -> PostgresLedger | None:
    """The ledger in the database at ``url``, its schema created or migrated; with ``create``
    false, None when the database holds no ledger (nothing is created)."""
    database = Database(url, lease_seconds)
    created = database.prepare(create)
    if created is None:
        return None
    database.open_pool()
    return PostgresLedger(database, created)


class Database:
    """The connection pool, the live claims and their renewer, shared by a ledger and the
    claimed views of it (:class:`ClaimedLedger`)."""

    def __init__(self, url: str, lease_seconds: int) -> None:
        self.where = database_place(url)
        self.lease = timedelta(seconds=lease_seconds)
        params = {"application_name": "logarchive", "connect_timeout": CONNECT_TIMEOUT}
        try:
            params.update(conninfo_to_dict(url))
        except psycopg.ProgrammingError as exc:
            raise LedgerError(f"ledger {self.where}: not a usable URL: {_one_line(exc)}") from None
        self.conninfo = make_conninfo("", **params)
        self.pool: ConnectionPool | None = None
        self.live: dict[str, PgClaim] = {}  # owner: claim
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.renewer: threading.Thread | None = None
        self.down: str | None = None  # why the database stopped answering (then fail fast)

    def prepare(self, create: bool) -> bool | None:
        """Create or migrate the schema under an advisory lock (exports starting at once
        against a new database wait for each other); whether it was created, None when
        there is none and ``create`` is false."""
        try:
            with psycopg.connect(self.conninfo) as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s::bigint)", (_SCHEMA_LOCK,))
                found = conn.execute("SELECT to_regclass('logarchive.deliveries')").fetchone()
                exists = found is not None and found[0] is not None
                if not exists:
                    if not create:
                        return None
                    conn.execute(_TABLES)  # after that, only reads and writes of its tables
                self._migrate(conn, exists)
                return not exists
        except psycopg.Error as exc:
            raise self.unusable(exc) from None

    def unusable(self, exc: BaseException) -> LedgerUnusable:
        return LedgerUnusable(f"ledger {self.where} cannot be opened: {_one_line(exc)}")

    def _migrate(self, conn: psycopg.Connection[Any], existed: bool) -> None:
        row = conn.execute("SELECT value FROM logarchive.meta WHERE key = 'schema'").fetchone()
        version = int(row[0]) if row else (1 if existed else SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            raise LedgerError(f"ledger {self.where}: written by a newer logarchive "
                              f"(schema {version})")
        if row is not None and version == SCHEMA_VERSION:
            return
        for step in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[step])
        conn.execute("INSERT INTO logarchive.meta VALUES ('schema', %s) ON CONFLICT (key) "
                     "DO UPDATE SET value = EXCLUDED.value", (str(SCHEMA_VERSION),))

    def open_pool(self) -> None:
        self.pool = ConnectionPool(self.conninfo, min_size=1, max_size=16, open=False,
                                   configure=_configure, check=ConnectionPool.check_connection,
                                   name="logarchive-ledger", timeout=POOL_TIMEOUT)
        try:
            self.pool.open(wait=True, timeout=30)
        except psycopg.Error as exc:
            self.pool.close()
            raise self.unusable(exc) from None

    @contextmanager
    def transaction(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction, committed at the end of the block (rolled
        back if it raises); database errors become :class:`LedgerError`."""
        assert self.pool is not None
        if self.down is not None:
            raise LedgerUnreachable(f"ledger {self.where}: {what} not tried: {self.down}")
        try:
            with self._connection() as conn:
                yield conn
        except psycopg.Error as exc:
            message = f"ledger {self.where}: {what} failed: {_one_line(exc)}"
            if not _unreachable(exc):
                raise LedgerError(message) from None
            self.down = f"the database stopped answering ({_one_line(exc)})"
            raise LedgerUnreachable(message) from None

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction; waiting longer than :data:`POOL_TIMEOUT` for
        one is a failure only when the database refuses a new connection too (16 busy is not)."""
        assert self.pool is not None
        while True:
            try:
                conn = self.pool.getconn()
                break
            except PoolTimeout:
                with psycopg.connect(self.conninfo):  # raises when the database is gone
                    pass
        try:
            with conn:  # commits, or rolls back if the block raises (a pooled one stays open)
                yield conn
        finally:
            self.pool.putconn(conn)

    def track(self, claim: PgClaim) -> None:
        with self.lock:
            self.live[claim.owner] = claim
            if self.renewer is None:
                self.renewer = threading.Thread(target=self._renew_forever, daemon=True,
                                                name="ledger-lease-renewer")
                self.renewer.start()

    def release(self, claim: PgClaim) -> None:
        with self.lock:
            self.live.pop(claim.owner, None)
        try:
            with self.transaction("claim release") as conn:
                conn.execute(_RELEASE, (claim.run_key, claim.owner))
        except LedgerError as exc:  # its lease runs out: the next export takes the run then
            log.warning("claim_release_failed", run=claim.run_key, error=str(exc))

    def _renew_forever(self) -> None:
        interval = self.lease.total_seconds() / 3
        while not self.closed.wait(interval):
            with self.lock:
                owners = list(self.live)
            if not owners:
                continue
            try:
                with self.transaction("lease renewal") as conn:
                    kept = {row[0] for row in conn.execute(_RENEW, (self.lease, owners))}
            except LedgerError as exc:  # the writes' own fence decides; try again soon
                log.warning("lease_renewal_failed", error=str(exc))
                continue
            with self.lock:
                lost = [self.live[o] for o in owners if o not in kept and o in self.live]
            for claim in lost:
                claim.lose()

    def object_lock(self, sink: str, path: str) -> AbstractContextManager[None]:
        digest = hashlib.sha256(f"{sink}\0{path}".encode()).digest()
        return self._advisory_lock(int.from_bytes(digest[:4], "big", signed=True))

    @contextmanager
    def _advisory_lock(self, key: int) -> Iterator[None]:
        """The object's advisory lock, tried every :data:`LOCK_WAIT` seconds (each wait
        logged); after three leases the writer holding it is stuck (paused, cut off: a live
        one keeps its lease): the run fails at this sink and the next export tries again."""
        give_up = 3 * self.lease.total_seconds()
        waited = 0.0
        while True:
            with self.transaction("object lock") as conn:
                taken = conn.execute("SELECT pg_try_advisory_xact_lock(%s::int4, %s::int4)",
                                     (_OBJECT_LOCKS, key)).fetchone()
                if taken is not None and taken[0]:
                    yield
                    return
            if waited >= give_up or self.closed.is_set():
                raise LogarchiveError(
                    f"another export has held this object's lock for {waited:.0f} s (3 x "
                    "lease_seconds) without finishing: it is paused or cut off from the "
                    "database; the next export tries again")
            if waited % 30 == 0:  # at the first wait, then every 30 s
                log.warning("object_lock_wait", waited=waited, give_up_after=give_up,
                            detail="another export writes the same object; waiting for it")
            time.sleep(LOCK_WAIT)
            waited += LOCK_WAIT

    def close(self) -> None:
        self.closed.set()
        if self.renewer is not None:
            self.renewer.join()
        if self.pool is not None:
            self.pool.close()


class PostgresLedger(SQLLedger):
    """The shared ledger (see the module docstring)."""

    def __init__(self, database: Database, created: bool = False) -> None:
        self._db = database
        self.created = created

    @property
    def where(self) -> str:
        return self._db.where

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._db.transaction("write") as conn:
            conn.execute(_pg(sql), params)

    def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._db.transaction("read") as conn:
            return conn.execute(_pg(sql), params).fetchall()

    def _write_group(self, writes: list[tuple[Ledger, str, str, tuple[Any, ...]]]
                     ) -> list[int]:
        lost = []
        with self._db.transaction("group write") as conn:
            for i, (ledger, run_key, sql, params) in enumerate(writes):
                assert isinstance(ledger, PostgresLedger)
                if ledger._fenced(conn, run_key):
                    conn.execute(_pg(sql), params)
                else:
                    lost.append(i)
        return lost

    def _fenced(self, conn: psycopg.Connection[Any], run_key: str) -> bool:
        """Check (and renew) this view's claim on ``run_key`` in ``conn``'s transaction; False
        when it was lost. An unclaimed view has nothing to check."""
        return True

    def claim(self, run: Any) -> Claim | None:
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        with self._db.transaction("claim") as conn:
            row = conn.execute(_CLAIM, {"run": run.key, "owner": owner,
                                        "lease": self._db.lease}).fetchone()
        if row is None:
            return None
        if row[0] is not None:
            log.info("run_taken_over", run=run.key, previous_owner=row[0],
                     reason="its lease ran out")
        claim = PgClaim(self._db, run.key, owner)
        self._db.track(claim)
        return claim

    def object_lock(self, sink: str, path: str) -> AbstractContextManager[None]:
        return self._db.object_lock(sink, path)

    def close(self) -> None:
        self._db.close()


class PgClaim(Claim):
    """A row of ``logarchive.claims`` owned by this export (``host:pid:token``)."""

    def __init__(self, database: Database, run_key: str, owner: str) -> None:
        self.run_key = run_key
        self.owner = owner
        self.lost = threading.Event()
        self.ledger = ClaimedLedger(database, self)
        self._db = database

    def lose(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            log.warning("run_claim_lost", run=self.run_key, owner=self.owner)

    def error(self) -> LeaseLost:
        return LeaseLost(
            f"run {self.run_key}: another export took it over after this export's lease "
            f"({self._db.lease.total_seconds():.0f} s, lease_seconds) ran out; that export "
            "delivers it and nothing more is recorded here (this process was paused or cut off "
            "from the database for longer than the lease)")

    def release(self) -> None:
        self._db.release(self)


class ClaimedLedger(PostgresLedger):
    """The ledger as seen by the export that holds ``claim``: each write of the claimed run
    checks and renews the claim in its own transaction first (see the module docstring)."""

    def __init__(self, database: Database, claim: PgClaim) -> None:
        super().__init__(database)
        self._claim = claim

    def _write_run(self, run_key: str, sql: str, params: tuple[Any, ...], *,
                   sync: bool = True) -> None:
        if run_key == self._claim.run_key:
            self.check_claim()
        with self._db.transaction("write") as conn:
            if not sync:  # durable with the next commit that waits for the WAL flush
                conn.execute("SET LOCAL synchronous_commit TO OFF")
            if not self._fenced(conn, run_key):
                raise self._claim.error()
            conn.execute(_pg(sql), params)

    def _fenced(self, conn: psycopg.Connection[Any], run_key: str) -> bool:
        if run_key != self._claim.run_key:  # not this claim's run: nothing to fence
            return True
        if self._claim.lost.is_set():
            return False
        held = conn.execute(_FENCE, (self._db.lease, run_key, self._claim.owner)).fetchone()
        if held is None:
            self._claim.lose()
        return held is not None

    def check_claim(self) -> None:
        if self._claim.lost.is_set():
            raise self._claim.error()

    def close(self) -> None:
        """The database belongs to the ledger this view came from: it closes it."""


def _unreachable(exc: psycopg.Error) -> bool:
    """Whether ``exc`` says the database is gone (no connection, connection lost, shutting
    down) rather than refusing one statement."""
    if isinstance(exc, PoolTimeout):
        return True
    return isinstance(exc, psycopg.OperationalError) and (
        exc.sqlstate is None or exc.sqlstate[:2] in ("08", "57"))


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection works in the ``logarchive`` schema."""
    conn.execute("SET search_path TO logarchive")
    conn.commit()


@lru_cache(maxsize=64)
def _pg(sql: str) -> str:
    """The shared SQL (``?`` placeholders) in psycopg's style (``%s``)."""
    return sql.replace("?", "%s")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
