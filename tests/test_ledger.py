"""The ledger suite, run on both backends (SQLite in state_dir, PostgreSQL from a ``ledger`` URL):
deliveries, aggregator resume points, gone runs, failures, events, schema versions, and the
claims that keep two exports off one run."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from logarchive import parse_config
from logarchive.errors import LeaseLost, LedgerError
from logarchive.ledger import Claim, Ledger, existing_ledger, open_ledger
from logarchive.runs import RunRef
from logarchive.status import RunStatus
from logarchive_testsupport.workspace import base_config

RUN = RunRef(source="logs", fields={"model_id": "m", "run_id": "r1"}, status="completed",
             completed=datetime(2026, 3, 13, 10, 0, tzinfo=timezone.utc))
OTHER = RunRef(source="logs", fields={"model_id": "m", "run_id": "r2"}, status="completed")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The ``[logarchive]`` table of a config naming a new ledger of each backend."""
    settings: dict[str, Any] = {"state_dir": str(tmp_path / "state")}
    if request.param == "postgresql":
        settings["ledger"] = request.getfixturevalue("pg_url")
    return settings


@pytest.fixture
def opener(backend: dict[str, Any], tmp_path: Path) -> Callable[..., Ledger]:
    def open_one(**settings: Any) -> Ledger:
        document = base_config(tmp_path)
        document["logarchive"].update(backend, **settings)
        return open_ledger(parse_config(document))
    return open_one


@pytest.fixture
def ledger(opener: Callable[..., Ledger]) -> Iterator[Ledger]:
    opened = opener()
    yield opened
    opened.close()


def test_a_new_ledger_is_created_empty_and_says_so_once(opener: Callable[..., Ledger]) -> None:
    first = opener()
    assert first.created and list(first.deliveries()) == []
    first.close()
    again = opener()
    assert not again.created
    again.close()


def test_a_delivery_goes_from_in_progress_to_delivered(ledger: Ledger) -> None:
    assert ledger.get(RUN.key, "archive") is None
    started = ledger.start(RUN, "archive")
    assert (started.status, started.attempts, started.accepted) == ("in_progress", 1, 0)
    assert started.fields == RUN.fields and started.completed == "2026-03-13T10:00:00Z"
    ledger.delivered(RUN, "archive", object="file:///a/r1.txt", sha256="ab", size=10, lines=2,
                     lines_skipped=1)
    done = ledger.get(RUN.key, "archive")
    assert done is not None
    assert (done.status, done.object, done.sha256, done.size, done.lines, done.attempts,
            done.lines_skipped) == (RunStatus.DELIVERED, "file:///a/r1.txt", "ab", 10, 2, 1, 1)
    assert done.delivered_at is not None and done.error is None


def test_a_resume_point_survives_a_restart_and_attempts_are_counted(
        opener: Callable[..., Ledger]) -> None:
    ledger = opener()
    ledger.start(RUN, "splunk")
    ledger.set_accepted(RUN.key, "splunk", 400)
    ledger.close()
    reopened = opener()
    again = reopened.start(RUN, "splunk")
    assert (again.accepted, again.attempts, again.status) == (400, 2, "in_progress")
    reopened.close()


def test_failures_are_recorded_redacted_and_cleared_by_a_delivery(ledger: Ledger) -> None:
    ledger.start(RUN, "splunk")
    ledger.failed(RUN, "splunk", "503 from https://user:hunter2secret@hec.example/x")
    failed = ledger.get(RUN.key, "splunk")
    assert failed is not None and failed.status == RunStatus.FAILED
    assert failed.error is not None and "hunter2secret" not in failed.error
    ledger.delivered(RUN, "splunk", object=None, sha256=None, size=None, lines=5, accepted=5)
    done = ledger.get(RUN.key, "splunk")
    assert done is not None and (done.status, done.error, done.accepted) == ("delivered", None, 5)


def test_gone_and_interrupted_runs_keep_their_status(ledger: Ledger) -> None:
    ledger.failed(RUN, "archive", "no such run", status=RunStatus.GONE)
    ledger.start(OTHER, "archive")
    ledger.failed(OTHER, "archive", "export stopped", status=RunStatus.INTERRUPTED)
    assert [(d.run_key, d.status) for d in ledger.deliveries()] == [
        (RUN.key, "gone"), (OTHER.key, "interrupted")]


