"""The Python API beyond ``export``: what the CLI's ``verify`` and ``retention`` commands do,
on a :class:`~logarchive.config.Config`, and ``since`` in every form a caller has at hand."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from logarchive.base import ByteSink
from logarchive.config import Config
from logarchive.engine import export as _export
from logarchive.errors import ConfigError
from logarchive.executor import check_executor, executor_for
from logarchive.ledger import existing_ledger, open_ledger
from logarchive.pipeline import byte_sink_names, close_all, open_sink
from logarchive.results import ExportSummary
from logarchive.retention import ApplyResult, SinkPlan, apply, plan
from logarchive.verify import VerifyReport, verify as _verify

T = TypeVar("T")
Since = str | timedelta | datetime | None
_DURATION = re.compile(r"([0-9]+)([smhdw])")  # ASCII digits only: "²d" is no duration
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def as_since(value: Since, *, now: datetime | None = None) -> datetime | None:
    """A point in time from ``"7d"``/``"12h"`` (back from now), an ISO date (UTC if naive), a
    :class:`timedelta` (back from now) or an aware :class:`datetime`; a naive datetime is an
    error (its time zone would be a guess)."""
    now = now or datetime.now(timezone.utc)
    if value is None or isinstance(value, datetime):
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ConfigError("a naive datetime: give one with a time zone "
                              "(datetime(..., tzinfo=timezone.utc))", key="since")
        return value
    try:
        if isinstance(value, timedelta):
            return now - value
        match = _DURATION.fullmatch(value.strip())
        if match:
            return now - timedelta(seconds=int(match[1]) * _UNITS[match[2]])
        parsed = datetime.fromisoformat(value)
    except OverflowError:
        raise ConfigError(f"{value!r} reaches back before the year 1", key="since") from None
    except ValueError:
        raise ConfigError(f"{value!r} is neither a duration (digits 0-9 and one of s, m, h, d, "
                          "w: 7d, 12h) nor an ISO date", key="since") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def export(config: Config, pipeline: str | None = None, *, since: Since = None,
           **options: Any) -> ExportSummary:
    """:func:`logarchive.engine.export` with ``since`` as ``"7d"``, a timedelta or an aware
    datetime (see :func:`as_since`); the other options are the engine's."""
    return _export(config, pipeline, since=as_since(since), **options)


def on_each_sink(config: Config, names: Iterable[str], work: Callable[[ByteSink], T]) -> list[T]:
    """``work`` on each byte sink of ``names`` in turn, each opened alone and closed after."""
    results = []
    for name in names:
        target = open_sink(config, name)
        try:
            results.append(work(target))
        finally:
            close_all([target])
    return results


def verify(config: Config, sink: str | None = None, *,
           sample: int | None = None) -> list[VerifyReport]:
    """Re-read the archived objects of ``sink`` (default: every byte sink) and check them
    against their manifests; ``report.passed`` says whether each archive is whole."""
    names = [sink] if sink else byte_sink_names(config)
    ledger = existing_ledger(config)
    check_executor(config)
    executor = executor_for(config, None)  # re-reading objects fans out over it

    def one(target: ByteSink) -> VerifyReport:
        if not target.exists(""):  # checking nothing must not pass as "all objects match"
            raise ConfigError(f"no archive at {target.describe('')} (nothing was exported "
                              "there, or the url is wrong)", key=f"sinks.{target.name}.url")
        return _verify(target, ledger=ledger, sample=sample,
                       hash_many=executor.hash_many(config))

    with contextlib.closing(executor), (
            contextlib.closing(ledger) if ledger else contextlib.nullcontext()):
        return on_each_sink(config, names, one)


def _retention_names(config: Config, sink: str | None) -> list[str]:
    names = [sink] if sink else byte_sink_names(config)
    return [n for n in names if config.sinks[n].config.retention is not None]


def retention_plan(config: Config, sink: str | None = None) -> list[SinkPlan]:
    """What the retention rules of ``sink`` (default: every sink with a ``retention`` table)
    would delete, and what protects the rest. Deletes nothing."""
    return on_each_sink(config, _retention_names(config, sink),
                        lambda target: plan(target, known_sinks=config.sinks))


def retention_apply(config: Config, sink: str | None = None, *,
                    stop: threading.Event | None = None) -> list[ApplyResult]:
    """Plan and delete, sink by sink, with an audit record per deletion in the ledger."""
    with contextlib.closing(open_ledger(config)) as ledger:
        return on_each_sink(
            config, _retention_names(config, sink),
            lambda target: apply(target, plan(target, known_sinks=config.sinks), ledger=ledger,
                                 stop=stop))
