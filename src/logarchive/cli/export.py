"""``logarchive export``: the main job, with its progress bar and its signal handling."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from logarchive import metrics
from logarchive.api import as_since
from logarchive.base import StopEvent
from logarchive.cli.common import (
    State, config_option, dump_json, install_signal_handlers, printing_may_stop, say, say_block,
)
from logarchive.engine import export
from logarchive.errors import ConfigError, LedgerError
from logarchive.ledger import state_dir_full
from logarchive.results import ExportSummary
from logarchive.status import ExitCode, RunStatus


def parse_since(ctx: click.Context, param: click.Parameter, value: str | None
                ) -> datetime | None:
    """``--since``: a duration back from now (``7d``, ``12h``) or an ISO date (UTC if naive),
    read by :func:`logarchive.api.as_since`; anything else is a usage error naming the option
    (exit 2), never a traceback."""
    try:
        return as_since(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("since: ")) from None


def print_summary(summary: ExportSummary, dry_run: bool) -> None:
    """One line per run that was not skipped, the errors, then the totals."""
    for result in summary.results:
        if result.status == RunStatus.SKIPPED:
            continue
        if dry_run:
            click.echo(f"would export {result.run.key}" + "".join(
                f"\n  {sink}: {what}" for sink, what in result.sinks.items()))
            continue
        line = f"{result.status:<11} {result.run.key}"
        if result.status == RunStatus.EXPORTED:
            line += f"  ({result.bytes} bytes, {result.lines} lines)"
        if result.error:
            line += f"  {result.error}"
        say(line)
    for error in summary.errors:
        say(f"error: {error}", err=True)
    for warning in summary.warnings:
        say(f"warning: {warning}", err=True)
    say_block(summary.text())


@click.command("export")
@click.option("--pipeline", "-p", help="Only this pipeline.")
@click.option("--run", "runs", multiple=True, metavar="ID",
              help="Only runs with this field value, key or field=value (repeatable).")
@click.option("--since", metavar="WHEN", callback=parse_since,
              help="Only runs completed since (7d, 12h, or ISO date).")
@click.option("--dry-run", is_flag=True, help="Show what would be exported; write nothing.")
@click.option("--force", is_flag=True, help="Re-deliver runs the ledger says are delivered.")
@click.option("--workers", "-w", type=click.IntRange(min=1), help="Runs in parallel.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--metrics-file", metavar="PATH",
              help="Write Prometheus metrics here (node_exporter textfile collector).")
@click.option("--pushgateway", metavar="URL", help="Push the same metrics to a Pushgateway.")
@config_option
@click.pass_obj
def export_cmd(state: State, pipeline: str | None, runs: tuple[str, ...], since: datetime | None,
               dry_run: bool, force: bool, workers: int | None, as_json: bool,
               metrics_file: str | None, pushgateway: str | None) -> None:
    """Export every finished run that is not delivered yet (the main job).

    \b
    Example:
      logarchive export -c config.example.toml --workers 8
    """
    config = state.config()
    if metrics_file or pushgateway:
        metrics.require_client()
    stop = StopEvent()
    install_signal_handlers(stop)
    progress = None
    if sys.stderr.isatty() and not as_json and state.verbosity >= 0:
        from logarchive.cli.progress import RichProgress  # rich: only on a terminal
        progress = RichProgress()
    try:
        summary = export(config, pipeline, runs=runs, since=since, dry_run=dry_run,
                         force=force, workers=workers, stop=stop,
                         progress=progress)
    except (LedgerError, OSError) as exc:  # out of space or inodes: one error, its exit code
        if isinstance(exc, LedgerError) and config.settings.ledger is not None:
            raise  # the PostgreSQL ledger's errors are the database's, not state_dir's
        raise state_dir_full(config.state_dir, exc) or exc
    with printing_may_stop():  # `logarchive export | head -1`: the delivery's status all the same
        if as_json:
            dump_json(summary.to_json())
        else:
            print_summary(summary, dry_run)
    if metrics_file or pushgateway:
        error = metrics.publish_for(summary, config, pipeline, metrics_file=metrics_file,
                                    pushgateway=pushgateway)
        if error:
            click.echo(f"error: {error}", err=True)
            sys.exit(max(summary.exit_code, ExitCode.FAILED))
    _refuse_unmatched(runs, summary)
    sys.exit(summary.exit_code)


def _refuse_unmatched(selectors: tuple[str, ...], summary: ExportSummary) -> None:
    """``--run X`` that matches no run the sources listed is a usage error (exit 2), not a
    silent "nothing to do" (unless a source could not list its runs: then it may be there)."""
    unmatched = [s for s in selectors if not any(r.run.matches(s) for r in summary.results)]
    if unmatched and not summary.errors:
        raise ConfigError(f"{', '.join(map(repr, unmatched))} matches no run the sources list "
                          "(see `logarchive runs`)", key="--run")
