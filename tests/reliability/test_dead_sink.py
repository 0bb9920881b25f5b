"""A receiver that never answers: the sink is given up for the rest of the export, once."""

from __future__ import annotations

import socket
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from logarchive.testing.rawsocket import RawResponder
from logarchive_testsupport.processes import run_export, write_config

pytest.importorskip("logarchive_splunk")
from logarchive_splunk.testing import TOKEN, HecReceiver  # noqa: E402

RETRIES = 2


class AcceptAndClose(RawResponder):
    """A loopback port that accepts every connection and closes it at once, before reading a
    byte (a receiver down behind a proxy): counts the connections attempted."""

    def __init__(self) -> None:
        super().__init__([b""])
        self.accepted = 0

    def _answer(self, conn: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
        conn.close()


def logs_with_blank_lines(root: Path, runs: int, lines: int) -> dict[str, bytes]:
    logs = {}
    for n in range(runs):
        body = b"".join(b"\n" if i % 7 == 3 else (b"   \n" if i % 11 == 5 else
                        f"run {n} step {i}\n".encode()) for i in range(lines))
        (root / "m").mkdir(parents=True, exist_ok=True)
        (root / "m" / f"run-{n}.log").write_bytes(body)
        logs[f"run-{n}"] = body
    return logs


def splunk_table(url: str) -> dict:
    return {"type": "splunk", "url": url, "token": TOKEN, "ack": True, "ack_poll_interval": 0.01,
            "http": {"retry": {"max_retries": RETRIES, "backoff_initial": 0.01,
                               "backoff_max": 0.02}}}


def ledger_states(state: Path) -> dict[str, str]:
    with sqlite3.connect(state / "ledger.sqlite3") as db:
        return {key: status for key, status in
                db.execute("SELECT run_key, status FROM deliveries WHERE sink='splunk'")}


@pytest.mark.scenario(
    "a Splunk that accepts connections and closes them",
    f"3 runs, {RETRIES} retries: the first run makes {RETRIES + 1} connection attempts, the "
    "sink is given up with one message naming 127.0.0.1:<port>, the other runs make none and "
    "stay pending (not failed); exit 1, no traceback; the next export with the receiver up "
    "delivers every line (blank ones included) exactly once",
)
def test_unreachable_sink_is_given_up_once(tmp_path: Path, record) -> None:
    from logarchive.batching import event_id

    logs = logs_with_blank_lines(tmp_path / "logs", runs=3, lines=40)
    dead = AcceptAndClose().start()
    try:
        config = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs",
                              {"splunk": splunk_table(dead.url)}, workers=1)
        first = run_export(config)
    finally:
        dead.stop()
    output = first.stdout + first.stderr
    assert first.returncode == 1, output
    assert "Traceback" not in output
    assert dead.accepted == RETRIES + 1  # one run's retries, then nobody else tries
    given_up = [line for line in output.splitlines() if "given up for the rest" in line]
    assert len(given_up) == 1, output
    assert f"127.0.0.1:{dead.port}" in given_up[0]
    assert "deferred to the next export 2" in first.stdout
    states = ledger_states(tmp_path / "state")
    assert list(states.values()) == ["failed"], states  # the run that tried; two untouched

    hec = HecReceiver(ack=True).start()
    try:
        config = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs",
                              {"splunk": splunk_table(hec.url)}, workers=1)
        second = run_export(config)
        assert second.returncode == 0, second.stdout + second.stderr
        counts = Counter(e.event_id for e in hec.events())
    finally:
        hec.stop()
    expected = {event_id("logs", f"logs/model_id=m/run_id={run}", seq)
                for run, data in logs.items() for seq in range(1, data.count(b"\n") + 1)}
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    record(f"{dead.accepted} connection attempts for 3 runs ({RETRIES} retries)")
