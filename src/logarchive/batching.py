"""Shared machinery of record sinks (Splunk, Datadog...): batches, gzip, retries, bookkeeping.

A record sink plugin subclasses :class:`BatchingSink` and returns, per run, a
:class:`BatchProtocol`: how one record becomes one or more encoded events, how events are framed
into a request body, where the body goes, and how a response is classified (accepted, retriable,
split, permanent). Everything else lives here, once:

- batching by bytes (uncompressed body) and by events; an event never spans two requests, and
  the events of one record stay in one request whenever they fit;
- gzip;
- sending through :class:`logarchive.http.HttpClient` (the core retry loop: backoff with jitter,
  ``Retry-After``, connection errors);
- at most ``max_in_flight`` batches sent but not yet accepted: :meth:`BatchingDelivery.send`
  blocks until a slot is free, so the source is read no faster than the receiver accepts, and
  memory stays bounded whatever the receiver answers;
- a 413-style "too large" answer splits the batch and sends the halves; progress is recorded
  after each accepted half, so a split batch is never re-sent whole;
- receivers that acknowledge later (Splunk indexer acknowledgement): a token from the response
  is polled until acknowledged, and the batch is re-sent (and counted) after ``ack_timeout``,
  with the same backoff and budget (``http.retry``) as any retry;
- ``on_accepted(ordinal)`` right after the contiguous prefix of accepted records grows, so the
  ledger always names the last record that is safely delivered; when it raises (the run's claim
  was taken over), the delivery ends with that error and sends nothing more;
- the stop event (SIGTERM/SIGINT): no new batch is sent; requests already on the wire and their
  acknowledgements get ``stop_grace`` seconds to settle, so that a stopped export resumes
  exactly after what the receiver holds;
- deterministic event ids (:func:`event_id`) from (source, run key, seq, part) for downstream
  deduplication of the batches (at most ``max_in_flight`` per run) in flight at a SIGKILL;
- a batch that used up its retries on network errors (no answer at all) gives the sink up for
  the rest of the export (:meth:`BatchingSink.give_up_error`): the other runs' retries stop.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import Field

from logarchive.base import Context, RecordDelivery, RecordSink, RecordSinkConfig
from logarchive.codec import timestamp_to_epoch
from logarchive.errors import Interrupted, LogarchiveError, SinkError
from logarchive.http import HttpClient, HttpOptions, describe_response, retry_after
from logarchive.retry import Retryable, call_with_retries, poll_until
from logarchive.secrets import redact, redact_url
from logarchive.slots import connection_slot
from logarchive.templates import UnknownFields, render_template

__all__ = [
    "BatchProtocol", "BatchingDelivery", "BatchingSink", "BatchingSinkConfig", "DeliveryStats",
    "Event", "RequestBatch", "SplitBatch", "event_id", "refuse_redirect", "render_run_template",
    "retriable_error",
]


class BatchingSinkConfig(RecordSinkConfig):
    """Keys every batching record sink has, on top of :class:`RecordSinkConfig`."""

    compression: Literal["none", "gzip"] = Field(
        default="gzip", description="Request body compression.", examples=["gzip"]
    )
    compression_level: int = Field(
        default=3, ge=1, le=9,
        description="gzip level. 3: on JSON log batches about 9.6x smaller at ~280 MB/s, against "
        "10.9x at ~150 MB/s for 6; a shipper is CPU-bound long before it is network-bound.",
        examples=[3],
    )
    max_in_flight: int = Field(
        default=1, ge=1, le=16,
        description="Batches sent but not yet accepted at once, per run. 1 keeps the "
        "exactly-once promise across SIGKILL to one batch per run being delivered; more is "
        "faster and may duplicate up to this many per run.",
        examples=[1],
    )
    max_connections: int | None = Field(
        default=None, ge=1, le=10000,
        description="Requests to this sink on the wire at once across the whole export: every "
        "run, thread and (under the Dask executor) every worker of the cluster. None: no cap "
        "beyond max_in_flight per run.", examples=[8],
    )
    stop_grace: float = Field(
        default=15.0, ge=0,
        description="On SIGTERM/SIGINT, seconds given to batches already sent (and their "
        "acknowledgements) to settle before the export exits.", examples=[15],
    )


def event_id(source: str, run_key: str, seq: int, part: int | None = None,
             piece: int | None = None) -> str:
    """Deterministic id of one event: the same line of the same run always gets the same id."""
    return EventIds(source, run_key)(seq, part, piece)


class EventIds:
    """:func:`event_id` for one run, hashing the run's part of the id once (a hot path)."""

    def __init__(self, source: str, run_key: str) -> None:
        self._base = hashlib.sha256(f"{source}\x1f{run_key}\x1f".encode())
        self._copy = self._base.copy

    def __call__(self, seq: int, part: int | None = None, piece: int | None = None) -> str:
        digest = self._copy()
        digest.update(b"%d\x1f%d\x1f%d" % (seq, part or 0, piece) if piece
                      else b"%d\x1f%d" % (seq, part or 0))
        return digest.hexdigest()[:32]

    def many(self, seqs: list[int]) -> list[str]:
        """The ids of whole lines (no part, no piece) ``seqs``, in one pass."""
        copy = self._copy
        out = []
        for seq in seqs:
            digest = copy()
            digest.update(b"%d\x1f0" % seq)
            out.append(digest.hexdigest()[:32])
        return out


