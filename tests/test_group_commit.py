"""Group commit through the real CLI: many small runs from the REST fake (seed 000) exported once
each, their objects made durable and recorded in shared ledger transactions; an export SIGKILLed
while objects are published but not yet recorded, then a second export that records the bytes it
finds archived without rewriting or duplicating them (SQLite and PostgreSQL ledgers)."""

from __future__ import annotations

import hashlib
import json
import resource
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from logarchive.config import load_config
from logarchive.ledger import existing_ledger
from logarchive.testing.servers import LoopbackServer
from logarchive_rest.testing import TOKEN, TrainingAPI
from logarchive_testsupport.processes import EXE, check_archive, run_export, start_export

MODELS, RUNS_PER_MODEL = 4, 12  # several runs per folder: one folder fsync serves many objects


def run_log(model: int, run: int) -> bytes:
    return b"".join(f"2026-03-13T10:00:{i % 60:02d}Z [INFO] model {model} run {run} step {i} "
                    f"loss={1 / (i + 1):.6f}\n".encode() for i in range(200 + 7 * run))


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[str, dict[tuple[str, str], bytes]]]:
    """The REST fake serving MODELS x RUNS_PER_MODEL finished runs; (url, {(model, run): log})."""
    server_api, logs = TrainingAPI(), {}
    for m in range(MODELS):
        for r in range(RUNS_PER_MODEL):
            logs[(f"mdl-{m}", f"run-{m}-{r}")] = run_log(m, r)
            server_api.add(f"mdl-{m}", f"run-{m}-{r}", logs[(f"mdl-{m}", f"run-{m}-{r}")])
    server = LoopbackServer(server_api).start()
    yield server.url, logs
    server.stop()


def write_config(tmp_path: Path, url: str, logs: dict[tuple[str, str], bytes], *,
                 ledger: str | None = None, immutable: bool = False) -> Path:
    runs = ", ".join(f'{{model_id = "{m}", run_id = "{r}"}}' for m, r in logs)
    text = "\n".join([
        "[logarchive]", f"state_dir = {json.dumps(str(tmp_path / 'state'))}", "workers = 4",
        *([f"ledger = {json.dumps(ledger)}"] if ledger else []), "",
        "[sources.api]", 'type = "rest"', 'preset = "training-metrics"',
        f"base_url = {json.dumps(url)}", f'auth = {{bearer = "{TOKEN}"}}', f"runs = [{runs}]", "",
        "[sinks.archive]", 'type = "fs"', f"url = {json.dumps(str(tmp_path / 'archive'))}",
        'path = "{model_id}/{run_id}.{ext}"', f"immutable = {json.dumps(immutable)}", "",
    ])
    path = tmp_path / "logarchive.toml"
    path.write_text(text)
    return path


def deliveries(config: Path) -> dict[str, Any]:
    """The ledger's rows of sink ``archive``, by run id."""
    ledger = existing_ledger(load_config(config))
    assert ledger is not None
    try:
        return {d.fields["run_id"]: d for d in ledger.deliveries("archive")}
    finally:
        ledger.close()


def summary(proc: Any) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def assert_archived_once(tmp_path: Path, config: Path, logs: dict[tuple[str, str], bytes]
                         ) -> None:
    """Every run: one object with its manifest and the source's bytes, nothing else in the
    archive, and one ``delivered`` row whose sha256 is the object's."""
    by_run = {run: data for (_, run), data in logs.items()}
    assert check_archive(fsspec.filesystem("file"), str(tmp_path / "archive"), by_run,
                         "txt") == []
    rows = deliveries(config)
    assert sorted(rows) == sorted(by_run)
    for (model, run), data in logs.items():
        row = rows[run]
        stored = (tmp_path / "archive" / model / f"{run}.txt").read_bytes()
        assert (row.status, row.object) == ("delivered",
                                            str(tmp_path / "archive" / model / f"{run}.txt"))
        assert row.sha256 == hashlib.sha256(stored).hexdigest() == hashlib.sha256(
            data).hexdigest()
        assert (row.size, row.lines) == (len(data), data.count(b"\n"))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_many_small_runs_are_exported_and_recorded_once_each(
        tmp_path: Path, api: tuple[str, dict[tuple[str, str], bytes]], backend: str,
        request: pytest.FixtureRequest) -> None:
    url, logs = api
    ledger = request.getfixturevalue("pg_url") if backend == "postgres" else None
    config = write_config(tmp_path, url, logs, ledger=ledger)

    first = summary(run_export(config, "--json"))
    assert (first["exported"], first["failed"]) == (len(logs), 0)
    assert_archived_once(tmp_path, config, logs)
    assert {row.attempts for row in deliveries(config).values()} == {1}
    assert not list((tmp_path / "state" / "locks").glob("*.lock"))  # every claim released

    again = summary(run_export(config, "--json"))
    assert (again["exported"], again["skipped"]) == (0, len(logs))


