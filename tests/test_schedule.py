"""Running on a schedule, with real `logarchive export` processes: two exports at once on the
same state never deliver a run twice; SIGTERM/SIGINT mid-export stops cleanly (no partial
object, state recorded, exit 143/130) and the next export completes the work.

A named pipe (FIFO) stands in for a slow source: the export reading it stays mid-run, holding the
run's claim, for as long as the test feeds it, so the overlap is certain, not a matter of timing.
fsspec's local files cannot open a FIFO (they seek), so those processes run the real CLI with one
extra source type, ``fifo-files``: the ``files`` source reading with a plain ``open()``.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from logarchive.ledger import SQLiteLedger
from logarchive.runs import RunRef
from logarchive_testsupport.archives import archive_config, make_runs, write_config
from logarchive.testing.fixtures import Bucket

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and FIFOs")

EXE = str(Path(sys.executable).parent / "logarchive")
FIFO_RUN = "mdl-a/r00"  # sorts first: the first run a single worker takes
CHUNK = 4096


FIFO_SOURCE = """
from contextlib import contextmanager
from typing import Literal

from logarchive_files import FilesConfig, FilesSource
from logarchive.plugin_api import hookimpl


class FifoFilesConfig(FilesConfig):
    type: Literal["fifo-files"] = "fifo-files"


class FifoFilesSource(FilesSource):
    type = "fifo-files"
    description = "files, read with a plain open() so a FIFO works"
    Config = FifoFilesConfig

    @contextmanager
    def open(self, run):
        with open(run.locator, "rb", buffering=0) as handle:
            yield iter(lambda: handle.read(self.chunk_size), b"")


@hookimpl
def logarchive_register_sources(register):
    register(FifoFilesSource)
