"""The source systems' download APIs, answered from the archive, as their documents describe
them (``/work/shared/seeds``: seed 000 training logs, seed 002 workflow job raw logs).

Seed 000: ``GET /api/v1/models/{model_id}/training-metrics/logs/download`` and the alias
``.../training/metrics/logs/download``; ``run_id`` (default: the most recently completed run of
the model in the archive), ``format=txt|json`` (default txt); ``Content-Type: text/plain`` or
``application/json``; ``Content-Disposition: attachment; filename="training-log-<run_id>.<ext>"``;
400 for another format, 404 for an unknown model or run. A run is one whose manifest has the
fields ``model_id`` (and ``run_id``).

Seed 002: ``GET /workflows/{workflow_id}/jobs/{job_id}/logs/raw``: ``text/plain``,
``attachment; filename="{job_id}-logs.txt"``, streamed; 400 unless the job's status is
completed or failed, 404 for an unknown workflow or job; a read error or an object that does not
match its manifest appends ``--- ERROR: failed to fetch logs ---`` and the reason.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from logarchive.serve.logs import IntegrityError

TRAINING_PATHS = ("/api/v1/models/{model_id}/training-metrics/logs/download",
                  "/api/v1/models/{model_id}/training/metrics/logs/download")
WORKFLOW_PATH = "/workflows/{workflow_id}/jobs/{job_id}/logs/raw"
TRAILER = b"--- ERROR: failed to fetch logs ---\n"
NOT_FOUND_000 = ("The model_id or run_id cannot be found, or logs were purged/expired per "
                 "retention policies.")
FINISHED_002 = ("completed", "failed", "unknown")  # unknown: an explicit job the API served
# The routes as the seeds' servers match them: on the raw path, so a model id holding an encoded
# "/" (mdl%2F..) is an unknown model (seed 404), not an unknown route.
RAW_TRAINING = re.compile(rb"^/api/v1/models/[^/]+/training(?:-metrics|/metrics)/logs/download$")


def unrouted(request: Any) -> Any:
    """The answer to a request no route matched whose raw path is seed 000's (or None)."""
    from logarchive.serve.app import json_error

    if not RAW_TRAINING.match(request.scope.get("raw_path") or b""):
        return None
    if request.query_params.get("format", "txt") not in ("txt", "json"):
        return json_error(400, "Bad Request", "You provided an invalid format query parameter.")
    return json_error(404, "Not Found", NOT_FOUND_000)


def routes(served: Any) -> list[Route]:
    from logarchive.serve.app import attachment, json_error, log_response

    async def training(request: Request) -> Response:
        model_id = request.path_params["model_id"]
        fmt = request.query_params.get("format", "txt")
        if fmt not in ("txt", "json"):
            return json_error(400, "Bad Request",
                              "You provided an invalid format query parameter.")
        run_id = request.query_params.get("run_id")
        fields = {"model_id": model_id} if run_id is None else {"model_id": model_id,
                                                                  "run_id": run_id}
        statuses = ("completed",) if run_id is None else ()
        row = await run_in_threadpool(served.latest, fields, statuses)
        if row is None or "run_id" not in row.fields:
            return json_error(404, "Not Found", NOT_FOUND_000)
        name = f"training-log-{row.fields['run_id']}.{fmt}"
        return log_response(served, row, fmt, attachment(name))

    async def workflow(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        fields = {"workflow_id": request.path_params["workflow_id"], "job_id": job_id}
        row = await run_in_threadpool(served.latest, fields)
        if row is None:
            return _text(404, b"Workflow or job not found\n")
        if row.status not in FINISHED_002:
            return _text(400, b"Job is not yet completed (status must be COMPLETED or FAILED)\n")
        return log_response(served, row, "txt", attachment(f"{job_id}-logs.txt"), _trailer)

    return [*(Route(path, training, methods=["GET"]) for path in TRAINING_PATHS),
            Route(WORKFLOW_PATH, workflow, methods=["GET"])]


def _trailer(error: IntegrityError) -> bytes:
    return TRAILER + str(error).encode() + b"\n"


def _text(status: int, body: bytes) -> Response:
    return Response(body, status, headers={"content-type": "text/plain"})