def test_deliveries_are_listed_in_key_order_and_by_sink(ledger: Ledger) -> None:
    for run in (OTHER, RUN):
        for sink in ("splunk", "archive"):
            ledger.delivered(run, sink, object=None, sha256=None, size=1, lines=1)
    assert [(d.run_key, d.sink) for d in ledger.deliveries()] == [
        (RUN.key, "archive"), (RUN.key, "splunk"), (OTHER.key, "archive"),
        (OTHER.key, "splunk")]
    assert [d.run_key for d in ledger.deliveries("splunk")] == [RUN.key, OTHER.key]


def test_events_keep_their_order_and_detail(ledger: Ledger) -> None:
    ledger.event("retention_delete", sink="archive", path="a/b.txt", bytes=3)
    ledger.event("ledger_rebuilt", sink="archive", restored=2)
    assert [(e["kind"], e["sink"]) for e in ledger.events()] == [
        ("retention_delete", "archive"), ("ledger_rebuilt", "archive")]
    [deleted] = ledger.events("retention_delete")
    assert (deleted["path"], deleted["bytes"], deleted["run_key"]) == ("a/b.txt", 3, None)


def test_a_claimed_run_is_refused_to_a_second_claimant_until_released(
        opener: Callable[..., Ledger]) -> None:
    first, second = opener(), opener()
    try:
        claim = first.claim(RUN)
        assert claim is not None
        assert second.claim(RUN) is None
        other = second.claim(OTHER)
        assert other is not None
        other.release()
        claim.ledger.start(RUN, "archive")  # the claim's ledger records the run
        claim.release()
        again = second.claim(RUN)
        assert again is not None
        again.release()
    finally:
        first.close()
        second.close()


def test_an_object_lock_excludes_a_second_holder_until_released(ledger: Ledger) -> None:
    inside = threading.Event()
    order: list[str] = []

    def second() -> None:
        inside.wait()
        with ledger.object_lock("archive", "m/r1.txt"):
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with ledger.object_lock("archive", "m/r1.txt"):
        inside.set()
        thread.join(0.3)
        assert thread.is_alive()  # waiting for the lock, not inside
        order.append("first")
    thread.join()
    assert order == ["first", "second"]


def test_a_ledger_written_by_a_newer_logarchive_is_refused(
        ledger: Ledger, opener: Callable[..., Ledger], backend: dict[str, Any]) -> None:
    ledger.close()
    _sql(backend, "UPDATE meta SET value = '999' WHERE key = 'schema'")
    with pytest.raises(LedgerError, match=r"newer logarchive \(schema 999\)"):
        opener()


_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '1');
CREATE TABLE deliveries (
    run_key TEXT NOT NULL, sink TEXT NOT NULL, source TEXT NOT NULL, fields TEXT NOT NULL,
    status TEXT NOT NULL, object TEXT, sha256 TEXT, size INTEGER, lines INTEGER,
    accepted INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
    completed TEXT, updated_at TEXT NOT NULL, delivered_at TEXT, PRIMARY KEY (run_key, sink));
INSERT INTO deliveries VALUES ('api:r1', 'hec', 'api', '{}', 'delivered', NULL, 'ab', 10, 3,
    3, 1, NULL, NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
"""


def test_a_schema_1_ledger_is_migrated_in_place_and_keeps_its_rows(
        backend: dict[str, Any], opener: Callable[..., Ledger]) -> None:
    if "ledger" in backend:
        _sql(backend, "CREATE SCHEMA logarchive")
    else:
        Path(backend["state_dir"]).mkdir()
    _sql(backend, _SCHEMA_1)
    ledger = opener()
    try:
        [old] = ledger.deliveries()
        assert (old.run_key, old.lines, old.accepted, old.lines_skipped) == ("api:r1", 3, 3, 0)
        assert not ledger.created
        ledger.delivered(RUN, "hec", object=None, sha256=None, size=1, lines=4, lines_skipped=2)
        assert ledger.get(RUN.key, "hec").lines_skipped == 2  # type: ignore[union-attr]
    finally:
        ledger.close()
    assert _sql(backend, "SELECT value FROM meta WHERE key = 'schema'") == [("2",)]


def test_the_read_only_opener_creates_nothing(backend: dict[str, Any], tmp_path: Path,
                                              opener: Callable[..., Ledger]) -> None:
    document = base_config(tmp_path)
    document["logarchive"].update(backend)
    config = parse_config(document)
    assert existing_ledger(config) is None
    opener().close()
    found = existing_ledger(config)
    assert found is not None and not found.created
    found.close()


def _sql(backend: dict[str, Any], script: str) -> list[tuple[Any, ...]]:
    """Run ``script`` on the ledger's own store, as an outside tool would; the rows of its
    last statement."""
    if "ledger" in backend:
        with psycopg.connect(backend["ledger"]) as conn:
            conn.execute("SET search_path TO logarchive")
            cursor = conn.execute(script)
            return cursor.fetchall() if cursor.description else []
    db = sqlite3.connect(Path(backend["state_dir"]) / "ledger.sqlite3")
    try:
        if ";" in script.strip().rstrip(";"):
            db.executescript(script)
            return []
        return db.execute(script).fetchall()
    finally:
        db.commit()
        db.close()


# -- claims that can be lost: PostgreSQL leases ---------------------------------------------


@pytest.fixture
def pg_ledgers(pg_url: str, tmp_path: Path) -> Iterator[tuple[Ledger, Ledger]]:
    document = base_config(tmp_path)
    document["logarchive"].update(ledger=pg_url, lease_seconds=30)
    config = parse_config(document)
    first, second = open_ledger(config), open_ledger(config)
    yield first, second
    first.close()
    second.close()


def expire(pg_url: str, run: RunRef) -> None:
    """The claim's lease runs out now (as if its owner had been paused for lease_seconds)."""
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE logarchive.claims SET expires_at = clock_timestamp() - "
                     "interval '1 second' WHERE run_key = %s", (run.key,))


