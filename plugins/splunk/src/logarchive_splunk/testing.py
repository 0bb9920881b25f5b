"""A loopback Splunk HTTP Event Collector for tests (and for measuring throughput).

Implements what help.splunk.com documents: ``Authorization: Splunk <token>``, concatenated JSON
events on ``/services/collector/event``, raw lines on ``/services/collector/raw`` (channel
required), indexer acknowledgement (``X-Splunk-Request-Channel``, ``ackId``,
``/services/collector/ack``), reply bodies ``{"text": ..., "code": n}`` with HEC's codes.

Strict: every refusal the documentation names is enforced, with its HTTP status, so a payload
the real HEC refuses fails our tests too: codes 2-4 (auth), 5 (no data), 6 (not a sequence of
JSON objects), 7 (index not allowed, with ``indexes``), 10/11 (channel missing/not a GUID when
ack is on or on ``/raw``), 12 (no ``event``), 13 (``event`` empty, whitespace only or null:
the whole request is refused), 14 (ack while ack is off), 15 (``fields`` value not a string
or an array of strings).
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from logarchive.testing.record_sinks import Received, RecordingReceiver
from logarchive.testing.servers import Request

TOKEN = "11111111-2222-3333-4444-555555555555"


def hec_events(body: bytes) -> list[Any]:
    """Split concatenated JSON values (HEC batch format: no array, no commas).

    Raises :class:`BadFormat` (a ``ValueError``) naming the first value that does not parse."""
    decoder = json.JSONDecoder()
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise BadFormat(0) from None
    out, pos = [], 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            return out
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError:
            raise BadFormat(len(out)) from None
        out.append(obj)


class BadFormat(ValueError):
    def __init__(self, position: int) -> None:
        super().__init__(f"event {position} is not JSON")
        self.position = position


class Refusal(Exception):
    """One of HEC's documented refusals: ``status`` and the reply ``{"text", "code"...}``."""

    def __init__(self, status: int, text: str, code: int, event: int | None = None) -> None:
        super().__init__(text)
        self.status, self.text, self.code, self.event = status, text, code, event

    def reply(self) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text, "code": self.code}
        if self.event is not None:
            body["invalid-event-number"] = self.event
        return body


def _indexed_value(value: Any) -> bool:
    """HEC indexed fields: a string, or an array of strings (no objects, no nesting)."""
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value))


def check_event(doc: Any, n: int, indexes: set[str] | None) -> None:
    """Raise :class:`Refusal` for event ``n`` as HEC would (codes 6, 7, 12, 13, 15)."""
    if not isinstance(doc, dict):
        raise Refusal(400, "Invalid data format", 6, n)
    if "event" not in doc:
        raise Refusal(400, "Event field is required", 12, n)
    event = doc["event"]
    if event is None or (isinstance(event, str) and not event.strip()):
        raise Refusal(400, "Event field cannot be blank", 13, n)
    fields = doc.get("fields")
    if fields is not None and not (isinstance(fields, dict)
                                   and all(_indexed_value(v) for v in fields.values())):
        raise Refusal(400, "Error in handling indexed fields", 15, n)
    if indexes is not None and doc.get("index") is not None and doc["index"] not in indexes:
        raise Refusal(400, "Incorrect index", 7, n)


