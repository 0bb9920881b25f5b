"""Plugin discovery (entry points) and the registry of source and sink types."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
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
        self.complete = False  # every installed plugin (that $LOGARCHIVE_PLUGINS selects) loaded

    def load_entry_points(self, only: str | None = None, *, names: Iterable[str] | None = None
                          ) -> None:
        """Load plugins from the ``logarchive`` entry-point group.

        ``only`` (or ``$LOGARCHIVE_PLUGINS``): comma-separated entry-point names to load; empty
        string loads none. ``names``: load only those of them named so (a name no entry point
        has is no error: see :meth:`load_for`). A plugin that fails to import is reported, not
        fatal.
        """
        selection = only if only is not None else os.environ.get(LOAD_ENV)
        wanted = None if selection is None else {s.strip() for s in selection.split(",") if s}
        available = metadata.entry_points(group=ENTRY_POINT_GROUP)
        unknown = sorted((wanted or set()) - {ep.name for ep in available})
        if unknown:
            raise PluginError(
                f"{LOAD_ENV} names no installed plugin: {', '.join(unknown)}; installed: "
                + (", ".join(sorted({ep.name for ep in available})) or "(none)"))
        if names is not None:
            wanted = set(names) if wanted is None else wanted & set(names)
        else:
            self.complete = True
        for ep in available:
            if wanted is not None and ep.name not in wanted:
                continue
            if not self.pm.has_plugin(ep.name):
                self._load(ep)

    def load_for(self, sources: Iterable[str], sinks: Iterable[str]) -> None:
        """Load only the plugins a config needs: those whose entry point is named as one of its
        source or sink types (the convention of every plugin shipped here), then, if a type is
        still unknown (a plugin registering types under other names, a typo), every plugin, so
        an unknown type's error lists all the installed ones. Start-up of a txt export is
        mostly imports: the others (HTTP sources, aggregator sinks) are not imported."""
        sources, sinks = set(sources), set(sinks)

        def missing() -> set[str]:
            return (sources - self.sources.keys()) | (sinks - self.sinks.keys())

        if missing() and not self.complete:
            self.load_entry_points(names=missing())
        if missing() and not self.complete:
            self.load_entry_points()

    def _load(self, ep: metadata.EntryPoint) -> None:
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not stop the CLI from starting
            self.broken.append(BrokenPlugin(ep.name, dist, f"{type(exc).__name__}: {exc}"))
            log.warning("plugin_load_failed", plugin=ep.name, distribution=dist, error=str(exc))
            return
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
_default_lock = threading.RLock()


def default_registry(*, sources: Iterable[str] | None = None,
                     sinks: Iterable[str] | None = None) -> Registry:
    """The process-wide registry. With no arguments every installed plugin is loaded (what
    `logarchive plugins` and `config schema` list); with ``sources``/``sinks`` only what those
    types need (:meth:`Registry.load_for`), more being loaded on a later call that needs it."""
    global _default
    with _default_lock:  # configs parsed in threads (serve) may each load more
        if _default is None:
            _default = Registry()
        if sources is None and sinks is None:
            if not _default.complete:
                _default.load_entry_points()
        else:
            _default.load_for(sources or (), sinks or ())
        return _default
