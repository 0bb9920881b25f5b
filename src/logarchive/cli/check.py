"""``logarchive check``: connectivity and permission checks of every source and sink."""

from __future__ import annotations

import click

from logarchive.check import run_checks
from logarchive.cli.common import State, config_option, dump_json, exit_with, json_option, say
from logarchive.plugins import default_registry


@click.command("check")
@click.option("--pipeline", "-p", help="Only the source and sinks of this pipeline.")
@json_option
@config_option
@click.pass_obj
def check_cmd(state: State, pipeline: str | None, as_json: bool) -> None:
    """Check that every source answers and accepts its credentials, and every sink's folder,
    bucket or token works, without exporting anything; exit 1 if any check failed.

    \b
    Example:
      logarchive check -c logarchive.toml --json
    """
    results = run_checks(state.config(registry=default_registry()), pipeline)  # every plugin
    ok = all(r.status != "failed" for r in results)
    if as_json:
        dump_json({"ok": ok, "checks": [r.to_json() for r in results]})
    else:
        for result in results:
            say(result.text())
    exit_with(ok)
