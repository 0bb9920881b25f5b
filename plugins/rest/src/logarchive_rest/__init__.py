"""Source ``rest``: HTTP log-download APIs.

- preset ``training-metrics`` (seed 000): ``GET /api/v1/models/{model_id}/training-metrics/logs/
  download?run_id=&format=``, Bearer token. ``models`` asks for each model's latest completed
  run: discovery sends the GET without ``run_id`` and reads only the response headers
  (``Content-Disposition: attachment; filename="training-log-<run_id>.<ext>"``), closing the
  connection before the body; the run is then a normal ``{model_id, run_id}`` run that the
  ledger dedupes, and ``open`` asks for that run id explicitly (a run that completes between the
  two requests is found by the next export).
- preset ``workflow-jobs`` (seed 002): ``GET /workflows/{workflow_id}/jobs/{job_id}/logs/raw``
  with the session cookie; 400 = job not finished (skipped, picked up later); the error trailer
  appended inside a 200 stream fails the run and never reaches a sink.
- generic: a URL template with run fields, query parameters, headers, any auth.

Every form can discover runs from a paginated list endpoint (``discover``). HTTP retries,
Range resume, Content-Length checks and the stall timeout are core's (``logarchive.http``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from logarchive.plugin_api import (
    Declared, HttpClient, ListedRun, RunGone, RunNotReady, RunRef, Source, SourceError,
    SourceStream, describe_response_head, fill_template, hookimpl, item_runs, list_runs, probe,
)
from logarchive_rest.config import (
    TRAINING, TRAINING_LEGACY_URL, TRAINING_URL, WORKFLOW, WORKFLOW_URL, RestConfig,
)
from logarchive_rest.streams import (
    WORKFLOW_TRAILER, filter_trailer, json_array_lines, run_id_from_disposition,
)

__all__ = ["RestConfig", "RestSource", "logarchive_register_sources"]


class _Headers(Exception):
    """Carries the first response's headers out of a probe without reading its body."""

    def __init__(self, headers: httpx.Headers) -> None:
        super().__init__("headers")
        self.headers = headers


