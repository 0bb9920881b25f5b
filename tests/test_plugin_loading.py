"""Only the plugins a config's types need are loaded (issue 15 item 3: start-up of a txt export).

Every shipped plugin names its entry point after its type; a config naming ``files`` and ``fs``
imports those two and none of the HTTP sources or aggregator sinks. A type that no entry point
is named after (an out-of-tree plugin registering other names, a typo) loads every plugin, so
its error still lists all the installed types.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from logarchive import plugins
from logarchive.config import parse_config
from logarchive.errors import ConfigError
from logarchive.plugins import Registry

OTHER_PLUGINS = ["logarchive_archive", "logarchive_datadog", "logarchive_mlflow",
                 "logarchive_obs", "logarchive_rest", "logarchive_splunk"]

# The real CLI, in a fresh interpreter, then the plugin modules it imported.
EXPORT_THEN_LIST_MODULES = """
import json, sys
from logarchive.cli import main
try:
    main(["export", "-c", "c.toml", "-q"])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(m for m in sys.modules
                                                  if m.split(".")[0].startswith("logarchive_"))}))
"""


def test_a_txt_export_of_files_to_fs_imports_no_other_plugin(files_to_fs) -> None:
    root = files_to_fs(runs=2, extra='format = "txt"\n')
    result = subprocess.run([sys.executable, "-c", EXPORT_THEN_LIST_MODULES], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["code"] == 0, result.stderr
    assert sorted((root / "archive").rglob("*.txt")), "the export wrote no archive"
    plugins = {m.split(".")[0] for m in report["modules"]}
    assert {"logarchive_files", "logarchive_fs"} <= plugins
    assert not plugins & set(OTHER_PLUGINS), f"imported: {sorted(plugins)}"


def test_load_for_loads_the_named_types_then_everything_for_an_unknown_one() -> None:
    registry = Registry()
    registry.load_for({"files"}, {"fs"})
    assert set(registry.sources) == {"files"} and set(registry.sinks) == {"fs"}
    assert not registry.complete
    registry.load_for({"no-such-type"}, ())
    assert registry.complete
    assert {"archive", "files", "mlflow", "obs", "rest"} <= set(registry.sources)
    assert {"datadog", "fs", "splunk"} <= set(registry.sinks)


@pytest.fixture
def fresh_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process-wide registry as a new process has it: nothing loaded yet."""
    monkeypatch.setattr(plugins, "_default", None)


def document(tmp_path: Path, source: dict[str, Any]) -> dict[str, Any]:
    return {"logarchive": {"state_dir": str(tmp_path / "state")},
            "sources": {"training": {**source, "url": str(tmp_path)}},
            "sinks": {"out": {"type": "fs", "url": str(tmp_path / "archive")}}}


@pytest.mark.usefixtures("fresh_default_registry")
@pytest.mark.parametrize(("source", "expected"), [
    ({"type": "filez"}, "unknown source type 'filez' (did you mean 'files'?)"),
    ({}, "sources.training.type"),
    ({"type": ["files"]}, "sources.training.type: missing or not a string"),
])
def test_an_unknown_or_missing_type_lists_every_installed_type(
        tmp_path: Path, source: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(document(tmp_path, source), path="c.toml")
    assert expected in str(raised.value)
    assert "archive, files, mlflow, obs, rest" in str(raised.value)


@pytest.mark.usefixtures("fresh_default_registry")
def test_a_config_of_files_and_fs_loads_only_those(tmp_path: Path) -> None:
    config = parse_config(document(tmp_path, {"type": "files"}), path="c.toml")
    assert set(config.registry.sources) == {"files"} and set(config.registry.sinks) == {"fs"}
    assert set(plugins.default_registry().sources) >= {"archive", "files", "rest"}