_minute_epochs: dict[str, float] = {}


def epoch_seconds(timestamp: str | None) -> float | None:
    """:func:`~logarchive.codec.timestamp_to_epoch`, with the canonical form the codec writes
    (``2026-03-13T10:00:00.123Z``) computed from a per-minute cache (a hot path)."""
    if timestamp is None:
        return None
    if len(timestamp) == 24 and timestamp[23] == "Z" and timestamp[19] == ".":
        base = _minute_epochs.get(timestamp[:16])
        if base is None:
            if len(_minute_epochs) > 4096:
                _minute_epochs.clear()
            base = timestamp_to_epoch(timestamp[:16] + ":00.000Z")
            _minute_epochs[timestamp[:16]] = base  # type: ignore[assignment]
        return base + int(timestamp[17:19]) + int(timestamp[20:23]) / 1000
    return timestamp_to_epoch(timestamp)


def render_run_template(template: str, run: Any) -> str:
    """Render ``{source}``, ``{run_key}``, ``{run_id}`` and run fields; unknown names raise."""
    values = {"source": run.source, "run_key": run.key, "run_id": run.run_id, **run.fields}
    try:
        return render_template(template, values)
    except UnknownFields as exc:
        raise SinkError(
            f"template {template!r} names {exc.names[0]!r}, but run {run.key} has "
            f"{', '.join(sorted(values))}", fatal_for_sink=False,
        ) from None
    except (ValueError, IndexError) as exc:
        raise SinkError(f"template {template!r} is not valid: {exc}") from None


def retriable_error(response: httpx.Response, message: str | None = None) -> Retryable:
    """A :class:`Retryable` for ``response`` honouring its ``Retry-After``."""
    return Retryable(SinkError(message or describe_response(response), retriable=True),
                     retry_after(response))


def refuse_redirect(response: httpx.Response, receiver: str) -> None:
    """A 3xx to a POST is never followed (httpx would resend it as a GET): a permanent error
    naming ``Location``, for every run of the sink (the url is wrong for all of them)."""
    if 300 <= response.status_code < 400:
        location = redact_url(response.headers.get("Location") or "(no Location header)")
        raise SinkError(f"{receiver} answered HTTP {response.status_code} redirecting to "
                        f"{location}; logarchive never follows a redirect on a POST: set the "
                        "sink's url to where it points", fatal_for_sink=True)


class SplitBatch(Exception):
    """Raised by :meth:`BatchProtocol.classify`: the receiver found the request too large."""


@dataclass(frozen=True, slots=True)
class Event:
    """One encoded event. ``last``: the final event of its record (ordinal)."""

    data: bytes
    ordinal: int
    seq: int
    part: int
    last: bool = True


@dataclass
class RequestBatch:
    """Events sent in one request (or split into several after a 413)."""

    index: int
    events: list[Event] | Packed
    progress: int = 0      # highest ordinal of this batch accepted so far
    done: bool = False
    resent: int = 0

    @property
    def first_ordinal(self) -> int:
        return self.events[0].ordinal

    @property
    def last_ordinal(self) -> int:
        return self.events[-1].ordinal

    def describe(self) -> str:
        if not self.events:
            return "no line"
        a, b = self.events[0], self.events[-1]
        return f"lines {a.seq}..{b.seq}" if a.seq != b.seq else f"line {a.seq}"

    def name_event(self, position: int) -> str:
        """``line 42 (part 2)`` for the event at ``position`` in this batch."""
        if not 0 <= position < len(self.events):
            return f"event #{position} of {self.describe()}"
        event = self.events[position]
        return f"line {event.seq}" + (f" (part {event.part})" if event.part else "")


