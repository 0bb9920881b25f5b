"""Sink ``splunk``: records to the Splunk HTTP Event Collector (HEC).

``POST /services/collector/event`` with several JSON events concatenated in one body, or
``POST /services/collector/raw`` (``endpoint = "raw"``). With ``ack = true`` every request carries
an ``X-Splunk-Request-Channel``; the ``ackId`` of each response is polled on
``/services/collector/ack`` and a batch counts as delivered only once acknowledged. Batching,
gzip, retries and resume bookkeeping come from core (``logarchive.batching``); this module only
builds payloads and classifies HEC's answers.
"""

from __future__ import annotations

import socket
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

import httpx
import orjson
from pydantic import Field

from logarchive.plugin_api import (
    BatchingSink, BatchingSinkConfig, BatchProtocol, EventIds, HttpBaseUrl, HttpClient,
    RequestBatch, Secret, SinkError, describe_response, epoch_seconds, hookimpl, refuse_redirect,
    render_run_template, retriable_error,
)

# HEC reply codes (help.splunk.com "Troubleshoot HTTP Event Collector").
FATAL_CODES = {1: "token disabled", 2: "token required", 3: "invalid authorization",
               4: "invalid token", 7: "incorrect index", 14: "ACK is disabled"}
RETRY_CODES = {8: "internal server error", 9: "server is busy"}


def is_blank(message: str) -> bool:
    """Empty or whitespace only: HEC refuses such a string event (code 13)."""
    return not message or message.isspace()


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or ``{}`` (empty, HTML, not an object)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class SplunkConfig(BatchingSinkConfig):
    type: Literal["splunk"] = "splunk"
    url: HttpBaseUrl = Field(description="HEC base URL (scheme, host, port).",
                             examples=["https://splunk.example.com:8088"])
    token: Secret = Field(description="HEC token, sent as `Authorization: Splunk <token>`.",
                          examples=["${SPLUNK_HEC_TOKEN}"])
    index: str | None = Field(
        default=None, description="Target index (token default if unset): a template of "
        "{source}, {run_key}, {run_id} and run fields, like `source`.",
        examples=["ml", "ml_{model_id}"])
    sourcetype: str = Field(default="logarchive", description="Splunk sourcetype: a template "
                            "like `source`.", examples=["logarchive", "training:{model_id}"])
    source: str = Field(
        default="{source}:{run_id}",
        description="Splunk source: template of {source}, {run_key}, {run_id} and run fields.",
        examples=["{source}:{run_id}"],
    )
    host: str | None = Field(default=None, description="Splunk host (default: this machine).",
                             examples=["exporter-1"])
    endpoint: Literal["event", "raw"] = Field(
        default="event", description="event: JSON events with time and fields; raw: the lines "
        "as they are (Splunk parses time; no event ids).", examples=["event"],
    )
    event_format: Literal["message", "record"] = Field(
        default="message", description="The event body: the line's message, or the whole "
        "record (seq, timestamp, level, message, run fields) as an object.", examples=["message"],
    )
    ack: bool = Field(default=False, description="Indexer acknowledgement: a batch counts as "
                      "delivered only once Splunk has indexed it.", examples=[True])
    ack_timeout: float = Field(
        default=60.0, gt=0, description="Seconds to wait for an acknowledgement before the "
        "batch is sent again.", examples=[60],
    )
    ack_poll_interval: float = Field(default=1.0, gt=0,
                                     description="Seconds between acknowledgement polls.",
                                     examples=[1])


def is_success_code(code: Any) -> bool:
    """HEC's success is the JSON integer 0: not false, 0.0 or "0", which loose code takes as 0."""
    return type(code) is int and code == 0


