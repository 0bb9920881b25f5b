"""Measure `logarchive query` and `logarchive search` over about 1 GiB of archived NDJSON, side
by side with a baseline on the same files (raw DuckDB for query, grep for search), and write the
section "Query and search over an archive" of docs/benchmarks.md.

    python benchmarks/archive_query.py [--workdir /tmp/logarchive-bench-archive] [--runs 3]
        [--size-mb 640] [--no-write]

The logs come from benchmarks/genlog.py (4 runs); they are exported once by the real CLI to an
uncompressed and a zstd NDJSON sink, then every sample is the real CLI in its own process.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "benchmarks.md"
START, END = "<!-- archive-query:start -->", "<!-- archive-query:end -->"
CLI = str(Path(sys.executable).parent / "logarchive")
SQL = "SELECT level, count(*) AS n FROM logs GROUP BY 1 ORDER BY 2 DESC"
PATTERN = r"Loss: 0\.99"
RAW_DUCKDB = """
import duckdb, sys
files = sys.argv[2:]
con = duckdb.connect()
cols = "{'seq': 'BIGINT', 'timestamp': 'VARCHAR', 'level': 'VARCHAR', 'message': 'VARCHAR'}"
print(con.execute(f"SELECT level, count(*) FROM read_json({files!r}, format='newline_delimited', "
                  f"compression={sys.argv[1]!r}, columns={cols}) GROUP BY 1").fetchall())
"""


def prepare(work: Path, size_mb: float) -> Path:
    logs = work / "logs"
    if not (work / "done").exists():
        logs.mkdir(parents=True, exist_ok=True)
        for n in range(4):
            subprocess.run([sys.executable, str(HERE / "genlog.py"), str(logs / f"run-{n}.log"),
                            str(size_mb / 4)], check=True)
        config = work / "logarchive.toml"
        config.write_text(
            f'[logarchive]\nstate_dir = "{work / "state"}"\nworkers = 2\n'
            f'[sources.logs]\ntype = "files"\nurl = "{logs}"\nmin_bytes_per_second = 0\n'
            f'[sinks.nd]\ntype = "fs"\nurl = "{work / "nd"}"\nformat = "ndjson"\n'
            f'[sinks.ndz]\ntype = "fs"\nurl = "{work / "ndz"}"\nformat = "ndjson"\n'
            'compression = "zstd"\n')
        subprocess.run([CLI, "-q", "export", "-c", str(config)], check=True)
        (work / "done").write_text("")
    return work / "logarchive.toml"


def timed(cmd: list[str] | str) -> tuple[float, float]:
    """Wall time and CPU time (user + system, every child process) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, shell=isinstance(cmd, str), check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def side_by_side(ours: list[str], baseline: list[str] | str, runs: int) -> dict:
    a, b = [], []
    for _ in range(runs):
        b.append(timed(baseline))
        a.append(timed(ours))
    return {"ours": [w for w, _ in a], "base": [w for w, _ in b],
            "ours_cpu": statistics.median(c for _, c in a),
            "base_cpu": statistics.median(c for _, c in b), "load": os.getloadavg()[0]}


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.ndjson*")
               if p.is_file() and not p.name.endswith(".manifest.json"))