def expired_claim(ledger: Ledger, pg_url: str) -> Claim:
    """A claim on RUN by ``ledger`` whose lease has run out."""
    claim = ledger.claim(RUN)
    assert claim is not None
    expire(pg_url, RUN)
    return claim


def test_an_expired_claim_is_taken_over_and_its_owner_writes_nothing_more(
        pg_ledgers: tuple[Ledger, Ledger], pg_url: str) -> None:
    paused, other = pg_ledgers
    claim = paused.claim(RUN)
    assert claim is not None
    claim.ledger.start(RUN, "splunk")
    claim.ledger.set_accepted(RUN.key, "splunk", 200)
    expire(pg_url, RUN)
    taken = other.claim(RUN)
    assert taken is not None
    resumed = taken.ledger.start(RUN, "splunk")
    assert resumed.accepted == 200  # the new owner resumes where the first stopped
    taken.ledger.set_accepted(RUN.key, "splunk", 300)
    with pytest.raises(LeaseLost, match="another export took it over"):
        claim.ledger.set_accepted(RUN.key, "splunk", 250)
    with pytest.raises(LeaseLost):
        claim.ledger.delivered(RUN, "splunk", object=None, sha256=None, size=1, lines=1)
    with pytest.raises(LeaseLost):
        claim.ledger.failed(RUN, "splunk", "stopped")
    with pytest.raises(LeaseLost):
        claim.ledger.check_claim()
    claim.release()  # releasing a lost claim leaves the new owner's row alone
    assert paused.claim(RUN) is None
    row = other.get(RUN.key, "splunk")
    assert row is not None and (row.status, row.accepted, row.attempts) == ("in_progress", 300, 2)
    taken.release()


def test_an_expired_claim_nobody_took_over_is_still_held(
        pg_ledgers: tuple[Ledger, Ledger], pg_url: str) -> None:
    claim = expired_claim(pg_ledgers[0], pg_url)
    claim.ledger.start(RUN, "archive")  # the write renews the lease in its transaction
    claim.ledger.check_claim()
    assert pg_ledgers[1].claim(RUN) is None
    claim.release()


def test_two_claimants_of_an_expired_claim_get_it_once(
        pg_ledgers: tuple[Ledger, Ledger], pg_url: str) -> None:
    first, second = pg_ledgers
    expired_claim(first, pg_url)
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def claim(ledger: Ledger) -> None:
        barrier.wait()
        results.append(ledger.claim(RUN))

    threads = [threading.Thread(target=claim, args=(ledger,))
               for ledger in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([r for r in results if r is not None]) == 1


def test_the_lease_is_renewed_while_the_owner_lives(pg_url: str, tmp_path: Path) -> None:
    document = base_config(tmp_path)
    document["logarchive"].update(ledger=pg_url, lease_seconds=1)
    ledger = open_ledger(parse_config(document))
    try:
        claim = ledger.claim(RUN)
        assert claim is not None
        with psycopg.connect(pg_url, autocommit=True) as conn:
            first = conn.execute("SELECT expires_at FROM logarchive.claims").fetchone()
            later, deadline = first, time.monotonic() + 60
            while later == first:  # the renewer moves the expiry forward
                assert time.monotonic() < deadline, "the lease was never renewed"
                time.sleep(0.05)
                later = conn.execute("SELECT expires_at FROM logarchive.claims").fetchone()
        assert later is not None and first is not None and later[0] > first[0]
        claim.release()
    finally:
        ledger.close()
