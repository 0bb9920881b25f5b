"""Plugin discovery through entry points, and the CLI as a user runs it."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

from logarchive.status import ExitCode

REPO = Path(__file__).resolve().parents[1]

OUT_OF_TREE = '''
"""An out-of-tree plugin: a source that makes up its logs, and a sink that writes upper case."""
from contextlib import contextmanager
from pathlib import Path

from logarchive.status import ExitCode

from logarchive.plugin_api import (
    ByteSink, ByteSinkConfig, ObjectWriter, RunRef, Source, SourceConfig, hookimpl,
)
from typing import Literal


class CountConfig(SourceConfig):
    type: Literal["count"] = "count"
    runs: int = 2


class CountSource(Source):
    type = "count"
    description = "Counts to ten, once per run."
    Config = CountConfig

    def discover(self):
        for i in range(self.config.runs):
            yield RunRef(self.name, {"run_id": f"c{i}"})

    @contextmanager
    def open(self, run):
        yield iter([f"{n}\\n".encode() for n in range(1, 11)])


class UpperConfig(ByteSinkConfig):
    type: Literal["upper"] = "upper"
    folder: str


class UpperWriter(ObjectWriter):
    def __init__(self, path):
        self.path, self.parts = path, []

    def write(self, data):
        self.parts.append(data)

    def commit(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"".join(self.parts).upper())

    def abort(self):
        self.parts = []


class UpperSink(ByteSink):
    type = "upper"
    description = "Writes upper case."
    Config = UpperConfig

    def open_object(self, path):
        return UpperWriter(Path(self.config.folder) / path)

    def exists(self, path):
        return (Path(self.config.folder) / path).exists()


@hookimpl
def logarchive_register_sources(register):
    register(CountSource)


@hookimpl
def logarchive_register_sinks(register):
    register(UpperSink)
'''


FAULTY = '''
"""Injected faults: a source whose discover raises (or is interrupted), a sink whose constructor
raises."""
import os
import signal
from typing import Literal

from logarchive.plugin_api import ByteSink, ByteSinkConfig, Source, SourceConfig, hookimpl


class BoomConfig(SourceConfig):
    type: Literal["boom"] = "boom"
    fault: Literal["raise", "ctrl-c"] = "raise"


class BoomSource(Source):
    type = "boom"
    description = "Its discover raises what no plugin should."
    Config = BoomConfig

    def discover(self):
        if self.config.fault == "ctrl-c":
            os.kill(os.getpid(), signal.SIGINT)
        raise RuntimeError("discover exploded\\nhalfway")

    def open(self, run):
        raise AssertionError("never called")


class UnreachableConfig(ByteSinkConfig):
    type: Literal["unreachable"] = "unreachable"


class UnreachableSink(ByteSink):
    type = "unreachable"
    description = "Cannot be opened."
    Config = UnreachableConfig

    def __init__(self, *args, **kwargs):
        raise RuntimeError("the archive cannot be reached")


@hookimpl
def logarchive_register_sources(register):
    register(BoomSource)


@hookimpl
def logarchive_register_sinks(register):
    register(UnreachableSink)
'''


def install_out_of_tree(root: Path, module: str = "acme_logs_plugin", code: str = OUT_OF_TREE,
                        entry: str = "acme") -> Path:
    """A real distribution with an entry point, found through sys.path (PYTHONPATH)."""
    site = root / "site"
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(code)
    info = site / f"{module}-1.2.3.dist-info"
    info.mkdir()
    name = module.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[logarchive]\n{entry} = {module}\n")
    return site


def test_builtin_plugins_are_listed_with_distribution_and_version(run_cli) -> None:
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    types = {t["type"]: t for t in json.loads(result.stdout)["types"]}
    assert types["files"]["kind"] == "source"
    assert types["files"]["distribution"] == "logarchive-files"
    assert types["fs"]["kind"] == "bytes" and types["fs"]["distribution"] == "logarchive-fs"
    assert types["fs"]["version"] == "0.1.0"
    text = run_cli("plugins")
    assert "logarchive-files" in text.stdout and "bytes" in text.stdout


def test_out_of_tree_plugin_is_discovered_and_used_from_a_config(tmp_path: Path, run_cli) -> None:
    site = install_out_of_tree(tmp_path)
    env = {"PYTHONPATH": str(site)}
    listed = json.loads(run_cli("plugins", "--json", env=env).stdout)["types"]
    mine = {t["type"]: t for t in listed if t["plugin"] == "acme"}
    assert set(mine) == {"count", "upper"}
    assert mine["count"]["distribution"] == "acme-logs-plugin"
    assert mine["count"]["version"] == "1.2.3"
    (tmp_path / "c.toml").write_text(textwrap.dedent(f"""
        [logarchive]
        state_dir = "state"
        [sources.counter]
        type = "count"
        runs = 3
        [sinks.shout]
        type = "upper"
        folder = "{tmp_path / 'out'}"
        path = "{{run_id}}.{{ext}}"
        format = "ndjson"
    """))
    result = run_cli("export", "-c", "c.toml", env=env)
    assert result.returncode == 0, result.stderr
    assert "exported 3 run(s)" in result.stdout
    first = (tmp_path / "out" / "c0.ndjson").read_text().splitlines()
    assert len(first) == 10 and json.loads(first[0].lower())["message"] == "1"
    assert '"SEQ":1' in first[0]


def test_plugin_selection_by_environment_variable(tmp_path: Path, run_cli) -> None:
    site = install_out_of_tree(tmp_path)
    result = run_cli("plugins", "--json", env={"PYTHONPATH": str(site),
                                               "LOGARCHIVE_PLUGINS": "files,fs"})
    plugins = {t["plugin"] for t in json.loads(result.stdout)["types"]}
    assert plugins == {"files", "fs"}


def test_a_broken_plugin_is_reported_and_does_not_stop_the_cli(tmp_path: Path, run_cli) -> None:
    site = install_out_of_tree(tmp_path)
    (site / "acme_logs_plugin.py").write_text("raise ImportError('missing dependency foo')\n")
    result = run_cli("plugins", "--json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert doc["broken"][0]["plugin"] == "acme" and "missing dependency foo" in doc["broken"][0]["error"]
    assert {"files", "fs"} <= {t["type"] for t in doc["types"]}


def test_readme_example_export_then_nothing_twice(tmp_path: Path, run_cli) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "config.example.toml", tmp_path)
    first = run_cli("export", "-c", "config.example.toml")
    assert first.returncode == 0, first.stderr
    assert "exported 3 run(s), skipped 0 (already delivered), failed 0" in first.stdout
    assert len(list((tmp_path / "archive").rglob("*.manifest.json"))) == 6
    for log in (tmp_path / "examples" / "runs").rglob("*.log"):
        model, run = log.parent.name, log.stem
        assert (tmp_path / "archive/txt/examples" / model / f"{run}.txt").read_bytes() == \
            log.read_bytes()
    # stderr: one JSON log line per event when not a terminal
    events = [json.loads(line)["event"] for line in first.stderr.splitlines()]
    assert events.count("run_exported") == 6
    second = run_cli("export", "-c", "config.example.toml")
    assert second.returncode == 0
    assert "exported 0 run(s), skipped 3 (already delivered), failed 0" in second.stdout


def test_runs_command_shows_status_and_delivery(tmp_path: Path, run_cli) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "config.example.toml", tmp_path)
    before = json.loads(run_cli("runs", "-c", "config.example.toml", "--json").stdout)
    assert len(before) == 3 and not any(r["delivered"] for r in before)
    assert {r["status"] for r in before} == {"completed"}
    run_cli("export", "-c", "config.example.toml", "--run", "run-20260313-a4b9c2")
    after = run_cli("runs", "-c", "config.example.toml")
    assert after.returncode == 0
    delivered = [line for line in after.stdout.splitlines() if " delivered " in line]
    assert len(delivered) == 1 and "run-20260313-a4b9c2" in delivered[0]


def test_export_json_summary_and_exit_codes(tmp_path: Path, run_cli) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "config.example.toml", tmp_path)
    result = run_cli("export", "-c", "config.example.toml", "--json", "--dry-run")
    doc = json.loads(result.stdout)
    assert doc["exported"] == 3 and doc["dry_run"] and doc["exit_code"] == 0
    assert not (tmp_path / "archive").exists()
    usage = run_cli("export", "-c", "config.example.toml", "--workers", "0")
    assert usage.returncode == 2
    missing = run_cli("export", "-c", "nope.toml")
    assert missing.returncode == 2 and "config file not found" in missing.stderr
    unknown = run_cli("export", "-c", "config.example.toml", "--pipeline", "nope")
    assert unknown.returncode == 2 and "no pipeline named 'nope'" in unknown.stderr


def test_help_and_version(run_cli) -> None:
    assert run_cli("--version").stdout.startswith("logarchive, version")
    helptext = run_cli("export", "-h").stdout
    assert "Example:" in helptext and "--dry-run" in helptext


def test_readme_commands_are_the_ones_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    for command in ("sh scripts/dev-install.sh", "pytest"):
        assert f"\n{command} " in readme  # the first code block, as a newcomer copies it
        assert f"\n{command}\n" in ci


def test_progress_bar_and_readable_logs_on_a_terminal(tmp_path: Path) -> None:
    """stderr on a terminal: a rich progress bar and console log lines; stdout stays data."""
    import os
    import pty
    import subprocess
    import sys

    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copy(REPO / "config.example.toml", tmp_path)
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "logarchive"), "export", "-c", "config.example.toml"],
        stdout=subprocess.PIPE, stderr=slave, cwd=tmp_path, env={**os.environ, "COLUMNS": "120"},
    )
    os.close(slave)
    terminal = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        terminal += data
    stdout = process.stdout.read().decode()
    assert process.wait() == 0
    os.close(master)
    text = terminal.decode(errors="replace")
    assert "exporting" in text  # the progress bar's label
    assert "run_exported" in text and '{"' not in text  # console lines, not JSON
    assert "exported 3 run(s)" in stdout and "run_exported" not in stdout


def test_an_unexpected_exception_is_one_line_and_the_traceback_needs_v(tmp_path: Path,
                                                                        run_cli) -> None:
    site = install_out_of_tree(tmp_path, "faulty_plugin", FAULTY, "faulty")
    (tmp_path / "c.toml").write_text(textwrap.dedent("""
        [logarchive]
        state_dir = "state"
        [sinks.archive]
        type = "fs"
        url = "archive"
        [sources.bad]
        type = "boom"
    """))
    env = {"PYTHONPATH": str(site)}
    quiet = run_cli("runs", "-c", "c.toml", env=env)
    assert quiet.returncode == 1
    assert quiet.stderr.splitlines() == [
        "error: logarchive runs failed: RuntimeError: discover exploded halfway "
        "(run with -v for the traceback)"
    ]
    assert quiet.stdout == ""
    verbose = run_cli("runs", "-c", "c.toml", "-v", env=env)
    assert verbose.returncode == 1
    assert "error: logarchive runs failed: RuntimeError: discover exploded halfway" in \
        verbose.stderr
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "in discover" in verbose.stderr  # the frame of the plugin that raised
    config = run_cli("runs", "-c", "missing.toml", env=env)  # a LogarchiveError keeps its code
    assert config.returncode == 2 and "Traceback" not in config.stderr
    with (tmp_path / "c.toml").open("a") as toml:
        toml.write('fault = "ctrl-c"\n')  # under [sources.bad]: Ctrl-C while listing runs
    interrupted = run_cli("runs", "-c", "c.toml", env=env)
    assert interrupted.returncode == ExitCode.SIGINT == 130
    assert interrupted.stderr.splitlines() == ["interrupted"]


def test_runs_opens_sources_only_a_broken_sink_does_not_hide_the_runs(tmp_path: Path,
                                                                       run_cli) -> None:
    install_out_of_tree(tmp_path)
    site = install_out_of_tree(tmp_path, "faulty_plugin", FAULTY, "faulty")
    (tmp_path / "c.toml").write_text(textwrap.dedent("""
        [logarchive]
        state_dir = "state"
        [sources.counter]
        type = "count"
        runs = 3
        [sinks.far]
        type = "unreachable"
    """))
    env = {"PYTHONPATH": str(site)}
    listed = run_cli("runs", "-c", "c.toml", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["fields"]["run_id"] for r in rows] == ["c0", "c1", "c2"]
    assert all(r["sinks"] == {"far": "pending"} and not r["delivered"] for r in rows)
    # the sink really cannot be opened: an export fails on it
    exported = run_cli("export", "-c", "c.toml", env=env)
    assert exported.returncode == 1
    assert "the archive cannot be reached" in exported.stderr
