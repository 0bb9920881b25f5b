"""Small builders for tests: log folders and config dicts for the files source and fs sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any


# The smallest TOML config: a files source over ./logs, an fs sink into ./archive.
FILES_TO_FS_TOML = """
[logarchive]
state_dir = "state"

[sources.training]
type = "files"
url = "logs"

[sinks.archive]
type = "fs"
url = "archive"
"""


def write_logs(root: Path, logs: dict[str, bytes]) -> Path:
    for name, data in logs.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def base_config(tmp_path: Path, *, sinks: dict[str, dict[str, Any]] | None = None,
                source: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "logarchive": {"state_dir": str(tmp_path / "state"), "workers": 2},
        "sources": {"logs": source or {
            "type": "files", "url": str(tmp_path / "logs"),
            "fields": r"(?P<model_id>[^/]+)/(?P<run_id>[^/]+)\.log$",
        }},
        "sinks": sinks or {"archive": {"type": "fs", "url": str(tmp_path / "archive"),
                                       "path": "{source}/{model_id}/{run_id}.{ext}"}},
    }


def archived(tmp_path: Path) -> dict[str, bytes]:
    """The objects (not manifests) under ``tmp_path/archive``, by relative path."""
    root = tmp_path / "archive"
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".manifest.json")}
