"""A loopback Splunk HTTP Event Collector for tests (and for measuring throughput).

Implements what help.splunk.com documents: ``Authorization: Splunk <token>``, concatenated JSON
events on ``/services/collector/event``, raw lines on ``/services/collector/raw`` (channel
required), indexer acknowledgement (``X-Splunk-Request-Channel``, ``ackId``,
``/services/collector/ack``), reply bodies ``{"text": ..., "code": n}`` with HEC's codes.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from logarchive.testing.record_sinks import Received, RecordingReceiver
from logarchive.testing.servers import Request

TOKEN = "11111111-2222-3333-4444-555555555555"


def hec_events(body: bytes) -> list[dict[str, Any]]:
    """Split concatenated JSON objects (HEC batch format: no array, no commas)."""
    decoder = json.JSONDecoder()
    text = body.decode()
    out, pos = [], 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            return out
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)


class HecReceiver(RecordingReceiver):
    def __init__(self, token: str = TOKEN, ack: bool = False) -> None:
        super().__init__()
        self.token = token
        self.ack_enabled = ack
        self.ack_lock = threading.Lock()
        self.next_ack: dict[str, int] = {}
        self.pending_acks: dict[tuple[str, int], int] = {}  # polls left before true
        self.ack_after_polls = 1
        self.drop_acks = 0          # the next N ackIds are never acknowledged (lost)
        self.ack_polls = 0

    def reply(self, request: Request, status: int, text: str, code: int,
              extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        request.send_json(status, {"text": text, "code": code, **(extra or {})}, headers)

    def handle(self, request: Request) -> None:
        auth = request.headers.get("Authorization")
        if not auth:
            return self.reply(request, 401, "Token is required", 2)
        if auth != f"Splunk {self.token}":
            return self.reply(request, 403, "Invalid token", 4)
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
        channel = request.headers.get("X-Splunk-Request-Channel") or request.query.get("channel")
        body = self.body(request)
        if request.path.endswith("/raw"):
            if not channel:
                return self.reply(request, 400, "Data channel is missing", 10)
            events = [Received(None, None, None, line, {"query": request.query})
                      for line in body.decode().splitlines() if line]
        else:
            try:
                docs = hec_events(body)
            except ValueError:
                return self.reply(request, 400, "Invalid data format", 6,
                                  {"invalid-event-number": 0})
            if not docs:
                return self.reply(request, 400, "No data", 5)
            for n, doc in enumerate(docs):
                if "event" not in doc:
                    return self.reply(request, 400, "Event field is required", 12,
                                      {"invalid-event-number": n})
            events = [self.decode(doc) for doc in docs]
        extra: dict[str, Any] = {}
        if self.ack_enabled:
            if not channel:
                return self.reply(request, 400, "Data channel is missing", 10)
            with self.ack_lock:
                ack_id = self.next_ack.get(channel, 0)
                self.next_ack[channel] = ack_id + 1
                if self.drop_acks > 0:
                    self.drop_acks -= 1
                    polls = -1
                else:
                    polls = self.ack_after_polls
                self.pending_acks[(channel, ack_id)] = polls
            extra["ackId"] = ack_id
        self.record(request, events)
        self.reply(request, 200, "Success", 0, extra)

    @staticmethod
    def decode(doc: dict[str, Any]) -> Received:
        fields = doc.get("fields") or {}
        event = doc["event"]
        message = event["message"] if isinstance(event, dict) else event
        return Received(fields.get("event_id"), fields.get("seq"), fields.get("part"),
                        message, doc)

    def handle_ack(self, request: Request) -> None:
        if not self.ack_enabled:
            return self.reply(request, 400, "ACK is disabled", 14)
        channel = request.headers.get("X-Splunk-Request-Channel") or request.query.get("channel")
        if not channel:
            return self.reply(request, 400, "Data channel is missing", 10)
        try:
            ids = json.loads(request.body)["acks"]
        except (ValueError, KeyError):
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
