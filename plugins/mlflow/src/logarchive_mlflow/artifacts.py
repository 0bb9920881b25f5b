"""Artifact selection and reading, shared by both APIs.

- :class:`ArtifactPatterns`: which artifact files are logs (``logs/**/*.log``, ``*.txt``) and
  which directories can hold one (so a listing never descends into ``model/`` for nothing).
- :func:`join_location`: an artifact location plus a relative artifact path, refusing paths
  that climb out of the location.
- :func:`read_location`: stream a file from an fsspec URL (``s3://``, ``gs://``, ``file://``);
  core checks its length against the listed size (the run's ``size_hint``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from logarchive.plugin_api import RunGone, SourceError, read_chunks, resolve


class ArtifactPatterns:
    """Glob patterns over artifact paths relative to the run's artifact root.

    - ``*`` and ``?`` match within one path segment, ``**`` matches any number of segments
      (zero included: ``logs/**/*.log`` matches ``logs/train.log``).
    - A pattern without ``/`` matches the file name at any depth (``*.txt``), as in .gitignore;
      a leading ``/`` anchors it to the root (``/*.txt``: top-level files only).
    """

    def __init__(self, patterns: list[str]) -> None:
        self._patterns: list[tuple[bool, list[str]]] = []
        for pattern in patterns:
            text = pattern.strip()
            anchored = "/" in text
            segments = [s for s in text.strip("/").split("/") if s]
            self._patterns.append((anchored, segments))

    def matches(self, path: str) -> bool:
        segments = [s for s in path.split("/") if s]
        for anchored, pattern in self._patterns:
            if not anchored:
                if segments and fnmatchcase(segments[-1], pattern[0]):
                    return True
            elif _match_segments(pattern, segments):
                return True
        return False

    def may_contain(self, directory: str) -> bool:
        """Whether a file under ``directory`` could match (False: skip listing it)."""
        segments = [s for s in directory.split("/") if s]
        for anchored, pattern in self._patterns:
            if not anchored or _prefix_possible(pattern, segments):
                return True
        return False

    def visit(self, path: str, is_dir: bool, visited: set[str], pending: list[str]) -> bool:
        """One listing entry of a breadth-first walk: a directory that may hold a match is
        queued once in ``pending``; returns True for a file that is a log."""
        if is_dir:
            if path not in visited and self.may_contain(path):
                visited.add(path)
                pending.append(path)
            return False
        return self.matches(path)


def _match_segments(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    head = pattern[0]
    if head == "**":
        return any(_match_segments(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatchcase(path[0], head) and _match_segments(pattern[1:], path[1:])


def _prefix_possible(pattern: list[str], directory: list[str]) -> bool:
    """Can a file below ``directory`` (at least one more segment) match ``pattern``?"""
    if not directory:
        return bool(pattern)
    if not pattern:
        return False
    if pattern[0] == "**":
        return True
    return fnmatchcase(directory[0], pattern[0]) and _prefix_possible(pattern[1:], directory[1:])


_BAD_SEGMENTS = {"", ".", ".."}


def check_artifact_path(path: str) -> str:
    """An artifact path from an API, as a clean relative path; refuses ``..`` and absolutes.

    The listing comes from a remote server: a path that climbs out of the run's artifact
    location must never make logarchive read some other file or object.
    """
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
        raise SourceError(f"artifact path {path!r} is not a relative path; refusing it")
    segments = path.split("/")
    if any(s in _BAD_SEGMENTS for s in segments) or re.search(r"[\x00-\x1f]", path):
        raise SourceError(f"artifact path {path!r} is not a clean relative path; refusing it")
    return path


def join_location(location: str, path: str) -> str:
    """``s3://bucket/run`` + ``logs/a.log`` -> ``s3://bucket/run/logs/a.log``."""
    return location.rstrip("/") + "/" + check_artifact_path(path)


@dataclass(frozen=True)
class FileLocator:
    """Where a log artifact is read from; private to the source (never logged)."""

    kind: str  # "fsspec" | "http"
    url: str
    size: int | None = None


@contextmanager
def read_location(url: str, *, storage_options: dict[str, Any], base_dir: Path | None,
                  chunk_size: int, what: str) -> Iterator[Iterator[bytes]]:
    """Stream one artifact file through fsspec."""
    try:
        fs, path, _protocol = resolve(url, base_dir, storage_options)
    except SourceError:
        raise
    except Exception as exc:  # ConfigError for an unknown protocol, backend import errors
        raise SourceError(f"{what}: cannot open artifact location: {exc}") from None
    try:
        with read_chunks(fs, path, chunk_size) as chunks:
            # The listed size is the run's size_hint: core fails a log of another length.
            yield _storage_errors(chunks, what)
    except FileNotFoundError:
        raise RunGone(f"{what}: artifact file not found at its artifact location") from None
    except PermissionError as exc:
        raise SourceError(f"{what}: access denied reading the artifact ({exc}); check "
                          "storage_options (credentials, endpoint)", fatal_for_source=True
                          ) from None
    except OSError as exc:
        raise SourceError(f"{what}: cannot read the artifact: {exc}", retriable=True) from None


def _storage_errors(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    try:
        yield from chunks
    except FileNotFoundError:
        raise RunGone(f"{what}: artifact file disappeared while reading") from None
    except OSError as exc:
        raise SourceError(f"{what}: reading the artifact failed: {exc}", retriable=True) from None
