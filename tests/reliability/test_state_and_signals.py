"""The state directory, signals and stdout of a real `logarchive export` process: lock files do
not pile up, a full state filesystem is one clear error, a reader that closes stdout early
changes nothing, and a sink that forgets its objects is refused unless the config says so and is
then never recorded as delivered. (SIGHUP is tested with SIGTERM in test_kill.py.)"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import fsspec
import pytest

from logarchive_testsupport.processes import (
    EXE, check_archive, ledger_statuses, make_logs, run_export, start_export, write_config,
)

ARCHIVE = {"path": "{model_id}/{run_id}.{ext}"}


def local_sink(out: Path, **extra: object) -> dict[str, dict[str, object]]:
    return {"local": {"type": "fs", "url": str(out), **ARCHIVE, **extra}}


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.scenario(
    "State directory: lock files do not pile up",
    "300 runs exported by two concurrent exports on one state_dir, then 100 more: every run "
    "archived exactly once, and no lock file is left in state_dir/locks after either export "
    "(two per run were kept forever before)",
)
def test_lock_files_do_not_accumulate(tmp_path: Path, record) -> None:
    logs = make_logs(tmp_path / "logs", runs=300, lines_per_run=20)
    state, out = tmp_path / "state", tmp_path / "out"
    config = write_config(tmp_path / "c.toml", state, tmp_path / "logs", local_sink(out),
                          workers=4)
    # Two exports at once contend for every run and every object lock (the unlink-after-flock
    # race): each run must still be delivered once.
    exports = [start_export(config), start_export(config)]
    for process in exports:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    fs = fsspec.filesystem("file")
    assert check_archive(fs, str(out), logs, "txt") == []
    assert files_under(state / "locks") == []
    for n in range(100):
        data = f"2026-03-13T10:00:00Z [INFO] more {n}\n".encode() * 5
        (tmp_path / "logs" / "m" / f"more-{n}.log").write_bytes(data)
        logs[f"more-{n}"] = data
    again = run_export(config)
    assert again.returncode == 0, again.stderr
    assert "exported 100 run(s), skipped 300" in again.stdout
    assert check_archive(fs, str(out), logs, "txt") == []
    left = files_under(state)
    assert files_under(state / "locks") == []
    record(f"400 runs exported: {len(left)} file(s) left in state_dir "
           f"({', '.join(sorted(p.name for p in left))}), 0 lock files")


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A tmpfs of 2 MiB with 64 inodes as the state directory (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the suite as root)")
    mount = tmp_path / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,nr_inodes=64", "tmpfs", str(mount)],
                   check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill_inodes(folder: Path, leave: int) -> list[Path]:
    """Create empty files in ``folder`` until only ``leave`` inodes are free; returns them."""
    folder.mkdir(exist_ok=True)
    made: list[Path] = []
    while os.statvfs(folder).f_favail > leave:
        path = folder / f"f{len(made)}"
        path.touch()
        made.append(path)
    return made


@pytest.mark.scenario(
    "State directory out of inodes",
    "state_dir on a 64-inode tmpfs filled to 0..4 free inodes before an export of new runs: "
    "exit 3 with one `state_dir ... is full` line and no traceback (or a complete export when "
    "it fits), never an object without its manifest or a partial object; once inodes are free "
    "again, the next export delivers every run exactly once",
)
def test_state_dir_out_of_inodes_is_one_clear_error(tmp_path: Path, small_tmpfs: Path,
                                                    record) -> None:
    state, out = small_tmpfs, tmp_path / "out"
    logs = make_logs(tmp_path / "logs", runs=3, lines_per_run=50)
    config = write_config(tmp_path / "c.toml", state, tmp_path / "logs", local_sink(out),
                          workers=1)
    assert run_export(config).returncode == 0  # the ledger exists; the filesystem fills later
    fs = fsspec.filesystem("file")
    outcomes = []
    for free in range(5):
        more = make_logs(tmp_path / f"new{free}", runs=3, lines_per_run=50)
        for run_id, data in more.items():
            (tmp_path / "logs" / "m" / f"{run_id}-{free}.log").write_bytes(data)
            logs[f"{run_id}-{free}"] = data
        filler = fill_inodes(state / "filler", leave=free)
        result = run_export(config, "-q")
        outcomes.append(f"{free} free: exit {result.returncode}")
        assert "Traceback" not in result.stderr + result.stdout
        if free == 0:
            assert result.returncode == 3, result.stderr
            assert f"state_dir {state} is full (no inodes left)" in result.stderr
        if result.returncode == 3:
            assert f"state_dir {state} is full (no" in result.stderr, result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        else:
            assert result.returncode == 0, result.stderr
        problems = check_archive(fs, str(out), logs, "txt")
        # Runs not delivered yet are missing; nothing is ever half there.
        assert [p for p in problems if "0 objects" not in p] == [], problems
        for path in filler:
            path.unlink()
    final = run_export(config)
    assert final.returncode == 0, final.stderr
    assert check_archive(fs, str(out), logs, "txt") == []
    assert files_under(state / "locks") == []
    record("; ".join(outcomes))


@pytest.mark.scenario(
    "stdout closed early (export piped into `head -1`)",
    "120 runs, the reader takes one line and closes the pipe: the export still exits 0 (the "
    "delivery's status), every run archived, no traceback",
)
def test_closed_stdout_keeps_the_delivery_status(tmp_path: Path) -> None:
    logs = make_logs(tmp_path / "logs", runs=120, lines_per_run=5)
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.toml", tmp_path / "state", tmp_path / "logs",
                          local_sink(out))
    read_end, write_end = os.pipe()
    # A pipe smaller than the summary: the export writes after the reader has gone, whatever
    # the timing (it blocks on the full pipe until the reader closes it).
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    process = subprocess.Popen([EXE, "-q", "export", "-c", str(config)], stdout=write_end,
                               stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = reader.readline()
    _, err = process.communicate(timeout=300)
    assert first.startswith(b"exported"), first
    assert process.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert check_archive(fsspec.filesystem("file"), str(out), logs, "txt") == []


@pytest.mark.scenario(
    "memory:// as a sink",
    "refused by `config check` and `export` (exit 2, naming allow_non_durable, nothing "
    "delivered); with allow_non_durable = true it exports, the ledger records `volatile`, "
    "never `delivered`, and the next export delivers every run again",
)
def test_non_durable_sink_needs_the_key_and_is_never_recorded_delivered(tmp_path: Path) -> None:
    make_logs(tmp_path / "logs", runs=3, lines_per_run=10)
    state = tmp_path / "state"
    memory = {"mem": {"type": "fs", "url": "memory://scratch", **ARCHIVE}}
    config = write_config(tmp_path / "c.toml", state, tmp_path / "logs", memory)
    for command in (["config", "check"], ["export"]):
        refused = subprocess.run([EXE, *command, "-c", str(config)], capture_output=True,
                                 text=True, timeout=120)
        assert refused.returncode == 2, refused.stderr
        assert "sinks.mem.allow_non_durable" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert not (state / "ledger.sqlite3").exists()
    memory["mem"]["allow_non_durable"] = True
    write_config(tmp_path / "c.toml", state, tmp_path / "logs", memory)
    check = subprocess.run([EXE, "config", "check", "-c", str(config)], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    for _ in range(2):
        result = run_export(config)
        assert result.returncode == 0, result.stderr
        assert "exported 3 run(s), skipped 0" in result.stdout
        assert ledger_statuses(state) == ["volatile"] * 3
