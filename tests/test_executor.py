"""The Dask executor through the real CLI, on a real LocalCluster of worker processes.

One LocalCluster (two worker processes) serves the module; exports reach it with
``[logarchive.executor] address`` set to its scheduler on 127.0.0.1, so the workers share the
state_dir and the archive with the test. Receivers are the strict loopback Splunk HEC and Datadog
intake of the plugins' testing modules.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import fsspec
import pytest

distributed = pytest.importorskip("distributed")

from logarchive_datadog.testing import API_KEY, IntakeReceiver  # noqa: E402
from logarchive_splunk.testing import TOKEN, HecReceiver  # noqa: E402
from logarchive_testsupport.processes import (  # noqa: E402
    EXE, check_archive, ledger_statuses, make_logs, run_export, start_export, write_config,
)

from logarchive.batching import event_id  # noqa: E402
from logarchive.executor import running_tasks  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                  dashboard_address=None, silence_logs=40) as local, \
            distributed.Client(local) as client:
        yield client


def receivers(delay: float = 0.0) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    hec, intake = HecReceiver(ack=True).start(), IntakeReceiver().start()
    hec.delay = intake.delay = delay
    fast = {"http": {"retry": {"backoff_initial": 0.01, "backoff_max": 0.05}},
            "batch_max_events": 500}
    tables = {
        "splunk": {"type": "splunk", "url": hec.url, "token": TOKEN, "ack": True,
                   "ack_poll_interval": 0.01, **fast},
        "datadog": {"type": "datadog", "url": intake.url, "api_key": API_KEY, **fast},
    }
    return tables, {"splunk": hec, "datadog": intake}


def config_for(work: Path, logs: Path, aggregators: dict[str, dict[str, Any]],
               executor: dict[str, Any] | None) -> Path:
    sinks = {"archive": {"type": "fs", "url": str(work / "archive"),
                         "path": "{model_id}/{run_id}.{ext}"},
             "packed": {"type": "fs", "url": str(work / "packed"), "format": "ndjson",
                        "compression": "gzip", "path": "{model_id}/{run_id}.{ext}"},
             **aggregators}
    work.mkdir(parents=True, exist_ok=True)
    path = write_config(work / "c.toml", work / "state", logs, sinks, workers=4)
    if executor is not None:
        path.write_text(path.read_text() + "\n[logarchive.executor]\n" + "".join(
            f"{key} = {json.dumps(value)}\n" for key, value in executor.items()))
    return path


def digests(root: Path) -> dict[str, str]:
    """sha256 of every object (manifests hold the export time: compared apart)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".json")}


def received(receiver: Any) -> Counter[tuple[str | None, str]]:
    return Counter((e.event_id, e.message) for e in receiver.events())


def wait_idle(client: Any) -> None:
    """Until no worker delivers a run of any export (tasks of a killed coordinator stop at
    their next chunk)."""
    while any(client.run(running_tasks).values()):
        time.sleep(0.05)


def test_cluster_export_equals_threads_export(tmp_path: Path, cluster: Any) -> None:
    logs = make_logs(tmp_path / "logs", runs=6, lines_per_run=2000)
    outputs = {}
    for name, executor in [("threads", None),
                           ("dask", {"type": "dask", "address": cluster.scheduler.address})]:
        work = tmp_path / name
        aggregators, live = receivers()
        try:
            done = run_export(config_for(work, tmp_path / "logs", aggregators, executor),
                              "--json")
        finally:
            for receiver in live.values():
                receiver.stop()
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert (summary["exported"], summary["failed"]) == (6, 0)
        assert check_archive(fsspec.filesystem("file"), str(work / "archive"), logs, "txt") == []
        outputs[name] = (digests(work / "archive"), digests(work / "packed"),
                         {k: received(r) for k, r in live.items()},
                         sorted(r["run"] for r in summary["runs"]))
    assert outputs["dask"] == outputs["threads"]
    assert all(n == 1 for counts in outputs["dask"][2].values() for n in counts.values())
    config = config_for(tmp_path / "dask", tmp_path / "logs", {}, executor)
    again = run_export(config, "--json")
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["exported"], json.loads(again.stdout)["skipped"]) == (0, 6)
    # verify re-reads the objects in Dask tasks: a flipped byte is found
    victim = tmp_path / "dask" / "packed" / "m" / "run-3.ndjson.gz"
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    checked = subprocess.run([EXE, "verify", "-c", str(config), "--json"], capture_output=True,
                             text=True, timeout=120)
    assert checked.returncode == 1, checked.stderr
    reports = {r["sink"]: r for r in json.loads(checked.stdout)["sinks"]}
    assert (reports["archive"]["passed"], reports["archive"]["ok"]) == (True, 6)
    assert [(f["kind"], f["path"]) for f in reports["packed"]["findings"]] == [
        ("corrupt", "m/run-3.ndjson.gz")]


