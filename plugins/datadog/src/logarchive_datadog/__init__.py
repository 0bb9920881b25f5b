"""Sink ``datadog``: records to the Datadog logs intake (``POST /api/v2/logs``).

A JSON array of entries per request, ``DD-API-KEY`` header, gzip. Datadog's limits are enforced
before sending: at most 1000 entries and 5 MB uncompressed per request, and an entry over 1 MB
is split into several entries marked as parts (Datadog would silently truncate it). Batching,
retries (408, 429, 5xx with ``Retry-After``), the 413 split and resume bookkeeping come from
core (``logarchive.batching``); this module builds entries and classifies answers.
"""

from __future__ import annotations

import socket
from typing import Any, Literal

import httpx
import orjson
from pydantic import Field

from logarchive.plugin_api import (
    BatchingSink, BatchingSinkConfig, BatchProtocol, EventIds, HttpBaseUrl, HttpClient,
    RequestBatch, Secret, SinkError, describe_response, epoch_seconds, hookimpl,
    render_run_template, retriable_error,
)

SITES = {
    "datadoghq.com": "https://http-intake.logs.datadoghq.com",
    "datadoghq.eu": "https://http-intake.logs.datadoghq.eu",
    "us3.datadoghq.com": "https://http-intake.logs.us3.datadoghq.com",
    "us5.datadoghq.com": "https://http-intake.logs.us5.datadoghq.com",
    "ap1.datadoghq.com": "https://http-intake.logs.ap1.datadoghq.com",
    "ddog-gov.com": "https://http-intake.logs.ddog-gov.com",
}
MAX_REQUEST_BYTES = 5_000_000
MAX_REQUEST_ENTRIES = 1000
MAX_ENTRY_BYTES = 1_000_000


class DatadogConfig(BatchingSinkConfig):
    type: Literal["datadog"] = "datadog"
    site: Literal["datadoghq.com", "datadoghq.eu", "us3.datadoghq.com", "us5.datadoghq.com",
                  "ap1.datadoghq.com", "ddog-gov.com"] = Field(
        default="datadoghq.com", description="Datadog site; picks the intake host.",
        examples=["datadoghq.eu"],
    )
    url: HttpBaseUrl | None = Field(default=None, description="Intake base URL; overrides site.",
                                    examples=["http://127.0.0.1:9000"])
    api_key: Secret = Field(description="API key, sent as DD-API-KEY.",
                            examples=["${DD_API_KEY}"])
    service: str | None = Field(
        default=None, description="service of every entry: a template of {source}, {run_key}, "
        "{run_id} and run fields.", examples=["training", "train-{model_id}"])
    ddsource: str = Field(default="logarchive", description="ddsource of every entry.",
                          examples=["logarchive"])
    ddtags: str | None = Field(default=None, description="Tags, comma-separated k:v: a "
                               "template like `service`.",
                               examples=["env:prod,team:ml", "env:prod,model:{model_id}"])
    hostname: str | None = Field(default=None,
                                 description="hostname of every entry (default: this machine).",
                                 examples=["exporter-1"])
    batch_max_bytes: int = Field(
        default=MAX_REQUEST_BYTES, ge=1024, le=MAX_REQUEST_BYTES,
        description="Largest request body before compression (Datadog: 5 MB).",
        examples=[5000000],
    )
    batch_max_events: int = Field(default=MAX_REQUEST_ENTRIES, ge=1, le=MAX_REQUEST_ENTRIES,
                                  description="Most entries in one request (Datadog: 1000).",
                                  examples=[1000])
    max_entry_bytes: int = Field(
        default=MAX_ENTRY_BYTES, ge=1024, le=MAX_ENTRY_BYTES,
        description="Largest encoded entry; a longer line becomes several entries "
        "marked part/partial/continuation (never truncated).", examples=[1000000],
    )


