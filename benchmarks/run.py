"""logarchive benchmarks: logarchive against the tools users would use instead, same machine,
same run, baselines and logarchive interleaved sample by sample so that load from elsewhere hits
both sides alike.

    python benchmarks/run.py            # full sizes, writes docs/benchmarks.md
    python benchmarks/run.py --quick    # small sizes, prints the table
    python benchmarks/run.py --only txt,ndjson --runs 5

The logarchive side is always the real CLI (``logarchive export -c FILE``) in its own process, so
start-up, config validation, discovery, ledger and manifests count. Peak RSS is that process's
``ru_maxrss`` (``os.wait4``). Each figure is the median of ``--runs`` samples, with min and max.
Generated logs (benchmarks/genlog.py) are cached in ``--workdir``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

BIN = Path(sys.executable).parent
LOGARCHIVE = str(BIN / "logarchive") if (BIN / "logarchive").exists() else "logarchive"
MiB = 1024 * 1024


# --- measuring ---------------------------------------------------------------------------------

@dataclass
class Sample:
    seconds: float
    rss_mb: float
    cpu: float = 0.0  # user + system seconds of the command and the children it waited for


TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None


def measure(argv: list[str] | str, *, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Sample:
    """Run a command to completion; wall time and the peak RSS of the process itself.

    The peak RSS comes from GNU time (``%M``) when it is installed: a child's own ``ru_maxrss``
    seen through ``wait4`` starts from the harness's resident memory at fork time (tested: a
    harness holding 300 MB makes ``true`` report 310 MB), which inflated the rows whose
    receivers or servers live in the harness.
    """
    shell = isinstance(argv, str)
    if TIME:
        argv = ([TIME, "-f", "%M", "/bin/bash", "-c", argv] if shell
                else [TIME, "-f", "%M", *argv])
        shell = False
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, shell=shell, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=err, executable="/bin/bash" if shell else None)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{argv!r} exited {proc.returncode}:\n{text[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime  # much less load-sensitive than wall time
    if TIME:
        return Sample(seconds, int(text.strip().splitlines()[-1]) / 1024, cpu)
    return Sample(seconds, usage.ru_maxrss / 1024, cpu)


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        return [getattr(s, key) for s in self.samples]

    def median(self, key: str = "seconds") -> float:
        return statistics.median(self.values(key))

    def spread(self, key: str = "seconds") -> tuple[float, float, float]:
        values = self.values(key)
        return statistics.median(values), min(values), max(values)


@dataclass
class Row:
    name: str
    unit: str                    # what "value" is: MB/s, lines/s, MB (RSS), s
    value: tuple[float, float, float]          # logarchive median, min, max (in unit)
    baseline_name: str = ""
    baseline: tuple[float, float, float] | None = None
    ratio: float | None = None   # logarchive vs baseline, > 1 is better for logarchive
    target: str = "reported"
    passed: bool | None = None
    extra: str = ""
    load: float = 0.0


def throughput(series: Series, nbytes: int) -> tuple[float, float, float]:
    """MB/s median, min, max (min throughput comes from the slowest sample)."""
    med, lo, hi = series.spread()
    mb = nbytes / MiB
    return mb / med, mb / hi, mb / lo


def rate(series: Series, count: int) -> tuple[float, float, float]:
    med, lo, hi = series.spread()
    return count / med, count / hi, count / lo


def interleave(n: int, sides: list[tuple[Callable[[], None], Callable[[], Sample]]]
               ) -> list[Series]:
    """Sample every side once per round (prepare untimed, then measure), ``n`` rounds."""
    out = [Series() for _ in sides]
    for _ in range(n):
        for series, (prepare, run) in zip(out, sides):
            prepare()
            series.samples.append(run())
    return out


def _rss_cpu(series: Series, nbytes: int) -> str:
    """Peak RSS and the CPU-time throughput (user + sys, less load-sensitive than wall)."""
    cpu = nbytes / MiB / series.median("cpu")
    return f"peak RSS {series.median('rss_mb'):.0f} MB, CPU {cpu:.1f} MB/s"


# --- data ------------------------------------------------------------------------------------

GENERATORS = {"fast": "genlog.py", "mixed": "genmixed.py"}
"""The two logs every row is reported on: ``fast``, the two line shapes the codec's per-line
fast path knows (genlog.py); ``mixed``, issue 15's mix of real-world shapes (genmixed.py)."""


