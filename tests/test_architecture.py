"""The layering the product's design fixes: the engine is a library that knows no host, and no module imports
itself back through a circle of others."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "hostplug")


def module_name(path: Path) -> str:
    """``engine/io/source.py`` -> ``engine.io.source``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    """Every Python module of the two packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "-" not in path.name:  # hostplug/data/hostplug-raw.py is GIMP's plug-in, not a module
                found[module_name(path)] = path
    return found


def imported(path: Path, modules: dict[str, Path], *, top_level_only: bool) -> set[str]:
    """The project modules a file imports (``from a.b import c`` names ``a.b.c`` when that is a module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in modules}


def test_engine_never_imports_hostplug() -> None:
    modules = all_modules()
    offenders = [f"{name} imports {other}" for name, path in modules.items() if name.startswith("engine")
                 for other in imported(path, modules, top_level_only=False) if other.startswith("hostplug")]
    assert not offenders, offenders


def test_module_imports_have_no_circle() -> None:
    modules = all_modules()
    # Imports inside functions count too: a circle hidden in a function is still a circle a reader must follow.
    graph = {name: imported(path, modules, top_level_only=False) - {name} for name, path in modules.items()}
    # A package's __init__ re-exporting its own modules is not a circle: Python imports the package first.
    for name in graph:
        graph[name] = {other for other in graph[name] if not name.startswith(other + ".")}
    circle = find_circle(graph)
    assert circle is None, " -> ".join(circle or [])


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_find_circle_finds_one() -> None:
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None


@pytest.mark.skipif(shutil.which("mypy") is None and not (Path(sys.executable).parent / "mypy").exists(),
                    reason="mypy is not installed (pip install '.[test]' installs it)")
def test_engine_type_checks() -> None:
    """mypy finds no error in the engine (its settings are in pyproject.toml)."""
    result = subprocess.run([sys.executable, "-m", "mypy", "engine"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
