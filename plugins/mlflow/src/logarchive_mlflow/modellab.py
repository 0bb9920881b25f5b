"""Model Lab API (seeds 003 and 004): runs by id or by project, artifacts read through fsspec.

- ``GET /api/v2/model-lab-api/runs/{run_id}`` (seed 004): the run, its status, params, tags,
  metric summaries, times, owner and ``mlflow_artifact_location``.
- ``GET /api/v2/model-lab-api/runs/{run_id}/artifacts?path=`` (seed 003): one directory level
  of the run's artifacts; directories are listed in turn.
- ``GET /api/v2/model-lab-api/runs?filter[project_id]=&page[size]=&page[number]=``: discovery
  by project (configurable: see :class:`~logarchive_mlflow.config.DiscoverConfig`).

Errors are JSON:API documents (``errors[]`` of objects with ``title``/``detail``; a 429 carries
a list of strings); they are surfaced as they are. Both key headers are secrets.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any
from urllib.parse import quote

import httpx

from logarchive.plugin_api import (
    TERMINAL, AuthConfig, Pages, RunGone, RunRef, SourceError, item_runs, json_object,
    parse_time, probe,
)

from logarchive_mlflow.artifacts import (
    FileLocator, check_artifact_path, join_location,
)
from logarchive_mlflow.config import MlflowConfig
from logarchive_mlflow.client import ApiClient, status_classifier

API = "/api/v2/model-lab-api"
KEY_HEADERS = "DD-API-KEY (api_key) and DD-APPLICATION-KEY (application_key)"
STATUS = {
    "pending": "pending", "running": "running", "paused": "running",
    "completed": "completed", "failed": "failed", "killed": "killed",
}


def jsonapi_errors(response: httpx.Response) -> str:
    """The JSON:API ``errors`` of a response as one line: ``Title: detail (parameter: x)``."""
    try:
        document = response.json()
    except ValueError:
        document = None
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not errors:
        text = response.text.strip()[:300]
        return text or response.reason_phrase
    parts = []
    for error in errors:
        if isinstance(error, str):
            parts.append(error)
            continue
        if not isinstance(error, dict):
            parts.append(str(error))
            continue
        title, detail = error.get("title"), error.get("detail")
        text = ": ".join(str(x) for x in (title, detail) if x) or "error"
        source = error.get("source")
        if isinstance(source, dict):
            where = ", ".join(f"{k}: {v}" for k, v in source.items() if isinstance(v, str) and v)
            if where:
                text += f" ({where})"
        parts.append(text)
    return "; ".join(parts)


def _classify(what: str, *, gone_on_404: bool = True) -> Any:
    return status_classifier(
        f"Model Lab {what}", jsonapi_errors,
        f"check the {KEY_HEADERS} headers: a valid API key and an application key allowed to "
        "read Model Lab runs", gone_on_404=gone_on_404,
    )


class ModelLab(ApiClient):
    """One Model Lab site; what :class:`~logarchive_mlflow.MlflowSource` delegates to."""

    def __init__(self, source_name: str, config: MlflowConfig, context: Any) -> None:
        auth = AuthConfig(headers={"DD-API-KEY": config.api_key,
                                   "DD-APPLICATION-KEY": config.application_key})
        super().__init__(source_name, config, context, config.base_url, auth)

    # --- API calls ---

    def get_run(self, run_id: int | str) -> dict[str, Any]:
        response = self.client.request("GET", f"{API}/runs/{quote(str(run_id), safe='')}",
                                       classify=_classify(f"run {run_id}"))
        return _resource(response, "runs", f"run {run_id}")

    def list_project_runs(self, project_id: int) -> Iterator[dict[str, Any]]:
        """Every run of a project, page by page, each once; a page of only runs seen before
        ends the listing (a server that ignores the page number)."""
        cfg = self.config.discover
        seen: set[str] = set()
        pages = Pages(f"Model Lab runs of project {project_id}", cfg.max_pages,
                      self.key("discover.max_pages"))
        for page in count(cfg.first_page):
            pages.next()
            params = {**cfg.params, cfg.project_param: str(project_id),
                      cfg.page_size_param: str(cfg.page_size), cfg.page_number_param: str(page)}
            response = self.client.request(
                "GET", cfg.path, params=params,
                classify=_classify(f"runs of project {project_id}", gone_on_404=False),
            )
            data = _json(response, f"runs of project {project_id}").get("data")
            if not isinstance(data, list):
                raise SourceError(f"Model Lab runs of project {project_id}: the response has no "
                                  "data list; is discover.path a run list endpoint?")
            fresh = [item for item in data
                     if isinstance(item, dict) and str(item.get("id")) not in seen]
            for item in fresh:
                seen.add(str(item.get("id")))
                yield item
            if len(data) < cfg.page_size or not fresh:
                return

    def list_files(self, run_id: str) -> Iterator[tuple[str, int | None, str | None]]:
        """``(path, size, path_in_project)`` of every log file of a run, walking directories."""
        pending = [""]
        visited = {""}
        while pending:
            directory = pending.pop(0)
            params = {"path": directory} if directory else None
            what = f"artifacts of run {run_id}" + (f" under {directory!r}" if directory else "")
            response = self.client.request(
                "GET", f"{API}/runs/{quote(run_id, safe='')}/artifacts", params=params,
                classify=_classify(what),
            )
            attributes = _resource(response, "artifacts", what).get("attributes") or {}
            files = attributes.get("files")
            if not isinstance(files, list):
                raise SourceError(f"Model Lab {what}: the response has no files list")
            in_project = attributes.get("path_in_project")
            for entry in files:
                if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                    continue
                path = entry["path"].strip("/")
                if directory and not path.startswith(directory + "/"):
                    path = f"{directory}/{path}"  # a server that answers relative names
                check_artifact_path(path)
                if self.patterns.visit(path, bool(entry.get("is_dir")), visited, pending):
                    size = entry.get("file_size")
                    yield path, size if isinstance(size, int) else None, in_project

    # --- Source ---

    def check(self) -> str:
        """The API answers and accepts the keys: the first configured run (a 404 still proves
        both), else the first page of the first project's runs. No artifact is read."""
        if self.config.runs:
            run_id = self.config.runs[0]
            return probe(lambda: self.get_run(run_id), f"run {run_id}")
        if not self.config.projects:
            raise NotImplementedError  # nothing to ask: reported as not checked
        project_id = self.config.projects[0]
        return probe(lambda: next(self.list_project_runs(project_id), None),
                     f"project {project_id}: run list")

    def discover(self) -> Iterator[RunRef]:
        runs: dict[str, dict[str, Any]] = {}
        for run_id in self.config.runs:
            try:
                runs[str(run_id)] = self.get_run(run_id)
            except RunGone as exc:
                self.log.warning("run_not_found", run_id=run_id, error=str(exc))
        for project_id in self.config.projects:
            for item in self.list_project_runs(project_id):
                run_id = str(item.get("id"))
                if run_id in runs:
                    continue
                attributes = item.get("attributes") or {}
                if "status" not in attributes or "mlflow_artifact_location" not in attributes:
                    try:
                        item = self.get_run(run_id)
                    except RunGone as exc:
                        self.log.warning("run_not_found", run_id=run_id, error=str(exc))
                        continue
                runs[run_id] = item
        for run_id, resource in runs.items():
            yield from item_runs(lambda r, i=run_id: self._run_files(i, r), resource,
                                 what=f"run {run_id!r}", log=self.log, skipped=self.skipped)

    def _run_files(self, run_id: str, resource: dict[str, Any]) -> Iterator[RunRef]:
        attributes = resource.get("attributes") or {}
        raw_status = str(attributes.get("status") or "")
        status = self.status(raw_status)
        location = attributes.get("mlflow_artifact_location")
        if not isinstance(location, str) or not location:
            self.log.warning("run_without_artifact_location", run_id=run_id)
            return
        try:
            files = list(self.list_files(run_id))
        except RunGone as exc:
            self.log.warning("run_artifacts_not_found", run_id=run_id, error=str(exc))
            return
        if not files and status in TERMINAL:
            self.log.info("run_has_no_log_artifacts", run_id=run_id,
                          patterns=list(self.config.artifacts))
        completed = parse_time(attributes.get("completed_at"))
        if completed is None and status in TERMINAL:
            completed = parse_time(attributes.get("updated_at"))
        base = {
            "api": "modellab",
            "run_id": run_id,
            "name": attributes.get("name"),
            "description": attributes.get("description"),
            "status": raw_status,
            "project_id": attributes.get("project_id"),
            "owner_id": attributes.get("owner_id"),
            "params": _pairs(attributes.get("params")),
            "tags": _pairs(attributes.get("tags")),
            "metric_summaries": attributes.get("metric_summaries") or [],
            "created_at": attributes.get("created_at"),
            "started_at": attributes.get("started_at"),
            "completed_at": attributes.get("completed_at"),
            "updated_at": attributes.get("updated_at"),
            "deleted_at": attributes.get("deleted_at"),
            "duration": attributes.get("duration"),
            "external_url": attributes.get("external_url"),
            "mlflow_artifact_location": location,
        }
        project = attributes.get("project_id")
        for path, size, in_project in files:
            fields = {"run_id": run_id, "artifact_path": path}
            if project is not None:
                fields = {"project_id": str(project), **fields}
            yield RunRef(
                source=self.name,
                fields=fields,
                status=status,
                started=parse_time(attributes.get("started_at")),
                completed=completed,
                metadata={**base, "artifact_path": path, "file_size": size,
                          "path_in_project": in_project},
                locator=FileLocator("fsspec", join_location(location, path), size),
                size_hint=size,
            )

    def status(self, raw: str) -> str:
        if raw == "unresponsive":
            return self.config.unresponsive
        return STATUS.get(raw, "unknown")


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    return json_object(response, f"Model Lab {what}")


def _resource(response: httpx.Response, kind: str, what: str) -> dict[str, Any]:
    data = _json(response, what).get("data")
    if not isinstance(data, dict):
        raise SourceError(f"Model Lab {what}: the response has no data object")
    if data.get("type") not in (kind, None):
        raise SourceError(f"Model Lab {what}: expected a {kind!r} resource, got "
                          f"{data.get('type')!r}")
    return data


def _pairs(items: Any) -> dict[str, Any]:
    """``[{"key": k, "value": v}, ...]`` as ``{k: v}``."""
    if not isinstance(items, list):
        return {}
    return {str(i["key"]): i.get("value") for i in items if isinstance(i, dict) and "key" in i}
