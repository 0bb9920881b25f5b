"""Base classes for source and sink plugins, and the config models they extend."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator,
)
from pydantic_core import PydanticCustomError

from logarchive.codec import DEFAULT_MAX_LINE_BYTES
from logarchive.http import HttpOptions
from logarchive.parse import DEFAULT as DEFAULT_PARSE, ParseSettings
from logarchive.paths import validate_template
from logarchive.retry import RetryOptions


class PluginConfig(BaseModel):
    """Config of one ``[sources.NAME]`` or ``[sinks.NAME]`` table. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(description="Plugin type (see `logarchive plugins`).", examples=["fs"])


class SourceConfig(PluginConfig):
    """Common keys of every source."""

    include_statuses: list[Literal["completed", "failed", "killed", "unknown"]] = Field(
        default=["completed", "failed", "killed"],
        description="Run statuses that are exported; others are skipped and picked up later.",
        examples=[["completed", "failed"]],
    )
    max_log_bytes: int = Field(
        default=0, ge=0, description="Fail a run whose log grows past this many bytes (an "
        "endless body); 0: no limit.", examples=[107374182400],
    )
    run_timeout: float = Field(
        default=0, ge=0, description="Fail a run whose log takes longer than this many seconds "
        "to read; 0: no limit.", examples=[86400],
    )
    min_bytes_per_second: float = Field(
        default=1024, ge=0, description="Fail a run whose source sends fewer bytes per second "
        "than this over min_rate_window (a trickle); 0: off.", examples=[1024],
    )
    min_rate_window: float = Field(
        default=300, gt=0, description="Seconds over which min_bytes_per_second is measured "
        "(time spent waiting for the source only).", examples=[300],
    )


class SinkConfig(PluginConfig):
    """Common keys of every sink."""