def make_log(workdir: Path, size_mb: int, kind: str = "fast") -> Path:
    name = "train" if kind == "fast" else kind
    path = workdir / "logs" / f"{name}-{size_mb}m.log"
    if not path.exists() or path.stat().st_size != size_mb * MiB:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        subprocess.run([sys.executable, str(HERE / GENERATORS[kind]), str(tmp), str(size_mb)],
                       check=True)
        tmp.rename(path)
    return path


def count_lines(path: Path) -> int:
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(8 * MiB), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def run_folder(workdir: Path, log: Path) -> Path:
    """A folder holding only ``run.log`` (a symlink to the log): the files source's input."""
    folder = workdir / "src" / log.stem
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "run.log"
    if not link.is_symlink() or link.resolve() != log.resolve():
        link.unlink(missing_ok=True)
        link.symlink_to(log.resolve())
    return folder


def toml_value(value: Any) -> str:
    return json.dumps(value)  # JSON strings, numbers, lists are valid TOML for what we write


def write_config(path: Path, *, state: Path, source: dict[str, Any], sink: dict[str, Any],
                 settings: dict[str, Any] | None = None) -> Path:
    def table(name: str, values: dict[str, Any]) -> list[str]:
        lines, subs = [f"[{name}]"], []
        for key, value in values.items():
            if isinstance(value, dict):
                subs.append((key, value))
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                inline = ", ".join("{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in item.items())
                                   + "}" for item in value)
                lines.append(f"{key} = [{inline}]")
            else:
                lines.append(f"{key} = {toml_value(value)}")
        for key, value in subs:
            lines += table(f"{name}.{key}", value)
        return lines

    text = table("logarchive", {"state_dir": str(state), **(settings or {})})
    text += table("sources.src", source) + table("sinks.out", sink)
    text += ["[[pipelines]]", 'name = "bench"', 'source = "src"', 'sinks = ["out"]']
    path.write_text("\n".join(text) + "\n")
    return path


def export_cmd(config: Path) -> list[str]:
    return [LOGARCHIVE, "export", "-c", str(config)]


def fresh(*paths: Path) -> Callable[[], None]:
    def prepare() -> None:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True, exist_ok=True)
    return prepare


