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

A source whose logs are records already (the ``archive`` source replaying an NDJSON archive)
returns a :class:`RecordStream` from ``open()``: lists of record dicts, passed to every sink
unchanged instead of through the line codec (see :mod:`logarchive.sourcestream`). A run whose
``RunRef.replays`` names another run reaches record sinks as that run (its event ids).

A plugin's runtime code imports nothing else of ``logarchive`` (``tests/test_plugin_imports.py``
enforces it); its shipped testing modules may also import ``logarchive.testing``. When a plugin
needs something core has, it is exported here.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator

from logarchive.base import (
    ByteSink, ByteSinkConfig, Context, ObjectWriter, PluginConfig, RecordDelivery, RecordSink,
    RecordSinkConfig, SinkConfig, Source, SourceConfig, StoredObject, probe,
)
from logarchive.codec import parse_level, parse_timestamp, timestamp_to_epoch
from logarchive.errors import (
    ConfigError, LogarchiveError, RunGone, RunNotReady, SinkError, SourceError,
)
from logarchive.hookspecs import hookimpl
from logarchive.paths import sanitize_path, sanitize_segment
from logarchive.runs import STATUSES, TERMINAL, RunRef, iso, parse_time
from logarchive.secrets import Secret, redact, redact_url, register_secret
from logarchive.sourcestream import Declared, SourceStream

__all__ = [
    "STATUSES", "TERMINAL", "ByteSink", "ByteSinkConfig", "ConfigError", "Context", "Declared",
    "LogarchiveError", "ObjectWriter", "PluginConfig", "RecordDelivery", "RecordSink",
    "RecordSinkConfig", "RunGone", "RunNotReady", "RunRef", "Secret", "SinkConfig", "SinkError",
    "Source", "SourceConfig", "SourceError", "SourceStream", "StoredObject", "hookimpl", "iso",
    "parse_level", "parse_time", "parse_timestamp", "probe", "redact", "redact_url",
    "register_secret", "sanitize_path",
    "sanitize_segment", "timestamp_to_epoch",
]

# HTTP (logarchive.http, logarchive.retry): the client with the core retry loop, its config
# blocks, and what a ``classify`` callback needs to sort responses.
from logarchive.http import (  # noqa: E402
    RETRIABLE_STATUS, AuthConfig, BasicAuth, HttpClient, HttpOptions, describe_response,
    describe_response_head, json_object, mask_quoted, retry_after,
)
from logarchive.retry import RetryOptions, Retryable, call_with_retries  # noqa: E402

__all__ += [
    "RETRIABLE_STATUS", "AuthConfig", "BasicAuth", "HttpBaseUrl", "HttpClient", "HttpOptions",
    "RetryOptions", "Retryable", "call_with_retries", "describe_response",
    "describe_response_head", "json_object", "mask_quoted", "retry_after",
]


def _http_base_url(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not start or end with spaces")
    try:
        parts = urlsplit(value)
        host, _ = parts.hostname, parts.port  # .port raises ValueError when not a number
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain credentials (user:password@): put them in the "
                         "plugin's secret settings")
    if not host:
        raise ValueError("must name a host after http:// or https://")
    return value.rstrip("/")


HttpBaseUrl = Annotated[str, AfterValidator(_http_base_url)]
"""An ``http://`` or ``https://`` URL with a host and no credentials, without its trailing
``/``: the base URL of a service (scheme, host, optional port and path prefix). A plain ``str``
once validated; a bad value is a config error naming the key."""

# Storage URLs (fsspec: local paths, file://, s3://, gs://, memory://...): logarchive.storage.
from logarchive.storage import LOCAL_PROTOCOLS, display_url, read_chunks, resolve  # noqa: E402

__all__ += ["LOCAL_PROTOCOLS", "display_url", "read_chunks", "resolve"]

# Paginated list endpoints (logarchive.listing), for HTTP sources that find runs by listing.
from logarchive.listing import (  # noqa: E402
    ITEM_ERRORS, ListEndpoint, ListedRun, Pages, fill_template, item_runs, json_pointer,
    list_items, list_runs, normalise_status, parse_link_header,
)

__all__ += [
    "ITEM_ERRORS", "ListEndpoint", "ListedRun", "Pages", "fill_template", "item_runs",
    "json_pointer", "list_items", "list_runs", "normalise_status", "parse_link_header",
]

# Record sinks (batching, retries, acknowledgement, resume bookkeeping): logarchive.batching.
from logarchive.batching import (  # noqa: E402
    BatchingSink, BatchingSinkConfig, BatchProtocol, EventIds, RequestBatch, SplitBatch,
    epoch_seconds, event_id, refuse_redirect, render_run_template, retriable_error,
)

__all__ += [
    "BatchProtocol", "BatchingSink", "BatchingSinkConfig", "EventIds", "RequestBatch",
    "SplitBatch", "epoch_seconds", "event_id", "refuse_redirect", "render_run_template",
    "retriable_error",
]

# Reading a logarchive archive (the ``archive`` source): objects paired with their manifests
# (logarchive.archive), the records of a stored object (logarchive.search), and record
# streams: a source whose logs are records already hands them to the delivery as they are
# (logarchive.sourcestream.RecordStream).
from logarchive.archive import (  # noqa: E402
    TEMP_DIR, TEMP_SUFFIX, Archived, ArchiveListing, list_stored, read_archive,
)
from logarchive.codec import decompress_stream  # noqa: E402
from logarchive.parquet import read_records as parquet_records  # noqa: E402
from logarchive.search import archived_records  # noqa: E402
from logarchive.sourcestream import RecordChunk, RecordStream  # noqa: E402

__all__ += [
    "ArchiveListing", "Archived", "RecordChunk", "RecordStream", "archived_records",
    "TEMP_DIR", "TEMP_SUFFIX", "decompress_stream", "list_stored", "parquet_records", "read_archive",
]


# Column kernels for BatchProtocol.encode_columns (logarchive.columnar): they need pyarrow,
# imported on first use, so a plugin that names them at call time costs nothing without it.
_COLUMN_KERNELS = ("epoch_millis", "epoch_text", "is_blank", "json_quoted", "row_records")
__all__ += list(_COLUMN_KERNELS)


def __getattr__(name: str) -> Any:
    if name in _COLUMN_KERNELS:
        from logarchive import columnar

        return getattr(columnar, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
