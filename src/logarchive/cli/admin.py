"""Commands that look after an archive: ``retention plan|apply``, ``verify``,
``ledger show|rebuild``.

Exit status: 0 fine; 1 a deletion failed (``retention apply``) or the archive does not match its
manifests (``verify``); 2 usage or configuration error (see :class:`~logarchive.status.ExitCode`).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click

from logarchive.api import existing_ledger, on_each_sink
from logarchive.base import ByteSink, StopEvent
from logarchive.cli.common import (
    Group, State, config_option, dump_json, exit_with, install_signal_handlers, json_option, say,
    say_block,
)
from logarchive.config import Config
from logarchive.errors import ConfigError
from logarchive.ledger import Ledger, ledger_place, open_ledger
from logarchive.pipeline import byte_sink_names, open_sink
from logarchive.status import ExitCode

def _retention_sinks(config: Config, sink: str | None) -> list[str]:
    if sink is not None:
        open_sink(config, sink).close()  # raises ConfigError for an unknown or record sink
        if config.sinks[sink].config.retention is None:
            raise ConfigError(f"sink {sink!r} has no [sinks.{sink}.retention] table",
                              file=config.path, key=f"sinks.{sink}.retention")
        return [sink]
    return [n for n in byte_sink_names(config) if config.sinks[n].config.retention is not None]


def _known_sink(config: Config, sink: str | None) -> None:
    """``--sink NAME`` must name a configured sink: a typo is an error, not an empty answer."""
    if sink is not None and sink not in config.sinks:
        raise ConfigError(f"no sink named {sink!r}; expected one of: "
                          + ", ".join(sorted(config.sinks)), key="--sink")


def _closing(ledger: Ledger | None) -> contextlib.AbstractContextManager[Any]:
    return contextlib.closing(ledger) if ledger is not None else contextlib.nullcontext()


@click.group("retention", cls=Group)
def retention_group() -> None:
    """Show what the retention rules delete, then delete it."""


def _retention(state: State, sink: str | None, as_json: bool, delete: bool) -> None:
    from logarchive.retention import apply, plan

    config = state.config()
    names = _retention_sinks(config, sink)
    stop = StopEvent()
    if delete:
        install_signal_handlers(stop, "finishing the current deletion, starting no other")
    if not names:
        click.echo("no sink has a [sinks.NAME.retention] table: nothing to do", err=True)
        if as_json:
            dump_json({"sinks": []})
        return
    ledger = open_ledger(config) if delete else None

    def one(target: ByteSink) -> tuple[Any, bool]:  # the plan, or what applying it did
        sink_plan = plan(target, known_sinks=config.sinks)
        if not delete:
            return sink_plan, True
        result = apply(target, sink_plan, ledger=ledger, stop=stop)
        return result, result.ok

    with _closing(ledger):
        outcomes = on_each_sink(config, names, one)
    if as_json:
        dump_json({"sinks": [outcome.to_json() for outcome, _ in outcomes]})
    else:
        say_block("\n".join(outcome.text() for outcome, _ in outcomes))
    if stop.signal_number:
        sys.exit(ExitCode.for_signal(stop.signal_number))
    exit_with(all(ok for _, ok in outcomes))


_sink_option = click.option("--sink", "-s", metavar="NAME", help="Only this sink.")


@retention_group.command("plan")
@_sink_option
@json_option
@config_option
@click.pass_obj
def retention_plan(state: State, sink: str | None, as_json: bool) -> None:
    """List every object the retention rules would delete, and what protects the others.

    \b
    Example:
      logarchive retention plan -c logarchive.toml --sink archive
    """
    _retention(state, sink, as_json, delete=False)


@retention_group.command("apply")
@_sink_option
@json_option
@click.option("--dry-run", is_flag=True, help="Delete nothing: the same output as `plan`.")
@config_option
@click.pass_obj
def retention_apply(state: State, sink: str | None, as_json: bool, dry_run: bool) -> None:
    """Delete what `retention plan` lists (object and manifest), with an audit record each.

    \b
    Example:
      logarchive retention apply -c logarchive.toml --sink archive
    """
    _retention(state, sink, as_json, delete=not dry_run)


@click.command("verify")
@_sink_option
@click.option("--sample", type=click.IntRange(min=1), metavar="N",
              help="Re-read only N objects picked at random (listing checks stay complete).")
@json_option
@config_option
@click.pass_obj
def verify_cmd(state: State, sink: str | None, sample: int | None, as_json: bool) -> None:
    """Re-read archived objects and check sha256 and size against their manifests.

    Reports missing objects, corrupt objects, orphan manifests and orphan objects; exits 1 on
    any of them.

    \b
    Example:
      logarchive verify -c logarchive.toml --sample 100
    """
    from logarchive.api import verify

    config = state.config()
    _known_sink(config, sink)
    reports = verify(config, sink, sample=sample)
    if as_json:
        dump_json({"passed": all(r.passed for r in reports),
                   "sinks": [r.to_json() for r in reports]})
    else:
        say_block("\n".join(r.text() for r in reports) or "no sink stores objects")
    exit_with(all(r.passed for r in reports))


@click.group("ledger", cls=Group)
def ledger_group() -> None:
    """Show the ledger, or rebuild it from the archives' manifests."""


