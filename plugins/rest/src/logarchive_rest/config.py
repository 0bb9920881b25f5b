"""Config of the ``rest`` source: two presets (seed 000, seed 002) and a generic templated form."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from logarchive.plugin_api import (
    AuthConfig, HttpBaseUrl, HttpOptions, ListEndpoint, RunRef, SourceConfig,
)

TRAINING = "training-metrics"
WORKFLOW = "workflow-jobs"
TRAINING_URL = "/api/v1/models/{model_id}/training-metrics/logs/download"
TRAINING_LEGACY_URL = "/api/v1/models/{model_id}/training/metrics/logs/download"
WORKFLOW_URL = "/workflows/{workflow_id}/jobs/{job_id}/logs/raw"
PRESET_FIELDS = {TRAINING: ("model_id", "run_id"), WORKFLOW: ("workflow_id", "job_id")}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

Status = Literal["completed", "failed", "killed", "unknown"]


class RestConfig(SourceConfig):
    """``[sources.NAME]`` with ``type = "rest"``."""

    type: Literal["rest"] = "rest"
    preset: Literal["training-metrics", "workflow-jobs"] | None = Field(
        default=None,
        description="A known API shape: training-metrics (model training log download, "
        "Bearer token) or workflow-jobs (workflow job raw logs, session cookie). Leave unset "
        "for the generic form (url, params, ...).",
        examples=["training-metrics"],
    )
    base_url: HttpBaseUrl = Field(
        description="Scheme, host and optional path prefix of the API.",
        examples=["https://ml.example.com"],
    )
    auth: AuthConfig | None = Field(
        default=None, description="bearer | cookie | basic | headers (secrets: use ${ENV}).",
        examples=[{"bearer": "${TRAINING_API_TOKEN}"}],
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra non-secret "
                                    "request headers.", examples=[{"Accept": "text/plain"}])
    http: HttpOptions = Field(default_factory=HttpOptions,
                              description="Timeouts (read_timeout = stall timeout), TLS, retries.")
    include_statuses: list[Status] = Field(
        default=["completed", "failed", "killed", "unknown"],
        description="Run statuses that are exported. Explicit runs/jobs have status unknown "
        "until the server answers (a not-finished one is skipped and retried later).",
        examples=[["completed", "failed", "unknown"]],
    )
    # training-metrics
    models: list[str] = Field(
        default_factory=list,
        description="training-metrics: models whose latest completed run is exported (the run id "
        "is learnt from Content-Disposition, so each run is archived once).",
        examples=[["mdl-7f3a", "mdl-91bc"]],
    )
    format: Literal["txt", "json"] = Field(
        default="txt", description="training-metrics: what is asked of the server (json is "
        "streamed and turned back into lines).", examples=["txt"],
    )
    legacy_path: bool = Field(default=False, description="training-metrics: use the "
                              ".../training/metrics/logs/download alias.", examples=[False])
    # workflow-jobs
    jobs: list[dict[str, str]] = Field(
        default_factory=list, description="workflow-jobs: jobs by workflow_id and job_id.",
        examples=[[{"workflow_id": "01JGXYZ", "job_id": "01JGABC"}]],
    )
    # every form
    runs: list[dict[str, str]] = Field(
        default_factory=list,
        description="Explicit runs, each a table of run fields (training-metrics: model_id and "
        "run_id; workflow-jobs: workflow_id and job_id; generic: the url's placeholders).",
        examples=[[{"model_id": "mdl-7f3a", "run_id": "run-20260313-a4b9c2"}]],
    )
    discover: ListEndpoint | None = Field(
        default=None,
        description="A paginated list endpoint that finds runs without editing the config "
        "(training-metrics: items mapping only model_id mean 'latest run of that model').",
    )
    # generic
    url: str | None = Field(
        default=None, description="generic: log URL template with run fields, relative to "
        "base_url.", examples=["/api/jobs/{job_id}/log"],
    )
    params: dict[str, str] = Field(default_factory=dict, description="generic: query "
                                   "parameters (values may use run fields).",
                                   examples=[{"attempt": "{attempt}"}])
    response: Literal["text", "json-array"] = Field(
        default="text", description="generic: text (bytes as they come) or json-array "
        "(a JSON array of line objects, turned back into lines).", examples=["text"],
    )
    json_line_field: str = Field(default="message", description="Key holding a line's text "
                                 "in JSON-array responses.", examples=["message"])
    error_trailer: str | None = Field(
        default=None, description="generic: a line the server appends inside a 200 stream when "
        "it failed (the export of that run then fails).",
        examples=["--- ERROR: failed to fetch logs ---"],
    )
    not_ready_status: list[int] = Field(
        default_factory=list, description="generic: HTTP statuses meaning 'not finished yet' "
        "(skipped, picked up later).", examples=[[409]],
    )
    gone_status: list[int] = Field(
        default=[404, 410], description="generic: HTTP statuses meaning the log is gone "
        "(recorded, not retried).", examples=[[404, 410]],
    )
    range_resume: bool = Field(
        default=True, description="Resume a dropped stream with Range (else re-read from the "
        "start and skip what was delivered).", examples=[True],
    )

    @field_validator("runs", "jobs")
    @classmethod
    def _valid_fields(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        for entry in value:
            RunRef(source="check", fields=entry)  # raises for reserved/empty field names
            for key in entry:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                    raise ValueError(f"run field name {key!r} must be a plain name")
        return value

    @model_validator(mode="after")
    def _shape(self) -> RestConfig:
        generic_keys = {"url": self.url is not None, "params": bool(self.params),
                        "response": self.response != "text",
                        "error_trailer": self.error_trailer is not None,
                        "not_ready_status": bool(self.not_ready_status)}
        if self.preset is None:
            for key, used in {"models": bool(self.models), "jobs": bool(self.jobs),
                              "format": self.format != "txt",
                              "legacy_path": self.legacy_path}.items():
                if used:
                    raise ValueError(f"{key} belongs to a preset; set preset or remove {key}")
            if self.url is None:
                raise ValueError("the generic form needs url (or set preset = "
                                 "\"training-metrics\" | \"workflow-jobs\")")
            needed = set(_PLACEHOLDER.findall(self.url))
            for value in self.params.values():
                needed |= set(_PLACEHOLDER.findall(value))
            for entry in self.runs:
                missing = needed - set(entry)
                if missing:
                    raise ValueError(f"run {entry} lacks {sorted(missing)} used by url/params")
            if self.discover is not None:
                missing = needed - set(self.discover.fields)
                if missing:
                    raise ValueError(f"discover.fields lacks {sorted(missing)} used by url/params")
            return self
        for key, used in generic_keys.items():
            if used:
                raise ValueError(f"{key} is for the generic form, not preset {self.preset!r}")
        fields = PRESET_FIELDS[self.preset]
        if self.preset == TRAINING:
            if self.jobs:
                raise ValueError("jobs is for preset workflow-jobs; use models or runs")
        else:
            if self.models or self.format != "txt" or self.legacy_path:
                raise ValueError("models, format and legacy_path are for preset training-metrics")
        for entry in [*self.runs, *self.jobs]:
            if set(entry) != set(fields):
                raise ValueError(f"each run of preset {self.preset} has exactly "
                                 f"{' and '.join(fields)} (got {sorted(entry)})")
        if self.discover is not None:
            required = {"model_id"} if self.preset == TRAINING else set(fields)
            missing = required - set(self.discover.fields)
            if missing:
                raise ValueError(f"discover.fields must map {sorted(missing)}")
        return self
