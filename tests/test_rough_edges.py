"""Issue 14's rough edges through the real CLI: silent no-ops are errors, `runs` writes nothing,
diagnostics go to stderr."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

@pytest.fixture()
def workdir(files_to_fs) -> Path:
    return files_to_fs()


def test_runs_creates_no_ledger(workdir: Path, run_cli) -> None:
    result = run_cli("runs", "-c", "c.toml")
    assert result.returncode == 0, result.stderr
    assert "pending" in result.stdout and "1 run(s)" in result.stdout
    assert not (workdir / "state").exists()


def test_run_selector_matching_nothing_is_an_error(workdir: Path, run_cli) -> None:
    result = run_cli("export", "-c", "c.toml", "--run", "no-such-run")
    assert result.returncode == 2 and "--run" in result.stderr
    assert "'no-such-run' matches no run" in result.stderr and "Traceback" not in result.stderr


def test_ledger_show_and_verify_of_unknown_sink_are_errors(workdir: Path, run_cli) -> None:
    for command in (("ledger", "show"), ("verify",)):
        result = run_cli(*command, "-c", "c.toml", "--sink", "archiv")
        assert result.returncode == 2, (command, result.stderr)
        assert "no sink named 'archiv'" in result.stderr and "archive" in result.stderr


def test_plugins_env_naming_no_plugin_is_an_error(workdir: Path, run_cli) -> None:
    result = run_cli("config", "check", "-c", "c.toml", env={"LOGARCHIVE_PLUGINS": "files,fss"})
    assert result.returncode == 2
    assert "LOGARCHIVE_PLUGINS names no installed plugin: fss" in result.stderr


def test_source_errors_go_to_stderr_and_data_to_stdout(workdir: Path, run_cli) -> None:
    shutil.rmtree(workdir / "logs")  # the source cannot list its runs
    result = run_cli("export", "-c", "c.toml")
    assert result.returncode == 1
    assert "error: pipeline training: source training:" in result.stderr
    assert "error:" not in result.stdout and "does not exist" not in result.stdout
    # The summary (stdout) counts what the exit status counts.
    assert "exported 0 run(s)" in result.stdout and "1 source error(s)" in result.stdout


def test_dry_run_says_what_it_would_write_per_sink(workdir: Path, run_cli) -> None:
    result = run_cli("export", "-c", "c.toml", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "would export training/run_id=run-1"
    assert lines[1] == "  archive: would write training/run-1.txt"
    assert lines[2].startswith("would export 1 run(s)")
    assert "exported" not in result.stdout
    assert not (workdir / "archive").exists()
    assert not (workdir / "state").exists()  # no ledger, no state_dir: a dry run writes nothing


def test_dry_run_reads_an_existing_ledger_and_changes_nothing(workdir: Path, run_cli) -> None:
    assert run_cli("export", "-c", "c.toml").returncode == 0
    (workdir / "logs" / "run-2.log").write_text("run 2 step 1\n")
    before = {p: p.read_bytes() for p in (workdir / "state").rglob("*") if p.is_file()}
    result = run_cli("export", "-c", "c.toml", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["would export training/run_id=run-2",
                                              "  archive: would write training/run-2.txt"]
    assert "skipped 1 (already delivered)" in result.stdout  # run-1, from the ledger
    after = {p: p.read_bytes() for p in (workdir / "state").rglob("*") if p.is_file()}
    assert after == before


def test_verbose_explains_why_a_run_is_skipped(workdir: Path, run_cli) -> None:
    assert run_cli("export", "-c", "c.toml").returncode == 0
    result = run_cli("export", "-c", "c.toml", "-v")
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    [skipped] = [e for e in events if e["event"] == "run_skipped"]
    assert skipped["run"] == "training/run_id=run-1" and skipped["level"] == "debug"
    assert skipped["reason"] == "delivered to every sink (ledger)"
    quiet = run_cli("export", "-c", "c.toml")
    assert "run_skipped" not in quiet.stderr


def test_library_logs_are_json_lines_off_a_terminal() -> None:
    import io
    import logging

    from logarchive import logsetup

    stream = io.StringIO()
    try:
        logsetup.configure(2, json=True, stream=stream)  # -vv, stderr not a terminal
        logging.getLogger("botocore.endpoint").debug("Sending request to %s", "s3")
    finally:
        logsetup.configure(0)
    [doc] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert doc["event"] == "Sending request to s3" and doc["logger"] == "botocore.endpoint"
    assert doc["level"] == "debug"


def test_verify_of_an_archive_that_does_not_exist_is_an_error(workdir: Path, run_cli) -> None:
    result = run_cli("verify", "-c", "c.toml")
    assert result.returncode == 2 and "sinks.archive.url" in result.stderr
    assert "no archive at" in result.stderr and "Traceback" not in result.stderr
    assert run_cli("export", "-c", "c.toml").returncode == 0
    verified = run_cli("verify", "-c", "c.toml")
    assert verified.returncode == 0, verified.stderr


def test_runs_shows_a_run_the_ledger_marks_gone(workdir: Path, run_cli) -> None:
    from logarchive.ledger import SQLiteLedger
    from logarchive.runs import RunRef
    from logarchive.status import RunStatus

    run = RunRef(source="training", fields={"run_id": "run-1"})
    ledger = SQLiteLedger(workdir / "state")  # as an export records a RunGone from the source
    ledger.failed(run, "archive", "log purged at the source", status=RunStatus.GONE)
    ledger.close()
    result = run_cli("runs", "-c", "c.toml")
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if run.key in line]
    assert line.split()[:2] == ["completed", "gone"]
