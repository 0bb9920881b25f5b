"""Plugins reach core only through ``logarchive.plugin_api``.

Every ``.py`` file under ``plugins/*/src`` is parsed with :mod:`ast`; any import of
``logarchive`` or ``logarchive.<x>`` other than ``logarchive.plugin_api`` fails the test with
the file, the line and the module. A plugin's shipped testing modules (``testing.py``,
``testing_*.py``) may also import ``logarchive.testing`` and its submodules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SOURCES = sorted(ROOT.glob("plugins/*/src/**/*.py"))


def is_testing_module(path: Path) -> bool:
    return path.stem == "testing" or path.stem.startswith("testing_")


def allowed(module: str, testing: bool) -> bool:
    if module != "logarchive" and not module.startswith("logarchive."):
        return True  # not core (the plugin itself, the standard library, a dependency)
    if module == "logarchive.plugin_api":
        return True
    return testing and (module == "logarchive.testing" or module.startswith("logarchive.testing."))


def imported_modules(node: ast.AST) -> list[str]:
    """The modules an import statement reaches (``from logarchive import x``: logarchive.x)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == "logarchive":
            return [f"logarchive.{alias.name}" for alias in node.names]
        return [node.module]
    return []


def forbidden_imports(source: str, filename: str, *, testing: bool) -> list[str]:
    """``file:line: module`` for each import of core a plugin file may not make (anywhere in
    the file, function bodies included)."""
    return [
        f"{filename}:{node.lineno}: {module}"
        for node in ast.walk(ast.parse(source, filename))
        for module in imported_modules(node)
        if not allowed(module, testing)
    ]


def test_plugin_code_imports_only_plugin_api() -> None:
    plugins_with_sources = {p.relative_to(ROOT).parts[1] for p in PLUGIN_SOURCES}
    assert {"datadog", "files", "fs", "mlflow", "obs", "rest", "splunk"} <= plugins_with_sources
    violations = []
    for path in PLUGIN_SOURCES:
        violations += forbidden_imports(path.read_text(), str(path.relative_to(ROOT)),
                                        testing=is_testing_module(path))
    assert not violations, "plugins must import core only from logarchive.plugin_api:\n" + \
        "\n".join(violations)


SYNTHETIC = """\
from logarchive.plugin_api import HttpClient, SourceError
from logarchive.http import json_object
import logarchive.storage
import logarchive
from logarchive import retry, plugin_api
import logarchive_mine.config
from logarchive_mine import helpers
from logarchive.testing.servers import Request


def late():
    from logarchive.codec import parse_level
    import logarchive.testing
    return parse_level
"""


@pytest.mark.parametrize("testing", [False, True])
def test_checker_names_file_line_and_module_of_each_forbidden_import(testing: bool) -> None:
    found = forbidden_imports(SYNTHETIC, "plugins/mine/src/logarchive_mine/x.py", testing=testing)
    expected = [
        "plugins/mine/src/logarchive_mine/x.py:2: logarchive.http",
        "plugins/mine/src/logarchive_mine/x.py:3: logarchive.storage",
        "plugins/mine/src/logarchive_mine/x.py:4: logarchive",
        "plugins/mine/src/logarchive_mine/x.py:5: logarchive.retry",
        "plugins/mine/src/logarchive_mine/x.py:12: logarchive.codec",
    ]
    if not testing:  # only shipped testing modules may use core's test kit
        expected += ["plugins/mine/src/logarchive_mine/x.py:8: logarchive.testing.servers",
                     "plugins/mine/src/logarchive_mine/x.py:13: logarchive.testing"]
    line = lambda entry: int(entry.split(":")[1])  # noqa: E731
    assert sorted(found, key=line) == sorted(expected, key=line)


def test_testing_modules_are_recognised_by_name() -> None:
    assert is_testing_module(Path("plugins/rest/src/logarchive_rest/testing.py"))
    assert is_testing_module(Path("plugins/mlflow/src/logarchive_mlflow/testing_modellab.py"))
    assert not is_testing_module(Path("plugins/rest/src/logarchive_rest/config.py"))
    assert not is_testing_module(Path("plugins/x/src/logarchive_x/contesting.py"))