class Packed:
    """The events of consecutive records that are one event each (a whole line: part 0, last
    of its record), kept as one buffer instead of an :class:`Event` per record (a hot path):
    ``data`` holds every event followed by the separator, ``ends[k]`` is where event k and its
    separator end. Behaves as the list of its events (``len``, index, slice, iteration)."""

    __slots__ = ("data", "ends", "first", "seqs", "sep")

    def __init__(self, data: bytes, ends: list[int], first: int, seqs: list[int],
                 sep: int) -> None:
        self.data, self.ends, self.first, self.seqs, self.sep = data, ends, first, seqs, sep

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            start, stop, _ = key.indices(len(self.ends))
            stop = max(start, stop)
            base = self.ends[start - 1] if start else 0
            end = self.ends[stop - 1] if stop else 0
            return Packed(self.data[base:max(base, end)],
                          [e - base for e in self.ends[start:stop]], self.first + start,
                          self.seqs[start:stop], self.sep)
        if key < 0:
            key += len(self.ends)
        if not 0 <= key < len(self.ends):
            raise IndexError(key)
        begin = self.ends[key - 1] if key else 0
        return Event(self.data[begin:self.ends[key] - self.sep], self.first + key,
                     self.seqs[key], 0)

    def __iter__(self) -> Any:
        return (self[k] for k in range(len(self.ends)))

    def joined(self) -> bytes | memoryview:
        """The events joined by the separator (the body between prefix and suffix)."""
        return memoryview(self.data)[:len(self.data) - self.sep] if self.sep else self.data

    @staticmethod
    def merge(parts: list[Packed]) -> Packed:
        if len(parts) == 1:
            return parts[0]
        data, ends, seqs, base = [], [], [], 0
        for part in parts:
            data.append(part.data)
            ends += [e + base for e in part.ends]
            seqs += part.seqs
            base += len(part.data)
        return Packed(b"".join(data), ends, parts[0].first, seqs, parts[0].sep)


def join_events(proto: BatchProtocol, events: list[Event] | Packed) -> bytes:
    """The request body of ``events``: ``body_prefix``, the events joined by ``separator``,
    ``body_suffix``; one copy of a :class:`Packed` buffer."""
    if isinstance(events, Packed):
        return b"".join((proto.body_prefix, events.joined(), proto.body_suffix))
    return proto.body_prefix + proto.separator.join(e.data for e in events) + proto.body_suffix


def completed_ordinal(events: list[Event] | Packed) -> int:
    """The ordinal of the last record complete in ``events`` (records before it are too)."""
    last = events[-1]
    return last.ordinal if last.last else last.ordinal - 1


