"""The package as a whole: lint, doctests, size limits and no import cycles."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import lmmsim

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lmmsim"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_names() -> list[str]:
    names = ["lmmsim"]
    names += [m.name for m in pkgutil.walk_packages(lmmsim.__path__, "lmmsim.") if not m.name.endswith("__main__")]
    return sorted(names)


def source_path(name: str) -> Path:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_ruff_is_clean():
    paths = ["lmmsim", "tests", "benchmarks", "tasks.py", "_ext"]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *paths], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", module_names())
def test_doctests(name):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests of {name} failed (run doctest on it)"


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


@pytest.mark.parametrize("name", module_names())
def test_module_and_function_sizes(name):
    text = source_path(name).read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{name} has {len(text.splitlines())} lines"
    long = [f"{node.name} ({code_lines(node)} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(node) > MAX_FUNCTION_LINES]
    assert not long, f"{name}: functions over {MAX_FUNCTION_LINES} lines (docstring not counted): {long}"


def imports_at_load(name: str) -> set[str]:
    """lmmsim modules that ``name`` imports when it is loaded (module level, not inside functions)."""
    tree = ast.parse(source_path(name).read_text(encoding="utf-8"))
    package = name if source_path(name).name == "__init__.py" else name.rsplit(".", 1)[0]
    known = set(module_names())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base in known:
                # "from pkg import submodule" loads the submodule; "from pkg import name" runs pkg
                subs = {f"{base}.{a.name}" for a in node.names} & known
                found |= subs or {base}
                if len(subs) < len(node.names):
                    found.add(base)
    return found - {name}


def test_no_import_cycles():
    graph = {name: imports_at_load(name) for name in module_names()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("name", ["lmmsim.montecarlo.run", "lmmsim.fit.exact.profile", "lmmsim.analyses.lrt",
                                  "lmmsim.simulate.draws", "lmmsim.cli"])
def test_a_module_imports_first_in_a_fresh_interpreter(name):
    # Import order must not matter: each of these loads cleanly as the first lmmsim import.
    result = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
