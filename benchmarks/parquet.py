"""Parquet archives against jq and against gzip NDJSON of the same log, side by side.

    python benchmarks/parquet.py LOG [LOG ...] [--runs 3] [--workdir DIR]
    python benchmarks/parquet.py LOG --rss-only          # peak RSS of one parquet export

For each log, interleaved sample by sample (run.py's harness): ``jq -Rc '{message: .}'``,
``logarchive export`` to ``ndjson`` + ``gzip``, and to ``parquet`` + ``zstd``. Prints MB/s
(median, min-max), the ratio to jq, object sizes, the Parquet/NDJSON-gzip size ratio, peak RSS
(GNU time ``%M``) and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (  # noqa: E402  (the harness next to this file)
    export_cmd, fresh, interleave, measure, run_folder, throughput, write_config,
)


def export_side(work: Path, name: str, log: Path, fmt: str, compression: str):
    base = work / "out" / name
    config = write_config(
        work / f"{name}.toml", state=base / "state",
        source={"type": "files", "url": str(run_folder(work, log))},
        sink={"type": "fs", "url": str(base / "archive"), "path": "{run_id}.{ext}",
              "format": fmt, "compression": compression},
    )
    return (fresh(base), lambda: measure(export_cmd(config))), base / "archive"


def object_size(archive: Path) -> int:
    return sum(p.stat().st_size for p in archive.rglob("*")
               if p.is_file() and not p.name.endswith(".manifest.json"))


def bench(log: Path, work: Path, runs: int) -> None:
    size = log.stat().st_size
    dst = work / "out" / "jq" / "out.ndjson"
    jq = (fresh(dst.parent), lambda: measure(f"jq -Rc '{{message: .}}' < {log} > {dst}"))
    ndjson, nd_dir = export_side(work, "ndjson-gz", log, "ndjson", "gzip")
    parquet, pq_dir = export_side(work, "parquet-zstd", log, "parquet", "zstd")
    load = os.getloadavg()[0]
    jq_s, nd_s, pq_s = interleave(runs, [jq, ndjson, parquet])
    jq_t, nd_t, pq_t = (throughput(s, size) for s in (jq_s, nd_s, pq_s))
    nd_size, pq_size = object_size(nd_dir), object_size(pq_dir)
    print(f"\n{log.name}: {size / 2**20:.0f} MiB, {runs} runs, load {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f}")
    for name, t, series in (("jq", jq_t, jq_s), ("ndjson+gzip", nd_t, nd_s),
                            ("parquet+zstd", pq_t, pq_s)):
        print(f"  {name:<13} {t[0]:7.1f} MB/s ({t[1]:.1f}-{t[2]:.1f})  {t[0] / jq_t[0]:.2f}x jq"
              f"  peak RSS {series.median('rss_mb'):.0f} MB")
    print(f"  sizes: ndjson+gzip {nd_size / 2**20:.1f} MiB, parquet+zstd {pq_size / 2**20:.1f} "
          f"MiB ({pq_size / nd_size:.2f}x, {100 * (1 - pq_size / nd_size):.0f}% smaller)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/logarchive-bench-parquet"))
    parser.add_argument("--rss-only", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    for log in args.logs:
        if args.rss_only:
            (prepare, run), archive = export_side(args.workdir, "rss", log, "parquet", "zstd")
            prepare()
            sample = run()
            print(f"{log.name}: {log.stat().st_size / 2**20:.0f} MiB in {sample.seconds:.1f} s, "
                  f"peak RSS {sample.rss_mb:.0f} MB, object {object_size(archive) / 2**20:.1f} "
                  f"MiB, load {os.getloadavg()[0]:.1f}")
        else:
            bench(log, args.workdir, args.runs)


if __name__ == "__main__":
    main()