class RetentionConfig(BaseModel):
    """``[sinks.NAME.retention]``: what the archive keeps. See docs/retention.md.

    An object is deleted when a rule selects it (``max_age_days``; ``keep_last`` per group) and
    nothing protects it (``min_age_days`` floor, ``legal_hold`` patterns, an S3 Object Lock).
    With both rules, an object is deleted only when it is older than ``max_age_days`` AND not
    among the newest ``keep_last`` of its group.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_age_days: float | None = Field(
        default=None, gt=0, description="Delete objects whose run completed more than this many "
        "days ago.", examples=[400],
    )
    keep_last: int | None = Field(
        default=None, ge=0, description="Keep the newest N objects of each group (by run "
        "completion time); alone, it deletes the rest of each group.", examples=[50],
    )
    group_by: str = Field(
        default="{source}", description="Group template for keep_last: {source}, {sink} and the "
        "run's fields; a field a run lacks renders as '-'.", examples=["{source}/{model_id}"],
    )
    min_age_days: float = Field(
        default=0, ge=0, description="Compliance floor: nothing younger is ever deleted, "
        "whatever the other rules say.", examples=[365],
    )
    legal_hold: list[str] = Field(
        default_factory=list, description="Glob patterns (fnmatch, '*' also matches '/') on "
        "object paths relative to the sink's root, or on run keys; a match is never deleted.",
        examples=[["training/mdl-7f3a/*"]],
    )

    @field_validator("group_by")
    @classmethod
    def _group_template(cls, value: str) -> str:
        return validate_template(value)


class ByteSinkConfig(SinkConfig):
    """Common keys of sinks that store objects (files, S3, GCS)."""

    format: Literal["txt", "json", "ndjson", "parquet"] = Field(
        default="txt",
        description="txt: the source bytes, byte for byte; json: one array of line objects; "
        "ndjson: one line object per line; parquet: the line objects as columns (needs the "
        "parquet extra; see docs/parquet.md).",
        examples=["ndjson"],
    )
    compression: Literal["none", "gzip", "zstd"] = Field(
        default="none", description="Compression of the stored object; for parquet, the column "
        "codec (default zstd).", examples=["gzip"]
    )
    compression_level: int | None = Field(
        default=None, ge=1, le=22, description="Compression level (gzip 1-9, zstd 1-22).",
        examples=[6],
    )
    path: str = Field(
        default="{source}/{run_path}.{ext}",
        description="Object path template: run fields ({model_id}, {run_id}...), {source}, "
        "{ext}, {run_path} (all fields), times {completed:%Y/%m/%d}, {started}, {exported}.",
        examples=["{source}/{model_id}/{run_id}.{ext}"],
    )
    max_line_bytes: int = Field(
        default=DEFAULT_MAX_LINE_BYTES, ge=64,
        description="Lines longer than this become several records (json/ndjson).",
        examples=[1048576],
    )
    immutable: bool = Field(
        default=False,
        description="Never overwrite an archived object: the same content is a no-op, different "
        "content is an error naming both sha256.", examples=[True],
    )
    retention: RetentionConfig | None = Field(
        default=None, description="Retention rules applied by `logarchive retention plan|apply` "
        "(see docs/retention.md).", examples=[{"max_age_days": 400, "keep_last": 50}],
    )
    allow_non_durable: bool = Field(
        default=False,
        description="Accept a root whose objects vanish with the process (memory://): for tests "
        "and trials only. Without it such a sink is refused; with it, its deliveries are "
        "recorded as `volatile`, never `delivered`, so every export delivers them again.",
        examples=[True],
    )

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        return validate_template(value)

    @model_validator(mode="before")
    @classmethod
    def _parquet_defaults_to_zstd(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("format") == "parquet" and "compression" not in data:
            return {**data, "compression": "zstd"}
        return data

    @model_validator(mode="after")
    def _parquet_options(self) -> ByteSinkConfig:
        if self.format != "parquet":
            return self
        from logarchive.parquet import missing_extra

        problem = missing_extra()
        if problem:
            raise ValueError(problem)
        level = self.compression_level
        if level is not None and self.compression == "none":
            raise ValueError("compression_level needs compression 'zstd' or 'gzip' (parquet's "
                             "column codec); remove it or choose a codec")
        if level is not None and self.compression == "gzip" and level > 9:
            raise ValueError(f"compression_level {level} is over gzip's 9")
        return self


class SinkRetryOptions(RetryOptions):
    """Retries of a record sink's requests: a batch is retried harder than a source's request."""

    max_retries: int = Field(default=8, ge=0, le=100,
                             description="Retries of one batch before the run fails.",
                             examples=[8])


class SinkHttpOptions(HttpOptions):
    """``[sinks.NAME.http]``: timeouts, TLS and retries of a record sink's requests."""

    read_timeout: float = Field(
        default=30.0, gt=0, description="Seconds without an answer before a request is retried.",
        examples=[30],
    )
    retry: SinkRetryOptions = Field(default_factory=lambda: SinkRetryOptions(),
                                    description="Retries with backoff and jitter.")


# The flat keys record sinks had before ``http``: deprecated aliases of the nested keys.
FLAT_HTTP_KEYS: dict[str, tuple[str, ...]] = {
    "timeout": ("http", "read_timeout"),
    "connect_timeout": ("http", "connect_timeout"),
    "verify": ("http", "verify"),
    "max_retries": ("http", "retry", "max_retries"),
    "backoff_initial": ("http", "retry", "backoff_initial"),
    "backoff_max": ("http", "retry", "backoff_max"),
    "retry_after_max": ("http", "retry", "retry_after_max"),
}


