"""The ``logarchive`` command: a thin layer over the Python API.

One module per command group, each registered here with ``add_command`` (no module of this package
imports this one back): :mod:`~logarchive.cli.common` (state, shared options, the error boundary),
:mod:`~logarchive.cli.export`, :mod:`~logarchive.cli.inspect` (runs, plugins, config),
:mod:`~logarchive.cli.admin` (retention, verify, ledger), :mod:`~logarchive.cli.check`
(health checks). Data goes to stdout, logs to stderr; every exit status is an
:class:`~logarchive.status.ExitCode`.
"""

from __future__ import annotations

import click

from logarchive import logsetup
from logarchive.cli.admin import ledger_group, retention_group, verify_cmd
from logarchive.cli.check import check_cmd
from logarchive.cli.common import CONTEXT_SETTINGS, Group, State
from logarchive.cli.export import export_cmd
from logarchive.cli.inspect import config_group, plugins_cmd, runs_cmd
from logarchive.cli.query import query_cmd, search_cmd
from logarchive.cli.serve import serve_cmd
from logarchive.config import CONFIG_ENV
from logarchive.status import ExitCode
from logarchive.version import __version__

__all__ = ["main"]


@click.group(cls=Group, context_settings=CONTEXT_SETTINGS, epilog=ExitCode.epilog())
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
    logsetup.configure(verbosity, json=log_json)
    ctx.obj = State(verbosity, config_path, log_json)


for _command in (export_cmd, runs_cmd, plugins_cmd, check_cmd, config_group, retention_group,
                 verify_cmd, ledger_group):
    main.add_command(_command)
main.add_command(query_cmd)
main.add_command(search_cmd)
main.add_command(serve_cmd)