class RestSource(Source):
    type = "rest"
    description = ("HTTP log-download APIs: presets training-metrics (seed 000) and "
                   "workflow-jobs (seed 002), or a generic URL template; list-endpoint discovery.")
    Config = RestConfig

    def __init__(self, name: str, config: RestConfig, context: Any) -> None:
        super().__init__(name, config, context)
        self.preset = config.preset
        if self.preset == TRAINING:
            self.url_template = TRAINING_LEGACY_URL if config.legacy_path else TRAINING_URL
        elif self.preset == WORKFLOW:
            self.url_template = WORKFLOW_URL
        else:
            self.url_template = config.url or ""
        self.client = HttpClient(config.base_url, options=config.http, auth=config.auth,
                                 headers=dict(config.headers), stop=context.stop, log=self.log)

    def close(self) -> None:
        self.client.close()

    # -- discovery ---------------------------------------------------------------------------

    def discover(self) -> Iterator[RunRef]:
        seen: set[str] = set()
        for run in self._discover():
            if run.key not in seen:
                seen.add(run.key)
                yield run

    def _discover(self) -> Iterator[RunRef]:
        cfg = self.config
        for fields in [*cfg.runs, *cfg.jobs]:
            yield RunRef(self.name, dict(fields), status="unknown",
                         metadata={"listed": "config"})
        for model_id in cfg.models:  # one model's odd answer never hides the others' runs
            yield from item_runs(self._latest_runs, model_id, log=self.log,
                                 what=f"model {model_id!r}", skipped=self.skipped)
        if cfg.discover is not None:
            for listed in list_runs(self.client, cfg.discover, classify=self._classify_list,
                                    log=self.log, key=f"sources.{self.name}.discover.max_pages",
                                    skipped=self.skipped):
                yield from item_runs(self._listed_runs, listed, log=self.log,
                                     what=f"{cfg.discover.url} item {repr(listed.fields)[:200]}",
                                     skipped=self.skipped)

    def _listed_runs(self, listed: ListedRun) -> Iterator[RunRef]:
        """The run of one listed item (for the training preset without a run id: the latest
        completed run of its model)."""
        metadata = {k: v for k, v in listed.metadata.items() if v is not None}
        if self.preset == TRAINING and "run_id" not in listed.fields:
            yield from self._latest_runs(listed.fields["model_id"])
            return
        if self.preset == TRAINING:
            fields = {"model_id": listed.fields["model_id"], "run_id": listed.fields["run_id"]}
        elif self.preset == WORKFLOW:
            fields = {"workflow_id": listed.fields["workflow_id"],
                      "job_id": listed.fields["job_id"]}
        else:
            fields = listed.fields
        yield RunRef(self.name, fields, status=listed.status, started=listed.started,
                     completed=listed.completed, metadata={"listed": "discover", **metadata})

    def _latest_runs(self, model_id: str) -> Iterator[RunRef]:
        run = self._latest_run(model_id)
        if run is not None:
            yield run

    def _latest_run(self, model_id: str) -> RunRef | None:
        """The latest completed run of a model: a GET without run_id, headers only."""
        url = fill_template(self.url_template, {"model_id": model_id})

        def stop_at_headers(response: httpx.Response) -> None:
            raise _Headers(response.headers)

        def classify(response: httpx.Response) -> None:
            if response.status_code == 404:
                raise RunGone("no completed run (or model not found)")
            self._classify(response, {"model_id": model_id})

        try:
            with self.client.download(url, params={"format": self.config.format},
                                      classify=classify, on_response=stop_at_headers) as stream:
                for _ in stream:
                    break
        except _Headers as found:
            run_id = run_id_from_disposition(found.headers.get("Content-Disposition"))
        except RunGone:
            self.log.warning("latest_run_not_found", model_id=model_id,
                             reason="no completed run yet, or model not found or purged")
            return None
        else:
            raise SourceError(f"model {model_id}: no response headers for the latest run")
        return RunRef(self.name, {"model_id": model_id, "run_id": run_id}, status="completed",
                      metadata={"listed": "latest completed run"})

    # -- check -------------------------------------------------------------------------------

    def check(self) -> str:
        """The API answers and accepts the credentials, nothing downloaded: the first page of
        the list endpoint, else the headers of the first model's latest run or of the first
        configured run (a "not found" or "not finished" answer still proves both)."""
        cfg = self.config
        if cfg.discover is not None:
            return probe(lambda: next(iter(list_runs(self.client, cfg.discover, log=self.log,
                                                     classify=self._classify_list)), None),
                         "list endpoint (first page)")
        if cfg.models:
            return probe(lambda: self._latest_run(cfg.models[0]),
                         f"model {cfg.models[0]}: latest-run request")
        configured = [*cfg.runs, *cfg.jobs]
        if not configured:
            raise NotImplementedError  # nothing to ask: reported as not checked
        run = RunRef(self.name, dict(configured[0]), status="unknown")
        url, params = self._request_for(run)
        return probe(lambda: self._headers_only(url, params, run.fields),
                     f"{self._what(run.fields)}: log request")

    def _headers_only(self, url: str, params: dict[str, str], fields: dict[str, str]) -> None:
        """Send a log request and stop at its headers (classified like a download)."""

        def stop_at_headers(response: httpx.Response) -> None:
            raise _Headers(response.headers)

        try:
            with self.client.download(url, params=params or None, on_response=stop_at_headers,
                                      classify=lambda r: self._classify(r, fields)) as stream:
                for _ in stream:  # the request is sent when the stream is first read
                    break
        except _Headers:
            pass

    # -- streaming ---------------------------------------------------------------------------

    def _request_for(self, run: RunRef) -> tuple[str, dict[str, str]]:
        url = fill_template(self.url_template, run.fields)
        if self.preset == TRAINING:
            return url, {"run_id": run.fields["run_id"], "format": self.config.format}
        if self.preset == WORKFLOW:
            return url, {}
        params = {k: fill_template(v, run.fields, quote_values=False)
                  for k, v in self.config.params.items()}
        return url, params

    @contextmanager
    def open(self, run: RunRef) -> Iterator[Iterator[bytes]]:
        url, params = self._request_for(run)
        with self.client.download(
            url, params=params or None,
            classify=lambda response: self._classify(response, run.fields),
            resume=self.config.range_resume,
        ) as chunks:
            stream: Iterator[bytes] = chunks
            # The declared length is the body's: it no longer describes JSON turned into lines.
            declared = chunks.declared
            if self.config.format == "json" or self.config.response == "json-array":
                stream = json_array_lines(stream, self.config.json_line_field)
                declared = Declared(etag=chunks.declared.etag)
            if self.preset == WORKFLOW:
                stream = filter_trailer(stream, WORKFLOW_TRAILER)
            elif self.config.error_trailer:
                stream = filter_trailer(stream, self.config.error_trailer.encode())
            yield SourceStream(stream, declared)

    # -- error classification -----------------------------------------------------------------

    def _what(self, fields: dict[str, str]) -> str:
        return " ".join(f"{k}={v}" for k, v in fields.items())

    def _classify(self, response: httpx.Response, fields: dict[str, str]) -> None:
        """Known statuses of each API shape become final, classified errors (no retry)."""
        code = response.status_code
        if code < 400:
            return
        what = self._what(fields)
        key = f"sources.{self.name}"
        if self.preset == TRAINING:
            if code == 400:
                raise SourceError(
                    f"{what}: the server rejected the request (HTTP 400: invalid format); check "
                    f"{key}.format (is {self.config.format!r}; the API accepts txt or json)",
                    fatal_for_source=True)
            if code == 401:
                raise SourceError(f"{what}: token invalid or expired (HTTP 401); renew "
                                  f"{key}.auth.bearer", fatal_for_source=True)
            if code == 403:
                raise SourceError(f"{what}: forbidden (HTTP 403): the token's user needs the "
                                  "model:read or organization:viewer permission on this model")
            if code == 404:
                raise RunGone(f"{what}: logs not found or purged at source (HTTP 404)")
            return
        if self.preset == WORKFLOW:
            if code == 400:
                raise RunNotReady(f"{what}: job not finished yet (only COMPLETED or FAILED jobs "
                                  "have logs); a later export picks it up")
            if code == 401:
                raise SourceError(f"{what}: session invalid or expired (HTTP 401); renew "
                                  f"{key}.auth.cookie", fatal_for_source=True)
            if code == 404:
                raise RunGone(f"{what}: workflow or job not found at source (HTTP 404)")
            return
        if code in self.config.not_ready_status:
            raise RunNotReady(f"{what}: not finished yet (HTTP {code}); a later export picks it up")
        if code in self.config.gone_status:
            raise RunGone(f"{what}: not found or purged at source (HTTP {code})")
        if code == 401:
            raise SourceError(f"{what}: credentials invalid or expired (HTTP 401); check "
                              f"{key}.auth", fatal_for_source=True)
        if code == 403:
            raise SourceError(f"{what}: forbidden (HTTP 403): {describe_response_head(response)}")

    def _classify_list(self, response: httpx.Response) -> None:
        code = response.status_code
        if code in (401, 403):
            raise SourceError(f"list endpoint: {describe_response_head(response)}; check "
                              f"sources.{self.name}.auth", fatal_for_source=True)


@hookimpl
def logarchive_register_sources(register: Any) -> None:
    register(RestSource)