def move_deprecated_keys(data: Any, moves: dict[str, tuple[str, ...]],
                         info: ValidationInfo) -> Any:
    """For a ``mode="before"`` validator: move each deprecated key of ``data`` to its nested
    place (``timeout`` to ``http.read_timeout``) and note ``(old, new)`` in the validation
    context's ``deprecated`` list (the config loader turns it into a warning naming the whole
    key path), or warn with :class:`DeprecationWarning` without that context. Both set is an
    error naming both."""
    if not isinstance(data, dict) or not moves.keys() & data.keys():
        return data
    data = dict(data)
    for old, path in moves.items():
        if old not in data:
            continue
        node = data
        for part in path[:-1]:
            child = node.get(part, {})
            if not isinstance(child, dict):
                break  # not a table: pydantic reports it
            node[part] = node = dict(child)
        else:
            new = ".".join(path)
            if path[-1] in node:
                raise PydanticCustomError(
                    "deprecated_key_conflict",
                    "both {old} (deprecated) and {new} are set: keep only {new}",
                    {"old": old, "new": new},
                )
            node[path[-1]] = data.pop(old)
            _note_deprecated(old, new, info)
    return data


def _note_deprecated(old: str, new: str, info: ValidationInfo) -> None:
    notes = info.context.get("deprecated") if isinstance(info.context, dict) else None
    if notes is not None:
        notes.append((old, new))
    else:
        warnings.warn(f"{old} is deprecated: use {new}", DeprecationWarning, stacklevel=4)


class RecordSinkConfig(SinkConfig):
    """Common keys of sinks that send records in batches (Splunk, Datadog)."""

    batch_max_bytes: int = Field(
        default=1_000_000, ge=1024, description="Largest request body before compression.",
        examples=[1000000],
    )
    batch_max_events: int = Field(
        default=1000, ge=1, description="Most events in one request.", examples=[1000]
    )
    max_line_bytes: int = Field(
        default=DEFAULT_MAX_LINE_BYTES, ge=64,
        description="Lines longer than this become several records.", examples=[1048576],
    )
    http: SinkHttpOptions = Field(default_factory=lambda: SinkHttpOptions(),
                                  description="Timeouts, TLS and retries of every request.")

    @model_validator(mode="before")
    @classmethod
    def _flat_http_keys(cls, data: Any, info: ValidationInfo) -> Any:
        return move_deprecated_keys(data, FLAT_HTTP_KEYS, info)


@dataclass(frozen=True)
class RuntimeSettings:
    """The ``[logarchive]`` settings a plugin instance may use.

    ``chunk_size``: bytes to read from a source at a time. ``base_dir``: the config file's folder,
    against which relative paths in a plugin's config are resolved. ``state_dir``: logarchive's
    state folder (ledger, locks), for plugins that keep local state. ``parse``: how the codec
    finds timestamps and levels (``[logarchive.parse]``).
    """

    chunk_size: int = 1 << 20
    base_dir: Path | None = None
    state_dir: Path | None = None
    parse: ParseSettings = DEFAULT_PARSE


class StopEvent(threading.Event):
    """The export's stop request: set on SIGTERM/SIGINT, or by an embedder from another thread.

    Whoever sets it because of a signal records the signal in :attr:`signal_number` first: the
    export then exits with 128 + that number (130 for SIGINT, 143 for SIGTERM).
    """

    signal_number: int | None = None
    """The signal that asked the export to stop, or None (not set, or set without a signal)."""


@dataclass
class Context:
    """What the engine hands every plugin instance.

    ``stop`` is set when the export is asked to stop (SIGTERM/SIGINT): long waits (retry
    backoff, polling) should wake up and give up. ``log`` is a bound structlog logger.
    """

    name: str
    log: Any
    stop: threading.Event = field(default_factory=threading.Event)
    settings: RuntimeSettings = field(default_factory=RuntimeSettings)


class _Plugin:
    type: ClassVar[str]
    description: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]]

    def __init__(self, name: str, config: Any, context: Context) -> None:
        self.name = name
        self.config = config
        self.context = context
        self.log = context.log

    def close(self) -> None:
        """Release connections. Called once after the export, even after errors."""

    def check(self) -> str:
        """``logarchive check``: prove the service answers and takes the credentials (sources)
        or that the destination exists and accepts writes (sinks), without exporting anything,
        writing a log line to an aggregator or leaving anything behind. Return one short line
        saying what was checked; raise SourceError / SinkError / ConfigError saying what failed.
        The default raises NotImplementedError: the check reports the plugin as not checked."""
        raise NotImplementedError


