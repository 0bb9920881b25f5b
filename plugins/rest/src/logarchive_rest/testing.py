"""Loopback servers that follow seed 000 (training logs download) and seed 002 (workflow job raw
logs) byte for byte, with fault injection: reset mid-stream, stall, short Content-Length,
5xx then recover, 429 with Retry-After."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from logarchive.testing.servers import Request

TOKEN = "eyJhbGciOiJIUzI1NiJ9.test-token-5f1c2a"
SESSION = "sess-8b9d7e6f5a4c3b2a"


def fast_http(**extra: Any) -> dict[str, Any]:
    """HttpOptions for tests: small backoffs, short stall timeout."""
    retry = {"max_retries": 3, "backoff_initial": 0.01, "backoff_max": 0.05}
    retry.update(extra.pop("retry", {}))
    return {"connect_timeout": 2, "read_timeout": 0.5, "retry": retry, **extra}


@dataclass
class Fault:
    """One injected misbehaviour, consumed by the next matching request."""

    kind: str  # reset | stall | short | status | drip
    after: int = 0  # bytes of body sent before the fault
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 2.0


class FaultyBodies:
    """Sends bodies with Content-Length (and Range when allowed), or chunked; injects faults."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.range_requests: list[str] = []

    def next_fault(self) -> Fault | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def send_status_fault(self, req: Request, fault: Fault) -> None:
        req.send(fault.status, fault.body, fault.headers)

    def send_body(self, req: Request, headers: dict[str, str], body: bytes, *,
                  ranges: bool = True, chunked: bool = False) -> None:
        fault = self.next_fault()
        if fault is not None and fault.kind == "status":
            self.send_status_fault(req, fault)
            return
        status = 200
        start = 0
        range_header = req.headers.get("Range")
        if range_header:
            self.range_requests.append(range_header)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if_range = req.headers.get("If-Range")
        if ranges and range_header and not chunked and if_range in (None, etag):
            match = re.fullmatch(r"bytes=(\d+)-", range_header)
            if match:
                start = int(match.group(1))
                if start >= len(body):
                    req.send(416, b"", {"Content-Range": f"bytes */{len(body)}"})
                    return
                status = 206
                headers = {**headers,
                           "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
        payload = body[start:]
        all_headers = dict(headers)
        if ranges and not chunked:  # a server with Range support has validators (RFC 9110)
            all_headers["Accept-Ranges"] = "bytes"
            all_headers["ETag"] = etag
        if chunked:
            all_headers["Transfer-Encoding"] = "chunked"
        else:
            all_headers["Content-Length"] = str(len(payload))
        req.start(status, all_headers)
        if fault is not None and fault.kind == "drip":  # slow but alive: `after` bytes a tick
            for i in range(0, len(payload), max(1, fault.after)):
                piece = payload[i:i + max(1, fault.after)]
                req.write(_chunk(piece) if chunked else piece)
                time.sleep(fault.seconds)
            if chunked:
                req.write(b"0\r\n\r\n")
            return
        cut = fault.after if fault is not None else None
        data = payload if cut is None else payload[:cut]
        pieces = [data[i:i + 4096] for i in range(0, len(data), 4096)]
        for piece in pieces:
            req.write(_chunk(piece) if chunked else piece)
        if fault is None:
            if chunked:
                req.write(b"0\r\n\r\n")
            return
        if fault.kind == "stall":
            time.sleep(fault.seconds)
            req.raw.close_connection = True
            return
        if fault.kind == "short":  # Content-Length promised more: close cleanly
            req.raw.close_connection = True
            req.raw.wfile.flush()
            return
        time.sleep(0.2)  # let the client read what was sent before the RST discards it
        req.reset()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


# --- seed 000: Download Training Logs ---------------------------------------------------------

@dataclass
class TrainingRun:
    run_id: str
    text: bytes
    completed: bool = True


class TrainingAPI(FaultyBodies):
    """``GET /api/v1/models/{model_id}/training-metrics/logs/download`` and the alias
    ``/api/v1/models/{model_id}/training/metrics/logs/download``; ``run_id`` defaults to the most
    recent completed run; ``format`` txt | json; 400/401/403/404. Also a list endpoint
    ``GET /api/v1/models`` (paginated by ``page_token``) for discovery tests."""

    PATH = re.compile(r"^/api/v1/models/(?P<model>[^/]+)/training(?:-metrics|/metrics)/logs/download$")

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[str, list[TrainingRun]] = {}
        self.forbidden: set[str] = set()
        self.formats = {"txt", "json"}
        self.disposition: dict[str, str] = {}  # run_id -> raw header override
        self.ranges = True
        self.page_size = 2

    def add(self, model: str, run_id: str, text: bytes, completed: bool = True) -> None:
        self.models.setdefault(model, []).append(TrainingRun(run_id, text, completed))

    def __call__(self, req: Request) -> None:
        if req.headers.get("Authorization") != f"Bearer {TOKEN}":
            req.send_json(401, {"error": "Unauthorized",
                                "message": "Verify your JWT token format and ensure it has not "
                                           "expired."})
            return
        if req.path == "/api/v1/models":
            self.list_models(req)
            return
        match = self.PATH.match(req.path)
        if not match:
            req.send_json(404, {"error": "Not Found", "message": "no such route"})
            return
        model = match.group("model")
        fmt = req.query.get("format", "txt")
        if fmt not in self.formats:
            req.send_json(400, {"error": "Bad Request",
                                "message": "You provided an invalid format query parameter."})
            return
        if model in self.forbidden:
            req.send_json(403, {"error": "Forbidden",
                                "message": "Ensure the user has the required model:read "
                                           "permissions."})
            return
        runs = self.models.get(model, [])
        run_id = req.query.get("run_id")
        if run_id is None:
            done = [r for r in runs if r.completed]
            run = done[-1] if done else None
        else:
            run = next((r for r in runs if r.run_id == run_id), None)
        if run is None:
            req.send_json(404, {"error": "Not Found",
                                "message": "The model_id or run_id cannot be found, or logs were "
                                           "purged/expired per retention policies."})
            return
        if fmt == "json":
            body = json_body(run.text)
            ctype = "application/json"
        else:
            body, ctype = run.text, "text/plain"
        disposition = self.disposition.get(
            run.run_id, f'attachment; filename="training-log-{run.run_id}.{fmt}"')
        headers = {"Content-Type": ctype, "Content-Disposition": disposition}
        if req.method == "HEAD":
            req.send(200, b"", headers)
            return
        self.send_body(req, headers, body, ranges=self.ranges)

    def list_models(self, req: Request) -> None:
        names = sorted(self.models)
        start = int(req.query.get("page_token") or 0)
        page = names[start:start + self.page_size]
        document: dict[str, Any] = {"data": [{"id": n, "name": n.upper()} for n in page]}
        if start + self.page_size < len(names):
            document["next_page_token"] = str(start + self.page_size)
        req.send_json(200, document)


def json_body(text: bytes) -> bytes:
    """Seed 000 format=json: an array of structured JSON objects mapped line by line."""
    from logarchive.plugin_api import parse_level, parse_timestamp

    objects = []
    for seq, line in enumerate(text.decode().splitlines(), 1):
        objects.append({"seq": seq, "timestamp": parse_timestamp(line), "level": parse_level(line),
                        "message": line})
    return json.dumps(objects, indent=1).encode()


# --- seed 002: Download Job Logs --------------------------------------------------------------

TRAILER = b"--- ERROR: failed to fetch logs ---\n"


@dataclass
class WorkflowJob:
    status: str
    lines: list[str]
    error: str | None = None  # appended as the trailer after the lines


class WorkflowAPI(FaultyBodies):
    """``GET /workflows/{workflow_id}/jobs/{job_id}/logs/raw`` with ``Cookie: session=...``:
    text/plain, Content-Disposition ``attachment; filename="{job_id}-logs.txt"``, streamed in
    flushed batches (chunked, no Range); 400 not COMPLETED/FAILED, 401, 404, 500; the error
    trailer appended on a storage error. Also ``GET /workflows/{workflow_id}/jobs`` (a JSON
    list, paginated with a ``Link`` header) for discovery tests."""

    PATH = re.compile(r"^/workflows/(?P<wf>[^/]+)/jobs/(?P<job>[^/]+)/logs/raw$")
    LIST = re.compile(r"^/workflows/(?P<wf>[^/]+)/jobs$")

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[tuple[str, str], WorkflowJob] = {}
        self.page_size = 2

    def add(self, wf: str, job: str, status: str = "COMPLETED", lines: list[str] | None = None,
            error: str | None = None) -> WorkflowJob:
        entry = WorkflowJob(status, lines if lines is not None else default_lines(job), error)
        self.jobs[(wf, job)] = entry
        return entry

    def body(self, job: WorkflowJob) -> bytes:
        text = "".join(f"{line}\n" for line in job.lines).encode()
        if job.error is not None:
            text += TRAILER + job.error.encode() + b"\n"
        return text

    def __call__(self, req: Request) -> None:
        if req.cookie("session") != SESSION:
            req.send(401, b"Invalid or expired session\n", {"Content-Type": "text/plain"})
            return
        listing = self.LIST.match(req.path)
        if listing:
            self.list_jobs(req, listing.group("wf"))
            return
        match = self.PATH.match(req.path)
        key = (match.group("wf"), match.group("job")) if match else None
        if key is None or key not in self.jobs:
            req.send(404, b"Workflow or job not found\n", {"Content-Type": "text/plain"})
            return
        job = self.jobs[key]
        if job.status not in ("COMPLETED", "FAILED"):
            req.send(400, b"Job is not yet completed (status must be COMPLETED or FAILED)\n",
                     {"Content-Type": "text/plain"})
            return
        headers = {"Content-Type": "text/plain",
                   "Content-Disposition": f'attachment; filename="{key[1]}-logs.txt"'}
        self.send_body(req, headers, self.body(job), ranges=False, chunked=True)

    def list_jobs(self, req: Request, wf: str) -> None:
        ids = sorted(j for (w, j) in self.jobs if w == wf)
        start = int(req.query.get("offset") or 0)
        page = ids[start:start + self.page_size]
        items = [{"id": j, "workflow": {"id": wf}, "status": self.jobs[(wf, j)].status}
                 for j in page]
        headers = {}
        if start + self.page_size < len(ids):
            headers["Link"] = (f'</workflows/{wf}/jobs?offset={start + self.page_size}>; '
                               'rel="next"')
        req.send_json(200, {"jobs": items}, headers)


def default_lines(job: str) -> list[str]:
    return ["Starting job execution...", "Connecting to database",
            *[f"Processing records: batch {i}/10 ({job})" for i in range(1, 11)],
            "Job completed successfully"]