def recorded(state: Path) -> int:
    """How many runs the SQLite ledger records delivered (read while an export writes it)."""
    path = state / "ledger.sqlite3"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return int(db.execute(
            "SELECT count(*) FROM deliveries WHERE status = 'delivered'").fetchone()[0])
    except sqlite3.OperationalError:  # created, no table yet
        return 0
    finally:
        db.close()


def published(archive: Path) -> dict[Path, tuple[int, int]]:
    """The objects under their final names whose manifest is there too: (inode, mtime_ns)."""
    found = {}
    for manifest in archive.glob("*/*.txt.manifest.json"):
        obj = manifest.with_name(manifest.name[: -len(".manifest.json")])
        if obj.exists():
            stat = obj.stat()
            found[obj] = (stat.st_ino, stat.st_mtime_ns)
    return found


def kill_between_publish_and_record(config: Path, tmp_path: Path) -> dict[Path, tuple[int, int]]:
    """Start an export and SIGKILL it as soon as the archive holds objects (with manifests) the
    ledger does not record; the objects left so after the kill (none if it committed first)."""
    proc = start_export(config)
    try:
        while proc.poll() is None:
            on_disk = published(tmp_path / "archive")
            if len(on_disk) > recorded(tmp_path / "state"):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
        proc.communicate()
    on_disk = published(tmp_path / "archive")
    rows = deliveries(config) if (tmp_path / "state" / "ledger.sqlite3").exists() else {}
    return {obj: seen for obj, seen in on_disk.items()
            if obj.name[: -len(".txt")] not in rows
            or rows[obj.name[: -len(".txt")]].status != "delivered"}


def test_a_kill_between_the_objects_and_their_ledger_transaction_loses_and_duplicates_nothing(
        tmp_path: Path, api: tuple[str, dict[tuple[str, str], bytes]]) -> None:
    url, logs = api
    config = write_config(tmp_path, url, logs, immutable=True)
    unrecorded: dict[Path, tuple[int, int]] = {}
    for _ in range(8):  # a kill may land just after a group commit: try again
        unrecorded = kill_between_publish_and_record(config, tmp_path)
        if unrecorded:
            break
        if recorded(tmp_path / "state") == len(logs):  # finished before any kill: again
            for path in (tmp_path / "archive", tmp_path / "state"):
                fsspec.filesystem("file").rm(str(path), recursive=True)
    assert unrecorded, "no kill landed between an object's publication and its ledger record"
    # A rename the crash did not make durable: the manifest survived, the object did not.
    lost = sorted(unrecorded)[0]
    lost.unlink()
    del unrecorded[lost]

    final = summary(run_export(config, "--json"))
    assert final["failed"] == 0
    assert_archived_once(tmp_path, config, logs)
    for obj, (inode, mtime) in unrecorded.items():  # recorded as found, not written again
        assert (obj.stat().st_ino, obj.stat().st_mtime_ns) == (inode, mtime), obj
    assert not list((tmp_path / "archive" / ".logarchive-tmp").glob("*"))


def test_a_low_open_file_limit_bounds_the_group_not_the_export(tmp_path: Path) -> None:
    """A run waiting for its group keeps its claim (an open lock file with the SQLite ledger):
    under a 64-file limit, 16 workers and 400 tiny runs, the groups stay small enough that the
    export does not run out of files (a reviewer's attack: groups of up to 256 runs did)."""
    server_api, logs = TrainingAPI(), {}
    for n in range(400):
        logs[(f"mdl-{n % 3}", f"run-{n}")] = b"x %d\n" % n
        server_api.add(f"mdl-{n % 3}", f"run-{n}", logs[(f"mdl-{n % 3}", f"run-{n}")])
    server = LoopbackServer(server_api).start()

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    try:
        config = write_config(tmp_path, server.url, logs)
        config.write_text(config.read_text().replace("workers = 4", "workers = 16"))
        proc = subprocess.run([EXE, "export", "-c", str(config), "--json"], text=True,
                              capture_output=True, timeout=300, preexec_fn=cap)
    finally:
        server.stop()
    assert (summary(proc)["exported"], summary(proc)["failed"]) == (len(logs), 0)
    assert_archived_once(tmp_path, config, logs)
