"""Opening the ledger: a busy or healthy ledger is never called corrupt."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from logarchive.errors import LedgerError
from logarchive.ledger import SQLiteLedger, _corruption_advice


def test_a_busy_ledger_is_not_advised_away(tmp_path: Path) -> None:
    SQLiteLedger(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "ledger.sqlite3", isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        waiting = sqlite3.connect(tmp_path / "ledger.sqlite3", timeout=0)
        advice = _corruption_advice(waiting)
        waiting.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "do not move it away" in advice
    assert "ledger rebuild" not in advice


def test_a_healthy_ledger_passes_the_check(tmp_path: Path) -> None:
    SQLiteLedger(tmp_path).close()
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        assert "integrity check passed: do not move it away" in _corruption_advice(db)


def test_garbage_is_called_corrupt_and_rebuild_is_advised(tmp_path: Path) -> None:
    (tmp_path / "ledger.sqlite3").write_bytes(b"not a ledger" * 500)
    with pytest.raises(LedgerError, match="integrity check says it is corrupt: move it away"):
        SQLiteLedger(tmp_path)


def test_a_file_named_locks_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "locks").write_text("")
    with pytest.raises(LedgerError) as caught:
        SQLiteLedger(tmp_path)
    assert str(caught.value) == (f"state_dir {tmp_path} is not usable: {tmp_path / 'locks'}: "
                                 "exists and is not a directory")