class BatchProtocol:
    """What one record sink knows about its receiver, for one run. Subclass per plugin.

    ``body_prefix + separator.join(events) + body_suffix`` is the request body (Datadog: ``[``,
    ``,``, ``]``; Splunk HEC: concatenated objects).
    """

    body_prefix: bytes = b""
    separator: bytes = b""
    body_suffix: bytes = b""
    method: str = "POST"
    path: str = "/"
    ack_timeout: float = 60.0
    """Seconds to wait for the acknowledgement of a batch (see :meth:`ack_token`) before it is
    sent again. A protocol with acknowledgements takes it from its sink's config."""
    ack_poll_interval: float = 1.0
    """Seconds between two :meth:`poll_acks` while a batch waits for its acknowledgement."""

    def skips(self, record: dict[str, Any]) -> bool:
        """True for a record this receiver is never sent (counted in
        :attr:`DeliveryStats.skipped`, the ledger and the summary; its ordinal still counts, so
        ``seq`` stays exact). Document what is skipped in the plugin's README."""
        return False

    def encode(self, record: dict[str, Any]) -> list[bytes]:
        """Encoded event(s) of one record, in order (at least one; records :meth:`skips`
        are never passed)."""
        raise NotImplementedError

    def encode_column_events(self, columns: Any) -> tuple[Any, dict[int, list[bytes]]] | None:
        """The encoded events of every record of ``columns`` (a ``pyarrow.RecordBatch`` of the
        codec's columns: seq, timestamp, level, message, part, partial, continuation; see
        :data:`logarchive.columnar.SCHEMA`), built by column kernels instead of a call per
        record: a pyarrow binary or string array holding, per record, its one event (a whole
        line), and the records whose events differ (the list :meth:`encode` returns, ``[]``
        for a record :meth:`skips`, counted) by position. The same bytes as :meth:`encode`;
        the delivery cuts batches from the array's offsets and copies each request body out of
        its buffer, with no Python object per record. None (the default): the delivery calls
        :meth:`skips` and :meth:`encode` with a dict per record."""
        return None

    def encode_columns(self, columns: Any) -> list[bytes | list[bytes]] | None:
        """:meth:`encode_column_events` as a list: per record its one event (``bytes``) or
        the list :meth:`encode` returns (what the fuzz compares with :meth:`encode`)."""
        built = self.encode_column_events(columns)
        if built is None:
            return None
        import pyarrow as pa

        events, special = built
        out: list[Any] = events.cast(pa.binary()).to_pylist()
        for index, encoded in special.items():
            out[index] = encoded
        return out

    def headers(self) -> dict[str, str]:
        """Extra headers of every data request (Content-Type, channel...)."""
        return {}

    def params(self) -> dict[str, str] | None:
        return None

    def classify(self, response: httpx.Response, batch: RequestBatch) -> None:
        """Raise :func:`retriable_error` (retry), :class:`SplitBatch` (413) or
        :class:`SinkError` (permanent; ``fatal_for_sink`` when no other run can succeed
        either). Return normally for an accepted response."""

    def ack_token(self, response: httpx.Response) -> Any:
        """A token to poll before the batch counts as accepted, or None (accepted now)."""
        return None

    def poll_acks(self, client: HttpClient, tokens: list[Any]) -> set[Any]:
        """The subset of ``tokens`` the receiver has acknowledged."""
        raise NotImplementedError


@dataclass
class DeliveryStats:
    batches: int = 0
    requests: int = 0
    events: int = 0
    body_bytes: int = 0
    sent_bytes: int = 0
    splits: int = 0
    resent: int = 0
    ack_polls: int = 0
    skipped: int = 0       # records the protocol skips, over the whole run (documented per sink)

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _AnyEvent:
    """Quacks like ``threading.Event`` for waiting: set when any of ``events`` is."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                return self.is_set()
            self.events[0].wait(left)
        return True


class BatchingSink(RecordSink):
    """Base of record sinks built on :class:`BatchingDelivery`. Implement :meth:`protocol`
    and :meth:`base_url`; a permanent error marked ``fatal_for_sink`` (invalid token) makes
    every later ``start`` fail at once, without a request."""

    Config = BatchingSinkConfig

    def __init__(self, name: str, config: Any, context: Context) -> None:
        super().__init__(name, config, context)
        self.fatal: SinkError | None = None
        self.given_up = threading.Event()  # set with ``fatal``: other runs' retries stop too
        self.last_stats: DeliveryStats | None = None

    def base_url(self) -> str:
        raise NotImplementedError

    def client_headers(self) -> dict[str, str]:
        """Headers of every request (authentication)."""
        return {}

    def protocol(self, run: Any) -> BatchProtocol:
        raise NotImplementedError

    def http_options(self) -> HttpOptions:
        return self.config.http

    def make_client(self, stop: Any) -> HttpClient:
        return HttpClient(self.base_url(), options=self.http_options(),
                          headers=self.client_headers(), stop=stop, log=self.log,
                          error=SinkError)

    def start(self, run: Any, *, resume_after: int,
              on_accepted: Callable[[int], None]) -> BatchingDelivery:
        if self.fatal is not None:
            raise SinkError(f"{self.fatal} (sink disabled for this export)", fatal_for_sink=True)
        protocol = self.protocol(run)
        return BatchingDelivery(self, protocol, run, resume_after, on_accepted)

    def _latch(self, error: BaseException) -> None:
        if isinstance(error, SinkError) and error.fatal_for_sink and self.fatal is None:
            self.fatal = error
            self.given_up.set()

    def give_up_error(self, error: BaseException, stopping: bool) -> BaseException:
        """The error a failed batch ends its run with. A batch that exhausted its retries on
        network errors (no answer at all) gives the sink up for this export: retrying it per
        run only multiplies the wait. A batch cut short because the sink was given up by
        another run ends with that run's error."""
        if self.fatal is not None and isinstance(error, Interrupted) and not stopping:
            return self.fatal
        if not isinstance(error, LogarchiveError):
            return SinkError(f"{self.name}: {type(error).__name__}: {redact(str(error))}")
        if isinstance(error, SinkError) and error.endpoint and not error.fatal_for_sink:
            given_up = SinkError(f"unreachable: {error}", fatal_for_sink=True)
            given_up.endpoint = error.endpoint
            return given_up
        return error