def stored(base: Path) -> int:
    """Bytes of the objects an export wrote under ``base`` (manifests and temp files left out)."""
    return sum(p.stat().st_size for p in (base / "archive").rglob("*")
               if p.is_file() and not p.name.endswith(".manifest.json")
               and ".logarchive-tmp" not in p.parts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the benchmarks ----------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.n = args.runs
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        quick = args.quick
        self.size_main = 128 if quick else 1024
        self.size_rss = 256 if quick else 2048
        self.size_s3 = 64 if quick else 500
        self.size_records = 16 if quick else 64
        self.small_runs = 200 if quick else 1000
        self.rows: list[Row] = []
        self.timings: dict[str, float] = {}
        self.kind = "fast"  # which generator's log (GENERATORS); main() runs each row on both

    def out(self, name: str) -> Path:
        return self.work / "out" / name

    def local_export(self, name: str, log: Path, fmt: str, compression: str = "none",
                     settings: dict[str, Any] | None = None, env: dict[str, str] | None = None
                     ) -> tuple[Callable[[], None], Callable[[], Sample]]:
        base = self.out(name)
        config = write_config(
            self.work / f"{name}.toml", state=base / "state",
            source={"type": "files", "url": str(run_folder(self.work, log))},
            sink={"type": "fs", "url": str(base / "archive"), "path": "{run_id}.{ext}",
                  "format": fmt, "compression": compression},
            settings=settings,
        )
        environ = {**os.environ, **env} if env else None
        return fresh(base), lambda: measure(export_cmd(config), env=environ)

    def add(self, row: Row) -> None:
        row.name = f"{row.name} [{self.kind} log]"
        row.load = os.getloadavg()[0]
        self.rows.append(row)
        print(format_row(row), flush=True)

    # txt -> txt vs cat + sha256sum
    def txt(self) -> None:
        log = make_log(self.work, self.size_main, self.kind)
        dst = self.out("cat") / "copy.txt"
        cat = (fresh(dst.parent), lambda: measure(f"cat {log} > {dst} && sha256sum {dst}"))
        la_series, base_series = interleave(self.n, [self.local_export("txt", log, "txt"), cat])
        la, base = throughput(la_series, log.stat().st_size), throughput(base_series,
                                                                          log.stat().st_size)
        ratio = la[0] / base[0]
        la_cpu, base_cpu = la_series.median("cpu"), base_series.median("cpu")
        self.add(Row(f"txt→txt {self.size_main} MiB, local, sha256 + line count", "MB/s", la,
                     "`cat src > dst && sha256sum dst`", base, ratio, "≥ 0.9x", ratio >= 0.9,
                     extra=f"peak RSS {la_series.median('rss_mb'):.0f} MB; CPU (user+sys) "
                     f"{la_cpu:.2f} s vs {base_cpu:.2f} s ({base_cpu / la_cpu:.2f}x)"))

    # txt -> ndjson vs jq
    def ndjson(self) -> None:
        log = make_log(self.work, self.size_main, self.kind)
        dst = self.out("jq") / "out.ndjson"
        jq = (fresh(dst.parent), lambda: measure(f"jq -Rc '{{message: .}}' {log} > {dst}"))
        per_line = self.local_export("ndjson-per-line", log, "ndjson",
                                     env={"LOGARCHIVE_CODEC": "per-line"})
        threads = self.local_export("ndjson-columnar2", log, "ndjson",
                                    env={"LOGARCHIVE_CODEC": "columnar",
                                         "LOGARCHIVE_CODEC_THREADS": "2"})
        la_series, base_series, *others = interleave(
            self.n, [self.local_export("ndjson", log, "ndjson"), jq, per_line, threads])
        size = log.stat().st_size
        la, base = throughput(la_series, size), throughput(base_series, size)
        ratio = la[0] / base[0]
        goal = 3 if self.kind == "fast" else 2  # issue 15: 3x on the fast shapes, 2x mixed
        self.add(Row(f"txt→ndjson {self.size_main} MiB, timestamp + level parsed (default: "
                     "columnar codec)", "MB/s", la,
                     "`jq -Rc '{message: .}'`", base, ratio, f"≥ {goal}x", ratio >= goal,
                     extra=_rss_cpu(la_series, size)))
        for series, label in zip(others, ["per-line codec (LOGARCHIVE_CODEC=per-line)",
                                          "columnar, LOGARCHIVE_CODEC_THREADS=2"]):
            got = throughput(series, size)
            self.add(Row(f"txt→ndjson {self.size_main} MiB, {label}", "MB/s", got,
                         "`jq -Rc '{message: .}'`", base, got[0] / base[0], f"≥ {goal}x",
                         got[0] / base[0] >= goal, extra=_rss_cpu(series, size)))

    # other formats: reported
    def formats(self) -> None:
        log = make_log(self.work, self.size_main, self.kind)
        size = log.stat().st_size
        for fmt, comp, label in [("json", "none", "txt→json array"),
                                 ("ndjson", "zstd", "txt→ndjson + zstd")]:
            (series,) = interleave(self.n, [self.local_export(f"{fmt}-{comp}", log, fmt, comp)])
            self.add(Row(f"{label} {self.size_main} MiB", "MB/s", throughput(series, size),
                         extra=f"peak RSS {series.median('rss_mb'):.0f} MB"))
        self.parquet(log)

    # Parquet + zstd vs jq, its size vs NDJSON + gzip of the same log (issue 15)
    def parquet(self, log: Path) -> None:
        size = log.stat().st_size
        dst = self.out("jq-pq") / "out.ndjson"
        jq = (fresh(dst.parent), lambda: measure(f"jq -Rc '{{message: .}}' {log} > {dst}"))
        gz_series, jq_series, pq_series = interleave(self.n, [
            self.local_export("ndjson-gzip", log, "ndjson", "gzip"), jq,
            self.local_export("parquet-zstd", log, "parquet", "zstd")])
        base = throughput(jq_series, size)
        gz, pq = throughput(gz_series, size), throughput(pq_series, size)
        self.add(Row(f"txt→ndjson + gzip {self.size_main} MiB", "MB/s", gz,
                     "`jq -Rc '{message: .}'`", base, gz[0] / base[0],
                     extra=f"peak RSS {gz_series.median('rss_mb'):.0f} MB"))
        shrink = 1 - stored(self.out("parquet-zstd")) / stored(self.out("ndjson-gzip"))
        ratio = pq[0] / base[0]
        self.add(Row(f"txt→parquet + zstd {self.size_main} MiB", "MB/s", pq,
                     "`jq -Rc '{message: .}'`", base, ratio, "≥ 2x, ≥ 20% smaller",
                     ratio >= 2 and shrink >= 0.2,
                     extra=f"{100 * shrink:.1f}% smaller than NDJSON + gzip; peak RSS "
                           f"{pq_series.median('rss_mb'):.0f} MB"))

    # peak RSS on a 2 GB log
    def rss(self) -> None:
        log = make_log(self.work, self.size_rss, self.kind)
        for name, fmt, comp, env in [
                ("txt", "txt", "none", None), ("ndjson", "ndjson", "none", None),
                ("ndjson, LOGARCHIVE_CODEC=per-line", "ndjson", "none",
                 {"LOGARCHIVE_CODEC": "per-line"}),
                ("parquet", "parquet", "zstd", None)]:
            (series,) = interleave(self.n, [self.local_export(f"rss-{fmt}", log, fmt, comp,
                                                              env=env)])
            med, lo, hi = series.spread("rss_mb")
            self.add(Row(f"peak RSS, {name} export of a {self.size_rss} MiB log", "MB",
                         (med, lo, hi), target="≤ 150 MB", passed=hi <= 150,
                         extra=f"{throughput(series, log.stat().st_size)[0]:.0f} MB/s"))

    # 1,000 small runs from a loopback REST server vs a sequential curl loop
    def rest(self) -> None:
        from logarchive.testing.servers import LoopbackServer
        from logarchive_rest.testing import TOKEN, TrainingAPI

        api = TrainingAPI()
        data = make_log(self.work, 16, self.kind).read_bytes()
        runs = []
        for i in range(self.small_runs):
            start = (i * 104_729) % (len(data) - 200_000)
            start = data.index(b"\n", start) + 1
            end = data.index(b"\n", start + 100 * 1024) + 1
            model, run = f"mdl-{i:04d}", f"run-{i:04d}"
            api.add(model, run, data[start:end])
            runs.append({"model_id": model, "run_id": run})
        total = sum(len(r.text) for m in api.models.values() for r in m)
        server = LoopbackServer(api).start()
        try:
            base = self.out("rest")
            config = write_config(
                self.work / "rest.toml", state=base / "state",
                source={"type": "rest", "preset": "training-metrics", "base_url": server.url,
                        "auth": {"bearer": TOKEN}, "runs": runs},
                sink={"type": "fs", "url": str(base / "archive"),
                      "path": "{model_id}/{run_id}.{ext}", "format": "txt"},
            )
            listing = self.work / "rest-runs.txt"
            listing.write_text("".join(f"{r['model_id']} {r['run_id']}\n" for r in runs))
            curl_out = self.out("curl")
            script = (
                f"while read m r; do curl -sSf -H 'Authorization: Bearer {TOKEN}' --create-dirs "
                f"-o {curl_out}/$m/$r.txt "
                f"\"{server.url}/api/v1/models/$m/training-metrics/logs/download?run_id=$r\" "
                f"|| exit 1; done < {listing}"
            )
            sides = [(fresh(base), lambda: measure(export_cmd(config))),
                     (fresh(curl_out), lambda: measure(script))]
            before = self.args.compare_src  # the same export by another tree's code, "before"
            if before:
                env = {**os.environ, "PYTHONPATH": f"{before}/src:{before}/plugins/fs/src"}
                sides.append((fresh(base), lambda: measure(export_cmd(config), env=env)))
            la_series, curl_series, *before_series = interleave(self.n, sides)
        finally:
            server.stop()
        got = sum(1 for _ in (base / "archive").rglob("*.txt"))
        if got != self.small_runs:
            raise RuntimeError(f"rest: {got} objects archived, expected {self.small_runs}")
        cu = curl_series.spread()
        name = (f"{self.small_runs} runs × 100 KB from a loopback REST server (seed 000), "
                "default workers (4)")
        for label, series in [("", la_series)] + [(f", before ({before})", s)
                                                   for s in before_series]:
            la = series.spread()
            ratio = cu[0] / la[0]
            self.add(Row(name + label, "s", la, "sequential `curl` loop", cu, ratio,
                         "≥ 5x faster", ratio >= 5,
                         extra=f"{self.small_runs / la[0]:.0f} runs/s, {total / MiB:.0f} MiB; "
                         f"CPU {series.median('cpu'):.2f} s (curl loop "
                         f"{curl_series.median('cpu'):.2f} s)"))

    # one 500 MB log to S3 (moto) vs rclone copyto
    def s3(self) -> None:
        import boto3

        log = make_log(self.work, self.size_s3, self.kind)
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_DEFAULT_REGION="us-east-1")
        moto = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            from logarchive.testing.servers import wait_for_port

            wait_for_port(port)
            client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                                  aws_secret_access_key="bench", region_name="us-east-1")
            client.create_bucket(Bucket="bench")

            def empty() -> None:
                for page in client.get_paginator("list_objects_v2").paginate(Bucket="bench"):
                    for obj in page.get("Contents", []):
                        client.delete_object(Bucket="bench", Key=obj["Key"])

            base = self.out("s3")
            config = write_config(
                self.work / "s3.toml", state=base / "state",
                source={"type": "files", "url": str(run_folder(self.work, log))},
                sink={"type": "fs", "url": "s3://bench/logarchive", "path": "{run_id}.{ext}",
                      "format": "txt", "storage_options": {"client_kwargs": {"endpoint_url":
                                                                             endpoint}}},
            )
            renv = {**env, "RCLONE_CONFIG_MOTO_TYPE": "s3", "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
                    "RCLONE_CONFIG_MOTO_ENDPOINT": endpoint,
                    "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": "bench",
                    "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": "bench"}

            def prep_la() -> None:
                empty()
                fresh(base)()

            la_series, rc_series = interleave(self.n, [
                (prep_la, lambda: measure(export_cmd(config), env=env)),
                (empty, lambda: measure(["rclone", "copyto", str(log), "moto:bench/rclone/run.log"],
                                        env=renv)),
            ])
            size = log.stat().st_size
            head = client.head_object(Bucket="bench", Key="rclone/run.log")
            if head["ContentLength"] != size:
                raise RuntimeError("rclone upload has the wrong size")
        finally:
            moto.terminate()
            moto.wait()
        la, rc = throughput(la_series, size), throughput(rc_series, size)
        ratio = la[0] / rc[0]
        self.add(Row(f"one {self.size_s3} MiB log to S3 (moto server)", "MB/s", la,
                     "`rclone copyto`", rc, ratio, "≥ 0.9x", ratio >= 0.9,
                     extra=f"peak RSS {la_series.median('rss_mb'):.0f} MB"))

    # lines/s to loopback Splunk HEC and Datadog
    RECORD_SETTINGS = [  # (what, environment, sink keys); Splunk's requests: 1 MB, any count
        ("default settings", {}, {}),
        ("tuned: max_in_flight 4, gzip level 1 (Splunk: batch_max_events 10000)", {},
         {"max_in_flight": 4, "compression_level": 1}),
        ("tuned as above, per-line codec", {"LOGARCHIVE_CODEC": "per-line"},
         {"max_in_flight": 4, "compression_level": 1}),
    ]

    def records(self) -> None:
        """lines/s of one run to a receiver in its own process that only decompresses and
        counts (benchmarks/count_receiver.py), default and tuned settings interleaved; CPU
        seconds (user + sys) of the export beside each figure."""
        log = make_log(self.work, self.size_records, self.kind)
        lines = count_lines(log)
        for label, sink_type, key in (("Splunk HEC", "splunk", "token"),
                                      ("Datadog logs intake", "datadog", "api_key")):
            with count_receiver() as url:
                sides = []
                for n, (_, env, sink_extra) in enumerate(self.RECORD_SETTINGS):
                    base = self.out(f"{sink_type}-{n}")
                    config = write_config(
                        self.work / f"{sink_type}-{n}.toml", state=base / "state",
                        source={"type": "files", "url": str(run_folder(self.work, log))},
                        sink={"type": sink_type, "url": url, key: "bench", **sink_extra,
                              **({"batch_max_events": 10_000}
                                 if sink_extra and sink_type == "splunk" else {})})
                    environ = {**os.environ, **env}
                    sides.append((fresh(base), lambda config=config, environ=environ:
                                  measure(export_cmd(config), env=environ)))
                series = interleave(self.n, sides)
                seen = received(url)
            if seen < lines * self.n * len(sides):
                raise RuntimeError(f"{label}: {seen} events counted, expected "
                                   f"≥ {lines * self.n * len(sides)}")
            for (what, _, _), each in zip(self.RECORD_SETTINGS, series):
                value = rate(each, lines)
                self.add(Row(f"lines/s to a loopback {label} ({lines:,} lines, one run), {what}",
                             "lines/s", value, target="≥ 100,000 lines/s",
                             passed=value[0] >= 100_000,
                             extra=f"CPU {each.median('cpu'):.2f} s, peak RSS "
                                   f"{each.median('rss_mb'):.0f} MB"))


