"""Source ``mlflow``: log files among the artifacts of Model Lab runs or MLflow runs.

``api = "modellab"``: the Datadog Model Lab API (seeds 003/004): runs by id, or discovered by
project; artifacts are read from the run's ``mlflow_artifact_location`` with fsspec.
``api = "mlflow"``: an MLflow tracking server's REST API: experiments -> runs/search ->
artifacts/list, read through the ``mlflow-artifacts`` proxy or straight from storage.

Each log file is one run for logarchive: its fields are the run's ids plus ``artifact_path``
(use ``{artifact_path:path}`` in a sink's path template to keep its folders). The run's name,
params, tags, metrics, times and owner go into the manifest as metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from logarchive.plugin_api import RunRef, Source, hookimpl

from logarchive_mlflow.config import MlflowConfig
from logarchive_mlflow.modellab import ModelLab
from logarchive_mlflow.tracking import Tracking

__all__ = ["MlflowConfig", "MlflowSource"]


class MlflowSource(Source):
    type = "mlflow"
    description = ("Log artifacts of Model Lab runs (Datadog) or MLflow tracking server runs; "
                   "one run per log file.")
    Config = MlflowConfig

    def __init__(self, name: str, config: MlflowConfig, context: Any) -> None:
        super().__init__(name, config, context)
        backend = ModelLab if config.api == "modellab" else Tracking
        self.api: ModelLab | Tracking = backend(name, config, context)
        self.api.skipped = self.skipped

    def discover(self) -> Iterator[RunRef]:
        return self.api.discover()

    def open(self, run: RunRef) -> AbstractContextManager[Iterator[bytes]]:
        return self.api.open(run)

    def check(self) -> str:
        return self.api.check()

    def close(self) -> None:
        self.api.close()


@hookimpl
def logarchive_register_sources(register: Any) -> None:
    register(MlflowSource)