class BatchingDelivery(RecordDelivery):
    """One run's delivery: see the module docstring for what it guarantees."""

    def __init__(self, sink: BatchingSink, protocol: BatchProtocol, run: Any,
                 resume_after: int, on_accepted: Callable[[int], None]) -> None:
        self.sink = sink
        self.cfg = sink.config
        self.protocol = protocol
        self.run = run
        self.log = sink.log.bind(run=run.key)
        self.on_accepted = on_accepted
        self.stop = sink.context.stop
        self.abandon = threading.Event()   # give up everything now (abort, error, grace over)
        self.stats = DeliveryStats()
        # Data requests stop retrying on SIGTERM (or when another run gave the sink up);
        # acknowledgement polls only when abandoned.
        self.client = sink.make_client(_AnyEvent(self.stop, self.abandon, sink.given_up))
        self.ack_client = sink.make_client(self.abandon)
        self.reported = resume_after
        self._events: list[Event] = []   # the batch in progress: Event objects, or
        self._segments: list[Packed] = []  # packed records (one of the two is empty)
        self._count = 0                    # events in the batch in progress
        self._size = 0
        self._index = 0
        self._cond = threading.Condition()
        self._report_lock = threading.Lock()  # on_accepted calls, one at a time, in order
        self._pending: deque[RequestBatch] = deque()  # dispatched, not yet settled, in order
        self._queue: deque[RequestBatch] = deque()    # dispatched, not yet picked by a worker
        self._in_flight = 0
        self._error: BaseException | None = None
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._stop_seen: float | None = None
        self.prefix_len = len(protocol.body_prefix) + len(protocol.body_suffix)

    # -- engine side -------------------------------------------------------------------------

    def send(self, records: list[dict[str, Any]], first_ordinal: int) -> None:
        """Queue records given as dicts: runs of records that are one event each are packed
        (:meth:`_add_packed`), the others queued event by event (:meth:`_add`)."""
        self._raise_error()
        encode, skips, sep = self.protocol.encode, self.protocol.skips, self.protocol.separator
        run: list[bytes] = []
        seqs: list[int] = []
        start = first_ordinal
        for offset, record in enumerate(records):
            encoded = [] if skips(record) else encode(record)
            if len(encoded) == 1 and not record.get("part"):
                run.append(encoded[0])
                seqs.append(record.get("seq", first_ordinal + offset))
                continue
            if run:
                self._add_packed(_packed(run, sep), start, seqs)
                run, seqs = [], []
            if self.stop.is_set():
                return  # the engine aborts at its next check; nothing more goes out
            self._add(encoded, first_ordinal + offset, record.get("seq", first_ordinal + offset),
                      record.get("part") or 0)
            start = first_ordinal + offset + 1
        if run:
            self._add_packed(_packed(run, sep), start, seqs)

    def send_batch(self, batch: Any, first_ordinal: int, skip: int = 0) -> None:
        """Send the records of a codec batch from ``skip`` on: their events come from
        :meth:`BatchProtocol.encode_column_events` when the protocol builds them from the
        batch's columns, else from :meth:`send` (a dict per record)."""
        columns = batch.arrow().slice(skip) if batch.columnar else None
        built = None if columns is None else self.protocol.encode_column_events(columns)
        if built is None:
            super().send_batch(batch, first_ordinal, skip)
            return
        self._raise_error()
        events, special = built
        seqs = columns.column("seq").to_pylist()
        start = 0
        for index in sorted(special) + [len(seqs)]:
            if index > start:
                self._add_packed(_arrow_packed(events.slice(start, index - start),
                                               self.protocol.separator),
                                 first_ordinal + start, seqs[start:index])
            if index < len(seqs):
                if self.stop.is_set():
                    return
                part = columns.column("part")[index].as_py() or 0
                self._add(special[index], first_ordinal + index, seqs[index], part)
            start = index + 1

    def _fits(self, size: int) -> bool:
        """Whether an event of ``size`` bytes joins the batch in progress."""
        grow = size + len(self.protocol.separator)
        return not self._count or (self._size + grow <= self.cfg.batch_max_bytes
                                   and self._count < self.cfg.batch_max_events)

    def _add_packed(self, packed: tuple[bytes, Any], first_ordinal: int,
                    seqs: list[int]) -> None:
        """Queue records of one event each (``packed``: their events, each followed by the
        separator, and the cumulative ends), cutting batches by byte and event limits from the
        ends: the same batches as :meth:`_add` one by one, without an object per record."""
        import bisect

        if self.stop.is_set():
            return  # the engine aborts at its next check; nothing more goes out
        data, ends = packed
        sep, n, pos = len(self.protocol.separator), len(ends), 0
        while self._events and pos < n:  # a batch of Event objects in progress: finish it
            begin = ends[pos - 1] if pos else 0
            if not self._fits(ends[pos] - begin - sep):
                self._dispatch()
                break
            self._append(Event(data[begin:ends[pos] - sep], first_ordinal + pos, seqs[pos], 0),
                         ends[pos] - begin - sep)
            pos += 1
        max_bytes, max_events = self.cfg.batch_max_bytes, self.cfg.batch_max_events
        while pos < n:
            if self.stop.is_set():
                return
            base = ends[pos - 1] if pos else 0
            size = self._size if self._count else self.prefix_len - sep
            stop = min(bisect.bisect_right(ends, max_bytes - size + base, pos, n),
                       pos + max_events - self._count)
            if stop <= pos:
                if self._count:
                    self._dispatch()
                    continue
                stop = pos + 1  # an event larger than a batch goes alone
            self._segments.append(Packed(data[base:ends[stop - 1]],
                                         [e - base for e in ends[pos:stop]],
                                         first_ordinal + pos, seqs[pos:stop], sep))
            self._count += stop - pos
            self._size = size + ends[stop - 1] - base
            pos = stop
            if pos < n:
                self._dispatch()

    def _append(self, event: Event, size: int) -> None:
        if not self._count:
            self._size = self.prefix_len - len(self.protocol.separator)
        self._events.append(event)
        self._count += 1
        self._size += size + len(self.protocol.separator)

    def _add(self, encoded: list[bytes], ordinal: int, seq: int, part: int) -> None:
        """Queue one record's events, dispatching the current batch when they do not fit
        (``[]``: a record the protocol skips, counted)."""
        if self._segments:  # packed records in progress (their ordinals have no gap, so
            # also before a skipped record): the batch goes on as Event objects
            self._events = list(Packed.merge(self._segments))
            self._segments = []
        if not encoded:
            self.stats.skipped += 1
            return
        max_bytes, max_events = self.cfg.batch_max_bytes, self.cfg.batch_max_events
        sep = len(self.protocol.separator)
        added = sum(len(e) for e in encoded) + sep * len(encoded)
        if self._count and (self._size + added > max_bytes
                            or self._count + len(encoded) > max_events):
            self._dispatch()
        for i, data in enumerate(encoded):
            if not self._fits(len(data)):
                self._dispatch()  # a record larger than a batch: split between events
            self._append(Event(data, ordinal, seq, part, i == len(encoded) - 1), len(data))

    @property
    def skipped(self) -> int:  # type: ignore[override]
        return self.stats.skipped

    def passed(self, records: list[dict[str, Any]]) -> None:
        self.stats.skipped += sum(1 for record in records if self.protocol.skips(record))

    def finish(self) -> None:
        self._raise_error()
        if self._count and not self.stop.is_set():
            self._dispatch()
        self._wait_settled()
        self._raise_error()
        if self.stop.is_set():
            raise Interrupted("export stopped before every batch was accepted")
        self._close()
        self.sink.last_stats = self.stats
        self.log.info("records_delivered", sink=self.sink.name, **self.stats.to_dict())

    def abort(self) -> None:
        self._events, self._segments, self._count = [], [], 0
        if not self.stop.is_set():
            self.abandon.set()
        self._wait_settled()
        self._close()
        self.sink.last_stats = self.stats

    # -- internals ---------------------------------------------------------------------------

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.abandon.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=self.cfg.http.read_timeout + 1)
        self.client.close()
        self.ack_client.close()

    def _dispatch(self) -> None:
        """Hand the current batch to a worker; block while ``max_in_flight`` are not yet
        recorded. A batch answered out of order (2 before 1) is not recorded until 1 is: counting
        it as out keeps what a SIGKILL can make the next export resend at ``max_in_flight``."""
        events = Packed.merge(self._segments) if self._segments else self._events
        self._events, self._segments, self._size, self._count = [], [], 0, 0
        with self._cond:
            while len(self._pending) >= self.cfg.max_in_flight:
                if self._error is not None:
                    raise self._error
                if self.stop.is_set() or self.abandon.is_set():
                    return  # dropped: not accepted, sent again by the next export
                self._cond.wait(0.05)
            if self._error is not None:
                raise self._error
            if self.abandon.is_set():
                return
            self._index += 1
            batch = RequestBatch(self._index, events)
            self._pending.append(batch)
            self._in_flight += 1
            self.stats.batches += 1
            self._queue.append(batch)
            self._cond.notify_all()
        self._ensure_workers()

    def _ensure_workers(self) -> None:
        if self._threads:
            return
        for n in range(self.cfg.max_in_flight):
            thread = threading.Thread(target=self._worker, daemon=True,
                                      name=f"sink-{self.sink.name}-{n}")
            thread.start()
            self._threads.append(thread)

    def _worker(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if self._closed or self.abandon.is_set():
                        return
                    self._cond.wait(0.05)
                batch = self._queue.popleft()
            try:
                self._deliver(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the engine's thread
                self._fail(batch, exc)
                continue
            with self._cond:
                batch.done = True
            try:
                self._report()
            except BaseException as exc:  # noqa: BLE001 - on_accepted refused (lease lost)
                with self._cond:
                    self._error = self._error or exc
                self.abandon.set()
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _fail(self, batch: RequestBatch, exc: BaseException) -> None:
        exc = self.sink.give_up_error(exc, self.stop.is_set())
        self.sink._latch(exc)
        with self._cond:
            if self._error is None:
                self._error = exc
            self._in_flight -= 1
            self._cond.notify_all()
        self.abandon.set()

    def _report(self) -> None:
        """Call on_accepted for the grown contiguous prefix of accepted records. One report at
        a time, in order, outside the condition: while the ledger writes, the engine goes on
        encoding and dispatching into free slots. A settled batch leaves ``_pending`` (frees
        its slot) only once recorded, so what a SIGKILL can make the next export resend stays
        at ``max_in_flight`` batches."""
        with self._report_lock:
            with self._cond:
                best, settled = self.reported, 0
                for head in self._pending:
                    if head.progress > best:
                        best = head.progress
                    if not head.done:
                        break
                    settled += 1
            if best > self.reported:
                self.reported = best
                self.on_accepted(best)
            with self._cond:
                for _ in range(settled):
                    self._pending.popleft()
                self._cond.notify_all()

    def _wait_settled(self) -> None:
        """Wait until no batch is in flight. When stopping, in-flight batches get
        ``stop_grace`` seconds; when abandoned, workers give up within one request timeout."""
        deadline: float | None = None
        with self._cond:
            while self._in_flight > 0:
                now = time.monotonic()
                if self.stop.is_set() and not self.abandon.is_set():
                    if self._stop_seen is None:
                        self._stop_seen = now
                    elif now - self._stop_seen > self.cfg.stop_grace:
                        self.log.warning("stop_grace_expired", in_flight=self._in_flight)
                        self.abandon.set()
                if self.abandon.is_set():
                    deadline = deadline or now + self.cfg.http.read_timeout + 1
                    if now > deadline:
                        break
                self._cond.wait(0.05)

    # -- one batch ---------------------------------------------------------------------------

    def _deliver(self, batch: RequestBatch) -> None:
        self._deliver_events(batch, batch.events)

    def _deliver_events(self, batch: RequestBatch, events: list[Event] | Packed) -> None:
        try:
            self._send_until_acknowledged(batch, events)
        except SplitBatch:
            if len(events) == 1:
                event = events[0]
                raise SinkError(
                    f"line {event.seq} of {self.run.key} is larger than {self.sink.name} "
                    f"accepts in one request ({len(event.data)} bytes encoded); lower "
                    "max_line_bytes") from None
            self.stats.splits += 1
            half = len(events) // 2
            self.log.info("batch_split", batch=batch.describe(), events=len(events))
            self._deliver_events(batch, events[:half])
            self._deliver_events(batch, events[half:])
            return
        with self._cond:
            batch.progress = max(batch.progress, completed_ordinal(events))
        self._report()

    def _send_until_acknowledged(self, batch: RequestBatch, events: list[Event] | Packed
                                 ) -> None:
        """Send ``events``; when the receiver acknowledges later and does not within
        ``ack_timeout``, send them again (at most ``http.retry.max_retries`` times)."""
        sends = 0

        def send() -> None:
            nonlocal sends
            sends += 1
            token = self._post(batch, events)
            if token is not None and not self._wait_ack(token):
                raise Retryable(SinkError(f"{self.sink.name}: {batch.describe()} of "
                                          f"{self.run.key} was never acknowledged after "
                                          f"{sends} sends"))

        def resend(_failures: int, _exc: BaseException, _delay: float) -> None:
            batch.resent += 1
            self.stats.resent += 1
            self.log.warning("batch_resent", batch=batch.describe(), reason="ack timeout",
                             resent=batch.resent)

        call_with_retries(send, options=self.cfg.http.retry, stop=self.client.stop,
                          on_retry=resend)

    def _post(self, batch: RequestBatch, events: list[Event] | Packed) -> Any:
        proto = self.protocol
        body = join_events(proto, events)
        headers = dict(proto.headers())
        content = body
        if self.cfg.compression == "gzip":
            content = gzip.compress(body, compresslevel=self.cfg.compression_level, mtime=0)
            headers["Content-Encoding"] = "gzip"
        self.stats.requests += 1

        def classify(response: httpx.Response) -> None:
            if response.status_code == 413:
                raise SplitBatch()
            refuse_redirect(response, self.sink.name)
            proto.classify(response, _View(batch, events))

        # Never follow a redirect: httpx would turn the POST into a GET (and carry custom
        # credential headers to another host); refuse_redirect above makes the 3xx an error.
        with connection_slot(self.sink.name, self.cfg.max_connections):
            response = self.client.request(proto.method, proto.path, content=content,
                                           headers=headers, params=proto.params(),
                                           classify=classify, follow_redirects=False)
        self.stats.events += len(events)
        self.stats.body_bytes += len(body)
        self.stats.sent_bytes += len(content)
        return proto.ack_token(response)

    def _wait_ack(self, token: Any) -> bool:
        """Poll until ``token`` is acknowledged (True) or ``ack_timeout`` passes (False).
        Stopping, keep polling what is on the wire within the grace, never resend."""
        timeout, interval = self.protocol.ack_timeout, self.protocol.ack_poll_interval
        started = time.monotonic()

        def acknowledged() -> bool:
            self.stats.ack_polls += 1
            return token in self.protocol.poll_acks(self.ack_client, [token])

        def give_up() -> bool:
            now = time.monotonic()
            if not self.stop.is_set():
                return now - started > timeout
            if self._stop_seen is None:
                self._stop_seen = now
            if now - self._stop_seen > self.cfg.stop_grace:
                raise Interrupted("stopped before the receiver acknowledged a batch")
            return False

        return poll_until(acknowledged, interval=interval, give_up=give_up, stop=self.abandon,
                          what="an acknowledgement")


def _packed(events: list[bytes], separator: bytes) -> tuple[bytes, list[int]]:
    """``events`` each followed by ``separator``, as one buffer, and where each one ends."""
    from itertools import accumulate

    sep = len(separator)
    return (separator.join(events) + separator,
            list(accumulate(len(e) + sep for e in events)))


def _arrow_packed(events: Any, separator: bytes) -> tuple[bytes, list[int]]:
    """:func:`_packed` of a pyarrow binary or string array, from its buffers."""
    import numpy as np
    import pyarrow.compute as pc

    if separator:
        events = pc.binary_join_element_wise(events, "", separator.decode())
    _, offsets, data = events.buffers()
    width = np.int64 if "large" in str(events.type) else np.int32
    ends = np.frombuffer(offsets, dtype=width)[events.offset:events.offset + len(events) + 1]
    first = int(ends[0])
    return data[first:int(ends[-1])].to_pybytes(), (ends[1:] - first).tolist()


class _View(RequestBatch):
    """The part of a batch one request carries (after a split), for error messages."""

    def __init__(self, batch: RequestBatch, events: list[Event] | Packed) -> None:
        super().__init__(batch.index, events, batch.progress, batch.done, batch.resent)

