"""Commands that look after an archive: ``retention plan|apply``, ``verify``,
``ledger show|rebuild``. Registered on :data:`logarchive.cli.main`.

Exit status: 0 fine; 1 a deletion failed (``retention apply``) or the archive does not match its
manifests (``verify``); 2 usage or configuration error.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from logarchive.base import StopEvent
from logarchive.cli import _config_option, _install_signal_handlers, _State, main
from logarchive.config import Config
from logarchive.errors import ConfigError
from logarchive.ledger import SQLiteLedger
from logarchive.status import ExitCode


def _dump(doc: Any) -> None:
    click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())


def _retention_sinks(config: Config, sink: str | None) -> list[str]:
    from logarchive.pipeline import byte_sink_names, open_sink

    if sink is not None:
        open_sink(config, sink).close()  # raises ConfigError for an unknown or record sink
        if config.sinks[sink].config.retention is None:
            raise ConfigError(f"sink {sink!r} has no [sinks.{sink}.retention] table",
                              file=config.path, key=f"sinks.{sink}.retention")
        return [sink]
    return [n for n in byte_sink_names(config) if config.sinks[n].config.retention is not None]


def _ledger_if_exists(config: Config) -> SQLiteLedger | None:
    return SQLiteLedger(config.state_dir) if (config.state_dir / "ledger.sqlite3").exists() else None


@main.group("retention")
def retention_group() -> None:
    """Show what the retention rules delete, then delete it."""


def _retention(state: _State, sink: str | None, as_json: bool, delete: bool) -> None:
    from logarchive.pipeline import open_sink
    from logarchive.retention import apply, plan

    config = state.config()
    names = _retention_sinks(config, sink)
    stop = StopEvent()
    if delete:
        _install_signal_handlers(stop, "finishing the current deletion, starting no other")
    if not names:
        click.echo("no sink has a [sinks.NAME.retention] table: nothing to do", err=True)
        if as_json:
            _dump({"sinks": []})
        return
    docs, texts, failed = [], [], False
    ledger = SQLiteLedger(config.state_dir) if delete else None
    try:
        for name in names:
            target = open_sink(config, name)
            try:
                sink_plan = plan(target, known_sinks=config.sinks)
                if delete:
                    result = apply(target, sink_plan, ledger=ledger, stop=stop)
                    failed = failed or not result.ok
                    docs.append(result.to_json())
                    texts.append(result.text())
                else:
                    docs.append(sink_plan.to_json())
                    texts.append(sink_plan.text())
            finally:
                target.close()
    finally:
        if ledger is not None:
            ledger.close()
    if as_json:
        _dump({"sinks": docs})
    else:
        click.echo("\n".join(texts))
    signum = stop.signal_number
    sys.exit(ExitCode.for_signal(signum) if signum else 1 if failed else 0)


_sink_option = click.option("--sink", "-s", metavar="NAME", help="Only this sink.")
_json_option = click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")


@retention_group.command("plan")
@_sink_option
@_json_option
@_config_option
@click.pass_obj
def retention_plan(state: _State, sink: str | None, as_json: bool) -> None:
    """List every object the retention rules would delete, and what protects the others.

    \b
    Example:
      logarchive retention plan -c logarchive.toml --sink archive
    """
    _retention(state, sink, as_json, delete=False)


@retention_group.command("apply")
@_sink_option
@_json_option
@click.option("--dry-run", is_flag=True, help="Delete nothing: the same output as `plan`.")
@_config_option
@click.pass_obj
def retention_apply(state: _State, sink: str | None, as_json: bool, dry_run: bool) -> None:
    """Delete what `retention plan` lists (object and manifest), with an audit record each.

    \b
    Example:
      logarchive retention apply -c logarchive.toml --sink archive
    """
    _retention(state, sink, as_json, delete=not dry_run)


@main.command("verify")
@_sink_option
@click.option("--sample", type=click.IntRange(min=1), metavar="N",
              help="Re-read only N objects picked at random (listing checks stay complete).")
@_json_option
@_config_option
@click.pass_obj
def verify_cmd(state: _State, sink: str | None, sample: int | None, as_json: bool) -> None:
    """Re-read archived objects and check sha256 and size against their manifests.

    Reports missing objects, corrupt objects, orphan manifests and orphan objects; exits 1 on
    any of them.

    \b
    Example:
      logarchive verify -c logarchive.toml --sample 100
    """
    from logarchive.pipeline import byte_sink_names, open_sink
    from logarchive.verify import verify

    config = state.config()
    names = [sink] if sink else byte_sink_names(config)
    ledger = _ledger_if_exists(config)
    reports = []
    try:
        for name in names:
            target = open_sink(config, name)
            try:
                reports.append(verify(target, ledger=ledger, sample=sample))
            finally:
                target.close()
    finally:
        if ledger is not None:
            ledger.close()
    if as_json:
        _dump({"passed": all(r.passed for r in reports), "sinks": [r.to_json() for r in reports]})
    else:
        click.echo("\n".join(r.text() for r in reports) or "no sink stores objects")
    sys.exit(0 if all(r.passed for r in reports) else 1)


@main.group("ledger")
def ledger_group() -> None:
    """Show the ledger, or rebuild it from the archives' manifests."""


@ledger_group.command("show")
@_sink_option
@click.option("--events", is_flag=True, help="Show the audit events (retention deletions...).")
@_json_option
@_config_option
@click.pass_obj
def ledger_show(state: _State, sink: str | None, events: bool, as_json: bool) -> None:
    """Show what was delivered where (or, with --events, the audit trail).

    \b
    Example:
      logarchive ledger show -c logarchive.toml --json
    """
    config = state.config()
    ledger = _ledger_if_exists(config)
    if ledger is None:
        click.echo(f"no ledger at {config.state_dir} yet", err=True)
        rows: list[dict[str, Any]] = []
    else:
        try:
            if events:
                rows = [e for e in ledger.events() if sink is None or e["sink"] == sink]
            else:
                rows = [d.to_json() for d in ledger.deliveries(sink)]
        finally:
            ledger.close()
    if as_json:
        _dump(rows)
        return
    if events:
        for e in rows:
            detail = " ".join(f"{k}={v}" for k, v in e.items()
                              if k not in ("time", "kind", "sink", "run_key") and v is not None)
            click.echo(f"{e['time']} {e['kind']:<24} {e['sink'] or '-'} {e['run_key'] or '-'} "
                       f"{detail}")
        click.echo(f"{len(rows)} event(s)")
        return
    for d in rows:
        click.echo(f"{d['status']:<11} {d['sink']:<12} {d['run_key']}  {d['object'] or ''}")
    counts: dict[str, int] = {}
    for d in rows:
        counts[d["status"]] = counts.get(d["status"], 0) + 1
    click.echo(f"{len(rows)} delivery record(s)"
               + (": " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) if rows else ""))


@ledger_group.command("rebuild")
@_sink_option
@_json_option
@_config_option
@click.pass_obj
def ledger_rebuild(state: _State, sink: str | None, as_json: bool) -> None:
    """Restore the ledger from the manifests of every sink that stores objects.

    \b
    Example:
      rm -r .logarchive && logarchive ledger rebuild -c logarchive.toml
    """
    from logarchive.rebuild import rebuild

    config = state.config()
    ledger = SQLiteLedger(config.state_dir)
    try:
        report = rebuild(config, ledger, [sink] if sink else None)
    finally:
        ledger.close()
    if as_json:
        _dump(report.to_json())
    else:
        click.echo(report.text())