class ConcurrencyHec(HecReceiver):
    """The strict HEC receiver, noting the most requests it served at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = self.most = 0
        self.gauge = threading.Lock()

    def handle(self, request: Any) -> None:
        with self.gauge:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            super().handle(request)
        finally:
            with self.gauge:
                self.now -= 1


@pytest.mark.parametrize("executor", ["threads", "dask"])
def test_max_connections_caps_requests_across_the_cluster(tmp_path: Path, cluster: Any,
                                                          executor: str) -> None:
    """4 runs on 4 threads (under Dask: in 2 worker processes), 4 batches in flight per run:
    at most max_connections = 2 requests reach the receiver at once, every line arrives."""
    logs = make_logs(tmp_path / "logs", runs=4, lines_per_run=1500)
    hec = ConcurrencyHec().start()
    hec.delay = 0.02
    try:
        config = config_for(tmp_path, tmp_path / "logs", {"splunk": {
            "type": "splunk", "url": hec.url, "token": TOKEN, "batch_max_events": 100,
            "max_in_flight": 4, "max_connections": 2}},
            {"type": executor, **({"address": cluster.scheduler.address}
                                  if executor == "dask" else {})})
        done = run_export(config)
        assert done.returncode == 0, done.stderr
        assert check_received(hec, logs, in_flight=0) == []
        assert 1 <= hec.most <= 2
    finally:
        hec.stop()


def test_export_starts_its_own_local_cluster(tmp_path: Path) -> None:
    """No address: the export starts a LocalCluster; its workers' logs (with -v) go to the
    export's stderr, and no secret of the config is in them."""
    logs = make_logs(tmp_path / "logs", runs=3, lines_per_run=200)
    aggregators, live = receivers()
    try:
        config = config_for(tmp_path, tmp_path / "logs", aggregators,
                            {"type": "dask", "processes": 1})
        done = subprocess.run([EXE, "-v", "export", "-c", str(config), "--json"],
                              capture_output=True, text=True, timeout=240)
    finally:
        for receiver in live.values():
            receiver.stop()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exported"] == 3
    assert check_archive(fsspec.filesystem("file"), str(tmp_path / "archive"), logs, "txt") == []
    assert '"event": "run_exported"' in done.stderr  # the workers' own log lines
    assert TOKEN not in done.stderr + done.stdout and API_KEY not in done.stderr + done.stdout
    for receiver in live.values():
        assert check_received(receiver, logs, in_flight=0) == []


def check_received(receiver: Any, logs: dict[str, bytes], in_flight: int) -> list[str]:
    """Every line at least once; lines sent twice only from batches in flight at the kill."""
    expected = {event_id("logs", f"logs/model_id=m/run_id={run}", seq)
                for run, data in logs.items() for seq in range(1, data.count(b"\n") + 1)}
    counts = Counter(e.event_id for e in receiver.events())
    problems = []
    if expected - set(counts):
        problems.append(f"{len(expected - set(counts))} lines missing")
    if set(counts) - expected:
        problems.append("events with unknown ids")
    twice = {i for i, n in counts.items() if n > 1}
    resent = [a for a in receiver.accepted if {e.event_id for e in a.events} & twice]
    if len(resent) > 2 * in_flight:  # each resent batch: the original and the resend
        problems.append(f"{len(resent)} requests carry resent lines (> {2 * in_flight})")
    return problems


def attempts(state: Path) -> dict[tuple[str, str], int]:
    """How many times each (run, sink) delivery was started."""
    with closing(sqlite3.connect(state / "ledger.sqlite3")) as db:
        return {(r, s): n for r, s, n in db.execute("SELECT run_key, sink, attempts "
                                                    "FROM deliveries")}


def busy_worker(client: Any) -> str:
    """The address of a worker that is delivering a run now."""
    while True:
        for address, count in client.run(running_tasks).items():
            if count:
                return address
        time.sleep(0.02)