class IntakeProtocol(BatchProtocol):
    body_prefix = b"["
    separator = b","
    body_suffix = b"]"
    path = "/api/v2/logs"

    def __init__(self, sink: DatadogSink, run: Any) -> None:
        cfg = sink.config
        self.cfg = cfg
        self.run = run
        self.base = {"ddsource": cfg.ddsource, "hostname": cfg.hostname or socket.gethostname()}
        if cfg.service:
            self.base["service"] = render_run_template(cfg.service, run)
        if cfg.ddtags:
            self.base["ddtags"] = render_run_template(cfg.ddtags, run)
        self.fields = {k: v for k, v in run.record_fields().items() if k != "source"}
        self.fields["logarchive_source"] = run.source
        self.ids = EventIds(run.source, run.key)
        # The common entry (a whole line) written without building a dict: the same keys, in
        # the same order, as orjson.dumps(self._entry(...)).
        self._head = orjson.dumps(self.base)[:-1] + b',"message":'
        self._middle = b"," + orjson.dumps(self.fields)[1:-1] + b',"seq":'

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    def _entry(self, record: dict[str, Any], message: str, part: int | None, piece: int,
               pieces: int) -> dict[str, Any]:
        seq = record["seq"]
        entry: dict[str, Any] = {**self.base, "message": message, **self.fields, "seq": seq,
                                 "event_id": self.ids(seq, part, piece or None)}
        epoch = epoch_seconds(record.get("timestamp"))
        if epoch is not None:
            entry["timestamp"] = int(round(epoch * 1000))
        if record.get("level"):
            entry["status"] = record["level"]
        if part:
            entry["part"] = part
        if piece:
            entry["piece"] = piece
        if part or pieces > 1:
            entry["partial"] = bool(record.get("partial")) or piece < pieces
            entry["continuation"] = bool(record.get("continuation")) or piece > 1
        return entry

    def _whole_line(self, record: dict[str, Any]) -> bytes:
        seq = record["seq"]
        epoch = epoch_seconds(record["timestamp"])
        level = record["level"]
        return b"".join((
            self._head, orjson.dumps(record["message"]), self._middle,
            b'%d,"event_id":"%s"' % (seq, self.ids(seq).encode()),
            b',"timestamp":%d' % round(epoch * 1000) if epoch is not None else b"",
            b',"status":"%s"' % level.encode() if level else b"", b"}"))

    def encode_column_events(self, columns: Any) -> tuple[Any, dict[int, list[bytes]]]:
        """:meth:`encode` for a table of records: whole lines by column kernels (the bytes of
        :meth:`_whole_line`), pieces of split lines and oversized entries by :meth:`encode`."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from logarchive.plugin_api import epoch_millis, json_quoted, row_records

        seqs = columns.column("seq")
        ids = pa.array(self.ids.many(seqs.to_pylist()), pa.string())
        stamp = pc.binary_join_element_wise(',"timestamp":',
                                            pc.cast(epoch_millis(columns.column("timestamp")),
                                                    pa.string()), "")
        status = pc.binary_join_element_wise(',"status":"', columns.column("level"), '"', "")
        entries = pc.binary_join_element_wise(
            self._head.decode(), json_quoted(columns.column("message")), self._middle.decode(),
            pc.cast(seqs, pa.string()), ',"event_id":"', ids, '"', pc.fill_null(stamp, ""),
            pc.fill_null(status, ""), "}", "")
        slow = pc.or_(pc.is_valid(columns.column("part")),
                      pc.greater(pc.binary_length(entries), self.cfg.max_entry_bytes))
        special: dict[int, list[bytes]] = {}
        if pc.any(slow).as_py():
            indices = pc.indices_nonzero(slow)
            for index, record in zip(indices.to_pylist(),
                                     row_records(columns.take(indices))):
                special[index] = self.encode(record)
        return entries, special

    def encode(self, record: dict[str, Any]) -> list[bytes]:
        part = record.get("part")
        message = record["message"]
        if not part:
            whole = self._whole_line(record)
            if len(whole) <= self.cfg.max_entry_bytes:
                return [whole]
        whole = orjson.dumps(self._entry(record, message, part, 0, 1))
        limit = self.cfg.max_entry_bytes
        if len(whole) <= limit:
            return [whole]
        # Split the message so that every entry, JSON escaping included, fits the limit.
        overhead = len(orjson.dumps(self._entry(record, "", part, 99999, 99999)))
        budget = limit - overhead
        if budget < 64:
            raise SinkError(f"line {record['seq']}: the entry's attributes alone take "
                            f"{overhead} bytes, over max_entry_bytes {limit}")
        texts: list[str] = []
        pos = 0
        while pos < len(message):
            take = budget
            while True:
                piece = message[pos:pos + take]
                size = len(orjson.dumps(piece)) - 2
                if size <= budget:
                    break
                take = max(1, min(take - 1, take * budget // size))
            texts.append(piece)
            pos += len(piece)
        n = len(texts)
        return [orjson.dumps(self._entry(record, text, part, i + 1, n))
                for i, text in enumerate(texts)]

    def classify(self, response: httpx.Response, batch: RequestBatch) -> None:
        """Accept only the intake's own success: ``202`` with its empty JSON object ``{}``."""
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise retriable_error(response)
        if status == 403:
            raise SinkError("Datadog refused the API key (HTTP 403 Forbidden): check the sink's "
                            "api_key (DD-API-KEY) and that it belongs to site "
                            f"{self.cfg.site if not self.cfg.url else self.cfg.url}",
                            fatal_for_sink=True)
        if status == 401:
            raise SinkError("Datadog answered 401 Unauthorized: the API key is missing; set "
                            "the sink's api_key", fatal_for_sink=True)
        if status == 400:
            raise SinkError(f"Datadog refused {batch.describe()} of {self.run.key} as a bad "
                            f"payload: {describe_response(response)}")
        if status != 202 or not _empty_json_object(response):
            raise SinkError(f"Datadog answered without its success reply (202 with {{}}): "
                            f"{describe_response(response)}; is url the logs intake?",
                            fatal_for_sink=True)


