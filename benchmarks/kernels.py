"""Which column library for the codec: pyarrow compute or polars, on the same work, side by side.

    python benchmarks/kernels.py LOG [--mib 32] [--rounds 5]
    python benchmarks/kernels.py LOG --codec [--mib 32] [--rounds 5]   # the codecs in-process

The work is the columnar codec's core on 1 MiB regions of complete lines (split on LF once,
the same Arrow array for both; polars takes it zero-copy): take
the canonical timestamp (one regex), the level of the leftmost ``[LEVEL]`` (one extraction),
escape quotes and backslashes, and join one JSON object per line. Both sides get the same valid
UTF-8 lines; each round times both back to back; medians are printed. A third row times a
process pool of 2 workers running the full pyarrow codec (``ColumnarBuilder``) on the regions
against the same codec in-process, with order kept (the question of issue 15: does a second
process pay on 2 cores?).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

LEVELS = "TRACE|DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|ERR|CRITICAL|CRIT|FATAL"
TS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"


def regions(path: str, mib: int) -> list[bytes]:
    out = []
    with open(path, "rb") as handle:
        for _ in range(mib):
            chunk = handle.read(1 << 20)
            if not chunk:
                break
            chunk = chunk[:chunk.rfind(b"\n") + 1]
            out.append(chunk.decode("utf-8", "replace").encode())
    return out


def split(region: bytes):  # noqa: ANN201
    """The region's lines as an Arrow string array (the codec's numpy split), for both sides."""
    import numpy as np
    import pyarrow as pa

    from logarchive.columnar import _split_lines

    ends = np.flatnonzero(np.frombuffer(region, np.uint8) == 10)
    return _split_lines(region, ends).cast(pa.string())


def with_pyarrow(lines) -> int:  # noqa: ANN001
    import pyarrow.compute as pc

    stamp = pc.fill_null(pc.binary_join_element_wise(
        '"', pc.extract_regex(lines, f"(?P<t>{TS})").flatten()[0], '"', ""), "null")
    level = pc.fill_null(pc.binary_join_element_wise(
        '"', pc.extract_regex(lines, rf"\[(?P<l>{LEVELS})\]").flatten()[0], '"', ""), "null")
    message = pc.replace_substring(pc.replace_substring(lines, "\\", "\\\\"), '"', '\\"')
    body = pc.binary_join_element_wise('{"timestamp":', stamp, ',"level":', level,
                                       ',"message":"', message, '"}', "")
    return len(body)


def with_polars(lines) -> int:  # noqa: ANN001
    import polars as pl

    frame = pl.DataFrame({"m": pl.from_arrow(lines)}).lazy().select(
        pl.concat_str([
            pl.lit('{"timestamp":'),
            pl.coalesce(pl.lit('"') + pl.col("m").str.extract(f"({TS})") + pl.lit('"'),
                        pl.lit("null")),
            pl.lit(',"level":'),
            pl.coalesce(pl.lit('"') + pl.col("m").str.extract(rf"\[({LEVELS})\]") + pl.lit('"'),
                        pl.lit("null")),
            pl.lit(',"message":"'),
            pl.col("m").str.replace_all("\\", "\\\\", literal=True)
            .str.replace_all('"', '\\"', literal=True),
            pl.lit('"}'),
        ]).alias("out")).collect()
    return len(frame)


def codec_region(region: bytes) -> int:
    from logarchive.codec import ColumnarBuilder

    builder = ColumnarBuilder({"source": "bench"})
    return len(builder.feed(region).ndjson())


def in_process(parts: list[bytes]) -> int:
    return sum(map(codec_region, parts))


def pooled(pool: ProcessPoolExecutor, parts: list[bytes]) -> int:
    return sum(pool.map(codec_region, parts))  # map keeps the order (and so seq)


def timed(fn, *args) -> float:  # noqa: ANN001
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def feed_all(kind: str, chunks: list[bytes]) -> tuple[float, float]:
    """CPU seconds (all threads) and wall seconds of one builder fed every chunk."""
    from logarchive import columnar
    from logarchive.codec import ColumnarBuilder, RecordBuilder

    columnar.THREADS = 2 if kind.endswith("2 threads") else 1
    builder = (RecordBuilder if kind == "per-line" else ColumnarBuilder)({"source": "bench"})
    cpu, wall = time.process_time(), time.perf_counter()
    for chunk in chunks:
        builder.feed(chunk).ndjson()
    builder.finish()
    return time.process_time() - cpu, time.perf_counter() - wall


def codec_speed(path: str, mib: int, rounds: int) -> None:
    """The codecs in-process on ``mib`` 1 MiB chunks (as an export reads them), alternating
    rounds; CPU time is the figure that load from elsewhere disturbs least."""
    import os

    with open(path, "rb") as handle:
        chunks = [handle.read(1 << 20) for _ in range(mib)]
    size = sum(map(len, chunks)) / 1e6
    kinds = ["per-line", "columnar", "columnar, 2 threads"]
    feed_all("columnar", chunks[:2])  # imports outside the timing
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    for _ in range(rounds):
        for kind in kinds:
            samples[kind].append(feed_all(kind, chunks))
    print(f"{size:.0f} MB in 1 MiB chunks, {rounds} rounds, load {os.getloadavg()[0]:.2f}")
    for kind, values in samples.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        print(f"{kind:20s} CPU {size / cpu:6.1f} MB/s   wall {size / wall:6.1f} MB/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log")
    parser.add_argument("--mib", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--codec", action="store_true",
                        help="only the codecs in-process: per-line, columnar, columnar with 2 "
                             "threads (CPU and wall MB/s)")
    args = parser.parse_args()
    if args.codec:
        return codec_speed(args.log, args.mib, args.rounds)
    parts = regions(args.log, args.mib)
    arrays = [split(r) for r in parts]
    size = sum(map(len, parts)) / (1 << 20)
    results: dict[str, list[float]] = {"pyarrow": [], "polars": [], "in-process codec": [],
                                       "2-process pool codec": []}
    with ProcessPoolExecutor(2) as pool:
        pooled(pool, parts[:2])  # start the workers and their imports outside the timing
        in_process(parts[:2])
        for _ in range(args.rounds):
            results["pyarrow"].append(timed(lambda: [with_pyarrow(a) for a in arrays]))
            results["polars"].append(timed(lambda: [with_polars(a) for a in arrays]))
            results["in-process codec"].append(timed(in_process, parts))
            results["2-process pool codec"].append(timed(pooled, pool, parts))
    import os

    print(f"{size:.0f} MiB, {args.rounds} rounds, load {os.getloadavg()[0]:.2f}")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:22s} {size / med:7.1f} MB/s  (median {med:.2f} s, "
              f"min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    sys.exit(main())