@pytest.mark.parametrize("victim", ["worker", "coordinator", "sigterm"])
def test_killed_or_stopped_mid_export_then_the_rest_completes(tmp_path: Path, cluster: Any,
                                                             victim: str) -> None:
    """SIGKILL of a worker process (its task runs again elsewhere and resumes through the
    ledger) or of the coordinator (the next export completes the rest), or SIGTERM of the
    coordinator (its runs in flight stop on the workers, exit 143, the next export completes
    the rest): every run archived once, every line received, resent lines only from the
    batches in flight."""
    logs = make_logs(tmp_path / "logs", runs=4, lines_per_run=5000)
    aggregators, live = receivers(delay=0.01)
    config = config_for(tmp_path, tmp_path / "logs", aggregators,
                        {"type": "dask", "address": cluster.scheduler.address})
    try:
        process = start_export(config)
        worker = busy_worker(cluster)
        while not any(len(r.accepted) for r in live.values()):
            time.sleep(0.01)
        assert process.poll() is None  # the kill falls inside the export
        if victim == "worker":
            os.kill(cluster.run(os.getpid, workers=[worker])[worker], signal.SIGKILL)
            _, err = process.communicate(timeout=240)
            assert process.returncode == 0, err
            assert max(attempts(tmp_path / "state").values()) >= 2  # a task ran again
        elif victim == "sigterm":
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=120)
            assert process.returncode == 128 + signal.SIGTERM, err
            assert "interrupted" in out, out
            assert not any(cluster.run(running_tasks).values())  # stopped before it exited
            assert ledger_statuses(tmp_path / "state").count("delivered") < 4 * len(logs)
            second = run_export(config)
            assert second.returncode == 0, second.stdout + second.stderr
        else:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            wait_idle(cluster)
            assert ledger_statuses(tmp_path / "state").count("delivered") < 4 * len(logs)
            second = run_export(config)
            assert second.returncode == 0, second.stdout + second.stderr
        assert set(ledger_statuses(tmp_path / "state")) == {"delivered"}
        for root, fmt in (("archive", "txt"), ("packed", "ndjson")):
            assert check_archive(fsspec.filesystem("file"), str(tmp_path / root), logs,
                                 fmt) == []
        # in flight at the kill: max_in_flight (1) batch per run being delivered, and at
        # most 4 runs (the cluster's threads) were being delivered
        for name, receiver in live.items():
            assert check_received(receiver, logs, in_flight=4) == [], name
    finally:
        for receiver in live.values():
            receiver.stop()
    if victim == "worker":
        cluster.wait_for_workers(2, timeout=60)


