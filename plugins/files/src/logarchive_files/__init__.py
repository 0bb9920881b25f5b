"""Source ``files``: runs from a folder of log files, local or any fsspec URL.

Each file matching ``pattern`` is one run; its identifying fields come from the named groups of
the ``fields`` regular expression, matched against the file's path relative to ``url``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import Field, field_validator

from logarchive.plugin_api import (
    RunRef, Source, SourceConfig, SourceError, hookimpl, read_chunks, resolve,
)

DEFAULT_FIELDS = r"^(?:.*/)?(?P<run_id>[^/]+?)(?:\.[^/.]+)?$"


class FilesConfig(SourceConfig):
    type: Literal["files"] = "files"
    url: str = Field(description="Folder holding the logs: a path (relative to the config file) "
                     "or an fsspec URL.", examples=["examples/runs", "s3://bucket/logs"])
    pattern: str = Field(default="**/*.log", description="Glob of log files under url.",
                         examples=["**/*.log"])
    fields: str = Field(
        default=DEFAULT_FIELDS,
        description="Regular expression matched against each file's relative path; its named "
        "groups are the run's fields. Default: run_id = file name without extension.",
        examples=[r"(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$"],
    )
    min_age_seconds: float = Field(
        default=0, ge=0, description="Files modified more recently are treated as still running "
        "(skipped, exported by a later export).", examples=[300],
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="Passed to fsspec (endpoint, credentials...).",
        examples=[{"anon": True}],
    )

    @field_validator("fields")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if not compiled.groupindex:
            raise ValueError("needs at least one named group, e.g. (?P<run_id>...)")
        return value


class FilesSource(Source):
    type = "files"
    description = "A folder of log files, local or any fsspec URL; one run per file."
    Config = FilesConfig

    def __init__(self, name: str, config: FilesConfig, context: Any) -> None:
        super().__init__(name, config, context)
        self.fs, self.root, self.protocol = resolve(
            config.url, context.settings.base_dir, config.storage_options,
            distribution="logarchive-files",
        )
        self.regex = re.compile(config.fields)
        self.chunk_size = context.settings.chunk_size

    def check(self) -> str:
        """The folder exists and can be listed (with the credentials in storage_options)."""
        try:
            if not self.fs.isdir(self.root):
                raise SourceError(f"folder {self.config.url} does not exist")
            self.fs.ls(self.root, detail=False)
        except OSError as exc:
            raise SourceError(f"cannot list {self.config.url}: {exc}") from None
        return f"folder {self.config.url} exists and can be listed"

    @classmethod
    def run_fields(cls, config: FilesConfig) -> frozenset[str]:
        """The named groups of the ``fields`` regular expression."""
        return frozenset(re.compile(config.fields).groupindex)

    def discover(self) -> Iterator[RunRef]:
        pattern = f"{self.root}/{self.config.pattern}"
        try:
            if not self.fs.exists(self.root):
                raise FileNotFoundError(self.root)
            found = self.fs.glob(pattern, detail=True)
        except FileNotFoundError:
            raise SourceError(f"folder {self.config.url} does not exist") from None
        except OSError as exc:
            raise SourceError(f"cannot list {self.config.url}: {exc}", retriable=True) from None
        now = time.time()
        for path, info in sorted(found.items()):
            if info.get("type") == "directory":
                continue
            relative = path[len(self.root):].lstrip("/")
            match = self.regex.search(relative)
            if match is None:
                self.log.warning("file_skipped", path=relative, reason="fields regex did not match")
                continue
            fields = {k: v for k, v in match.groupdict().items() if v}
            mtime = _mtime(info)
            young = mtime is not None and now - mtime < self.config.min_age_seconds
            yield RunRef(
                source=self.name,
                fields=fields,
                status="running" if young else "completed",
                completed=datetime.fromtimestamp(mtime, timezone.utc) if mtime else None,
                metadata={"path": relative, "size": info.get("size")},
                locator=path,
                # The listed size of a regular file is what core checks the log against; a
                # FIFO or device has no size to declare.
                size_hint=info.get("size") if info.get("type") == "file" else None,
            )

    @contextmanager
    def open(self, run: RunRef) -> Iterator[Iterator[bytes]]:
        try:
            with read_chunks(self.fs, run.locator, self.chunk_size) as chunks:
                yield chunks
        except FileNotFoundError:
            raise SourceError(f"{run.metadata.get('path')}: file disappeared") from None


def _mtime(info: dict[str, Any]) -> float | None:
    for key in ("mtime", "LastModified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


@hookimpl
def logarchive_register_sources(register: Any) -> None:
    register(FilesSource)
