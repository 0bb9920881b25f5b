"""structlog set-up: JSON lines on stderr when not a terminal, readable lines on a terminal.

Every event goes through :func:`redact_processor`, so no secret reaches a log line.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from typing import Any

import orjson

from logarchive.lazyimport import rich_hidden
from logarchive.secrets import RedactFilter, redact, redact_value

with rich_hidden():
    import structlog


def redact_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return redact_value(event_dict)


def _redact_rendered(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # format_exc_info has turned tracebacks into text by now: redact that text too.
    if "exception" in event_dict:
        event_dict["exception"] = redact(event_dict["exception"])
    return event_dict


def configure(verbosity: int = 0, *, json: bool | None = None, stream: Any = None) -> None:
    """verbosity: -2 errors only, -1 warnings, 0 info, 1+ debug. ``json`` defaults to "stderr is
    not a terminal"."""
    stream = stream or _Stderr()
    level = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO}.get(
        max(min(verbosity, 1), -2), logging.DEBUG
    )
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_processor,
    ]
    if json:
        processors += [
            structlog.processors.format_exc_info,
            _redact_rendered,
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=False)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library (botocore, httpx...) go to stderr too,
    # quieter than ours, and redacted.
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactFilter())
    handler.setFormatter(_JsonFormatter() if json
                         else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


class _JsonFormatter(logging.Formatter):
    """A library's log record as one JSON line, like our own events (``-vv`` off a terminal)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"event": record.getMessage(), "logger": record.name,
               "level": record.levelname.lower(),
               "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat()}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(redact_value(doc)).decode()


def default_to_stderr() -> None:
    """Library use: structlog prints to stdout unless configured; send our events to stderr
    instead, leaving a configuration the embedding program made (and the stdlib's) alone."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), redact_processor,
                    structlog.processors.format_exc_info, _redact_rendered,
                    structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),
    )


class _Stderr:
    """Whatever ``sys.stderr`` is at write time (pytest and embedders swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()
