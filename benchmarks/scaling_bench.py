"""Benchmarks of issue 17 (executors), run by benchmarks/run.py like the others:

- ``scaling``: many runs of 4 MiB converted (txt -> ndjson + gzip) on a LocalCluster of 1 vs 2
  worker processes, same number of runs in flight (target >= 1.6x on a quiet 2-core machine),
  with the threads executor beside them, wall and CPU time; then Dask's fixed cost per export
  and its cost per run (tiny runs), the figures docs/scaling.md sizes a fleet with;
- ``aggregators``: lines/s to a loopback Splunk HEC and Datadog intake that run in their own
  process and only decompress and count (benchmarks/count_receiver.py), with the default
  settings and with several runs in parallel and ``max_in_flight = 4`` (target >= 100k lines/s).
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from run import (
    HERE, Bench, Row, Sample, count_lines, export_cmd, fresh, free_port, interleave, make_log,
    measure, rate, write_config,
)


def split_runs(bench: Bench, log: Path, runs: int) -> Path:
    """A folder of ``runs`` logs, the lines of ``log`` dealt out in equal slices (cached)."""
    folder = bench.work / "src" / f"{log.stem}-x{runs}"
    if len(list(folder.glob("*.log"))) == runs:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    data = log.read_bytes()
    step = len(data) // runs
    start = 0
    for n in range(runs):
        end = len(data) if n == runs - 1 else data.index(b"\n", (n + 1) * step) + 1
        (folder / f"run-{n:03d}.log").write_bytes(data[start:end])
        start = end
    return folder


def executor(processes: int | None) -> dict[str, Any]:
    """``[logarchive]`` keys for the threads executor (None) or a LocalCluster."""
    return {} if processes is None else {"executor": {"type": "dask", "processes": processes}}


def timed(config: Path, cpu: list[float]) -> Sample:
    """One export, timed; its CPU (user + sys of the CLI and every process it waited for:
    the LocalCluster's workers) appended to ``cpu``. CPU is far less load-sensitive than wall
    time on a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sample = measure(export_cmd(config))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return sample


def sides_for(bench: Bench, name: str, folder: Path, fmt: dict[str, Any]
              ) -> tuple[list[tuple[Any, Any]], dict[str, list[float]]]:
    """The threads executor, a LocalCluster of 1 and of 2 processes (``workers = 2`` each)
    exporting ``folder``: interleave()'s sides, and each side's CPU seconds."""
    sides, cpu = [], {}
    for label, processes in (("threads", None), ("dask-1", 1), ("dask-2", 2)):
        base = bench.out(f"{name}-{label}")
        config = write_config(
            bench.work / f"{name}-{label}.toml", state=base / "state",
            source={"type": "files", "url": str(folder)},
            sink={"type": "fs", "url": str(base / "archive"), "path": "{run_id}.{ext}", **fmt},
            settings={"workers": 2, **executor(processes)})
        cpu[label] = []
        sides.append((fresh(base), lambda config=config, into=cpu[label]: timed(config, into)))
    return sides, cpu


def scaling(bench: Bench) -> None:
    """1 vs 2 LocalCluster processes on many runs of 4 MiB, ndjson + gzip (conversion bound);
    then what Dask costs per export and per run (tiny runs), for docs/scaling.md."""
    runs = 32 if bench.args.quick else 256  # 4 MiB each: the cluster's start is small beside
    folder = split_runs(bench, make_log(bench.work, 4 * runs, bench.kind), runs)
    sides, cpu = sides_for(bench, "scaling", folder, {"format": "ndjson",
                                                      "compression": "gzip"})
    threads, one, two = interleave(bench.n, sides)
    t, o, w = threads.spread(), one.spread(), two.spread()
    ratio = o[0] / w[0]
    cpus = ", ".join(f"{k} {statistics.median(v):.1f} s" for k, v in cpu.items())
    bench.add(Row(f"{runs} runs of 4 MiB txt→ndjson+gzip, Dask LocalCluster 2 processes vs 1 "
                  "(workers = 2)", "s", w, "same, 1 process", o, ratio, "≥ 1.6x",
                  ratio >= 1.6, extra=f"threads executor: {t[0]:.1f} s; CPU (user+sys, "
                  f"medians): {cpus}"))
    overhead(bench)


def overhead(bench: Bench) -> None:
    """Dask's fixed cost per export (1 run of 4 KiB) and its cost per run (200 runs of 4 KiB),
    beside the threads executor, wall and CPU."""
    results = {}
    for runs in (1, 200):
        folder = bench.work / "src" / f"tiny-x{runs}"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(runs):
            (folder / f"run-{n:03d}.log").write_bytes(b"step 1 loss 0.5 lr 0.001\n" * 160)
        sides, cpu = sides_for(bench, f"tiny{runs}", folder, {"format": "ndjson"})
        series = interleave(bench.n, sides)
        results[runs] = {label: (each.median(), statistics.median(cpu[label]))
                         for label, each in zip(cpu, series)}
    for label in ("dask-1", "dask-2"):
        fixed = [results[1][label][i] - results[1]["threads"][i] for i in (0, 1)]
        per_run = [1000 * ((results[200][label][i] - results[1][label][i])
                           - (results[200]["threads"][i] - results[1]["threads"][i])) / 199
                   for i in (0, 1)]
        bench.add(Row(f"Dask cost over the threads executor, LocalCluster {label[-1]} "
                      "process(es), workers = 2: per export (1 run) / per run (200 runs of "
                      "4 KiB)", "s", (fixed[0], fixed[0], fixed[0]),
                      extra=f"per export: {fixed[0]:.1f} s wall, {fixed[1]:.1f} s CPU; "
                      f"per run: {per_run[0]:.1f} ms wall, {per_run[1]:.1f} ms CPU; "
                      f"threads: 200 runs in {results[200]['threads'][0]:.1f} s"))


def aggregators(bench: Bench) -> None:
    """lines/s to HEC and Datadog receivers in their own process, several settings."""
    log = make_log(bench.work, bench.size_records)
    lines = count_lines(log)
    folder = split_runs(bench, log, 8)
    settings = [("default settings (threads, workers 4, max_in_flight 1)", None, {}, {}),
                ("threads, workers 8, max_in_flight 4", None, {"workers": 8},
                 {"max_in_flight": 4}),
                ("dask 2 processes, workers 8, max_in_flight 4", 2, {"workers": 8},
                 {"max_in_flight": 4})]
    for label, sink_type, key in (("Splunk HEC", "splunk", "token"),
                                  ("Datadog logs intake", "datadog", "api_key")):
        port = free_port()
        receiver = subprocess.Popen([sys.executable, str(HERE / "count_receiver.py"),
                                     str(port)])
        try:
            _wait_http(f"http://127.0.0.1:{port}/count")
            sides = []
            for n, (_, processes, extra, sink_extra) in enumerate(settings):
                base = bench.out(f"agg-{sink_type}-{n}")
                config = write_config(
                    bench.work / f"agg-{sink_type}-{n}.toml", state=base / "state",
                    source={"type": "files", "url": str(folder)},
                    sink={"type": sink_type, "url": f"http://127.0.0.1:{port}", key: "bench",
                          **sink_extra},
                    settings={**extra, **executor(processes)})
                sides.append((fresh(base), lambda config=config: measure(export_cmd(config))))
            series = interleave(bench.n, sides)
            seen = int(urllib.request.urlopen(f"http://127.0.0.1:{port}/count").read())
        finally:
            receiver.terminate()
            receiver.wait()
        if seen < lines * bench.n * len(settings):
            raise RuntimeError(f"{label}: {seen} events counted, expected "
                               f"≥ {lines * bench.n * len(settings)}")
        for (what, *_), each in zip(settings, series):
            value = rate(each, lines)
            bench.add(Row(f"lines/s to a loopback {label} in its own process ({lines:,} lines, "
                          f"8 runs), {what}", "lines/s", value, target="≥ 100,000 lines/s",
                          passed=value[0] >= 100_000))


def _wait_http(url: str) -> None:
    import time

    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


EXTRA = {"scaling": scaling, "aggregators": aggregators}
