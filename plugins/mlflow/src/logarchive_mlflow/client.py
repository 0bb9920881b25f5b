"""The HTTP client both APIs share (:class:`ApiClient`), and how their responses are classified:
retriable, fatal for the source, gone, or failed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from logarchive.plugin_api import (
    RETRIABLE_STATUS, AuthConfig, HttpClient, Retryable, RunGone, SourceError, mask_quoted,
    retry_after,
)
from logarchive_mlflow.artifacts import ArtifactPatterns, read_location


def status_classifier(what: str, error_text: Callable[[httpx.Response], str], auth_hint: str, *,
                      gone_on_404: bool = True) -> Callable[[httpx.Response], None]:
    """A ``classify`` callback for :class:`~logarchive.plugin_api.HttpClient`: 408/429/5xx
    retried (with ``Retry-After``), 401/403 fail the whole source with ``auth_hint``, 404 is a
    gone run (when ``gone_on_404``), anything else >= 400 fails the run; messages name ``what``
    and the API's own error text."""

    def classify(response: httpx.Response) -> None:
        code = response.status_code
        if code < 400:
            return
        if not response.is_stream_consumed:
            try:
                response.read()
            except httpx.HTTPError:
                pass
        message = mask_quoted(response, f"{what}: HTTP {code}: {error_text(response)}")
        if code in RETRIABLE_STATUS:
            raise Retryable(SourceError(message, retriable=True), retry_after(response))
        if code in (401, 403):
            raise SourceError(f"{message}; {auth_hint}", fatal_for_source=True)
        if code == 404 and gone_on_404:
            raise RunGone(message)
        raise SourceError(message)

    return classify


class ApiClient:
    """What both APIs' clients share: settings from the engine's context and one JSON
    :class:`~logarchive.plugin_api.HttpClient` on ``base_url``."""

    def __init__(self, source_name: str, config: Any, context: Any, base_url: str,
                 auth: AuthConfig | None) -> None:
        self.name = source_name
        self.config = config
        self.log = context.log
        self.base_dir = context.settings.base_dir
        self.chunk_size = context.settings.chunk_size
        self.client = HttpClient(base_url, options=config.http, auth=auth,
                                 headers={"Accept": "application/json"}, stop=context.stop,
                                 log=context.log)
        self.patterns = ArtifactPatterns(config.artifacts)

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def describe(run: Any) -> str:
        return f"run {run.fields['run_id']} artifact {run.fields['artifact_path']}"

    @contextmanager
    def open(self, run: Any) -> Iterator[Iterator[bytes]]:
        """Stream a log artifact from its storage location (fsspec); core checks its size."""
        locator = run.locator
        with read_location(locator.url, storage_options=self.config.storage_options,
                           base_dir=self.base_dir, chunk_size=self.chunk_size,
                           what=self.describe(run)) as chunks:
            yield chunks
