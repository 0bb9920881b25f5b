"""The ``logarchive`` command: a thin layer over the Python API.

Data goes to stdout, logs to stderr. Exit status: 0 all delivered or nothing to do, 1 some runs
failed, 2 usage or configuration error, 130/143 stopped by SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import click
import orjson

from logarchive import __version__
from logarchive import logsetup as lalog
from logarchive.base import StopEvent
from logarchive.config import CONFIG_ENV, Config, load_config
from logarchive.engine import Progress, RunResult, export
from logarchive.errors import ConfigError, LogarchiveError
from logarchive.ledger import SQLiteLedger
from logarchive.status import RunStatus
from logarchive.plugins import default_registry
from logarchive.secrets import redact

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _State:
    def __init__(self, verbosity: int, config_path: str | None, log_json: bool | None) -> None:
        self.verbosity = verbosity
        self.config_path = config_path
        self.log_json = log_json

    def config(self) -> Config:
        return load_config(self.config_path)


def _config_option(func: Any) -> Any:
    """``-c/--config``, ``-v`` and ``-q`` accepted after the subcommand too
    (``logarchive export -c FILE -q``)."""

    def remember(ctx: click.Context, _param: Any, value: str | None) -> None:
        if value is not None:
            ctx.find_object(_State).config_path = value

    def verbosity(ctx: click.Context, param: Any, value: int) -> None:
        if value:
            state = ctx.find_object(_State)
            state.verbosity += value if param.name == "more" else -value
            lalog.configure(state.verbosity, json=state.log_json)

    func = click.option("-q", "--quiet", "less", count=True, expose_value=False,
                        callback=verbosity, help="Less logging.")(func)
    func = click.option("-v", "--verbose", "more", count=True, expose_value=False,
                        callback=verbosity, help="More logging.")(func)
    return click.option("-c", "--config", "config_path", metavar="FILE", expose_value=False,
                        callback=remember, help="Config file (overrides the group option).")(func)


def _fail(error: LogarchiveError, verbosity: int) -> None:
    click.echo(f"error: {error}", err=True)
    if verbosity > 0:
        import traceback

        click.echo(redact(traceback.format_exc()), err=True)
    sys.exit(error.exit_code)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LogarchiveError as error:
            verbosity = ctx.obj.verbosity if isinstance(ctx.obj, _State) else 0
            _fail(error, verbosity)


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="logarchive")
@click.option("-c", "--config", "config_path", envvar=CONFIG_ENV, metavar="FILE",
              help=f"Config file (default: ${CONFIG_ENV} or ./logarchive.toml).")
@click.option("-v", "--verbose", count=True, help="More logging (-v debug, -vv libraries too).")
@click.option("-q", "--quiet", count=True, help="Less logging (-q warnings, -qq errors).")
@click.option("--log-format", type=click.Choice(["auto", "json", "console"]), default="auto",
              show_default=True, help="Log lines on stderr: JSON for machines, console on a TTY.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int, quiet: int,
         log_format: str) -> None:
    """Export ML training and job logs to archives and log aggregators, exactly once.

    \b
    Example:
      logarchive export -c config.example.toml
    """
    verbosity = verbose - quiet
    log_json = None if log_format == "auto" else log_format == "json"
    lalog.configure(verbosity, json=log_json)
    ctx.obj = _State(verbosity, config_path, log_json)


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(timezone.utc) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a duration (7d, 12h) nor an ISO date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class _RichProgress(Progress):
    """A rich progress bar on a terminal."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn, DownloadColumn, MofNCompleteColumn, Progress as Bar, TextColumn,
            TimeElapsedColumn, TransferSpeedColumn,
        )

        self._bar = Bar(
            TextColumn("[progress.description]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("runs"), DownloadColumn(), TransferSpeedColumn(),
            TimeElapsedColumn(), transient=True, console=Console(stderr=True),
        )
        self._task: Any = None
        self._bytes = 0
        self._lock = threading.Lock()

    def start(self, total_runs: int) -> None:
        if total_runs:
            self._bar.start()
            self._task = self._bar.add_task("exporting", total=total_runs)

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            with self._lock:
                self._bytes += nbytes
                self._bar.update(self._task, completed_bytes=self._bytes)

    def run_done(self, result: RunResult) -> None:
        if self._task is not None:
            self._bar.advance(self._task)

    def stop(self) -> None:
        if self._task is not None:
            self._bar.stop()


def _install_signal_handlers(stop: StopEvent,
                             doing: str = "finishing current batches, taking no new runs") -> None:
    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            # Second signal: stop now, even if a run is stuck in a read that never returns (the
            # worker threads would be joined forever). Like a kill: nothing partial is visible
            # under a final name, the kernel drops the run claims, the ledger says in_progress.
            click.echo(f"received {signal.Signals(signum).name} again: stopping now", err=True)
            sys.stderr.flush()
            os._exit(128 + signum)
        stop.signal_number = signum
        stop.set()
        click.echo(f"received {signal.Signals(signum).name}: {doing}", err=True)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@main.command("export")
@click.option("--pipeline", "-p", help="Only this pipeline.")
@click.option("--run", "runs", multiple=True, metavar="ID",
              help="Only runs with this field value, key or field=value (repeatable).")
@click.option("--since", metavar="WHEN", help="Only runs completed since (7d, 12h, or ISO date).")
@click.option("--dry-run", is_flag=True, help="Show what would be exported; write nothing.")
@click.option("--force", is_flag=True, help="Re-deliver runs the ledger says are delivered.")
@click.option("--workers", "-w", type=click.IntRange(min=1), help="Runs in parallel.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_config_option
@click.pass_obj
def export_cmd(state: _State, pipeline: str | None, runs: tuple[str, ...], since: str | None,
               dry_run: bool, force: bool, workers: int | None, as_json: bool) -> None:
    """Export every finished run that is not delivered yet (the main job).

    \b
    Example:
      logarchive export -c config.example.toml --workers 8
    """
    config = state.config()
    stop = StopEvent()
    _install_signal_handlers(stop)
    progress = _RichProgress() if (sys.stderr.isatty() and not as_json and state.verbosity >= 0) else None
    summary = export(config, pipeline, runs=runs, since=_parse_since(since), dry_run=dry_run,
                     force=force, workers=workers, stop=stop, progress=progress)
    if as_json:
        click.echo(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        for result in summary.results:
            if result.status not in ("skipped",):
                line = f"{result.status:<11} {result.run.key}"
                if result.status == "exported" and not dry_run:
                    line += f"  ({result.bytes} bytes, {result.lines} lines)"
                if result.error:
                    line += f"  {result.error}"
                click.echo(line)
        for error in summary.errors:
            click.echo(f"error: {error}")
        for warning in summary.warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(summary.text())
    sys.exit(summary.exit_code)


@main.command("runs")
@click.option("--source", "-s", "source_name", help="Only this source.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@_config_option
@click.pass_obj
def runs_cmd(state: _State, source_name: str | None, as_json: bool) -> None:
    """List what the sources see: each run, its status, and whether it is delivered.

    \b
    Example:
      logarchive runs -c config.example.toml --json
    """
    from logarchive.pipeline import instantiate

    config = state.config()
    if source_name and source_name not in config.sources:
        raise ConfigError(f"no source named {source_name!r}; expected one of: "
                          + ", ".join(config.sources), key="--source")
    ledger = SQLiteLedger(config.state_dir)
    rows: list[dict[str, Any]] = []
    failed = False
    try:
        for pipeline in config.pipelines:
            if source_name and pipeline.source != source_name:
                continue
            pipe = instantiate(config, pipeline, threading.Event())
            try:
                for run in pipe.source.discover():
                    delivered = {
                        sink: (d.status if (d := ledger.get(run.key, sink)) else "pending")
                        for sink in pipeline.sinks
                    }
                    rows.append({"pipeline": pipeline.name, **run.to_json(), "sinks": delivered,
                                 "delivered": all(v == RunStatus.DELIVERED for v in delivered.values())})
            except LogarchiveError as error:
                failed = True
                click.echo(f"error: source {pipeline.source}: {error}", err=True)
            finally:
                for plugin in (pipe.source, *pipe.sinks.values()):
                    plugin.close()
    finally:
        ledger.close()
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    else:
        for row in rows:
            mark = "delivered" if row["delivered"] else "pending"
            click.echo(f"{row['status']:<10} {mark:<10} {row['key']}")
        click.echo(f"{len(rows)} run(s)")
    sys.exit(1 if failed else 0)


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def plugins_cmd(as_json: bool) -> None:
    """List installed plugin types: type, kind, distribution and version.

    \b
    Example:
      logarchive plugins --json
    """
    registry = default_registry()
    types = registry.all_types()
    if as_json:
        doc = {"types": [t.to_json() for t in types],
               "broken": [b.__dict__ for b in registry.broken]}
        click.echo(json.dumps(doc, indent=2))
        return
    for t in types:
        click.echo(f"{t.type:<10} {t.kind:<8} {t.distribution:<20} {t.version:<8} {t.description}")
    for broken in registry.broken:
        click.echo(f"(broken) {broken.plugin} from {broken.distribution}: {broken.error}")


@main.group("config")
def config_group() -> None:
    """Check the config, or print its schema."""


@config_group.command("check")
@_config_option
@click.pass_obj
def config_check(state: _State) -> None:
    """Validate the config without touching the network.

    \b
    Example:
      logarchive config check -c logarchive.toml
    """
    from logarchive.config import overlapping_roots

    config = state.config()
    for warning in overlapping_roots(config):
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"{config.path}: ok ({len(config.sources)} source(s), {len(config.sinks)} sink(s), "
        f"{len(config.pipelines)} pipeline(s))"
    )


@config_group.command("schema")
def config_schema() -> None:
    """Print the JSON schema of every installed source and sink type.

    \b
    Example:
      logarchive config schema > schema.json
    """
    from logarchive.config import PipelineConfig, Settings

    registry = default_registry()
    doc = {
        "logarchive": Settings.model_json_schema(),
        "pipelines": PipelineConfig.model_json_schema(),
        "sources": {t.type: t.cls.Config.model_json_schema() for t in registry.sources.values()},
        "sinks": {t.type: t.cls.Config.model_json_schema() for t in registry.sinks.values()},
    }
    click.echo(json.dumps(doc, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()

from logarchive import cli_admin  # noqa: E402,F401  (retention, verify, ledger commands)
