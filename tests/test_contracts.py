"""Contracts between core and plugins or embedders that are declared on base classes (not found
with ``getattr``): the stop event's signal, the ledger's path and novelty, a byte sink's locks,
a source's config class."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import structlog

import logarchive
from logarchive import parse_config
from logarchive.base import ByteSink, Context, PluginConfig, Source, StopEvent
from logarchive.errors import PluginError
from logarchive.hookspecs import hookimpl
from logarchive.ledger import Ledger, SQLiteLedger
from logarchive.plugins import Registry
from logarchive_testsupport.workspace import base_config, write_logs


def stopped_export(tmp_path: Path, stop: threading.Event) -> logarchive.ExportSummary:
    write_logs(tmp_path / "logs", {"m/r1.log": b"one\n", "m/r2.log": b"two\n"})
    stop.set()
    return logarchive.export(parse_config(base_config(tmp_path)), stop=stop)


def test_the_signal_recorded_on_the_stop_event_becomes_the_exit_code(tmp_path: Path) -> None:
    stop = StopEvent()
    stop.signal_number = 15
    summary = stopped_export(tmp_path, stop)
    assert [r.status for r in summary.results] == ["interrupted", "interrupted"]
    assert summary.interrupted_by == 15 and summary.exit_code == 143


def test_a_plain_event_stops_the_export_without_a_signal(tmp_path: Path) -> None:
    summary = stopped_export(tmp_path, threading.Event())
    assert [r.status for r in summary.results] == ["interrupted", "interrupted"]
    assert summary.interrupted_by is None and summary.exit_code not in (130, 143)
    assert StopEvent().signal_number is None


def test_the_ledger_says_where_it_is_and_whether_it_was_just_created(tmp_path: Path) -> None:
    first = SQLiteLedger(tmp_path / "state")
    first.close()
    again = SQLiteLedger(tmp_path / "state")
    again.close()
    assert first.created and not again.created
    assert first.path == again.path == tmp_path / "state" / "ledger.sqlite3"
    assert (Ledger.created, Ledger.path) == (False, None)


def test_a_byte_sink_without_locks_reports_none() -> None:
    class Plain(ByteSink):
        type = "plain"

    sink = Plain("plain", None, Context("plain", structlog.get_logger()))
    assert sink.object_lock_status("any/object.txt") is None


class UntypedSource(Source):
    """A source whose Config is not a SourceConfig: it lacks include_statuses."""

    type = "untyped"
    Config = PluginConfig  # type: ignore[assignment]

    def discover(self):
        return []

    @contextmanager
    def open(self, run):
        yield iter([])


class UntypedPlugin:
    @hookimpl
    def logarchive_register_sources(self, register):
        register(UntypedSource)


def test_a_source_config_must_be_a_source_config() -> None:
    with pytest.raises(PluginError, match="UntypedSource.Config is not a SourceConfig subclass"):
        Registry().register(UntypedPlugin(), name="untyped")
