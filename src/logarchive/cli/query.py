"""``logarchive query`` (SQL with DuckDB) and ``logarchive search`` (a regular expression) over
the archive of one byte sink. Results go to stdout; see docs/archive.md."""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from typing import Any

import click
import orjson

from logarchive.api import as_since
from logarchive.cli.common import (
    State, config_option, exit_with, human, json_option, printing_may_stop, say,
)
from logarchive.config import Config
from logarchive.errors import ConfigError
from logarchive.status import ExitCode


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    try:
        return as_since(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("since: ")) from None


def _archive_sink(config: Config, name: str | None) -> Any:
    """The byte sink ``name``, or the config's only one when no name is given."""
    from logarchive.pipeline import byte_sink_names, open_sink

    names = byte_sink_names(config)
    if name is None:
        if len(names) != 1:
            raise ConfigError("name the archive to read: one of " + (", ".join(names) or
                              "(no sink stores objects)"), key="--sink")
        name = names[0]
    return open_sink(config, name)


sink_option = click.option("--sink", "sink_name", metavar="NAME",
                           help="The archive (a byte sink of the config); default: the only one.")
where_option = click.option("--where", "where", multiple=True, metavar="FIELD=GLOB",
                            help="Only runs whose field matches the glob (repeatable).")


@click.command("query")
@click.argument("sql")
@sink_option
@where_option
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header line on stdout.")
@config_option
@click.pass_obj
def query_cmd(state: State, sql: str, sink_name: str | None, where: tuple[str, ...],
              as_json: bool, as_csv: bool) -> None:
    """Run SQL (DuckDB) over an archive: view `logs` (one row per record, run fields as
    columns; ndjson and json objects) and table `runs` (one row per manifest).

    \b
    Example:
      logarchive query -c logarchive.toml --sink records \\
        "SELECT level, count(*) FROM logs GROUP BY 1 ORDER BY 2 DESC"
    """
    from logarchive.query import query
    from logarchive.search import parse_where

    config = state.config()
    sink = _archive_sink(config, sink_name)
    try:
        result = query(sink, sql, where=parse_where(where), base_dir=config.base_dir)
    finally:
        sink.close()
    with printing_may_stop():
        if as_json:  # DuckDB values orjson has no form for (DECIMAL, INTERVAL...) as text
            click.echo(orjson.dumps(result.records(), default=str,
                                    option=orjson.OPT_INDENT_2).decode())
        elif as_csv:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(result.columns)
            writer.writerows(result.rows)
        else:
            _table(result.columns, result.rows)


def _table(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """A table for a terminal (rich); plain aligned columns when stdout is not one."""
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*(human("NULL" if v is None else str(v)) for v in row))
    Console(soft_wrap=False).print(table)
    say(f"({len(rows)} row{'s' if len(rows) != 1 else ''})", err=True)


@click.command("search")
@click.argument("pattern")
@sink_option
@where_option
@click.option("--level", metavar="LEVEL", help="Only records at this level and above "
              "(trace, debug, info, notice, warning, error, critical).")
@click.option("--since", metavar="WHEN", callback=_when,
              help="Only records from this time on (7d, 12h, or ISO date; the record's "
              "timestamp, else its run's completion).")
@click.option("--until", metavar="WHEN", callback=_when, help="Only records before this time.")
@json_option
@config_option
@click.pass_obj
def search_cmd(state: State, pattern: str, sink_name: str | None, where: tuple[str, ...],
               level: str | None, since: datetime | None, until: datetime | None,
               as_json: bool) -> None:
    """Print the archived records whose message matches PATTERN (a Python regular
    expression): run key, seq, timestamp and the line, tab-separated; --json: one JSON object
    per line. Exits 0 when something matched, 1 when nothing did, 2 on a usage error or
    when an object held malformed records (each named, with its line; the others searched).

    \b
    Example:
      logarchive search -c logarchive.toml --level error --where model_id='mdl-7f*' 'CUDA'
    """
    from logarchive.search import parse_where, search

    config = state.config()
    sink = _archive_sink(config, sink_name)
    found = 0
    errors: list[str] = []
    try:
        hits = search(sink, pattern, level=level, since=since, until=until,
                      where=parse_where(where), errors=errors)
        with printing_may_stop():
            for hit in hits:
                found += 1
                if as_json:
                    click.echo(orjson.dumps(hit.to_json()).decode())
                else:  # each column escaped (human), so a tab in a line cannot shift them
                    click.echo("\t".join(human(column) for column in hit.columns()))
    finally:
        sink.close()
    for error in errors:  # the objects with malformed records; the others were searched
        click.echo(f"error: {error}", err=True)
    if errors:
        sys.exit(ExitCode.USAGE)
    exit_with(found > 0)
