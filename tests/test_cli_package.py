"""The command line as one package: every command under ``python -m logarchive``, the exit-status
table in ``--help``, and no import cycle anywhere in ``src/logarchive``."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

from logarchive.status import ExitCode

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS = ("export", "runs", "plugins", "check", "config", "retention", "verify", "ledger")


def test_python_m_logarchive_lists_every_command_and_the_exit_status_table(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "logarchive", "--help"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == ExitCode.OK, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    listed = {line.split()[0] for line in lines[lines.index("Commands:") + 1:] if line}
    assert set(COMMANDS) <= listed
    table = [line.strip() for line in ExitCode.epilog().splitlines() if line.strip()]
    assert len(table) == 1 + len(ExitCode)  # the title, then one line per exit code
    for row in table:  # each row on a line of its own: click did not re-wrap the table
        assert row in lines, row


def test_the_console_script_is_the_same_command(run_cli) -> None:
    result = run_cli("--help")
    assert result.returncode == ExitCode.OK, result.stderr
    for command in COMMANDS:
        assert f"\n  {command} " in result.stdout
    assert "130  stopped by SIGINT" in result.stdout


def test_the_readme_shows_the_same_exit_status_table() -> None:
    readme = (SRC.parent / "README.md").read_text()
    assert f"```text\n{ExitCode.epilog()}\n```" in readme


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports when it is imported (module-level
    statements, ``if TYPE_CHECKING:`` blocks left out; imports inside functions run later)."""
    files = {_module_name(path, root): path for path in (root / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[module] = {
            target for node in _module_level_imports(tree.body)
            for target in _targets(node, module, is_package, files)
        }
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            found += _module_level_imports(node.body) + _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(handler.body for handler in node.handlers)):
                found += _module_level_imports(block)
        elif isinstance(node, ast.With):
            found += _module_level_imports(node.body)
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
             modules: dict[str, Path]) -> set[str]:
    """The modules of the package that ``node`` imports (a parent package is not an edge: it is
    always imported before its submodules, whoever asks)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
        return {_nearest(name, modules) for name in names} - {None}  # type: ignore[operator]
    base = node.module or ""
    if node.level:
        anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
        base = ".".join([*anchor, *([base] if base else [])])
    found = set()
    for alias in node.names:
        target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else _nearest(base,
                                                                                          modules)
        if target is not None and target != module:
            found.add(target)
    return found


def _nearest(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` if it is a module of ours, else its nearest enclosing one (``a.b.C`` -> ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_no_import_cycle_in_src_logarchive() -> None:
    graph = import_graph(SRC, "logarchive")
    assert {"logarchive.cli", "logarchive.cli.common", "logarchive.cli.admin",
            "logarchive.__main__"} <= set(graph)
    assert "logarchive.cli.common" in graph["logarchive.cli.admin"]
    cycle = import_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("second", [
    "from pkg.a import thing\n",
    "from pkg import a\n",
    "from . import a\n",
    "import pkg.a as first\n",
    "try:\n    from .a import thing\nexcept ImportError:\n    pass\n",
])
def test_the_cycle_check_finds_a_cycle_of_two_modules(tmp_path: Path, second: str) -> None:
    """The check above can fail: the shape of the old ``cli.py`` <-> ``cli_admin.py`` is found,
    however the import is spelt; an import inside a function or under TYPE_CHECKING is not one."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg.b import other\nthing = 1\n")
    (tmp_path / "pkg" / "b.py").write_text(second + "other = 2\n")
    cycle = import_cycle(import_graph(tmp_path, "pkg"))
    assert cycle is not None and set(cycle) == {"pkg.a", "pkg.b"}
    (tmp_path / "pkg" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import thing\n"
        "def late():\n    from pkg.a import thing\n    return thing\nother = 2\n")
    assert import_cycle(import_graph(tmp_path, "pkg")) is None
