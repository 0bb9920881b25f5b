"""Config of the ``mlflow`` source: one table, two APIs (``api = "modellab" | "mlflow"``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from logarchive.plugin_api import AuthConfig, HttpBaseUrl, HttpOptions, Secret, SourceConfig

MODELLAB_KEYS = frozenset({"base_url", "api_key", "application_key", "runs", "projects",
                           "discover", "unresponsive"})
MLFLOW_KEYS = frozenset({"tracking_uri", "auth", "experiments", "statuses", "filter",
                         "max_results", "max_pages"})
MLFLOW_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")


class DiscoverConfig(BaseModel):
    """How Model Lab runs are listed when ``projects`` is given (page-number pagination)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(default="/api/v2/model-lab-api/runs",
                      description="List endpoint, relative to base_url.",
                      examples=["/api/v2/model-lab-api/runs"])
    project_param: str = Field(default="filter[project_id]",
                               description="Query parameter that selects the project.",
                               examples=["filter[project_id]"])
    page_size_param: str = Field(default="page[size]", description="Page size parameter.",
                                 examples=["page[size]"])
    page_number_param: str = Field(default="page[number]", description="Page number parameter.",
                                   examples=["page[number]"])
    first_page: int = Field(default=0, ge=0, description="Number of the first page.",
                            examples=[0])
    page_size: int = Field(default=100, ge=1, le=1000, description="Runs per page.",
                           examples=[100])
    max_pages: int = Field(default=1000, ge=1,
                           description="Most pages read per project; a longer listing fails "
                           "naming this key.",
                           examples=[1000])
    params: dict[str, str] = Field(
        default_factory=dict, description="Extra query parameters of every list request.",
        examples=[{"filter[status]": "completed"}],
    )


class MlflowConfig(SourceConfig):
    """Log artifacts of Model Lab runs (``api = "modellab"``) or of MLflow tracking server runs
    (``api = "mlflow"``). One run per log file; only the keys of the chosen API are allowed."""

    type: Literal["mlflow"] = "mlflow"
    api: Literal["modellab", "mlflow"] = Field(
        description="modellab: Datadog Model Lab API (runs by id or project); mlflow: an MLflow "
        "tracking server's REST API.", examples=["modellab"],
    )
    artifacts: list[str] = Field(
        default=["*.log"], min_length=1,
        description="Glob patterns of the artifact files that are logs, relative to the run's "
        "artifact root. `**` spans directories; a pattern without '/' matches the file name at "
        "any depth; a leading '/' anchors it to the root.",
        examples=[["logs/**/*.log", "*.txt"]],
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to fsspec for s3://, gs://, file:// artifact locations "
        "(endpoint, credentials...).",
        examples=[{"client_kwargs": {"endpoint_url": "https://s3.example.com"}}],
    )
    http: HttpOptions = Field(default_factory=HttpOptions,
                              description="Timeouts, TLS and retries of the API.")
    max_depth: int = Field(
        default=32, ge=1,
        description="Deepest artifact directory listed (1: the root's own directories); a run "
        "whose artifacts nest deeper is skipped with a warning naming this key.",
        examples=[32],
    )

    # --- api = "modellab" ---
    base_url: HttpBaseUrl = Field(
        default="https://api.datadoghq.com",
        description="[modellab] API site (api.datadoghq.eu, api.us3.datadoghq.com...).",
        examples=["https://api.datadoghq.com"],
    )
    api_key: Secret | None = Field(default=None, description="[modellab] Sent as DD-API-KEY.",
                                   examples=["${DD_API_KEY}"])
    application_key: Secret | None = Field(
        default=None, description="[modellab] Sent as DD-APPLICATION-KEY.",
        examples=["${DD_APP_KEY}"],
    )
    runs: list[int] = Field(default_factory=list, description="[modellab] Run ids to export.",
                            examples=[[42, 43]])
    projects: list[int] = Field(
        default_factory=list,
        description="[modellab] Project ids whose runs are discovered with the list endpoint.",
        examples=[[101]],
    )
    discover: DiscoverConfig = Field(default_factory=DiscoverConfig,
                                     description="[modellab] The paginated run list endpoint.")
    unresponsive: Literal["failed", "completed", "killed", "running"] = Field(
        default="failed",
        description="[modellab] How an `unresponsive` run counts: failed/completed/killed are "
        "exported as that status; running waits for it to end.", examples=["failed"],
    )

    # --- api = "mlflow" ---
    tracking_uri: HttpBaseUrl | None = Field(default=None,
                                             description="[mlflow] Tracking server URL.",
                                             examples=["http://127.0.0.1:5000"])
    auth: AuthConfig | None = Field(
        default=None,
        description="[mlflow] None, basic (MLFLOW_TRACKING_USERNAME/PASSWORD) or bearer "
        "(MLFLOW_TRACKING_TOKEN).", examples=[{"bearer": "${MLFLOW_TRACKING_TOKEN}"}],
    )
    experiments: list[str | int] = Field(
        default_factory=list,
        description="[mlflow] Experiment names, or ids (integers, or digit strings no experiment "
        "is named after). Empty: every active experiment.",
        examples=[["churn-training", 7]],
    )
    statuses: list[Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]] = Field(
        default=["FINISHED", "FAILED", "KILLED"], min_length=1,
        description="[mlflow] Run statuses searched (server-side filter). Add RUNNING to see "
        "running runs in `logarchive runs` (they are still only exported once finished).",
        examples=[["FINISHED", "FAILED", "KILLED"]],
    )
    filter: str | None = Field(
        default=None, description="[mlflow] Extra runs/search filter, ANDed with the status.",
        examples=["tags.team = 'ml'"],
    )
    max_results: int = Field(default=1000, ge=1, le=50000,
                             description="[mlflow] Page size of runs/search.", examples=[1000])
    max_pages: int = Field(
        default=1000, ge=1,
        description="[mlflow] Most pages read per listing (experiments/search, one runs/search, "
        "one artifacts/list directory); a longer listing fails naming this key.",
        examples=[1000],
    )

    @field_validator("artifacts")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.strip("/ ") or ".." in pattern.split("/"):
                raise ValueError(f"artifact pattern {pattern!r} is empty or contains '..'")
        return value

    @model_validator(mode="after")
    def _keys_of_api(self) -> MlflowConfig:
        other = MLFLOW_KEYS if self.api == "modellab" else MODELLAB_KEYS
        wrong = sorted(other & self.model_fields_set)
        if wrong:
            raise ValueError(f"{', '.join(wrong)} only apply to api = "
                             f"\"{'mlflow' if self.api == 'modellab' else 'modellab'}\"")
        if self.api == "modellab":
            missing = [k for k in ("api_key", "application_key") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"api = \"modellab\" needs {' and '.join(missing)} "
                                 "(DD-API-KEY, DD-APPLICATION-KEY)")
            if not self.runs and not self.projects:
                raise ValueError("api = \"modellab\" needs runs (ids) or projects (discovery)")
        elif self.tracking_uri is None:
            raise ValueError("api = \"mlflow\" needs tracking_uri")
        return self
