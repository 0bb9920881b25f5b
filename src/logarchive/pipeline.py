"""Plugin instances: a pipeline's live source and sinks, and opening one source or sink alone.

Every plugin instance is built here, with the :class:`~logarchive.base.Context` the engine hands
it, so an export, ``runs`` (sources only), ``retention``, ``verify`` and ``ledger rebuild`` (byte
sinks only) all open plugins the same way.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import structlog

from logarchive.base import ByteSink, Context, RecordSink, RuntimeSettings, Source
from logarchive.config import Config, PipelineConfig
from logarchive.errors import ConfigError
from logarchive.secrets import redact

log = structlog.get_logger("logarchive")


@dataclass
class Pipeline:
    """A pipeline's live objects for one export."""

    config: PipelineConfig
    source: Source
    sinks: dict[str, ByteSink | RecordSink]
    dead_sinks: dict[str, str] = field(default_factory=dict)  # failed for good this export

    def plugins(self) -> list[Source | ByteSink | RecordSink]:
        return [self.source, *self.sinks.values()]

    def close(self) -> None:
        """Close the source and every sink; a failure to close is logged, never raised."""
        close_all(self.plugins())


def runtime_settings(config: Config) -> RuntimeSettings:
    return RuntimeSettings(chunk_size=config.settings.chunk_size, base_dir=config.base_dir,
                           state_dir=config.state_dir, parse=config.settings.parse.settings())


def open_source(config: Config, name: str, stop: threading.Event | None = None) -> Source:
    """Instantiate the source ``name`` of ``config``."""
    if name not in config.sources:
        raise ConfigError(f"no source named {name!r}; expected one of: "
                          + ", ".join(config.sources), key="--source")
    cfg = config.sources[name]
    context = Context(name, log.bind(source=name), stop or threading.Event(),
                      runtime_settings(config))
    return cfg.plugin.cls(name, cfg.config, context)


def open_any_sink(config: Config, name: str,
                  stop: threading.Event | None = None) -> ByteSink | RecordSink:
    """Instantiate the sink ``name`` of ``config``, of any kind."""
    if name not in config.sinks:
        raise ConfigError(f"no sink named {name!r}; expected one of: " + ", ".join(config.sinks),
                          key="--sink")
    cfg = config.sinks[name]
    context = Context(name, log.bind(sink=name), stop or threading.Event(),
                      runtime_settings(config))
    return cfg.plugin.cls(name, cfg.config, context)


def open_sink(config: Config, name: str, stop: threading.Event | None = None) -> ByteSink:
    """Instantiate the byte sink ``name`` of ``config`` (retention, verify, rebuild)."""
    if name in config.sinks and not issubclass(config.sinks[name].plugin.cls, ByteSink):
        cfg = config.sinks[name]
        raise ConfigError(f"sink {name!r} (type {cfg.plugin.type}) stores no objects", key="--sink")
    sink = open_any_sink(config, name, stop)
    assert isinstance(sink, ByteSink)
    return sink


def byte_sink_names(config: Config) -> list[str]:
    """The names of the config's sinks that store objects."""
    return [n for n, c in config.sinks.items() if issubclass(c.plugin.cls, ByteSink)]


def instantiate(config: Config, pipeline: PipelineConfig, stop: threading.Event) -> Pipeline:
    """Build a pipeline's source and sinks for one export."""
    source = open_source(config, pipeline.source, stop)
    sinks: dict[str, ByteSink | RecordSink] = {}
    try:
        for name in pipeline.sinks:
            sinks[name] = open_any_sink(config, name, stop)
    except BaseException:
        close_all([source, *sinks.values()])
        raise
    return Pipeline(pipeline, source, sinks)


def close_all(plugins: list[Source | ByteSink | RecordSink]) -> None:
    """Close plugin instances; closing must never hide the outcome of what ran before."""
    for plugin in plugins:
        try:
            plugin.close()
        except Exception as exc:
            log.warning("close_failed", plugin=plugin.name, error=redact(str(exc)))