class HecProtocol(BatchProtocol):
    def __init__(self, sink: SplunkSink, run: Any) -> None:
        cfg = sink.config
        self.cfg = cfg
        self.run = run
        self.channel = str(uuid.uuid4())
        self.ack_timeout = cfg.ack_timeout
        self.ack_poll_interval = cfg.ack_poll_interval
        self.source = render_run_template(cfg.source, run)
        self.sourcetype = render_run_template(cfg.sourcetype, run)
        self.index = render_run_template(cfg.index, run) if cfg.index else None
        self.host = cfg.host or socket.gethostname()
        when = run.completed or run.started or datetime.now(timezone.utc)
        self.run_time = round(when.timestamp(), 3)
        self.fields = run.record_fields()
        self.ids = EventIds(run.source, run.key)
        self.raw = cfg.endpoint == "raw"
        self.path = "/services/collector/raw" if self.raw else "/services/collector/event"
        if self.raw:
            self.separator = b"\n"
            self.body_suffix = b"\n"
        # The pieces of :meth:`_message_event` (None: a run field named like one of the
        # event's own fields changes the key order, so every event is built as a dict).
        self._head: bytes | None = None
        if not ({"seq", "event_id", "level", "part"} & set(self.fields)
                or self.raw or cfg.event_format == "record"):
            fields = orjson.dumps(self.fields)[1:-1]
            self._run_time = orjson.dumps(self.run_time)
            self._head = self._constant_keys.encode()
            self._fields_head = b',"fields":{' + (fields + b"," if fields else b"") + b'"seq":"'
            self._tail = b"}" + (b',"index":' + orjson.dumps(self.index)
                                 if self.index else b"") + b"}"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "text/plain" if self.raw else "application/json"}
        if self.cfg.ack or self.raw:
            headers["X-Splunk-Request-Channel"] = self.channel
        return headers

    def params(self) -> dict[str, str] | None:
        if not self.raw:
            return None
        params = {"channel": self.channel, "host": self.host, "source": self.source,
                  "sourcetype": self.sourcetype}
        if self.index:
            params["index"] = self.index
        return params

    def skips(self, record: dict[str, Any]) -> bool:
        """HEC's raw endpoint has no form for a blank line: skipped (and counted)."""
        return self.raw and is_blank(record["message"])

    def encode(self, record: dict[str, Any]) -> list[bytes]:
        message = record["message"]
        if self.raw:
            return [message.replace("\n", " ").encode()]
        if self._head is not None and not record.get("part") and not is_blank(message):
            return [self._message_event(record, message)]
        return [orjson.dumps(self.document(record))]

    def document(self, record: dict[str, Any]) -> dict[str, Any]:
        """The HEC event of ``record`` (the ``event`` endpoint) as a dict."""
        message = record["message"]
        seq, part = record["seq"], record.get("part")
        ident = self.ids(seq, part)
        epoch = epoch_seconds(record.get("timestamp"))
        fields = {**self.fields, "seq": str(seq), "event_id": ident}
        if record.get("level"):
            fields["level"] = record["level"]
        if part:
            fields["part"] = str(part)
        event: Any = message
        if self.cfg.event_format == "record":
            event = {**record, "event_id": ident}
        elif is_blank(message):
            event = {"message": message}  # HEC refuses a blank string event (code 13)
        doc = {"time": round(epoch, 3) if epoch is not None else self.run_time,
               "host": self.host, "source": self.source, "sourcetype": self.sourcetype,
               "event": event, "fields": fields}
        if self.index:
            doc["index"] = self.index
        return doc

    def _message_event(self, record: dict[str, Any], message: str) -> bytes:
        """The common event (the message of a whole line) written without building a dict:
        the bytes of ``orjson.dumps(self.document(record))``, keys in the same order."""
        seq = record["seq"]
        epoch = epoch_seconds(record.get("timestamp"))
        level = record.get("level")
        return b"".join((
            b'{"time":', orjson.dumps(round(epoch, 3)) if epoch is not None else self._run_time,
            self._head, orjson.dumps(message), self._fields_head,
            b'%d","event_id":"%s"' % (seq, self.ids(seq).encode()),
            b',"level":' + orjson.dumps(level) if level else b"", self._tail))

    def encode_column_events(self, columns: Any) -> tuple[Any, dict[int, list[bytes]]] | None:
        """:meth:`encode` for a table of records, by column kernels: the ``event`` endpoint's
        message events (the raw endpoint and whole-record events: :meth:`encode` per record)."""
        if self.raw or self.cfg.event_format == "record" or {"seq", "event_id", "level",
                                                              "part"} & set(self.fields):
            return None
        import pyarrow as pa
        import pyarrow.compute as pc

        from logarchive.plugin_api import epoch_millis, epoch_text, is_blank, json_quoted

        seqs, parts = columns.column("seq"), columns.column("part")
        ids = pa.array(self.ids.many(seqs.to_pylist()) if parts.null_count == len(parts) else
                       [self.ids(seq, part) for seq, part in zip(seqs.to_pylist(),
                                                                 parts.to_pylist())], pa.string())
        stamps = columns.column("timestamp")
        when = epoch_text(epoch_millis(stamps))
        early = pc.and_(pc.is_valid(stamps), pc.is_null(when))  # before 1970: per record
        message = json_quoted(columns.column("message"))
        event = pc.if_else(is_blank(columns.column("message")),
                           pc.binary_join_element_wise('{"message":', message, "}", ""), message)
        fields = orjson.dumps(self.fields)[1:-1].decode()
        docs = pc.binary_join_element_wise(
            '{"time":', pc.fill_null(when, orjson.dumps(self.run_time).decode()),
            self._constant_keys, event, ',"fields":{' + (fields + "," if fields else ""),
            '"seq":"', pc.cast(seqs, pa.string()), '","event_id":"', ids, '"',
            pc.fill_null(pc.binary_join_element_wise(',"level":"', columns.column("level"),
                                                     '"', ""), ""),
            pc.fill_null(pc.binary_join_element_wise(',"part":"', pc.cast(parts, pa.string()),
                                                     '"', ""), ""),
            "}" + (',"index":' + orjson.dumps(self.index).decode() if self.index else "") + "}",
            "")
        special: dict[int, list[bytes]] = {}
        if pc.any(early).as_py():
            from logarchive.plugin_api import row_records

            indices = pc.indices_nonzero(early)
            for index, record in zip(indices.to_pylist(), row_records(columns.take(indices))):
                special[index] = self.encode(record)
        return docs, special

    @property
    def _constant_keys(self) -> str:
        return (',"host":' + orjson.dumps(self.host).decode() + ',"source":'
                + orjson.dumps(self.source).decode() + ',"sourcetype":'
                + orjson.dumps(self.sourcetype).decode() + ',"event":')

    def classify(self, response: httpx.Response, batch: RequestBatch) -> None:
        """Accept only HEC's own success, ``{"text": "Success", "code": 0}``."""
        body = self._refuse_errors(response, batch)
        if not is_success_code(body.get("code")):
            raise SinkError(f"Splunk HEC answered without its success reply (code 0): "
                            f"{describe_response(response)}; is url the HEC endpoint?",
                            fatal_for_sink=True)

    def _refuse_errors(self, response: httpx.Response, batch: RequestBatch) -> dict[str, Any]:
        """HEC's JSON reply of a 2xx answer; raise for anything else (redirects included)."""
        status = response.status_code
        body = json_object(response)
        code = body.get("code")
        if 200 <= status < 300 and body and code not in RETRY_CODES:
            return body
        text = str(body.get("text", ""))
        if code in FATAL_CODES or status in (401, 403):
            what = FATAL_CODES.get(code, text or "not authorised")
            raise SinkError(
                f"Splunk HEC rejected the request: {what} (code {code}, HTTP {status}); check "
                "the sink's token" + (" and index" if code == 7 else "")
                + (" (enable indexer acknowledgement on the token or set ack = false)"
                   if code == 14 else ""),
                fatal_for_sink=True,
            )
        if code in RETRY_CODES or status >= 500 or status in (408, 429):
            raise retriable_error(response, f"Splunk HEC: {RETRY_CODES.get(code, text)} "
                                  f"(code {code}, HTTP {status})")
        if status == 400:
            where = batch.describe()
            position = body.get("invalid-event-number")
            if isinstance(position, int):
                where = batch.name_event(position)
            raise SinkError(f"Splunk HEC refused {where} of {self.run.key}: {text} "
                            f"(code {code})")
        raise SinkError(describe_response(response), fatal_for_sink=200 <= status < 300)

    def ack_token(self, response: httpx.Response) -> Any:
        if not self.cfg.ack:
            return None
        try:
            ack = response.json().get("ackId")
        except (ValueError, AttributeError):
            ack = None
        if ack is None:
            raise SinkError("Splunk HEC answered without an ackId although ack = true: is "
                            "indexer acknowledgement enabled on the token?", fatal_for_sink=True)
        return ack

    def poll_acks(self, client: HttpClient, tokens: list[Any]) -> set[Any]:
        def classify(response: httpx.Response) -> None:
            refuse_redirect(response, "Splunk HEC")
            if not isinstance(self._refuse_errors(response, RequestBatch(0, [])).get("acks"), dict):
                raise SinkError("Splunk HEC ack answer has no acks object: "
                                f"{describe_response(response)}")

        response = client.request(
            "POST", "/services/collector/ack", params={"channel": self.channel},
            headers={"X-Splunk-Request-Channel": self.channel, "Content-Type": "application/json"},
            content=orjson.dumps({"acks": tokens}), classify=classify, follow_redirects=False,
        )
        acks = response.json()["acks"]
        return {t for t in tokens if acks.get(str(t)) is True}


