"""A loopback Datadog logs intake for tests (and for measuring throughput).

Implements what docs.datadoghq.com documents for ``POST /api/v2/logs``: ``DD-API-KEY`` (401
missing, 403 invalid), a JSON array of entries (or one object), gzip or deflate bodies, 202
``{}`` on success, 413 over 5 MB uncompressed, 400 over 1000 entries, for a body that is not
JSON (or not valid gzip/deflate) and for an entry that is not an object, and, like Datadog, an entry over 1 MB is accepted but truncated (recorded in
``truncated`` so tests can prove the sink never relies on it).
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from typing import Any

from logarchive.testing.record_sinks import Received, RecordingReceiver
from logarchive.testing.servers import Request

API_KEY = "0123456789abcdef0123456789abcdef"
MAX_BODY = 5_000_000
MAX_ENTRIES = 1000
MAX_ENTRY = 1_000_000


def _errors(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"errors": [{"status": str(status), "title": title, "detail": detail}]}


class IntakeReceiver(RecordingReceiver):
    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.max_body = MAX_BODY
        self.truncated = 0
        self.validations = 0

    def validate(self, request: Request) -> None:
        """``GET /api/v1/validate`` (docs.datadoghq.com "Validate API key"): 200
        ``{"valid": true}``, 403 ``{"errors": ["Forbidden"]}`` for a missing or invalid key."""
        self.validations += 1
        if request.headers.get("DD-API-KEY") != self.api_key:
            return request.send_json(403, {"errors": ["Forbidden"]})
        return request.send_json(200, {"valid": True})

    def handle(self, request: Request) -> None:
        if request.path == "/api/v1/validate" and request.method == "GET":
            return self.validate(request)
        if request.path != "/api/v2/logs" or request.method != "POST":
            return request.send_json(404, _errors(404, "Not Found", "unknown path"))
        key = request.headers.get("DD-API-KEY")
        if not key:
            return request.send_json(401, _errors(401, "Unauthorized", "API key is missing"))
        if key != self.api_key:
            return request.send_json(403, _errors(403, "Forbidden", "Invalid API key"))
        fault = self.next_fault()
        if fault and self.answer_fault(request, fault):
            return
        if fault == "busy":
            return request.send_json(503, _errors(503, "Service Unavailable", "retry later"),
                                     {"Retry-After": self.retry_after})
        if fault == "auth":
            return request.send_json(403, _errors(403, "Forbidden", "Invalid API key"))
        if fault == "bad":
            return request.send_json(400, _errors(400, "Bad Request", "invalid payload"))
        if fault == "too_large":
            return request.send_json(413, _errors(413, "Payload Too Large", "over 5MB"))
        if self.delay:
            time.sleep(self.delay)
        try:
            body = self.decompress(request)
        except (OSError, EOFError, zlib.error):
            return request.send_json(400, _errors(400, "Bad Request", "invalid compressed body"))
        if len(body) > self.max_body:
            return request.send_json(413, _errors(413, "Payload Too Large", "over 5MB"))
        try:
            doc = json.loads(body)
        except ValueError:
            return request.send_json(400, _errors(400, "Bad Request", "invalid JSON"))
        entries = doc if isinstance(doc, list) else [doc]
        if len(entries) > MAX_ENTRIES:
            return request.send_json(400, _errors(400, "Bad Request", "too many entries"))
        if not all(isinstance(entry, dict) for entry in entries):
            return request.send_json(400, _errors(400, "Bad Request", "an entry is not an object"))
        events = []
        for entry in entries:
            if len(entry.get("message", "")) > 100_000 and len(json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode()) > MAX_ENTRY:
                self.truncated += 1
            events.append(Received(entry.get("event_id"), entry.get("seq"), entry.get("part"),
                                   entry.get("message", ""), entry))
        self.record(request, events)
        request.send_json(202, {})

    @staticmethod
    def decompress(request: Request) -> bytes:
        encoding = (request.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            return gzip.decompress(request.body)
        if encoding == "deflate":
            return zlib.decompress(request.body)
        return request.body