@contextlib.contextmanager
def count_receiver() -> Iterator[str]:
    """benchmarks/count_receiver.py in its own process (decompress and count, nothing else):
    its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "count_receiver.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                received(url)
                break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait()


def received(url: str) -> int:
    """Events counted so far by a :func:`count_receiver`."""
    with urllib.request.urlopen(f"{url}/count", timeout=5) as answer:
        return int(answer.read())


BENCHMARKS = ["txt", "ndjson", "formats", "rss", "rest", "s3", "records"]
EXECUTOR_BENCHMARKS = ["scaling", "aggregators"]  # issue 17: benchmarks/scaling_bench.py


# --- report ------------------------------------------------------------------------------------

def fmt_num(value: float, unit: str) -> str:
    if unit == "lines/s":
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:.2f}"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def fmt_spread(value: tuple[float, float, float] | None, unit: str) -> str:
    if value is None:
        return "—"
    med, lo, hi = value
    return f"{fmt_num(med, unit)} {unit} ({fmt_num(lo, unit)}–{fmt_num(hi, unit)})"


def format_row(row: Row) -> str:
    verdict = "—" if row.passed is None else ("**pass**" if row.passed else "**MISS**")
    ratio = "—" if row.ratio is None else f"{row.ratio:.2f}x"
    return (f"| {row.name} | {fmt_spread(row.value, row.unit)} | {row.baseline_name or '—'} | "
            f"{fmt_spread(row.baseline, row.unit)} | {ratio} | {row.target} | {verdict} | "
            f"{row.extra} | {row.load:.2f} |")


HEADER = ("| benchmark | logarchive: median (min–max) | baseline | baseline: median (min–max) | "
          "ratio | target | result | notes | load avg |\n"
          "|---|---|---|---|---|---|---|---|---|")


def machine() -> dict[str, str]:
    mem = "?"
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for tool, argv in {"jq": ["jq", "--version"], "rclone": ["rclone", "--version"],
                       "curl": ["curl", "--version"]}.items():
        try:
            versions[tool] = subprocess.run(argv, capture_output=True, text=True,
                                            check=False).stdout.splitlines()[0]
        except (OSError, IndexError):
            versions[tool] = "missing"
    return {"cores": str(os.cpu_count()), "cpu": cpu, "memory": mem,
            "python": platform.python_version(), "os": platform.platform(), **versions}


USAGE = """\
## Running the benchmarks

