"""The one module plugins import from. Everything here is public and kept stable.

A minimal source plugin::

    from logarchive.plugin_api import RunRef, Source, SourceConfig, hookimpl

    class MySource(Source):
        type = "mine"
        description = "Logs from my system."
        Config = MyConfig          # a SourceConfig subclass

        def discover(self): ...    # yield RunRef(...)
        def open(self, run): ...   # context manager yielding byte chunks

    @hookimpl
    def logarchive_register_sources(register):
        register(MySource)
"""

from logarchive.base import (
    ByteSink, ByteSinkConfig, Context, ObjectWriter, PluginConfig, RecordDelivery, RecordSink,
    RecordSinkConfig, SinkConfig, Source, SourceConfig, StoredObject,
)
from logarchive.codec import parse_level, parse_timestamp, timestamp_to_epoch
from logarchive.errors import (
    ConfigError, LogarchiveError, RunGone, RunNotReady, SinkError, SourceError,
)
from logarchive.hookspecs import hookimpl
from logarchive.paths import sanitize_path, sanitize_segment
from logarchive.runs import STATUSES, TERMINAL, RunRef, iso, parse_time
from logarchive.secrets import Secret, redact, redact_url, register_secret

__all__ = [
    "STATUSES", "TERMINAL", "ByteSink", "ByteSinkConfig", "ConfigError", "Context",
    "LogarchiveError", "ObjectWriter", "PluginConfig", "RecordDelivery", "RecordSink",
    "RecordSinkConfig", "RunGone", "RunNotReady", "RunRef", "Secret", "SinkConfig", "SinkError",
    "Source", "SourceConfig", "SourceError", "StoredObject", "hookimpl", "iso", "parse_level",
    "parse_time", "parse_timestamp", "redact", "redact_url", "register_secret", "sanitize_path",
    "sanitize_segment", "timestamp_to_epoch",
]

# HTTP list-endpoint discovery (logarchive.discovery), for HTTP sources.
from logarchive.discovery import (  # noqa: E402
    ListEndpoint, ListedRun, fill_template, json_pointer, list_items, list_runs,
    normalise_status, parse_link_header,
)

__all__ += [
    "ListEndpoint", "ListedRun", "fill_template", "json_pointer", "list_items", "list_runs",
    "normalise_status", "parse_link_header",
]

# Record sinks (batching, retries, acknowledgement, resume bookkeeping): logarchive.batching.
from logarchive.batching import (  # noqa: E402
    Batch, BatchingSink, BatchingSinkConfig, BatchProtocol, EventIds, SplitBatch, epoch_seconds,
    event_id,
    render_run_template, retriable_error,
)
from logarchive.http import HttpClient, describe_response  # noqa: E402

__all__ += [
    "Batch", "BatchProtocol", "BatchingSink", "BatchingSinkConfig", "HttpClient", "SplitBatch",
    "describe_response", "EventIds", "epoch_seconds", "event_id", "render_run_template", "retriable_error",
]
