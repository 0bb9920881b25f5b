"""The Python API: logs on stderr, ``since`` in every form, verify and retention, typed."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import logarchive
from logarchive.api import as_since

SCRIPT = """
import logarchive
config = logarchive.load_config("c.toml")
summary = logarchive.export(config, since="3650d")
print("RESULT", summary.exported, summary.exit_code)
"""


@pytest.fixture()
def workdir(files_to_fs) -> Path:
    return files_to_fs(runs=2, extra="[sinks.archive.retention]\nkeep_last = 1\n")


def test_api_logs_go_to_stderr_not_stdout(workdir: Path) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=workdir, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["RESULT 2 0"]  # only what the program printed
    events = [json.loads(line)["event"] for line in result.stderr.splitlines()]
    assert "runs_discovered" in events


def test_since_accepts_durations_timedeltas_and_aware_datetimes() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    week_ago = now - timedelta(days=7)
    assert as_since("7d", now=now) == week_ago
    assert as_since(timedelta(days=7), now=now) == week_ago
    assert as_since(week_ago, now=now) == week_ago
    assert as_since("2026-11-24T12:00:00", now=now) == week_ago  # naive ISO text: UTC
    with pytest.raises(logarchive.ConfigError, match="naive datetime"):
        as_since(datetime(2026, 11, 24), now=now)
    with pytest.raises(logarchive.ConfigError, match="neither a duration"):
        as_since("a week", now=now)


def test_verify_and_retention_in_the_api(workdir: Path) -> None:
    config = logarchive.load_config(workdir / "c.toml")
    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert logarchive.export(config, since=future).exported == 0  # nothing completed since then
    assert logarchive.export(config, since=timedelta(days=3650)).exported == 2
    [report] = logarchive.verify(config)
    assert report.passed and report.objects == 2
    [plan] = logarchive.retention_plan(config)
    assert len(plan.deletions) == 1  # keep_last = 1 of the two runs
    [applied] = logarchive.retention_apply(config)
    assert applied.ok
    [report] = logarchive.verify(config)
    assert report.passed and report.objects == 1


def test_package_is_typed() -> None:
    assert (Path(logarchive.__file__).parent / "py.typed").is_file()
