"""The cost of the ledger's per-batch write on each backend, side by side in one run.

An aggregator delivery records its resume point after every accepted batch
(``Ledger.set_accepted``). On SQLite that is one committed write (WAL, synchronous=FULL); on
PostgreSQL it is a transaction that first renews the run's claim (the fence) and then writes.
This measures both on this machine, through the same API the export uses, against a
PostgreSQL started from the ``pgserver`` wheel (fsync on, as in production), and prints the
median per write and the ratio.

    python benchmarks/ledger_writes.py [WRITES]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from logarchive.ledger import SQLiteLedger
from logarchive.ledger_pg import open_ledger
from logarchive.runs import RunRef

RUN = RunRef(source="bench", fields={"run_id": "r1"}, status="completed")


def per_write(ledger, writes: int) -> list[float]:
    claim = ledger.claim(RUN)
    assert claim is not None
    claim.ledger.start(RUN, "splunk")
    times = []
    for n in range(1, writes + 1):
        started = time.perf_counter()
        claim.ledger.set_accepted(RUN.key, "splunk", n * 200)
        times.append(time.perf_counter() - started)
    claim.release()
    return times


def main() -> None:
    import pgserver

    writes = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    root = Path(tempfile.mkdtemp(prefix="logarchive-bench-pg-"))
    root.chmod(0o755)
    server = pgserver.get_server(root, cleanup_mode="delete")
    try:
        server.psql("CREATE DATABASE bench;")
        pg = open_ledger(server.get_uri("bench"), lease_seconds=60)
        sqlite = SQLiteLedger(Path(tempfile.mkdtemp(prefix="logarchive-bench-sqlite-")))
        results = {}
        for name, ledger in (("sqlite", sqlite), ("postgresql", pg)):
            results[name] = statistics.median(per_write(ledger, writes)) * 1000
            ledger.close()
    finally:
        server.cleanup()
    load = os.getloadavg()[0]
    print(f"set_accepted, median of {writes}: SQLite {results['sqlite']:.2f} ms, PostgreSQL "
          f"(fenced, Unix socket) {results['postgresql']:.2f} ms, ratio "
          f"{results['postgresql'] / results['sqlite']:.2f}x; load average {load:.2f}")


if __name__ == "__main__":
    main()
