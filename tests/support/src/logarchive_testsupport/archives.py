"""Generated archives for retention, verify and rebuild tests.

Runs are log files of the ``files`` source whose mtime (the run's completion time for that
source) is set ``age`` days in the past; exporting them through an ``fs`` sink makes a real
archive with real manifests on any backend (local, S3, GCS).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

DAY = 86400.0
FIELDS = r"(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$"


def make_runs(root: Path, ages: dict[str, float], *, size: int = 200) -> dict[str, bytes]:
    """Write ``<model>/<run>.log`` for each ``"model/run": age_days``; returns the contents."""
    now = time.time()
    contents = {}
    for name, age in ages.items():
        path = root / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(f"2026-01-01T00:00:{i % 60:02d}Z [INFO] {name} line {i}\n"
                       for i in range(max(1, size // 40))).encode()
        path.write_bytes(data)
        stamp = now - age * DAY
        os.utime(path, (stamp, stamp))
        contents[name] = data
    return contents


def archive_config(tmp_path: Path, url: str, *, storage_options: dict[str, Any] | None = None,
                   logs: Path | None = None, source: str = "training",
                   sink: dict[str, Any] | None = None, workers: int = 2) -> dict[str, Any]:
    """A config document: files source ``source`` over ``logs`` -> fs sink ``archive``."""
    sink_table: dict[str, Any] = {
        "type": "fs", "url": url, "path": "{source}/{model_id}/{run_id}.{ext}",
        **({"storage_options": storage_options} if storage_options else {}),
        **(sink or {}),
    }
    return {
        "logarchive": {"state_dir": str(tmp_path / "state"), "workers": workers},
        "sources": {source: {"type": "files", "url": str(logs or tmp_path / "logs"),
                             "fields": FIELDS}},
        "sinks": {"archive": sink_table},
    }


def dump_toml(document: dict[str, Any]) -> str:
    """Enough TOML for test configs: nested tables of strings, numbers, bools, lists, dicts."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    def table(prefix: str, doc: dict[str, Any]) -> None:
        scalars = {k: v for k, v in doc.items() if not isinstance(v, dict) or k == "storage_options"
                   or k == "object_lock"}
        tables = {k: v for k, v in doc.items() if k not in scalars}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{json.dumps(k)} = {value(v)}" for k, v in scalars.items())
        lines.append("")
        for k, v in tables.items():
            table(f"{prefix}.{json.dumps(k)}" if prefix else json.dumps(k), v)

    table("", document)
    return "\n".join(lines)


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(dump_toml(document))
    return path


def archived_at_completion(sink: Any) -> int:
    """Rewrite every manifest of ``sink`` (a ``ByteSink``) as if its object had been archived
    when its run completed (``exported_at = run.completed``), so ``min_age_days`` floors count
    from the generated ages; returns how many manifests were rewritten."""
    from logarchive.manifest import is_manifest

    count = 0
    for obj in list(sink.list()):
        if not is_manifest(obj.path):
            continue
        with sink.read(obj.path) as chunks:
            doc = json.loads(b"".join(chunks))
        doc["exported_at"] = doc["run"]["completed"]
        writer = sink.open_object(obj.path)
        writer.write(json.dumps(doc).encode())
        writer.commit()
        count += 1
    return count


def exported_archive(tmp_path: Path, url: str, ages: dict[str, float], *,
                     storage_options: dict[str, Any] | None = None,
                     sink: dict[str, Any] | None = None, backdate: bool = True) -> Path:
    """Runs of ``ages`` exported to the ``archive`` sink at ``url``; with ``backdate`` each as if
    archived when it completed (:func:`archived_at_completion`). Returns the config file."""
    import logarchive
    from logarchive.pipeline import open_sink

    make_runs(tmp_path / "logs", ages)
    document = archive_config(tmp_path, url, storage_options=storage_options, sink=sink)
    path = write_config(tmp_path / "logarchive.toml", document)
    config = logarchive.load_config(path)
    summary = logarchive.export(config)
    if summary.exit_code != 0:
        raise AssertionError(f"export failed: {summary.errors}")
    if backdate:
        archived_at_completion(open_sink(config, "archive"))
    return path
