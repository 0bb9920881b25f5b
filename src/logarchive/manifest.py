"""Manifests: ``<object>.manifest.json`` beside every archived object.

An auditor can verify an archive with the manifest alone: sha256 and size of the stored
object and of the source bytes, line count, format, compression, the run and its metadata, and
what the source declared about the log before sending it (``source_declared``: its length, ETag
or checksum), so a log shorter or longer than its source announced is provable from the
manifest alone.
"""

from __future__ import annotations

import reprlib
from datetime import datetime
from typing import Any

import orjson

from logarchive.runs import RunRef, iso
from logarchive.secrets import redact, redact_value

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_VERSION = 1


def manifest_path(object_path: str) -> str:
    return object_path + MANIFEST_SUFFIX


def is_manifest(path: str) -> bool:
    return path.endswith(MANIFEST_SUFFIX)


def build_manifest(
    *, run: RunRef, sink: str, object_path: str, object_sha256: str, object_size: int,
    source_sha256: str, source_size: int, lines: int, invalid_utf8: int, records: int | None,
    fmt: str, compression: str, exported: datetime, version: str, extra: dict[str, Any] | None = None,
    declared: dict[str, Any] | None = None,
) -> bytes:
    document = {
        "manifest_version": MANIFEST_VERSION,
        "logarchive_version": version,
        "sink": sink,
        "object": {"path": object_path, "sha256": object_sha256, "size": object_size},
        "source_bytes": {
            "sha256": source_sha256,
            "size": source_size,
            "lines": lines,
            "invalid_utf8": invalid_utf8,
        },
        "source_declared": declared or {},
        "format": fmt,
        "compression": compression,
        "records": records,
        "exported_at": iso(exported),
        "run": run.to_json(),
        **(extra or {}),
    }
    return orjson.dumps(_redact_all_but_identity(document, run), option=orjson.OPT_INDENT_2) + b"\n"


def _redact_all_but_identity(document: dict[str, Any], run: RunRef) -> dict[str, Any]:
    """Mask secret-looking values (metadata, extras), but never the run's identity or the object
    path: a run id like ``basic training`` or ``exp;code=7`` is stored verbatim, or ``--force``,
    ``ledger rebuild`` and legal holds could never match the run again."""
    redacted = redact_value(document)
    redacted["sink"] = document["sink"]
    redacted["object"]["path"] = document["object"]["path"]
    redacted["run"].update(source=run.source, key=run.key, fields=dict(run.fields))
    return redacted


def describe_value(document: dict[str, Any], key: str) -> str:
    """A manifest value for messages (``sink``, ``exported_at``): its short repr, secrets
    masked, or ``(missing)``."""
    return redact(reprlib.repr(document[key])) if key in document else "(missing)"


def parse_manifest(data: bytes) -> dict[str, Any]:
    document = orjson.loads(data)
    if not isinstance(document, dict) or "object" not in document or "run" not in document:
        raise ValueError("not a logarchive manifest")
    return document
