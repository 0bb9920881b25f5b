"""A Model Lab API on a loopback server that answers as seeds 003 and 004 document.

Runs are JSON:API ``runs`` resources with every documented attribute; artifact listings are
read from the real storage behind each run's ``mlflow_artifact_location`` (a local folder or a
moto S3 bucket) with fsspec, one directory level per request, ``path`` relative to the run's
artifact root. Errors use the documented bodies: objects with ``status``/``title``/``detail``/
``source``/``meta`` (400, 404, 500), a list of strings for 429 (and 403, as Datadog answers a
bad key). ``fail()`` queues answers for a request path to break things on purpose.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import fsspec

from logarchive.testing.servers import Request

API = "/api/v2/model-lab-api"


def error_object(status: int, title: str, detail: str, **source: str) -> dict[str, Any]:
    return {"errors": [{"detail": detail, "meta": {}, "source": source, "status": str(status),
                        "title": title}]}


def write_artifacts(location: str, files: dict[str, bytes],
                    storage_options: dict[str, Any] | None = None) -> None:
    fs, root = fsspec.core.url_to_fs(location, **(storage_options or {}))
    for path, data in files.items():
        target = f"{root.rstrip('/')}/{path}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(target, "wb") as handle:
            handle.write(data)


@dataclass
class ModelLabFake:
    api_key: str
    application_key: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    faults: dict[str, list[tuple[int, Any, dict[str, str]]]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    listing_override: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def add_run(self, run_id: int, status: str, location: str, *, project_id: int = 101,
                **attributes: Any) -> dict[str, Any]:
        """A run resource as seed 004 shows it (every attribute present)."""
        terminal = status in ("completed", "failed", "killed", "unresponsive")
        run = {
            "completed_at": "2026-03-13T11:00:00.000Z" if terminal else None,
            "created_at": "2026-03-13T09:59:00Z",
            "deleted_at": None,
            "descendant_match": False,
            "description": f"Fine-tuning run {run_id}.",
            "duration": 3600.0 if terminal else None,
            "external_url": f"https://lab.example.com/runs/{run_id}",
            "has_children": False,
            "is_pinned": False,
            "metric_summaries": [{"count": 100, "first_step": 0, "key": "accuracy",
                                  "last_step": 99, "latest": 0.91, "max": 0.93, "mean": 0.8,
                                  "min": 0.1, "stddev": 0.12}],
            "mlflow_artifact_location": location,
            "name": f"training-run-{run_id}",
            "owner_id": "3f2b9c1e-0000-4000-8000-00000000abcd",
            "params": [{"key": "algorithm", "value": "gpt4"}, {"key": "lr", "value": "0.01"}],
            "project_id": project_id,
            "started_at": "2026-03-13T10:00:00Z",
            "status": status,
            "tags": [{"key": "model", "value": "opus"}],
            "updated_at": "2026-03-13T11:00:01Z",
            **attributes,
        }
        self.runs[run_id] = run
        return run

    def fail(self, path: str, status: int, body: Any, headers: dict[str, str] | None = None,
             times: int = 1) -> None:
        self.faults.setdefault(path, []).extend([(status, body, headers or {})] * times)

    # --- the server ---

    def __call__(self, request: Request) -> None:
        self.requests.append(request.raw.path)
        if request.method != "GET":
            request.send_json(405, {"errors": ["Method Not Allowed"]})
            return
        if (request.headers.get("DD-API-KEY") != self.api_key
                or request.headers.get("DD-APPLICATION-KEY") != self.application_key):
            request.send_json(403, {"errors": ["Forbidden"]})
            return
        queued = self.faults.get(request.path)
        if queued:
            status, body, headers = queued.pop(0)
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            request.send(status, payload, {"Content-Type": "application/json", **headers})
            return
        if request.path == f"{API}/runs":
            self._list(request)
            return
        match = re.fullmatch(rf"{API}/runs/([^/]+)(/artifacts)?", request.path)
        if match is None:
            request.send_json(404, error_object(404, "Not Found", "no such endpoint"))
            return
        if not match.group(1).isdigit():
            request.send_json(400, error_object(400, "Bad Request", "run_id must be an integer",
                                                parameter="run_id"))
            return
        run_id = int(match.group(1))
        run = self.runs.get(run_id)
        if run is None:
            request.send_json(404, error_object(404, "Not Found", f"run {run_id} not found"))
            return
        if match.group(2):
            self._artifacts(request, run_id, run)
        else:
            request.send_json(200, {"data": {"attributes": run, "id": str(run_id),
                                             "type": "runs"}})

    def _artifacts(self, request: Request, run_id: int, run: dict[str, Any]) -> None:
        sub = request.query.get("path", "").strip("/")
        if ".." in sub.split("/"):
            request.send_json(400, error_object(400, "Bad Request", "invalid path",
                                                parameter="path"))
            return
        if run_id in self.listing_override:
            files = self.listing_override[run_id]
        else:
            fs, root = fsspec.core.url_to_fs(run["mlflow_artifact_location"],
                                             **self.storage_options)
            root = root.rstrip("/")
            fs.invalidate_cache()
            try:
                entries = fs.ls(f"{root}/{sub}" if sub else root, detail=True)
            except FileNotFoundError:
                entries = []
            files = []
            for entry in sorted(entries, key=lambda e: e["name"]):
                relative = entry["name"].rstrip("/")[len(root):].lstrip("/")
                if entry["type"] == "directory":
                    files.append({"is_dir": True, "path": relative})
                else:
                    files.append({"file_size": entry["size"], "is_dir": False,
                                  "path": relative})
        request.send_json(200, {"data": {
            "attributes": {"files": files, "path_in_project": f"runs/{run_id}"},
            "id": str(run_id), "type": "artifacts",
        }})

    def _list(self, request: Request) -> None:
        query = request.query
        try:
            size = int(query.get("page[size]", "10"))
            number = int(query.get("page[number]", "0"))
        except ValueError:
            request.send_json(400, error_object(400, "Bad Request", "page must be an integer",
                                                parameter="page[number]"))
            return
        project = query.get("filter[project_id]")
        matching = [(i, r) for i, r in sorted(self.runs.items())
                    if project is None or str(r["project_id"]) == project]
        page = matching[number * size:(number + 1) * size]
        request.send_json(200, {
            "data": [{"attributes": r, "id": str(i), "type": "runs"} for i, r in page],
            "meta": {"page": {"total_count": len(matching)}},
        })
