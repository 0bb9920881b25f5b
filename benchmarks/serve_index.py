"""``logarchive serve`` on an archive of many runs: start-up (the index of the manifests, cold
and warm), a refresh, and a listing page, against reading every manifest (``read_archive``, what
a listing would cost without the index). Writes a Markdown table to stdout.

    python benchmarks/serve_index.py [--runs 10000] [--samples 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from logarchive.archive import read_archive
from logarchive.config import load_config
from logarchive.manifest import build_manifest
from logarchive.pipeline import open_sink
from logarchive.runs import RunRef
from logarchive.serve.index import RunIndex, RunQuery
from logarchive.serve.testing import serving

TOKEN = "benchmark-token-0123456789"


def make_archive(root: Path, runs: int, first: int = 0) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(first, first + runs):
        run = RunRef("training", {"model_id": f"mdl-{i % 97:03d}", "run_id": f"run-{i:06d}"},
                     status="completed" if i % 10 else "failed",
                     completed=start + timedelta(minutes=i))
        data = b"".join(b"2026-01-01T00:00:%02d.000Z [INFO] step %d of run %d\n" % (s, s, i)
                        for s in range(20))
        path = root / "archive" / run.fields["model_id"] / f"{run.fields['run_id']}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        Path(f"{path}.manifest.json").write_bytes(build_manifest(
            run=run, sink="archive", object_path=str(path), object_sha256=digest,
            object_size=len(data), source_sha256=digest, source_size=len(data), lines=20,
            invalid_utf8=0, records=None, fmt="txt", compression="none",
            exported=start + timedelta(minutes=i, seconds=5), version="bench"))


def write_config(root: Path) -> Path:
    config = root / "c.toml"
    config.write_text(f"""
[logarchive]
state_dir = "{root / 'state'}"
[sources.training]
type = "files"
url = "{root / 'logs'}"
[sinks.archive]
type = "fs"
url = "{root / 'archive'}"
[serve]
sink = "archive"
listen = "127.0.0.1:0"
tokens = ["{TOKEN}"]
refresh_seconds = 3600
""")
    return config


def timed(work, samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        work()
        out.append(time.perf_counter() - started)
    return out


def show(values: list[float], unit: float = 1.0, suffix: str = "s") -> str:
    med = statistics.median(values) * unit
    return f"{med:.3g} {suffix} ({min(values) * unit:.3g}–{max(values) * unit:.3g})"


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        make_archive(root, args.runs)
        config_path = write_config(root)
        config = load_config(config_path)
        sink = open_sink(config, "archive")
        db = root / "state" / "serve" / "archive.sqlite"

        def cold() -> None:
            db.unlink(missing_ok=True)
            for extra in ("-wal", "-shm"):
                Path(f"{db}{extra}").unlink(missing_ok=True)
            index = RunIndex(db, sink)
            index.refresh()
            index.close()

        cold_times = timed(cold, args.samples)
        rows.append((f"index build, cold ({args.runs:,} manifests read)", show(cold_times), load()))
        index = RunIndex(db, sink)
        warm = timed(index.refresh, args.samples)
        rows.append(("index refresh, nothing changed (one listing, no read)", show(warm), load()))
        make_archive(root, 100, first=args.runs)
        changed = timed(index.refresh, 1)
        rows.append(("index refresh after 100 new runs", show(changed), load()))
        page = timed(lambda: index.query(RunQuery(fields={"model_id": "mdl-042"}, limit=50)),
                     args.samples * 10)
        rows.append(("listing query: one model, newest 50 (in-process)", show(page, 1000, "ms"),
                     load()))
        index.close()
        baseline = timed(lambda: read_archive(sink), args.samples)
        rows.append(("baseline: read every manifest (`read_archive`)", show(baseline), load()))
        rows += serve_rows(config_path, args.samples)
        ratio = statistics.median(baseline) / (statistics.median(page))
    print(f"Runs: {args.runs:,} (+100), {args.samples} samples; Python {sys.version.split()[0]}")
    print()
    print("| measurement | median (min–max) | load avg (1, 5, 15 min) |")
    print("|---|---|---|")
    for name, value, at in rows:
        print(f"| {name} | {value} | {at} |")
    print()
    print(f"A listing page from the index is {ratio:,.0f}x faster than reading the manifests.")


def serve_rows(config: Path, samples: int) -> list[tuple[str, str, str]]:
    rows = []
    starts = []
    for _ in range(samples):
        started = time.perf_counter()
        with serving(config, {}) as server:
            starts.append(time.perf_counter() - started)
            url = server.url
            if len(starts) == samples:
                with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) \
                        as client:
                    listing = timed(lambda: client.get(
                        "/api/runs", params={"f.model_id": "mdl-042", "limit": 50}
                    ).raise_for_status(), samples * 10)
                    everything = timed(lambda: client.get(
                        "/api/runs", params={"sort": "run", "offset": 5000, "limit": 50}
                    ).raise_for_status(), samples * 10)
                    html = timed(lambda: client.get("/").raise_for_status(), samples * 10)
    rows.append(("`logarchive serve` start-up to listening, warm index (process start "
                 "included)", show(starts), load()))
    rows.append(("GET /api/runs?f.model_id=…&limit=50 over HTTP", show(listing, 1000, "ms"),
                 load()))
    rows.append(("GET /api/runs?sort=run&offset=5000&limit=50 over HTTP",
                 show(everything, 1000, "ms"), load()))
    rows.append(("GET / (runs page, HTML) over HTTP", show(html, 1000, "ms"), load()))
    return rows


if __name__ == "__main__":
    main()