def rows(work: Path, config: Path, runs: int) -> list[tuple[str, dict, str, int]]:
    out = []
    size = size_of(work / "nd")  # NDJSON bytes, also for the zstd copy (MB/s of records)
    for sink, compression, cat in (("nd", "none", "cat"), ("ndz", "zstd", "zstdcat")):
        files = sorted(str(p) for p in (work / sink).rglob("*.ndjson*")
                       if not p.name.endswith(".manifest.json"))
        query = side_by_side([CLI, "-q", "query", "-c", str(config), "--sink", sink, "--json",
                              SQL], [sys.executable, "-c", RAW_DUCKDB, compression, *files],
                             runs)
        stored = ("ndjson" if sink == "nd"
                  else f"ndjson + zstd, {size_of(work / sink) / 1e6:,.0f} MB stored")
        out.append((f"query `{SQL}` ({stored})",
                    query, "DuckDB `read_json` on the same files, no logarchive", size))
        search = side_by_side([CLI, "-q", "search", "-c", str(config), "--sink", sink,
                               "--level", "info", PATTERN],
                              f"{cat} {' '.join(files)} | grep -E '{PATTERN}' | wc -l", runs)
        out.append((f"search `{PATTERN}` --level info ({stored})", search,
                    f"`{cat} | grep -E` on the same files", size))
    every = side_by_side([CLI, "-q", "search", "-c", str(config), "--sink", "nd", "--level",
                          "error", "."], f"grep -E '\"level\":\"error\"' {work / 'nd'} -r | wc -l",
                         runs)
    out.append(("search `.` --level error (ndjson; every record decoded)", every,
                "`grep -E '\"level\":\"error\"'` on the same files", size))
    return out


def table(measured: list[tuple[str, dict, str, int]]) -> str:
    lines = ["| benchmark | logarchive: median (min–max) | baseline | baseline: median "
             "(min–max) | ratio | CPU s: logarchive / baseline | load avg |",
             "|---|---|---|---|---|---|---|"]
    for name, m, base, size in measured:
        mb = size / 1e6
        ours, theirs = statistics.median(m["ours"]), statistics.median(m["base"])
        lines.append(
            f"| {name}, {mb:,.0f} MB | {ours:.1f} s ({min(m['ours']):.1f}–{max(m['ours']):.1f}), "
            f"{mb / ours:.0f} MB/s | {base} | {theirs:.1f} s ({min(m['base']):.1f}–"
            f"{max(m['base']):.1f}) | {theirs / ours:.2f}x | {m['ours_cpu']:.1f} / "
            f"{m['base_cpu']:.1f} | {m['load']:.2f} |")
    return "\n".join(lines)


def section(measured: list[tuple[str, dict, str, int]], runs: int, started: tuple) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    end = os.getloadavg()
    return "\n".join([
        START, "## Query and search over an archive", "",
        f"Written by `benchmarks/archive_query.py` on {when}; {runs} samples per figure, each "
        "the real CLI in its own process, alternating with its baseline. Load average (1, 5, "
        f"15 min) at start {started[0]:.2f}, {started[1]:.2f}, {started[2]:.2f}, at end "
        f"{end[0]:.2f}, {end[1]:.2f}, {end[2]:.2f} (a shared 2-core machine). Sizes and MB/s "
        "are of the NDJSON records (4 runs of benchmarks/genlog.py), also for the zstd copy.",
        "",
        table(measured), "",
        "Ratio: the baseline's median time over logarchive's (above 1: logarchive is faster). "
        "CPU s: median user + system time of the process and its children (less sensitive to "
        "the load than wall time). "
        "The query baseline is DuckDB alone on the same files: the difference is logarchive's "
        "start-up, the manifest listing and the `runs` table. The search baseline counts "
        "matching lines with grep; logarchive runs the pattern over whole chunks and decodes "
        "only the JSON lines it touches (and lines with escapes), then applies the level "
        "filter and matches the message alone. A pattern with anchors or negative lookarounds, "
        "or one that matches every line (the last row), decodes every record.", END])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="/tmp/logarchive-bench-archive")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=float, default=640)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    work = Path(args.workdir)
    config = prepare(work, args.size_mb)
    started = os.getloadavg()
    measured = rows(work, config, args.runs)
    text = section(measured, args.runs, started)
    print(text)
    if not args.no_write:
        doc = DOC.read_text()
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
        doc = pattern.sub(lambda _: text, doc) if START in doc else doc.rstrip() + "\n\n" + text
        DOC.write_text(doc + ("" if doc.endswith("\n") else "\n"))


if __name__ == "__main__":
    main()
