"""Loopback servers for tests: the ModelArts API of seed 001 (job details, job list, task log
link) and an OBS-like storage serving presigned links (expiry, Range, faults)."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from logarchive.testing.servers import Request

TOKEN = "MIIZkQYJKoZIhvcNAQcCoIIZgjCCGX4CAQExDTALBglghkgBZQMEAgEwghejBgkqhkiG9w0BBwGgghemBIIXonsi"
ACCESS_KEY = "HPUAKTESTACCESSKEY77"


@dataclass
class Fault:
    kind: str  # reset | stall | short | status | expire (reset and expire the link)
    after: int = 0
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 1.5


class OBSStorage:
    """``GET /<bucket>/<key>?AWSAccessKeyId=&Expires=&Signature=``: 403 AccessDenied XML when
    the signature is unknown or expired, Range (206), Content-Length, injected faults."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.valid: set[str] = set()
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.range_requests: list[str] = []
        self.ranges = True
        self.url = ""
        self._lock = threading.Lock()
        self._counter = 0

    def sign(self, key: str) -> str:
        with self._lock:
            self._counter += 1
            expires = int(time.time()) + 300
            signature = hashlib.sha1(f"{key}:{self._counter}".encode()).hexdigest()
            self.valid.add(signature)
        return (f"{self.url}/{quote(key)}?AWSAccessKeyId={ACCESS_KEY}&Expires={expires}"
                f"&Signature={quote(signature)}")

    def expire_all(self) -> None:
        with self._lock:
            self.valid.clear()

    def __call__(self, req: Request) -> None:
        self.requests.append(req)
        key = req.path.lstrip("/")
        if req.query.get("Signature") not in self.valid:
            req.send(403, _obs_error("AccessDenied", "Request has expired"),
                     {"Content-Type": "application/xml"})
            return
        if key not in self.objects:
            req.send(404, _obs_error("NoSuchKey", "The specified key does not exist."),
                     {"Content-Type": "application/xml"})
            return
        with self._lock:
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None and fault.kind == "status":
            req.send(fault.status, fault.body, fault.headers)
            return
        body = self.objects[key]
        status, start, headers = 200, 0, {"Content-Type": "application/octet-stream",
                                          "ETag": '"' + hashlib.md5(body).hexdigest() + '"'}
        range_header = req.headers.get("Range")
        if range_header:
            self.range_requests.append(range_header)
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if self.ranges:
            headers["Accept-Ranges"] = "bytes"
            if match and req.headers.get("If-Range") in (None, headers["ETag"]):
                start = int(match.group(1))
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        payload = body[start:]
        headers["Content-Length"] = str(len(payload))
        req.start(status, headers)
        data = payload if fault is None else payload[:fault.after]
        for i in range(0, len(data), 8192):
            req.write(data[i:i + 8192])
        if fault is None:
            return
        if fault.kind == "stall":
            time.sleep(fault.seconds)
            req.raw.close_connection = True
            return
        if fault.kind == "short":
            req.raw.close_connection = True
            return
        if fault.kind == "expire":
            self.expire_all()
        time.sleep(0.2)  # let the client read what was sent before the RST discards it
        req.reset()


def _obs_error(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>0000018F3A2B</RequestId>"
            f"<HostId>obs.example</HostId></Error>").encode()


@dataclass
class Job:
    job_id: str
    phase: str = "Completed"
    tasks: list[str] | None = None
    name: str = "train-resnet"
    start_time: int = 1773396000000
    duration: int = 3_600_000


class ModelArtsAPI:
    """Seed 001 and the training-job endpoints it refers to, on ``/v2/{project_id}/...``."""

    def __init__(self, project_id: str, storage: OBSStorage) -> None:
        self.project_id = project_id
        self.storage = storage
        self.url = ""  # where this API listens (set by the test)
        self.jobs: dict[str, Job] = {}
        self.link_requests: list[Request] = []
        self.requests: list[Request] = []

    def add(self, job_id: str, logs: dict[str, bytes], **kwargs: Any) -> Job:
        job = Job(job_id, **kwargs)
        self.jobs[job_id] = job
        for task, data in logs.items():
            self.storage.objects[self.key(job_id, task)] = data
        return job

    def key(self, job_id: str, task: str) -> str:
        return (f"cnnorth4-test/logs/modelarts-job-{job_id}-ma-platform-init-{task}-"
                f"172.16.24.51-01909681.log")

    def detail(self, job: Job, with_tasks: bool = True) -> dict[str, Any]:
        status: dict[str, Any] = {"phase": job.phase, "secondary_phase": job.phase,
                                  "duration": job.duration, "start_time": job.start_time}
        if with_tasks and job.tasks is not None:
            status["tasks"] = job.tasks
        return {"kind": "job", "metadata": {"id": job.job_id, "name": job.name,
                                            "create_time": job.start_time - 60_000},
                "status": status}

    def __call__(self, req: Request) -> None:
        self.requests.append(req)
        if req.headers.get("X-Auth-Token") != TOKEN:
            req.send_json(401, {"error_code": "ModelArts.0103",
                                "error_msg": "The token is invalid or expired."})
            return
        prefix = f"/v2/{self.project_id}"
        if not req.path.startswith(prefix + "/"):
            req.send_json(404, {"error_code": "ModelArts.0002", "error_msg": "Not found"})
            return
        rest = req.path[len(prefix):]
        if rest == "/training-job-searches" and req.method == "POST":
            import json

            body = json.loads(req.body or b"{}")
            page, limit = int(body.get("offset", 0)), int(body.get("limit", 50))
            ids = sorted(self.jobs)
            chunk = ids[page * limit:(page + 1) * limit]
            req.send_json(200, {"total": len(ids), "count": len(chunk), "limit": limit,
                                "offset": page, "sort_by": "create_time", "order": "desc",
                                "items": [self.detail(self.jobs[i], with_tasks=False)
                                          for i in chunk]})
            return
        match = re.fullmatch(r"/training-jobs/([^/]+)(?:/tasks/([^/]+)/logs/url)?", rest)
        if not match or match.group(1) not in self.jobs:
            req.send_json(404, {"error_code": "ModelArts.2762",
                                "error_msg": "The training job does not exist."})
            return
        job = self.jobs[match.group(1)]
        task = match.group(2)
        if task is None:
            req.send_json(200, self.detail(job))
            return
        self.link_requests.append(req)
        tasks = job.tasks if job.tasks is not None else ["worker-0"]
        key = self.key(job.job_id, task)
        if task not in tasks:
            req.send_json(404, {"error_code": "ModelArts.2763",
                                "error_msg": f"The task {task} does not exist."})
            return
        link = self.storage.sign(key)
        if req.headers.get("Content-Type") != "application/octet-stream":
            link += "&response-content-disposition=inline"  # the preview link
        req.send_json(200, {"obs_url": link})