```
python benchmarks/run.py            # full sizes (1 GiB, 2 GiB, 500 MiB...), writes this file
python benchmarks/run.py --quick    # small sizes, a few minutes, prints the table
python benchmarks/run.py --only txt,ndjson --runs 5 --logs mixed
python benchmarks/kernels.py LOG                 # pyarrow vs polars, in-process vs a 2-process pool
python benchmarks/profile_records.py LOG datadog # py-spy shares of an aggregator export
```

Run it with the venv that has logarchive and its plugins installed (`pip install -r
requirements-dev.txt`); it needs `jq`, `curl` and `rclone` on the PATH (Debian packages) and
about 5 GB free in `--workdir` (default `/tmp/logarchive-bench`, generated logs are kept there).
Benchmarks: `txt`, `ndjson`, `formats`, `rss`, `rest`, `s3`, `records`. It is not part of the
test suite: no test asserts a time.

How it measures: the logarchive side is the real CLI, `logarchive export -c FILE`, in its own
process (start-up, config, discovery, ledger, manifests, fsync all count); its peak RSS is that
process's `ru_maxrss`. Baseline and logarchive samples alternate (baseline, logarchive,
baseline, ...), so load from other processes hits both sides alike; ratios are of medians.
Logs come from `benchmarks/genlog.py` (ISO timestamps, levels, epochs, losses, about 1 in 2,000
lines 2 KB–200 KB long, some invalid UTF-8) and `benchmarks/genmixed.py` (issue 15's mix of
real-world line shapes), read from the page cache; every row runs on both (`--logs`).
The columnar codec is the default with the `[parquet]` extra; `LOGARCHIVE_CODEC=per-line` makes an export use the per-line one (the ndjson rows measure both).
"""


def write_report(path: Path, rows: list[Row], info: dict[str, str], args: argparse.Namespace,
                 elapsed: float, loads: tuple[tuple[float, ...], tuple[float, ...]]) -> None:
    misses = [r for r in rows if r.passed is False]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `benchmarks/run.py{' --quick' if args.quick else ''}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}; {args.runs} samples per figure; "
        f"the whole run took {elapsed / 60:.1f} min.",
        "",
        f"Machine: {info['cores']} cores ({info['cpu']}), {info['memory']} memory, Python "
        f"{info['python']}, {info['os']}. Baselines: {info['jq']}, {info['rclone']}, "
        f"{info['curl'].split(' (')[0]}.",
        f"Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in loads[0])}, at end "
        f"{', '.join(f'{x:.2f}' for x in loads[1])}: other engineers' test suites were running "
        "on the same 2 cores, which is why every ratio compares samples taken back to back.",
        "",
        HEADER,
        *[format_row(r) for r in rows],
        "",
        "Ratio: logarchive's throughput over the baseline's (for the REST row: the curl loop's "
        "time over logarchive's), from the medians. Load avg: 1-minute load when the row finished.",
        "",
    ]
    if misses:
        lines.append("Rows that miss their target: " + "; ".join(r.name for r in misses) + ". "
                     "What bounds them is in the analysis below.")
    else:
        lines.append("Every row meets its target.")
    lines.append("")
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    lines.append(USAGE)
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--runs", type=int, default=3, help="samples per figure (default 3)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {BENCHMARKS}")
    parser.add_argument("--logs", default="fast,mixed",
                        help=f"comma-separated subset of {list(GENERATORS)} (default: both)")
    parser.add_argument("--workdir", default="/tmp/logarchive-bench")
    parser.add_argument("--compare-src", metavar="DIR", help="rest: also time the export with "
                        "the code of another tree (DIR/src, DIR/plugins/fs/src; e.g. `git archive "
                        "main src plugins/fs/src | tar -x -C DIR`), side by side: before/after")
    parser.add_argument("--out", help="report file (default: docs/benchmarks.md for a full "
                        "run of every benchmark, none otherwise)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from "
                        "the last run's results.json (after editing benchmarks/NOTES.md)")
    args = parser.parse_args()
    if args.report_only:
        saved = json.loads((Path(args.workdir) / "results.json").read_text())
        rows = [Row(**{k: tuple(v) if isinstance(v, list) else v for k, v in r.items()})
                for r in saved["rows"]]
        args.quick, args.runs = saved["quick"], saved["runs"]
        out = args.out or str(REPO / "docs" / "benchmarks.md")
        write_report(Path(out), rows, saved["info"], args, saved["elapsed"],
                     tuple(tuple(x) for x in saved["loads"]))
        print(f"wrote {out}")
        return
    chosen = [b for b in args.only.split(",") if b] or BENCHMARKS + EXECUTOR_BENCHMARKS
    unknown = set(chosen) - set(BENCHMARKS + EXECUTOR_BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {BENCHMARKS}")
    out = args.out
    if out is None and not args.quick and chosen == BENCHMARKS + EXECUTOR_BENCHMARKS:
        out = str(REPO / "docs" / "benchmarks.md")
    started = time.monotonic()
    load_start = os.getloadavg()
    info = machine()
    bench = Bench(args)
    print(HEADER, flush=True)
    failed = []
    kinds = [k for k in args.logs.split(",") if k]
    for name in chosen:
        t0 = time.monotonic()
        for kind in kinds:
            bench.kind = kind
            try:
                if name in EXECUTOR_BENCHMARKS:
                    from scaling_bench import EXTRA

                    EXTRA[name](bench)
                else:
                    getattr(bench, name)()
            except Exception as exc:  # report the others
                failed.append(f"{name} [{kind}]")
                print(f"benchmark {name} [{kind} log] failed: {exc}", file=sys.stderr, flush=True)
        bench.timings[name] = time.monotonic() - t0
    elapsed = time.monotonic() - started
    print(f"\ntook {elapsed:.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in
                                                  bench.timings.items()), flush=True)
    loads = (load_start, os.getloadavg())
    raw = bench.work / "results.json"
    raw.write_text(json.dumps({"rows": [r.__dict__ for r in bench.rows], "info": info,
                               "elapsed": elapsed, "loads": loads, "quick": args.quick,
                               "runs": args.runs}, indent=1))
    if out:
        write_report(Path(out), bench.rows, info, args, elapsed, loads)
        print(f"wrote {out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
