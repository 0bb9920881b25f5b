"""The shape of core's code: no function in ``src/logarchive`` (outside ``testing/``) is longer
than 80 lines, so each step of the engine has a name a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

import logarchive

ROOT = Path(logarchive.__file__).parent
LIMIT = 80


def function_lengths(root: Path = ROOT) -> dict[str, int]:
    """``module:qualified.name`` -> lines (``def`` to last line, decorators excluded) of every
    function and method under ``root``, except the ``testing`` package."""
    lengths: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] == "testing":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        _collect(tree, f"{relative.as_posix()}:", lengths)
    return lengths


def _collect(node: ast.AST, prefix: str, lengths: dict[str, int]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = prefix + child.name
            lengths[name] = child.end_lineno - child.lineno + 1  # type: ignore[operator]
            _collect(child, name + ".", lengths)
        elif isinstance(child, ast.ClassDef):
            _collect(child, prefix + child.name + ".", lengths)
        else:
            _collect(child, prefix, lengths)


def test_no_function_in_core_is_longer_than_80_lines() -> None:
    too_long = {name: n for name, n in function_lengths().items() if n > LIMIT}
    assert not too_long, "functions over 80 lines: " + ", ".join(
        f"{name} ({n})" for name, n in sorted(too_long.items(), key=lambda kv: -kv[1]))


def test_the_measure_counts_def_to_last_line_and_skips_testing(tmp_path: Path) -> None:
    (tmp_path / "testing").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    (tmp_path / "testing" / "kit.py").write_text(f"def long():\n{body}\n")
    (tmp_path / "mod.py").write_text(
        f"class A:\n    @staticmethod\n    def method():\n        def inner():\n"
        f"            return 1\n        return inner\n\n\ndef long():\n{body}\n"
    )
    assert function_lengths(tmp_path) == {
        "mod.py:A.method": 4, "mod.py:A.method.inner": 2, "mod.py:long": 82,
    }
