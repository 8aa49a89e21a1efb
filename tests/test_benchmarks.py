"""The benchmarks are scripts the suite never runs (they time things, and take minutes). What they
import is checked here instead, without running them: a name renamed or removed in the package, or
in a sibling benchmark, fails this test rather than the next person's measurement."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path
from typing import Iterator, Set, Tuple

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


def imports(script: Path) -> Iterator[Tuple[str, str]]:
    """(module, name) for every ``from module import name`` of the package or a sibling benchmark,
    at any depth (the benchmarks import inside their functions); name "" for ``import module``."""
    for node in ast.walk(ast.parse(script.read_text(), str(script))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            root = node.module.split(".")[0]
            if root == "uws_adapter" or (BENCHMARKS / f"{root}.py").is_file():
                yield from ((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from ((alias.name, "") for alias in node.names if alias.name.split(".")[0] == "uws_adapter")


def top_level_names(script: Path) -> Set[str]:
    names: Set[str] = set()
    for node in ast.parse(script.read_text(), str(script)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:  # NAME = ... or NAME, OTHER = ...
                parts = target.elts if isinstance(target, ast.Tuple) else [target]
                names.update(part.id for part in parts if isinstance(part, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def test_there_are_benchmarks() -> None:
    assert len(SCRIPTS) >= 10, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_every_name_a_benchmark_imports_exists(script: Path) -> None:
    missing = []
    for module, name in imports(script):
        sibling = BENCHMARKS / f"{module}.py"
        if sibling.is_file():
            found = name in top_level_names(sibling)
        elif not name:
            found = importlib.util.find_spec(module) is not None
        else:
            loaded = importlib.import_module(module)
            found = hasattr(loaded, name) or importlib.util.find_spec(f"{module}.{name}") is not None
        if not found:
            missing.append(f"{module}.{name}" if name else module)
    assert not missing, f"{script.name} imports what no longer exists: {', '.join(missing)}"
