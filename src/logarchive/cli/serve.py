"""``logarchive serve``: answer the source systems' download APIs, a JSON API and a web UI from
an archive (docs/serve.md). The web stack is the ``[serve]`` extra, imported only here, when the
command runs."""

from __future__ import annotations

import click

from logarchive.cli.common import State, config_option, say


@click.command("serve")
@config_option
@click.pass_obj
def serve_cmd(state: State) -> None:
    """Serve an archive read-only over HTTP: the original download APIs, JSON, a web UI.

    \b
    Example:
      LOGARCHIVE_SERVE_TOKEN=... logarchive serve -c logarchive.toml
    """
    from logarchive.serve.runner import run

    run(state.config(), lambda line: say(line, err=True), state.verbosity)
