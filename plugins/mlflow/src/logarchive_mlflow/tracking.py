"""MLflow tracking server REST API: experiments -> runs/search -> artifacts/list -> download.

- Experiments by name (``GET /api/2.0/mlflow/experiments/get-by-name``) or id
  (``GET /api/2.0/mlflow/experiments/get``); none configured: every active experiment
  (``POST /api/2.0/mlflow/experiments/search``).
- ``POST /api/2.0/mlflow/runs/search`` once per wanted status (the server's filter has no
  ``OR``/``IN`` for status), paginated with ``next_page_token``.
- ``GET /api/2.0/mlflow/artifacts/list`` one level at a time, recursing into directories.
- Download: ``mlflow-artifacts:/<path>`` through the server's proxy
  ``GET /api/2.0/mlflow-artifacts/artifacts/<path>`` (resumed with Range); ``s3://``, ``gs://``,
  ``file://`` and local paths straight from storage with fsspec and ``storage_options``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from logarchive.plugin_api import (
    RunGone, RunRef, SourceError, json_object, parse_time,
)

from logarchive_mlflow.artifacts import (
    FileLocator, check_artifact_path, join_location,
)
from logarchive_mlflow.config import MlflowConfig
from logarchive_mlflow.client import ApiClient, status_classifier

API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
STATUS = {"RUNNING": "running", "SCHEDULED": "pending", "FINISHED": "completed",
          "FAILED": "failed", "KILLED": "killed"}
SEARCH_BATCH = 100  # experiment ids per runs/search request


def mlflow_error(response: httpx.Response) -> str:
    """``RESOURCE_DOES_NOT_EXIST: Run with id=x not found`` from an MLflow error body."""
    try:
        document = response.json()
    except ValueError:
        document = None
    if isinstance(document, dict) and ("error_code" in document or "message" in document):
        return ": ".join(str(document[k]) for k in ("error_code", "message") if document.get(k))
    return response.text.strip()[:300] or response.reason_phrase


def _classify(what: str, *, gone_on_404: bool = True) -> Any:
    return status_classifier(
        f"MLflow {what}", mlflow_error,
        "check auth (basic, or bearer as MLFLOW_TRACKING_TOKEN) and that the server allows this "
        "Host", gone_on_404=gone_on_404,
    )


class Tracking(ApiClient):
    """One MLflow tracking server; what :class:`~logarchive_mlflow.MlflowSource` delegates to."""

    def __init__(self, source_name: str, config: MlflowConfig, context: Any) -> None:
        assert config.tracking_uri is not None
        super().__init__(source_name, config, context, config.tracking_uri, config.auth)

    # --- API calls ---

    def _get(self, path: str, what: str, params: dict[str, Any] | None = None,
             gone_on_404: bool = True) -> dict[str, Any]:
        response = self.client.request("GET", path, params=params,
                                       classify=_classify(what, gone_on_404=gone_on_404))
        return _json(response, what)

    def _post(self, path: str, what: str, body: dict[str, Any]) -> dict[str, Any]:
        # runs/search answers 400 unless the body is declared application/json.
        response = self.client.request("POST", path, json=body, classify=_classify(what),
                                       headers={"Content-Type": "application/json"})
        return _json(response, what)

    def experiments(self) -> Iterator[dict[str, Any]]:
        """The configured experiments (or every active one), each once."""
        seen: set[str] = set()
        for wanted in self.config.experiments or []:
            experiment = self._experiment(wanted)
            if experiment is not None and experiment["experiment_id"] not in seen:
                seen.add(experiment["experiment_id"])
                yield experiment
        if self.config.experiments:
            return
        token = None
        while True:
            body: dict[str, Any] = {"max_results": 1000, "view_type": "ACTIVE_ONLY"}
            if token:
                body["page_token"] = token
            page = self._post(f"{API}/experiments/search", "experiments/search", body)
            for experiment in page.get("experiments") or []:
                if experiment.get("experiment_id") not in seen:
                    seen.add(experiment["experiment_id"])
                    yield experiment
            token = page.get("next_page_token")
            if not token:
                return

    def _experiment(self, wanted: str | int) -> dict[str, Any] | None:
        if isinstance(wanted, str):
            try:
                return self._get(f"{API}/experiments/get-by-name", f"experiment {wanted!r}",
                                 {"experiment_name": wanted})["experiment"]
            except RunGone as exc:
                if not wanted.isdigit():
                    self.log.warning("experiment_not_found", experiment=wanted, error=str(exc))
                    return None
        try:
            return self._get(f"{API}/experiments/get", f"experiment id {wanted}",
                             {"experiment_id": str(wanted)})["experiment"]
        except RunGone as exc:
            self.log.warning("experiment_not_found", experiment=str(wanted), error=str(exc))
            return None

    def search_runs(self, experiment_ids: list[str]) -> Iterator[dict[str, Any]]:
        for start in range(0, len(experiment_ids), SEARCH_BATCH):
            batch = experiment_ids[start:start + SEARCH_BATCH]
            for status in self.config.statuses:
                condition = f"attributes.status = '{status}'"
                if self.config.filter:
                    condition += f" AND {self.config.filter}"
                token = None
                while True:
                    body: dict[str, Any] = {
                        "experiment_ids": batch, "filter": condition,
                        "run_view_type": "ACTIVE_ONLY", "max_results": self.config.max_results,
                    }
                    if token:
                        body["page_token"] = token
                    page = self._post(f"{API}/runs/search", "runs/search", body)
                    yield from page.get("runs") or []
                    token = page.get("next_page_token")
                    if not token:
                        break

    def list_files(self, run_id: str) -> Iterator[tuple[str, int | None]]:
        """``(path, size)`` of every log file of a run, recursing into directories."""
        pending = [""]
        visited = {""}
        while pending:
            directory = pending.pop(0)
            token = None
            while True:
                params = {"run_id": run_id}
                if directory:
                    params["path"] = directory
                if token:
                    params["page_token"] = token
                page = self._get(f"{API}/artifacts/list", f"artifacts of run {run_id}", params)
                for entry in page.get("files") or []:
                    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                        continue
                    path = check_artifact_path(entry["path"].strip("/"))
                    if self.patterns.visit(path, bool(entry.get("is_dir")), visited, pending):
                        size = entry.get("file_size")
                        yield path, int(size) if size is not None else None
                token = page.get("next_page_token")
                if not token:
                    break

    # --- Source ---

    def discover(self) -> Iterator[RunRef]:
        experiments = {e["experiment_id"]: e for e in self.experiments()}
        if not experiments:
            return
        seen: set[str] = set()
        for run in self.search_runs(list(experiments)):
            info = run.get("info") or {}
            run_id = info.get("run_id") or info.get("run_uuid")
            if not run_id or run_id in seen:
                continue
            seen.add(run_id)
            yield from self._run_files(run, experiments.get(info.get("experiment_id"), {}))

    def _run_files(self, run: dict[str, Any], experiment: dict[str, Any]) -> Iterator[RunRef]:
        info, data = run.get("info") or {}, run.get("data") or {}
        run_id = info.get("run_id") or info["run_uuid"]
        artifact_uri = info.get("artifact_uri") or ""
        status = STATUS.get(info.get("status", ""), "unknown")
        try:
            files = list(self.list_files(run_id))
        except RunGone as exc:
            self.log.warning("run_artifacts_not_found", run_id=run_id, error=str(exc))
            return
        base = {
            "api": "mlflow",
            "experiment_id": info.get("experiment_id"),
            "experiment_name": experiment.get("name"),
            "run_id": run_id,
            "run_name": info.get("run_name"),
            "user_id": info.get("user_id"),
            "status": info.get("status"),
            "lifecycle_stage": info.get("lifecycle_stage"),
            "start_time": info.get("start_time"),
            "end_time": info.get("end_time"),
            "params": _pairs(data.get("params")),
            "tags": _pairs(data.get("tags")),
            "metrics": {m["key"]: m.get("value") for m in data.get("metrics") or []
                        if isinstance(m, dict) and "key" in m},
            "artifact_uri": artifact_uri,
        }
        for path, size in files:
            yield RunRef(
                source=self.name,
                fields={"experiment_id": str(info.get("experiment_id")), "run_id": run_id,
                        "artifact_path": path},
                status=status,
                started=parse_time(info.get("start_time")),
                completed=parse_time(info.get("end_time")),
                metadata={**base, "artifact_path": path, "file_size": size},
                locator=self._locator(artifact_uri, path, size),
                size_hint=size,
            )

    def _locator(self, artifact_uri: str, path: str, size: int | None) -> FileLocator:
        if artifact_uri.startswith("mlflow-artifacts:"):
            # mlflow-artifacts:/1/<run>/artifacts or mlflow-artifacts://host:port/1/<run>/...
            root = urlsplit(artifact_uri).path.strip("/")
            target = f"{root}/{check_artifact_path(path)}" if root else path
            return FileLocator("http", f"{PROXY}/{quote(target, safe='/')}", size)
        if not artifact_uri:
            raise SourceError("run has no artifact_uri")
        return FileLocator("fsspec", join_location(artifact_uri, path), size)

    @contextmanager
    def open(self, run: RunRef) -> Iterator[Iterator[bytes]]:
        locator: FileLocator = run.locator
        if locator.kind != "http":
            with super().open(run) as chunks:
                yield chunks
            return
        what = self.describe(run)
        with self.client.download(locator.url, classify=_classify(what),
                                  size=locator.size) as chunks:
            yield chunks  # declares the listed size: a body of another length fails the run


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    return json_object(response, f"MLflow {what}")


def _pairs(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {str(i["key"]): i.get("value") for i in items if isinstance(i, dict) and "key" in i}