class SplunkSink(BatchingSink):
    type = "splunk"
    description = "Splunk HTTP Event Collector (event or raw endpoint), indexer acknowledgement."
    Config = SplunkConfig

    def base_url(self) -> str:
        return self.config.url

    def client_headers(self) -> dict[str, str]:
        return {"Authorization": f"Splunk {self.config.token.get_secret_value()}"}

    def protocol(self, run: Any) -> HecProtocol:
        return HecProtocol(self, run)

    def check(self) -> str:
        """The token is valid: an empty event request is answered code 5 "No data" (HEC
        authenticates before it reads the body), so no event is ever sent. With ``ack = true``,
        an ack poll on a fresh channel is answered with an ``acks`` object (code 14 when
        acknowledgement is disabled on the token)."""
        client = self.make_client(self.context.stop)
        try:
            status, body = hec_answer(client, "/services/collector/event", content=b"",
                                      headers={"X-Splunk-Request-Channel": str(uuid.uuid4())})
            code = body.get("code")
            if code != 5:
                raise SinkError(f"Splunk HEC did not accept the token: {hec_words(status, body)}"
                                "; check the sink's url and token")
            if not self.config.ack:
                return "token accepted (empty request answered code 5, no data)"
            channel = str(uuid.uuid4())
            status, body = hec_answer(
                client, "/services/collector/ack", params={"channel": channel},
                headers={"X-Splunk-Request-Channel": channel}, content=b'{"acks":[]}')
            if not isinstance(body.get("acks"), dict):
                raise SinkError("ack = true but Splunk HEC acknowledgement is not enabled on "
                                f"the token: {hec_words(status, body)}")
            return "token accepted; indexer acknowledgement enabled"
        finally:
            client.close()


class _Answered(Exception):
    """A 4xx answer a check reads rather than an error."""


def hec_answer(client: HttpClient, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """POST to ``path``: the HTTP status and HEC's JSON reply (4xx included)."""
    seen: dict[str, Any] = {}

    def classify(response: httpx.Response) -> None:
        refuse_redirect(response, "Splunk HEC")
        seen.update(status=response.status_code, body=json_object(response))
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise _Answered

    try:
        client.request("POST", path, classify=classify, follow_redirects=False, **kwargs)
    except _Answered:
        pass
    return seen["status"], seen["body"]


def hec_words(status: int, body: dict[str, Any]) -> str:
    code = body.get("code")
    words = FATAL_CODES.get(code, body.get("text") or "no HEC answer")
    return f"{words} (code {code}, HTTP {status})"


@hookimpl
def logarchive_register_sinks(register: Any) -> None:
    register(SplunkSink)
