"""Share of records that get a timestamp and a level, and the parser's speed, on one log.

    python benchmarks/parse_shares.py LOG [--columns]

Reads LOG through the codec (``RecordBuilder``, the records an NDJSON export writes) and prints
the share of records (first parts) with a timestamp, a level, and both. With ``--columns`` it
also times ``logarchive.parse.line`` over every line against ``logarchive.parse.columns`` over
Arrow arrays of 64k lines (CPU seconds: the machine is shared), side by side in one run, and
checks they agree. Make the mixed log
with ``python benchmarks/genmixed.py mixed.log 20``.
"""

from __future__ import annotations

import os
import sys
import time

from logarchive.codec import RecordBuilder


def records(path: str):
    """The records (first parts only) an NDJSON export of ``path`` writes, streamed."""
    builder = RecordBuilder({})
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            yield from builder.feed(chunk).records()
    yield from builder.finish().records()


def shares(path: str) -> dict[str, float]:
    total = stamped = levelled = both = 0
    for record in records(path):
        if record.get("continuation"):
            continue
        has_time, has_level = record["timestamp"] is not None, record["level"] is not None
        total += 1
        stamped += has_time
        levelled += has_level
        both += has_time and has_level
    return {"records": total, "timestamp": stamped / total, "level": levelled / total,
            "both": both / total}


def speeds(path: str) -> dict[str, float]:
    import pyarrow as pa

    from logarchive import parse

    with open(path, "rb") as handle:
        data = handle.read()
    lines = [ln[:-1] if ln.endswith("\r") else ln
             for ln in data.decode("utf-8", "replace").split("\n")]
    start = time.process_time()
    reference = [parse.line(text) for text in lines]
    per_line = time.process_time() - start
    arrays = [pa.array(lines[i:i + 65536], pa.string()) for i in range(0, len(lines), 65536)]
    start = time.process_time()
    results = [parse.columns(array) for array in arrays]
    vectorised = time.process_time() - start
    got = [pair for r in results for pair in zip(r.timestamp.to_pylist(), r.level.to_pylist())]
    assert got == reference, "columns() and line() disagree"
    mb = len(data) / 1e6
    return {"MB": mb, "line MB/s (CPU)": mb / per_line, "columns MB/s (CPU)": mb / vectorised,
            "ratio": per_line / vectorised}


def main() -> None:
    path = sys.argv[1]
    print(f"load average {os.getloadavg()[0]:.1f}")
    for key, value in shares(path).items():
        print(f"{key:>20}: {value:.4f}" if isinstance(value, float) else f"{key:>20}: {value}")
    if "--columns" in sys.argv:
        for key, value in speeds(path).items():
            print(f"{key:>20}: {value:.2f}")


if __name__ == "__main__":
    main()