@ledger_group.command("show")
@_sink_option
@click.option("--events", is_flag=True, help="Show the audit events (retention deletions...).")
@json_option
@config_option
@click.pass_obj
def ledger_show(state: State, sink: str | None, events: bool, as_json: bool) -> None:
    """Show what was delivered where (or, with --events, the audit trail).

    \b
    Example:
      logarchive ledger show -c logarchive.toml --json
    """
    config = state.config()
    _known_sink(config, sink)
    ledger = existing_ledger(config)
    if ledger is None:
        click.echo(f"no ledger at {ledger_place(config)} yet", err=True)
    rows = _ledger_rows(ledger, sink, events) if ledger is not None else []
    if as_json:
        dump_json(rows)
    elif events:
        _print_events(rows)
    else:
        _print_deliveries(rows)


def _ledger_rows(ledger: Ledger, sink: str | None, events: bool) -> list[dict[str, Any]]:
    with contextlib.closing(ledger):
        if events:
            return [e for e in ledger.events() if sink is None or e["sink"] == sink]
        return [d.to_json() for d in ledger.deliveries(sink)]


def _print_events(rows: list[dict[str, Any]]) -> None:
    for e in rows:
        detail = " ".join(f"{k}={v}" for k, v in e.items()
                          if k not in ("time", "kind", "sink", "run_key") and v is not None)
        say(f"{e['time']} {e['kind']:<24} {e['sink'] or '-'} {e['run_key'] or '-'} "
                   f"{detail}")
    click.echo(f"{len(rows)} event(s)")


def _print_deliveries(rows: list[dict[str, Any]]) -> None:
    for d in rows:
        skipped = f" ({d['lines_skipped']} lines skipped)" if d["lines_skipped"] else ""
        say(f"{d['status']:<11} {d['sink']:<12} {d['run_key']}  {d['object'] or ''}{skipped}")
    counts: dict[str, int] = {}
    for d in rows:
        counts[d["status"]] = counts.get(d["status"], 0) + 1
    click.echo(f"{len(rows)} delivery record(s)"
               + (": " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) if rows else ""))


@ledger_group.command("rebuild")
@_sink_option
@json_option
@config_option
@click.pass_obj
def ledger_rebuild(state: State, sink: str | None, as_json: bool) -> None:
    """Restore the ledger from the manifests of every sink that stores objects.

    \b
    Example:
      rm -r .logarchive && logarchive ledger rebuild -c logarchive.toml
    """
    from logarchive.rebuild import rebuild

    config = state.config()
    with contextlib.closing(open_ledger(config)) as ledger:
        report = rebuild(config, ledger, [sink] if sink else None)
    if as_json:
        dump_json(report.to_json())
    else:
        say_block(report.text())