def test_remote_scheduler_with_local_state_is_a_config_error(tmp_path: Path) -> None:
    make_logs(tmp_path / "logs", runs=1, lines_per_run=10)
    config = config_for(tmp_path, tmp_path / "logs", {},
                        {"type": "dask", "address": "tcp://192.0.2.10:8786"})
    done = subprocess.run([EXE, "export", "-c", str(config)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert "192.0.2.10:8786 is not on this host" in done.stderr
    assert "the ledger is SQLite" in done.stderr
    assert f"sink 'archive' archives to the local path {tmp_path / 'archive'}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "archive").exists()


def test_a_task_rebuilds_the_config_it_was_given(tmp_path: Path) -> None:
    """What a worker parses (the interpolated document, without the environment) is the
    coordinator's config: a secret from the environment with a `$` in it, a `$$` literal."""
    from logarchive.config import load_config
    from logarchive.executor import ConfigSpec

    path = tmp_path / "c.toml"
    path.write_text(
        '[logarchive]\nstate_dir = "st$$te"\n[logarchive.executor]\ntype = "dask"\n'
        '[sources.logs]\ntype = "files"\nurl = "logs"\n'
        "fields = '(?P<run_id>[^/]+)\\.log$'\n"
        '[sinks.splunk]\ntype = "splunk"\nurl = "http://127.0.0.1:9"\ntoken = "${HEC_TOKEN}"\n')
    config = load_config(path, environ={"HEC_TOKEN": "a$b${c}"})
    spec = ConfigSpec.of(config, "export-1")
    rebuilt = spec.load()
    assert rebuilt.settings == config.settings and rebuilt.state_dir == tmp_path / "st$te"
    assert rebuilt.sinks["splunk"].config.token.get_secret_value() == "a$b${c}"
    assert rebuilt.sources["logs"].config == config.sources["logs"].config
    assert "a$b" not in repr(spec)


def test_cluster_export_with_a_postgresql_ledger(tmp_path: Path, cluster: Any,
                                                pg_url: str) -> None:
    """The workers record into the shared PostgreSQL ledger (claims with leases): every run
    archived and received once, and a second export finds them all delivered."""
    pytest.importorskip("psycopg")
    logs = make_logs(tmp_path / "logs", runs=4, lines_per_run=500)
    aggregators, live = receivers()
    config = config_for(tmp_path, tmp_path / "logs", aggregators,
                        {"type": "dask", "address": cluster.scheduler.address})
    config.write_text(config.read_text().replace(
        "[logarchive]\n", f"[logarchive]\nledger = {json.dumps(pg_url)}\n", 1))
    try:
        first, second = run_export(config, "--json"), run_export(config, "--json")
    finally:
        for receiver in live.values():
            receiver.stop()
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout)["exported"] == 4
    assert (json.loads(second.stdout)["exported"], json.loads(second.stdout)["skipped"]) == (0, 4)
    assert not (tmp_path / "state" / "ledger.sqlite3").exists()
    assert check_archive(fsspec.filesystem("file"), str(tmp_path / "archive"), logs, "txt") == []
    for receiver in live.values():
        assert check_received(receiver, logs, in_flight=0) == []


def test_a_sink_given_up_on_one_worker_is_given_up_on_every_worker(tmp_path: Path,
                                                                    cluster: Any) -> None:
    """A Splunk token the receiver refuses (a fatal error for the sink): the first run that
    tries gives the sink up for the whole export, on every worker process. One refused
    request in all; that run is recorded failed at the sink, the others stay pending (deferred)
    for the next export; every run is archived."""
    logs = make_logs(tmp_path / "logs", runs=8, lines_per_run=50)
    hec = HecReceiver(token="the-right-token").start()
    try:
        config = config_for(tmp_path, tmp_path / "logs", {"splunk": {
            "type": "splunk", "url": hec.url, "token": TOKEN}},
            {"type": "dask", "address": cluster.scheduler.address})
        config.write_text(config.read_text().replace("workers = 4", "workers = 1"))
        done = run_export(config, "--json")
    finally:
        hec.stop()
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    states = Counter(r["sinks"]["splunk"].split(" ")[0].rstrip(":") for r in summary["runs"])
    assert states == {"failed": 1, "deferred": 7}, summary["runs"]
    assert len(hec.server.requests) == 1  # the first run's request; no other worker tried
    assert check_archive(fsspec.filesystem("file"), str(tmp_path / "archive"), logs, "txt") == []
    with closing(sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")) as db:
        assert [s for (s,) in db.execute("SELECT status FROM deliveries WHERE sink = 'splunk'")
                ] == ["failed"]
    assert TOKEN not in done.stdout + done.stderr


def test_a_ledger_gone_mid_export_prints_the_summary(tmp_path: Path, cluster: Any,
                                                     pg_url: str) -> None:
    """The PostgreSQL ledger stops answering when a worker claims the second run (workers =
    1): the export prints the summary a threads export prints (1 exported, 2 failed naming the
    ledger, the third "not started") and exits 1, without a traceback."""
    from logarchive_testsupport.postgres import CuttableProxy

    make_logs(tmp_path / "logs", runs=3, lines_per_run=10)
    proxy = CuttableProxy.to(pg_url, b"INSERT INTO claims", after=2)
    config = config_for(tmp_path, tmp_path / "logs", {},
                        {"type": "dask", "address": cluster.scheduler.address})
    config.write_text(config.read_text().replace("workers = 4", "workers = 1").replace(
        "[logarchive]\n", f"[logarchive]\nledger = {json.dumps(proxy.url)}\n", 1))
    try:
        done = run_export(config, timeout=120)
    finally:
        proxy.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "exported 1 run(s)" in done.stdout and "failed 2" in done.stdout, done.stdout
    failed = [line for line in done.stdout.splitlines() if line.startswith("failed ")]
    place = f"ledger postgresql://***@127.0.0.1:{proxy.port}/{proxy.database}"
    assert len(failed) == 2 and all(place in line for line in failed), done.stdout
    assert any("not started, the ledger stopped answering: " in line for line in failed)
    assert "Traceback" not in done.stderr
