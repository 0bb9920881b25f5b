"""Source ``obs``: ModelArts training-task logs through temporary OBS links (seed 001).

For each training job (listed in the config, or every job of the project from the training-jobs
list endpoint): the job details (``GET /v2/{project_id}/training-jobs/{id}``) give the status and
``status.tasks`` (``worker-0`` when absent); each task is one run with the fields ``project_id``,
``training_job_id``, ``task_id``. Only finished jobs are exported (``include_statuses``).

The log of a task: ``GET .../tasks/{task_id}/logs/url`` with ``Content-Type:
application/octet-stream`` answers ``{"obs_url": "<presigned link>"}``; the link is streamed with
the core download (Range resume, Content-Length check, stall timeout). A link expires (about five
minutes): a 401/403 from the storage or a dropped connection asks the API for a fresh link and
resumes at the same byte. The token is sent as ``X-Auth-Token`` to the API only, never to the
storage; the link's signature never appears in a log line, error or manifest.

ModelArts job phases -> logarchive statuses: Completed -> completed; Failed, Abnormal -> failed;
Terminated -> killed; Creating, Pending -> pending; Running, Terminating -> running; anything
else -> unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import Field

from logarchive.plugin_api import (
    TERMINAL, HttpBaseUrl, HttpClient, HttpOptions, Retryable, RunGone, RunRef, Secret, Source,
    SourceConfig, SourceError, describe_response_head, hookimpl, json_object, parse_time,
)

PHASES = {
    "completed": "completed", "failed": "failed", "abnormal": "failed",
    "terminated": "killed", "creating": "pending", "pending": "pending",
    "running": "running", "terminating": "running",
}
DEFAULT_TASK = "worker-0"

__all__ = ["ObsConfig", "ObsSource", "PHASES", "logarchive_register_sources"]


class ObsConfig(SourceConfig):
    """``[sources.NAME]`` with ``type = "obs"``."""

    type: Literal["obs"] = "obs"
    endpoint: HttpBaseUrl = Field(description="ModelArts API endpoint.",
                                  examples=["https://modelarts.cn-north-4.myhuaweicloud.com"])
    project_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$", description="Project ID.",
                            examples=["0a1b2c"])
    token: Secret = Field(description="IAM token, sent as X-Auth-Token.",
                          examples=["${MODELARTS_TOKEN}"])
    training_jobs: list[str] = Field(
        default_factory=list, description="Training job IDs; empty: every job of the project "
        "(training-jobs list endpoint, paginated).",
        examples=[["2cd88daa-31a4-40a8-a58f-d186b0e93e4f"]],
    )
    tasks: list[str] = Field(
        default_factory=list, description="Task IDs to export instead of the job's "
        "status.tasks.", examples=[["worker-0", "worker-1"]],
    )
    link_content_type: Literal["application/octet-stream", "text/plain"] = Field(
        default="application/octet-stream", description="Content-Type of the link request: "
        "application/octet-stream asks for the download link, text/plain for the preview link.",
        examples=["application/octet-stream"],
    )
    page_size: int = Field(default=50, ge=1, le=50, description="Jobs per page of the list "
                           "endpoint.", examples=[50])
    max_pages: int = Field(default=200, ge=1, description="Most list pages read per export.",
                           examples=[200])
    http: HttpOptions = Field(default_factory=HttpOptions,
                              description="Timeouts (read_timeout = stall timeout), TLS, retries "
                              "for the API and the storage.")


class ObsSource(Source):
    type = "obs"
    description = "ModelArts training-task logs via temporary OBS links; one run per task."
    Config = ObsConfig

    def __init__(self, name: str, config: ObsConfig, context: Any) -> None:
        super().__init__(name, config, context)
        self.api = HttpClient(config.endpoint, options=config.http, stop=context.stop,
                              log=self.log,
                              headers={"X-Auth-Token": config.token.get_secret_value()})
        self.storage = HttpClient(options=config.http, stop=context.stop, log=self.log)
        self.base = f"/v2/{quote(config.project_id, safe='')}/training-jobs"

    def close(self) -> None:
        self.api.close()
        self.storage.close()

    # -- discovery ---------------------------------------------------------------------------

    def discover(self) -> Iterator[RunRef]:
        if self.config.training_jobs:
            for job_id in self.config.training_jobs:
                try:
                    job = self._job(job_id)
                except RunGone as exc:
                    self.log.warning("training_job_not_found", training_job_id=job_id,
                                     error=str(exc))
                    continue
                yield from self._runs(job, job_id)
            return
        for item in self._list_jobs():
            job_id = str(_get(item, "metadata", "id") or "")
            if not job_id:
                continue
            phase = _get(item, "status", "phase")
            if _status(phase) in TERMINAL and not self.config.tasks \
                    and not _get(item, "status", "tasks"):
                try:
                    item = self._job(job_id)  # the list may omit tasks: ask the details
                except RunGone:
                    continue
            yield from self._runs(item, job_id)

    def _job(self, job_id: str) -> dict[str, Any]:
        response = self.api.request("GET", f"{self.base}/{quote(job_id, safe='')}",
                                    classify=lambda r: self._classify(r, f"training job {job_id}"))
        return _json(response, f"training job {job_id}")

    def _list_jobs(self) -> Iterator[dict[str, Any]]:
        """``POST /v2/{project_id}/training-job-searches`` page by page (``offset`` is the page
        index, ``limit`` the page size, per the ModelArts API reference)."""
        url = f"/v2/{quote(self.config.project_id, safe='')}/training-job-searches"
        limit = self.config.page_size
        seen = 0
        for page in range(self.config.max_pages):
            response = self.api.request("POST", url, json={"offset": page, "limit": limit},
                                        classify=lambda r: self._classify(r, "training job list"))
            document = _json(response, "training job list")
            items = document.get("items") or []
            if not isinstance(items, list):
                raise SourceError("training job list: items is not an array")
            yield from (i for i in items if isinstance(i, dict))
            seen += len(items)
            total = document.get("total")
            if len(items) < limit or (isinstance(total, int) and seen >= total):
                return
        self.log.warning("training_job_list_truncated", max_pages=self.config.max_pages)

    def _runs(self, job: dict[str, Any], job_id: str) -> Iterator[RunRef]:
        status = _status(_get(job, "status", "phase"))
        started = parse_time(_get(job, "status", "start_time"))
        duration = _get(job, "status", "duration")
        completed = None
        if started is not None and isinstance(duration, (int, float)) and status in TERMINAL:
            completed = started + timedelta(milliseconds=duration)
        tasks = self.config.tasks or _task_ids(_get(job, "status", "tasks")) or [DEFAULT_TASK]
        metadata = {k: v for k, v in {
            "name": _get(job, "metadata", "name"),
            "phase": _get(job, "status", "phase"),
            "secondary_phase": _get(job, "status", "secondary_phase"),
        }.items() if v is not None}
        for task in tasks:
            yield RunRef(self.name, {"project_id": self.config.project_id,
                                     "training_job_id": job_id, "task_id": task},
                         status=status, started=started, completed=completed,
                         metadata=metadata)

    # -- streaming ---------------------------------------------------------------------------

    def _fresh_link(self, run: RunRef) -> str:
        job, task = run.fields["training_job_id"], run.fields["task_id"]
        what = f"training job {job} task {task}"
        response = self.api.request(
            "GET", f"{self.base}/{quote(job, safe='')}/tasks/{quote(task, safe='')}/logs/url",
            headers={"Content-Type": self.config.link_content_type},
            classify=lambda r: self._classify(r, what),
        )
        link = _json(response, what).get("obs_url")
        if not isinstance(link, str) or not link.startswith(("http://", "https://")):
            raise SourceError(f"{what}: the API answered without an obs_url link")
        # No register_secret(link signature) here: one registered value per link would grow
        # the redaction pattern for the life of the process. The link never leaves this
        # object; every URL that reaches a message goes through redact_url / redact.
        self.log.info("obs_link_issued", run=run.key)
        return link

    @contextmanager
    def open(self, run: RunRef) -> Iterator[Iterator[bytes]]:
        what = f"task {run.fields['task_id']} of training job {run.fields['training_job_id']}"

        def classify(response: httpx.Response) -> None:
            if response.status_code in (401, 403):
                # The link expired (or was refused) before any byte: ask for a fresh one.
                raise Retryable(SourceError(f"{what}: OBS refused the link "
                                            f"(HTTP {response.status_code}, expired?)",
                                            retriable=True))
            if response.status_code == 404:
                raise RunGone(f"{what}: log object not found or purged at source (HTTP 404)")

        with self.storage.download(lambda: self._fresh_link(run), classify=classify) as chunks:
            yield chunks  # a SourceStream: its declared length and ETag reach the manifest

    def _classify(self, response: httpx.Response, what: str) -> None:
        code = response.status_code
        if code < 400:
            return
        detail = _error_detail(response)
        if code == 401:
            raise SourceError(f"{what}: token invalid or expired (HTTP 401{detail}); renew "
                              f"sources.{self.name}.token", fatal_for_source=True)
        if code == 403:
            raise SourceError(f"{what}: forbidden (HTTP 403{detail}): the token's user needs "
                              f"access to project {self.config.project_id}",
                              fatal_for_source=True)
        if code == 404:
            raise RunGone(f"{what}: not found or purged at source (HTTP 404{detail})")


def _error_detail(response: httpx.Response) -> str:
    """``, ModelArts.0104: message`` from a ModelArts error body, if any."""
    try:
        response.read()
        body = response.json()
    except (ValueError, httpx.HTTPError):
        text = describe_response_head(response)
        return f": {text[-200:]}" if text else ""
    if isinstance(body, dict) and (body.get("error_code") or body.get("error_msg")):
        return f", {body.get('error_code', '')}: {str(body.get('error_msg', ''))[:200]}"
    return ""


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    return json_object(response, what)


def _get(document: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document


def _status(phase: Any) -> str:
    return PHASES.get(str(phase).strip().lower(), "unknown") if phase is not None else "unknown"


def _task_ids(tasks: Any) -> list[str]:
    """``status.tasks`` as strings (``["worker-0"]``) or objects (``[{"task": "worker-0"}]``)."""
    out: list[str] = []
    for task in tasks or []:
        if isinstance(task, str) and task:
            out.append(task)
        elif isinstance(task, dict):
            for key in ("task", "task_id", "name", "id"):
                if isinstance(task.get(key), str) and task[key]:
                    out.append(task[key])
                    break
    return list(dict.fromkeys(out))


@hookimpl
def logarchive_register_sources(register: Any) -> None:
    register(ObsSource)
