"""Hook specifications: the whole contract between logarchive and its plugins.

A plugin is a module (or object) registered under the ``logarchive`` entry-point group::

    [project.entry-points.logarchive]
    myplugin = "logarchive_myplugin"

It implements one or both hooks below with ``@logarchive.plugin_api.hookimpl``. Built-in plugins
(``files``, ``fs``, ...) are registered exactly the same way; core code names none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("logarchive")
hookimpl = pluggy.HookimplMarker("logarchive")


@hookspec
def logarchive_register_sources(register: Callable[[type[Any]], None]) -> None:
    """Contribute source types.

    Called once per process, when plugins are loaded (before any config is validated). Call
    ``register(cls)`` once per source class; ``cls`` subclasses
    :class:`logarchive.plugin_api.Source` and sets ``type`` (the config's ``type = "..."``),
    ``description`` and ``Config`` (a :class:`logarchive.plugin_api.SourceConfig` model).
    Returns nothing. Registering a type name twice is an error naming both plugins.
    """


@hookspec
def logarchive_register_sinks(register: Callable[[type[Any]], None]) -> None:
    """Contribute sink types.

    Called once per process, when plugins are loaded. Call ``register(cls)`` once per sink class;
    ``cls`` subclasses :class:`logarchive.plugin_api.ByteSink` (writes objects: files, S3, GCS)
    or :class:`logarchive.plugin_api.RecordSink` (sends batches of records: Splunk, Datadog), and
    sets ``type``, ``description`` and ``Config``. Returns nothing.
    """