def probe(request: Callable[[], Any], what: str) -> str:
    """For a source's ``check()``: make one request that needs the credentials and say it was
    answered; "not found" or "not finished" answers prove the service and the credentials too
    (authentication errors, raised as SourceError, fail the check)."""
    from logarchive.errors import RunGone, RunNotReady

    try:
        request()
    except (RunGone, RunNotReady) as exc:
        return f"{what}: answered, credentials accepted ({exc})"
    return f"{what}: answered"


class Source(_Plugin):
    """A source discovers runs and opens their logs as streams of bytes.

    Classify failures by raising :class:`~logarchive.errors.SourceError` (``retriable``,
    ``fatal_for_source``), :class:`~logarchive.errors.RunNotReady` or
    :class:`~logarchive.errors.RunGone`; never write a retry loop (use ``logarchive.http``).
    """

    kind: ClassVar[str] = "source"
    Config: ClassVar[type[SourceConfig]] = SourceConfig

    def __init__(self, name: str, config: Any, context: Context) -> None:
        super().__init__(name, config, context)
        #: Items :meth:`discover` skipped, as ``("<item>: <why>", failed)`` (see
        #: ``plugin_api.item_runs``): the export reports each, a failed one as an error (exit 1),
        #: the others (bad data in an item) as warnings, so a skipped run is never silent.
        self.skipped: list[tuple[str, bool]] = []

    @classmethod
    def run_fields(cls, config: Any) -> frozenset[str] | None:
        """The fields every run of this source has, known from ``config`` alone: ``config
        check`` checks the sinks' path templates against them. None (the default): not known
        before the runs are listed, so no check."""
        return None

    def discover(self) -> Iterable[Any]:
        """Yield every :class:`~logarchive.runs.RunRef` the source can see, any status."""
        raise NotImplementedError

    def open(self, run: Any) -> AbstractContextManager[Iterator[bytes]]:
        """A context manager yielding an iterator of byte chunks: the run's whole log, once.

        The stream must end only when the log is complete; a short or broken stream raises
        SourceError (after resuming with Range where the server allows it).
        """
        raise NotImplementedError


class ObjectWriter:
    """One object being written. Invisible under its final name until :meth:`commit`."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        """Make the object visible under its final name, atomically."""
        raise NotImplementedError

    def publish(self) -> list[Any]:
        """Make the object visible under its final name, atomically, like :meth:`commit`, but
        leave the last steps that make it durable to the caller: the returned steps (hashable,
        each with a ``sync()`` method; equal steps do the same work) must all have run before
        the object counts as durable. A group commit runs each distinct step once for many
        objects (one fsync of a folder that many objects were renamed into). Default: commit,
        nothing left."""
        self.commit()
        return []

    def durability(self) -> list[Any]:
        """The steps (as :meth:`publish` returns them) that make an object already stored under
        this writer's final name durable: one kept as found (an earlier export may have been
        killed between its rename and its folder's fsync). Default: none."""
        return []

    def abort(self) -> None:
        """Throw the partial object away. Safe to call after a failed write or commit."""
        raise NotImplementedError


@dataclass(frozen=True)
class StoredObject:
    path: str
    size: int | None = None
    mtime: float | None = None