def is_channel(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class HecReceiver(RecordingReceiver):
    """Strict: refuses every payload the HEC documentation says HEC refuses.

    ``indexes``: the token's allowed indexes (None: any); ``ack``: indexer acknowledgement
    enabled on the token; ``disabled_tokens``: known tokens that are disabled (code 1)."""

    def __init__(self, token: str = TOKEN, ack: bool = False,
                 indexes: set[str] | None = None) -> None:
        super().__init__()
        self.token = token
        self.disabled_tokens: set[str] = set()
        self.ack_enabled = ack
        self.indexes = indexes
        self.refused: list[dict[str, Any]] = []   # replies of refused data requests
        self.ack_lock = threading.Lock()
        self.next_ack: dict[str, int] = {}
        self.pending_acks: dict[tuple[str, int], int] = {}  # polls left before true
        self.ack_after_polls = 1
        self.drop_acks = 0          # the next N ackIds are never acknowledged (lost)
        self.ack_polls = 0

    def reply(self, request: Request, status: int, text: str, code: int,
              extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        request.send_json(status, {"text": text, "code": code, **(extra or {})}, headers)

    def authorise(self, request: Request) -> Refusal | None:
        auth = request.headers.get("Authorization")
        if not auth:
            return Refusal(401, "Token is required", 2)
        scheme, _, token = auth.partition(" ")
        if scheme != "Splunk" or not token:
            return Refusal(401, "Invalid authorization", 3)
        if token in self.disabled_tokens:
            return Refusal(403, "Token disabled", 1)
        if token != self.token:
            return Refusal(403, "Invalid token", 4)
        return None

    def handle(self, request: Request) -> None:
        refusal = self.authorise(request)
        if refusal is not None:
            return request.send_json(refusal.status, refusal.reply())
        if request.path == "/services/collector/ack":
            return self.handle_ack(request)
        if request.path not in ("/services/collector/event", "/services/collector/raw"):
            return request.send(404, b'{"text":"The requested URL was not found on this server.","code":404}')
        fault = self.next_fault()
        if fault and self.answer_fault(request, fault):
            return
        if fault == "busy":
            return self.reply(request, 503, "Server is busy", 9)
        if fault == "auth":
            return self.reply(request, 403, "Invalid token", 4)
        if fault == "bad":
            return self.reply(request, 400, "Invalid data format", 6,
                              {"invalid-event-number": 1})
        if fault == "too_large":
            return request.send(413, b"Content-Length of 9999999 too large (maximum is 1000000)")
        if self.delay:
            import time

            time.sleep(self.delay)
        try:
            events = self.accept(request)
        except Refusal as refusal:
            with self.lock:
                self.refused.append(refusal.reply())
            return request.send_json(refusal.status, refusal.reply())
        extra: dict[str, Any] = {}
        if self.ack_enabled:
            extra["ackId"] = self.new_ack(self.channel(request) or "")
        self.record(request, events)
        self.reply(request, 200, "Success", 0, extra)

    def channel(self, request: Request) -> str | None:
        """The request's channel; :class:`Refusal` 10/11 when one is required and bad."""
        channel = request.headers.get("X-Splunk-Request-Channel") or request.query.get("channel")
        needed = self.ack_enabled or request.path.endswith("/raw")
        if needed and not channel:
            raise Refusal(400, "Data channel is missing", 10)
        if channel is not None and not is_channel(channel):
            raise Refusal(400, "Invalid data channel", 11)
        return channel

    def accept(self, request: Request) -> list[Received]:
        """Decode a data request into events, or raise the :class:`Refusal` HEC would."""
        self.channel(request)
        body = self.body(request)
        if request.path.endswith("/raw"):
            lines = [line for line in body.decode().splitlines() if line.strip()]
            if not lines:
                raise Refusal(400, "No data", 5)
            index = request.query.get("index")
            if self.indexes is not None and index is not None and index not in self.indexes:
                raise Refusal(400, "Incorrect index", 7)
            return [Received(None, None, None, line, {"query": request.query})
                    for line in lines]
        if not body.strip():
            raise Refusal(400, "No data", 5)
        try:
            docs = hec_events(body)
        except BadFormat as exc:
            raise Refusal(400, "Invalid data format", 6, exc.position) from None
        for n, doc in enumerate(docs):
            check_event(doc, n, self.indexes)
        return [self.decode(doc) for doc in docs]

    def new_ack(self, channel: str) -> int:
        with self.ack_lock:
            ack_id = self.next_ack.get(channel, 0)
            self.next_ack[channel] = ack_id + 1
            if self.drop_acks > 0:
                self.drop_acks -= 1
                polls = -1
            else:
                polls = self.ack_after_polls
            self.pending_acks[(channel, ack_id)] = polls
        return ack_id

    @staticmethod
    def decode(doc: dict[str, Any]) -> Received:
        fields = doc.get("fields") or {}
        event = doc["event"]
        message = event["message"] if isinstance(event, dict) else event
        seq, part = fields.get("seq"), fields.get("part")
        return Received(fields.get("event_id"), int(seq) if seq is not None else None,
                        int(part) if part is not None else None, message, doc)

    def handle_ack(self, request: Request) -> None:
        if not self.ack_enabled:
            return self.reply(request, 400, "ACK is disabled", 14)
        try:
            channel = self.channel(request)
            ids = json.loads(request.body)["acks"]
        except Refusal as refusal:
            return request.send_json(refusal.status, refusal.reply())
        except (ValueError, KeyError, TypeError):
            return self.reply(request, 400, "Invalid data format", 6)
        answer = {}
        with self.ack_lock:
            self.ack_polls += 1
            for ack_id in ids:
                left = self.pending_acks.get((channel, ack_id))
                if left is None or left < 0:
                    answer[str(ack_id)] = False
                elif left == 0:
                    answer[str(ack_id)] = True
                else:
                    self.pending_acks[(channel, ack_id)] = left - 1
                    answer[str(ack_id)] = False
        request.send_json(200, {"acks": answer})
