"""Commands that look and change nothing: ``runs``, ``plugins``, ``config check|schema``."""

from __future__ import annotations

import json
import threading
from typing import Any

import click

from logarchive.api import existing_ledger
from logarchive.cli.common import (
    Group, State, config_option, dump_json, exit_with, json_option, say,
)
from logarchive.config import Config
from logarchive.errors import ConfigError, LogarchiveError
from logarchive.ledger import Ledger
from logarchive.pipeline import close_all, open_source
from logarchive.plugins import default_registry
from logarchive.status import RunStatus

PENDING = "pending"  # no ledger record of the run at that sink yet: the next export delivers it


@click.command("runs")
@click.option("--source", "-s", "source_name", help="Only this source.")
@json_option
@config_option
@click.pass_obj
def runs_cmd(state: State, source_name: str | None, as_json: bool) -> None:
    """List what the sources see: each run, its status, and whether it is delivered.

    Opens the sources only: a sink that cannot be reached does not hide the runs.

    \b
    Example:
      logarchive runs -c config.example.toml --json
    """
    config = state.config()
    if source_name and source_name not in config.sources:
        raise ConfigError(f"no source named {source_name!r}; expected one of: "
                          + ", ".join(config.sources), key="--source")
    # Read-only: no ledger is created (a first export must still see a new ledger and warn).
    ledger = existing_ledger(config)
    try:
        rows, ok = _list_runs(config, ledger, source_name)
    finally:
        if ledger is not None:
            ledger.close()
    if as_json:
        dump_json(rows)
    else:
        for row in rows:
            gone = RunStatus.GONE in row["sinks"].values()
            mark = RunStatus.GONE if gone else RunStatus.DELIVERED if row["delivered"] else PENDING
            say(f"{row['status']:<10} {mark:<10} {row['key']}")
        say(f"{len(rows)} run(s)")
    exit_with(ok)


def _list_runs(config: Config, ledger: Ledger | None,
               source_name: str | None) -> tuple[list[dict[str, Any]], bool]:
    """One row per run of every pipeline (of ``source_name``); False if a source failed."""
    rows: list[dict[str, Any]] = []
    ok = True
    for pipeline in config.pipelines:
        if source_name and pipeline.source != source_name:
            continue
        source = open_source(config, pipeline.source, threading.Event())
        try:
            for run in source.discover():
                sinks = {sink: _sink_status(ledger, run.key, sink) for sink in pipeline.sinks}
                rows.append({"pipeline": pipeline.name, **run.to_json(), "sinks": sinks,
                             "delivered": all(v == RunStatus.DELIVERED for v in sinks.values())})
            for problem, failed in source.skipped:
                ok = ok and not failed
                say(f"{'error' if failed else 'warning'}: source {pipeline.source}: {problem}",
                    err=True)
        except LogarchiveError as error:
            ok = False
            say(f"error: source {pipeline.source}: {error}", err=True)
        finally:
            close_all([source])
    return rows, ok


def _sink_status(ledger: Ledger | None, key: str, sink: str) -> str:
    delivery = ledger.get(key, sink) if ledger is not None else None
    return str(delivery.status) if delivery is not None else PENDING


@click.command("plugins")
@json_option
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


@click.group("config", cls=Group)
def config_group() -> None:
    """Check the config, or print its schema."""


@config_group.command("check")
@click.option("--no-env", is_flag=True,
              help="Do not read environment variables or secret files: each ${...} without a "
              "default is a placeholder that any key accepts.")
@config_option
@click.pass_obj
def config_check(state: State, no_env: bool) -> None:
    """Validate the config without touching the network; report every error at once.

    \b
    Example:
      logarchive config check -c logarchive.toml --no-env
    """
    from logarchive.config import load_config, overlapping_roots

    # every plugin, not only the config's: a broken one is reported here
    config = load_config(state.config_path, no_env=no_env, registry=default_registry())
    for warning in overlapping_roots(config):
        say(f"warning: {warning}", err=True)
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