class ByteSink(_Plugin):
    """A sink that stores each run as one object, plus ``<object>.manifest.json`` beside it."""

    kind: ClassVar[str] = "bytes"
    Config: ClassVar[type[ByteSinkConfig]] = ByteSinkConfig

    @classmethod
    def durable(cls, config: ByteSinkConfig) -> bool:
        """Whether an object committed with ``config`` outlives the process that wrote it (an
        in-memory root does not). Asked when the config is loaded, without touching the network:
        a sink that is not durable is refused unless its config sets ``allow_non_durable``, and
        its deliveries are then recorded as ``volatile``, never ``delivered``. The default:
        durable."""
        return True

    def open_object(self, path: str) -> ObjectWriter:
        """Start writing ``path`` (relative to the sink's root, already sanitised)."""
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def read(self, path: str) -> AbstractContextManager[Iterator[bytes]]:
        """Stream a stored object's bytes."""
        raise NotImplementedError

    def list(self) -> Iterable[StoredObject]:
        """Every object under the sink's root (manifests included), relative paths."""
        raise NotImplementedError

    def delete(self, path: str) -> None:
        raise NotImplementedError

    def describe(self, path: str) -> str:
        """Where ``path`` is, for humans (a URL without credentials)."""
        return path

    def name_limits(self) -> tuple[int | None, int | None]:
        """The longest names the store takes, in bytes: (one path segment, the whole path
        relative to the root; None: no limit). Every object name and its manifest's name are
        checked against them before the object is written. The default: 255 per segment (local
        filesystems) and 1024 per path (S3 and GCS keys)."""
        return (255, 1024)

    def object_lock_status(self, path: str) -> dict[str, Any] | None:
        """What protects ``path`` from deletion in the store itself (an S3 Object Lock retention
        or legal hold), asked by ``logarchive retention`` before it deletes: a dict describing
        the lock (shown to the user, e.g. ``mode``, ``retain_until``, ``legal_hold``), or None
        when nothing does. The default: a store without locks."""
        return None


class RecordDelivery:
    """The delivery of one run's records to a record sink.

    The engine calls :meth:`send` with consecutive records (each with its 1-based ``ordinal``)
    and then :meth:`finish`. Call ``on_accepted(ordinal)`` after the receiver has accepted
    (acknowledged) every record up to ``ordinal``; the engine persists it right away, so a
    restarted export resumes after it. ``on_accepted`` raises when the run was taken over by
    another export: end the delivery with that error (send nothing more).

    A sink that leaves some records out by design (documented in its README, e.g. blank lines
    on Splunk's raw endpoint) counts them in :attr:`skipped`, over the whole run: the records an
    earlier export delivered are handed to :meth:`passed` for that, so a resumed run counts
    exactly what a run delivered in one go does. The engine records it in the ledger
    (``lines_skipped``) and the summary.
    """

    skipped: int = 0
    """Records of this run the sink leaves out by design (never sent; their ordinals count)."""

    def passed(self, records: list[dict[str, Any]]) -> None:
        """Records an earlier export delivered (ordinal <= ``resume_after``): not sent, only
        counted in :attr:`skipped` when the sink would have left them out."""

    def send(self, records: list[dict[str, Any]], first_ordinal: int) -> None:
        raise NotImplementedError

    def send_batch(self, batch: Any, first_ordinal: int, skip: int = 0) -> None:
        """Send the records of one codec batch (``logarchive.codec.LineBatch``) from index
        ``skip`` on, the first with ordinal ``first_ordinal``. What the engine calls; by
        default :meth:`send` with the records as dicts. A sink that builds its payloads from
        columns overrides it (``batch.arrow()`` when the columnar codec built the batch)."""
        records = batch.records()
        self.send(records[skip:] if skip else records, first_ordinal)

    def finish(self) -> None:
        """Flush what is buffered and wait for every acknowledgement."""
        raise NotImplementedError

    def abort(self) -> None:
        """Stop without flushing. What was accepted stays accepted."""


class RecordSink(_Plugin):
    """A sink that sends a run's records in batches to a log aggregator."""

    kind: ClassVar[str] = "records"
    Config: ClassVar[type[RecordSinkConfig]] = RecordSinkConfig

    def start(
        self, run: Any, *, resume_after: int, on_accepted: Callable[[int], None]
    ) -> RecordDelivery:
        """Begin delivering ``run``; records with ordinal <= ``resume_after`` were delivered
        by an earlier export and are not passed again."""
        raise NotImplementedError