def _empty_json_object(response: httpx.Response) -> bool:
    """The intake's documented success body is ``{}``; a 202 carrying errors is no acceptance."""
    try:
        return response.json() == {}
    except ValueError:
        return False


class DatadogSink(BatchingSink):
    type = "datadog"
    description = "Datadog logs intake (POST /api/v2/logs), gzip, limits enforced before sending."
    Config = DatadogConfig

    def base_url(self) -> str:
        return self.config.url or SITES[self.config.site]

    def client_headers(self) -> dict[str, str]:
        return {"DD-API-KEY": self.config.api_key.get_secret_value()}

    def protocol(self, run: Any) -> IntakeProtocol:
        return IntakeProtocol(self, run)

    def check(self) -> str:
        """The API key is valid: ``GET /api/v1/validate`` (docs.datadoghq.com "Validate API
        key") on the site's API host ``https://api.<site>``, or on ``url`` when it is set (a
        proxy or a test intake); 200 ``{"valid": true}`` means valid, 403 invalid. Nothing is
        sent to the logs intake."""
        base = self.config.url or f"https://api.{self.config.site}"
        client = HttpClient(base, options=self.http_options(), headers=self.client_headers(),
                            stop=self.context.stop, log=self.log, error=SinkError)

        def classify(response: httpx.Response) -> None:
            if response.status_code in (401, 403):
                raise SinkError(f"Datadog refused the API key (HTTP {response.status_code}) at "
                                f"{base}/api/v1/validate: check the sink's api_key and site")

        try:
            response = client.request("GET", "/api/v1/validate", classify=classify,
                                      follow_redirects=False)
        finally:
            client.close()
        try:
            valid = response.json().get("valid") is True
        except (ValueError, AttributeError):  # not JSON, or not an object
            valid = False
        if not valid:
            raise SinkError("Datadog's key validation answered without valid = true: "
                            f"{describe_response(response)}")
        return f"API key valid ({base}/api/v1/validate)"


@hookimpl
def logarchive_register_sinks(register: Any) -> None:
    register(DatadogSink)
