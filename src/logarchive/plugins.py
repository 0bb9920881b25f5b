"""Plugin discovery (entry points) and the registry of source and sink types."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy
import structlog

from logarchive import hookspecs
from logarchive.base import ByteSink, RecordSink, Source, SourceConfig
from logarchive.errors import PluginError

ENTRY_POINT_GROUP = "logarchive"
LOAD_ENV = "LOGARCHIVE_PLUGINS"
log = structlog.get_logger("logarchive.plugins")


@dataclass(frozen=True)
class PluginType:
    """One registered type: what `logarchive plugins` lists."""

    type: str
    kind: str  # "source" | "bytes" | "records"
    cls: type
    description: str
    plugin: str
    distribution: str
    version: str

    def to_json(self) -> dict[str, str]:
        return {
            "type": self.type,
            "kind": self.kind,
            "description": self.description,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
        }


@dataclass(frozen=True)
class BrokenPlugin:
    plugin: str
    distribution: str
    error: str


class Registry:
    """Source and sink types from every loaded plugin."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("logarchive")
        self.pm.add_hookspecs(hookspecs)
        self.sources: dict[str, PluginType] = {}
        self.sinks: dict[str, PluginType] = {}
        self.broken: list[BrokenPlugin] = []
        self._dists: dict[str, tuple[str, str]] = {}

    def load_entry_points(self, only: str | None = None) -> None:
        """Load plugins from the ``logarchive`` entry-point group.

        ``only`` (or ``$LOGARCHIVE_PLUGINS``): comma-separated entry-point names to load; empty
        string loads none. A plugin that fails to import is reported, not fatal.
        """
        selection = only if only is not None else os.environ.get(LOAD_ENV)
        wanted = None if selection is None else {s.strip() for s in selection.split(",") if s}
        available = metadata.entry_points(group=ENTRY_POINT_GROUP)
        unknown = sorted((wanted or set()) - {ep.name for ep in available})
        if unknown:
            raise PluginError(
                f"{LOAD_ENV} names no installed plugin: {', '.join(unknown)}; installed: "
                + (", ".join(sorted({ep.name for ep in available})) or "(none)"))
        for ep in available:
            if wanted is not None and ep.name not in wanted:
                continue
            if self.pm.has_plugin(ep.name):
                continue
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not stop the CLI from starting
                self.broken.append(BrokenPlugin(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                log.warning("plugin_load_failed", plugin=ep.name, distribution=dist, error=str(exc))
                continue
            self.register(module, name=ep.name, distribution=dist, version=version)

    def register(
        self, plugin: Any, *, name: str | None = None, distribution: str = "(in-process)",
        version: str = "",
    ) -> None:
        """Register a plugin object (a module or any object with hookimpls)."""
        name = self.pm.register(plugin, name=name)
        if name is None:
            return
        self._dists[name] = (distribution, version)
        hooks = self.pm.hook
        for hook, is_source in (
            (hooks.logarchive_register_sources, True),
            (hooks.logarchive_register_sinks, False),
        ):
            for impl in hook.get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(
                        register=lambda cls, _n=name, _s=is_source: self._add(cls, _n, source=_s)
                    )

    def _add(self, cls: type, plugin: str, *, source: bool) -> None:
        type_name = getattr(cls, "type", None)
        if not isinstance(type_name, str) or not type_name:
            raise PluginError(f"plugin {plugin!r}: {cls.__name__} has no 'type' name")
        if source:
            if not issubclass(cls, Source):
                raise PluginError(f"plugin {plugin!r}: {cls.__name__} is not a Source subclass")
            if not issubclass(cls.Config, SourceConfig):
                raise PluginError(f"plugin {plugin!r}: {cls.__name__}.Config is not a "
                                  "SourceConfig subclass")
            table, kind = self.sources, "source"
        else:
            if issubclass(cls, ByteSink):
                kind = "bytes"
            elif issubclass(cls, RecordSink):
                kind = "records"
            else:
                raise PluginError(
                    f"plugin {plugin!r}: {cls.__name__} is neither a ByteSink nor a RecordSink"
                )
            table = self.sinks
        if type_name in table:
            other = table[type_name].plugin
            raise PluginError(
                f"{kind} type {type_name!r} is registered by both {other!r} and {plugin!r}"
            )
        dist, version = self._dists.get(plugin, ("(in-process)", ""))
        table[type_name] = PluginType(
            type=type_name, kind=kind, cls=cls, description=getattr(cls, "description", ""),
            plugin=plugin, distribution=dist, version=version,
        )

    def all_types(self) -> list[PluginType]:
        return sorted(
            [*self.sources.values(), *self.sinks.values()], key=lambda t: (t.kind != "source", t.type)
        )


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _default
    if _default is None:
        registry = Registry()
        registry.load_entry_points()
        _default = registry
    return _default

