"""The state directory under overlapping exports and in a bad shape: the ledger waits its turn,
an unusable state_dir is one line naming the path, never a traceback."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from logarchive_testsupport.processes import (
    check_archive, make_logs, run_export, start_export, write_config,
)

ROUNDS = 20
PROCESSES = 2  # overlapping cron runs


def local_sink(root: Path) -> dict[str, dict[str, str]]:
    return {"local": {"type": "fs", "url": str(root), "path": "{model_id}/{run_id}.{ext}"}}


@pytest.mark.scenario(
    "two exports started at once on a fresh state_dir",
    f"overlapping cron runs, {ROUNDS} times on a new state_dir each: both exit 0, neither says "
    "'database is locked' or advises moving the ledger away, no traceback; every run archived "
    "exactly once",
)
def test_two_exports_at_once_on_a_fresh_state_dir(tmp_path: Path, record) -> None:
    logs = make_logs(tmp_path / "logs", runs=3, lines_per_run=50)
    for n in range(ROUNDS):
        work = tmp_path / f"round-{n}"
        work.mkdir()
        config = write_config(work / "c.toml", work / "state", tmp_path / "logs",
                              local_sink(work / "out"), workers=2)
        processes = [start_export(config) for _ in range(PROCESSES)]
        outputs = [p.communicate(timeout=120) for p in processes]
        for process, (out, err) in zip(processes, outputs):
            assert process.returncode == 0, (n, out, err)
            assert "database is locked" not in out + err, (n, err)
            assert "move it away" not in out + err, (n, err)
            assert "Traceback" not in out + err, (n, err)
        fs = fsspec.filesystem("file")
        assert check_archive(fs, str(work / "out"), logs, "txt") == [], n
    record(f"{ROUNDS} rounds of two exports at once: every export exited 0")


@pytest.mark.scenario(
    "an unusable state_dir (a file named `locks` in it, or a file where it should be)",
    "a configuration error before any run: the export exits 2 with one line naming the path, "
    "no traceback, nothing archived",
)
@pytest.mark.parametrize("bad", ["locks", "state_dir"])
def test_an_unusable_state_dir_is_a_config_error(tmp_path: Path, bad: str) -> None:
    make_logs(tmp_path / "logs", runs=2, lines_per_run=10)
    state = tmp_path / "state"
    if bad == "locks":
        state.mkdir()
    culprit = state / "locks" if bad == "locks" else state
    culprit.write_text("not a directory")
    config = write_config(tmp_path / "c.toml", state, tmp_path / "logs",
                          local_sink(tmp_path / "out"))
    result = run_export(config)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"state_dir {state} is not usable: {culprit}: " in lines[0]
    assert not (tmp_path / "out").exists()