"""

LAUNCHER = """
import sys
sys.path.insert(0, sys.argv.pop(1))
import fifo_source
from logarchive import logsetup as lalog
lalog.configure(0)  # as the CLI does first: logs to stderr, stdout stays the JSON summary
from logarchive.plugins import default_registry
default_registry().register(fifo_source, name="fifo-files")
from logarchive.cli import main
main(prog_name="logarchive")
"""


def start(config: Path, *args: str) -> subprocess.Popen[str]:
    """A real export process; with the fifo-files source when the config uses it."""
    command = [EXE]
    if "fifo-files" in config.read_text():
        (config.parent / "fifo_source.py").write_text(FIFO_SOURCE)
        command = [sys.executable, "-c", LAUNCHER, str(config.parent)]
    return subprocess.Popen([*command, "export", "-c", str(config), "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, json.loads(out) if out.strip() else {}, err


def run_key(name: str) -> str:
    model, run = name.split("/")
    return f"training/model_id={model}/run_id={run}"


def lock_held(state: Path, name: str) -> bool:
    model, run = name.split("/")
    key_hash = RunRef("training", {"model_id": model, "run_id": run}).key_hash
    path = state / "locks" / f"{key_hash}.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def wait_until(condition: Any, what: str, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"export exited ({proc.returncode}) before {what}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


class Feeder(threading.Thread):
    """Writes log lines into a FIFO until told to finish (then closes it: end of the log) or
    until the reader goes away."""

    def __init__(self, fifo: Path) -> None:
        super().__init__(daemon=True)
        self.fifo = fifo
        self.written = 0
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        line = b"2026-01-01T00:00:00Z [INFO] streaming from a slow source\n"
        chunk = (line * (CHUNK // len(line) + 1))[:CHUNK - 1] + b"\n"
        try:
            with open(self.fifo, "wb", buffering=0) as pipe:
                while not self.done.is_set():
                    pipe.write(chunk)
                    self.written += len(chunk)
                    time.sleep(0.005)
        except BrokenPipeError:
            pass
        except BaseException as exc:  # pragma: no cover - reported by the test
            self.error = exc


def fifo_config(tmp_path: Path, storage: Bucket, others: dict[str, float], workers: int) -> Path:
    make_runs(tmp_path / "logs", others)
    fifo = tmp_path / "logs" / f"{FIFO_RUN}.log"
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    url = f"{storage.url}/archive" if "://" in storage.url else storage.url
    document = archive_config(tmp_path, url, storage_options=storage.storage_options,
                              workers=workers)
    document["logarchive"]["chunk_size"] = CHUNK
    document["sources"]["training"]["type"] = "fifo-files"
    return write_config(tmp_path / "logarchive.toml", document)


def archived(storage: Bucket) -> list[str]:
    """Every file or object under the archive root, temporary ones included."""
    if "://" not in storage.url:
        root = Path(storage.url)
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) \
            if root.exists() else []
    fs = storage.fs()
    root = f"{storage.url.split('://', 1)[1]}/archive"
    try:
        return sorted(p[len(root) + 1:] for p in fs.find(root))
    except FileNotFoundError:
        return []


def test_two_exports_started_at_once_deliver_each_run_once(tmp_path: Path) -> None:
    names = {f"mdl-{m}/r{i:02d}": 1 for m in "abc" for i in range(20)}
    make_runs(tmp_path / "logs", names, size=2000)
    config = write_config(tmp_path / "logarchive.toml",
                          archive_config(tmp_path, str(tmp_path / "archive"), workers=2))
    procs = [start(config), start(config)]
    results = [finish(p) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    exported: dict[str, int] = {}
    for _, summary, _ in results:
        for run in summary["runs"]:
            assert run["status"] in ("exported", "skipped", "locked"), run
            if run["status"] == "exported":
                exported[run["run"]] = exported.get(run["run"], 0) + 1
    assert exported == {run_key(n): 1 for n in names}
    ledger = SQLiteLedger(tmp_path / "state")
    rows = list(ledger.deliveries())
    assert len(rows) == len(names)
    assert all(d.status == "delivered" and d.attempts == 1 for d in rows)
    files = archived(Bucket(str(tmp_path / "archive"), "", {}, ""))
    assert len(files) == 2 * len(names) and not [f for f in files if "partial" in f]


def test_a_run_claimed_by_one_export_is_left_alone_by_the_other(tmp_path: Path) -> None:
    storage = Bucket(str(tmp_path / "archive"), "", {}, "")
    others = {f"mdl-b/r{i:02d}": 1 for i in range(6)}
    config = fifo_config(tmp_path, storage, others, workers=2)
    first = start(config)
    feeder = Feeder(tmp_path / "logs" / f"{FIFO_RUN}.log")
    feeder.start()
    wait_until(lambda: lock_held(tmp_path / "state", FIFO_RUN), "the first export claims r00",
               first)
    second = start(config)
    code2, summary2, err2 = finish(second)  # runs to the end while the first is mid-run
    assert code2 == 0, err2
    status2 = {r["run"]: r["status"] for r in summary2["runs"]}
    assert status2[run_key(FIFO_RUN)] == "locked"
    assert lock_held(tmp_path / "state", FIFO_RUN) and first.poll() is None
    feeder.done.set()  # end of the slow log: the first export completes it
    code1, summary1, err1 = finish(first)
    assert code1 == 0, err1
    status1 = {r["run"]: r["status"] for r in summary1["runs"]}
    assert status1[run_key(FIFO_RUN)] == "exported"
    for name in others:  # every other run went out exactly once, by one of the two
        pair = sorted([status1[run_key(name)], status2[run_key(name)]])
        assert pair in (["exported", "locked"], ["exported", "skipped"]), (name, pair)
    rows = {d.run_key: d for d in SQLiteLedger(tmp_path / "state").deliveries()}
    assert rows[run_key(FIFO_RUN)].size == feeder.written
    assert all(d.status == "delivered" and d.attempts == 1 for d in rows.values())


@pytest.mark.parametrize("storage", ["local", "s3"], indirect=True)
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_mid_export_stops_cleanly_and_the_next_export_completes(
        tmp_path: Path, storage: Bucket, signum: int, code: int) -> None:
    others = {f"mdl-b/r{i:02d}": 1 for i in range(4)}
    config = fifo_config(tmp_path, storage, others, workers=1)
    proc = start(config)
    feeder = Feeder(tmp_path / "logs" / f"{FIFO_RUN}.log")
    feeder.start()
    wait_until(lambda: lock_held(tmp_path / "state", FIFO_RUN) and feeder.written > 4 * CHUNK,
               "the export is mid-run", proc)
    proc.send_signal(signum)
    returncode, summary, err = finish(proc)
    feeder.done.set()
    assert returncode == code, err
    assert signal.Signals(signum).name in err  # "received SIGTERM: ..."
    assert summary["exit_code"] == code and summary["exported"] == 0
    statuses = {r["run"]: r["status"] for r in summary["runs"]}
    assert set(statuses.values()) == {"interrupted"}
    assert set(statuses) == {run_key(n) for n in [FIFO_RUN, *others]}
    # No partial object anywhere (no temp file, no object, no manifest) ...
    assert archived(storage) == []
    if storage.url.startswith("s3://"):
        client_uploads = storage.fs().call_s3("list_multipart_uploads", Bucket=storage.name)
        assert client_uploads.get("Uploads", []) == []
    # ... and the state says where it stopped; the queued runs were never started.
    ledger = SQLiteLedger(tmp_path / "state")
    rows = {d.run_key: d for d in ledger.deliveries()}
    ledger.close()
    assert set(rows) == {run_key(FIFO_RUN)}
    assert rows[run_key(FIFO_RUN)].status == "interrupted"
    assert not lock_held(tmp_path / "state", FIFO_RUN)

    # The next scheduled export finishes everything, each run once.
    fifo = tmp_path / "logs" / f"{FIFO_RUN}.log"
    fifo.unlink()
    fifo.write_bytes(b"2026-01-01T00:00:00Z [INFO] the whole log this time\n")
    code2, summary2, err2 = finish(start(config))
    assert code2 == 0, err2
    assert summary2["exported"] == 1 + len(others) and summary2["failed"] == 0
    expected = {f"training/{n}.txt" for n in [FIFO_RUN, *others]}
    assert archived(storage) == sorted(expected | {f"{p}.manifest.json" for p in expected})
    code3, summary3, _ = finish(start(config))
    assert (code3, summary3["exported"], summary3["skipped"]) == (0, 0, 1 + len(others))


def test_a_second_signal_stops_at_once_even_when_a_read_is_stuck(tmp_path: Path) -> None:
    storage = Bucket(str(tmp_path / "archive"), "", {}, "")
    config = fifo_config(tmp_path, storage, {"mdl-b/r01": 1}, workers=1)
    proc = start(config)
    fifo = tmp_path / "logs" / f"{FIFO_RUN}.log"
    with open(fifo, "wb", buffering=0) as pipe:  # opened, then silent: the read never returns
        pipe.write(b"2026-01-01T00:00:00Z [INFO] then nothing more\n")
        wait_until(lambda: lock_held(tmp_path / "state", FIFO_RUN), "the export claims r00", proc)
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.extend(iter(proc.stderr.readline, "")),
                                  daemon=True)
        reader.start()
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: any("received SIGTERM" in line for line in errors),
                   "the first signal is handled", proc)
        assert proc.poll() is None  # still waiting for the stuck read to return
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    reader.join(timeout=10)
    assert any("again: stopping now" in line for line in errors)
    visible = [f for f in archived(storage) if not Path(f).name.startswith(".")]
    assert visible == []  # at most a hidden temp file, never an object under its final name
    assert not lock_held(tmp_path / "state", FIFO_RUN)
    fifo.unlink()
    fifo.write_bytes(b"complete log\n")
    code, summary, err = finish(start(config))
    assert (code, summary["exported"]) == (0, 2), err
